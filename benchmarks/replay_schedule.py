"""Replay a finished racing sweep's schedule on N simulated workers, in seconds, not hours.

    .venv/bin/python benchmarks/replay_schedule.py --study runs/gru-all \
        [--extra DIR ...] [--extra-scale 1.29] [--workers 2] [--before]

The real oracle (``tuner.RacingOracle``, as the chief of ``--workers`` runs it) chooses every
trial. A trial's outcome (its objective, whether it was pruned, its seconds) is the one recorded
in ``--study`` for that configuration and seed, or in an ``--extra`` study for seeds the study
never ran (their seconds times ``--extra-scale``: 1.29 turns a two-thread single process's
seconds into a one-thread worker's, as measured on the main job's trials). Time is simulated: a
free worker asks the oracle, waits when told to, and a trial takes its recorded seconds plus
``--overhead``. Prints the trials in start order, the wall time and the worker seconds spent
waiting. ``--before`` replays the rule before commit 05e970a: a value's next seed always waits
for its running one.

What a replay cannot show: pruning and early stopping happen as recorded (the same trials stop
at the same epochs), and a trial's seconds do not depend on what runs beside it. It compares
schedules on the same outcomes; the wall time of a real run is measured by bench_defaults.py.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import io
import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras_tuner as kt  # noqa: E402

from emotune import tuner  # noqa: E402
from emotune.config import build_config  # noqa: E402
from emotune.results import load_trials, read_json  # noqa: E402
from emotune.search import StudySpec  # noqa: E402
from emotune.space import POINT, REPEAT, SearchSpace, default_value, same_setting  # noqa: E402


class Outcome(NamedTuple):
    metrics: dict[str, float]  # what the trial reports to the oracle
    seconds: float
    pruned: bool


class Replay(NamedTuple):
    wall: float  # simulated seconds until the last trial ends
    busy: float  # worker-seconds spent training
    idle: float  # worker-seconds without a trial (waiting, or after the last was handed out)
    log: list[tuple]  # (start, end, worker, point, seed, objective, pruned) per trial


def point_of(row: Any, space: SearchSpace) -> str | None:
    """The sweep point (``space.points`` label) a trials.csv row trained."""
    for label, values in space.points.items():
        if all(same_setting(row[p], values.get(p, default_value(space.base, p)))
               for p in space.params):
            return label
    return None


def outcomes(path: Path, space: SearchSpace, goal: str, scale: float) -> dict[tuple, Outcome]:
    """(point, seed) -> what that trial recorded; one-seed trials only (a ``--repeats K``
    trial's row is a mean over seeds, not a racing seed's result)."""
    table = {}
    for _, row in load_trials(path).iterrows():
        label = point_of(row, space)
        seeds = str(row["seeds"]).split()
        if label is None or len(seeds) != 1 or row["status"] not in ("completed", "pruned"):
            continue
        pruned = row["status"] == "pruned"
        metrics = {goal: float(row[goal]), "pruned": float(pruned)}
        if f"{goal}_se" in row and row[f"{goal}_se"] == row[f"{goal}_se"]:  # not NaN
            metrics[f"{goal}_se"] = float(row[f"{goal}_se"])  # a macro-F1's or loss's noise
        table[(label, int(seeds[0]))] = Outcome(metrics, float(row["seconds"]) * scale, pruned)
    return table


def replay(study_dir: Path, extra: list[Path], scale: float, workers: int, overhead: float,
           before: bool) -> Replay:
    record = read_json(study_dir / "study.json")
    spec = StudySpec(**{**record["study"], "params": tuple(record["study"]["params"])})
    if not (spec.sweep and spec.racing):
        raise SystemExit(f"{study_dir} is not a racing sweep (--repeats auto): nothing to replay")
    # study.json keeps the sweep values apart from the base settings
    config = build_config(overrides={**record["base_config"],
                                     "search": {"sweeps": record["sweeps"]}})
    space = SearchSpace(config, list(spec.params), True, spec.race)
    table: dict[tuple, Outcome] = {}
    for path in extra:  # the study's own records win
        table.update(outcomes(path, space, spec.objective, scale))
    table.update(outcomes(study_dir, space, spec.objective, 1.0))
    if before:
        race_values = tuner._race_values
        tuner._race_values = lambda *a, ahead=False, **k: race_values(*a, **k)  # never ahead
    oracle = tuner.make_oracle(spec, config, space, record["n_val"])
    folder = tempfile.TemporaryDirectory()
    oracle._set_project_dir(folder.name, "kt")
    hp = kt.HyperParameters()
    space.declare(hp)
    oracle.update_space(hp)
    now, free, running, busy, log = 0.0, [f"tuner{i}" for i in range(workers)], [], 0.0, []
    base_seed = config.train.seed
    with folder, contextlib.redirect_stdout(io.StringIO()):  # KerasTuner's per-trial printout
        while True:
            for worker in list(free):
                trial = oracle.create_trial(worker)
                if trial.status == "STOPPED":
                    free.remove(worker)
                if trial.status != "RUNNING":
                    continue
                values = trial.hyperparameters.values
                key = (values[POINT], base_seed + values.get(REPEAT, 0))
                if key not in table:
                    raise SystemExit(f"no completed or pruned trial of {key[0]} with seed "
                                     f"{key[1]} on record: add a study that trained it with "
                                     f"--extra")
                outcome = table[key]
                seconds = outcome.seconds + overhead
                heapq.heappush(running, (now + seconds, trial.trial_id, worker, trial, outcome))
                free.remove(worker)
                busy += seconds
                log.append((now, now + seconds, worker, *key,
                            outcome.metrics[spec.objective], outcome.pruned))
            if not running:
                break
            now, _, worker, trial, outcome = heapq.heappop(running)
            oracle.update_trial(trial.trial_id, outcome.metrics)
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
            free.append(worker)
    return Replay(now, busy, workers * now - busy, log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, required=True, help="a finished racing sweep")
    parser.add_argument("--extra", type=Path, nargs="*", default=[],
                        help="studies of the same settings (not checked) with outcomes for "
                             "seeds --study never ran")
    parser.add_argument("--extra-scale", type=float, default=1.0,
                        help="multiply the --extra studies' seconds by this")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--overhead", type=float, default=3.0,
                        help="seconds per trial beyond its recorded training seconds")
    parser.add_argument("--before", action="store_true",
                        help="the rule before 05e970a: no seed taken ahead")
    args = parser.parse_args()
    wall, busy, idle, log = replay(args.study, args.extra, args.extra_scale, args.workers,
                                   args.overhead, args.before)
    print(f"{'start':>7} {'end':>7}  worker  {'trial':<24}{'seed':>5}  objective")
    for start, end, worker, label, seed, score, pruned in log:
        print(f"{start:7.0f} {end:7.0f}  {worker}  {label:<24}{seed:>5}  {score:.4f}"
              f"{' (pruned)' if pruned else ''}")
    rule = "before 05e970a (no seed ahead)" if args.before else "today's rule"
    print(f"\n{args.study}, {rule}, {args.workers} workers: {len(log)} trials, wall "
          f"{wall:.0f} s, {busy:.0f} worker-seconds of trials, {idle:.0f} worker-seconds "
          f"without one")


if __name__ == "__main__":
    main()
