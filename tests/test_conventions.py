"""Input conventions: Caffe BGR and torchvision RGB preprocessing."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from fcnseg.conventions import CAFFE_BGR, TORCHVISION_RGB, InputConvention, get_convention


def test_caffe_convention_is_bgr_with_mean_subtracted_and_no_scaling() -> None:
    rgb = torch.tensor([10.0, 20.0, 30.0]).view(3, 1, 1)
    out = CAFFE_BGR.normalize(rgb).flatten()
    expected = torch.tensor([30 - 104.00698793, 20 - 116.66876762, 10 - 122.67891434])
    assert torch.allclose(out, expected)


def test_torchvision_convention_is_rgb_scaled_and_standardised() -> None:
    rgb = torch.full((3, 1, 1), 255.0)
    out = TORCHVISION_RGB.normalize(rgb).flatten()
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(out, expected)


@pytest.mark.parametrize("conv", [CAFFE_BGR, TORCHVISION_RGB])
def test_numpy_and_torch_paths_agree_and_invert(conv: InputConvention) -> None:
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    t = conv.normalize(torch.from_numpy(img).permute(2, 0, 1))
    assert np.allclose(conv.normalize_numpy(img), t.numpy(), atol=1e-4)
    back = conv.denormalize(t).permute(1, 2, 0).numpy()
    assert np.allclose(back, img, atol=1e-3)


def test_conventions_round_trip_through_dicts_and_names() -> None:
    assert get_convention(CAFFE_BGR.to_dict()) == CAFFE_BGR
    assert get_convention("torchvision_rgb") is TORCHVISION_RGB
    with pytest.raises(ValueError, match="unknown input convention 'bgr'"):
        get_convention("bgr")
    with pytest.raises(ValueError, match="missing field 'scale'"):
        InputConvention.from_dict({"name": "x", "channel_order": "RGB", "mean": [0] * 3,
                                   "std": [1] * 3})


@pytest.mark.parametrize("name, module, constant", [
    ("nyud_bgr", "fcnseg.data.nyud", "NYUD_BGR"),
    ("siftflow_bgr", "fcnseg.data.siftflow", "SIFTFLOW_BGR"),
    ("pascal_context_bgr", "fcnseg.data.pascal_context", "PASCAL_CONTEXT_BGR"),
])
def test_dataset_conventions_are_registered_by_name(name, module, constant):
    registered = get_convention(name)
    assert registered.name == name and registered.channel_order == "BGR"
    assert registered is getattr(importlib.import_module(module), constant)
