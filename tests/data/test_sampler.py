"""MixedExposureBatchSampler: every batch mixes under- and over-exposed samples."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from erl_losses.data.sampler import MixedExposureBatchSampler

mixed_groups = st.lists(st.sampled_from(["under", "over"]), min_size=2, max_size=60).filter(
    lambda g: "under" in g and "over" in g
)


@settings(max_examples=200, deadline=None)
@given(
    groups=mixed_groups,
    batch_size=st.integers(2, 12),
    drop_last=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_every_batch_is_mixed_and_full(groups, batch_size, drop_last, seed) -> None:
    sampler = MixedExposureBatchSampler(groups, batch_size, drop_last=drop_last, seed=seed)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    nu, no = groups.count("under"), groups.count("over")
    for batch in batches:
        assert len(batch) == batch_size
        kinds = {groups[i] for i in batch}
        assert kinds == {"under", "over"}
    seen = Counter(i for batch in batches for i in batch)
    if drop_last:
        assert len(sampler) == min(len(groups) // batch_size, nu, no)
        assert all(count == 1 for count in seen.values())
    else:
        expected = max(
            math.ceil(len(groups) / batch_size),
            math.ceil(nu / (batch_size - 1)),
            math.ceil(no / (batch_size - 1)),
        )
        assert len(sampler) == expected
        assert set(seen) == set(range(len(groups)))
        # Per-batch under counts differ by at most one.
        per_batch = [sum(groups[i] == "under" for i in batch) for batch in batches]
        assert max(per_batch) - min(per_batch) <= 1


def test_deterministic_per_seed_and_epoch() -> None:
    groups = ["under"] * 7 + ["over"] * 11
    a = MixedExposureBatchSampler(groups, 4, seed=5)
    b = MixedExposureBatchSampler(groups, 4, seed=5)
    first_a, first_b = list(a), list(b)
    assert first_a == first_b
    second = list(a)  # iterating advances the epoch
    assert second != first_a
    a.set_epoch(0)
    assert list(a) == first_a
    assert list(MixedExposureBatchSampler(groups, 4, seed=6)) != first_a


def test_proportions_follow_the_dataset() -> None:
    groups = ["under"] * 40 + ["over"] * 60  # MSEC's 2:3
    batches = list(MixedExposureBatchSampler(groups, 5))
    assert len(batches) == 20
    assert all(sum(groups[i] == "under" for i in b) == 2 for b in batches)


@pytest.mark.parametrize("bad", [1, 0, -3, True, 2.0])
def test_batch_size_below_two_is_rejected(bad) -> None:
    with pytest.raises(ValueError, match="Expected batch_size to be an int >= 2"):
        MixedExposureBatchSampler(["under", "over"], bad)


def test_groups_are_validated() -> None:
    with pytest.raises(ValueError, match="got 0 under and 3 over"):
        MixedExposureBatchSampler(["over"] * 3, 2)
    with pytest.raises(ValueError, match=r"Expected groups to be 'under' or 'over', got \['mid'\]"):
        MixedExposureBatchSampler(["under", "mid"], 2)
