"""Multiplicity and bootstrap helpers of the evidence report (erl_losses.evaluation.stats)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("scipy")

from erl_losses.evaluation.stats import (
    bootstrap_scene_ci,
    holm_adjust,
    holm_levels,
    mean_ci,
    paired_comparison,
)


def test_holm_adjust_matches_a_hand_computation() -> None:
    # m = 4, sorted p: 0.01, 0.02, 0.03, 0.5 -> 0.04, 0.06, 0.06 (monotone), 0.5
    assert holm_adjust([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])


def test_holm_adjust_caps_at_one_and_rejects_bad_p() -> None:
    assert holm_adjust([0.9, 0.8]) == [1.0, 1.0]
    with pytest.raises(ValueError, match="p-values"):
        holm_adjust([0.1, 1.5])


def test_mean_ci_at_95_is_the_paired_comparison_interval() -> None:
    delta = [0.3, -0.1, 0.2, 0.25, 0.05]
    cmp = paired_comparison(delta, [0.0] * len(delta))
    assert mean_ci(delta, 0.95) == pytest.approx((cmp.ci_low, cmp.ci_high))
    wide = mean_ci(delta, 0.99)
    assert wide[0] < cmp.ci_low and wide[1] > cmp.ci_high


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=8),
        min_size=1,
        max_size=5,
    ),
    st.floats(0.5, 2.0),
)
def test_holm_interval_excludes_zero_exactly_when_holm_rejects(rows, shift) -> None:
    deltas = [np.asarray(r) + shift * (k % 2) for k, r in enumerate(rows)]
    deltas = [d for d in deltas if d.std(ddof=1) > 1e-6]
    if not deltas:
        return
    p = [paired_comparison(d, np.zeros_like(d)).p for d in deltas]
    for d, adjusted, level in zip(deltas, holm_adjust(p), holm_levels(p), strict=True):
        low, high = mean_ci(d, level)
        excludes = low > 0 or high < 0
        if abs(adjusted - 0.05) > 1e-9:  # exactly at the boundary either answer is right
            assert excludes == (adjusted <= 0.05)


def test_bootstrap_over_scenes() -> None:
    constant = np.full((3, 10), 0.2)
    assert bootstrap_scene_ci(constant) == pytest.approx((0.2, 0.2))
    rng = np.random.default_rng(0)
    spread = rng.normal(0.1, 0.5, size=(4, 40))
    low, high = bootstrap_scene_ci(spread)
    assert low < spread.mean() < high
    with pytest.raises(ValueError, match="scenes"):
        bootstrap_scene_ci(np.zeros((3, 1)))
