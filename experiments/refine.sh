#!/usr/bin/env bash
# Second stage of the accuracy study of one model (after experiments/levers.sh): the core
# training settings swept again around the levers' combination, which was never trained as
# such in stage 1 (its lr, dropout and batch size were tuned with a frozen, last-state GRU).
#
#   bash experiments/refine.sh gru|lstm|cnn        (EMOTUNE_DATA must point at the data)
#
# Writes runs/<model>-refine, reports/<model>-refine/, replaces experiments/best-<model>.yaml
# with the refined recommendation, and retrains it: reports/best-<model>/final/ (three seeds)
# and reports/best-<model>-ensemble/final/. Validation alone chooses.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bash experiments/refine.sh gru|lstm|cnn}
emotune=${EMOTUNE:-.venv/bin/emotune}
best=experiments/best-$model.yaml
[[ -f $best ]] || { echo "error: $best does not exist; run bash experiments/levers.sh $model first" >&2; exit 2; }
project=runs/$model-refine
$emotune search --model "$model" --config "$best" --param lr,dropout,batch_size \
  --set "sweeps.lr=[0.001,0.002,0.003,0.005]" --set "sweeps.dropout=[0.2,0.35,0.5]" \
  --set "sweeps.batch_size=[32,64]" --prune --workers 2 --project "$project"
$emotune recommend --project "$project" --config-out "$best"
$emotune report --project "$project"
$emotune final-train --config "$best" --seeds 1 2 3 --overwrite
$emotune ensemble models/best-$model/seed-{1,2,3} --name "best-$model-ensemble" --overwrite
