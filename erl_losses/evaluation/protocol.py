"""The literature's evaluation protocol: PSNR/SSIM per exposure level and per group.

MSEC (Afifi et al. 2021; table 1 of Huang et al. 2023): predictions ``<scene>_<level>.<ext>`` with
``<level>`` in ``N1.5, N1, 0, P1, P1.5`` are compared with the GT ``<scene>.<ext>``; the groups are
Under = N1.5 + N1 and Over = 0 + P1 + P1.5, and Average is over all images. SICE (SICEV2 as used by
ENC / FECNet / ECLNet): under = ``low``, over = ``over``, GT from the ``mid`` folder. Paired
(one input per GT, LOL-style): a prediction ``<name>.<ext>`` per GT ``<name>.<ext>``, one row,
Average.

Means are over images. As in the Huang et al. repos, images whose PSNR is infinite (prediction
identical to the GT) are left out of the PSNR mean; ``psnr_skipped`` counts them.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from erl_losses._validation import check_int
from erl_losses.data.io import image_to_uint8, read_image
from erl_losses.data.layouts import (
    PAIRED,
    PAIRED_FOLDERS,
    check_protocol,
    find_gt_dir,
    leveled_images,
    pair_by_name,
    pair_with_gt,
)
from erl_losses.data.levels import MSEC_LEVELS, SICE_LEVELS, group_of
from erl_losses.evaluation.metrics import metric_backend, psnr_uint8, ssim_uint8

__all__ = ["EvaluationReport", "ImageScore", "RowSummary", "evaluate_folders", "pair_folders"]

Protocol = Literal["msec", "sice", "paired"]
_GROUP_ROWS = (("Under", "under"), ("Over", "over"), ("Average", None))


@dataclass(frozen=True)
class ImageScore:
    """Scores of one prediction: ``name`` is the prediction's file name."""

    name: str
    scene: str
    level: str
    group: str
    psnr: float
    ssim: float


@dataclass(frozen=True)
class RowSummary:
    """Mean PSNR (dB, finite values only) and SSIM over ``count`` images."""

    psnr: float
    ssim: float
    count: int
    psnr_skipped: int


@dataclass
class EvaluationReport:
    """Per-image scores and their per-level and per-group means.

    Attributes:
        protocol: ``'msec'``, ``'sice'`` or ``'paired'`` (one row, Average).
        backend: metric backend, ``'basicsr'`` or ``'skimage'``.
        method: label of the evaluated predictions (the first column of the markdown table).
        images: one :class:`ImageScore` per prediction.
        fidelity: optional distribution-level metrics (e.g. ``{'bcm_frechet_distance': ...}``).
    """

    protocol: str
    backend: str
    method: str
    images: list[ImageScore]
    fidelity: dict[str, float] = field(default_factory=dict)

    def _levels(self) -> tuple[str, ...]:
        if self.protocol == PAIRED:
            return ()  # no exposure levels: the Average row only
        return MSEC_LEVELS if self.protocol == "msec" else SICE_LEVELS

    @staticmethod
    def _summarise(scores: Sequence[ImageScore]) -> RowSummary:
        finite = [s.psnr for s in scores if math.isfinite(s.psnr)]
        if not scores:
            psnr = float("nan")
        elif not finite:
            psnr = float("inf")
        else:
            psnr = sum(finite) / len(finite)
        ssim = sum(s.ssim for s in scores) / len(scores) if scores else float("nan")
        return RowSummary(psnr, ssim, len(scores), len(scores) - len(finite))

    def by_level(self) -> dict[str, RowSummary]:
        """``{level: summary}`` for each protocol level that has predictions, in EV order."""
        return {
            level: self._summarise([s for s in self.images if s.level == level])
            for level in self._levels()
            if any(s.level == level for s in self.images)
        }

    def by_group(self) -> dict[str, RowSummary]:
        """``{'Under': ..., 'Over': ..., 'Average': ...}`` (the paper's table 1 columns); only
        ``Average`` for the paired protocol."""
        if self.protocol == PAIRED:
            return {"Average": self._summarise(self.images)}
        return {
            row: self._summarise([s for s in self.images if group is None or s.group == group])
            for row, group in _GROUP_ROWS
        }

    def summary(self) -> dict[str, RowSummary]:
        """Per-level rows followed by the Under, Over and Average rows."""
        return {**self.by_level(), **self.by_group()}

    def to_markdown(self) -> str:
        """Two markdown tables: the paper's table-1 row (Under/Over/Average PSNR and SSIM) and
        the per-level breakdown."""
        groups = self.by_group()
        head = "| Method | " + " | ".join(f"{r} PSNR | {r} SSIM" for r in groups) + " |"
        rule = "|---" * (1 + 2 * len(groups)) + "|"
        row = f"| {self.method} | " + " | ".join(
            f"{g.psnr:.2f} | {g.ssim:.4f}" for g in groups.values()
        )
        lines = [
            f"{self.protocol.upper()} ({len(self.images)} images, metrics: {self.backend})",
            "",
            head,
            rule,
            row + " |",
        ]
        if self._levels():
            lines += ["", "| Level | Group | PSNR | SSIM | Images |", "|---|---|---|---|---|"]
        for level, s in self.by_level().items():
            lines.append(
                f"| {level} | {group_of(level)} | {s.psnr:.2f} | {s.ssim:.4f} | {s.count} |"
            )
        skipped = sum(1 for s in self.images if not math.isfinite(s.psnr))
        if skipped:
            lines += ["", f"{skipped} image(s) with infinite PSNR left out of the PSNR means."]
        if self.fidelity:
            lines += ["", "| Fidelity | Value |", "|---|---|"]
            lines += [f"| {k} | {v:.6g} |" for k, v in self.fidelity.items()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; infinite PSNRs become ``None``."""

        def clean(value: Any) -> Any:
            return None if isinstance(value, float) and not math.isfinite(value) else value

        return {
            "protocol": self.protocol,
            "backend": self.backend,
            "method": self.method,
            "summary": {
                row: {k: clean(v) for k, v in asdict(s).items()}
                for row, s in self.summary().items()
            },
            "fidelity": {k: clean(v) for k, v in self.fidelity.items()},
            "images": [{k: clean(v) for k, v in asdict(s).items()} for s in self.images],
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """The :meth:`to_dict` as JSON text, also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def to_csv(self, path: str | Path | None = None, *, per_image: bool = False) -> str:
        """CSV of the summary rows (``row,group,psnr,ssim,count,psnr_skipped``), or of every image
        with ``per_image=True``; also written to ``path`` when given."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if per_image:
            writer.writerow(["name", "scene", "level", "group", "psnr", "ssim"])
            for s in self.images:
                writer.writerow([s.name, s.scene, s.level, s.group, s.psnr, s.ssim])
        else:
            writer.writerow(["row", "group", "psnr", "ssim", "count", "psnr_skipped"])
            for row, s in self.summary().items():
                group = group_of(row) if row in self._levels() else row.lower()
                writer.writerow([row, group, s.psnr, s.ssim, s.count, s.psnr_skipped])
        text = buffer.getvalue()
        if path is not None:
            Path(path).write_text(text)
        return text


def pair_folders(
    pred_dir: str | Path,
    gt_dir: str | Path,
    protocol: Protocol = "msec",
    *,
    strict: bool = True,
) -> list[tuple[Path, Path, str, str]]:
    """Pairs predictions with GT images (the rules: :mod:`erl_losses.data.layouts`).

    MSEC: ``<pred_dir>/<scene>_<level>.<ext>`` with ``<gt_dir>/<scene>.<ext>``. SICE: either
    ``<pred_dir>/{low,over}/<id>.<ext>`` or a flat ``<pred_dir>/<id>_{low,over}.<ext>`` with
    ``<gt_dir>/<id>.<ext>``. Paired: ``<pred_dir>/<name>.<ext>`` with ``<gt_dir>/<name>.<ext>``
    (``gt_dir`` may be the split folder holding ``high``/``gt``/``target``). ``gt_dir`` may also be the folder above ``GT_IMAGES`` /
    ``expert_c_testing_set`` (MSEC) or ``mid`` (SICE). Extensions are matched case-insensitively.

    Args:
        strict: also require a prediction for every (GT scene, protocol level).

    Returns:
        ``[(pred_path, gt_path, scene, level)]`` sorted by prediction path.

    Raises:
        ValueError: unrecognised prediction names, predictions without GT, and (``strict``)
            GT scenes lacking predictions; each problem is listed.
        FileNotFoundError: a folder does not exist.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for flag, folder in (("pred_dir", pred_dir), ("gt_dir", gt_dir)):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"Expected `{flag}` to be a folder, got no such folder: {folder}"
            )
    if protocol == PAIRED:
        gt_dir = next(
            (gt_dir / gts for _, gts in PAIRED_FOLDERS if (gt_dir / gts).is_dir()), gt_dir
        )
        pairs = pair_by_name(pred_dir, gt_dir, what="prediction", strict=strict)
        return [tuple(pair) for pair in pairs]  # type: ignore[misc]
    check_protocol(protocol)
    gt_dir = find_gt_dir(gt_dir, protocol) or gt_dir
    items, unparsed = leveled_images(pred_dir, protocol)
    pairs = pair_with_gt(items, unparsed, gt_dir, protocol, what="prediction", strict=strict)
    return [tuple(pair) for pair in pairs]  # type: ignore[misc]


def evaluate_folders(
    pred_dir: str | Path,
    gt_dir: str | Path,
    protocol: Protocol = "msec",
    *,
    strict: bool = True,
    backend: str | None = None,
    method: str = "prediction",
    workers: int = 0,
) -> EvaluationReport:
    """PSNR/SSIM of every prediction in ``pred_dir`` against ``gt_dir`` under ``protocol``.

    See :func:`pair_folders` for the pairing rules and errors, :mod:`.metrics` for the metrics
    (8-bit, MAX = 255). Predictions must have their GT's size.

    Args:
        workers: processes that decode and score pairs in parallel (0: in this process). Decoding
            and SSIM dominate on full-size sets (MSEC's test split is 5,905 pairs); the scores
            and their order are the same for any value.

    Returns:
        An :class:`EvaluationReport` (``to_markdown()``, ``to_json()``, ``to_csv()``).
    """
    workers = check_int(workers, "workers", minimum=0)
    pairs = pair_folders(pred_dir, gt_dir, protocol, strict=strict)
    resolved = metric_backend(backend)
    jobs = [(*pair, resolved) for pair in pairs]
    if workers == 0 or len(jobs) < 2:
        scores = [_score_pair(job) for job in jobs]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: the caller may hold torch threads, which a forked child must not inherit.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
            chunk = max(1, len(jobs) // (8 * workers))
            scores = list(pool.map(_score_pair, jobs, chunksize=chunk))
    return EvaluationReport(protocol=protocol, backend=resolved, method=method, images=scores)


def _score_pair(job: tuple[Path, Path, str, str, str]) -> ImageScore:
    """PSNR/SSIM of one ``(pred_path, gt_path, scene, level, backend)`` pair (a worker's task)."""
    pred_path, gt_path, scene, level, backend = job
    # The protocol is 8-bit (MAX = 255): 16-bit files are quantised as tensor2img would.
    pred, gt = image_to_uint8(read_image(pred_path)), image_to_uint8(read_image(gt_path))
    if pred.shape != gt.shape:
        raise ValueError(
            f"Expected prediction {pred_path.name} to have its GT's size {gt.shape[:2]}, got "
            f"{pred.shape[:2]}"
        )
    return ImageScore(
        name=pred_path.name,
        scene=scene,
        level=level,
        group="all" if level == PAIRED else group_of(level),
        psnr=psnr_uint8(pred, gt, backend=backend),
        ssim=ssim_uint8(pred, gt, backend=backend),
    )
