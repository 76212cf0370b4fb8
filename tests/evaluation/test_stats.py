"""Paired statistics of the quality benchmark against textbook values and independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from erl_losses.evaluation.stats import (
    min_detectable_effect,
    paired_comparison,
    paired_t_power,
    seeds_needed,
)

# Student's sleep data (Cushny & Peebles 1905; R's `sleep`): extra hours of sleep per patient.
SLEEP_GROUP1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_GROUP2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]

scores = st.lists(
    st.tuples(
        st.floats(-50, 50, allow_nan=False, allow_infinity=False),
        st.floats(-50, 50, allow_nan=False, allow_infinity=False),
    ),
    min_size=2,
    max_size=30,
)


def test_matches_r_on_the_sleep_data() -> None:
    # R: t.test(extra ~ group, data = sleep, paired = TRUE) -> t = -4.0621, df = 9,
    # p-value = 0.002833, 95 percent CI -2.4598858 -0.7001142, mean difference -1.58.
    cmp = paired_comparison(SLEEP_GROUP1, SLEEP_GROUP2)
    assert cmp.n == 10
    assert cmp.mean == pytest.approx(-1.58)
    assert cmp.t == pytest.approx(-4.0621, abs=1e-4)
    assert cmp.p == pytest.approx(0.002833, abs=1e-6)
    assert cmp.ci_low == pytest.approx(-2.4598858, abs=1e-7)
    assert cmp.ci_high == pytest.approx(-0.7001142, abs=1e-7)
    assert (cmp.wins, cmp.losses) == (0, 9)  # one patient has a zero difference


def test_matches_a_computation_by_hand() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(20, 1, 12)
    erl = base + rng.normal(0.2, 0.4, 12)
    d = erl - base
    n = d.size
    mean = d.sum() / n
    sd = math.sqrt(((d - mean) ** 2).sum() / (n - 1))
    se = sd / math.sqrt(n)
    t = mean / se
    half = stats.t.ppf(0.975, n - 1) * se
    cmp = paired_comparison(erl.tolist(), base.tolist())
    assert cmp.mean == pytest.approx(mean, rel=1e-12)
    assert cmp.sd == pytest.approx(sd, rel=1e-12)
    assert cmp.t == pytest.approx(t, rel=1e-10)
    assert cmp.p == pytest.approx(2 * stats.t.sf(abs(t), n - 1), rel=1e-8)
    assert (cmp.ci_low, cmp.ci_high) == pytest.approx((mean - half, mean + half), rel=1e-12)
    assert cmp.wins == int((d > 0).sum())
    assert cmp.mde == pytest.approx(min_detectable_effect(sd, n))
    assert set(cmp.as_dict()) >= {"n", "mean", "sd", "ci_low", "ci_high", "t", "p", "wins", "mde"}
    assert "ERL higher in" in cmp.summary()


def test_min_detectable_effect_has_80_percent_power_by_simulation() -> None:
    n, sd = 6, 0.5
    mde = min_detectable_effect(sd, n)
    assert paired_t_power(mde, sd, n) == pytest.approx(0.8, abs=1e-8)
    rng = np.random.default_rng(0)
    d = rng.normal(mde, sd, size=(20000, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    rejected = np.abs(t) > stats.t.ppf(0.975, n - 1)
    assert rejected.mean() == pytest.approx(0.8, abs=0.015)


def test_min_detectable_effect_tends_to_the_normal_approximation() -> None:
    n = 5000
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert min_detectable_effect(1.0, n) == pytest.approx(z / math.sqrt(n), rel=2e-3)
    assert min_detectable_effect(0.0, 5) == 0.0
    assert min_detectable_effect(0.5, 3) > min_detectable_effect(0.5, 24)


def test_seeds_needed_matches_the_planning_figures() -> None:
    # relation-findings.md: SD 0.5 dB needs 199 / 52 / 24 seeds for 0.1 / 0.2 / 0.3 dB;
    # SD 0.16 dB needs 23 / 8 / 5.
    assert [seeds_needed(e, 0.5) for e in (0.1, 0.2, 0.3)] == [199, 52, 24]
    assert [seeds_needed(e, 0.16) for e in (0.1, 0.2, 0.3)] == [23, 8, 5]
    n = seeds_needed(0.3, 0.5)
    assert paired_t_power(0.3, 0.5, n - 1) < 0.8 <= paired_t_power(0.3, 0.5, n)
    # Few seeds cannot see small effects: 3 seeds have about 10 % power for 0.3 dB at SD 0.5.
    assert 0.05 < paired_t_power(0.3, 0.5, 3) < 0.11


def test_constant_differences_have_no_noise() -> None:
    cmp = paired_comparison([1.5, 2.5, 3.5], [1.0, 2.0, 3.0])
    assert cmp.sd == 0.0
    assert cmp.t == math.inf
    assert cmp.p == 0.0
    assert cmp.mde == 0.0
    assert cmp.ci_low == cmp.ci_high == pytest.approx(0.5)
    tie = paired_comparison([1.0, 2.0], [1.0, 2.0])
    assert math.isnan(tie.t)
    assert tie.p == 1.0


@pytest.mark.parametrize(
    ("erl", "base", "match"),
    [
        ([1.0, 2.0], [1.0], "same length"),
        ([1.0], [2.0], "at least 2 pairs"),
        ([1.0, float("nan")], [1.0, 2.0], "finite"),
    ],
)
def test_rejects_bad_input(erl, base, match) -> None:
    with pytest.raises(ValueError, match=match):
        paired_comparison(erl, base)


def test_planning_functions_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="Expected power"):
        min_detectable_effect(1.0, 5, power=1.0)
    with pytest.raises(ValueError, match="Expected n >= 2"):
        paired_t_power(0.1, 1.0, 1)
    with pytest.raises(ValueError, match="Expected effect > 0"):
        seeds_needed(0.0, 1.0)


@settings(max_examples=40, deadline=None)
@given(scores)
def test_swapping_the_methods_flips_the_signs(pairs) -> None:
    erl, base = (list(x) for x in zip(*pairs, strict=True))
    ab = paired_comparison(erl, base)
    ba = paired_comparison(base, erl)
    assert ba.mean == pytest.approx(-ab.mean, abs=1e-9)
    assert ba.sd == pytest.approx(ab.sd, abs=1e-9)
    assert (ba.ci_low, ba.ci_high) == pytest.approx((-ab.ci_high, -ab.ci_low), abs=1e-9)
    assert (ba.wins, ba.losses) == (ab.losses, ab.wins)
    assert ba.p == pytest.approx(ab.p, abs=1e-9) or ab.sd < 1e-9
    assert ba.mde == pytest.approx(ab.mde, rel=1e-6, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(scores)
def test_the_interval_contains_the_mean_and_p_is_a_probability(pairs) -> None:
    erl, base = (list(x) for x in zip(*pairs, strict=True))
    cmp = paired_comparison(erl, base)
    assert cmp.ci_low <= cmp.mean <= cmp.ci_high
    assert 0.0 <= cmp.p <= 1.0
    assert cmp.wins + cmp.losses <= cmp.n == len(pairs)
    assert cmp.mde >= 0.0
    # The interval excludes 0 exactly when the test rejects at 5 % (same t distribution).
    if cmp.sd > 1e-6 and abs(cmp.p - 0.05) > 1e-6:
        assert (cmp.ci_low > 0 or cmp.ci_high < 0) == (cmp.p < 0.05)
