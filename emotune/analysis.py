"""Studies -> decisions. Pure functions over trials DataFrames; report.py draws their output.

A one-at-a-time study gives one ``Sweep`` per parameter (its values with the others at their
defaults); a joint study gives per-parameter marginals. Every number carries its noise
(``noise.py``: the binomial error of an accuracy on the validation texts, or the seeds' spread
where larger), and ``recommend`` chooses by the one-standard-error rule: among the values
within one standard error of the best, the one nearest the default, so that a choice changes
only when the evidence does. A pruned trial's number is a lower bound: shown, never chosen.
The expected val accuracy is measured when the recommended configuration was trained;
otherwise the best chosen change's measured numbers, stated as such (separate sweeps' gains
need not add up, so no sum is claimed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emotune.config import plain
from emotune.errors import EmotuneError
from emotune.noise import (
    Candidate,
    Choice,
    binomial_se,
    interval95,
    mean_std,
    noise,
    one_se_choice,
    paired_difference,
)
from emotune.results import load_trials, read_json
from emotune.scores import Objective, objective
from emotune.space import PARAMS, same_setting

# Trials whose numbers are shown. A pruned trial's val accuracy is what it reported when it
# was stopped, a lower bound of what it would have reached: shown (marked), never chosen.
DONE = ("completed", "pruned")


@dataclass(frozen=True)
class Point:
    """One value of a parameter (or one configuration) with its numbers and their noise."""

    value: Any
    val_accuracy: float  # mean over seeds (sweeps) or trials (joint marginals)
    val_accuracy_std: float  # sample std between them; nan with one
    val_loss: float
    val_loss_std: float
    n: int  # seeds (sweeps) or trials (joint marginals) behind the numbers
    trial_id: str = ""  # its (first) trial
    se: float = math.nan  # the noise of the mean (noise.noise); nan if unknown (no n_val)
    pruned: bool = False  # stopped early: its numbers are lower bounds
    by_seed: tuple[tuple[int, float], ...] = ()  # (seed, objective, higher better) per run

    n_val: int | None = None  # validation texts (the binomial error); None if unknown
    # The objective the study ranks by (scores.OBJECTIVES): its mean and spread over the
    # runs, and its measurement error on the validation texts (the bootstrap error of
    # macro-F1 or loss; nan for accuracy, whose binomial error follows from n_val).
    objective: str = "val_accuracy"
    score: float = math.nan
    score_std: float = math.nan
    floor: float = math.nan

    @property
    def interval(self) -> tuple[float, float]:
        """95% interval of the objective's mean (``noise.interval95``: 1.96 measurement
        errors, or Student's t over the seeds where wider); nan when the noise is unknown."""
        accuracy = self.objective == "val_accuracy"
        return interval95(self.score, self.score_std, self.n, self.n_val if accuracy else None,
                          None if accuracy else self.floor)

    def candidate(self) -> Candidate:
        """The objective as the noise rules compare it: higher is better (a loss negated)."""
        se = 0.0 if math.isnan(self.se) else self.se  # unknown noise: only exact ties
        return Candidate(self.value, objective(self.objective).signed(self.score), se,
                         self.pruned)


@dataclass(frozen=True)
class Sweep:
    """One parameter's values and what the one-standard-error rule chose among them."""

    param: str
    default: Any
    points: tuple[Point, ...]  # in sweep order
    choice: Choice

    @property
    def log_scale(self) -> bool:
        return PARAMS[self.param].log

    def _point(self, value: Any) -> Point:
        return next(p for p in self.points if not p.pruned and same_setting(p.value, value))

    @property
    def best(self) -> Point:
        """The highest mean among the values that ran to the end."""
        return self._point(self.choice.best.value)

    @property
    def chosen(self) -> Point:
        return self._point(self.choice.value)

    @property
    def default_point(self) -> Point | None:
        return None if self.choice.default is None else self._point(self.choice.default.value)

    @property
    def paired(self) -> tuple[float, float, int] | None:
        """Best minus default seed by seed (mean, 95% half-width, seeds) where they share two
        or more seeds; None otherwise, or when the default is the best."""
        best, base = self.best, self.default_point
        if base is None or best is base:
            return None
        return paired_difference(dict(best.by_seed), dict(base.by_seed))

    @property
    def best_margin(self) -> float:
        """How much the best beats the default on the objective (a loss: by how much lower);
        within the noise when the default is kept."""
        d = self.default_point
        return self.best.candidate().mean - d.candidate().mean if d is not None else math.nan


@dataclass(frozen=True)
class LoadedStudy:
    """A study folder read back: what it searched, and its trials."""

    path: Path
    name: str
    model: str
    strategy: str
    params: tuple[str, ...]
    repeats: int
    defaults: dict[str, Any]
    sweep_values: dict[str, list]
    trials: Any  # DataFrame
    record: dict[str, Any] = field(repr=False, default_factory=dict)
    ranked_by: str | None = None  # --objective of recommend/report: instead of the study's

    @property
    def sweep(self) -> bool:
        return self.strategy == "sweep"

    @property
    def goal(self) -> Objective:
        """What the study's trials are ranked by: ``ranked_by``, else the objective the
        search used (val accuracy for studies from before objectives)."""
        return objective(self.ranked_by or self.record.get("study", {}).get("objective"))

    @property
    def race(self) -> int:
        """The most seeds per value of a racing study (--repeats auto); 0 otherwise."""
        return int(self.record.get("study", {}).get("race", 0))

    @property
    def n_val(self) -> int | None:
        """Validation texts (the binomial noise floor); None for studies from before it was
        recorded (rerunning their search command records it and trains nothing)."""
        return self.record.get("n_val")

    @property
    def done(self) -> Any:
        return self.trials[self.trials["status"].isin(DONE)] if not self.trials.empty \
            else self.trials


def load_study(path: str | Path, objective: str | None = None) -> LoadedStudy:
    """A study folder read back: what it searched (``study.json``) and its trials.

    Args:
        path: a study folder written by ``emotune search``.
        objective: rank by this (``scores.OBJECTIVES``) instead of the study's own objective.

    Returns:
        A ``LoadedStudy``; ``.trials`` is ``results.load_trials(path)``, ``.done`` the trials
        whose numbers are shown (completed, or pruned: a lower bound).

    Raises:
        EmotuneError: ``path`` holds no study.json, or a file in it is damaged.
    """
    path = Path(path)
    if not (path / "study.json").is_file():
        raise EmotuneError(f"{path} is not an emotune study (no study.json); give the --project "
                           f"folder of an `emotune search`")
    record = read_json(path / "study.json")
    st = record["study"]
    base = record["base_config"]
    defaults = {n: _setting(base, p.key) for n, p in PARAMS.items()}
    trials = load_trials(path)
    for name, value in defaults.items():  # studies from before a parameter existed
        if name not in trials.columns:
            trials[name] = [value] * len(trials)
    for column in ("val_macro_f1", "val_macro_f1_se", "val_loss_se",  # older studies,
                   "val_micro_f1", "val_micro_f1_se"):  # single-label ones
        if column not in trials.columns:
            trials[column] = [math.nan] * len(trials)
    return LoadedStudy(path, path.name, st["model"], st["strategy"], tuple(st["params"]),
                       st["repeats"], defaults, record.get("sweeps", {}), trials, record,
                       objective)


def _setting(base: dict[str, Any], key: str) -> Any:
    """A setting of a study's recorded config; the current default if it predates it."""
    from emotune.config import Config

    section, name = key.split(".")
    if name in base.get(section, {}):
        return base[section][name]
    return plain(getattr(getattr(Config(), section), name))


def _runs(rows: Any, metric: str = "val_accuracy") -> list[tuple[int, float]]:
    """(seed, ``metric``) of every run of ``rows`` (trials.csv rows)."""
    out = []
    for _, r in rows.iterrows():
        seeds = str(r.get("seeds", "")).split()
        values = r.get(f"{metric}_by_seed", "")
        values = str(values).split() if isinstance(values, str) else []
        if len(values) == len(seeds) and seeds:
            out += [(int(s), float(a)) for s, a in zip(seeds, values)]
        else:  # a trials frame without per-seed numbers: its mean stands for its seeds
            out += [(int(s), float(r[metric])) for s in seeds or ["0"]]
    return out


def _point(rows: Any, value: Any, per_seed: bool, n_val: int | None,
           goal: Objective) -> Point:
    """Numbers for one value: over its runs (the seeds of its trials: a sweep) or over its
    trials (a joint search's marginal). Pruned trials count only where nothing else does."""
    complete = rows[rows["status"] == "completed"]
    pruned = complete.empty
    use = rows if pruned else complete
    if per_seed:
        runs = _runs(use, goal.name)
        acc, acc_std = mean_std([a for _, a in _runs(use)])
        loss, loss_std = mean_std([x for _, x in _runs(use, "val_loss")])
        score, score_std = mean_std([x for _, x in runs])
        n = len(runs)
    else:  # a marginal over configurations (``_configuration_frame``)
        runs = []
        acc, acc_std = mean_std([float(x) for x in use["val_accuracy"]])
        loss, loss_std = mean_std([float(x) for x in use["val_loss"]])
        score, score_std = mean_std([float(x) for x in use[goal.name]])
        n = len(use)
    accuracy = goal.name == "val_accuracy"
    floors = [] if accuracy else [float(x) for x in use[f"{goal.name}_se"] if x == x]
    floor = sum(floors) / len(floors) if floors else math.nan
    se = noise(score, score_std, n, n_val if accuracy else None, floor)
    signed = tuple((seed, goal.signed(x)) for seed, x in runs)
    return Point(value, acc, acc_std, loss, loss_std, n, str(use["trial_id"].iloc[0]), se,
                 pruned, signed, n_val, goal.name, score, score_std, floor)


def _sweep(param: str, default: Any, points: list[Point]) -> Sweep | None:
    """``points`` in sweep order; None when no value ran to the end."""
    if all(p.pruned for p in points):
        return None
    choice = one_se_choice([p.candidate() for p in points], default, PARAMS[param].log)
    return Sweep(param, default, tuple(points), choice)


def sweeps(study: LoadedStudy) -> list[Sweep]:
    """One Sweep per searched parameter: its values' numbers, noise and the one-SE choice."""
    done = study.done
    configurations = None if study.sweep else _configuration_frame(study)
    out = []
    for param in study.params:
        order = list(study.sweep_values.get(param, []))
        default = study.defaults[param]
        if not any(same_setting(default, v) for v in order):
            order.insert(0, default)
        if study.sweep:
            rows = done[[param in str(s).split() for s in done["sweeps"].fillna("")]]
        else:  # a joint search: the marginal over every configuration with that value
            rows = configurations
        points = []
        for v in order:  # values may be lists (kernel_sizes) or None (clipnorm)
            hit = rows[rows[param].map(lambda x, v=v: same_setting(x, v))] if len(rows) else rows
            if len(hit):
                points.append(_point(hit, v, study.sweep, study.n_val, study.goal))
        sweep = _sweep(param, default, points) if points else None
        if sweep is not None:
            out.append(sweep)
    return out


@dataclass(frozen=True)
class Recommendation:
    study: str
    model: str
    values: dict[str, Any]  # the recommended parameter values
    rows: tuple[Sweep, ...]
    expected: float  # the objective's expected value (val accuracy unless ranked otherwise)
    expected_loss: float
    expected_se: float  # the noise of ``expected``
    basis: str  # "measured (trial N)", or how the numbers relate to an untrained combination
    best_trial: dict[str, Any]  # the best trained configuration (ran to the end)
    notes: tuple[str, ...]
    n_val: int | None = None  # validation texts behind every number
    seeds: int = 1  # seeds behind the expected numbers
    baseline: BaselineCheck | None = None  # set by ``against_baseline``
    objective: str = "val_accuracy"  # what it ranked by (scores.OBJECTIVES)

    @property
    def goal(self) -> Objective:
        return objective(self.objective)


@dataclass(frozen=True)
class BaselineCheck:
    """The best tuned configuration against TF-IDF + logistic regression on the same split."""

    val_accuracy: float  # the baseline's (its C chosen on the same validation split)
    c: float
    tuned: Point  # the best configuration that ran to the end (its mean over seeds)
    n_val: int
    # multi-label: "val_macro_f1" or "val_micro_f1" (the study's objective, both at the
    # threshold searches use); then ``val_accuracy`` holds the baseline's number of it
    metric: str = "val_accuracy"

    @property
    def tuned_value(self) -> float:
        return self.tuned.val_accuracy if self.metric == "val_accuracy" else self.tuned.score

    @property
    def margin(self) -> float:
        return self.tuned_value - self.val_accuracy

    @property
    def se(self) -> float:
        """The standard error of the margin: both accuracies' errors, as if independent (an
        F1: the tuned configuration's noise, taken for the baseline's too)."""
        if self.metric != "val_accuracy":
            return math.hypot(self.tuned.se, self.tuned.se)
        base = binomial_se(self.val_accuracy, self.n_val)
        tuned = noise(self.tuned.val_accuracy, self.tuned.val_accuracy_std, self.tuned.n,
                      self.n_val)
        return math.hypot(base, tuned)

    @property
    def verdict(self) -> str:
        """"ahead" or "trails" when the margin exceeds its noise, else "within noise"."""
        if abs(self.margin) <= self.se:
            return "within noise"
        return "ahead" if self.margin > 0 else "trails"

    @property
    def label(self) -> str:
        return objective(self.metric).label

    def sentence(self) -> str:
        tuned = (f"the best tuned configuration (trial {self.tuned.trial_id}"
                 + (f", {self.tuned.n} seeds" if self.tuned.n > 1 else "")
                 + f": {self.label} {self.tuned_value:.4f})")
        base = (f"the TF-IDF + logistic regression baseline on the same split ({self.label} "
                f"{self.val_accuracy:.4f}, C={self.c:g} chosen on validation)")
        gap = f"{self.margin:+.4f} ±{self.se:.4f} (1 SE)"
        if self.verdict == "trails":
            return (f"{tuned[0].upper()}{tuned[1:]} TRAILS {base}: {gap}. The tuned network "
                    f"is worse than a linear model on this data; use the baseline or search "
                    f"elsewhere (another model, embedding or more data).")
        if self.verdict == "within noise":
            return (f"{tuned[0].upper()}{tuned[1:]} does not beat {base} beyond noise: "
                    f"{gap}.")
        return f"{tuned[0].upper()}{tuned[1:]} is ahead of {base}: {gap}."


def best_configuration(study: LoadedStudy) -> Point:
    """The trained configuration with the best mean val accuracy over its seeds (then the
    lowest val loss); pruned ones are lower bounds and never count.

    Raises:
        EmotuneError: no trial ran to the end yet.
    """
    complete = [c for c in _configurations(study) if not c.pruned]
    if not complete:
        raise EmotuneError(f"{study.path} has no trial that ran to the end yet; run or resume "
                           f"its `emotune search` first")
    return max(complete, key=lambda c: (c.candidate().mean, -c.val_loss))


def against_baseline(study: LoadedStudy, rec: Recommendation,
                     baselines: dict[str, Any]) -> Recommendation:
    """``rec`` with the best tuned configuration set against ``baseline.baselines``' TF-IDF +
    logistic regression (its validation score only), and a note saying plainly which is
    ahead."""
    from dataclasses import replace

    lr = baselines["tfidf_logreg"]
    n_val = rec.n_val or int(baselines["n_val"])
    metric = "val_accuracy"
    if baselines.get("multi_label") and study.goal.name in ("val_macro_f1", "val_micro_f1"):
        metric = study.goal.name  # both at threshold 0.5: a search's and the baseline's
    check = BaselineCheck(float(lr["val"][metric.removeprefix("val_")]), float(lr["C"]),
                          best_configuration(study), n_val, metric)
    note = check.sentence()
    sample = study.record.get("study", {}).get("sample")
    if sample:
        note += (f" (The study trained on a sample of {sample} rows, the baseline on the whole "
                 f"training split.)")
    return replace(rec, baseline=check, notes=(note, *rec.notes))


def _configurations(study: LoadedStudy) -> list[Point]:
    """Every distinct trained configuration (all tunable parameters) as one Point, its runs
    over all its trials' seeds (a racing study trains one several times); ``value`` is its
    parameter values."""
    done = study.done
    groups: list[tuple[dict[str, Any], list[int]]] = []
    for i, (_, row) in enumerate(done.iterrows()):
        values = {p: plain(row[p]) for p in PARAMS}
        for known, members in groups:
            if all(same_setting(known[p], values[p]) for p in PARAMS):
                members.append(i)
                break
        else:
            groups.append((values, [i]))
    return [_point(done.iloc[members], values, True, study.n_val, study.goal)
            for values, members in groups]


def _configuration_frame(study: LoadedStudy) -> Any:
    """One row per configuration (its mean over seeds), for a joint search's marginals: a
    configuration raced with three seeds counts once, not three times."""
    import pandas as pd

    goal = study.goal.name
    rows = [{**c.value, "val_accuracy": c.val_accuracy, "val_loss": c.val_loss,
             goal: c.score, f"{goal}_se": c.floor,
             "status": "pruned" if c.pruned else "completed", "trial_id": c.trial_id}
            for c in _configurations(study)]
    return pd.DataFrame(rows)


def _nearest_default(study: LoadedStudy, configs: list[Point]) -> Point:
    """The one-standard-error rule over whole configurations (joint searches): among those
    within one SE of the best, the one that changes the fewest defaults, then the one whose
    changes are the fewest steps along each parameter's list of values."""
    complete = [c for c in configs if not c.pruned]
    best = max((c.candidate() for c in complete), key=lambda c: c.mean)
    ties = [c for c in complete if c.candidate().mean >= best.mean - best.se]

    def steps(p: str, value: Any) -> float:
        order = list(study.sweep_values.get(p, []))
        where = [i for i, v in enumerate(order) if same_setting(v, value)]
        home = [i for i, v in enumerate(order) if same_setting(v, study.defaults[p])]
        return abs(where[0] - home[0]) if where and home else 1.0

    def key(c: Point) -> tuple[int, float, float]:
        changed = [p for p in study.params if not same_setting(c.value[p], study.defaults[p])]
        return len(changed), sum(steps(p, c.value[p]) for p in changed), -c.candidate().mean

    return min(ties, key=key)


def recommend(study: LoadedStudy) -> Recommendation:
    """The recommended value of each searched parameter and the configuration they make.

    One-at-a-time sweeps: per parameter the one-standard-error rule (``noise.one_se_choice``):
    among the values within one SE of the sweep's best, the one nearest the default. Joint
    searches: the same rule over the trained configurations (fewest changed defaults first).
    Pruned trials are lower bounds and are never chosen. The expected val accuracy is
    measured when that configuration was trained, and otherwise says what it rests on.
    Validation numbers only.

    Args:
        study: from ``load_study``.

    Returns:
        A ``Recommendation``: ``values`` (every tunable parameter), ``rows`` (one ``Sweep`` per
        parameter), the expected numbers with their noise and ``basis``, the best trial and
        notes.

    Raises:
        EmotuneError: the study has no trial that ran to the end yet.

    Example:
        >>> rec = recommend(load_study("runs/gru-all"))  # doctest: +SKIP
        >>> rec.values["lr"]  # doctest: +SKIP
    """
    done = study.done
    complete = done[done["status"] == "completed"] if len(done) else done
    if complete.empty:
        raise EmotuneError(f"{study.path} has no trial that ran to the end yet; run or resume "
                           f"its `emotune search` first")
    rows = sweeps(study)
    goal = study.goal
    best_row = complete.sort_values([goal.name, "val_loss"],
                                    ascending=[not goal.maximize, True]).iloc[0]
    best_trial = {"trial_id": str(best_row["trial_id"]),
                  "val_accuracy": float(best_row["val_accuracy"]),
                  "val_loss": float(best_row["val_loss"]),
                  **({} if goal.name in ("val_accuracy", "val_loss")
                     else {goal.name: float(best_row[goal.name])}),
                  "values": {p: plain(best_row[p]) for p in PARAMS}}
    configs = _configurations(study)
    notes = []
    if study.sweep:
        values = dict(study.defaults)
        values.update({s.param: plain(s.choice.value) for s in rows})
    else:
        values = dict(_nearest_default(study, configs).value)
    hit = next((c for c in configs if not c.pruned and
                all(same_setting(c.value[p], values[p]) for p in PARAMS)), None)
    if hit is not None:
        exp, seeds = hit, hit.n
        basis = (f"measured (trial {hit.trial_id}" +
                 (f", {hit.n} seeds)" if hit.n > 1 else ")"))
    else:  # one-at-a-time, combination untrained: the best chosen change, measured
        changed = [s.chosen for s in rows if s.choice.detectable] or \
            [c for c in configs if not c.pruned]
        exp = max(changed, key=lambda p: (p.candidate().mean, -p.val_loss))
        seeds = exp.n
        basis = (f"not trained in this study: its best single change was measured at this "
                 f"(trial {exp.trial_id}); gains from separate sweeps need not add up")
        notes.append("Measure the combination with `emotune final-train --project` (or "
                     "`emotune train --config experiments/recommended-<study>.yaml`).")
    n_val = study.n_val
    rule = ("Values within one standard error of the best are ties, and of those the one "
            "nearest the default is chosen (the one-standard-error rule).")
    if goal.name != "val_accuracy":
        known = f" (±{exp.floor:.4f} here)" if not math.isnan(exp.floor) else (
            " (not recorded by this study's trials: only the seeds' spread counts)")
        notes.append(f"Ranked by {goal.label}{' (lower is better)' if not goal.maximize else ''}"
                     f". Noise: one standard error is its bootstrap error over the "
                     f"{n_val or 'validation'} validation texts{known}, or the seeds' spread "
                     f"where it is larger. {rule}")
    elif n_val:
        notes.append(f"Noise: one standard error is the binomial error of an accuracy on "
                     f"{n_val} validation texts (±{binomial_se(exp.val_accuracy, n_val):.4f} "
                     f"at {exp.val_accuracy:.2f}), or the seeds' spread where it is larger. "
                     f"{rule}")
    else:
        notes.append("This study predates recorded validation sizes, so only the seeds' "
                     "spread counts as noise (unknown with one seed: only exact ties); run "
                     "its `emotune search` command once more to record it (a finished study "
                     "trains nothing more).")
    pruned = [p for s in rows for p in s.points if p.pruned]
    if pruned:
        notes.append(f"{len(pruned)} value(s) were pruned: their numbers are lower bounds "
                     f"(marked ≥) and never chosen.")
    if study.repeats < 2 and not study.race:
        notes.append("One seed per value: a new study with --repeats auto (another --project, "
                     "or --overwrite) races more seeds among the values within noise of the "
                     "best.")
    return Recommendation(study.name, study.model, values, tuple(rows), exp.score,
                          exp.val_loss, exp.se, basis, best_trial, tuple(notes), n_val, seeds,
                          objective=goal.name)


# ---------------------------------------------------------------- joint-search views


def history(study: LoadedStudy) -> Any:
    """Trial order, the objective (``study.goal``), whether it was pruned, and the best so far
    among the trials that ran to the end (a pruned trial's lower bound never counts)."""
    goal = study.goal
    done = study.done.sort_values("trial_id").reset_index(drop=True)
    out = done[["trial_id", goal.name]].copy()
    out["pruned"] = (done["status"] == "pruned").to_numpy()
    kept = out[goal.name].where(~out["pruned"])
    out["best_so_far"] = (kept.cummax() if goal.maximize else kept.cummin()).ffill()
    return out


def importance(study: LoadedStudy, seed: int = 0) -> dict[str, float]:
    """Share of the objective's variance each parameter explains (random-forest importance).

    Needs at least 4 completed trials; parameters that never varied get 0.
    """
    import pandas as pd
    from sklearn.ensemble import RandomForestRegressor

    done = study.done
    if len(done) < 4:
        return {}
    cols = []
    for p in study.params:
        col = done[p]
        numeric = pd.api.types.is_numeric_dtype(col)
        cols.append(col.astype(float).rename(p).to_frame() if numeric
                    else pd.get_dummies(col.astype(str), prefix=p))
    x = pd.concat(cols, axis=1)
    forest = RandomForestRegressor(n_estimators=200, random_state=seed, min_samples_leaf=1)
    forest.fit(x.values, done[study.goal.name].values)
    imp = {p: 0.0 for p in study.params}
    for column, value in zip(x.columns, forest.feature_importances_):
        owner = next(p for p in sorted(imp, key=len, reverse=True)
                     if column == p or column.startswith(f"{p}_"))
        imp[owner] += value
    total = sum(imp.values()) or 1.0
    return {p: v / total for p, v in sorted(imp.items(), key=lambda kv: -kv[1])}


def parallel_coordinates(study: LoadedStudy) -> Any:
    """Each completed trial's parameters mapped to [0, 1] (values by their order in the
    search space; values may be lists, as kernel_sizes' are)."""
    done = study.done
    out = done[["trial_id", study.goal.name]].copy()
    for p in study.params:
        order = list(study.sweep_values.get(p, [])) or _distinct(done[p])
        span = max(len(order) - 1, 1)
        out[p] = [next((i for i, o in enumerate(order) if same_setting(o, v)), 0) / span
                  for v in done[p]]
    return out


def _distinct(values: Any) -> list[Any]:
    """The distinct values of a column, sorted where they can be."""
    seen: list[Any] = []
    for v in values:
        if not any(same_setting(v, u) for u in seen):
            seen.append(plain(v))
    try:
        return sorted(seen)
    except TypeError:
        return seen


def compare(studies: list[LoadedStudy]) -> Any:
    """One row per study: its best completed trial."""
    import pandas as pd

    rows = []
    for st in studies:
        complete = st.done[st.done["status"] == "completed"] if len(st.done) else st.done
        if complete.empty:
            continue
        best = complete.sort_values(["val_accuracy", "val_loss"], ascending=[False, True]).iloc[0]
        rows.append({"study": st.name, "model": st.model, "strategy": st.strategy,
                     "trials": len(st.done), "best_trial": best["trial_id"],
                     "val_accuracy": best["val_accuracy"],
                     "val_accuracy_std": best["val_accuracy_std"],
                     "val_loss": best["val_loss"], "val_macro_f1": best["val_macro_f1"],
                     **{p: plain(best[p]) for p in PARAMS}})
    return pd.DataFrame(rows)


def recommended_config(study: LoadedStudy, rec: Recommendation) -> Any:
    """The study's base settings with the recommended values: what final-train trains."""
    from emotune.config import build_config
    from emotune.space import apply

    # the study's objective too (its base settings hold no search section), so that the
    # YAML written from this ranks by it when searched again
    base = {**study.record["base_config"], "search": {"objective": study.goal.name}}
    return apply(build_config(overrides=base), rec.values)
