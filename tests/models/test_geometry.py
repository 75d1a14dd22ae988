"""Crop offsets and alignment derived from the layer list (coordinate maps)."""

from __future__ import annotations

import pytest
from torch import nn

from fcnseg.models import build_model
from fcnseg.models.geometry import IDENTITY, CoordMap, crop_offset, output_size, trace

TINY = {"width": 0.0625, "fc_channels": 8}


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("fcn32s", {"final": 19}),
        ("fcn16s", {"pool4": 5, "final": 27}),
        ("fcn8s", {"pool4": 5, "pool3": 9, "final": 31}),
        ("fcn8s_atonce", {"pool4": 5, "pool3": 9, "final": 31}),
    ],
)
def test_caffe_geometry_derives_reference_crop_offsets(arch: str, expected: dict) -> None:
    assert build_model(arch, geometry="caffe", **TINY).offsets == expected


@pytest.mark.parametrize("arch", ["fcn32s", "fcn16s", "fcn8s"])
def test_same_geometry_needs_no_crop_offsets(arch: str) -> None:
    assert set(build_model(arch, geometry="same", **TINY).offsets.values()) == {0}


def test_coordinate_maps_match_the_reference_formulas() -> None:
    model = build_model("fcn8s", geometry="caffe", **TINY)
    assert trace([model.conv1_1]) == CoordMap(1, -99)  # conv1_1 pad 100: x = y - 99
    assert CoordMap(1, 0).through(model.pool1) == CoordMap(2, 0.5)  # each pool: x = 2y + 0.5
    assert model.coord_maps()["score_fr"] == CoordMap(32, 12.5)  # x = 32z + 12.5


def test_crop_offset_rejects_misaligned_maps() -> None:
    with pytest.raises(ValueError, match="different scales"):
        crop_offset(CoordMap(2, 0), CoordMap(4, 0))
    with pytest.raises(ValueError, match="whole offset"):
        crop_offset(CoordMap(2, 0), CoordMap(2, 1))  # half an element apart


def _sizes_stay_in_bounds(model: nn.Module, n: int) -> None:
    """Every crop of ``model`` on an n×n input reads inside the map it crops."""
    trunk3, trunk4 = model._block_layers(3), model._block_layers(4)
    score = model._block_layers(5) + [model.fc6, model.fc7, model.score_fr]
    sizes = {"pool3": output_size(n, trunk3), "pool4": output_size(n, trunk4),
             "score_fr": output_size(n, score)}
    assert sizes["score_fr"] >= 1, f"no stride-32 scores for input {n}"
    off = model.offsets
    caffe = model.geometry == "caffe"
    if model.arch == "fcn32s":
        up = output_size(sizes["score_fr"], [model.upscore])
    else:
        up = output_size(sizes["score_fr"], [model.upscore2])
        # the larger map of each fusion is cropped to the smaller one
        big, small = (sizes["pool4"], up) if caffe else (up, sizes["pool4"])
        assert off["pool4"] + small <= big, (n, "pool4")
        up = small
        if model.arch == "fcn16s":
            up = output_size(up, [model.upscore16])
        else:
            up = output_size(up, [model.upscore_pool4])
            big, small = (sizes["pool3"], up) if caffe else (up, sizes["pool3"])
            assert off["pool3"] + small <= big, (n, "pool3")
            up = output_size(small, [model.upscore8])
    assert off["final"] + n <= up, (n, "final")


@pytest.mark.parametrize("geometry", ["caffe", "same"])
@pytest.mark.parametrize("arch", ["fcn32s", "fcn16s", "fcn8s"])
def test_every_crop_stays_in_bounds_for_sizes_1_to_512(arch: str, geometry: str) -> None:
    model = build_model(arch, geometry=geometry, **TINY)
    for n in range(1, 513):
        _sizes_stay_in_bounds(model, n)


def test_output_size_matches_a_real_forward() -> None:
    import torch

    model = build_model("fcn8s", geometry="caffe", **TINY).eval()
    layers = model._block_layers(4)
    for n in (1, 2, 17, 100):
        with torch.no_grad():
            _, pool4, _ = model.features(torch.zeros(1, 3, n, n))
        assert pool4.shape[-1] == output_size(n, layers)


def test_identity_map_is_neutral() -> None:
    assert trace([]) == IDENTITY
