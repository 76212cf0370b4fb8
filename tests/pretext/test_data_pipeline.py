"""The pretext's data pipeline: seeded crop streams through DataLoader workers, resumed runs that
draw the same crops, undecodable files skipped with a warning, and ``erl pretrain --dry-run``."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from erl_losses.cli import main
from erl_losses.data.images import FolderImages
from erl_losses.pretext import CropStream, read_metadata
from tests._helpers import NoiseImages
from tests.pretext._helpers import TINY, _equal, _recipe, _run, write_jpeg_folder


def _scanned(tmp_path, **kw):  # type: ignore[no-untyped-def]
    folder = write_jpeg_folder(tmp_path / "gt", **kw)
    images = FolderImages(folder, max_side=56, cache_dir=tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        images.scan()
    return images


def _draw(stream: CropStream, stage: int, count: int) -> list[torch.Tensor]:
    return list(stream.batches(stage, 3, 16, count))


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.slow
def test_the_crop_stream_is_the_same_with_any_workers_and_after_a_restore(tmp_path):
    images = _scanned(tmp_path)
    alone = _draw(CropStream(images, seed=4, workers=0), 2, 4)
    assert alone[0].shape == (3, 3, 16, 16) and alone[0].dtype == torch.uint8
    assert _same(alone, _draw(CropStream(images, 4, workers=2), 2, 4))
    # stopped after one batch, restored into a fresh stream: the next batches are the same
    first = CropStream(images, seed=4, workers=2)
    _draw(first, 2, 1)
    resumed = CropStream(images, seed=4, workers=1)
    resumed.set_state(first.state())
    assert _same(alone[1:], _draw(resumed, 2, 3))
    # the stages draw different streams; another seed draws other crops
    assert not torch.equal(_draw(CropStream(images, seed=4, workers=0), 1, 1)[0], alone[0])
    assert not torch.equal(_draw(CropStream(images, seed=5, workers=0), 2, 1)[0], alone[0])
    with pytest.raises(ValueError, match="seed 9, got 4"):
        CropStream(images, seed=9).set_state(first.state())
    with pytest.raises(ValueError, match="crop-stream state"):
        first.set_state(torch.zeros(5056, dtype=torch.uint8))


def test_an_epoch_is_one_pass_over_a_seeded_permutation():
    source = NoiseImages(count=5, size=16)
    stream = CropStream(source, seed=1, flip=False, workers=0)
    for epoch in range(2):
        crops = next(stream.batches(2, 5, 16, 1))  # a crop of 16 is the whole image
        seen = sorted(
            next(i for i, im in enumerate(source.images) if torch.equal(im, c)) for c in crops
        )
        assert seen == [0, 1, 2, 3, 4], epoch
    assert stream.epoch(2) == 2.0


@pytest.mark.slow
def test_a_run_from_a_folder_with_workers_resumes_with_the_same_crops(tmp_path, monkeypatch):
    from erl_losses.pretext import stages

    folder = write_jpeg_folder(tmp_path / "gt", corrupt=True)
    real = stages.stage_loss
    seen: list[torch.Tensor] = []

    def recording(bcm, recipe, stage, x):  # type: ignore[no-untyped-def]
        seen.append(x.clone())
        return real(bcm, recipe, stage, x)

    monkeypatch.setattr(stages, "stage_loss", recording)
    kw = {"images": folder, "max_side": 56, "cache_dir": tmp_path / "cache", "checkpoint_every": 3}
    with pytest.warns(UserWarning, match=r"Skipping 1 of 7 .*broken\.jpg") as caught:
        straight = _run(tmp_path / "a", workers=2, **kw)
    assert sum("Skipping" in str(w.message) for w in caught) == 1  # one warning, not one per use
    assert straight.skipped == (str(folder / "broken.jpg"),)
    data = json.loads(read_metadata(straight.weights)["data"])
    assert data["num_images"] == 6 and data["num_skipped"] == 1
    assert data["skipped"] == ["broken.jpg"]
    uninterrupted, seen[:] = list(seen), []

    class Stop(Exception):
        pass

    def crash(step: int, stage: int, loss: float) -> None:
        if step == 7:
            raise Stop

    with pytest.warns(UserWarning, match="broken"), pytest.raises(Stop):
        _run(tmp_path / "b", workers=2, callback=crash, **kw)
    assert _same(seen, uninterrupted[:7])
    seen[:] = []
    with pytest.warns(UserWarning, match="broken"):
        resumed = _run(tmp_path / "b", workers=1, resume=True, **kw)  # other workers: same crops
    assert _same(seen, uninterrupted[6:])  # steps 7 and 8, from the checkpoint of step 6
    assert _equal(resumed.bcm.state_dict(), straight.bcm.state_dict())


def test_a_checkpoint_of_the_earlier_sampler_resumes_at_its_step(tmp_path):
    from safetensors.torch import load_file, save_file

    _run(tmp_path, _recipe(stage2_steps=2))
    path = tmp_path / "checkpoint.safetensors"
    tensors = load_file(str(path))
    tensors["rng.crops"] = torch.Generator().manual_seed(8).get_state()  # the earlier format
    save_file(tensors, str(path), metadata=read_metadata(path))
    with pytest.warns(UserWarning, match="crop generator of an earlier"):
        _run(tmp_path, _recipe(stage2_steps=2), resume=True)


def test_only_undecodable_files_is_an_error_naming_the_folder(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    with pytest.raises(ValueError, match="decodable image files"):
        _run(tmp_path / "o", images=folder, max_side=32, cache_dir=tmp_path / "c")


def test_cli_dry_run_reports_the_folder_and_writes_nothing(tmp_path, capsys):
    folder = write_jpeg_folder(tmp_path / "gt", corrupt=True)
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = [
        "pretrain", "--images", str(folder), "--images", str(folder / "nested"), "--dry-run",
        "--out", str(out), "--cache-dir", str(cache), "--max-side", "56", "--no-progress",
        "--bcm-config", json.dumps(TINY), "--stage1-steps", "5", "--stage2-steps", "3",
        "--crop-size", "16", "--workers", "1",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "7 files, 6 decodable, 1 skipped" in printed  # nested listed once, hidden file skipped
    assert "broken.jpg" in printed and "epoch ~" in printed and "whole run" in printed
    assert "ms/step on cpu" in printed
    assert not out.exists() and not cache.exists()
