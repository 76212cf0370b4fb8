"""erl_losses.data.PairBank: loading a rendered split, seeded mixed batches, curve and mixed picks."""

from __future__ import annotations

import pytest
import torch

from erl_losses.data import MixedExposureBatchSampler, PairBank


@pytest.fixture(scope="module")
def bank(msec_test_set) -> PairBank:
    return PairBank.from_msec(msec_test_set, "test")


def test_pair_bank_loads_every_pair_as_uint8(bank) -> None:
    # 3 held-out photos x 1 crop x 5 levels.
    assert len(bank) == 15 and bank.lq.dtype == bank.gt.dtype == torch.uint8
    assert bank.lq.shape == bank.gt.shape == (15, 3, 32, 32)
    assert bank.image_size == (32, 32) and bank.device == torch.device("cpu")
    # MSEC groups: under = N1.5, N1; over = 0, P1, P1.5 (the paper's table-1 split).
    assert bank.groups.count("under") == 6 and bank.groups.count("over") == 9
    assert all(name.endswith(level) for name, level in zip(bank.names, bank.levels, strict=True))


def test_pair_bank_batches_mix_exposures_and_are_seeded(bank) -> None:
    indices = next(iter(MixedExposureBatchSampler(bank.groups, 4, seed=0)))
    assert {bank.groups[i] for i in indices} == {"under", "over"}
    lq, gt = bank.batch(indices, 16, torch.Generator().manual_seed(1))
    lq2, gt2 = bank.batch(indices, 16, torch.Generator().manual_seed(1))
    assert lq.shape == gt.shape == (4, 3, 16, 16)
    assert float(lq.min()) >= 0.0 and float(lq.max()) <= 1.0
    torch.testing.assert_close(lq, lq2)
    torch.testing.assert_close(gt, gt2)
    # A full-size "crop" without flips is the stored pair itself (the same window in both).
    one, one_gt = bank.batch([indices[0]], 32, torch.Generator().manual_seed(5))
    stored = bank.lq[indices[0]].float() / 255
    assert any(torch.equal(one[0], stored.flip(d)) for d in ([], [1], [2], [1, 2]))
    del one_gt


def test_pair_bank_center_crops(bank) -> None:
    lq, gt = bank.center_crops(16)
    assert lq.shape == gt.shape == (15, 3, 16, 16)
    torch.testing.assert_close(lq, bank.lq[..., 8:24, 8:24].float() / 255)


def test_pair_bank_mixed_indices_alternate_under_and_over(bank) -> None:
    picks = bank.mixed_indices(6)
    assert [bank.groups[i] for i in picks] == ["under", "over"] * 3
    assert len({bank.names[i].rpartition("_")[0] for i in picks}) > 1  # several scenes
    with pytest.raises(ValueError, match="Expected `size` <= twice the smaller"):
        bank.mixed_indices(20)
