"""Every user error of the `erl` CLI ends in one line naming the file or argument (exit 2);
Ctrl-C exits 130; nothing is written over an input; `erl --help` runs without torch."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from erl_losses.cli import main
from erl_losses.data.io import write_png


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    from safetensors.torch import save_file

    from erl_losses.archs import build_arch

    path = tmp_path_factory.mktemp("w") / "eclnet.safetensors"
    save_file(build_arch("ECLNet").state_dict(), str(path))
    return path


@pytest.fixture
def images(tmp_path) -> list[Path]:
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    return [
        write_png(folder / f"{name}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        for name in ("a", "b")
    ]


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def _enhance(weights: Path, *args: str) -> list[str]:
    return ["enhance", "--net", "ECLNet", "--weights", str(weights), *args]


def test_enhance_never_writes_over_an_input(weights, images, capsys):
    before = [p.read_bytes() for p in images]
    assert main(_enhance(weights, *map(str, images), "--out", str(images[0].parent))) == 2
    _one_line_error(capsys, "overwrite an input", "a.png")
    assert [p.read_bytes() for p in images] == before
    # Through another spelling of the same folder, too.
    other = images[0].parent / ".." / "in"
    assert main(_enhance(weights, str(images[1]), "--out", str(other))) == 2
    assert [p.read_bytes() for p in images] == before


def test_eval_net_never_writes_over_the_dataset(weights, tmp_path, capsys):
    rng = np.random.default_rng(3)
    inputs = tmp_path / "test" / "INPUT_IMAGES"
    (tmp_path / "test" / "GT_IMAGES").mkdir(parents=True)
    inputs.mkdir()
    write_png(tmp_path / "test" / "GT_IMAGES" / "s.png", np.zeros((16, 16, 3), np.uint8))
    lq = write_png(inputs / "s_N1.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    before = lq.read_bytes()
    argv = ["eval", "--net", "ECLNet", "--weights", str(weights), "--data", str(tmp_path)]
    assert main([*argv, "--out", str(inputs)]) == 2
    _one_line_error(capsys, "overwrite an input", "s_N1.png")
    assert lq.read_bytes() == before


def test_enhance_out_that_is_a_file(weights, images, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("keep")
    assert main(_enhance(weights, str(images[0]), "--out", str(target))) == 2
    _one_line_error(capsys, "--out", "taken")
    assert target.read_text() == "keep"


@pytest.mark.parametrize("content", [b"", b"GIF89a not really", "truncated"])
def test_enhance_bad_image_names_the_file(weights, images, tmp_path, capsys, content):
    bad = tmp_path / "bad.png"
    if content == "truncated":
        data = images[0].read_bytes()
        content = data[: len(data) // 2]
    bad.write_bytes(content)
    assert main(_enhance(weights, str(bad), "--out", str(tmp_path / "out"))) == 2
    _one_line_error(capsys, "bad.png")


def test_truncated_safetensors_names_the_file(weights, images, tmp_path, capsys):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(weights.read_bytes()[:1000])
    assert main(_enhance(cut, str(images[0]), "--out", str(tmp_path / "out"))) == 2
    _one_line_error(capsys, "cut.safetensors")


class _Payload:
    """Unpickling this creates a marker file: stands in for arbitrary code in a pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_in_weights_is_refused_not_run(images, tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"w": _Payload(marker)}))
    assert main(_enhance(evil, str(images[0]), "--out", str(tmp_path / "out"))) == 2
    _one_line_error(capsys, "evil.pth", "pickled")
    assert not marker.exists()


def test_unavailable_device_is_one_line(weights, images, tmp_path, capsys):
    assert (
        main(_enhance(weights, str(images[0]), "--out", str(tmp_path / "o"), "--device", "cuda:7"))
        == 2
    )
    _one_line_error(capsys, "cuda:7")
    assert (
        main(_enhance(weights, str(images[0]), "--out", str(tmp_path / "o"), "--device", "tpu"))
        == 2
    )
    _one_line_error(capsys, "tpu")


def test_absent_cuda_index_is_one_line(weights, images, tmp_path, monkeypatch, capsys):
    # A one-GPU machine, simulated: cuda:7 must be refused before anything runs on it.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    argv = _enhance(weights, str(images[0]), "--out", str(tmp_path / "o"), "--device", "cuda:7")
    assert main(argv) == 2
    _one_line_error(capsys, "cuda:7", "1 visible")


def test_eval_checks_outputs_before_the_work(tmp_path, images, capsys):
    pred = tmp_path / "pred"
    gt = tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    write_png(pred / "s_N1.png", np.zeros((16, 16, 3), np.uint8))
    write_png(gt / "s.png", np.zeros((16, 16, 3), np.uint8))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    base = ["eval", "--pred", str(pred), "--gt", str(gt), "--partial", "--metrics", "skimage"]
    assert main([*base, "--json", str(blocker / "r.json")]) == 2
    captured = capsys.readouterr()
    assert "--json" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "PSNR" not in captured.out  # refused before evaluating
    assert main([*base, "--csv", str(tmp_path)]) == 2
    _one_line_error(capsys, "--csv")
    assert main([*base, "--json", str(tmp_path / "r.json")]) == 0


def test_missing_optional_package_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import now raises ImportError
    args = ["eval", "--pred", str(tmp_path), "--gt", str(tmp_path), "--fidelity"]
    assert main(args) == 2
    _one_line_error(capsys, 'pip install "erl-losses[fidelity]"')


def test_ctrl_c_exits_130(weights, images, tmp_path, monkeypatch, capsys):
    import erl_losses.evaluation.inference as inference

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(inference, "enhance_images", interrupted)
    assert main(_enhance(weights, str(images[0]), "--out", str(tmp_path / "o"))) == 130
    assert "interrupted" in capsys.readouterr().err


def test_bugs_keep_their_traceback(weights, images, tmp_path, monkeypatch):
    import erl_losses.evaluation.inference as inference

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(inference, "enhance_images", bug)
    with pytest.raises(ZeroDivisionError):
        main(_enhance(weights, str(images[0]), "--out", str(tmp_path / "o")))


_BLOCKED_RUN = textwrap.dedent(
    """
    import os
    import sys

    BLOCKED = os.environ["ERL_TEST_BLOCK"]

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == BLOCKED or name.startswith(BLOCKED + "."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Block())
    from erl_losses.cli import main

    code = main(sys.argv[1:])
    assert BLOCKED not in sys.modules
    sys.exit(code)
    """
)


def _run_without(module: str, argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "ERL_TEST_BLOCK": module}
    return subprocess.run(
        [sys.executable, "-c", _BLOCKED_RUN, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.mark.parametrize("argv", [["--help"], ["zoo", "list"], ["eval", "--help"]])
def test_cli_starts_without_torch(argv):
    result = _run_without("torch", argv)
    assert result.returncode == 0, result.stderr
    assert result.stdout


@pytest.mark.parametrize(
    ("module", "command"),
    [
        ("numpy", "render --out {tmp}/set"),
        ("numpy", "eval --pred {tmp} --gt {tmp}"),
        ("numpy", "enhance {tmp}/x.png --net ECLNet --weights {tmp}/w.pt --out {tmp}"),
        ("numpy", "demo --out {tmp}/demo --quick --no-progress"),
        ("numpy", "pretrain --out {tmp}/pretrain --no-progress"),
        # data-extra packages other than numpy: the renderer's tone mapping, the bundled photos
        ("scipy", "render --out {tmp}/set"),
        ("sklearn", "pretrain --out {tmp}/pretrain --no-progress"),
    ],
)
def test_missing_data_extra_names_the_install_line(module, command, tmp_path):
    (tmp_path / "w.pt").write_bytes(b"")  # present: a missing --weights is reported first
    result = _run_without(module, [arg.format(tmp=tmp_path) for arg in command.split()])
    assert result.returncode == 2, result.stderr
    err = result.stderr.strip()
    # torch itself may warn "Failed to initialize NumPy" when it is imported; ours is one line.
    assert "Traceback" not in err, err
    ours = [line for line in err.splitlines() if line.startswith("erl ")]
    assert len(ours) == 1 and ours == err.splitlines()[-1:], err
    assert 'pip install "erl-losses[data]"' in ours[0]


def test_import_erl_losses_is_lazy_and_complete():
    code = (
        "import sys, erl_losses; assert 'torch' not in sys.modules; "
        "from erl_losses import *; import erl_losses as e; "
        "assert all(hasattr(e, n) for n in e.__all__); print(PhaseLoss.__name__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "PhaseLoss"
    assert torch.is_tensor(torch.zeros(1))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pretrain", "--log-every", "0"], "argument --log-every: Expected a positive int, got 0"),
        (["pretrain", "--checkpoint-every", "-5"], "--checkpoint-every: Expected a positive int"),
        (
            ["pretrain", "--threads", "two"],
            "argument --threads: Expected a positive int, got 'two'",
        ),
        (["pretrain", "--max-side", "0"], "argument --max-side: Expected a positive int, got 0"),
        (["probe", "--crops", "0"], "argument --crops: Expected a positive int, got 0"),
        (["probe", "--seed", "-1"], "argument --seed: Expected an int >= 0, got -1"),
        (["render", "--crop-size", "0"], "argument --crop-size: Expected a positive int, got 0"),
        (["render", "--crops-per-photo", "x"], "--crops-per-photo: Expected a positive int"),
    ],
)
def test_integer_flags_are_checked_by_argparse_before_any_work(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
