"""Every torch.load in the repository passes weights_only=True explicitly (torch 2.1
to 2.5, which pyproject allows, default to weights_only=False and run pickled code)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("erl_losses", "zoo", "adapters", "benchmarks", "examples", "scripts", "tests")


def _unsafe_loads(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        func = node.func
        if func.attr != "load" or not (
            isinstance(func.value, ast.Name) and func.value.id == "torch"
        ):
            continue
        safe = any(
            kw.arg == "weights_only"
            and isinstance(kw.value, ast.Constant)
            and kw.value.value is True
            for kw in node.keywords
        )
        if not safe:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_torch_load_is_weights_only():
    files = [
        p for folder in FOLDERS if (ROOT / folder).is_dir() for p in (ROOT / folder).rglob("*.py")
    ]
    assert files
    unsafe = [hit for path in files for hit in _unsafe_loads(path)]
    assert not unsafe, f"torch.load without weights_only=True at {unsafe}"
