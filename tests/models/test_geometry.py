"""Crop offsets and alignment derived from the layer list (coordinate maps)."""

from __future__ import annotations

import pytest
from torch import nn

from fcnseg.models import build_model
from fcnseg.models.geometry import (
    IDENTITY,
    CoordMap,
    crop_offset,
    output_size,
    output_stride,
    trace,
)

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
    assert trace([model.trunk.conv1_1]) == CoordMap(1, -99)  # conv1_1 pad 100: x = y - 99
    assert CoordMap(1, 0).through(model.trunk.pool1) == CoordMap(2, 0.5)  # each pool: x = 2y + 0.5
    assert model.coord_maps()[32] == CoordMap(32, 12.5)  # fc7 and score_fr: x = 32z + 12.5


def test_crop_offset_rejects_misaligned_maps() -> None:
    with pytest.raises(ValueError, match="different scales"):
        crop_offset(CoordMap(2, 0), CoordMap(4, 0))
    with pytest.raises(ValueError, match="whole offset"):
        crop_offset(CoordMap(2, 0), CoordMap(2, 1))  # half an element apart


def _sizes_stay_in_bounds(model: nn.Module, n: int) -> None:
    """On an n×n input, every upsampling window of ``model`` that reaches the output lies inside
    the deconvolution's output (in the "same" geometry every window does; in the Caffe geometry
    the fused maps' borders may be zero, but never a pixel of the output)."""
    trunk, head = model.trunk, model.head
    sizes = {8: output_size(n, trunk.block_layers(3)), 16: output_size(n, trunk.block_layers(4)),
             32: output_size(n, trunk.block_layers(5) + [trunk.fc6, trunk.fc7])}
    assert sizes[32] >= 1, f"no stride-32 scores for input {n}"
    same = model.geometry == "same"
    current = sizes[32]
    for up, target in ((head.upscore2, 16), (head.upscore_pool4, 8)):
        if up is None:
            break
        full = output_size(current, [up.up])
        if same:
            assert up.offset >= 0 and up.offset + sizes[target] <= full, (n, target)
        current = sizes[target]
    final = head.upscore
    assert final.offset >= 0, (n, "final")
    assert final.offset + n <= output_size(current, [final.up]), (n, "final")


@pytest.mark.parametrize("geometry", ["caffe", "same"])
@pytest.mark.parametrize("arch", ["fcn32s", "fcn16s", "fcn8s"])
def test_every_output_window_stays_in_bounds_for_sizes_1_to_512(arch: str, geometry: str) -> None:
    model = build_model(arch, geometry=geometry, **TINY)
    for n in range(1, 513):
        _sizes_stay_in_bounds(model, n)


def test_caffe_geometry_places_upsampled_scores_onto_the_skip_grid() -> None:
    # The reference crops pool4's scores at 5 to the upsampled map; the head instead places the
    # upsampled map 5 pixels into pool4's grid (zeros before it), which gives the same sums.
    # Likewise at pool3, and the output is cropped 8 * 9 pixels further along pool3's grid.
    head = build_model("fcn8s", geometry="caffe", **TINY).head
    assert head.upscore2.offset == -5
    assert head.upscore_pool4.offset == 2 * 5 - 9  # the upsampled pool4 grid starts 10 earlier
    assert head.upscore.offset == 31 + 8 * 9


def test_output_size_matches_a_real_forward() -> None:
    import torch

    model = build_model("fcn8s", geometry="caffe", **TINY).eval()
    layers = model.trunk.block_layers(4)
    for n in (1, 2, 17, 100):
        with torch.no_grad():
            pool4 = model.features(torch.zeros(1, 3, n, n))[16]
        assert pool4.shape[-1] == output_size(n, layers)


def test_identity_map_is_neutral() -> None:
    assert trace([]) == IDENTITY


def test_output_stride_is_the_coarsest_scale_of_a_models_coordinate_maps() -> None:
    from fcnseg.models import fcn8s
    from fcnseg.models.preprocess import with_preprocess

    model = fcn8s(num_classes=3, width=0.0625, fc_channels=8)
    assert output_stride(model) == 32
    assert output_stride(with_preprocess(nn.Sequential(model), "caffe_bgr")) == 32  # default

    class Dilated(nn.Module):
        coord_maps = {8: CoordMap(8.0, 3.5), 16: CoordMap(8.0, 3.5), 32: CoordMap(8.0, 3.5)}

    assert output_stride(Dilated()) == 8
    assert output_stride(with_preprocess(Dilated(), "caffe_bgr")) == 8  # behind a Preprocess
