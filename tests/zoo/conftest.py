"""Fixtures of the zoo tests."""

from __future__ import annotations

import pytest
import torch

from erl_losses import BatchCorrelationModule
from erl_losses.pretext import save_weights
from tests._helpers import TINY_SAVED_BCM as TINY
from tests.zoo._helpers import FILE


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a tiny zoo-format BCM file."""
    torch.manual_seed(0)
    path = save_weights(
        BatchCorrelationModule(**TINY), tmp_path_factory.mktemp("w") / FILE, name="tiny"
    )
    return path.read_bytes()
