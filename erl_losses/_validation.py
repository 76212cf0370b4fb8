"""Input checks shared by every loss and module.

Every check raises a :class:`ValueError` or :class:`TypeError` worded "Expected X, got Y" and
naming the argument, so that bad input never surfaces as a stack trace from inside torch. The
checks are plain ``if``/``raise`` (never ``assert``, which ``python -O`` removes).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import torch
from torch import Tensor


def check_tensor(x: object, name: str) -> Tensor:
    """Returns ``x`` if it is a floating-point tensor, else raises ``TypeError``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"Expected `{name}` to be a torch.Tensor, got {type(x).__name__}")
    if not (x.is_floating_point()):
        raise TypeError(
            f"Expected `{name}` to be a floating-point tensor with values in [0, 1], got dtype "
            f"{x.dtype} (convert integer images with `x.float() / 255`)"
        )
    return x


def check_image(
    x: object,
    name: str,
    *,
    channels: int | None = None,
    min_size: int = 1,
) -> Tensor:
    """Checks a batch of images of shape ``(B, C, H, W)``.

    Args:
        x: the tensor to check.
        name: the argument name used in error messages.
        channels: the required channel count ``C``; ``None`` accepts any.
        min_size: the smallest allowed ``H`` and ``W``.

    Returns:
        ``x`` unchanged.
    """
    x = check_tensor(x, name)
    if x.ndim != 4:
        hint = " (add a batch dimension with `x.unsqueeze(0)`)" if x.ndim == 3 else ""
        raise ValueError(
            f"Expected `{name}` of shape (B, C, H, W), got {x.ndim}-D shape {tuple(x.shape)}{hint}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"Expected `{name}` to hold at least one sample, got an empty batch")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"Expected `{name}` with {channels} channels, got {x.shape[1]} (shape {tuple(x.shape)})"
        )
    if min(x.shape[-2:]) < min_size:
        raise ValueError(
            f"Expected `{name}` with H and W of at least {min_size}, got {tuple(x.shape[-2:])}"
        )
    return x


def check_pair(
    pred: Tensor, target: Tensor, pred_name: str = "pred", target_name: str = "target"
) -> None:
    """Checks that two already-validated tensors share shape and device."""
    if pred.shape != target.shape:
        raise ValueError(
            f"Expected `{pred_name}` and `{target_name}` to have the same shape, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if pred.device != target.device:
        raise ValueError(
            f"Expected `{pred_name}` and `{target_name}` on the same device, got "
            f"{pred.device} and {target.device}"
        )


def check_finite(x: Tensor, name: str) -> None:
    """Raises ``ValueError`` if ``x`` holds NaN or infinity (an opt-in check: it syncs the GPU)."""
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"Expected `{name}` to hold only finite values, got {bad} NaN/inf values")


def check_bool(value: object, name: str) -> bool:
    """Returns ``value`` if it is a ``bool``, else raises ``TypeError`` naming ``name``: in Python
    a flag is ``True``/``False`` (the string ``"false"`` is truthy, so it is refused rather than
    read; option files and environment variables go through :func:`erl_losses._flags.parse_bool`)."""
    if not isinstance(value, bool):
        raise TypeError(f"Expected `{name}` to be a bool, got {type(value).__name__} {value!r}")
    return value


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """Returns ``value`` if it is one of ``choices``, else raises ``ValueError``."""
    if value not in choices:
        raise ValueError(f"Expected `{name}` to be one of {list(choices)}, got {value!r}")
    return value  # type: ignore[return-value]


def check_int(value: object, name: str | None, *, minimum: int = 1, hint: str = "") -> int:
    """Returns ``value`` if it is an ``int`` >= ``minimum`` (``bool`` is rejected), else raises
    ``ValueError`` "Expected `name` to be a positive int{hint}, got ..." (``an int >= minimum``
    when ``minimum`` is not 1).

    ``hint`` follows the expectation, e.g. ``" or None"`` for an optional argument; ``name=None``
    leaves the argument unnamed, for a caller whose context names it (an argparse type).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        subject = "" if name is None else f"`{name}` to be "
        raise ValueError(f"Expected {subject}{expected}{hint}, got {value!r}")
    return value


def check_positive_int(value: object, name: str) -> int:
    """Returns ``value`` if it is a positive ``int`` (``bool`` is rejected), else raises."""
    return check_int(value, name)


def check_non_negative(value: object, name: str) -> float:
    """Returns ``value`` as a float if it is a finite number >= 0 (a loss weight), else raises."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Expected `{name}` to be a non-negative number, got {value!r}")
    if not (0.0 <= float(value) < float("inf")):
        raise ValueError(f"Expected `{name}` to be a finite non-negative number, got {value!r}")
    return float(value)


def check_positive_number(value: object, name: str) -> float:
    """Returns ``value`` as a float if it is a finite number > 0, else raises ``TypeError`` (not a
    number) or ``ValueError`` (not finite and positive)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Expected `{name}` to be a positive number, got {type(value).__name__}")
    if not (0.0 < float(value) < float("inf")):
        raise ValueError(f"Expected `{name}` to be a finite number > 0, got {value!r}")
    return float(value)


def check_has_values(x: Tensor, name: str) -> None:
    """Raises ``ValueError`` for a meta tensor (a shape without values, which no loss can use)."""
    if x.is_meta:
        raise ValueError(
            f"Expected `{name}` to hold values on a real device (cpu, cuda, ...), got a meta "
            "tensor (shape only); move it with `.to_empty(device=...)` or build it on a device"
        )


def is_compiling() -> bool:
    """Whether ``torch.compile`` is tracing the caller (no device sync or Python-side cache then)."""
    # torch.compiler.is_compiling arrived in torch 2.3; pyproject allows 2.1.
    check = getattr(torch.compiler, "is_compiling", None)
    return bool(check()) if check is not None else False


#: Inputs outside this interval are "clearly not in [0, 1]" (0-255 images, unnormalised data),
#: while the slack tolerates overshoot from a net's unclamped output.
UNIT_RANGE_SLACK = (-0.5, 1.5)


def check_unit_range(x: Tensor, name: str, *, strict: bool) -> bool:
    """Checks that ``x`` is roughly in [0, 1]: within :data:`UNIT_RANGE_SLACK`.

    One min/max reduction and one device sync; skipped (returns ``True``) for meta and empty
    tensors, during CUDA-graph capture and while torch.compile traces (where a sync is
    impossible), and when ``x`` holds NaN/inf (:func:`check_finite`'s business).

    Returns:
        ``True`` if in range (or skipped); ``False`` after warning (``strict=False``).

    Raises:
        ValueError: ``strict=True`` and ``x`` is out of range.
    """
    if x.is_meta or x.numel() == 0 or is_compiling():
        return True
    if x.is_cuda and torch.cuda.is_current_stream_capturing():
        return True
    low, high = (float(v) for v in torch.aminmax(x.detach()))
    if not math.isfinite(low + high):  # NaN/inf are check_finite's business, not a range slip
        return True
    if UNIT_RANGE_SLACK[0] <= low and high <= UNIT_RANGE_SLACK[1]:
        return True
    hint = " (8-bit images? divide by 255)" if high > UNIT_RANGE_SLACK[1] else ""
    message = f"Expected `{name}` with values in [0, 1], got min {low:.4g} and max {high:.4g}{hint}"
    if strict:
        raise ValueError(message)
    warnings.warn(
        f"{message}; the loss is computed anyway but assumes [0, 1] images. Warned once per "
        "loss; check_range=True raises instead.",
        UserWarning,
        # this function, the range-check method, the loss's forward, two nn.Module call frames,
        # then the caller's line
        stacklevel=6,
    )
    return False


class UnitRangeChecked:
    """Mixin for the losses' ``check_range`` flag: a pair checked on every call when the flag is
    set, else on the first call only, with one warning (one device sync in the loss's lifetime).

    The host class sets ``self.check_range`` and ``self._range_checked = False`` in ``__init__``
    and calls :meth:`_check_pair_range` at the top of ``forward``.
    """

    check_range: bool
    _range_checked: bool

    def _check_pair_range(self, pred: Tensor, target: Tensor) -> None:
        if self.check_range or not self._range_checked:
            self._range_checked = True
            # target is only looked at when pred passed: one warning per loss, not two
            if check_unit_range(pred, "pred", strict=self.check_range):
                check_unit_range(target, "target", strict=self.check_range)


def get_aux(aux: Mapping[str, Tensor], key: str, producer: str) -> Tensor:
    """Returns ``aux[key]``, with an error that says which ``forward_with_aux`` provides it."""
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
