"""What racing seeds (``--repeats auto``) costs against the one-seed study, side by side.

    .venv/bin/python benchmarks/bench_racing.py --study runs/gru-all
    .venv/bin/python benchmarks/bench_racing.py --run [--sample 3000] [--epochs 4]
        [--seeds 42 43 44] [--keep DIR]

``--study DIR`` reads a finished racing study. Its first round (every value once, seed
``train.seed``) is exactly the one-seed study with the same flags: same trials, same seed, same
numbers (with ``--workers 1 --no-prune``; with pruning on, the pruned trials of either are
stopped at the same epochs, and with several workers which trials a pruned median sees depends
on timing), so the two are measured in the same run on the same machine. Prints the trials,
epochs and training seconds of the first round and of the whole study, their ratio, which
values got extra seeds, and whether the recommendation differs between the first round alone
(one seed, one-SE rule) and the whole study.

``--run`` trains, for each base seed (``--set train.seed=...``), one racing study of the six
GRU sweeps (default flags otherwise) on a stratified sample in a temporary folder, and prints
the recommended configuration of each, so that "the same answer for three base seeds" is
checked on the sample, and the cost ratio of each. ``--sample 0 --epochs 0`` runs the README's
main job itself (all training rows, the configured epochs) for each base seed; ``--keep DIR``
keeps each study as ``DIR/seed-N`` instead of deleting it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from emotune.analysis import LoadedStudy, load_study, recommend  # noqa: E402
from emotune.provenance import benchmark_header  # noqa: E402
from emotune.space import CORE  # noqa: E402


def first_round(study: LoadedStudy) -> LoadedStudy:
    """The study as if it had stopped after its first round: every value's first seed."""
    import dataclasses

    trials = study.trials
    seed = int(study.record["base_config"]["train"]["seed"])
    first = trials[trials["seeds"].astype(str).str.split().str[0].astype(int) == seed]
    record = {**study.record, "study": {**study.record["study"], "race": 0}}
    return dataclasses.replace(study, trials=first.reset_index(drop=True), record=record)


def cost(study: LoadedStudy) -> dict[str, float]:
    done = study.trials[study.trials["status"].isin(["completed", "pruned", "failed"])]
    return {"trials": len(done), "epochs": float(done["epochs_run"].fillna(0).sum()),
            "seconds": float(done["seconds"].fillna(0).sum())}


def compare(path: Path) -> dict[str, object]:
    study = load_study(path)
    whole, one = recommend(study), recommend(first_round(study))
    a, b = cost(first_round(study)), cost(study)
    extra = study.trials[study.trials["seeds"].astype(str).str.split().str[0].astype(int)
                         != int(study.record["base_config"]["train"]["seed"])]
    print(f"study {path}: {len(study.trials)} trials")
    print(f"{'':<22}{'trials':>8}{'epochs':>9}{'seconds':>10}")
    print(f"{'one seed (round one)':<22}{a['trials']:>8}{a['epochs']:>9.0f}{a['seconds']:>10.0f}")
    print(f"{'racing (whole study)':<22}{b['trials']:>8}{b['epochs']:>9.0f}{b['seconds']:>10.0f}")
    print(f"cost of racing: x{b['seconds'] / a['seconds']:.2f} training seconds, "
          f"x{b['epochs'] / max(a['epochs'], 1):.2f} epochs")
    print("extra seeds: " + ", ".join(
        f"{' '.join(f'{p}={r[p]}' for p in study.params if r[p] != study.defaults[p]) or 'default'}"
        f" (seed {r['seeds']})" for _, r in extra.iterrows()))
    changed = {p: (one.values[p], whole.values[p]) for p in study.params
               if one.values[p] != whole.values[p]}
    print("recommendation, one seed vs racing: " + (
        "the same" if not changed else "differs in " + ", ".join(
            f"{p}: {u} -> {v}" for p, (u, v) in changed.items())))
    return {"one_seed": a, "racing": b, "same_recommendation": not changed,
            "recommended": {p: whole.values[p] for p in study.params}}


def run(sample: int, epochs: int, seeds: list[int], keep: Path | None = None) -> None:
    answers = []
    for seed in seeds:
        root = None if keep else Path(tempfile.mkdtemp(prefix="bench-racing-"))
        project = root / "gru-all" if root else keep / f"seed-{seed}"
        cmd = [sys.executable, "-m", "emotune", "search", "--model", "gru", "--param", "all",
               "--repeats", "auto", "--set", f"train.seed={seed}", "--project", str(project)]
        cmd += ["--sample", str(sample)] if sample else []
        cmd += ["--epochs", str(epochs)] if epochs else []
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"\nbase seed {seed}: {time.perf_counter() - start:.0f}s wall")
        answers.append(compare(project)["recommended"])
        if root:
            shutil.rmtree(root, ignore_errors=True)
    same = all(a == answers[0] for a in answers)
    print(f"\nrecommended configuration for base seeds {seeds}: "
          f"{'the same' if same else 'NOT the same'}")
    for seed, a in zip(seeds, answers):
        print(f"  {seed}: {json.dumps({p: a[p] for p in CORE if p in a})}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, help="a finished `--repeats auto` study folder")
    parser.add_argument("--run", action="store_true", help="train racing studies on a sample")
    parser.add_argument("--sample", type=int, default=3000, help="training rows; 0: all")
    parser.add_argument("--epochs", type=int, default=4, help="0: the configured epochs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--keep", type=Path, help="keep each study as DIR/seed-N")
    args = parser.parse_args()
    print(benchmark_header(), flush=True)
    if args.study:
        compare(args.study)
    if args.run:
        run(args.sample, args.epochs, args.seeds, args.keep)
    if not (args.study or args.run):
        parser.error("give --study DIR or --run")


if __name__ == "__main__":
    main()
