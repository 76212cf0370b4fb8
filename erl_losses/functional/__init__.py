"""Functional forms of the losses; the modules in :mod:`erl_losses.losses` delegate here."""

from erl_losses.functional.phase import phase_loss, rfft_column_weights, safe_angle
from erl_losses.functional.psnr import psnr
from erl_losses.functional.relation import sample_relation_loss

__all__ = ["phase_loss", "psnr", "rfft_column_weights", "safe_angle", "sample_relation_loss"]
