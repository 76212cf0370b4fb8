"""Shared fixtures: deterministic seeds and small BCMs that keep the suite fast on a CPU."""

from __future__ import annotations

from pathlib import Path

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
def msec_test_set(tmp_path_factory) -> Path:
    """A tiny rendered MSEC-like test split, rendered once per session: the 3 held-out photos x
    1 crop of 32 px x 5 levels (15 pairs) in ``<root>/test``. Shared, so read-only: a test that
    changes the data copies it first (``shutil.copytree``)."""
    from erl_losses.data import render_dataset  # the data extra, only when a test asks

    root = tmp_path_factory.mktemp("msec_test_set")
    render_dataset(root, crop_size=32, crops_per_photo=1, split="test")
    return root


@pytest.fixture(scope="session")
def default_bcm() -> BatchCorrelationModule:
    torch.manual_seed(0)
    return BatchCorrelationModule().eval()
