"""Evaluation with the exposure-correction literature's protocol (needs the ``data`` extra).

* :func:`evaluate_folders`: PSNR/SSIM per level and per group (Under/Over/Average, table 1 of
  Huang et al. 2023) for MSEC- or SICE-named predictions; :class:`EvaluationReport` renders to
  markdown, JSON and CSV.
* :func:`evaluate_bank`: the same scores for an in-memory :class:`~erl_losses.data.PairBank`;
  :func:`format_table`: table 1's layout as markdown.
* :func:`run_net_on_dataset`, :func:`enhance`, :func:`enhance_images`, :func:`load_net`: inference.
* :mod:`erl_losses.evaluation.fidelity` (extra ``fidelity``): Frechet distance / KID in BCM
  feature space through torch-fidelity.
"""

from erl_losses.evaluation.bank import evaluate_bank, format_table
from erl_losses.evaluation.inference import (
    NetRun,
    enhance,
    enhance_images,
    load_net,
    load_state_dict_file,
    run_net_on_dataset,
)
from erl_losses.evaluation.metrics import metric_backend, psnr_uint8, ssim_uint8
from erl_losses.evaluation.protocol import (
    EvaluationReport,
    ImageScore,
    RowSummary,
    evaluate_folders,
    pair_folders,
)

__all__ = [
    "EvaluationReport",
    "ImageScore",
    "NetRun",
    "RowSummary",
    "enhance",
    "enhance_images",
    "evaluate_bank",
    "evaluate_folders",
    "format_table",
    "load_net",
    "load_state_dict_file",
    "metric_backend",
    "pair_folders",
    "psnr_uint8",
    "run_net_on_dataset",
    "ssim_uint8",
]
