"""Optional dependencies: import one, or fail with the install line of the extra that holds it.

The core needs only torch, einops, safetensors and tqdm; images, metrics and plots come with
extras (``data``, ``fidelity``, ``basicsr``; see pyproject.toml). Every optional import goes
through :func:`require` so a missing package always ends in one line naming the extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MODULE_EXTRAS", "explain_import_error", "install_hint", "require"]

#: Top-level optional module -> the extra that installs it (pyproject.toml's optional deps).
#: A package in both a user extra and ``dev`` (numpy, scipy) maps to the user extra.
MODULE_EXTRAS: dict[str, str] = {
    "numpy": "data",
    "PIL": "data",
    "skimage": "data",
    "sklearn": "data",
    "matplotlib": "data",
    "cv2": "data",
    "scipy": "data",
    "torch_fidelity": "fidelity",
    "basicsr": "basicsr",
    "torchvision": "basicsr",
    "yaml": "basicsr",
    "huggingface_hub": "hub",
}


def install_hint(extra: str) -> str:
    """``pip install "erl-losses[<extra>]"``: the command that installs ``extra``."""
    return f'pip install "erl-losses[{extra}]"'


def require(module: str, extra: str) -> ModuleType:
    """Imports ``module`` (dotted name allowed) or raises naming the extra that provides it.

    Args:
        module: e.g. ``"numpy"``, ``"PIL.Image"``, ``"torch_fidelity"``.
        extra: the erl-losses extra that installs it, e.g. ``"data"``.

    Raises:
        ImportError: ``module`` (or one of its own imports) is missing; the message is one line,
            ``Expected <module> (extra '<extra>'): pip install "erl-losses[<extra>]", got ...``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"Expected the optional package {module!r} (extra {extra!r}): {install_hint(extra)}, "
            f"got {type(err).__name__}: {err}"
        ) from err


def explain_import_error(err: ImportError) -> str:
    """One line for an import failure: the message plus the install line of the extra that
    provides the missing module, when it is one of :data:`MODULE_EXTRAS` (messages from
    :func:`require` already name it)."""
    text = " ".join(str(err).split())
    root = (getattr(err, "name", None) or "").split(".")[0]
    if root in MODULE_EXTRAS and "pip install" not in text:
        extra = MODULE_EXTRAS[root]
        text = f"{text} (the optional package of extra {extra!r}: {install_hint(extra)})"
    return text
