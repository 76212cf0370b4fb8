"""The compatibility patches of ``erl_losses.adapters.basicsr.compat``, in process.

The scripts that run them end to end (a vendored ``train.py`` as ``__main__``, the ``python -c``
route) are in ``test_basicsr_scripts.py``.
"""

from __future__ import annotations

import sys
import warnings
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import erl_losses.adapters.basicsr  # noqa: F401  -- before basicsr (torchvision alias)
from erl_losses.adapters.basicsr import compat


def test_alias_only_when_the_module_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    sentinel = object()
    monkeypatch.setitem(sys.modules, "torchvision.transforms.functional_tensor", sentinel)
    assert compat.install_torchvision_alias() is False
    assert sys.modules["torchvision.transforms.functional_tensor"] is sentinel
    monkeypatch.delitem(sys.modules, "torchvision.transforms.functional_tensor")
    assert compat.install_torchvision_alias() is True
    import torchvision.transforms._functional_tensor as private

    assert sys.modules["torchvision.transforms.functional_tensor"] is private


def test_patches_are_at_the_source_and_in_every_binding() -> None:
    import basicsr
    import basicsr.data
    import basicsr.test
    import basicsr.train
    import basicsr.utils.options

    assert compat.is_installed()
    # The source modules, so that a later `from basicsr.data import build_dataloader` (a
    # vendored train.py run as __main__) gets the patched function.
    assert basicsr.data.build_dataloader is compat.build_dataloader
    assert basicsr.utils.options.parse_options is compat.parse_options
    # ... and the bindings made before the patch.
    for module in (basicsr, basicsr.train, basicsr.test):
        assert module.build_dataloader is compat.build_dataloader
        assert module.parse_options is compat.parse_options
    assert basicsr.train.load_resume_state is compat.load_resume_state
    compat.install()  # idempotent: the originals stay basicsr's
    assert compat._ORIGINALS["build_dataloader"].__module__ == "basicsr.data"


def _synthetic(tmp_path: Path, **extra: object) -> object:
    from basicsr.data import build_dataset

    return build_dataset(
        {
            "name": "syn",
            "type": "SyntheticExposureDataset",
            "phase": "train",
            "dataroot": str(tmp_path / "syn"),
            "split": "train",
            "render": {"crop_size": 16, "crops_per_photo": 1},
            **extra,
        }
    )


def test_mixed_exposure_loader_mixes_every_batch(tmp_path: Path) -> None:
    import basicsr.data

    dataset = _synthetic(tmp_path, mixed_exposure=True)
    assert (tmp_path / "syn" / "test" / "GT_IMAGES").is_dir()  # rendered on first use
    opt = OrderedDict(
        phase="train", batch_size_per_gpu=4, num_worker_per_gpu=0, mixed_exposure=True
    )
    loader = basicsr.data.build_dataloader(dataset, opt, num_gpu=0, dist=False, seed=0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        batches = list(loader)
    assert not [w for w in record if "mixed_exposure" in str(w.message)]
    assert batches and all(len(b["lq"]) == 4 for b in batches)
    assert all({"under", "over"} <= set(b["group"]) for b in batches)


def test_mixed_exposure_without_the_sampler_warns(tmp_path: Path) -> None:
    dataset = _synthetic(tmp_path, mixed_exposure=True)
    # A loader that basicsr's unpatched function (or any other code) built.
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, shuffle=True)
    with pytest.warns(RuntimeWarning, match=r"mixed_exposure: true.*NOT mixed"):
        next(iter(loader))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset[0]  # once per dataset, not per item


def _save_states(states: Path, iterations: tuple[int, ...]) -> None:
    states.mkdir(parents=True)
    for it in iterations:
        state = {"iter": it, "epoch": 0, "optimizers": [], "schedulers": []}
        torch.save(state, states / f"{it}.state")


def _resume_opt(tmp_path: Path, states: Path) -> dict:
    return {
        "name": "run",
        "num_gpu": 0,
        "auto_resume": True,
        "network_g": {},
        "path": {"training_states": str(states), "models": str(tmp_path / "models")},
    }


def test_cpu_resume_loads_the_newest_state_to_cpu(tmp_path: Path) -> None:
    states = tmp_path / "experiments" / "run" / "training_states"
    _save_states(states, (3, 7))
    (states / "notes.state").write_text("not an iteration")  # ignored, as basicsr would crash
    opt = _resume_opt(tmp_path, states)
    state = compat.load_resume_state(opt)
    assert state is not None and state["iter"] == 7
    assert opt["path"]["resume_state"].endswith("7.state")
    assert opt["path"]["pretrain_network_g"].endswith("net_g_7.pth")
    assert compat.load_resume_state({**opt, "auto_resume": False, "path": {}}) is None


@pytest.mark.parametrize("damage", ["truncate", "empty"])
def test_auto_resume_skips_a_truncated_latest_state(tmp_path: Path, damage: str) -> None:
    states = tmp_path / "training_states"
    _save_states(states, (2, 4, 6))
    latest = states / "6.state"
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"")
    opt = _resume_opt(tmp_path, states)
    with pytest.warns(RuntimeWarning, match=r"6\.state.*previous one"):
        state = compat.load_resume_state(opt)
    assert state["iter"] == 4
    assert opt["path"]["resume_state"].endswith("4.state")
    assert opt["path"]["pretrain_network_g"].endswith("net_g_4.pth")


def test_unreadable_states_end_in_one_clear_error(tmp_path: Path) -> None:
    states = tmp_path / "training_states"
    states.mkdir()
    (states / "5.state").write_bytes(b"")
    with pytest.raises(RuntimeError, match=r"Expected a readable training state.*5\.state"):
        compat.load_resume_state(_resume_opt(tmp_path, states))
    # An explicit `path.resume_state` is never replaced by another file.
    _save_states(tmp_path / "other", (1,))
    opt = {**_resume_opt(tmp_path, states), "auto_resume": False}
    opt["path"]["resume_state"] = str(states / "5.state")
    with pytest.raises(RuntimeError, match=r"5\.state: EOFError"):
        compat.load_resume_state(opt)
