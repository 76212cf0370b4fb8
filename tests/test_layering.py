"""The import direction of docs/design.md ("Layers"), read from the source with ``ast``.

Between layers every ``import`` counts: at module level, inside a function, under
``TYPE_CHECKING`` (a lower layer that names a higher one's types still knows it: it takes a
``Protocol`` instead). A module may import its own layer and the layers below it, never one
above. ``from erl_losses import X`` counts as an import of the module that defines ``X`` (the
package's lazy ``__getattr__``). Inside the zoo the modules import each other without a cycle
(``TYPE_CHECKING`` imports, which never run, aside).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Source folder -> the package it installs as (pyproject's package-dir).
FOLDERS = {"erl_losses": "erl_losses", "zoo": "erl_losses.zoo", "adapters": "erl_losses.adapters"}

#: The layers, lowest first; each entry lists the units of that layer. A unit is the first
#: component under ``erl_losses`` (a sub-package or module), or ``zoo`` / ``adapters``.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "_version",
        "_validation",
        "_reduction",
        "_files",
        "_extras",
        "_flags",
        "_runtime",
        "_torchvision_alias",
    ),
    ("zoo",),  # a name -> a verified file and its spec; torch-free, builds no module
    ("distributed",),
    ("functional",),
    ("modules",),  # BatchCorrelationModule; bcm_io builds one from a file the zoo resolved
    ("losses",),
    ("archs",),
    ("data",),
    ("evaluation",),
    ("diagnostics",),
    ("training",),
    ("pretext",),
    ("plots",),
    ("demo", "demo_figures"),  # the demo's figures read its results; plots never import them
    ("cli", "__main__"),
    ("adapters",),
)
LEVEL = {unit: level for level, units in enumerate(LAYERS) for unit in units}

#: Edges that break the layering today, each with the change that removes it; the list only
#: shrinks. An entry that no longer occurs fails the test, so a fixed edge cannot linger here.
KNOWN_BACK_EDGES: frozenset[tuple[str, str]] = frozenset(
    set()
)

#: The public names of ``erl_losses`` and their modules (erl_losses/__init__.py's ``_LAZY``).
LAZY_NAMES = {
    "BatchCorrelationModule": "erl_losses.modules",
    "PhaseLoss": "erl_losses.losses",
    "SampleRelationLoss": "erl_losses.losses",
    "phase_loss": "erl_losses.functional",
    "sample_relation_loss": "erl_losses.functional",
}


def _module_name(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    parts = [FOLDERS[folder], *rest]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> Iterator[tuple[str, Path]]:
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield _module_name(path), path


def _type_checking_imports(tree: ast.AST) -> set[int]:
    """The ids of the import statements under ``if TYPE_CHECKING:``."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return found


def _imports(path: Path) -> Iterator[tuple[str, int, bool]]:
    """Every ``erl_losses...`` module ``path`` imports, with the line and whether the import is
    for type checkers only, wherever the statement stands (``from package import module``
    counts as importing that module)."""
    modules = {name for name, _ in _sources()}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = _type_checking_imports(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("erl_losses"):
                    yield alias.name, node.lineno, id(node) in typing_only
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if not node.module.startswith("erl_losses"):
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if node.module == "erl_losses" and alias.name in LAZY_NAMES:
                    target = LAZY_NAMES[alias.name]
                else:
                    target = submodule if submodule in modules else node.module
                yield target, node.lineno, id(node) in typing_only


def _unit(module: str) -> str | None:
    """The layer unit of ``module``; ``None`` for the package itself (its ``__init__`` imports
    only ``_version`` and loads the rest lazily by name)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _edges() -> Iterator[tuple[str, str, int, bool]]:
    for module, path in _sources():
        for target, line, typing_only in _imports(path):
            yield module, target, line, typing_only


def _zoo_cycles() -> set[tuple[str, str]]:
    """The zoo's run-time imports ``(a, b)`` that lie on an import cycle."""
    graph: dict[str, set[str]] = {}
    for module, target, _line, typing_only in _edges():
        if _unit(module) == _unit(target) == "zoo" and module != target and not typing_only:
            graph.setdefault(module, set()).add(target)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
        return False

    return {(a, b) for a, targets in graph.items() for b in targets if reaches(b, a)}


def _back_edges() -> dict[tuple[str, str], list[str]]:
    """``(importer unit, imported unit)`` -> the ``module:line -> target`` that go upwards;
    inside the zoo, ``(module, module)`` pairs on an import cycle."""
    found: dict[tuple[str, str], list[str]] = {}
    for module, target, line, _typing_only in _edges():
        source_unit, target_unit = _unit(module), _unit(target)
        if source_unit is None or target_unit is None or source_unit == target_unit:
            continue
        if LEVEL[target_unit] > LEVEL[source_unit]:
            where = f"{module}:{line} -> {target}"
            if where not in found.get((source_unit, target_unit), []):
                found.setdefault((source_unit, target_unit), []).append(where)
    for a, b in sorted(_zoo_cycles()):
        found[(a.removeprefix("erl_losses."), b.removeprefix("erl_losses."))] = ["a cycle"]
    return found


def test_every_unit_and_zoo_module_has_a_layer() -> None:
    units = {_unit(m) for m, _ in _sources()} - {None}
    assert units <= set(LEVEL), sorted(units - set(LEVEL))


def test_no_lower_layer_imports_a_higher_one() -> None:
    found = _back_edges()
    new = {edge: where for edge, where in found.items() if edge not in KNOWN_BACK_EDGES}
    assert not new, "imports against the layering of docs/design.md:\n" + "\n".join(
        f"  {a} -> {b}: {', '.join(where)}" for (a, b), where in sorted(new.items())
    )
    assert not KNOWN_BACK_EDGES - set(found), "fixed: remove from KNOWN_BACK_EDGES"


def test_below_the_demo_only_bcm_io_reaches_the_zoo() -> None:
    """One loader: among the layers that build or use a BCM, only bcm_io asks the zoo for a
    file (the demo and the CLI above may read its manifest)."""
    readers = {
        module
        for module, target, _line, _typing in _edges()
        if _unit(target) == "zoo"
        and _unit(module) not in (None, "zoo")
        and LEVEL[_unit(module) or ""] < LEVEL["demo"]
    }
    assert readers == {"erl_losses.modules.bcm_io"}


def test_the_lazy_names_match_the_package() -> None:
    import erl_losses

    assert erl_losses._LAZY == LAZY_NAMES


@pytest.mark.parametrize(
    ("module", "source", "target"),
    [
        ("erl_losses.modules.bcm", "from erl_losses.zoo import resolve", "zoo-ok"),
        ("erl_losses.evaluation.metrics", "import erl_losses.adapters.x", "adapters"),
        (
            "erl_losses.data.render",
            "def f():\n    from erl_losses.evaluation import m",
            "evaluation",
        ),
        ("erl_losses.zoo.store", "from erl_losses.modules.bcm_io import load_bcm", "modules"),
        (
            "erl_losses.functional.relation",
            "from erl_losses import BatchCorrelationModule",
            "modules",
        ),
        ("erl_losses.plots", "from erl_losses.demo import RUNS", "demo"),
        ("erl_losses.zoo.store", "from erl_losses.zoo.sources import get", "zoo.sources"),
        ("erl_losses.zoo.sources", "from erl_losses.zoo.store import Zoo", "zoo.store"),
    ],
)
def test_the_check_sees_back_edges_wherever_they_stand(
    tmp_path, monkeypatch, module, source, target
):
    """The checker itself: a back-edge at module level, in a function or through the package's
    lazy names is found; a downward one is not."""
    probes = [(module, tmp_path / "probe.py")]
    probes[0][1].write_text(source + "\n", encoding="utf-8")
    if module.startswith("erl_losses.zoo"):  # a cycle needs both of its modules
        other = "sources" if module.endswith("store") else "store"
        back = "store import Zoo" if other == "sources" else "sources import get"
        probes.append((f"erl_losses.zoo.{other}", tmp_path / "other.py"))
        probes[1][1].write_text(f"from erl_losses.zoo.{back}\n", encoding="utf-8")
    this = sys.modules[__name__]
    monkeypatch.setattr(this, "_sources", lambda: iter(probes))
    found = _back_edges()
    if target == "zoo-ok":
        assert found == {}
    else:
        assert any(edge[1] == target for edge in found), found
