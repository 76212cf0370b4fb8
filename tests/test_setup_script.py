"""``scripts/setup.sh``: which environment it makes and what it installs there.

A real run downloads torch (minutes, gigabytes), so the script runs with a stub interpreter
(``PYTHON=stub``) that records every command; the stub's ``-m venv DIR`` makes a fake environment
whose ``bin/python`` is the stub again.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "setup.sh"

STUB = r"""#!/usr/bin/env bash
echo "$*" >> "$SETUP_LOG"
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"
  cp "$0" "$3/bin/python"
  printf 'PATH="%s/bin:$PATH"\n' "$3" > "$3/bin/activate"
fi
if [ "$1 $2 $3" = "-m pip show" ]; then
  exit "${STUB_HAS_BASICSR:-1}"
fi
exit 0
"""


def _run(tmp_path: Path, *args: str, has_basicsr: bool = False) -> tuple[str, list[str]]:
    stub = tmp_path / "python-stub"
    stub.write_text(STUB)
    stub.chmod(0o755)
    log = tmp_path / "commands.log"
    log.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHON": str(stub),
        "SETUP_LOG": str(log),
        "STUB_HAS_BASICSR": "0" if has_basicsr else "1",
    }
    done = subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, log.read_text().splitlines()


def test_no_basicsr_makes_a_separate_environment_without_pip_basicsr(tmp_path: Path) -> None:
    stdout, commands = _run(tmp_path, "--no-basicsr", "--venv", "env")
    assert commands[0] == f"-m venv {tmp_path / 'env'}"
    installs = [c for c in commands if c.startswith("-m pip install")]
    assert not any("basicsr" in c or "[all]" in c for c in installs), installs
    assert any(c.endswith("-e .[data]") for c in installs), installs
    assert "no pip basicsr" in stdout
    # Re-run on an environment that has pip basicsr (e.g. made by the full setup): removed.
    stdout, commands = _run(tmp_path, "--no-basicsr", "--venv", "env", has_basicsr=True)
    assert not any(c.startswith("-m venv") for c in commands)  # reused
    assert "-m pip uninstall -q -y basicsr" in commands
    assert "removing pip basicsr" in stdout


def test_the_default_environment_keeps_every_extra_and_pip_basicsr(tmp_path: Path) -> None:
    venv = tmp_path / "full"
    _, commands = _run(tmp_path, "--venv", str(venv))
    installs = [c for c in commands if c.startswith("-m pip install")]
    assert any("basicsr==1.4.2" in c and "--no-build-isolation" in c for c in installs)
    assert any(c.endswith("-e .[all]") for c in installs)
    # torch before basicsr: basicsr's build imports it
    torch_at = next(i for i, c in enumerate(installs) if "torch" in c.split())
    assert torch_at < next(i for i, c in enumerate(installs) if "basicsr" in c)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--bogus"], "got '--bogus'"), (["--venv"], "Expected a folder after --venv")],
)
def test_bad_arguments_exit_2_before_anything_is_made(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_help_describes_both_environments() -> None:
    done = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "--no-basicsr" in done.stdout and "namespace" in done.stdout
    assert "set -euo" not in done.stdout
