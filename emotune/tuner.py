"""emotune's KerasTuner classes: the HyperModel, the Tuner and the resumable grid Oracle.

KerasTuner's split is kept: the Oracle proposes hyperparameter values and never trains;
``EmotuneHyperModel.build(hp)`` returns the model that ``fit`` then trains; ``EmotuneTuner``
runs each trial through KerasTuner's hooks and logs it. What a trial leaves on disk is written
by ``results.py``. Importing this module imports KerasTuner (and TensorFlow with it), so
``search.py`` imports it only when a search runs and ``emotune --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras_tuner as kt
from keras_tuner.engine.base_tuner import BaseTuner

from emotune import results
from emotune.config import Config, override, plain
from emotune.errors import ConfigError, TrainingError
from emotune.progress import log
from emotune.search import OBJECTIVE, StudySpec, median_stopping
from emotune.space import PARAMS, POINT, SearchSpace, hp_values, sweeps_of

Trainer = Callable[..., Any]  # (config, model=..., on_epoch=..., prefix=...) -> TrainResult
Builder = Callable[[Config], Any]  # config -> a compiled Keras model (None in search tests)
IDLE_WAIT_S = 1.0  # a worker told "wait, others are running" asks again after this long


class BudgetSpent(Exception):
    """Raised between trials when the time budget is used up."""


class EmotuneHyperModel(kt.HyperModel):
    """``hp`` -> Config -> model: ``build(hp)`` returns the model that ``fit`` trains.

    Batch size, epochs and the seed come from the Config the hyperparameters map to, so they
    are tuned in ``fit`` as KerasTuner intends.

    Args:
        space: the study's search space (declares ``hp``, maps values to a Config).
        build: Config -> compiled Keras model (seeded by ``config.train.seed``).
        train: ``train(config, model=..., **kwargs)`` -> ``train.TrainResult``.
    """

    def __init__(self, space: SearchSpace, build: Builder, train: Trainer) -> None:
        super().__init__(name="emotune")
        self.space, self.builder, self.trainer = space, build, train

    def config(self, hp: kt.HyperParameters, seed: int | None = None) -> Config:
        config = self.space.config_for(hp.values)
        return config if seed is None else override(config, {"train.seed": seed})

    def declare_hyperparameters(self, hp: kt.HyperParameters) -> None:
        self.space.declare(hp)

    def build(self, hp: kt.HyperParameters, seed: int | None = None) -> Any:
        return self.builder(self.config(hp, seed))

    def fit(self, hp: kt.HyperParameters, model: Any, *, seed: int | None = None,
            **kwargs: Any) -> Any:
        return self.trainer(self.config(hp, seed), model=model, **kwargs)


class EmotuneTuner(BaseTuner):
    """Runs a study's trials: one build and one fit per seed, the pruning hook, the logs.

    It owns ``run_trial`` so that no checkpoint is written per improving epoch (KerasTuner
    issue #288): only the best trial's model is kept (``best_model.keras``), every trial's
    with ``keep_models``. A failure of one trial alone (NaN loss, out of memory, an invalid
    value) is KerasTuner's ``FailedTrialError``: recorded with its reason, and the search goes
    on; anything else would fail every trial and is a ``FatalError`` that stops it.

    Args:
        oracle: a KerasTuner Oracle (``make_oracle``).
        hypermodel: an ``EmotuneHyperModel``.
        study: what the study searches.
        project: the study folder; KerasTuner's own project is ``project/kt``.
        keep_models: keep every trial's model, not only the best one.
        budget_s: start no new trial after this many seconds.
    """

    def __init__(self, oracle: kt.Oracle, hypermodel: EmotuneHyperModel, *, study: StudySpec,
                 project: Path, keep_models: bool = False, budget_s: float | None = None
                 ) -> None:
        self.study, self.space, self.project = study, hypermodel.space, project
        self.keep_models, self.budget_s = keep_models, budget_s
        self.started = time.monotonic()
        self.trained_now = 0  # trials this process ran
        self._curves: list[list[float]] | None = None  # finished trials', for pruning
        self._last_model: Any = None
        self._asked = self._began = False  # for the idle wait in pre_create_trial
        with contextlib.redirect_stdout(io.StringIO()):  # "Reloading Tuner from ..."
            super().__init__(oracle=oracle, hypermodel=hypermodel, directory=str(project),
                             project_name=results.KT_DIR, overwrite=False)

    def _populate_initial_space(self) -> None:
        # KerasTuner's version also builds the model (once per conditional scope) to discover
        # hyperparameters declared inside build(); emotune declares its whole space up front
        # and has no conditional ones, so that build would compile a model for nothing.
        # BaseTuner documents this method as the one to override for that purpose.
        hp = self.oracle.get_space()
        self.hypermodel.declare_hyperparameters(hp)
        self.oracle.update_space(hp)

    # -- KerasTuner's hooks

    def pre_create_trial(self) -> None:
        # KerasTuner's loop asks again at once when the oracle answers IDLE (a worker whose
        # next trial waits for others): a tight loop of gRPC calls. A trial that began since
        # the last ask means there was no IDLE answer.
        if self._asked and not self._began:
            time.sleep(IDLE_WAIT_S)
        self._asked, self._began = True, False
        if self.budget_s is not None and time.monotonic() - self.started >= self.budget_s:
            raise BudgetSpent()

    def on_trial_begin(self, trial: kt.engine.trial.Trial) -> None:
        self._began = True
        total = self.space.size() or self.study.trials
        n = int(trial.trial_id) + 1
        values = trial.hyperparameters.values
        what = values[POINT] if self.study.sweep else " ".join(
            f"{k}={v}" for k, v in values.items() if k in PARAMS)
        log(f"trial {n}{f'/{total}' if total else ''}: {what}")

    def run_trial(self, trial: kt.engine.trial.Trial, *args: Any, **kwargs: Any
                  ) -> dict[str, float]:
        hp = trial.hyperparameters
        config = self.space.config_for(hp.values)
        trial_dir = Path(self.get_trial_dir(trial.trial_id))
        values = hp_values(config)
        earlier = results.read_trial_record(trial_dir)
        if earlier.get("status") in ("completed", "pruned") and earlier.get("runs") and \
                earlier.get("hyperparameters") == values:
            # Trained to the end before the search died, but before KerasTuner recorded the
            # trial's end: its numbers stand (its model was not kept).
            log("  trained before the interruption; its recorded numbers are kept")
            return _mean_metrics(earlier["runs"])
        record: dict[str, Any] = {
            "status": "running", "reason": "", "hyperparameters": values,
            "sweeps": sweeps_of(values, self.space.base, list(self.study.params))
            if self.study.sweep else [],
            "epochs": config.train.epochs, "runs": [], "tuner_id": self.tuner_id,
        }
        results.write_trial_record(trial_dir, record)
        self.trained_now += 1
        histories, pruned = [], False
        best_model, best_acc = None, -1.0
        for k in range(self.study.repeats):
            seed = config.train.seed + k
            result = self._fit_one(hp, seed, config, trial_dir, record)
            record["runs"].append({"seed": seed, **result.metrics})
            pruned = pruned or result.stopped_by_hook
            histories.append(result.history.assign(seed=seed))
            if result.metrics["val_accuracy"] > best_acc:
                best_model, best_acc = result.model, result.metrics["val_accuracy"]
        results.write_trial_history(trial_dir, histories)
        record["status"] = "pruned" if pruned else "completed"
        results.write_trial_record(trial_dir, record)
        self._last_model = best_model
        return _mean_metrics(record["runs"])

    def on_trial_end(self, trial: kt.engine.trial.Trial) -> None:
        super().on_trial_end(trial)  # the oracle records it
        frame = results.write_trials_csv(self.project)
        self._curves = None
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
        if model is None:
            return
        if self.keep_models:
            self.save_model(trial.trial_id, model)
        if best["trial_id"] == trial.trial_id:
            results.save_best_model(self.project, model, trial.trial_id,
                                    {OBJECTIVE: float(row[OBJECTIVE]),
                                     "hyperparameters": {k: plain(row[k]) for k in PARAMS}})

    def save_model(self, trial_id: str, model: Any, step: int = 0) -> None:
        results.save_keras_model(model, Path(self.get_trial_dir(trial_id)) / "model.keras")

    def load_model(self, trial: kt.engine.trial.Trial) -> Any:
        import keras

        return keras.models.load_model(results.trial_model_path(self.project, trial.trial_id))

    # -- one seed of a trial

    def _fit_one(self, hp: kt.HyperParameters, seed: int, config: Config, trial_dir: Path,
                 record: dict[str, Any]) -> Any:
        try:
            model = self.hypermodel.build(hp, seed=seed)
            return self.hypermodel.fit(hp, model, seed=seed, on_epoch=self._pruner(),
                                       prefix="  ")
        except (TrainingError, ConfigError) as e:
            reason, cause = str(e), None
        except Exception as e:
            reason = _resource_reason(e, config)
            cause = e if reason is None else None  # kept for --debug's traceback
            reason = reason or f"{type(e).__name__}: {e}"
        record.update(status="failed", reason=reason)
        results.write_trial_record(trial_dir, record)
        error = kt.errors.FatalError(reason) if cause else kt.errors.FailedTrialError(reason)
        raise error from cause

    def _pruner(self) -> Callable[[int, dict], bool] | None:
        if not self.study.prune or self.study.strategy == "hyperband":
            return None
        cfg = self.space.base.search
        # One-at-a-time sweeps ask of each value "better than the default?", so the default's
        # curve is the bar. The median of all finished trials would mix the sweeps: in the
        # full GRU study the fast-learning lr values set it, and every dropout value was
        # stopped at epoch 2 though three of them end above the default.
        like = hp_values(self.space.base) if self.study.sweep else None
        if self._curves is None:
            self._curves = results.finished_curves(self.project, like)
        min_trials = 1 if self.study.sweep else cfg.prune_min_trials  # the default's curve
        return median_stopping(self._curves, cfg.prune_warmup, min_trials)


def _mean_metrics(runs: list[dict[str, Any]]) -> dict[str, float]:
    """The objective and its companions for KerasTuner: means over the trial's seeds."""
    return {m: sum(r[m] for r in runs) / len(runs)
            for m in ("val_accuracy", "val_loss", "val_macro_f1", "best_epoch")}


def _resource_reason(e: Exception, config: Config) -> str | None:
    """A reason if ``e`` is a failure of this trial alone (memory), else None."""
    if isinstance(e, MemoryError) or type(e).__name__ == "ResourceExhaustedError":
        return (f"out of memory with batch_size={config.train.batch_size}, "
                f"units={config.model.units}; lower them")
    return None


class ResumableGridOracle(kt.Oracle):
    """Grid search whose position is derived from the trials already tried.

    KerasTuner 1.4.8's GridSearchOracle keeps its position in memory only and fails with a
    KeyError when a study is reloaded (keras-team/keras-tuner#1055). Here the next combination
    is the first one, in grid order (each value list default first), that no trial has taken;
    the set of taken ones is part of the Oracle's saved state.
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


def make_oracle(study: StudySpec, config: Config) -> kt.Oracle:
    """The Oracle of ``study``: the resumable grid for sweeps and grid searches, KerasTuner's
    own for the Bayesian, random and Hyperband strategies."""
    objective = kt.Objective(OBJECTIVE, direction="max")
    # KerasTuner stops a search after N consecutive FailedTrialErrors (default 3). Those are
    # each one trial's own failure (a sweep of high learning rates may diverge several times
    # in a row), and emotune records them and goes on; an error that would fail every trial
    # is a FatalError and stops the search at once.
    common = {"objective": objective, "seed": config.train.seed,
              "max_consecutive_failed_trials": 10**6}
    if study.sweep or study.strategy == "grid":
        return ResumableGridOracle(max_trials=study.trials, **common)
    if study.strategy == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(max_trials=study.trials, **common)
    if study.strategy == "random":
        return kt.oracles.RandomSearchOracle(max_trials=study.trials, **common)
    return kt.oracles.HyperbandOracle(max_epochs=config.train.epochs,
                                      factor=config.search.hyperband_factor,
                                      hyperband_iterations=1, **common)

