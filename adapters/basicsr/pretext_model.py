"""BasicSR model ``BCMPretextModel``: the two-stage BCM pretext of paper sec. 3.2 (the recipe of
:mod:`erl_losses.pretext`) trained from an option file."""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

import torch
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from torch import nn

from erl_losses.adapters._options import check_keys

__all__ = ["BCMPretextModel"]

#: ``train`` keys of BCMPretextModel besides BasicSR's own.
_PRETEXT_KEYS = frozenset({"pretext", "phase_mode", "stage1_iter", "optim_stage2", "stage2_fuse"})
_BASICSR_TRAIN_KEYS = frozenset({"total_iter", "warmup_iter", "optim_g", "scheduler", "ema_decay"})


class BCMPretextModel(SRModel):
    """``model_type: BCMPretextModel``: the two-stage pretext of paper sec. 3.2.

    ``network_g`` must be ``{type: BatchCorrelationModule, ...}``. The images are the ``gt`` of
    each batch (normal exposure; the ``lq`` when a dataset has no ``gt``), reconstructed by the BCM
    itself. Options under ``train``:

    * ``stage1_iter``: iterations ``1..stage1_iter`` train ``f_e``, ``W`` and ``f_d`` as an
      auto-encoder (``reconstruct(x, relation=False)``, L1 loss) with ``optim_g``.
    * the remaining iterations up to ``total_iter`` freeze ``f_e``/``f_d`` and train ``t_e`` and
      ``W`` (``reconstruct(x, relation=True)``) with ``optim_stage2`` (default: ``optim_g``) and
      the ``pretext`` loss: ``phase`` (paper eq. 3, ``phase_mode: paper | wrapped``), ``l1``,
      or any other objective of :func:`erl_losses.pretext.objective_names` (called without a
      recipe); ``pretext: none`` (the table-2 ablation) trains stage 1 for the whole run and
      leaves ``t_e`` random.
    * ``stage2_fuse``: ``relation`` (default, as :class:`erl_losses.pretext.PretextRecipe`):
      stage 2 trains only the half of ``W`` that reads ``F'``, so ``reconstruct(x,
      relation=False)`` stays exactly the stage-1 auto-encoder; ``all``: the whole ``W``.
    * ``optim_g`` / ``scheduler`` / ``total_iter`` / ``warmup_iter`` as in BasicSR.

    Logs ``l_stage1`` or ``l_stage2``; validation reconstructs each image (PSNR of the
    reconstruction). The final save also writes ``models/bcm_<pretext>.safetensors``, a
    zoo-format file that ``SampleRelationLoss: {bcm: <that path>}`` loads.
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        train_opt = opt.get("train") or {}
        self.pretext = train_opt.get("pretext", "phase")
        from erl_losses.pretext import PRETEXTS

        if self.pretext not in PRETEXTS:
            raise ValueError(
                f"Expected `train.pretext` to be one of {list(PRETEXTS)}, got {self.pretext!r}"
            )
        self._stage = 1 if self.pretext == "none" else 2
        super().__init__(opt)
        bcm = self.get_bare_model(self.net_g)
        if not hasattr(bcm, "reconstruct") or not hasattr(bcm, "relation_parameters"):
            raise TypeError(
                "Expected `network_g` of BCMPretextModel to be a BatchCorrelationModule, got "
                f"{type(bcm).__name__}"
            )

    # -- setup ------------------------------------------------------------------------------
    def init_training_settings(self) -> None:
        train_opt = self.opt["train"]
        check_keys("`train` of BCMPretextModel", train_opt, _PRETEXT_KEYS | _BASICSR_TRAIN_KEYS)
        stage1 = train_opt.get("stage1_iter")
        total = int(train_opt["total_iter"])
        if isinstance(stage1, bool) or not isinstance(stage1, int) or not 0 <= stage1 <= total:
            raise ValueError(
                f"Expected `train.stage1_iter` to be an int in [0, total_iter={total}], "
                f"got {stage1!r}"
            )
        self.stage1_iter = stage1
        from erl_losses.pretext import STAGE2_FUSE

        self.stage2_fuse = train_opt.get("stage2_fuse", "relation")
        if self.stage2_fuse not in STAGE2_FUSE:
            raise ValueError(
                f"Expected `train.stage2_fuse` to be one of {list(STAGE2_FUSE)}, "
                f"got {self.stage2_fuse!r}"
            )
        self.net_g.train()
        self.ema_decay = 0
        self.cri_stage1 = build_loss({"type": "L1Loss", "loss_weight": 1.0}).to(self.device)
        self.cri_stage2 = None  # another registered objective computes its own loss
        if self.pretext in ("phase", "l1"):
            if self.pretext == "phase":
                stage2 = {"type": "PhaseLoss", "mode": train_opt.get("phase_mode", "paper")}
            else:
                stage2 = {"type": "L1Loss", "loss_weight": 1.0}
            self.cri_stage2 = build_loss(stage2).to(self.device)
        self.setup_optimizers()
        self.setup_schedulers()

    def setup_optimizers(self) -> None:
        train_opt = self.opt["train"]
        bcm = self.get_bare_model(self.net_g)
        stage1_opt = copy.deepcopy(train_opt["optim_g"])
        stage2_opt = copy.deepcopy(train_opt.get("optim_stage2") or train_opt["optim_g"])
        self.optimizer_g = self.get_optimizer(
            stage1_opt.pop("type"), bcm.encoder_decoder_parameters(), **stage1_opt
        )
        self.optimizer_stage2 = self.get_optimizer(
            stage2_opt.pop("type"), bcm.relation_parameters(), **stage2_opt
        )
        self.optimizers += [self.optimizer_g, self.optimizer_stage2]

    # -- training ---------------------------------------------------------------------------
    def stage_at(self, current_iter: int) -> int:
        """The pretext stage (1 or 2) of iteration ``current_iter`` (1-based)."""
        return 1 if self.pretext == "none" or current_iter <= self.stage1_iter else 2

    def _enter_stage(self, stage: int) -> list[nn.Parameter]:
        bcm = self.get_bare_model(self.net_g)
        # the BCM's own per-stage rules, shared with erl_losses.pretext
        params = bcm.pretext_parameters(stage, fuse_relation_only=self.stage2_fuse == "relation")
        if stage != self._stage:
            get_root_logger().info(f"BCM pretext: stage {stage} ({self.pretext}).")
        self._stage = stage
        return params

    def feed_data(self, data: dict[str, Any]) -> None:
        image = data["gt"] if "gt" in data else data["lq"]
        self.lq = image.to(self.device)
        self.gt = self.lq

    def optimize_parameters(self, current_iter: int) -> None:
        stage = self.stage_at(current_iter)
        params = self._enter_stage(stage)
        optimizer = self.optimizer_g if stage == 1 else self.optimizer_stage2
        optimizer.zero_grad()
        bcm = self.get_bare_model(self.net_g)
        self.output = bcm.reconstruct(self.gt, relation=stage == 2)
        if stage == 2 and self.cri_stage2 is None:
            from erl_losses.pretext import get_objective

            loss = get_objective(self.pretext).loss(bcm, self.gt)
        else:
            criterion = self.cri_stage1 if stage == 1 else self.cri_stage2
            loss = criterion(self.output, self.gt)
        loss.backward()
        bcm.mask_pretext_grad(stage, fuse_relation_only=self.stage2_fuse == "relation")
        if self.opt.get("dist"):
            # reconstruct() bypasses DDP's forward hooks: average the gradients by hand.
            world = torch.distributed.get_world_size()
            for param in params:
                if param.grad is not None:
                    torch.distributed.all_reduce(param.grad)
                    param.grad /= world
        optimizer.step()
        self.log_dict = self.reduce_loss_dict(OrderedDict([(f"l_stage{stage}", loss)]))

    def test(self) -> None:
        bcm = self.get_bare_model(self.net_g)
        was_training = bcm.training
        bcm.eval()
        with torch.no_grad():
            self.output = bcm.reconstruct(self.lq, relation=self._stage == 2)
        bcm.train(was_training)

    def save(self, epoch: int, current_iter: int) -> None:
        super().save(epoch, current_iter)
        if current_iter == -1 and self.opt.get("rank", 0) == 0:
            from pathlib import Path

            from erl_losses.pretext import save_weights

            path = Path(self.opt["path"]["models"]) / f"bcm_{self.pretext}.safetensors"
            save_weights(
                self.get_bare_model(self.net_g),
                path,
                recipe={
                    "trainer": "erl_losses.adapters.basicsr.BCMPretextModel",
                    "pretext": self.pretext,
                    "stage1_iter": self.stage1_iter,
                    "stage2_fuse": self.stage2_fuse,
                    "total_iter": int(self.opt["train"]["total_iter"]),
                },
            )
            get_root_logger().info(f"Saved the zoo-format BCM to {path}")
