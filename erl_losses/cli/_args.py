"""argparse types shared by the ``erl`` sub-commands.

They apply the Python API's checks from :mod:`erl_losses._validation`, so that a flag and the
argument it feeds refuse the same values with the same wording; argparse prefixes the flag
("argument --steps: Expected a positive int, got 0").
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["int_at_least"]


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: an int >= ``minimum`` (1: a positive int)."""

    def parse(text: str) -> int:
        # imported here: _validation imports torch, which `erl --help` must not load
        from erl_losses._validation import check_int

        try:
            value: object = int(text)
        except ValueError:
            value = text  # refused below, with the expectation in the message
        try:
            return check_int(value, None, minimum=minimum)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse
