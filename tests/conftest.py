"""Shared fixtures: deterministic seeds and small BCMs that keep the suite fast on a CPU."""

from __future__ import annotations

import pytest
import torch

from erl_losses import BatchCorrelationModule
from tests._helpers import TINY_BCM

# The suite runs on small tensors, often in two xdist workers on a 2-core machine: intra-op
# threads only add contention there (measured about 10x slower for the reference nets).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def tiny_bcm() -> BatchCorrelationModule:
    return BatchCorrelationModule(**TINY_BCM).eval()


@pytest.fixture(scope="session")
def default_bcm() -> BatchCorrelationModule:
    torch.manual_seed(0)
    return BatchCorrelationModule().eval()
