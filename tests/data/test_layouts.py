"""One layout module: datasets and the evaluation pair files by the same rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from erl_losses.data import MSECDataset, SICEDataset
from erl_losses.data.io import write_png
from erl_losses.data.layouts import dataset_pairs, resolve_split
from erl_losses.evaluation import pair_folders


def _img(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, np.zeros((4, 4, 3), np.uint8))


@pytest.fixture
def msec(tmp_path: Path) -> Path:
    for scene in ("a", "b_c"):
        _img(tmp_path / "testing" / "expert_c_testing_set" / f"{scene}.jpg")
        for level in ("N1", "P1.5"):
            _img(tmp_path / "testing" / "INPUT_IMAGES" / f"{scene}_{level}.JPG")
    return tmp_path


def test_dataset_and_evaluation_pair_alike(msec: Path) -> None:
    layout = dataset_pairs(msec, "msec", "test")
    assert layout.gt_dir.name == "expert_c_testing_set"
    assert [(p.scene, p.level) for p in layout.pairs] == [
        ("a", "N1"), ("a", "P1.5"), ("b_c", "N1"), ("b_c", "P1.5"),
    ]  # fmt: skip
    as_predictions = pair_folders(layout.input_dir, msec / "testing", "msec", strict=False)
    assert [tuple(p) for p in layout.pairs] == as_predictions
    assert [(lq, gt) for lq, gt, _ in MSECDataset(msec, "test").pairs] == [
        (p.input, p.gt) for p in layout.pairs
    ]


def test_a_split_folder_is_recognised_whatever_the_split(msec: Path, tmp_path: Path) -> None:
    assert len(dataset_pairs(msec / "testing", "msec", "train").pairs) == 4
    for level in ("low", "over"):
        _img(tmp_path / "SICEV2" / "test" / level / "7.png")
    _img(tmp_path / "SICEV2" / "test" / "mid" / "7.png")
    assert len(SICEDataset(tmp_path, "test")) == 2
    assert len(SICEDataset(tmp_path / "SICEV2" / "test", None)) == 2


def test_errors(msec: Path) -> None:
    with pytest.raises(ValueError, match="Expected protocol"):
        dataset_pairs(msec, "lol", "test")
    with pytest.raises(ValueError, match="Expected levels"):
        dataset_pairs(msec, "msec", "test", levels=["low"])
    with pytest.raises(FileNotFoundError, match="for split 'valid'"):
        resolve_split(msec, "valid")
    with pytest.raises(FileNotFoundError, match="GT_IMAGES or expert_a_testing_set"):
        dataset_pairs(msec, "msec", "test", expert="a")
