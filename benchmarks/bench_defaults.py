"""The main job with today's defaults against the one-seed plain study, side by side.

    EMOTUNE_DATA=../shared/data/emotion .venv/bin/python benchmarks/bench_defaults.py \
        [--sample N] [--epochs E] [--plain-project DIR] [--defaults-project DIR] \
        [--repeats auto [auto:2 ...]] [--compare-with DIR ...]

Trains, one after the other on this machine, the six GRU sweeps twice:

- plain: ``emotune search --model gru --param all --repeats 1 --workers 1 --no-prune`` (the
  one-seed study as the README ran it before pruning and workers were the default);
- defaults: ``emotune search --model gru --param all --repeats auto`` (the README's main job:
  racing seeds, ``--workers auto``, pruning). With ``--repeats auto auto:2`` the defaults study
  runs once per setting, one after the other (``auto:2``: a value gets at most 2 seeds, not 3),
  each into ``DIR-<setting without the colon>`` (``runs/bench-defaults-auto2``).

Prints each one's wall seconds, trials and epochs, the ratio, and the recommended configuration
(one-standard-error rule) of each and of every ``--compare-with`` study (e.g. the same racing
study run with ``--workers 1 --no-prune``), and whether they are the same. Both folders are
started over (``--overwrite``) and kept, so ``emotune recommend`` can read them afterwards.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from emotune.analysis import load_study, recommend  # noqa: E402
from emotune.provenance import benchmark_header  # noqa: E402
from emotune.space import CORE  # noqa: E402

PLAIN = ["--repeats", "1", "--workers", "1", "--no-prune"]


def train(name: str, flags: list[str], project: Path, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "emotune", "search", "--model", "gru", "--param", "all",
           *flags, *extra, "--project", str(project), "--overwrite"]
    print(f"{name}: {' '.join(cmd[2:])}", flush=True)
    start = time.perf_counter()
    with open(project.parent / f"{project.name}.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def summary(path: Path) -> dict[str, object]:
    study = load_study(path)
    t = study.trials
    done = t[t["status"].isin(["completed", "pruned", "failed"])]
    rec = recommend(study)
    return {"trials": len(done), "pruned": int((done["status"] == "pruned").sum()),
            "epochs": float(done["epochs_run"].fillna(0).sum()),
            "recommended": {p: rec.values[p] for p in CORE}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, help="train on N rows (a quick check)")
    parser.add_argument("--epochs", type=int, help="at most E epochs per trial")
    parser.add_argument("--plain-project", type=Path, default=Path("runs/bench-plain"))
    parser.add_argument("--defaults-project", type=Path,
                        default=Path("runs/bench-defaults"))
    parser.add_argument("--repeats", nargs="+", default=["auto"],
                        help="the defaults study's --repeats, one study each (default: auto)")
    parser.add_argument("--compare-with", type=Path, nargs="*", default=[],
                        help="finished studies whose recommendation to set beside these")
    args = parser.parse_args()
    if len(set(args.repeats)) != len(args.repeats):
        parser.error(f"--repeats names a setting twice: {' '.join(args.repeats)}")
    extra = [*(["--sample", str(args.sample)] if args.sample else []),
             *(["--epochs", str(args.epochs)] if args.epochs else [])]
    print(benchmark_header(' '.join(extra) or 'all training rows'), flush=True)
    runs = [("plain", PLAIN, args.plain_project)]
    for repeats in args.repeats:
        project = args.defaults_project
        if len(args.repeats) > 1:
            project = project.with_name(f"{project.name}-{repeats.replace(':', '')}")
        name = "defaults" if repeats == "auto" else f"defaults, --repeats {repeats}"
        runs.append((name, ["--repeats", repeats], project))
    rows = {}
    for name, flags, project in runs:
        project.parent.mkdir(parents=True, exist_ok=True)
        seconds = train(name, flags, project, extra)
        rows[name] = {"seconds": seconds, **summary(project)}
    for path in args.compare_with:
        rows[str(path)] = {"seconds": float("nan"), **summary(path)}
    print(f"\n{'study':<34}{'wall s':>8}{'trials':>8}{'pruned':>8}{'epochs':>8}")
    for name, r in rows.items():
        print(f"{name:<34}{r['seconds']:>8.0f}{r['trials']:>8}{r['pruned']:>8}"
              f"{r['epochs']:>8.0f}")
    p = rows["plain"]
    print()
    for name, _, _ in runs[1:]:
        d = rows[name]
        print(f"{name} / plain: x{d['seconds'] / p['seconds']:.2f} wall seconds "
              f"({'no slower' if d['seconds'] <= p['seconds'] else 'SLOWER'}), "
              f"x{d['epochs'] / p['epochs']:.2f} epochs")
    print("\nrecommended (one-SE rule):")
    for name, r in rows.items():
        print(f"  {name:<32} {r['recommended']}")
    first = runs[1][0]
    base = rows[first]["recommended"]
    for name, r in rows.items():
        if name != first:
            diff = {k: (base[k], v) for k, v in r["recommended"].items() if v != base[k]}
            print(f"{first} vs {name}: " + ("the same" if not diff else "differs in " + ", ".join(
                f"{k}: {a} ({first}) vs {b} ({name})" for k, (a, b) in diff.items())))


if __name__ == "__main__":
    main()
