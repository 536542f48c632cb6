"""Studies -> decisions. Pure functions over trials DataFrames; report.py draws their output.

A one-at-a-time study gives one ``Sweep`` per parameter (its values with the others at their
defaults); a joint study gives per-parameter marginals. ``recommend`` combines them into one
configuration with its expected val accuracy: measured when that configuration was trained;
otherwise the best single change's measured numbers, stated as such (separate sweeps' gains
need not add up, so no sum is claimed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emotune.config import plain
from emotune.errors import EmotuneError
from emotune.results import load_trials, read_json
from emotune.space import PARAMS, same_setting

# Trials whose numbers count. A pruned trial's val accuracy is its best before it was stopped,
# a lower bound of what it would have reached; leaving it out would drop its value from the
# sweep (the first pruning rule even stopped a best-so-far trial after one dip).
DONE = ("completed", "pruned")


@dataclass(frozen=True)
class Point:
    value: Any
    val_accuracy: float
    val_accuracy_std: float
    val_loss: float
    val_loss_std: float
    n: int  # seeds (sweeps) or trials (joint marginals) behind the numbers
    trial_id: str = ""


@dataclass(frozen=True)
class Sweep:
    param: str
    default: Any
    points: tuple[Point, ...]  # in sweep order
    best: Point
    runner_up: Point | None
    within_spread: bool | None  # None: one seed each, the spread is unknown

    @property
    def log_scale(self) -> bool:
        return PARAMS[self.param].log


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

    @property
    def sweep(self) -> bool:
        return self.strategy == "sweep"

    @property
    def done(self) -> Any:
        return self.trials[self.trials["status"].isin(DONE)] if not self.trials.empty \
            else self.trials


def load_study(path: str | Path) -> LoadedStudy:
    """A study folder read back: what it searched (``study.json``) and its trials.

    Args:
        path: a study folder written by ``emotune search``.

    Returns:
        A ``LoadedStudy``; ``.trials`` is ``results.load_trials(path)``, ``.done`` the trials
        whose numbers count (completed or pruned).

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
    return LoadedStudy(path, path.name, st["model"], st["strategy"], tuple(st["params"]),
                 st["repeats"], defaults, record.get("sweeps", {}), trials, record)


def _setting(base: dict[str, Any], key: str) -> Any:
    """A setting of a study's recorded config; the current default if it predates it."""
    from emotune.config import Config

    section, name = key.split(".")
    if name in base.get(section, {}):
        return base[section][name]
    return plain(getattr(getattr(Config(), section), name))


def _point(rows: Any, value: Any, per_seed: bool) -> Point:
    """Numbers for one value: one trial (mean/std over its seeds) or several trials."""
    if per_seed or len(rows) == 1:
        r = rows.iloc[0]
        return Point(value, float(r["val_accuracy"]), float(r["val_accuracy_std"]),
                     float(r["val_loss"]), float(r["val_loss_std"]),
                     len(str(r["seeds"]).split()), str(r["trial_id"]))
    acc, loss = rows["val_accuracy"], rows["val_loss"]
    return Point(value, float(acc.mean()), float(acc.std(ddof=1)), float(loss.mean()),
                 float(loss.std(ddof=1)), len(rows), "")


def _rank(points: list[Point]) -> list[Point]:
    return sorted(points, key=lambda p: (-p.val_accuracy, p.val_loss))


def _within_spread(best: Point, other: Point | None) -> bool | None:
    if other is None or (best.n < 2 and other.n < 2):
        return None
    spread = math.sqrt(best.val_accuracy_std ** 2 + other.val_accuracy_std ** 2)
    return best.val_accuracy - other.val_accuracy <= spread


def _sweep(param: str, default: Any, points: list[Point]) -> Sweep:
    """``points`` in sweep order."""
    ranked = _rank(points)
    runner = ranked[1] if len(ranked) > 1 else None
    return Sweep(param, default, tuple(points), ranked[0], runner,
                 _within_spread(ranked[0], runner))


def sweeps(study: LoadedStudy) -> list[Sweep]:
    """One Sweep per searched parameter (completed trials only)."""
    done = study.done
    out = []
    for param in study.params:
        order = list(study.sweep_values.get(param, []))
        default = study.defaults[param]
        if default not in order:
            order.insert(0, default)
        rows = done
        if study.sweep:
            rows = done[[param in str(s).split() for s in done["sweeps"].fillna("")]]
        # else a joint search: the marginal over every trial with that value
        points = []
        for v in order:  # values may be lists (kernel_sizes) or None (clipnorm)
            hit = rows[rows[param].map(lambda x, v=v: same_setting(x, v))] if len(rows) else rows
            if len(hit):
                points.append(_point(hit, v, study.sweep))
        if points:
            out.append(_sweep(param, default, points))
    return out


@dataclass(frozen=True)
class Recommendation:
    study: str
    model: str
    values: dict[str, Any]  # the recommended parameter values
    rows: tuple[Sweep, ...]
    expected_accuracy: float
    expected_loss: float
    basis: str  # "measured (trial N)", or how the numbers relate to an untrained combination
    best_trial: dict[str, Any]  # the best trained configuration
    notes: tuple[str, ...]


def _matching_trial(done: Any, values: dict[str, Any]) -> Any:
    mask = None
    for k, v in values.items():
        m = done[k].map(lambda x, v=v: same_setting(x, v))
        mask = m if mask is None else mask & m
    hit = done[mask] if mask is not None else done
    return hit.iloc[0] if len(hit) else None


def recommend(study: LoadedStudy) -> Recommendation:
    """The best value of each searched parameter and the configuration they make.

    One-at-a-time sweeps: each parameter's best value (val accuracy, then val loss) with the
    others at their defaults; a joint search: the best trained trial's values. The expected
    val accuracy is measured when that configuration was trained, and otherwise says what it
    rests on. Validation numbers only.

    Args:
        study: from ``load_study``.

    Returns:
        A ``Recommendation``: ``values`` (every tunable parameter), ``rows`` (one ``Sweep`` per
        parameter), the expected numbers and their ``basis``, the best trial and notes.

    Raises:
        EmotuneError: the study has no completed trials yet.

    Example:
        >>> rec = recommend(load_study("runs/gru-all"))  # doctest: +SKIP
        >>> rec.values["lr"]  # doctest: +SKIP
    """
    done = study.done
    if done.empty:
        raise EmotuneError(f"{study.path} has no completed trials yet; run or resume its "
                           f"`emotune search` first")
    rows = sweeps(study)
    best_row = done.sort_values(["val_accuracy", "val_loss"], ascending=[False, True]).iloc[0]
    best_trial = {"trial_id": str(best_row["trial_id"]),
                  "val_accuracy": float(best_row["val_accuracy"]),
                  "val_loss": float(best_row["val_loss"]),
                  "values": {p: plain(best_row[p]) for p in PARAMS}}
    notes = []
    if study.sweep:
        values = dict(study.defaults)
        values.update({s.param: plain(s.best.value) for s in rows})
    else:
        values = dict(best_trial["values"])
    hit = _matching_trial(done, values)
    if hit is not None:
        exp_acc, exp_loss = float(hit["val_accuracy"]), float(hit["val_loss"])
        basis = f"measured (trial {hit['trial_id']})"
    else:  # one-at-a-time, combination untrained: the best single change, measured
        best = max((s.best for s in rows), key=lambda p: (p.val_accuracy, -p.val_loss))
        exp_acc, exp_loss = best.val_accuracy, best.val_loss
        basis = (f"not trained in this study: its best single change was measured at this "
                 f"(trial {best.trial_id}); gains from separate sweeps need not add up")
        notes.append("Measure the combination with `emotune final-train --project` (or "
                     "`emotune train --config experiments/recommended-<study>.yaml`).")
    for s in rows:
        if s.within_spread:
            notes.append(f"{s.param}: best {s.best.value} and runner-up {s.runner_up.value} "
                         f"differ by {s.best.val_accuracy - s.runner_up.val_accuracy:.4f}, "
                         f"within their spread; either is as good.")
    if study.repeats < 2:
        notes.append("One seed per configuration: differences under ~0.005 may be noise; "
                     "rerun with --repeats 3 to measure the spread.")
    return Recommendation(study.name, study.model, values, tuple(rows), exp_acc, exp_loss,
                          basis, best_trial, tuple(notes))


# ---------------------------------------------------------------- joint-search views


def history(study: LoadedStudy) -> Any:
    """Trial order, val accuracy and best so far (completed trials)."""
    done = study.done.sort_values("trial_id").reset_index(drop=True)
    out = done[["trial_id", "val_accuracy"]].copy()
    out["best_so_far"] = out["val_accuracy"].cummax()
    return out


def importance(study: LoadedStudy, seed: int = 0) -> dict[str, float]:
    """Share of val-accuracy variance each parameter explains (random-forest importance).

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
    forest.fit(x.values, done["val_accuracy"].values)
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
    out = done[["trial_id", "val_accuracy"]].copy()
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
        if st.done.empty:
            continue
        best = st.done.sort_values(["val_accuracy", "val_loss"], ascending=[False, True]).iloc[0]
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

    return apply(build_config(overrides=study.record["base_config"]), rec.values)
