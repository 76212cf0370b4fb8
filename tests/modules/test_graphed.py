"""CUDA-graph replay of the BCM: the keying and capture policy, and the CPU fallback.

The capture itself needs a GPU (tests/losses/test_cuda.py); here a stand-in capture records what
would be captured when.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from erl_losses import BatchCorrelationModule, SampleRelationLoss
from erl_losses.modules.graphed import GraphCache, GraphedBCM, graph_key
from tests._helpers import TINY_BCM


@pytest.fixture
def bcm() -> BatchCorrelationModule:
    torch.manual_seed(0)
    return BatchCorrelationModule(**TINY_BCM).requires_grad_(False).eval()


def _recording_cache(**kw: int) -> tuple[GraphCache, list[tuple[int, ...]]]:
    captured: list[tuple[int, ...]] = []

    def capture(x: torch.Tensor):  # type: ignore[no-untyped-def]
        captured.append(tuple(x.shape))
        return lambda y: y * 2

    return GraphCache(capture, **kw), captured


def test_a_key_is_captured_on_its_warmup_call_and_then_replayed() -> None:
    cache, captured = _recording_cache(warmup_calls=2)
    x = torch.ones(2, 3)
    assert cache.get("a", x) is None  # first sight: eager
    runner = cache.get("a", x)
    assert runner is not None and captured == [(2, 3)]
    assert cache.get("a", x) is runner and cache.captures == 1
    assert torch.equal(runner(x), 2 * x)


def test_least_recently_used_keys_are_dropped_and_recaptured() -> None:
    cache, _ = _recording_cache(max_graphs=2, warmup_calls=1)
    for key in ("a", "b", "a", "c"):  # "b" is the least recently used when "c" arrives
        cache.get(key, torch.ones(1))
    assert list(cache.runners) == ["a", "c"]
    cache.get("b", torch.ones(1))
    assert cache.captures == 4 and list(cache.runners) == ["c", "b"]
    cache.clear()
    assert not cache.runners and cache.get("c", torch.ones(1)) is not None


def test_bad_cache_settings_are_named() -> None:
    with pytest.raises(ValueError, match="max_graphs"):
        GraphCache(lambda x: x, max_graphs=0)


def test_the_key_follows_everything_a_graph_depends_on(bcm) -> None:
    x = torch.rand(4, 3, 32, 32)
    base = graph_key(x, bcm)
    assert graph_key(torch.rand(4, 3, 32, 32), bcm) == base  # same shapes: same graph
    changed = [
        graph_key(torch.rand(2, 3, 32, 32), bcm),  # batch size
        graph_key(torch.rand(4, 3, 32, 40), bcm),  # image size
        graph_key(x.double(), bcm),  # dtype
        graph_key(x.clone().requires_grad_(), bcm),  # forward + backward vs forward only
    ]
    assert len({base, *changed}) == 5
    with torch.no_grad():
        assert graph_key(x.clone().requires_grad_(), bcm) == base
    other = copy.deepcopy(bcm)
    assert graph_key(x, other) != base  # other weights' storage (as after .to())
    bcm.set_work_size(16)
    assert graph_key(x, bcm) != base


@pytest.mark.parametrize("variant", ["paper", "centred"])
def test_cuda_graphs_fall_back_to_the_same_loss_on_cpu(bcm, variant) -> None:
    gen = torch.Generator().manual_seed(1)
    pred = torch.rand(4, 3, 32, 32, generator=gen, requires_grad=True)
    target = torch.rand(4, 3, 32, 32, generator=gen)
    results = []
    for graphs in (False, True):
        loss_fn = SampleRelationLoss(bcm, cuda_graphs=graphs, variant=variant)
        pred.grad = None
        for _ in range(3):  # past the warm-up calls a GPU would capture on
            value = loss_fn(pred, target)
        value.backward()
        results.append((value.detach(), pred.grad.clone()))
        if graphs:
            assert loss_fn._graphed.cache.captures == 0
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


def test_environment_turns_graphs_on(bcm, monkeypatch) -> None:
    monkeypatch.setenv("ERL_LOSSES_CUDA_GRAPHS", "1")
    assert SampleRelationLoss(bcm)._graphed is not None
    assert SampleRelationLoss(bcm, cuda_graphs=False)._graphed is None
    monkeypatch.delenv("ERL_LOSSES_CUDA_GRAPHS")
    assert SampleRelationLoss(bcm)._graphed is None


def test_graphed_bcm_stands_in_for_the_bcm(bcm) -> None:
    graphed = GraphedBCM(bcm)
    for name in ("in_channels", "min_size", "token_dim", "device"):  # the RelationEncoder protocol
        assert getattr(graphed, name) == getattr(bcm, name)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(graphed.relate(graphed.encode_tokens(x)), bcm(x))
    assert not graphed.graphable(x)
    assert torch.equal(graphed(x), bcm(x))
    loss_fn = SampleRelationLoss(bcm, cuda_graphs=True)
    clone = copy.deepcopy(loss_fn)  # copies (e.g. EMA or checkpoint helpers) keep working
    assert torch.equal(clone(x, x), loss_fn(x, x))
    # the copy captures its own BCM, never the original's
    assert clone._graphed.cache.capture.__self__.bcm is clone.bcm is not loss_fn.bcm
    restored = pickle.loads(pickle.dumps(loss_fn))
    assert torch.equal(restored(x, x), loss_fn(x, x))
    assert restored._graphed.cache.captures == 0
    loss_fn.double()  # moving the loss drops graphs captured for the old dtype
    assert loss_fn._graphed.cache.runners == {}
