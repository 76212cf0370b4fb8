"""Option-file and environment booleans: one strict reader (true/false, yes/no, on/off, 1/0);
anything else is an error naming the key, and an empty ``bcm`` mapping is refused."""

from __future__ import annotations

import pytest

from erl_losses._flags import env_flag, parse_bool
from erl_losses.adapters.vendored import PhaseLoss, SampleRelationLoss
from tests._helpers import TINY_BCM


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), (1, True), (0, False), ("false", False), ("False", False),
     ("no", False), ("0", False), ("off", False), ("yes", True), (" TRUE ", True), ("1", True)],
)  # fmt: skip
def test_parse_bool(value: object, expected: bool) -> None:
    assert parse_bool(value, "key") is expected


@pytest.mark.parametrize("value", ["", "maybe", "ture", 2, -1, 0.5, None, []])
def test_parse_bool_names_the_key(value: object) -> None:
    with pytest.raises(ValueError, match="`gather`"):
        parse_bool(value, "gather")


def test_relation_options_are_read_strictly() -> None:
    loss = SampleRelationLoss(bcm=TINY_BCM, cuda_graphs="false", check_range="false", gather="yes")
    assert loss.loss._graphed is None
    assert loss.loss.check_range is False and loss.loss.gather is True
    with pytest.raises(ValueError, match="cuda_graphs"):
        SampleRelationLoss(bcm=TINY_BCM, cuda_graphs="sometimes")
    assert PhaseLoss(check_range="no").loss.check_range is False
    with pytest.raises(ValueError, match="check_nonfinite"):
        PhaseLoss(check_nonfinite="nope")


def test_an_empty_bcm_mapping_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        SampleRelationLoss(bcm={})


@pytest.mark.parametrize("name", ["ERL_LOSSES_OFFLINE", "ERL_LOSSES_CUDA_GRAPHS", "HF_HUB_OFFLINE"])
def test_environment_flags_are_read_strictly(monkeypatch, name: str) -> None:
    from erl_losses.modules.graphed import cuda_graphs_from_env
    from erl_losses.zoo import is_offline
    from erl_losses.zoo.sources import hub_offline

    read = {"ERL_LOSSES_OFFLINE": is_offline, "ERL_LOSSES_CUDA_GRAPHS": cuda_graphs_from_env,
            "HF_HUB_OFFLINE": hub_offline}[name]  # fmt: skip
    for value, expected in (("", False), ("0", False), ("yes", True), ("off", False)):
        monkeypatch.setenv(name, value)
        assert read() is expected and env_flag(name) is expected
    monkeypatch.setenv(name, "maybe")
    with pytest.raises(ValueError, match=name):
        read()
