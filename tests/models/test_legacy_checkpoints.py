"""Checkpoints written by earlier fcnseg versions load unchanged and give the same outputs.

The files under tests/data/legacy_checkpoints were saved before the trunk/head redesign by
``make_legacy_checkpoints.py`` (in that folder): every VGG16 variant in both geometries,
VGG16-BN, ResNet skip models (strided and dilated), torchvision's FCN and a custom backbone.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from fcnseg.checkpoint import build_model_from_checkpoint, load_checkpoint

LEGACY = Path(__file__).parents[1] / "data" / "legacy_checkpoints"
CHECKPOINTS = sorted(p.stem for p in LEGACY.glob("*.pt") if p.stem not in ("inputs", "expected"))


def _legacy_backbone() -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location("make_legacy_checkpoints",
                                                  LEGACY / "make_legacy_checkpoints.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LegacyBackbone()


def test_every_legacy_model_is_covered() -> None:
    assert len(CHECKPOINTS) == 14


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_legacy_checkpoint_loads_with_the_same_keys_and_outputs(name: str) -> None:
    # The stored inputs are normalised, as models took them then: the bare network takes them.
    ckpt = load_checkpoint(LEGACY / f"{name}.pt")
    backbone = _legacy_backbone() if name.startswith("custom") else None
    model = build_model_from_checkpoint(ckpt, backbone=backbone, preprocess=False)
    assert sorted(model.state_dict()) == sorted(ckpt["model_state_dict"])
    inputs = torch.load(LEGACY / "inputs.pt", weights_only=True)
    expected = torch.load(LEGACY / "expected.pt", weights_only=True)
    for key, x in inputs.items():
        with torch.no_grad():
            out = model(x)
        want = expected[f"{name}/{key}"]
        scale = float(want.abs().max())
        torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("name", ["fcn8s_caffe", "fcn_resnet50"])
def test_legacy_model_on_raw_pixels_equals_the_bare_network_on_normalised_ones(name: str) -> None:
    ckpt = load_checkpoint(LEGACY / f"{name}.pt")
    model = build_model_from_checkpoint(ckpt)
    bare = build_model_from_checkpoint(ckpt, preprocess=False)
    raw = torch.randint(0, 256, (1, 3, 37, 45), generator=torch.Generator().manual_seed(0),
                        dtype=torch.uint8)
    c = model.input_convention
    x = raw.float().flip(1) if c.channel_order == "BGR" else raw.float()
    mean, std = torch.tensor(c.mean).view(3, 1, 1), torch.tensor(c.std).view(3, 1, 1)
    normalised = (x * c.scale - mean) / std
    with torch.no_grad():
        assert torch.equal(model(raw), bare(normalised))
