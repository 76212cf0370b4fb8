"""The package as users get it: pyproject-only build, sdist, wheel, editable and wheel installs.

The slow tests build ONCE per session, from a copy of the working tree (tracked and untracked,
not ignored, files: what a fresh clone plus your edits holds), so they never write into the
repository and never race with another worker.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import erl_losses
from erl_losses.cli import main

ROOT = Path(__file__).resolve().parents[1]
#: Source folder -> the package it installs as (pyproject's package-dir).
ROOTS = {"erl_losses": "erl_losses", "zoo": "erl_losses.zoo", "adapters": "erl_losses.adapters"}
VERSION = erl_losses.__version__


#: Never part of the source, wherever the tests run from (a clone, or an unpacked sdist).
SKIP = {"__pycache__", ".git", ".venv", "venv", "build", "dist", ".pytest_cache", ".ruff_cache"}


def _source_files() -> list[Path]:
    """The source tree's files, relative: git's view in a clone (tracked and untracked, not
    ignored), every file but caches and build outputs in an unpacked sdist."""
    if (ROOT / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        names = [Path(name) for name in listed.split("\0") if name]
    else:
        names = [p.relative_to(ROOT) for p in ROOT.rglob("*") if p.is_file()]
    return [
        name
        for name in names
        if (ROOT / name).is_file()
        and not SKIP.intersection(name.parts)
        and not any(part.endswith(".egg-info") for part in name.parts)
    ]


def _package_folders() -> set[str]:
    """Every folder under the three roots that holds a module or package data."""
    found = set()
    for name in _source_files():
        if name.parts[0] in ROOTS:
            found.add(".".join((ROOTS[name.parts[0]], *name.parts[1:-1])))
    return found


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_pyproject_lists_every_package_and_maps_the_three_folders() -> None:
    config = _pyproject()["tool"]["setuptools"]
    assert config["package-dir"] == {package: folder for folder, package in ROOTS.items()}
    assert sorted(config["packages"]) == sorted(_package_folders())
    assert not (ROOT / "setup.py").exists()  # one build configuration: pyproject.toml


def test_dev_extra_has_the_release_tools_and_license_file_exists() -> None:
    project = _pyproject()["project"]
    dev = " ".join(project["optional-dependencies"]["dev"])
    assert "build" in dev and "twine" in dev
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert f"[{VERSION}]" in (ROOT / "CHANGELOG.md").read_text()


def _tree_copy(dest: Path) -> Path:
    for name in _source_files():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """sdist, then the wheel built FROM the sdist (``python -m build``), and the build log."""
    base = tmp_path_factory.mktemp("packaging")
    tree = _tree_copy(base / "tree")
    dist = base / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(tree)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    (sdist,) = dist.glob("erl_losses-*.tar.gz")
    (wheel,) = dist.glob("erl_losses-*.whl")
    return {"tree": tree, "sdist": sdist, "wheel": wheel, "log": done.stdout + done.stderr}


@pytest.mark.slow
def test_build_has_no_package_warnings_and_twine_accepts_it(built: dict) -> None:
    assert "absent from the `packages` configuration" not in built["log"]
    assert "Package would be ignored" not in built["log"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "twine",
            "check",
            "--strict",
            str(built["sdist"]),
            str(built["wheel"]),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2


@pytest.mark.slow
def test_sdist_holds_docs_examples_scripts_tests(built: dict) -> None:
    with tarfile.open(built["sdist"]) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for required in (
        "LICENSE",
        "CHANGELOG.md",
        "README.md",
        "pyproject.toml",
        "docs/basicsr.md",
        "examples/one_line.py",
        "scripts/setup.sh",
        "tests/test_packaging.py",
        "tests/adapters/test_vendored.py",
        "benchmarks/quality.py",
        "zoo/manifest.json",
        "adapters/basicsr/options/tiny_cpu_synthetic.yml",
    ):
        assert required in names, required
    assert not any("__pycache__" in name for name in names)


@pytest.mark.slow
def test_wheel_maps_three_folders_into_one_namespace(built: dict) -> None:
    # README's install section names this very file.
    wheel_name = f"erl_losses-{VERSION}-py3-none-any.whl"
    assert Path(built["wheel"]).name == wheel_name
    assert f"dist/{wheel_name}[data]" in (ROOT / "README.md").read_text()
    archive = zipfile.ZipFile(built["wheel"])
    names = archive.namelist()
    # Never a top-level `adapters` or `zoo` module: only erl_losses and its metadata.
    assert {n.split("/")[0] for n in names} == {"erl_losses", f"erl_losses-{VERSION}.dist-info"}
    for required in (
        "erl_losses/py.typed",
        "erl_losses/zoo/manifest.json",
        "erl_losses/zoo/bcm-phase-photos-v1.safetensors",
        "erl_losses/zoo/cards/bcm-phase-photos.md",
        "erl_losses/adapters/vendored.py",
        "erl_losses/adapters/basicsr/__init__.py",
        "erl_losses/adapters/basicsr/options/tiny_cpu_synthetic.yml",
        f"erl_losses-{VERSION}.dist-info/licenses/LICENSE",
    ):
        assert required in names, required
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = archive.read(entry_points).decode()
    for script in ("erl =", "erl-basicsr-train =", "erl-basicsr-test ="):
        assert script in scripts


def _venv(path: Path) -> Path:
    """A bare venv whose dependencies (torch, ...) come from this interpreter's site-packages
    as a plain path entry: that folder's ``.pth`` files, among them this checkout's own editable
    install, are not processed, so only what is installed into the venv provides erl_losses."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


IMPORTS = (
    "import erl_losses, erl_losses.zoo, erl_losses.adapters.vendored as v, importlib.util as u\n"
    "print(erl_losses.__file__); print(erl_losses.zoo.__file__); print(v.__file__)\n"
    "print(u.find_spec('erl_losses.adapters.basicsr').origin)\n"
    "print(erl_losses.zoo.names()[0])\n"
)


def _pip_install(python: Path, *args: str) -> None:
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _imports(python: Path, cwd: Path) -> list[str]:
    done = subprocess.run(
        [str(python), "-c", IMPORTS], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


@pytest.mark.slow
def test_wheel_install_imports_outside_the_tree(built: dict, tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    _pip_install(python, str(built["wheel"]))
    lines = _imports(python, tmp_path)
    site = str(tmp_path / "venv")
    assert all(line.startswith(site) for line in lines[:4]), lines
    assert lines[1].endswith("erl_losses/zoo/__init__.py")
    assert lines[3].endswith("erl_losses/adapters/basicsr/__init__.py")
    version = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "erl"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert VERSION in version.stdout


@pytest.mark.slow
def test_editable_install_maps_the_three_folders(built: dict, tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    tree = Path(built["tree"])
    _pip_install(python, "--no-build-isolation", "-e", str(tree))
    lines = _imports(python, tmp_path)
    assert lines[:4] == [
        str(tree / "erl_losses" / "__init__.py"),
        str(tree / "zoo" / "__init__.py"),
        str(tree / "adapters" / "vendored.py"),
        str(tree / "adapters" / "basicsr" / "__init__.py"),
    ]


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert erl_losses.__version__ in capsys.readouterr().out
    assert main([]) == 0
    listed = capsys.readouterr().out
    for command in ("demo", "eval", "enhance", "pretrain", "render", "zoo"):
        assert command in listed


def test_core_import_pulls_in_no_optional_dependency() -> None:
    code = (
        "import sys, erl_losses; "
        "bad = [m for m in ('basicsr', 'torchvision', 'torch_fidelity', 'skimage', 'matplotlib') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
