"""`erl probe`: the relational diagnostics of a zoo BCM, printed and as JSON."""

from __future__ import annotations

import json

import pytest

from erl_losses.cli import main


@pytest.mark.slow
def test_probe_prints_the_three_measurements(capsys) -> None:
    assert main(["probe", "bcm-l1-photos", "--crops", "4", "--crop-size", "64", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["variant"] == "paper" and data["num_crops"] == 4 and data["crop_size"] == 64
    assert 0.0 < data["attention_entropy_fraction"] <= 1.0
    assert 0.0 <= data["cross_sample_gradient_share"] <= 1.0
    assert main(["probe", "bcm-l1-photos", "--variant", "centred", "--crops", "4"]) == 0
    text = capsys.readouterr().out
    assert "loss variant: centred" in text and "relational index R" in text


def test_probe_refuses_an_unknown_bcm(capsys) -> None:
    assert main(["probe", "no-such-bcm", "--crops", "4"]) == 2
    assert "no-such-bcm" in capsys.readouterr().err
