"""Names shared by the zoo tests (the tiny weights file's name, the cache listing)."""

from __future__ import annotations

from erl_losses.zoo import Zoo

#: File name of the tiny zoo-format BCM of the ``weights`` fixture (tests/zoo/conftest.py).
FILE = "tiny-v1.safetensors"


def _cache_files(zoo: Zoo) -> list[str]:
    return sorted(p.name for p in zoo.cache_dir.iterdir()) if zoo.cache_dir.exists() else []
