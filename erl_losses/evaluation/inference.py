"""Running an exposure-correction net over a dataset or over loose images.

Weights files: safetensors (preferred, pickle-free) or a PyTorch state dict (``.pth``, ``.pt``,
``.ckpt``) read with ``torch.load(weights_only=True)``. BasicSR checkpoints (``{'params': ...}``,
``{'params_ema': ...}``) and ``DataParallel`` keys (``module.`` prefix, as saved by the Huang et al.
repos) are unwrapped; loading is strict.

Outputs are quantised as the literature does (``tensor2img``): clamp to [0, 1], ``x * 255``,
round, ``uint8``, saved as PNG.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from erl_losses.data.datasets import MSECDataset, SICEDataset
from erl_losses.data.io import format_names, image_to_float, missing_files, read_image, write_png
from erl_losses.data.layouts import check_protocol

__all__ = [
    "NetRun",
    "enhance",
    "enhance_images",
    "load_net",
    "load_state_dict_file",
    "run_net_on_dataset",
]


def _read_weights(path: Path, suffix: str) -> Any:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        if suffix == ".safetensors":
            return load_file(str(path))
        # weights_only=True: tensors and plain containers only, never code (torch < 2.6 defaulted
        # to False, which runs whatever a pickle holds).
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"Expected a weights file holding only tensors, got pickled objects in {path} "
            "(refused: loading them could run code; re-save the state dict as .safetensors)"
        ) from err
    except (SafetensorError, RuntimeError, EOFError, OSError) as err:
        # Truncated or corrupt archives surface as these, with messages that omit the file.
        raise ValueError(f"Expected a readable weights file, got {path}: {err}") from err


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Reads a weights file into a flat ``{name: tensor}`` state dict.

    Raises:
        FileNotFoundError: missing file.
        ValueError: unsupported suffix, a truncated or corrupt file, pickled objects other than
            tensors (refused, never run), or a file that holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Expected a weights file, got missing path {path}")
    suffix = path.suffix.lower()
    if suffix not in (".safetensors", ".pth", ".pt", ".ckpt", ".bin"):
        raise ValueError(
            f"Expected a .safetensors or .pth/.pt/.ckpt/.bin weights file, got {path.name}"
        )
    state = _read_weights(path, suffix)
    for key in ("params_ema", "params", "state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"Expected a state dict of tensors in {path}, got {type(state).__name__}")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def load_net(
    name: str,
    weights: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    **kwargs: Any,
) -> nn.Module:
    """Builds ``erl_losses.archs.build_arch(name, **kwargs)``, loads ``weights`` strictly (when
    given) and returns it in eval mode on ``device``."""
    from erl_losses.archs import ARCHS, build_arch

    if name not in ARCHS:
        raise ValueError(f"Expected net to be one of {sorted(ARCHS)}, got {name!r}")
    net = build_arch(name, **kwargs)
    if weights is not None:
        state = load_state_dict_file(weights)
        expected = set(net.state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(
                f"Expected weights for {name} in {weights}, got a state dict with "
                f"{len(missing)} missing keys {missing[:5]} and {len(unexpected)} unexpected keys "
                f"{unexpected[:5]}"
            )
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as err:  # shape mismatches
            raise ValueError(f"Expected weights for {name} in {weights}, got: {err}") from err
    return net.to(device).eval()


def _device_of(net: nn.Module) -> torch.device:
    param = next(iter(net.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


@torch.no_grad()
def _forward(net: nn.Module, x: Tensor) -> Tensor:
    out = net(x.to(_device_of(net)))
    if not isinstance(out, Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"Expected the net to return a tensor of shape {tuple(x.shape)}, got {got}"
        )
    return out


def _to_uint8(x: Tensor) -> np.ndarray:
    """``(3, H, W)`` float -> ``(H, W, 3)`` uint8 as BasicSR's ``tensor2img``."""
    arr = x.detach().float().clamp(0, 1).mul(255.0).round().byte().cpu().numpy()
    return arr.transpose(1, 2, 0)


def enhance(net: nn.Module, image: np.ndarray) -> np.ndarray:
    """Corrects one image.

    Args:
        net: a net mapping ``(B, 3, H, W)`` in [0, 1] to the same shape (put it in eval mode).
        image: ``(H, W, 3)`` RGB, ``uint8`` or float in [0, 1] (as :func:`read_image` returns
            for 16-bit files).

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB of the same size.
    """
    image = np.asarray(image)
    if (
        image.ndim != 3
        or image.shape[2] != 3
        or not (image.dtype == np.uint8 or image.dtype.kind == "f")
    ):
        raise ValueError(
            f"Expected image to be (H, W, 3) uint8 or float, got {image.shape} {image.dtype}"
        )
    x = torch.from_numpy(np.ascontiguousarray(image_to_float(image).transpose(2, 0, 1)))
    return _to_uint8(_forward(net, x[None])[0])


def enhance_images(net: nn.Module, paths: Iterable[str | Path], out_dir: str | Path) -> list[Path]:
    """Corrects image files without ground truth; writes ``<out_dir>/<stem>.png`` for each.

    Raises:
        FileNotFoundError: a missing input.
        ValueError: two inputs with the same stem (their outputs would collide), or an output that
            would replace one of the inputs (checked before anything is written).
    """
    paths = [Path(p) for p in paths]
    missing = missing_files(paths)
    if missing:
        raise FileNotFoundError(
            f"Expected image files, got {len(missing)} missing: {format_names(missing)}"
        )
    stems = [p.stem for p in paths]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise ValueError(f"Expected inputs with distinct names, got duplicates {dupes}")
    out_dir = Path(out_dir)
    targets = [out_dir / f"{path.stem}.png" for path in paths]
    _refuse_overwriting_inputs(paths, targets)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, target in zip(paths, targets, strict=True):
        write_png(target, enhance(net, read_image(path)))
    return targets


def _refuse_overwriting_inputs(inputs: list[Path], targets: list[Path]) -> None:
    # (device, inode) identifies a file through symlinks, hard links, '..' and case-folding.
    identity = {(st.st_dev, st.st_ino): p for p in inputs for st in [p.stat()]}
    clashes = [
        f"{target} is {identity[key]}"
        for target in targets
        if target.exists() and (key := (target.stat().st_dev, target.stat().st_ino)) in identity
    ]
    if clashes:
        raise ValueError(
            f"Expected an output folder whose files are not the inputs, got {len(clashes)} "
            f"output(s) that would overwrite an input: {format_names(clashes)} (choose another "
            "--out)"
        )


@dataclass(frozen=True)
class NetRun:
    """Where :func:`run_net_on_dataset` wrote predictions and where their GT lives."""

    pred_dir: Path
    gt_dir: Path
    count: int
    protocol: str


def _open_dataset(data_dir: Path, protocol: str, split: str) -> MSECDataset | SICEDataset:
    # A split folder (holding INPUT_IMAGES / mid) is recognised whatever `split` says.
    if check_protocol(protocol) == "msec":
        return MSECDataset(data_dir, split=split)
    return SICEDataset(data_dir, split=split)


def run_net_on_dataset(
    net: nn.Module,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    protocol: str = "msec",
    split: str = "test",
) -> NetRun:
    """Runs ``net`` over every input of a dataset at full size, batch 1, and writes predictions
    ready for :func:`~erl_losses.evaluation.evaluate_folders`.

    Args:
        net: maps ``(1, 3, H, W)`` in [0, 1] to the same shape; evaluated under ``no_grad`` on
            its own device.
        data_dir: an MSEC root / split folder (holding ``INPUT_IMAGES``), or a SICEV2 root / split
            folder (holding ``mid``).
        out_dir: where ``<scene>_<level>.png`` predictions go (created); refused when a
            prediction would replace an input or GT image of the dataset.
        protocol: ``'msec'`` or ``'sice'``.
        split: the split folder to use when ``data_dir`` is a dataset root.

    Returns:
        :class:`NetRun` with the prediction and GT folders.
    """
    dataset = _open_dataset(Path(data_dir), protocol, split)
    out = Path(out_dir)
    targets = [
        out / (f"{lq.stem}.png" if protocol == "msec" else f"{lq.stem}_{level}.png")
        for lq, _, level in dataset.pairs
    ]
    _refuse_overwriting_inputs([p for pair in dataset.pairs for p in pair[:2]], targets)
    out.mkdir(parents=True, exist_ok=True)
    was_training = net.training
    net.eval()
    try:
        for index, target in enumerate(targets):
            write_png(target, _to_uint8(_forward(net, dataset[index]["lq"][None])[0]))
    finally:
        net.train(was_training)
    return NetRun(pred_dir=out, gt_dir=dataset.gt_dir, count=len(dataset), protocol=protocol)
