"""erl-losses: Exposure Relationship Learning (Huang et al., CVPR 2023) for PyTorch."""

from erl_losses._version import __version__

__all__ = ["__version__"]
