"""erl_losses.evaluation.bank: in-memory scoring equals the folder protocol; the table layout."""

from __future__ import annotations

import pytest
import torch

from erl_losses.data import PairBank
from erl_losses.evaluation import evaluate_folders, run_net_on_dataset
from erl_losses.evaluation.bank import evaluate_bank, format_table, group_rows, level_table


class Brighten(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.3 + 0.02


def test_evaluate_bank_equals_writing_and_scoring_the_folders(msec_test_set, tmp_path) -> None:
    bank = PairBank.from_msec(msec_test_set, "test")
    net = Brighten()
    in_memory = evaluate_bank(net, bank, "brighten", chunk=4)
    pred_dir = run_net_on_dataset(net, msec_test_set, tmp_path / "pred").pred_dir
    on_disk = evaluate_folders(pred_dir, msec_test_set / "test", "msec", method="brighten")
    assert len(in_memory.images) == len(on_disk.images) == 15
    by_name = {s.name: s for s in on_disk.images}
    for score in in_memory.images:
        other = by_name[score.name]
        assert (score.level, score.group) == (other.level, other.group)
        assert score.psnr == pytest.approx(other.psnr, abs=1e-6)
        assert score.ssim == pytest.approx(other.ssim, abs=1e-6)
    rows = group_rows(in_memory)
    assert set(rows) == {"Under", "Over", "Average"} and rows["Average"]["count"] == 15


def test_format_table_has_groups_and_delta() -> None:
    row = {g: {"psnr": 20.0, "ssim": 0.8} for g in ("Under", "Over", "Average")}
    better = {g: {"psnr": 20.5, "ssim": 0.81} for g in ("Under", "Over", "Average")}
    table = format_table({"base": row, "erl": better})
    assert "| ERL - baseline | +0.50 | +0.0100 | +0.50 | +0.0100 | +0.50 | +0.0100 |" in table
    assert table.splitlines()[0].startswith("| Method | Under PSNR | Under SSIM | Over PSNR")
    assert "ERL - baseline" not in format_table({"base": row, "erl": better}, delta=False)


def test_level_table_has_one_column_per_level(msec_test_set) -> None:
    bank = PairBank.from_msec(msec_test_set, "test")
    report = evaluate_bank(torch.nn.Identity(), bank, "Input")
    lines = level_table({"input": report}).splitlines()
    assert lines[0] == "| PSNR per level | EV N1.5 | EV N1 | EV 0 | EV P1 | EV P1.5 |"
    by_level = report.by_level()
    assert (
        lines[2]
        == "| Input | "
        + " | ".join(f"{by_level[level].psnr:.2f}" for level in ("N1.5", "N1", "0", "P1", "P1.5"))
        + " |"
    )
