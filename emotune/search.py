"""KerasTuner searches: one-at-a-time sweeps and joint grid/Bayesian/random/Hyperband searches.

KerasTuner's oracles propose; ``EmotuneTuner`` (a ``BaseTuner``) trains. It owns ``run_trial``
so that no checkpoint is written per improving epoch (KerasTuner issue #288): only the best
trial's model is kept, every trial's with ``keep_models``. Trials that fail on their own (NaN
loss, out of memory, an invalid value) are recorded with their reason and the search goes on;
anything else would fail every trial and stops it. Re-running the same study resumes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
import math
import os
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotune.config import Config, override
from emotune.errors import ConfigError, EmotuneError, TrainingError
from emotune.progress import log
from emotune.results import (
    KT_DIR,
    atomic_write_json,
    clear_project,
    load_trials,
    read_json,
    study_lock,
    trial_dirs,
    write_trials_csv,
)
from emotune.space import PARAMS, POINT, SearchSpace, hp_values, sweeps_of

STRATEGIES = ("grid", "bayesian", "random", "hyperband")
OBJECTIVE = "val_accuracy"


class BudgetSpent(Exception):
    """Raised between trials when the time budget is used up."""


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

    @property
    def sweep(self) -> bool:
        return self.strategy == "sweep"

    def describe(self) -> str:
        what = (f"one-at-a-time sweep of {', '.join(self.params)}" if self.sweep
                else f"{self.strategy} search over {', '.join(self.params)}")
        return f"{self.model}: {what}"


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


def should_prune(epoch: int, value: float, finished: list[list[float]], warmup: int,
                 min_trials: int) -> bool:
    """Median stopping: after ``warmup`` epochs, stop a trial whose best val accuracy up to
    ``epoch`` (``value``) is below the median of the finished trials' val accuracy at that
    epoch (Optuna's MedianPruner rule). The best so far, not the epoch's own value, because a
    trial keeps its best epoch: one dip after a peak must not stop it.

    ``finished`` holds each finished trial's per-epoch val accuracy; only trials that reached
    ``epoch`` count, and at least ``min_trials`` of them are needed.
    """
    if epoch < warmup:
        return False
    at_epoch = [h[epoch - 1] for h in finished if len(h) >= epoch]
    if len(at_epoch) < min_trials:
        return False
    return value < statistics.median(at_epoch)


# ---------------------------------------------------------------- the HyperModel


Trainer = Callable[..., Any]  # (config, on_epoch=..., prefix=...) -> train.TrainResult
Builder = Callable[[Config], Any]  # config -> a compiled Keras model (or None in tests)


def make_hypermodel(space: SearchSpace, build: Builder, train: Trainer) -> Any:
    """The KerasTuner ``HyperModel``: ``hp`` -> Config -> model; ``fit`` trains it.

    Batch size, epochs and the seed come from the Config the hyperparameters map to, so they
    are tuned in ``fit`` as KerasTuner intends.
    """
    import keras_tuner

    class EmotuneHyperModel(keras_tuner.HyperModel):
        def declare_hyperparameters(self, hp: Any) -> None:
            space.declare(hp)

        def build(self, hp: Any) -> Any:
            space.declare(hp)
            return build(space.config_for(hp.values))

        def fit(self, hp: Any, model: Any, *, seed: int, **kwargs: Any) -> Any:
            config = override(space.config_for(hp.values), {"train.seed": seed})
            return train(config, **kwargs)

    return EmotuneHyperModel(name="emotune")


# ---------------------------------------------------------------- the tuner


def _tuner_base() -> type:
    from keras_tuner.src.engine.base_tuner import BaseTuner

    return BaseTuner


class _TunerMixin:
    """emotune's trial loop on top of KerasTuner's ``BaseTuner`` (see make_tuner)."""

    study: StudySpec
    space: SearchSpace
    project: Path

    def _setup(self, study: StudySpec, space: SearchSpace, project: Path, keep_models: bool,
               budget_s: float | None) -> None:
        self.study, self.space, self.project = study, space, project
        self.keep_models = keep_models
        self.budget_s = budget_s
        self.started = time.monotonic()
        self.trained_now = 0  # trials this process ran
        self._finished_curves: list[list[float]] | None = None
        self._last_model: Any = None

    # -- hooks of BaseTuner

    def pre_create_trial(self) -> None:
        if self.budget_s is not None and time.monotonic() - self.started >= self.budget_s:
            raise BudgetSpent()

    def on_trial_begin(self, trial: Any) -> None:
        total = self.space.size() or self.study.trials
        n = int(trial.trial_id) + 1
        values = trial.hyperparameters.values
        what = values[POINT] if self.study.sweep else " ".join(
            f"{k}={v}" for k, v in values.items() if k in PARAMS)
        log(f"trial {n}{f'/{total}' if total else ''}: {what}")

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
        hp = trial.hyperparameters
        config = self.space.config_for(hp.values)
        trial_dir = Path(self.get_trial_dir(trial.trial_id))
        trial_dir.mkdir(parents=True, exist_ok=True)
        values = hp_values(config)
        record: dict[str, Any] = {
            "status": "running", "reason": "", "hyperparameters": values,
            "sweeps": sweeps_of(values, self.space.base, list(self.study.params))
            if self.study.sweep else [],
            "epochs": config.train.epochs, "runs": [], "tuner_id": self.tuner_id,
        }
        atomic_write_json(trial_dir / "emotune.json", record)
        self.trained_now += 1
        histories = []
        pruned = False
        best_model, best_acc = None, -1.0
        for k in range(self.study.repeats):
            seed = config.train.seed + k
            result = self._fit_one(hp, seed, config, trial_dir, record)
            record["runs"].append({"seed": seed, **result.metrics})
            pruned = pruned or result.stopped_by_hook
            histories.append(result.history.assign(seed=seed))
            if result.metrics["val_accuracy"] > best_acc:
                best_model, best_acc = result.model, result.metrics["val_accuracy"]
        import pandas as pd

        pd.concat(histories).to_csv(trial_dir / "history.csv", index=False)
        record["status"] = "pruned" if pruned else "completed"
        atomic_write_json(trial_dir / "emotune.json", record)
        self._last_model = best_model
        runs = record["runs"]
        metrics = {m: sum(r[m] for r in runs) / len(runs)
                   for m in ("val_accuracy", "val_loss", "val_macro_f1", "best_epoch")}
        return metrics

    def _fit_one(self, hp: Any, seed: int, config: Config, trial_dir: Path,
                 record: dict[str, Any]) -> Any:
        """One seed of a trial. Failures of this trial alone become FailedTrialError (the
        search goes on); anything else would fail every trial and becomes FatalError."""
        try:
            return self.hypermodel.fit(hp, None, seed=seed, on_epoch=self._pruner(),
                                       prefix="  ")
        except (TrainingError, ConfigError) as e:
            reason, cause = str(e), None
        except Exception as e:
            reason = _resource_reason(e, config)
            cause = e if reason is None else None  # kept for --debug's traceback
            reason = reason or f"{type(e).__name__}: {e}"
        self._fail(trial_dir, record, reason)
        raise (_fatal(reason) if cause else _failed_trial(reason)) from cause

    def on_trial_end(self, trial: Any) -> None:
        super().on_trial_end(trial)  # type: ignore[misc]  # the oracle records it
        frame = write_trials_csv(self.project)
        self._finished_curves = None
        row = frame[frame["trial_id"] == trial.trial_id]
        if row.empty:
            return
        row = row.iloc[0]
        if row["status"] == "failed":
            log(f"  trial {trial.trial_id} failed: {row['reason']}")
            return
        done = frame[frame["status"].isin(["completed", "pruned"])]
        best = done.loc[done[OBJECTIVE].idxmax()]
        pruned = " (pruned)" if row["status"] == "pruned" else ""
        log(f"  val_acc {row[OBJECTIVE]:.4f}{pruned} in {row['seconds']:.0f}s; best so far "
            f"{best[OBJECTIVE]:.4f} (trial {best['trial_id']}), {len(done)} trials done")
        model, self._last_model = self._last_model, None
        if model is not None:
            if self.keep_models:
                model.save(Path(self.get_trial_dir(trial.trial_id)) / "model.keras")
            if best["trial_id"] == trial.trial_id:
                self._save_best(model, trial.trial_id, row)

    # -- KerasTuner's model persistence, one file for the best trial

    def save_model(self, trial_id: str, model: Any, step: int = 0) -> None:
        model.save(Path(self.get_trial_dir(trial_id)) / "model.keras")

    def load_model(self, trial: Any) -> Any:
        import keras

        path = Path(self.get_trial_dir(trial.trial_id)) / "model.keras"
        if not path.is_file():
            best = read_json(self.project / "best_trial.json") \
                if (self.project / "best_trial.json").is_file() else {}
            if best.get("trial_id") != trial.trial_id:
                raise EmotuneError(f"trial {trial.trial_id} kept no model; rerun with "
                                   f"--keep-models to keep every trial's model")
            path = self.project / "best_model.keras"
        return keras.models.load_model(path)

    # -- helpers

    def _save_best(self, model: Any, trial_id: str, row: Any) -> None:
        tmp = self.project / f".best_model.tmp{os.getpid()}.keras"
        model.save(tmp)
        os.replace(tmp, self.project / "best_model.keras")
        atomic_write_json(self.project / "best_trial.json",
                          {"trial_id": trial_id, OBJECTIVE: float(row[OBJECTIVE]),
                           "hyperparameters": {k: _plain(row[k]) for k in PARAMS}})

    def _fail(self, trial_dir: Path, record: dict, reason: str) -> None:
        record.update(status="failed", reason=reason)
        atomic_write_json(trial_dir / "emotune.json", record)

    def _pruner(self) -> Callable[[int, dict], bool] | None:
        if not self.study.prune or self.study.strategy == "hyperband":
            return None
        cfg = self.space.base.search
        # One-at-a-time sweeps ask of each value "better than the default?", so the default's
        # curve is the bar. The median of all finished trials would mix the sweeps: in the
        # full GRU study the fast-learning lr values set it, and every dropout value was
        # stopped at epoch 2 though three of them end above the default.
        like = hp_values(self.space.base) if self.study.sweep else None
        if self._finished_curves is None:
            self._finished_curves = _finished_curves(self.project, like)
        min_trials = 1 if self.study.sweep else cfg.prune_min_trials  # the default's curve
        return median_stopping(self._finished_curves, cfg.prune_warmup, min_trials)


def median_stopping(finished: list[list[float]], warmup: int,
                    min_trials: int) -> Callable[[int, dict], bool]:
    """The per-epoch pruning hook of one trial: it keeps the trial's best val accuracy."""
    seen: list[float] = []

    def rule(epoch: int, logs: dict) -> bool:
        value = logs.get("val_accuracy", math.nan)
        if not math.isnan(value):
            seen.append(value)
        return should_prune(epoch, max(seen, default=math.nan), finished, warmup, min_trials)

    return rule


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _finished_curves(project: Path, like: dict[str, Any] | None = None) -> list[list[float]]:
    """Per-epoch val accuracy of each completed trial (first seed), for the pruning rule;
    with ``like``, only of the trials with those parameter values."""
    import pandas as pd

    from emotune.analysis import same_setting

    curves = []
    for d in trial_dirs(project):
        rec = d / "emotune.json"
        record = read_json(rec) if rec.is_file() else {}
        if like is not None and not all(same_setting(record.get("hyperparameters", {}).get(k), v)
                                        for k, v in like.items()):
            continue
        if record.get("status") == "completed" and (d / "history.csv").is_file():
            h = pd.read_csv(d / "history.csv")
            h = h[h["seed"] == h["seed"].iloc[0]]
            curves.append(h["val_accuracy"].tolist())
    return curves


def _failed_trial(reason: str) -> Exception:
    from keras_tuner.errors import FailedTrialError

    return FailedTrialError(reason)


def _fatal(reason: str) -> Exception:
    from keras_tuner.errors import FatalError

    return FatalError(reason)


def _resource_reason(e: Exception, config: Config) -> str | None:
    """A reason if ``e`` is a failure of this trial alone (memory), else None."""
    name = type(e).__name__
    if isinstance(e, MemoryError) or name == "ResourceExhaustedError":
        return (f"out of memory with batch_size={config.train.batch_size}, "
                f"units={config.model.units}; lower them")
    return None


def make_tuner(oracle: Any, hypermodel: Any, *, study: StudySpec, space: SearchSpace,
               project: Path, overwrite: bool, keep_models: bool = False,
               budget_s: float | None = None) -> Any:
    """An ``EmotuneTuner`` over KerasTuner's project ``project/kt``."""
    base = _tuner_base()

    class EmotuneTuner(_TunerMixin, base):  # type: ignore[misc, valid-type]
        pass

    with contextlib.redirect_stdout(io.StringIO()):  # KerasTuner prints "Reloading Tuner..."
        tuner = EmotuneTuner(oracle=oracle, hypermodel=hypermodel, directory=str(project),
                             project_name=KT_DIR, overwrite=overwrite)
    tuner._setup(study, space, project, keep_models, budget_s)
    _pause_while_idle(tuner)
    return tuner


def _pause_while_idle(tuner: Any) -> None:
    """A worker whose oracle answers IDLE (others still running) asks again once a second,
    rather than in a tight loop of gRPC calls as KerasTuner's search loop does."""
    from keras_tuner.src.distribute import utils as dist_utils

    if not dist_utils.has_chief_oracle() or dist_utils.is_chief_oracle():
        return
    create = tuner.oracle.create_trial

    def create_trial(tuner_id: str) -> Any:
        trial = create(tuner_id)
        if trial.status == "IDLE":
            time.sleep(1)
        return trial

    tuner.oracle.create_trial = create_trial


def _grid_oracle(**kwargs: Any) -> Any:
    import keras_tuner as kt

    class ResumableGridOracle(kt.Oracle):
        """Grid search whose position is derived from the trials already tried.

        KerasTuner 1.4.8's GridSearchOracle keeps its position in memory only and fails with
        a KeyError when a study is reloaded (keras-team/keras-tuner#1055). Here the next
        combination is the first one, in grid order (each value list default first), that no
        trial has taken; the set of taken ones is part of the Oracle's saved state.
        """

        def populate_space(self, trial_id: str) -> dict[str, Any]:
            space = self.get_space().space
            grids = [[hp.default, *(v for v in hp.values if v != hp.default)] for hp in space]
            for combo in itertools.product(*grids):
                values = {hp.name: v for hp, v in zip(space, combo)}
                if not self._duplicate(values):
                    return {"status": "RUNNING", "values": values}
            if self.ongoing_trials:
                return {"status": "IDLE", "values": None}
            return {"status": "STOPPED", "values": None}

    return ResumableGridOracle(**kwargs)


def make_oracle(study: StudySpec, config: Config) -> Any:
    import keras_tuner as kt

    objective = kt.Objective(OBJECTIVE, direction="max")
    seed = config.train.seed
    common = {"objective": objective, "seed": seed, "max_consecutive_failed_trials": 10**6}
    if study.sweep or study.strategy == "grid":
        return _grid_oracle(max_trials=study.trials, **common)
    if study.strategy == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(max_trials=study.trials, **common)
    if study.strategy == "random":
        return kt.oracles.RandomSearchOracle(max_trials=study.trials, **common)
    return kt.oracles.HyperbandOracle(max_epochs=config.train.epochs,
                                      factor=config.search.hyperband_factor,
                                      hyperband_iterations=1, **common)


# ---------------------------------------------------------------- a whole study


@dataclass
class SearchOutcome:
    trials: Any  # DataFrame, as trials.csv
    project: Path
    trained_now: int
    budget_spent: bool
    seconds: float


def _study_record(study: StudySpec, config: Config, checksum: str) -> dict[str, Any]:
    """What a resumed study must match: the study, its base settings, its data."""
    base = config.to_dict()
    sweeps = base.pop("search")["sweeps"]
    return {"study": dataclasses.asdict(study), "base_config": base, "data_checksum": checksum,
            "sweeps": {n: sweeps[n] for n in study.params}}


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


# Where the data and the cache live may change between runs; the data checksum may not.
RELOCATABLE = ("base_config.data.path", "base_config.embeddings.cache_dir")


def _check_resumable(project: Path, record: dict[str, Any]) -> None:
    saved = _flat(read_json(project / "study.json"))
    new = _flat(json.loads(json.dumps(record)))
    diff = sorted(k for k in set(saved) | set(new)
                  if saved.get(k) != new.get(k) and k not in RELOCATABLE)
    if diff:
        shown = ", ".join(k.split(".", 1)[-1] for k in diff[:6])
        raise EmotuneError(
            f"{project} holds a different study (differs in {shown}); rerun it with its own "
            f"settings to resume, add --overwrite to start over, or choose another --project")


def real_trainer_and_builder(prepared: Any, embedding: Any) -> tuple[Trainer, Builder]:
    """Training and model building on the prepared data, shared by every trial."""
    from emotune.models import build_model
    from emotune.train import fit

    def trainer(config: Config, **kwargs: Any) -> Any:
        return fit(config, prepared, embedding, **kwargs)

    def builder(config: Config) -> Any:
        return build_model(config.model, config.train, embedding.matrix, prepared.num_classes)

    return trainer, builder


def run_search(study: StudySpec, config: Config, prepared: Any, embedding: Any = None, *,
               project: Path, overwrite: bool = False, keep_models: bool = False,
               budget_s: float | None = None, trainer: Trainer | None = None,
               builder: Builder | None = None, lock: bool = True) -> SearchOutcome:
    """Run (or resume) ``study``; ``trainer`` and ``builder`` replace training in tests.

    ``lock``: hold the project's lock (``results.study_lock``) so that a second search into it
    is refused. The chief and workers of ``--workers`` pass False: their supervisor holds it.
    """
    hold = study_lock(project) if lock else contextlib.nullcontext()
    with hold:
        return _run_search(study, config, prepared, embedding, project=project,
                           overwrite=overwrite, keep_models=keep_models, budget_s=budget_s,
                           trainer=trainer, builder=builder)


def _run_search(study: StudySpec, config: Config, prepared: Any, embedding: Any, *,
                project: Path, overwrite: bool, keep_models: bool, budget_s: float | None,
                trainer: Trainer | None, builder: Builder | None) -> SearchOutcome:
    space = SearchSpace(config, list(study.params), study.sweep)
    record = _study_record(study, config, prepared.checksum)
    if overwrite:
        clear_project(project)
    if (project / "study.json").is_file():
        _check_resumable(project, record)
    project.mkdir(parents=True, exist_ok=True)
    atomic_write_json(project / "study.json", record)
    if trainer is None or builder is None:
        trainer, builder = real_trainer_and_builder(prepared, embedding)
    hypermodel = make_hypermodel(space, builder, trainer)
    tuner = make_tuner(make_oracle(study, config), hypermodel, study=study, space=space,
                       project=project, overwrite=False, keep_models=keep_models,
                       budget_s=budget_s)
    tuner.oracle.verbose = 0
    done_before = len(load_trials(project)) if (project / KT_DIR).is_dir() else 0
    if done_before:
        log(f"resuming {project}: {done_before} trials on disk")
    start = time.monotonic()
    spent = False
    try:
        tuner.search()
    except BudgetSpent:
        spent = True
    except Exception as e:
        from keras_tuner.errors import FatalError

        if isinstance(e, FatalError):
            raise EmotuneError(f"search stopped: {e} (finished trials are kept in {project}; "
                               f"fix the cause and rerun to resume; --debug shows the "
                               f"traceback)") from e
        raise
    frame = write_trials_csv(project)
    return SearchOutcome(frame, project, tuner.trained_now, spent, time.monotonic() - start)
