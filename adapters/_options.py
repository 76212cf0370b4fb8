"""Option-key checks: BasicSR passes every option key on, so a typo must fail loudly."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["accepted_keys", "check_bools", "check_keys", "check_loss_weight", "check_mapping"]

_BOOL_ANNOTATIONS = (bool, "bool", "bool | None", "Optional[bool]")


def accepted_keys(func: Callable[..., Any], skip: Iterable[str] = ("self",)) -> set[str]:
    """Names of the keyword-capable parameters of ``func`` (no ``*args``/``**kwargs``)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    skipped = set(skip)
    return {
        name
        for name, param in inspect.signature(func).parameters.items()
        if param.kind in kinds and name not in skipped
    }


def check_keys(owner: str, given: Iterable[str], accepted: Iterable[str]) -> None:
    """Raises ``ValueError`` naming every unknown key of ``given`` and the accepted ones.

    Args:
        owner: what the options configure, e.g. ``"loss SampleRelationLoss"``.
        given: the keys found in the option file.
        accepted: the keys ``owner`` understands.
    """
    accepted = set(accepted)
    unknown = sorted(set(given) - accepted)
    if unknown:
        raise ValueError(
            f"Expected option keys of {owner} from {sorted(accepted)}, got unknown key(s) {unknown}"
        )


def check_bools(owner: str, options: Mapping[str, Any], func: Callable[..., Any]) -> dict[str, Any]:
    """``options`` with every value of a boolean parameter of ``func`` read strictly.

    Option files hold ``"false"`` or ``"yes"`` as often as ``false``; a non-empty string must not
    count as true. ``None`` stays ``None`` (the parameter's own "automatic" where it has one).

    Raises:
        ValueError: a value that is not a boolean, naming the key and ``owner``.
    """
    from erl_losses._flags import parse_bool

    params = inspect.signature(func).parameters
    checked = dict(options)
    for key, value in options.items():
        param = params.get(key)
        if param is not None and param.annotation in _BOOL_ANNOTATIONS and value is not None:
            checked[key] = parse_bool(value, f"{key}` of `{owner}")
    return checked


def check_mapping(owner: str, value: Any) -> dict[str, Any]:
    """Returns ``value`` as a plain ``dict``; raises ``TypeError`` unless it is a mapping."""
    if not isinstance(value, Mapping):
        raise TypeError(
            f"Expected {owner} to be a mapping of options, got {type(value).__name__}: {value!r}"
        )
    return dict(value)


def check_loss_weight(owner: str, loss_weight: Any) -> float:
    """``loss_weight`` of ``owner`` as a float: a finite number >= 0, else a one-line error.

    Raises:
        TypeError: not a number (a string such as ``1e-3`` read by PyYAML, a bool, ...).
        ValueError: NaN, infinite or negative (NaN would train to all-NaN weights silently).
    """
    from erl_losses._validation import check_non_negative

    if isinstance(loss_weight, bool) or not isinstance(loss_weight, (int, float)):
        raise TypeError(f"Expected `loss_weight` of {owner} to be a number, got {loss_weight!r}")
    return check_non_negative(loss_weight, f"loss_weight` of `{owner}")
