"""Small layers shared by the reference networks."""

from __future__ import annotations

from torch import Tensor, nn

# Slope used by every LeakyReLU in FECNet, ECLNet and the ENC module.
LRELU_SLOPE = 0.1


def conv(
    in_ch: int, out_ch: int, kernel_size: int = 3, *, stride: int = 1, bias: bool = True
) -> nn.Conv2d:
    """Conv with "same" zero padding for odd kernels (``padding = kernel_size // 2``)."""
    return nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias)


def lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(LRELU_SLOPE, inplace=False)


def channel_std_plus_mean(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Per-channel spatial std + mean of (B, C, H, W) -> (B, C, 1, 1).

    The "contrast-aware" pooling used by FECNet's PhaseProcess and the ENC module's attention.
    ``eps`` keeps the square root differentiable on constant feature maps.
    """
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True)
    return (var + eps).sqrt() + mean


class ExposureNet(nn.Module):
    """Base of the reference nets: ``forward(x, return_aux=False)`` plus an explicit alias.

    Subclasses implement ``forward(x, return_aux)``; ``forward(x)`` alone returns the prediction
    (what stock BasicSR models call), ``return_aux=True`` adds the auxiliary outputs that the
    nets' own losses need.
    """

    def forward_with_aux(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``self(x, return_aux=True)``: the prediction and the auxiliary outputs.

        Prefer ``net(x, return_aux=True)`` when ``net`` may be wrapped in
        DistributedDataParallel: the call then goes through the wrapper.
        """
        return self(x, return_aux=True)
