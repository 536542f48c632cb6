"""KerasTuner searches: one-at-a-time sweeps and joint grid/Bayesian/random/Hyperband searches.

What a study searches (``StudySpec``), the pruning rule, and ``run_search``, which runs or
resumes a study with the KerasTuner classes of ``emotune/tuner.py`` (imported only here, when a
search runs). Re-running the same study resumes it; a different study in the same folder is
refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotune.cluster import StudyDone, chief_stops_when_told
from emotune.config import Config, flatten
from emotune.errors import ConfigError, EmotuneError
from emotune.progress import log
from emotune.results import (
    KT_DIR,
    atomic_write_json,
    clear_project,
    load_trials,
    read_json,
    study_lock,
    write_trials_csv,
)
from emotune.space import SearchSpace

STRATEGIES = ("grid", "bayesian", "random", "hyperband")
RACING_NEEDS = ("--repeats auto races seeds among a fixed set of values: use it with --param "
                "(sweeps) or --strategy grid, and --repeats K with bayesian, random or "
                "hyperband")


@dataclass(frozen=True)
class StudySpec:
    """What a study searches. Saved as study.json; a resumed study must match it."""

    model: str
    params: tuple[str, ...]
    strategy: str  # "sweep" (one at a time) or one of STRATEGIES (joint)
    trials: int | None  # joint searches; None for sweeps and Hyperband
    repeats: int
    sample: int | None
    prune: bool
    race: int = 0  # --repeats auto[:MAX]: at most this many seeds per value; 0 = no racing
    objective: str = "val_accuracy"  # what trials are ranked by (scores.OBJECTIVES)

    @property
    def sweep(self) -> bool:
        return self.strategy == "sweep"

    @property
    def racing(self) -> bool:
        return self.race > 0

    def describe(self) -> str:
        what = (f"one-at-a-time sweep of {', '.join(self.params)}" if self.sweep
                else f"{self.strategy} search over {', '.join(self.params)}")
        ranked = "" if self.objective == "val_accuracy" else f", ranked by {self.objective}"
        return f"{self.model}: {what}{ranked}"


def parse_budget(text: str | None) -> float | None:
    """``"15m"``, ``"90s"``, ``"1h30m"``, ``"2h"`` -> seconds."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*",
                     text)
    if not m or not any(m.groups()):
        raise ConfigError(f"--budget {text!r} is not a duration; write e.g. 15m, 90s or 1h30m")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


# ---------------------------------------------------------------- pruning (a pure rule)


def reported_so_far(values: list[float], monitored: list[float],
                    monitor_max: bool = False) -> list[float]:
    """Per epoch, the objective (``values``) a trial would report if it stopped there: that of
    its best monitored epoch so far (lowest val loss by default; highest with
    ``monitor_max``), the epoch whose weights early stopping restores. The quantity the
    pruning rule compares is the objective a finished trial reports."""
    out, best, at_best = [], math.nan, math.nan
    for value, m in zip(values, monitored):
        better = math.isnan(best) or (m > best if monitor_max else m < best)
        if not math.isnan(m) and (better or math.isnan(at_best)):
            best, at_best = m, value
        out.append(at_best)
    return out


def should_prune(epoch: int, value: float, finished: list[list[float]], warmup: int,
                 min_trials: int, n_val: int | None = None, z: float = 0.0,
                 se: float | None = None) -> bool:
    """Median stopping, noise-aware: after ``warmup`` epochs, stop a trial whose objective so
    far (``value``, ``reported_so_far``; higher is better, a loss comes negated) trails the
    median of the finished trials' objective at that epoch (Optuna's MedianPruner rule) by
    more than ``z`` standard errors of the difference. Each side's standard error is ``se``
    when given (the bootstrap error of macro-F1 or loss on the validation texts), else the
    binomial error of an accuracy on ``n_val`` texts. With ``z`` 0 (or no noise known) any
    shortfall stops it.

    ``finished`` holds each finished trial's per-epoch objective; only trials that reached
    ``epoch`` count, and at least ``min_trials`` of them are needed.
    """
    from emotune.noise import binomial_se

    if epoch < warmup or math.isnan(value):
        return False
    at_epoch = [h[epoch - 1] for h in finished if len(h) >= epoch and not math.isnan(h[epoch - 1])]
    if len(at_epoch) < min_trials:
        return False
    bar = statistics.median(at_epoch)
    margin = 0.0
    if z > 0 and se is not None and not math.isnan(se):
        margin = z * math.hypot(se, se)
    elif z > 0 and n_val:
        margin = z * math.hypot(binomial_se(value, n_val), binomial_se(bar, n_val))
    return value < bar - margin


def median_stopping(finished: list[list[float]] | Callable[[], list[list[float]]],
                    warmup: int, min_trials: int, n_val: int | None = None, z: float = 0.0,
                    *, objective: str = "val_accuracy", monitor: str = "val_loss",
                    se: float | Callable[[], float | None] | None = None,
                    epochs: int | None = None) -> Callable[[int, dict], bool]:
    """The per-epoch pruning hook of one trial: it follows the trial's ``objective`` at its
    best ``monitor`` epoch so far. ``finished`` is the finished trials' curves (signed:
    higher is better), or a function giving them as they are at each epoch (with several
    workers, trials finish while this one runs); ``se`` (or a function giving it) is the
    objective's standard error where it is not an accuracy. ``epochs`` is the trial's last
    epoch: it is never pruned there, since stopping then saves nothing and the trial has run
    to the end (a complete result, not a lower bound). That happens when the bar appears
    only late, a default finishing on another worker."""
    from emotune.scores import objective as find
    from emotune.scores import per_epoch

    goal, watch, column = find(objective), monitor, per_epoch(objective)
    accuracy = objective == "val_accuracy"
    values: list[float] = []
    monitored: list[float] = []

    def rule(epoch: int, logs: dict) -> bool:
        values.append(goal.signed(logs.get(column, math.nan)))
        monitored.append(logs.get(watch, math.nan))
        if epoch < warmup or (epochs is not None and epoch >= epochs):
            return False
        value = reported_so_far(values, monitored, watch != "val_loss")[-1]
        curves = finished() if callable(finished) else finished
        noise = se() if callable(se) else se
        if not accuracy and z > 0 and noise is None:
            return False  # macro-F1 or loss: no pruning until a finished trial gives its noise
        return should_prune(epoch, value, curves, warmup, min_trials,
                            n_val if accuracy else None, z, noise)

    return rule


# ---------------------------------------------------------------- a whole study


@dataclass
class SearchOutcome:
    trials: Any  # DataFrame, as trials.csv
    project: Path
    trained_now: int
    budget_spent: bool
    seconds: float


def _study_record(study: StudySpec, config: Config, checksum: str, n_val: int
                  ) -> dict[str, Any]:
    """What a resumed study must match (the study, its base settings, its data), the number
    of validation texts (the noise of every number), and who wrote it."""
    from emotune.provenance import provenance

    base = config.to_dict()
    sweeps = base.pop("search")["sweeps"]
    return {"study": dataclasses.asdict(study), "base_config": base, "data_checksum": checksum,
            "sweeps": {n: sweeps[n] for n in study.params}, "n_val": n_val,
            "provenance": provenance()}


# Where the data and the cache live may change between runs; the data checksum may not. Nor
# does how many batches go in one compiled call change a number (models.exact_steps_per_execution).
RELOCATABLE = ("base_config.data.path", "base_config.embeddings.cache_dir",
               "base_config.train.steps_per_execution")
COMPARED = ("study", "base_config", "data_checksum", "sweeps")  # what a resume must match


def _check_resumable(project: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Raise unless ``project`` holds the same study; return its saved record."""
    saved_record = read_json(project / "study.json")
    defaults = {f.name: f.default for f in dataclasses.fields(StudySpec)
                if f.default is not dataclasses.MISSING}  # fields newer than the study
    saved_study = {**defaults, **saved_record.get("study", {})}
    saved = flatten({**{k: saved_record.get(k) for k in COMPARED}, "study": saved_study})
    # settings newer than the study: it ran with their defaults
    base = Config().to_dict()
    base.pop("search")
    for key, value in flatten({"base_config": json.loads(json.dumps(base))}).items():
        saved.setdefault(key, value)
    new = flatten(json.loads(json.dumps({k: record[k] for k in COMPARED})))
    diff = sorted(k for k in set(saved) | set(new)
                  if saved.get(k) != new.get(k) and k not in RELOCATABLE)
    if diff:
        shown = ", ".join(k.split(".", 1)[-1] for k in diff[:6])
        hint = ""
        if "study.prune" in diff:  # pruning became the default: old studies ran without it
            ran = bool(saved_study.get("prune"))
            hint = (f" (it ran {'with' if ran else 'without'} pruning: add "
                    f"--{'' if ran else 'no-'}prune to resume it)")
        raise EmotuneError(
            f"{project} holds a different study (differs in {shown}){hint}; rerun it with its "
            f"own settings to resume, add --overwrite to start over, or choose another "
            f"--project")
    return saved_record


def check_resumable(project: Path, study: StudySpec, config: Config, checksum: str) -> None:
    """Raise unless ``project`` is empty or holds this study: the check ``run_search`` makes,
    for a caller that starts other processes on it first (``search --workers``)."""
    if (project / "study.json").is_file():
        _check_resumable(project, _study_record(study, config, checksum, 0))


Trainer = Callable[..., Any]  # (config, model=..., on_epoch=..., prefix=...) -> TrainResult
Builder = Callable[[Config], Any]  # config -> a compiled Keras model (None in search tests)


def real_trainer_and_builder(prepared: Any, embedding: Any) -> tuple[Trainer, Builder]:
    """Model building and training on the prepared data, shared by every trial."""
    from emotune.train import fit, new_model

    def trainer(config: Config, **kwargs: Any) -> Any:
        return fit(config, prepared, embedding, **kwargs)

    def builder(config: Config) -> Any:
        return new_model(config, prepared, embedding)

    return trainer, builder


def run_search(study: StudySpec, config: Config, prepared: Any, embedding: Any = None, *,
               project: Path, overwrite: bool = False, keep_models: bool = False,
               budget_s: float | None = None, trainer: Trainer | None = None,
               builder: Builder | None = None, lock: bool = True,
               tensorboard: bool = False) -> SearchOutcome:
    """Run (or resume) ``study`` in the folder ``project``.

    Args:
        study: what to search.
        config: the base settings (every parameter not searched keeps its value here).
        prepared: the tokenised data (``data.prepare``), shared by every trial.
        embedding: the vocabulary-aligned GloVe matrix (``embeddings.load_embedding``).
        project: the study folder; running the same study again resumes it.
        overwrite: delete the study in ``project`` first.
        keep_models: keep every trial's model, not only the best one.
        budget_s: start no new trial after this many seconds.
        trainer, builder: replace training and model building (tests fake them).
        lock: hold the project's lock (``results.study_lock``) so that a second search into it
            is refused, and say so when the study is resumed. The chief and workers of
            ``--workers`` pass False: their supervisor holds it and says it (a worker that
            starts after the other has finished a trial would call a fresh study resumed).
            A standalone ``emotune worker`` passes False too; its ``emotune chief`` says it.
        tensorboard: also write TensorBoard event files into ``project/tensorboard``
            (``emotune.tensorboard``: the HParams dashboard and every epoch's scalars).

    Returns:
        A ``SearchOutcome``: every trial as a DataFrame (trials.csv), how many were trained
        now, whether the budget ran out, and the seconds it took.

    Raises:
        EmotuneError: ``project`` holds another study, or an error that would fail every
            trial stopped the search (finished trials are kept).

    Example:
        >>> spec = StudySpec("gru", ("lr",), "sweep", None, 1, None, False)
        >>> outcome = run_search(spec, build_config(), prepared, embedding,
        ...                      project=Path("runs/gru-lr"))  # doctest: +SKIP
    """
    hold = study_lock(project) if lock else contextlib.nullcontext()
    with hold:
        return _run_search(study, config, prepared, embedding, project=project,
                           overwrite=overwrite, keep_models=keep_models, budget_s=budget_s,
                           trainer=trainer, builder=builder, tensorboard=tensorboard,
                           owner=lock)


def _run_search(study: StudySpec, config: Config, prepared: Any, embedding: Any, *,
                project: Path, overwrite: bool, keep_models: bool, budget_s: float | None,
                trainer: Trainer | None, builder: Builder | None,
                tensorboard: bool = False, owner: bool = True) -> SearchOutcome:
    from keras_tuner.errors import FatalError

    from emotune.tuner import BudgetSpent, EmotuneHyperModel, EmotuneTuner, make_oracle

    space = SearchSpace(config, list(study.params), study.sweep, study.race)
    n_val = len(prepared.val.labels)
    record = _study_record(study, config, prepared.checksum, n_val)
    if overwrite:
        clear_project(project)
    if (project / "study.json").is_file():
        saved = _check_resumable(project, record)
        # the first run's provenance stays; each trial records the run that trained it
        record["provenance"] = saved.get("provenance") or record["provenance"]
    project.mkdir(parents=True, exist_ok=True)
    atomic_write_json(project / "study.json", record)
    if trainer is None or builder is None:
        trainer, builder = real_trainer_and_builder(prepared, embedding)
    if tensorboard:
        from emotune.space import values_of
        from emotune.tensorboard import DIR, write_study_config

        write_study_config(project / DIR, {p: values_of(config, p) for p in study.params})
    tuner = EmotuneTuner(make_oracle(study, config, space, n_val),
                         EmotuneHyperModel(space, builder, trainer), study=study,
                         project=project, n_val=n_val, keep_models=keep_models,
                         budget_s=budget_s, tensorboard=tensorboard)
    tuner.oracle.verbose = 0
    done_before = len(load_trials(project)) if (project / KT_DIR).is_dir() else 0
    if done_before and owner:
        log(f"resuming {project}: {done_before} trials on disk")
    start = time.monotonic()
    spent = False
    try:
        with chief_stops_when_told():
            tuner.search()
    except StudyDone:
        pass  # the signal came as the search ended by itself: the same end
    except BudgetSpent:
        spent = True
    except FatalError as e:
        raise EmotuneError(f"search stopped: {e} (finished trials are kept in {project}; "
                           f"fix the cause and rerun to resume; --debug shows the "
                           f"traceback)") from e
    frame = write_trials_csv(project)
    return SearchOutcome(frame, project, tuner.trained_now, spent, time.monotonic() - start)
