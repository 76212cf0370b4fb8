"""erl_losses._extras: the optional-import helper and the module -> extra map."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from erl_losses._extras import MODULE_EXTRAS, explain_import_error, require


def test_require_names_the_extra():
    assert require("math", "data") is math
    with pytest.raises(ImportError, match=r'pip install "erl-losses\[data\]"'):
        require("erl_losses_no_such_module", "data")


def test_every_mapped_module_belongs_to_a_declared_extra():
    import tomllib  # Python >= 3.11, imported here so that the module still collects on 3.10

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert set(MODULE_EXTRAS.values()) <= set(extras)
    # each module's distribution is in the extra it names, and every distribution of a user
    # extra (all but dev, which only adds tools, and all) has its module in the map
    dist = {"PIL": "pillow", "skimage": "scikit-image", "sklearn": "scikit-learn"}
    dist |= {"cv2": "opencv-python-headless", "yaml": "pyyaml", "torch_fidelity": "torch-fidelity"}
    listed = {
        extra: {re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower() for req in reqs}
        for extra, reqs in extras.items()
    }
    for module, extra in MODULE_EXTRAS.items():
        assert dist.get(module, module) in listed[extra], (module, extra)
    mapped = {(dist.get(m, m), e) for m, e in MODULE_EXTRAS.items()}
    for extra in set(extras) - {"dev", "all"}:
        assert {(d, extra) for d in listed[extra]} <= mapped, extra


def test_explain_import_error_adds_the_install_line_once():
    err = ModuleNotFoundError("No module named 'skimage'", name="skimage")
    assert explain_import_error(err).endswith('pip install "erl-losses[data]")')
    with pytest.raises(ImportError) as info:
        require("erl_losses_no_such_module", "fidelity")
    assert explain_import_error(info.value).count("pip install") == 1
    assert explain_import_error(ImportError("other")) == "other"
