"""How much of a difference is noise. Pure functions over numbers; nothing here reads or draws.

A validation accuracy ``p`` measured on ``n`` texts has a binomial standard error
``sqrt(p (1 - p) / n)`` (about 0.006 at p = 0.9, n = 2,000): the floor of its noise. With several
seeds the spread between them is measured too, and the larger of the two counts. The
one-standard-error rule (Breiman et al. 1984, CART; Hastie, Tibshirani & Friedman, ESL §7.10;
glmnet's ``lambda.1se``) then picks, among the values within one standard error of the best,
the one closest to the default, so that a choice changes only when the evidence does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def binomial_se(p: float, n: int) -> float:
    """The standard error of an accuracy ``p`` measured on ``n`` texts.

    Example: ``binomial_se(0.9, 2000)`` -> 0.0067.
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of texts. Received: n={n}")
    p = min(max(p, 0.0), 1.0)
    return math.sqrt(p * (1.0 - p) / n)


def noise(mean: float, seed_std: float, seeds: int, n_val: int | None,
          floor: float | None = None) -> float:
    """The standard error of a value's mean over seeds: the measurement error on the
    validation texts as the floor (``floor`` where given: the bootstrap error of a macro-F1
    or a loss; else the binomial error of an accuracy on ``n_val`` texts), the seeds'
    standard error (``seed_std / sqrt(seeds)``) when it is larger. The floor is not divided
    by the seeds: every seed is measured on the same texts."""
    if floor is None or math.isnan(floor):
        if not n_val:
            return seed_std / math.sqrt(seeds) if seeds > 1 and not math.isnan(seed_std) \
                else math.nan
        floor = binomial_se(mean, n_val)
    if seeds < 2 or math.isnan(seed_std):
        return floor
    return max(floor, seed_std / math.sqrt(seeds))


@dataclass(frozen=True)
class Candidate:
    """One value of a parameter with its measured mean and standard error."""

    value: Any
    mean: float
    se: float
    pruned: bool = False  # a lower bound: never chosen, never the best


@dataclass(frozen=True)
class Choice:
    """What the one-standard-error rule chose among a parameter's values."""

    value: Any  # the recommended value
    best: Candidate  # the highest mean among the values that ran to the end
    chosen: Candidate
    default: Candidate | None  # None when the default was not measured (or was pruned)
    ties: tuple[Any, ...]  # values within one standard error of the best
    margin: float  # chosen mean minus the default's (nan without a default)
    detectable: bool  # the chosen value beats the default by more than the noise

    @property
    def verdict(self) -> str:
        return "detectable" if self.detectable else "within noise"


def one_se_choice(candidates: Sequence[Candidate], default: Any, log: bool = False) -> Choice:
    """The one-standard-error rule over one parameter's values.

    Among the values that ran to the end (pruned ones are lower bounds and never count), those
    whose mean is within one standard error (the best's) of the best mean are ties; of these,
    the one closest to ``default`` is chosen (on a log axis when ``log``; categories: the
    default if it is a tie, else the best). So the default is kept unless a value beats it by
    more than the noise.

    Raises:
        ValueError: no candidate ran to the end.
    """
    complete = [c for c in candidates if not c.pruned]
    if not complete:
        raise ValueError("every value was pruned: nothing measured to the end to choose from")
    best = max(complete, key=lambda c: c.mean)
    ties = [c for c in complete if c.mean >= best.mean - best.se]
    chosen = min(ties, key=lambda c: (distance(c.value, default, log), -c.mean))
    base = next((c for c in complete if _same(c.value, default)), None)
    margin = chosen.mean - base.mean if base is not None else math.nan
    detectable = base is not None and not _same(chosen.value, default)
    return Choice(chosen.value, best, chosen, base, tuple(c.value for c in ties), margin,
                  detectable)


def _same(a: Any, b: Any) -> bool:
    from emotune.space import same_setting

    return same_setting(a, b)


def distance(value: Any, default: Any, log: bool = False) -> float:
    """How far ``value`` is from ``default``: 0 for the default itself; numbers by their
    difference (of logs when ``log``); any other value 1, so ties among them go to the mean."""
    if _same(value, default):
        return 0.0
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool)
                  for x in (value, default))
    if not numeric:
        return 1.0
    if log and value > 0 and default > 0:
        return abs(math.log(value) - math.log(default))
    return abs(value - default)


def difference_se(a: Candidate, b: Candidate) -> float:
    """The standard error of ``a.mean - b.mean`` for two independent measurements."""
    return math.hypot(a.se, b.se)


def contenders(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The values of a race that are not yet told apart: the best, and every value within
    one standard error of the difference from it; empty once the best stands alone.

    The rule of racing (Maron & Moore's Hoeffding races, Birattari's F-Race): a value clearly
    behind the best gets no more seeds; values still within noise of it get more, until they
    separate or run out of seeds. Pruned values are lower bounds and never contend.
    """
    complete = [c for c in candidates if not c.pruned]
    if len(complete) < 2:
        return []
    best = max(complete, key=lambda c: c.mean)
    close = [c for c in complete
             if c is not best and best.mean - c.mean <= difference_se(best, c)]
    return [best, *close] if close else []


def interval95(mean: float, std: float, n: int, n_val: int | None = None,
               floor: float | None = None) -> tuple[float, float]:
    """A 95% interval of a mean over ``n`` seeds: the wider of 1.96 measurement errors (the
    binomial error on ``n_val`` texts, or ``floor``, a bootstrap error; a known error, so the
    normal quantile) and Student's t with n - 1 degrees of freedom times the seeds' standard
    error ``std / sqrt(n)`` (an estimated one); (nan, nan) when neither is known (one seed
    and no measurement error)."""
    halves = []
    if floor is not None and not math.isnan(floor):
        halves.append(1.96 * floor)
    elif n_val:
        halves.append(1.96 * binomial_se(mean, n_val))
    if n >= 2 and not math.isnan(std):
        from scipy.stats import t

        halves.append(float(t.ppf(0.975, n - 1)) * std / math.sqrt(n))
    if not halves:
        return (math.nan, math.nan)
    half = max(halves)
    return (mean - half, mean + half)


def paired_difference(a: dict[int, float], b: dict[int, float]
                      ) -> tuple[float, float, int] | None:
    """Mean and 95% half-width of ``a - b`` over the seeds both have (seed -> value), when
    there are at least two: a paired comparison, where each seed's shared noise (its
    shuffling, its initialisation) cancels. None with fewer common seeds."""
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return None
    mean, std = mean_std([a[s] - b[s] for s in common])
    lo, hi = interval95(mean, std, len(common))
    return mean, (hi - lo) / 2, len(common)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (nan for fewer than two values)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
