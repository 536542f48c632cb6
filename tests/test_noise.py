"""The noise model and the one-standard-error rule, on hand-made numbers."""

from __future__ import annotations

import math

import pytest

from emotune.config import parse_repeats
from emotune.noise import (
    Candidate,
    binomial_se,
    contenders,
    interval95,
    noise,
    one_se_choice,
    paired_difference,
)


def test_binomial_se_by_hand():
    assert binomial_se(0.9, 2000) == pytest.approx(math.sqrt(0.09 / 2000))  # ~0.0067
    assert binomial_se(0.55, 757) == pytest.approx(0.0181, abs=1e-4)  # the example
    assert binomial_se(1.0, 10) == 0.0
    with pytest.raises(ValueError, match="n must be"):
        binomial_se(0.5, 0)


def test_noise_is_the_binomial_floor_or_the_seed_spread_when_larger():
    assert noise(0.9, math.nan, 1, 2000) == binomial_se(0.9, 2000)
    assert noise(0.9, 0.001, 3, 2000) == binomial_se(0.9, 2000)  # spread below the floor
    assert noise(0.9, 0.03, 3, 2000) == pytest.approx(0.03 / math.sqrt(3))


def test_a_one_text_lead_is_within_noise_and_the_default_is_kept():
    se = binomial_se(0.94, 2000)
    c = one_se_choice([Candidate(32, 0.9405, se), Candidate(64, 0.9410, se)], default=32)
    assert c.value == 32 and c.best.value == 64
    assert not c.detectable and c.verdict == "within noise" and c.margin == 0.0
    assert set(c.ties) == {32, 64}


def test_a_clear_three_seed_lead_is_detectable():
    se = noise(0.93, 0.002, 3, 2000)
    c = one_se_choice([Candidate("adam", 0.90, se), Candidate("rmsprop", 0.93, se)],
                      default="adam")
    assert c.value == "rmsprop" and c.detectable and c.verdict == "detectable"
    assert c.margin == pytest.approx(0.03)


def test_among_ties_the_value_nearest_the_default_on_a_log_axis_wins():
    se = 0.007
    cands = [Candidate(0.001, 0.88, se), Candidate(0.0005, 0.90, se),
             Candidate(0.002, 0.905, se), Candidate(0.005, 0.91, se),
             Candidate(0.01, 0.906, se)]
    c = one_se_choice(cands, default=0.001, log=True)
    assert set(c.ties) == {0.002, 0.005, 0.01}  # 0.9 is more than one SE below 0.91
    assert c.value == 0.002  # log distance 0.69 from 0.001, against 1.61 for 0.005
    assert c.detectable  # the default (0.88) is outside the band


def test_a_pruned_lower_bound_never_wins():
    se = 0.006
    c = one_se_choice([Candidate(0.5, 0.9405, se), Candidate(0.35, 0.9700, se, pruned=True)],
                      default=0.5)
    assert c.best.value == 0.5 and c.value == 0.5 and 0.35 not in c.ties
    with pytest.raises(ValueError, match="every value was pruned"):
        one_se_choice([Candidate(1, 0.9, se, pruned=True)], default=1)


def test_parse_repeats():
    assert parse_repeats("3") == (3, 0) and parse_repeats(1) == (1, 0)
    assert parse_repeats("auto") == (1, 3) and parse_repeats("AUTO:5") == (1, 5)
    for bad in ("0", "auto:1", "atuo", "auto:x", "-2"):
        with pytest.raises(ValueError):
            parse_repeats(bad)


def test_contenders_are_the_values_not_told_apart_from_the_best():
    se = binomial_se(0.9, 2000)  # 0.0067; one SE of a difference ~0.0095
    cands = [Candidate("a", 0.909, se), Candidate("b", 0.900, se), Candidate("c", 0.875, se),
             Candidate("d", 0.95, se, pruned=True)]  # a pruned lower bound never races
    assert [c.value for c in contenders(cands)] == ["a", "b"]
    assert contenders([Candidate("a", 0.909, se), Candidate("c", 0.875, se)]) == []
    assert contenders([Candidate("a", 0.9, se)]) == []


def test_interval95_and_paired_differences_by_hand():
    half = 4.303 * 0.02 / math.sqrt(3)  # t(0.975, 2) = 4.303: the seeds' spread
    assert interval95(0.9, 0.02, 3) == pytest.approx((0.9 - half, 0.9 + half), abs=1e-5)
    assert interval95(0.9, 0.02, 3, 2000) == pytest.approx((0.9 - half, 0.9 + half), abs=1e-5)
    floor = 1.96 * binomial_se(0.9, 2000)  # close seeds: 1.96 binomial errors are wider
    assert interval95(0.9, 0.001, 3, 2000) == pytest.approx((0.9 - floor, 0.9 + floor))
    assert interval95(0.9, math.nan, 1, 2000) == pytest.approx((0.9 - floor, 0.9 + floor))
    assert all(math.isnan(x) for x in interval95(0.9, math.nan, 1))
    a = {42: 0.91, 43: 0.92, 44: 0.90, 45: 0.5}
    b = {42: 0.90, 43: 0.90, 44: 0.89}
    mean, half, n = paired_difference(a, b)  # seed 45 is not shared: differences .01 .02 .01
    assert n == 3 and mean == pytest.approx(0.04 / 3)
    std = math.sqrt(((0.01 - mean) ** 2 * 2 + (0.02 - mean) ** 2) / 2)
    assert half == pytest.approx(4.303 * std / math.sqrt(3), rel=1e-3)
    assert paired_difference({42: 0.9}, {42: 0.8}) is None  # one shared seed: no interval
