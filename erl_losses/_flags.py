"""The one strict reader of yes/no values: option-file booleans and environment flags.

Torch-free, so the zoo and the command line can use it without importing torch.
"""

from __future__ import annotations

import os

__all__ = ["env_flag", "parse_bool"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_bool(value: object, name: str) -> bool:
    """``value`` as a bool: a bool, the integer 0 or 1, or one of ``true/false/yes/no/on/off/1/0``
    (any case, surrounding spaces ignored).

    Raises:
        ValueError: anything else, naming ``name`` (a string such as ``"false"`` must never
            count as true because it is non-empty).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueError(
        f"Expected `{name}` to be a boolean (true/false, yes/no, on/off, 1/0), got {value!r}"
    )


def env_flag(name: str, default: bool = False) -> bool:
    """The environment variable ``name`` read with :func:`parse_bool` at each call; unset or
    empty gives ``default``."""
    value = os.environ.get(name, "")
    return default if not value.strip() else parse_bool(value, name)
