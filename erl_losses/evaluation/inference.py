"""Running an exposure-correction net over a dataset or over loose images.

Weights files: safetensors (preferred, pickle-free) or a PyTorch state dict (``.pth``, ``.pt``,
``.ckpt``) read with ``torch.load(weights_only=True)``. BasicSR checkpoints (``{'params': ...}``,
``{'params_ema': ...}``) and ``DataParallel`` keys (``module.`` prefix, as saved by the Huang et al.
repos) are unwrapped; loading is strict.

Outputs are quantised as the literature does (``tensor2img``): clamp to [0, 1], ``x * 255``,
round, ``uint8``, saved as PNG.

Photo-sized inputs are corrected in overlapping tiles (:func:`enhance`), so memory stays bounded
whatever the image size: a CPU forward of these nets holds about 1-1.5 GB per megapixel
(measured, ECLNet / FECNet), so a whole 3504 x 2336 photo would need 9-13 GB; in 2048 px tiles
ECLNet peaked at 2.9 GB (``erl enhance``, 4 tiles, measured). Tiles overlap by ``overlap`` pixels; the outer quarter of each overlap, whose
pixels saw the tile's cut edge, is dropped and the middle half blended with linear ramps, so a
net whose pixels see at most ``overlap / 4`` px around them gives the whole-image result; nets with image-wide operations (ECLNet's channel attention, FECNet's Fourier blocks)
see each tile's statistics instead of the whole image's, a small change the overlap smooths.
Files are read upright: an EXIF orientation tag (phone and camera JPEGs) is applied first.
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
from erl_losses.data.layouts import PAIRED, check_protocol, paired_dataset

#: Tile side (px) of :func:`enhance_images`: larger images are corrected in tiles of this size.
DEFAULT_TILE = 2048
#: Overlap (px) of neighbouring tiles, blended linearly.
DEFAULT_OVERLAP = 64

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_TILE",
    "NetRun",
    "enhance",
    "enhance_images",
    "load_net",
    "load_state_dict_file",
    "read_upright",
    "run_net_on_dataset",
    "tile_count",
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


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of side ``tile`` covering ``[0, size)``, neighbours sharing >= ``overlap``."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return [*starts, size - tile]


def _ramp(length: int, overlap: int, start: bool, end: bool) -> Tensor:
    """1-D blending weights of a tile that has a neighbour before it (``start``) and/or after it
    (``end``): zero over the outer quarter of the overlap (pixels next to a tile's cut edge see
    padding, not the image), then rising linearly across its middle half."""
    weight = torch.ones(length)
    if not overlap:
        return weight
    margin = overlap // 4
    width = max(overlap - 2 * margin, 1)
    ramp = torch.arange(1, width + 1, dtype=torch.float32) / (width + 1)
    rise = torch.cat([torch.zeros(margin), ramp])
    if start:
        weight[: len(rise)] = rise
    if end:
        weight[-len(rise) :] = torch.minimum(weight[-len(rise) :], rise.flip(0))
    return weight


def _check_tiling(tile: int | None, overlap: int) -> None:
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 1):
        raise ValueError(f"Expected `tile` to be a positive int or None, got {tile!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise ValueError(f"Expected `overlap` to be an int >= 0, got {overlap!r}")
    if tile is not None and overlap >= tile:
        raise ValueError(f"Expected `overlap` < `tile` ({tile}), got {overlap}")


def _forward_tiled(net: nn.Module, x: Tensor, tile: int, overlap: int, progress: Any) -> Tensor:
    """``net(x)`` for a ``(1, 3, H, W)`` input, in overlapping tiles blended linearly."""
    _, channels, height, width = x.shape
    rows, cols = _tile_starts(height, tile, overlap), _tile_starts(width, tile, overlap)
    out = torch.zeros(channels, height, width)
    total = torch.zeros(1, height, width)
    for i, top in enumerate(rows):
        for j, left in enumerate(cols):
            h, w = min(tile, height), min(tile, width)
            piece = _forward(net, x[:, :, top : top + h, left : left + w])[0].float().cpu()
            weight = torch.outer(
                _ramp(h, overlap, i > 0, i < len(rows) - 1),
                _ramp(w, overlap, j > 0, j < len(cols) - 1),
            )[None]
            out[:, top : top + h, left : left + w] += piece * weight
            total[:, top : top + h, left : left + w] += weight
            if progress is not None:
                progress.update(1)
    return out / total


def enhance(
    net: nn.Module,
    image: np.ndarray,
    *,
    tile: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    progress: Any = None,
) -> np.ndarray:
    """Corrects one image.

    Args:
        net: a net mapping ``(B, 3, H, W)`` in [0, 1] to the same shape (put it in eval mode).
        image: ``(H, W, 3)`` RGB, ``uint8`` or float in [0, 1] (as :func:`read_image` returns
            for 16-bit files).
        tile: an image with a side longer than ``tile`` px is corrected in ``tile x tile``
            tiles (memory then stays bounded whatever the image size); ``None``: whole.
        overlap: pixels shared by neighbouring tiles, blended with linear ramps.
        progress: a tqdm-like object whose ``update(1)`` is called after each tile.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB of the same size.
    """
    _check_tiling(tile, overlap)
    image = np.asarray(image)
    if (
        image.ndim != 3
        or image.shape[2] != 3
        or not (image.dtype == np.uint8 or image.dtype.kind == "f")
    ):
        raise ValueError(
            f"Expected image to be (H, W, 3) uint8 or float, got {image.shape} {image.dtype}"
        )
    x = torch.from_numpy(np.ascontiguousarray(image_to_float(image).transpose(2, 0, 1)))[None]
    if tile is None or max(x.shape[2:]) <= tile:
        out = _forward(net, x)[0]
        if progress is not None:
            progress.update(1)
        return _to_uint8(out)
    return _to_uint8(_forward_tiled(net, x, tile, overlap, progress))


def tile_count(height: int, width: int, tile: int | None, overlap: int = DEFAULT_OVERLAP) -> int:
    """How many forward passes :func:`enhance` makes for an image of this size."""
    if tile is None or max(height, width) <= tile:
        return 1
    return len(_tile_starts(height, tile, overlap)) * len(_tile_starts(width, tile, overlap))


def read_upright(path: str | Path) -> np.ndarray:
    """:func:`read_image` with the file's EXIF orientation applied (``ImageOps.exif_transpose``),
    so a portrait photo stored sideways with an orientation tag comes out upright."""
    from PIL import Image, ImageOps

    path = Path(path)
    try:
        with Image.open(path) as image:
            orientation = image.getexif().get(0x0112, 1)  # EXIF tag 274: Orientation
            if orientation in (1, None):
                upright = None
            else:
                upright = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, SyntaxError, ValueError):
        upright = None  # read_image below reports unreadable files with its wording
    if upright is None:
        return read_image(path)
    return np.asarray(upright)


def enhance_images(
    net: nn.Module,
    paths: Iterable[str | Path],
    out_dir: str | Path,
    *,
    tile: int | None = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    progress: bool = False,
) -> list[Path]:
    """Corrects image files without ground truth; writes ``<out_dir>/<stem>.png`` for each.

    Inputs are read upright (EXIF orientation applied, :func:`read_upright`) and corrected in
    tiles when larger than ``tile`` (see :func:`enhance`); ``progress`` shows a tqdm bar of the
    tiles of each image.

    Raises:
        FileNotFoundError: a missing input.
        ValueError: two inputs with the same stem (their outputs would collide), or an output that
            would replace one of the inputs (checked before anything is written).
    """
    _check_tiling(tile, overlap)
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
        image = read_upright(path)
        height, width = image.shape[:2]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=tile_count(height, width, tile, overlap),
                desc=f"{path.name} {width}x{height}",
                unit="tile",
                leave=True,
            )
        try:
            result = enhance(net, image, tile=tile, overlap=overlap, progress=bar)
        finally:
            if bar is not None:
                bar.close()
        write_png(target, result)
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
        data_dir: an MSEC root / split folder (holding ``INPUT_IMAGES``), a SICEV2 root / split
            folder (holding ``mid``), or a paired (LOL-style) root / split folder (holding
            ``low`` + ``high``, ``input`` + ``gt``, ...).
        out_dir: where ``<scene>_<level>.png`` predictions go (paired: ``<name>.png``, the
            input's name); created; refused when a prediction would replace an input or GT
            image of the dataset.
        protocol: ``'msec'``, ``'sice'`` or ``'paired'``.
        split: the split folder to use when ``data_dir`` is a dataset root.

    Returns:
        :class:`NetRun` with the prediction and GT folders.

    Raises:
        FileNotFoundError: ``data_dir`` is not a folder, or lacks the protocol's folders.
    """
    if protocol != PAIRED:
        check_protocol(protocol)
    data = Path(data_dir)
    if not data.is_dir():
        raise FileNotFoundError(f"Expected `data_dir` to be a folder, got no such folder: {data}")
    out = Path(out_dir)
    if protocol == PAIRED:
        layout = paired_dataset(data, split)
        sources = [(pair.input, pair.gt) for pair in layout.pairs]
        targets = [out / f"{pair.input.stem}.png" for pair in layout.pairs]
        gt_dir = layout.gt_dir
    else:
        dataset = _open_dataset(data, protocol, split)
        sources = [(lq, gt) for lq, gt, _ in dataset.pairs]
        targets = [
            out / (f"{lq.stem}.png" if protocol == "msec" else f"{lq.stem}_{level}.png")
            for lq, _, level in dataset.pairs
        ]
        gt_dir = dataset.gt_dir
    _refuse_overwriting_inputs([p for pair in sources for p in pair], targets)
    out.mkdir(parents=True, exist_ok=True)
    was_training = net.training
    net.eval()
    try:
        for index, target in enumerate(targets):
            if protocol == PAIRED:
                write_png(target, enhance(net, read_image(sources[index][0])))
            else:
                write_png(target, _to_uint8(_forward(net, dataset[index]["lq"][None])[0]))
    finally:
        net.train(was_training)
    return NetRun(pred_dir=out, gt_dir=gt_dir, count=len(targets), protocol=protocol)
