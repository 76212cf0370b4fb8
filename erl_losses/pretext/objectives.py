"""Stage-2 pretext objectives, pluggable by name.

An objective is ``fn(bcm, batch) -> Tensor``: the scalar loss of one mini-batch ``(B, 3, H, W)``
in [0, 1] that stage 2 minimises over ``t_e`` (+ ``W``). A function that also takes a ``recipe``
keyword receives the :class:`~erl_losses.pretext.PretextRecipe` (e.g. for ``phase_mode``).

Built in (paper table 2): ``"phase"`` (eq. 3, the paper's), ``"l1"`` (pixel L1 ablation) and
``"none"`` (no stage 2: ``t_e`` keeps its seeded random initialisation). A new objective is a new
module ``erl_losses/pretext/objective_<name>.py`` that calls ``register_objective("<name>", ...)``
at import: :func:`objective_names` lists it from the file name (without importing it, so
``erl --help`` never imports torch) and :func:`get_objective` imports it on first use, so the
recipe, ``erl pretrain --pretext`` and the BasicSR pretext model all see it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

    from erl_losses.modules.bcm import BatchCorrelationModule

__all__ = ["Objective", "get_objective", "objective_names", "register_objective"]


@dataclass(frozen=True)
class Objective:
    """A registered stage-2 objective.

    Attributes:
        name: the ``pretext`` value that selects it.
        fn: ``fn(bcm, batch[, recipe=...]) -> Tensor`` (scalar); ``None`` for an objective that
            skips stage 2.
        description: one line for model cards and ``--help``; say "(ours)" when it is not the
            paper's.
        paper: whether the paper defines it (model cards say so).
    """

    name: str
    fn: Callable[..., Tensor] | None
    description: str
    paper: bool = False

    @property
    def trains_relation(self) -> bool:
        """Whether stage 2 runs (``False`` for ``"none"``)."""
        return self.fn is not None

    def loss(self, bcm: BatchCorrelationModule, batch: Tensor, recipe: Any = None) -> Tensor:
        """The scalar loss of ``batch`` ``(B, 3, H, W)`` in [0, 1]."""
        if self.fn is None:
            raise ValueError(f"Expected an objective that trains stage 2, got {self.name!r}")
        if "recipe" in inspect.signature(self.fn).parameters:
            return self.fn(bcm, batch, recipe=recipe)
        return self.fn(bcm, batch)


_REGISTRY: dict[str, Objective] = {}


def register_objective(
    name: str,
    fn: Callable[..., Tensor] | None,
    *,
    description: str,
    paper: bool = False,
) -> Objective:
    """Registers a stage-2 objective under ``name``; a name registered twice raises."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"Expected `name` to be an identifier-like string, got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"Expected a new objective name, got {name!r} (already registered)")
    if fn is not None and not callable(fn):
        raise TypeError(f"Expected `fn` to be callable or None, got {type(fn).__name__}")
    objective = Objective(name, fn, description, paper)
    _REGISTRY[name] = objective
    return objective


def _extension_names() -> list[str]:
    """Names of the ``objective_<name>`` modules of this package, found without importing them
    (so listing the names never imports torch, whatever those modules import)."""
    from erl_losses import pretext

    prefix = "objective_"
    return [
        info.name[len(prefix) :]
        for info in sorted(pkgutil.iter_modules(pretext.__path__), key=lambda m: m.name)
        if info.name.startswith(prefix)
    ]


def objective_names() -> tuple[str, ...]:
    """The registered names and those of the ``objective_<name>`` modules, built-ins first."""
    return tuple(dict.fromkeys([*_REGISTRY, *_extension_names()]))


def get_objective(name: str) -> Objective:
    """The objective ``name``, importing ``objective_<name>`` on first use; an unknown name lists
    the known ones."""
    if name not in _REGISTRY and name in _extension_names():
        importlib.import_module(f"erl_losses.pretext.objective_{name}")
    if name not in _REGISTRY:
        raise ValueError(f"Expected `pretext` to be one of {list(objective_names())}, got {name!r}")
    return _REGISTRY[name]


def _phase(bcm: BatchCorrelationModule, batch: Tensor, recipe: Any = None) -> Tensor:
    from erl_losses.functional.phase import phase_loss

    mode = "paper" if recipe is None else recipe.phase_mode
    return phase_loss(bcm.reconstruct(batch, relation=True), batch, mode=mode)


def _l1(bcm: BatchCorrelationModule, batch: Tensor) -> Tensor:
    return (bcm.reconstruct(batch, relation=True) - batch).abs().mean()


register_objective(
    "phase", _phase, paper=True,
    description="Fourier phase loss (paper eq. 3) between the relation reconstruction and the input",
)  # fmt: skip
register_objective(
    "l1", _l1, paper=True,
    description="pixel L1 of the relation reconstruction (paper table-2 ablation)",
)  # fmt: skip
register_objective(
    "none", None, paper=True,
    description="no pretext task: stage 2 skipped, t_e keeps its seeded random initialisation "
    "(paper table-2 ablation)",
)  # fmt: skip
