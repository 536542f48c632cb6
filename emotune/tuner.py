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
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras_tuner as kt
from keras_tuner.engine.base_tuner import BaseTuner

from emotune import results
from emotune.cluster import is_worker
from emotune.config import Config, override, plain
from emotune.errors import ConfigError, TrainingError
from emotune.noise import Candidate, contenders, mean_std, noise
from emotune.progress import log
from emotune.provenance import provenance
from emotune.scores import Objective, objective
from emotune.search import RACING_NEEDS, StudySpec, median_stopping
from emotune.space import PARAMS, POINT, REPEAT, SearchSpace, hp_values, sweeps_of

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
        n_val: the number of validation texts (the noise of the pruning rule).
        keep_models: keep every trial's model, not only the best one.
        budget_s: start no new trial after this many seconds.
        tensorboard: write TensorBoard event files (``emotune.tensorboard``) into
            ``project/tensorboard``: per seed every epoch's scalars, per trial the HParams
            summary with the trial's numbers.
    """

    def __init__(self, oracle: kt.Oracle, hypermodel: EmotuneHyperModel, *, study: StudySpec,
                 project: Path, n_val: int, keep_models: bool = False,
                 budget_s: float | None = None, tensorboard: bool = False) -> None:
        self.study, self.space, self.project = study, hypermodel.space, project
        self.goal = objective(study.objective)
        self.n_val = n_val  # validation texts: the pruning rule's noise
        self.keep_models, self.budget_s = keep_models, budget_s
        self.tensorboard = tensorboard
        self.started = time.monotonic()
        self.trained_now = 0  # trials this process ran
        self._curves: list[list[float]] | None = None  # finished trials', for pruning
        self._last_model: Any = None
        self._asked = self._began = False  # for the idle wait in pre_create_trial
        # A worker's lines name their trial: with --workers, two trials' epochs interleave on
        # one terminal.
        self._worker = is_worker()
        self._indent = "  "  # before a trial's lines; set per trial in on_trial_begin
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
        repeat = values.get(REPEAT, 0)
        if repeat:
            seed = self.space.base.train.seed + repeat
            what += f" (seed {seed}: racing, within noise of the best)"
        # the id is trials.csv's; a racing study numbers its seeds among the first round's
        # trials: no "24/19"
        of = f" ({n}/{total})" if total and not self.study.racing else ""
        log(f"trial {trial.trial_id}{of}: {what}")
        self._indent = f"  [trial {trial.trial_id}] " if self._worker else "  "

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
            log(f"{self._indent}trained before the interruption; its recorded numbers are kept")
            return _mean_metrics(earlier["runs"], earlier["status"] == "pruned")
        record: dict[str, Any] = {
            "status": "running", "reason": "", "hyperparameters": values,
            "sweeps": sweeps_of(values, self.space.base, list(self.study.params))
            if self.study.sweep else [],
            "epochs": config.train.epochs, "repeat": hp.values.get(REPEAT, 0), "runs": [],
            "tuner_id": self.tuner_id, "provenance": provenance(),
        }
        results.write_trial_record(trial_dir, record)
        self.trained_now += 1
        histories, pruned = [], False
        best_model, best_score = None, -math.inf
        repeat = hp.values.get(REPEAT, 0)  # racing: this trial is the value's extra seed
        for k in range(self.study.repeats):
            seed = config.train.seed + repeat + k
            result = self._fit_one(hp, seed, config, trial_dir, record, prune=repeat == 0,
                                   board=self._board(trial.trial_id) / f"seed-{seed}"
                                   if self.tensorboard else None)
            record["runs"].append({"seed": seed, **result.metrics})
            pruned = pruned or result.stopped_by_hook
            histories.append(result.history.assign(seed=seed))
            score = self.goal.signed(result.metrics[self.goal.name])
            if best_model is None or score > best_score:
                best_model, best_score = result.model, score
        results.write_trial_history(trial_dir, histories)
        record["status"] = "pruned" if pruned else "completed"
        results.write_trial_record(trial_dir, record)
        self._last_model = best_model
        metrics = _mean_metrics(record["runs"], pruned)
        if self.tensorboard:
            from emotune.tensorboard import TRIAL_METRICS, write_run_summary

            shown = {p: values[p] for p in self.study.params}
            write_run_summary(self._board(trial.trial_id), shown,
                              {**{m: metrics.get(m) for m in TRIAL_METRICS},
                               "pruned": metrics["pruned"]}, f"trial_{trial.trial_id}")
        return metrics

    def _board(self, trial_id: str) -> Path:
        from emotune.tensorboard import DIR

        return self.project / DIR / f"trial_{trial_id}"

    def _best(self, frame: Any) -> Any:
        """The row of ``frame`` with the best objective."""
        column = frame[self.goal.name]
        return frame.loc[column.idxmax() if self.goal.maximize else column.idxmin()]

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
        complete = done[done["status"] == "completed"]
        pruned = " (pruned: a lower bound)" if row["status"] == "pruned" else ""
        name = self.goal.name
        best = None if complete.empty else self._best(complete)
        so_far = "no trial ran to the end yet" if best is None else (
            f"best so far {best[name]:.4f} (trial {best['trial_id']})")
        log(f"{self._indent}{self.goal.label} {row[name]:.4f}{pruned} in {row['seconds']:.0f}s; "
            f"{so_far}, {len(done)} trials done")
        model, self._last_model = self._last_model, None
        if model is None:
            return
        if self.keep_models:
            self.save_model(trial.trial_id, model)
        if best is not None and best["trial_id"] == trial.trial_id:
            results.save_best_model(self.project, model, trial.trial_id,
                                    {name: float(row[name]),
                                     "hyperparameters": {k: plain(row[k]) for k in PARAMS}})

    def save_model(self, trial_id: str, model: Any, step: int = 0) -> None:
        results.save_keras_model(model, Path(self.get_trial_dir(trial_id)) / "model.keras")

    def load_model(self, trial: kt.engine.trial.Trial) -> Any:
        import keras

        import emotune.layers  # noqa: F401  (registers the custom layers for loading)

        return keras.models.load_model(results.trial_model_path(self.project, trial.trial_id))

    # -- one seed of a trial

    def _fit_one(self, hp: kt.HyperParameters, seed: int, config: Config, trial_dir: Path,
                 record: dict[str, Any], prune: bool = True, board: Path | None = None) -> Any:
        try:
            model = self.hypermodel.build(hp, seed=seed)
            extra: dict[str, Any] = {}
            if board is not None:
                from emotune.tensorboard import EpochScalars

                extra["callbacks"] = (EpochScalars(board),)
            hook = self._pruner(config.train.epochs) if prune else None
            return self.hypermodel.fit(hp, model, seed=seed, on_epoch=hook, prefix=self._indent,
                                       **extra)
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

    def _pruner(self, epochs: int) -> Callable[[int, dict], bool] | None:
        if not self.study.prune or self.study.strategy == "hyperband":
            return None
        cfg = self.space.base.search
        # One-at-a-time sweeps ask of each value "better than the default?", so the default's
        # curve is the bar. The median of all finished trials would mix the sweeps: in the
        # full GRU study the fast-learning lr values set it, and every dropout value was
        # stopped at epoch 2 though three of them end above the default.
        like = hp_values(self.space.base) if self.study.sweep else None
        min_trials = 1 if self.study.sweep else cfg.prune_min_trials  # the default's curve
        goal, monitor = self.goal.name, self.space.base.train.monitor

        def finished() -> list[list[float]]:
            # Read again until there is a bar: with several workers the default (or enough
            # trials for a median) may finish while this trial runs. A sweep's bar, the
            # default's curve, never changes once read; a median does, so a joint search
            # reads the finished trials at every epoch it checks.
            if self._curves is None or not self.study.sweep or len(self._curves) < min_trials:
                self._curves = results.finished_curves(self.project, like, goal, monitor)
            return self._curves

        known: dict[str, float | None] = {}

        def se() -> float | None:
            # macro-F1 and loss: the median bootstrap error of the finished trials (read
            # until one has it); accuracy uses each value's binomial error instead
            if goal == "val_accuracy":
                return None
            if known.get("se") is None:
                frame, column = results.load_trials(self.project), f"{goal}_se"
                done = (frame.loc[frame["status"] == "completed", column].dropna()
                        if len(frame) and column in frame else [])
                known["se"] = float(done.median()) if len(done) else None
            return known["se"]

        return median_stopping(finished, cfg.prune_warmup, min_trials, self.n_val,
                               cfg.prune_z, objective=goal, monitor=monitor, se=se,
                               epochs=epochs)


REPORTED = ("val_accuracy", "val_loss", "val_macro_f1", "val_micro_f1", "best_epoch",
            "val_accuracy_se", "val_loss_se", "val_macro_f1_se", "val_micro_f1_se")


def _mean_metrics(runs: list[dict[str, Any]], pruned: bool) -> dict[str, float]:
    """The objectives and their companions for KerasTuner: means over the trial's seeds (the
    bootstrap errors where a run has them), and whether it was pruned (its objective then a
    lower bound, which racing must know)."""
    out = {m: sum(r[m] for r in runs) / len(runs)
           for m in REPORTED if all(r.get(m) is not None for r in runs)}
    return {**out, "pruned": float(pruned)}


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
    is derived from the trials already taken (part of the Oracle's saved state): the default
    one first (the pruning bar of a sweep), then, when the whole grid will run, the longest
    expected of the rest (``cost``), so that with several workers the last one is not left
    alone with a long trial; a grid capped by ``max_trials`` keeps grid order (each value
    list default first), so the cap decides which combinations run, not their cost.

    Args:
        cost: a combination's relative expected training time (``SearchSpace.cost``); None:
            grid order throughout.
    """

    def __init__(self, *, cost: Callable[[dict[str, Any]], float] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cost = cost
        self._costs: dict[str, float] = {}

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        values = self.next_combination()
        return self._answer(values)

    def _cap(self) -> int | None:
        """How many combinations the grid runs at most (None: all)."""
        return self.max_trials

    def expected_cost(self, values: dict[str, Any]) -> float:
        key = _race_key(values)
        if key not in self._costs:
            self._costs[key] = self.cost(values) if self.cost else 0.0
        return self._costs[key]

    def next_combination(self, **fixed: Any) -> dict[str, Any] | None:
        """The next combination no trial has taken (``fixed`` values set alongside, e.g.
        ``repeat=0``): the default one, then the longest expected (grid order for ties and
        for a capped grid); None when all have been."""
        untaken, ordered = self.untaken(**fixed)
        if not untaken or ordered or untaken[0] == self._default(**fixed):
            return untaken[0] if untaken else None
        return max(untaken, key=self.expected_cost)  # the first of equals: grid order

    def untaken(self, **fixed: Any) -> tuple[list[dict[str, Any]], bool]:
        """The combinations no trial has taken, in grid order, and whether that order is to
        be kept (no ``cost``, or a grid capped below its size)."""
        space = [hp for hp in self.get_space().space if hp.name not in fixed]
        grids = [[hp.default, *(v for v in hp.values if v != hp.default)] for hp in space]
        combos = ({**{hp.name: v for hp, v in zip(space, combo)}, **fixed}
                  for combo in itertools.product(*grids))
        cap = self._cap()
        ordered = self.cost is None or (cap is not None and
                                        cap < math.prod(len(g) for g in grids))
        return [v for v in combos if not self._duplicate(v)], ordered

    def _default(self, **fixed: Any) -> dict[str, Any]:
        return {**{hp.name: hp.default for hp in self.get_space().space
                   if hp.name not in fixed}, **fixed}

    def _answer(self, values: dict[str, Any] | None) -> dict[str, Any]:
        if values is not None:
            return {"status": "RUNNING", "values": values}
        if self.ongoing_trials:
            return {"status": "IDLE", "values": None}
        return {"status": "STOPPED", "values": None}


class RacingOracle(ResumableGridOracle):
    """The grid once with one seed each, then racing (``--repeats auto[:MAX]``).

    Once every value of a race (a sweep, or the whole grid) has its first result, the values
    still within noise of the best (``noise.contenders``) get one more seed each, fewest seeds
    first, up to ``race`` seeds; a value clearly behind never gets a second. Everything is
    derived from the trials on record (finished and running), so a resumed study makes the
    same decisions; a value's next seed joins the queue as soon as its race allows it.

    A value's next seed normally waits for its running one, which may separate it from the
    best. With ``--workers``, a worker that would otherwise wait for others takes such a seed
    at once (``ahead``): in the GRU main job the units race (two values of 3-5 minutes a seed,
    raced one seed at a time) left one worker idle for 16 of the study's 42 minutes. A seed
    taken ahead may prove unneeded (with more workers, several of one value may be); it is
    trained and counted like any other (never more than ``race`` seeds a value), so it can
    only add evidence, but a study with workers may then rest on more seeds of a value than
    one process would give it. One process never runs two trials at once and never takes one
    ahead.

    Args:
        race: the most seeds a value gets.
        n_val: validation texts (the binomial noise floor).
        space: the study's ``SearchSpace`` (which races a configuration runs in).
        first_round: a grid search's ``--trials``: at most this many configurations (their
            extra seeds do not count against it); None for sweeps.
    """

    def __init__(self, *, race: int, n_val: int, space: SearchSpace,
                 first_round: int | None = None, **kwargs: Any) -> None:
        super().__init__(max_trials=None, **kwargs)
        self.race, self.n_val, self.space = race, n_val, space
        self.first_round = first_round

    def _cap(self) -> int | None:
        return self.first_round

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        """The next trial: of the next first-round configuration and the next racing seed
        (``_race_values``), the longer expected one; a seed joins the queue as soon as its
        race allows it, not after the whole first round."""
        firsts = sum(1 for t in self.trials.values()
                     if t.hyperparameters.values.get(REPEAT, 0) == 0)
        first, waiting = None, set()
        if self.first_round is None or firsts < self.first_round:
            first = self.next_combination(**{REPEAT: 0})
            # a race starts once every value of it has been tried
            waiting = {g for v in self.untaken(**{REPEAT: 0})[0] for g in self.space.groups(v)}
        # a worker with no first-round trial left may take a seed ahead rather than wait
        seed = _race_values(self.trials.values(), self.race, self.n_val, self.space.groups,
                            self.expected_cost, waiting, objective(self.objective.name),
                            ahead=first is None and bool(self.ongoing_trials))
        if first is not None and seed is not None and self.cost is not None:
            # the longer expected; on a tie the untried value (max keeps the first)
            return self._answer(max((first, seed), key=self.expected_cost))
        return self._answer(first if first is not None else seed)


def _race_key(values: dict[str, Any]) -> str:
    import json

    return json.dumps({k: v for k, v in values.items()
                       if k != REPEAT and not k.startswith("tuner/")}, sort_keys=True)


def _race_values(trials: Any, race: int, n_val: int,
                 groups: Callable[[dict[str, Any]], list[str]],
                 cost: Callable[[dict[str, Any]], float] = lambda values: 0.0,
                 waiting: set[str] = frozenset(), goal: Objective | None = None,
                 ahead: bool = False) -> dict[str, Any] | None:
    """The next racing trial's values, or None: see ``RacingOracle``. Races in ``waiting``
    still have values to try. Of the contenders with a seed to go, the one with the fewest
    seeds, then the longest expected (``cost``), then the first tried. Values are compared
    on ``goal`` (val accuracy by default; a loss negated), with its noise: binomial for
    accuracy, the trials' bootstrap error otherwise. A contender with a seed running waits
    for it; with ``ahead``, it is taken when no other contender has a seed to go."""
    goal = goal or objective(None)
    floor_of = None if goal.name == "val_accuracy" else f"{goal.name}_se"
    points: dict[str, dict[str, Any]] = {}
    for trial in sorted(trials, key=lambda t: t.trial_id):
        values = dict(trial.hyperparameters.values)
        p = points.setdefault(_race_key(values), {
            "values": values, "accs": [], "ses": [], "pruned": False, "running": False,
            "taken": set(),
            "first_done": False, "order": len(points)})
        repeat = values.get(REPEAT, 0)
        p["taken"].add(repeat)
        if trial.status in ("RUNNING", "IDLE"):
            p["running"] = True
            continue
        p["first_done"] = p["first_done"] or repeat == 0
        if trial.status == "COMPLETED":
            if trial.metrics.exists("pruned") and trial.metrics.get_last_value("pruned"):
                p["pruned"] = True
            elif trial.metrics.exists(goal.name):
                p["accs"].append(goal.signed(trial.metrics.get_last_value(goal.name)))
                if floor_of and trial.metrics.exists(floor_of):
                    p["ses"].append(trial.metrics.get_last_value(floor_of))
    by_group: dict[str, list[dict[str, Any]]] = {}
    for p in points.values():
        for g in groups(p["values"]):
            by_group.setdefault(g, []).append(p)
    options: list[tuple[int, float, int, dict[str, Any]]] = []
    running: list[tuple[int, float, int, dict[str, Any]]] = []  # contenders taken only ahead
    for group, members in by_group.items():
        if group in waiting or not all(p["first_done"] for p in members):
            continue  # the race starts when every value of it has its first result
        cands = {}
        for p in members:
            if p["accs"]:
                mean, std = mean_std(p["accs"])
                floor = sum(p["ses"]) / len(p["ses"]) if p["ses"] else None
                se = noise(mean, std, len(p["accs"]),
                           n_val if goal.name == "val_accuracy" else None, floor)
                cands[id(p)] = Candidate(id(p), mean, se, p["pruned"])
        racing = [p for p in members if id(p) in {c.value for c in contenders(
            list(cands.values()))}]
        for p in racing:
            free = [r for r in range(race) if r not in p["taken"]]
            if free:
                (running if p["running"] else options).append(
                    (len(p["taken"]), -cost(p["values"]), p["order"],
                     {**p["values"], REPEAT: free[0]}))
    options = options or (running if ahead else [])
    return min(options, key=lambda o: o[:3])[3] if options else None


def make_oracle(study: StudySpec, config: Config, space: SearchSpace | None = None,
                n_val: int | None = None) -> kt.Oracle:
    """The Oracle of ``study``: the resumable grid for sweeps and grid searches (racing with
    ``study.race``), KerasTuner's own for the Bayesian, random and Hyperband strategies."""
    goal = objective(study.objective)
    # KerasTuner stops a search after N consecutive FailedTrialErrors (default 3). Those are
    # each one trial's own failure (a sweep of high learning rates may diverge several times
    # in a row), and emotune records them and goes on; an error that would fail every trial
    # is a FatalError and stops the search at once.
    common = {"objective": kt.Objective(goal.name, "max" if goal.maximize else "min"),
              "seed": config.train.seed,
              "max_consecutive_failed_trials": 10**6}
    if study.racing:
        if not (study.sweep or study.strategy == "grid") or study.repeats != 1:
            raise ConfigError(RACING_NEEDS)
        if space is None or not n_val:
            raise ValueError("racing needs the search space and the validation size")
        return RacingOracle(race=study.race, n_val=n_val, space=space,
                            first_round=study.trials, cost=space.cost, **common)
    if study.sweep or study.strategy == "grid":
        return ResumableGridOracle(max_trials=study.trials,
                                   cost=space.cost if space is not None else None, **common)
    if study.strategy == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(max_trials=study.trials, **common)
    if study.strategy == "random":
        return kt.oracles.RandomSearchOracle(max_trials=study.trials, **common)
    return kt.oracles.HyperbandOracle(max_epochs=config.train.epochs,
                                      factor=config.search.hyperband_factor,
                                      hyperband_iterations=1, **common)
