"""BatchCorrelationModule: shapes, the batch-axis relation, permutation equivariance."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from erl_losses import BatchCorrelationModule
from tests._helpers import TINY_BCM


def test_default_module_shapes(default_bcm: BatchCorrelationModule) -> None:
    x = torch.rand(4, 3, 40, 56)
    with torch.no_grad():
        assert default_bcm(x).shape == (4, default_bcm.token_dim)
        assert default_bcm.reconstruct(x).shape == x.shape
        assert default_bcm.reconstruct(x, relation=False).shape == x.shape
        attention = default_bcm.batch_attention(x)
    assert attention.shape == (4, 4)
    torch.testing.assert_close(attention.sum(dim=1), torch.ones(4))


def test_default_weights_fit_the_zoo_budget(default_bcm: BatchCorrelationModule) -> None:
    size = sum(p.numel() * p.element_size() for p in default_bcm.parameters())
    assert size <= 8 * 2**20


@pytest.mark.parametrize("size", [(8, 8), (37, 51), (67, 93), (200, 130)])
def test_any_size_the_encoder_takes(tiny_bcm: BatchCorrelationModule, size) -> None:
    x = torch.rand(2, 3, *size)
    assert tiny_bcm.reconstruct(x).shape == x.shape
    assert tiny_bcm(x).shape == (2, tiny_bcm.token_dim)


@settings(max_examples=12, deadline=None)
@given(batch=st.integers(2, 6), data=st.data())
def test_relation_crosses_the_batch(batch: int, data: st.DataObject) -> None:
    torch.manual_seed(0)
    bcm = BatchCorrelationModule(**TINY_BCM).eval()
    i = data.draw(st.integers(0, batch - 1), label="i")
    j = data.draw(st.integers(0, batch - 1).filter(lambda v: v != i), label="j")
    x = torch.rand(batch, 3, 16, 16)
    changed = x.clone()
    changed[j] = torch.rand(3, 16, 16)
    with torch.no_grad():
        before, after = bcm(x), bcm(changed)
        tokens_before, tokens_after = bcm.encode_tokens(x), bcm.encode_tokens(changed)
    # Row i saw sample j change through attention ...
    assert not torch.allclose(before[i], after[i], atol=1e-6)
    # ... although its own per-sample tokens did not change.
    torch.testing.assert_close(tokens_before[i], tokens_after[i])


@settings(max_examples=12, deadline=None)
@given(perm=st.permutations(list(range(5))))
def test_permuting_the_batch_permutes_the_features(perm: list[int]) -> None:
    torch.manual_seed(0)
    bcm = BatchCorrelationModule(**TINY_BCM).eval()
    x = torch.rand(5, 3, 16, 16)
    index = torch.tensor(perm)
    with torch.no_grad():
        torch.testing.assert_close(bcm(x[index]), bcm(x)[index], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            bcm.batch_attention(x[index]), bcm.batch_attention(x)[index][:, index]
        )


def test_work_size_resizes_only_larger_inputs() -> None:
    bcm = BatchCorrelationModule(**TINY_BCM, work_size=32).eval()
    big = torch.rand(2, 3, 64, 48)
    small = F.interpolate(big, size=(32, 32), mode="area")
    with torch.no_grad():
        torch.testing.assert_close(bcm(big), bcm(small))
        within = torch.rand(2, 3, 24, 30)
        full = BatchCorrelationModule(**TINY_BCM, work_size=None).eval()
        full.load_state_dict(bcm.state_dict())
        torch.testing.assert_close(bcm(within), full(within))
        assert not torch.allclose(bcm(big), full(big))


def test_config_rebuilds_the_module(tiny_bcm: BatchCorrelationModule) -> None:
    clone = BatchCorrelationModule(**tiny_bcm.config)
    clone.load_state_dict(tiny_bcm.state_dict())
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(clone(x), tiny_bcm(x))


def test_stage_parameter_groups(tiny_bcm: BatchCorrelationModule) -> None:
    stage1 = {id(p) for p in tiny_bcm.encoder_decoder_parameters()}
    stage2 = {id(p) for p in tiny_bcm.relation_parameters()}
    every = {id(p) for p in tiny_bcm.parameters()}
    assert stage1 | stage2 == every
    assert stage1 & stage2 == {id(p) for p in tiny_bcm.fuse.parameters()}


def test_train_mode_is_deterministic(tiny_bcm: BatchCorrelationModule) -> None:
    tiny_bcm.train()
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(tiny_bcm(x), tiny_bcm(x), rtol=0, atol=0)


def test_gradcheck_float64() -> None:
    bcm = BatchCorrelationModule(
        channels=2, feat_channels=2, grid=2, d_model=4, num_heads=2, num_layers=1
    ).double()
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: bcm(t).sum(dim=1), (x,), eps=1e-6, atol=1e-4, fast_mode=True
    )


def test_float64_and_half_inputs_are_cast(tiny_bcm: BatchCorrelationModule) -> None:
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(tiny_bcm(x.double()), tiny_bcm(x))
        assert tiny_bcm(x.half()).dtype == torch.float32


@pytest.mark.parametrize(
    "x,error,match",
    [
        (torch.rand(3, 16, 16), ValueError, r"\(B, C, H, W\).*unsqueeze"),
        (torch.rand(2, 1, 16, 16), ValueError, "Expected `x` with 3 channels, got 1"),
        (torch.rand(2, 3, 4, 16), ValueError, "at least 8"),
        (torch.rand(0, 3, 16, 16), ValueError, "empty batch"),
        (torch.randint(0, 255, (2, 3, 16, 16)), TypeError, "floating-point"),
        (torch.rand(2, 3, 16, 16, device="meta"), ValueError, "BCM's device"),
    ],
)
def test_bad_input_is_named(tiny_bcm: BatchCorrelationModule, x, error, match) -> None:
    with pytest.raises(error, match=match):
        tiny_bcm(x)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"grid": 0}, "`grid`"),
        ({"channels": 2.5}, "`channels`"),
        ({"work_size": 4}, "Expected `work_size` to be an int >= 8 or None, got 4"),
        ({"work_size": True}, "`work_size`"),
        ({"d_model": 10, "num_heads": 3}, "divisible"),
    ],
)
def test_bad_config_is_named(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        BatchCorrelationModule(**kwargs)


def test_bad_tokens_and_layer_are_named(tiny_bcm: BatchCorrelationModule) -> None:
    with pytest.raises(ValueError, match="`tokens`"):
        tiny_bcm.relate(torch.rand(2, 5))
    with pytest.raises(ValueError, match="`layer`"):
        tiny_bcm.batch_attention(torch.rand(2, 3, 16, 16), layer=5)
