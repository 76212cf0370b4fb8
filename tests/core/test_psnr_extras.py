"""The one tensor PSNR and the optional-import helper."""

from __future__ import annotations

import math
import re

import pytest
import torch

from erl_losses._extras import require
from erl_losses.functional import psnr


def test_psnr_matches_the_definition():
    torch.manual_seed(0)
    target = torch.rand(3, 3, 8, 8)
    pred = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
    mse = (pred - target).square().flatten(1).mean(1)
    expected = [10 * math.log10(1 / float(m)) for m in mse]
    torch.testing.assert_close(psnr(pred, target), torch.tensor(expected), rtol=0, atol=1e-4)


def test_psnr_data_range_255_and_identical_images():
    x = torch.full((1, 3, 4, 4), 100.0)
    assert float(psnr(x + 1, x, data_range=255)) == pytest.approx(10 * math.log10(255**2), abs=1e-4)
    assert float(psnr(x / 255, x / 255)) == pytest.approx(120.0)


def test_psnr_errors_name_the_argument():
    x = torch.rand(1, 3, 4, 4)
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, torch.rand(1, 3, 4, 5))
    with pytest.raises(ValueError, match="data_range"):
        psnr(x, x, data_range=0)
    with pytest.raises(TypeError, match="pred"):
        psnr([x], x)


def test_require_names_the_extra():
    assert require("math", "data") is math
    with pytest.raises(ImportError, match=r'pip install "erl-losses\[data\]"'):
        require("erl_losses_no_such_module", "data")


def test_every_mapped_module_belongs_to_a_declared_extra():
    from pathlib import Path

    import tomllib

    from erl_losses._extras import MODULE_EXTRAS

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
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
    from erl_losses._extras import explain_import_error

    err = ModuleNotFoundError("No module named 'skimage'", name="skimage")
    assert explain_import_error(err).endswith('pip install "erl-losses[data]")')
    with pytest.raises(ImportError) as info:
        require("erl_losses_no_such_module", "fidelity")
    assert explain_import_error(info.value).count("pip install") == 1
    assert explain_import_error(ImportError("other")) == "other"
