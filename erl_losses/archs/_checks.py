"""Input validation shared by the reference networks and their losses.

Errors are raised with ``ValueError``/``TypeError`` (never ``assert``, which vanishes under
``python -O``) and worded "Expected X, got Y", naming the offending argument.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor


def check_image_batch(x: object, name: str, channels: int = 3) -> Tensor:
    """Check that ``x`` is a non-empty floating-point batch of shape (B, channels, H, W).

    Returns ``x`` unchanged so the call can be used inline.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"Expected `{name}` to be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(
            f"Expected `{name}` to be a 4-D tensor (B, {channels}, H, W), "
            f"got {x.ndim}-D with shape {tuple(x.shape)}"
        )
    if x.shape[1] != channels:
        raise ValueError(
            f"Expected `{name}` to have {channels} channels (B, {channels}, H, W), "
            f"got {x.shape[1]} channels with shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"Expected `{name}` to be a floating-point tensor, got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"Expected `{name}` to be non-empty, got shape {tuple(x.shape)}")
    return x


def check_positive_int(value: object, name: str) -> int:
    """Check that a constructor argument is a positive ``int`` (``bool`` is rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Expected `{name}` to be a positive int, got {value!r}")
    return value


def check_non_negative(value: object, name: str) -> float:
    """Check that a loss weight is a finite, non-negative real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Expected `{name}` to be a non-negative number, got {value!r}")
    if not (0.0 <= float(value) < float("inf")):
        raise ValueError(f"Expected `{name}` to be a finite non-negative number, got {value!r}")
    return float(value)


def get_aux(aux: Mapping[str, Tensor], key: str, producer: str) -> Tensor:
    """Fetch ``aux[key]`` with an error that says which ``forward_with_aux`` provides it."""
    if not isinstance(aux, Mapping):
        raise TypeError(f"Expected `aux` to be a mapping str -> Tensor, got {type(aux).__name__}")
    if key not in aux:
        raise ValueError(
            f"Expected `aux` to contain {key!r} (from {producer}.forward_with_aux), "
            f"got keys {sorted(aux)}"
        )
    value = aux[key]
    if not isinstance(value, Tensor):
        raise TypeError(f"Expected `aux[{key!r}]` to be a torch.Tensor, got {type(value).__name__}")
    return value
