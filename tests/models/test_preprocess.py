"""Models take raw pixels: their Preprocess is the one place where inputs are normalised."""

from __future__ import annotations

import math

import pytest
import torch
from floats import assert_close_to_scale
from torch import nn

from fcnseg.checkpoint import build_model_from_checkpoint, describe_model, save_checkpoint
from fcnseg.conventions import NYUD_BGR, TORCHVISION_RGB
from fcnseg.models import build_model
from fcnseg.models.preprocess import BareInput, Preprocess, with_preprocess

TINY = {"width": 0.0625, "fc_channels": 8}


def _raw(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)


def test_every_model_starts_with_its_preprocess() -> None:
    for arch in ("fcn8s", "fcn8s_resnet18", "fcn_resnet50", "nyud_fcn32s_color_hha"):
        options = {"base_channels": 4} if "resnet" in arch else TINY
        model = build_model(arch, **options)
        assert isinstance(model.preprocess, Preprocess), arch
        assert next(iter(model.named_children()))[0] == "preprocess", arch


def test_uint8_and_float_pixels_give_the_same_output() -> None:
    model = build_model("fcn8s", num_classes=3, **TINY).eval()
    x = _raw(1, 3, 40, 36)
    with torch.no_grad():
        assert torch.equal(model(x), model(x.float()))


def test_the_bare_network_takes_normalised_input() -> None:
    model = build_model("fcn8s", num_classes=3, **TINY).eval()
    bare = build_model("fcn8s", num_classes=3, preprocess=False, **TINY).eval()
    bare.load_state_dict(model.state_dict())
    assert isinstance(bare.preprocess, nn.Identity)
    x = _raw(2, 3, 33, 47)
    # Caffe's convention by hand: BGR, minus the mean, no scaling.
    mean = torch.tensor([104.00698793, 116.66876762, 122.67891434]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.equal(model(x), bare(x.float().flip(1) - mean))


def test_the_constants_are_buffers_outside_the_state_dict() -> None:
    model = build_model("fcn8s", num_classes=3, **TINY)
    assert not [k for k in model.state_dict() if k.startswith("preprocess")]
    assert {n for n, _ in model.named_buffers()} >= {"preprocess.steps.color.mean",
                                                      "preprocess.steps.color.std"}


def test_loading_weights_of_another_convention_changes_the_preprocess() -> None:
    model = build_model("fcn8s", num_classes=3, **TINY)
    model.input_convention = TORCHVISION_RGB
    assert model.preprocess.convention == TORCHVISION_RGB
    out = model.preprocess(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8))
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(out.flatten(), expected)


def test_the_checkpoint_records_the_preprocess_and_restores_it(tmp_path) -> None:
    model = build_model("fcn8s", num_classes=3, **TINY)
    model.input_convention = TORCHVISION_RGB
    path = save_checkpoint(tmp_path / "m.pt", model, class_names=["a", "b", "c"],
                           palette=[[0, 0, 0]] * 3)
    assert describe_model(model)["preprocess"]["color"]["name"] == "torchvision_rgb"
    assert build_model_from_checkpoint(path).preprocess.convention == TORCHVISION_RGB


def test_channels_last_input_stays_channels_last() -> None:
    x = _raw(1, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    out = Preprocess()(x)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_each_modality_is_normalised_its_own_way_and_stacked_input_agrees() -> None:
    pre = Preprocess(("color", "depth"), NYUD_BGR)
    color = torch.tensor([10.0, 20.0, 30.0]).view(1, 3, 1, 1)
    depth = torch.tensor([2000.0]).view(1, 1, 1, 1)
    out = pre({"color": color, "depth": depth})
    torch.testing.assert_close(out["color"].flatten(),
                               torch.tensor([30 - 116.190, 20 - 97.203, 10 - 92.318]))
    torch.testing.assert_close(out["depth"].flatten(),
                               torch.tensor([math.log(2000.0) - 7.844]))
    stacked = pre(torch.cat([color, depth], dim=1))
    assert torch.equal(stacked, torch.cat([out["color"], out["depth"]], dim=1))
    unknown = pre({"color": color, "depth": torch.zeros(1, 1, 1, 1)})["depth"]
    assert torch.equal(unknown, torch.zeros(1, 1, 1, 1))


def test_stacked_input_of_other_channels_names_the_inputs_it_stacks() -> None:
    model = build_model("nyud_fcn32s_color_d", num_classes=3, width=0.0625, fc_channels=8)
    with pytest.raises(ValueError, match=r"^expected N×4×H×W, channels of color \(3\) and "
                                         r"depth \(1\) stacked, got shape \(1, 3, 40, 40\)$"):
        model(torch.rand(1, 3, 40, 40) * 255)


def test_an_input_that_is_not_a_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="N×3×H×W"):
        Preprocess()(torch.zeros(3, 4, 4))


def test_the_bare_network_refuses_uint8_in_one_line() -> None:
    bare = build_model("fcn8s", num_classes=3, preprocess=False, **TINY).eval()
    with pytest.raises(TypeError, match="normalised float input") as e:
        bare(_raw(1, 3, 40, 40))
    assert "preprocess=False" in str(e.value) and "\n" not in str(e.value)


def test_the_two_float_conventions_are_documented_side_by_side() -> None:
    from fcnseg.inference import Segmenter
    from fcnseg.models.fcn import FCN

    for doc in (build_model.__doc__, FCN.__doc__):
        assert "float 0-255" in doc and "Segmenter.predict" in doc and "x / 255" in doc
    assert "model(x)" in Segmenter.predict.__doc__ and "0-255" in Segmenter.predict.__doc__


@pytest.mark.parametrize("convention", ["caffe_bgr", "torchvision_rgb"])
def test_the_bare_network_refuses_float_raw_pixels_in_one_line(convention: str) -> None:
    model = build_model("fcn8s", num_classes=3, input_convention=convention, **TINY).eval()
    bare = build_model("fcn8s", num_classes=3, input_convention=convention, preprocess=False,
                       **TINY).eval()
    raw = _raw(1, 3, 40, 40).float()  # what collate_segmentation gives
    with torch.no_grad():
        bare(model.preprocess(raw))  # normalised input passes
        with pytest.raises(ValueError, match="preprocess=False") as e:
            bare(raw)
    assert "\n" not in str(e.value) and convention in str(e.value)


def test_the_bare_network_tells_raw_pixels_by_the_convention_its_weights_set() -> None:
    bare = build_model("fcn8s", num_classes=3, preprocess=False, **TINY).eval()
    bare.input_convention = TORCHVISION_RGB  # as loading torchvision weights sets it
    with torch.no_grad(), pytest.raises(ValueError, match="torchvision_rgb"):
        bare(torch.full((1, 3, 40, 40), 140.0))  # passes for caffe_bgr, raw for torchvision


def test_with_preprocess_leaves_the_bare_network_bare() -> None:
    model = build_model("fcn8s", num_classes=3, **TINY).eval()
    bare = build_model("fcn8s", num_classes=3, preprocess=False, **TINY).eval()
    bare.load_state_dict(model.state_dict())
    raw = _raw(1, 3, 40, 40)
    full = with_preprocess(bare, bare.input_convention)
    with torch.no_grad():
        assert torch.equal(full(raw), model(raw))
    assert isinstance(bare.preprocess, BareInput)
    assert full.trunk is bare.trunk  # the same layers and weights


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("arch", ["fcn8s", "nyud_fcn32s_color_d"])
def test_a_model_cast_to_another_float_type_takes_raw_pixels_in_that_type(arch, dtype) -> None:
    # model.double(), model.half(), model.to(torch.bfloat16): the normalised input follows.
    model = build_model(arch, num_classes=3, **TINY).eval()
    color, depth = _raw(1, 3, 40, 36), _raw(1, 1, 40, 36, seed=1).float() * 40
    x = color if arch == "fcn8s" else {"color": color, "depth": depth}
    with torch.no_grad():
        expected = model(x).double()
        out = model.to(dtype)(x)
    assert out.dtype == dtype
    if dtype == torch.float64:
        assert_close_to_scale(out, expected)


def _band_tile(seed: int = 0) -> torch.Tensor:
    """A 1×4×40×36 uint16 tile of raw band values whose left columns have no data (0)."""
    g = torch.Generator().manual_seed(seed)
    tile = torch.randint(500, 3000, (1, 4, 40, 36), generator=g).to(torch.uint16)
    tile[..., :9] = 0
    return tile


def test_a_band_model_takes_its_nodata_pixels_for_the_band_means() -> None:
    from tiny_models import tiny_band_model
    model = tiny_band_model(["b1", "b2", "b3", "b4"], [900.0, 1400.0, 1700.0, 2100.0],
                            [300.0, 400.0, 450.0, 500.0], nodata=0).eval()
    raw = _band_tile()
    filled = raw.float()
    filled[..., :9] = torch.tensor(model.input_convention.mean_pixel()).view(1, -1, 1, 1)
    with torch.no_grad():
        assert torch.equal(model(raw), model(filled))
        assert torch.equal(model.preprocess(raw)[..., :9], torch.zeros(1, 4, 40, 9))


def test_a_band_model_compares_an_integer_tile_with_its_nodata_exactly() -> None:
    from tiny_models import tiny_band_model
    model = tiny_band_model(["b1", "b2"], [900.0, 1400.0], [300.0, 400.0],
                            nodata=2**24).eval()
    raw = torch.full((1, 2, 8, 8), 2**24 + 1, dtype=torch.int32)  # equal to it in float32
    with torch.no_grad():  # as the raster reader finds them: a value, not a pixel without data
        assert torch.equal(model.preprocess(raw), model.preprocess(raw.double()))


def test_a_band_model_takes_nan_pixels_for_the_band_means() -> None:
    from tiny_models import tiny_band_model
    model = tiny_band_model(["b1", "b2"], [900.0, 1400.0], [300.0, 400.0]).eval()
    raw = _band_tile()[:, :2].float()
    raw[:, 1, :, :9] = float("nan")  # one band unknown: the pixel has no data
    with torch.no_grad():
        out = model.preprocess(raw)
    assert torch.equal(out[..., :9], torch.zeros(1, 2, 40, 9))
    assert not out.isnan().any()


def test_a_band_model_without_nodata_keeps_zeros_as_values() -> None:
    from tiny_models import tiny_band_model
    model = tiny_band_model(["b1", "b2"], [900.0, 1400.0], [300.0, 400.0]).eval()
    with torch.no_grad():
        out = model.preprocess(_band_tile()[:, :2])
    assert torch.equal(out[:, :, 0, 0], torch.tensor([[-3.0, -3.5]]))


def test_a_double_band_model_finds_the_nodata_of_a_float32_tile() -> None:
    from tiny_models import tiny_band_model
    model = tiny_band_model(["b1", "b2"], [0.3, 0.5], [0.1, 0.2], nodata=0.1).eval().double()
    raw = torch.full((1, 2, 8, 8), 0.4, dtype=torch.float32)
    raw[..., :3] = 0.1  # as a float32 file holds it: not 0.1 in float64
    with torch.no_grad():
        out = model.preprocess(raw)
    assert torch.equal(out[..., :3], torch.zeros(1, 2, 8, 3, dtype=torch.float64))
