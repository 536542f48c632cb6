#!/usr/bin/env bash
# The accuracy study of one model: writes experiments/best-<model>.yaml, its report and its
# final test evaluation over three seeds (README, "Accuracy").
#
#   bash experiments/levers.sh gru|lstm|cnn        (EMOTUNE_DATA must point at the data)
#
# 1. One-at-a-time sweeps of the accuracy levers, starting from the tuned GRU of the main job
#    (experiments/recommended-gru-all.yaml: fine-tuned GloVe, lr 0.005, 192 units, dropout 0.2)
#    with the model type swapped in; two trial processes, median-stopping pruning.
# 2. recommend: each lever's best value on val, combined -> experiments/best-<model>.yaml.
# 3. report: reports/<model>-levers/.
# 4. final-train with seeds 1, 2, 3: reports/best-<model>/final/final.md (mean ± std).
# 5. the seeds' ensemble: reports/best-<model>-ensemble/final/final.md.
# Validation alone chooses; the test split is read only in steps 4 and 5.
# Then, optionally, experiments/refine.sh <model> (stage two).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bash experiments/levers.sh gru|lstm|cnn}
emotune=${EMOTUNE:-.venv/bin/emotune}
case $model in
  gru|lstm)
    params=bidirectional,layers,pooling,spatial_dropout,schedule,label_smoothing,class_weight,focal_gamma
    sets=() ;;
  cnn)
    params=lr,dropout,embedding,kernel_sizes,spatial_dropout,schedule,label_smoothing,class_weight,focal_gamma
    sets=(--set "sweeps.lr=[0.001,0.002,0.005]" --set "sweeps.dropout=[0.2,0.5]"
          --set "sweeps.embedding=[fine-tuned,multichannel]") ;;
  *) echo "error: unknown model '$model'; use gru, lstm or cnn" >&2; exit 2 ;;
esac
project=runs/$model-levers
$emotune search --model "$model" --config experiments/recommended-gru-all.yaml \
  --set "model.type=$model" "${sets[@]}" --param "$params" --prune --workers 2 --project "$project"
$emotune recommend --project "$project" --config-out "experiments/best-$model.yaml"
$emotune report --project "$project"
$emotune final-train --config "experiments/best-$model.yaml" --seeds 1 2 3 --overwrite
$emotune ensemble models/best-$model/seed-{1,2,3} --name "best-$model-ensemble" --overwrite
