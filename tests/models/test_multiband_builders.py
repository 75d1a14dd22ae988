"""Multi-band input for the VGG16, AlexNet and GoogLeNet FCNs: conv1 takes one channel per band
and ImageNet colour weights are widened to the bands by the first-convolution rule
(:func:`fcnseg.models.weights.band_conv1`), in each file's own convention."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from fcnseg.conventions import (
    CAFFE_BGR,
    NYUD_BGR,
    TORCHVISION_RGB,
    InputConvention,
    band_convention,
)
from fcnseg.models import WeightsError, build_model, init_from
from fcnseg.models.alexnet import CAFFE_ALEXNET_LAYERS, torchvision_alexnet_key_map
from fcnseg.models.googlenet import GOOGLENET_INPUT
from fcnseg.models.weights import (
    IMAGENET_RGB_MEAN,
    IMAGENET_RGB_STD,
    band_conv1,
    vgg16_torchvision_keys,
)
from tests.floats import assert_close_to_scale

BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")
BAND_CONVENTION = band_convention(BANDS, [900.0, 1000.0, 1100.0, 2000.0, 1500.0, 1200.0],
                                  [200.0, 250.0, 300.0, 600.0, 400.0, 350.0])
SMALL = {"width": 0.125, "fc_channels": 32}


def _alexnet_caffe_keys(model: torch.nn.Module) -> dict[str, str]:
    return {f"{n}.{k}": f"{n}.{k}" for n in CAFFE_ALEXNET_LAYERS for k in ("weight", "bias")}


def _googlenet_keys(model: torch.nn.Module) -> dict[str, str]:
    return {k: k for k in model.state_dict() if not k.startswith(("score", "upscore"))}


#: arch, build options, our key → the file's key, file name, the file's convention, the
#: first convolution's key in the model and in the file, its bias (None: a BatchNorm follows).
CASES: dict[str, tuple[str, dict[str, Any], Callable[[Any], dict[str, str]], str,
                       InputConvention, str, str, str | None]] = {
    "fcn8s-caffe": ("fcn8s", {**SMALL, "geometry": "same"}, lambda m: vgg16_torchvision_keys(),
                    "vgg16_from_caffe.pth", CAFFE_BGR, "conv1_1.weight", "features.0.weight",
                    "features.0.bias"),
    "fcn8s_vgg16_bn": ("fcn8s_vgg16_bn", {**SMALL, "geometry": "same"},
                       lambda m: vgg16_torchvision_keys(batch_norm=True), "vgg16_bn.pth",
                       TORCHVISION_RGB, "conv1_1.weight", "features.0.weight", "features.0.bias"),
    "fcn_alexnet-caffe": ("fcn_alexnet", SMALL, _alexnet_caffe_keys, "bvlc_alexnet.pth",
                          CAFFE_BGR, "conv1.weight", "conv1.weight", "conv1.bias"),
    "fcn_alexnet-torchvision": ("fcn_alexnet", {**SMALL, "variant": "torchvision"},
                                torchvision_alexnet_key_map, "alexnet.pth", TORCHVISION_RGB,
                                "backbone.features.0.weight", "features.0.weight",
                                "features.0.bias"),
    "fcn8s_googlenet": ("fcn8s_googlenet", {"width": 0.125}, _googlenet_keys,
                        "googlenet.pth", GOOGLENET_INPUT, "conv1.conv.weight",
                        "conv1.conv.weight", None),
}


def _colour_file(case: str, tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """ImageNet-style weights of ``case``'s colour model in the file's layout (random values,
    non-zero biases and BatchNorm statistics, so that every copy shows)."""
    arch, options, keys, name, *_ = CASES[case]
    torch.manual_seed(0)
    colour = build_model(arch, num_classes=3, **options)
    sd = {}
    for ours, theirs in keys(colour).items():
        t = colour.state_dict()[ours]
        sd[theirs] = t if not t.is_floating_point() else torch.randn_like(t).abs() + 0.1
    path = tmp_path / name
    torch.save(sd, path)
    return path, sd


@pytest.mark.parametrize("case", sorted(CASES))
def test_pretrained_conv1_takes_every_band_by_the_first_convolution_rule(
        case: str, tmp_path: Path) -> None:
    arch, options, keys, _, convention, first, file_first, file_bias = CASES[case]
    path, sd = _colour_file(case, tmp_path)
    model = build_model(arch, num_classes=3, input_convention=BAND_CONVENTION,
                        backbone_weights=path, **options)
    assert model.input_convention == BAND_CONVENTION  # the bands' statistics, not ImageNet's
    own = model.state_dict()
    weight, offset = band_conv1(sd[file_first], BANDS, convention)
    assert own[first].shape[1] == len(BANDS)
    torch.testing.assert_close(own[first], weight, rtol=0, atol=0)
    if file_bias is not None:
        torch.testing.assert_close(own[first.replace("weight", "bias")], sd[file_bias] + offset,
                                   rtol=0, atol=0)
    else:  # the mean response moves into the BatchNorm after conv1
        torch.testing.assert_close(own["conv1.bn.running_mean"],
                                   sd["conv1.bn.running_mean"] - offset, rtol=0, atol=0)
    rest = {o: t for o, t in keys(model).items()
            if o != first and t != file_bias and o != "conv1.bn.running_mean"}
    for ours, theirs in rest.items():
        assert torch.equal(own[ours].reshape(sd[theirs].shape), sd[theirs]), ours


@pytest.mark.parametrize("convention", [CAFFE_BGR, TORCHVISION_RGB, GOOGLENET_INPUT, NYUD_BGR],
                         ids=lambda c: c.name)
def test_standardised_colour_bands_give_the_colour_layers_response(
        convention: InputConvention) -> None:
    # ImageNet-like pixels standardised by ImageNet's statistics: conv1 from band_conv1 plus
    # its offset equals the colour conv1 on the same pixels in the weights' convention.
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(8, 3, 5, 5, generator=g, dtype=torch.float64)
    rgb = torch.rand(2, 3, 12, 12, generator=g, dtype=torch.float64) * 255
    mean = torch.tensor(IMAGENET_RGB_MEAN, dtype=torch.float64).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_RGB_STD, dtype=torch.float64).view(1, 3, 1, 1) * 255
    bands = ("blue", "red", "green")  # any order: each colour band finds its own filter
    order = [2, 0, 1]
    standardised = ((rgb - mean) / std)[:, order]
    c = convention
    network_input = rgb.flip(1) if c.channel_order == "BGR" else rgb
    network_input = (network_input * c.scale
                     - torch.tensor(c.mean, dtype=torch.float64).view(1, 3, 1, 1)) \
        / torch.tensor(c.std, dtype=torch.float64).view(1, 3, 1, 1)
    wide, offset = band_conv1(weight, bands, convention)
    got = F.conv2d(standardised, wide) + offset.view(1, -1, 1, 1)
    assert_close_to_scale(got, F.conv2d(network_input, weight), rtol=1e-10)


def test_a_multiband_vgg_bn_fcn_on_the_colour_bands_computes_the_colour_model(
        tmp_path: Path) -> None:
    # torchvision's convention and band statistics equal to ImageNet's (0-255 units): the only
    # difference left is the bands' order, which conv1 follows.
    path, _ = _colour_file("fcn8s_vgg16_bn", tmp_path)
    colour = build_model("fcn8s_vgg16_bn", num_classes=3, backbone_weights=path,
                         **SMALL, geometry="same").eval()
    bands = ("green", "blue", "red")
    order = [1, 2, 0]
    mean = [IMAGENET_RGB_MEAN[i] * 255 for i in order]
    std = [IMAGENET_RGB_STD[i] * 255 for i in order]
    multi = build_model("fcn8s_vgg16_bn", num_classes=3, backbone_weights=path,
                        input_convention=band_convention(bands, mean, std),
                        **SMALL, geometry="same").eval()
    with torch.no_grad():  # non-zero scorers, so that the whole net shows
        for m in (colour, multi):
            torch.manual_seed(1)
            for name, p in m.named_parameters():
                if name.startswith("score"):
                    p.copy_(torch.randn_like(p) * 0.1)
    x = torch.rand(1, 3, 40, 48) * 255
    with torch.no_grad():
        assert_close_to_scale(multi(x[:, order]), colour(x))


@pytest.mark.parametrize("arch,options", [
    ("fcn32s", {**SMALL, "geometry": "caffe"}), ("fcn16s", SMALL), ("fcn8s_atonce", SMALL),
    ("fcn_alexnet", SMALL), ("fcn32s_googlenet", {"width": 0.125}),
])
def test_random_multiband_models_take_one_channel_per_band(arch: str,
                                                           options: dict[str, Any]) -> None:
    model = build_model(arch, num_classes=3, input_convention=BAND_CONVENTION, **options).eval()
    x = torch.rand(1, len(BANDS), 36, 44) * 3000
    with torch.no_grad():
        out = model(x)
        normalised = model.preprocess(x)
    assert out.shape == (1, 3, 36, 44)
    # The preprocessing standardises each band by the dataset's statistics.
    mean = torch.tensor(BAND_CONVENTION.mean).view(1, -1, 1, 1)
    std = torch.tensor(BAND_CONVENTION.std).view(1, -1, 1, 1)
    assert_close_to_scale(normalised, (x - mean) / std)
    with pytest.raises(ValueError, match=f"N×{len(BANDS)}×H×W"):
        model(torch.rand(1, 3, 36, 44))


@pytest.mark.parametrize("arch", ["fcn_resnet50", "fcn_resnet101", "siftflow_fcn8s",
                                  "nyud_fcn32s_color", "nyud_fcn32s_hha", "nyud_fcn32s_color_d",
                                  "nyud_fcn16s_color_hha"])
def test_a_colour_only_model_refuses_a_multiband_convention_when_built(arch: str) -> None:
    with pytest.raises(ValueError, match=f"^{arch} takes 3-band colour images; for multi-band"):
        build_model(arch, num_classes=3, input_convention=BAND_CONVENTION)


def test_init_from_a_colour_googlenet_widens_conv1_and_moves_its_mean_into_the_batchnorm(
) -> None:
    torch.manual_seed(0)
    colour = build_model("fcn8s_googlenet", num_classes=3, width=0.125)
    with torch.no_grad():
        colour.trunk.conv1.bn.running_mean.normal_()
    multi = build_model("fcn8s_googlenet", num_classes=3, width=0.125,
                        input_convention=BAND_CONVENTION)
    report = init_from(multi, colour)
    sd = colour.state_dict()
    weight, offset = band_conv1(sd["conv1.conv.weight"], BANDS, TORCHVISION_RGB)
    own = multi.state_dict()
    torch.testing.assert_close(own["conv1.conv.weight"], weight, rtol=0, atol=0)
    torch.testing.assert_close(own["conv1.bn.running_mean"],
                               sd["conv1.bn.running_mean"] - offset, rtol=0, atol=0)
    assert report.widened == ["conv1.conv.weight", "conv1.bn.running_mean"]
    assert torch.equal(own["inception5b.branch1.conv.weight"],
                       sd["inception5b.branch1.conv.weight"])
    assert multi.input_convention == BAND_CONVENTION


def test_init_from_a_model_of_other_bands_is_refused_in_one_line() -> None:
    other = band_convention(("red", "green", "blue", "nir"), [1.0] * 4, [1.0] * 4)
    source = build_model("fcn8s", num_classes=3, input_convention=other, **SMALL)
    multi = build_model("fcn8s", num_classes=3, input_convention=BAND_CONVENTION, **SMALL)
    with pytest.raises(WeightsError, match=r"^init: .* takes bands red, green, blue, nir, "
                                           r"the model blue, green, red, nir, swir1, swir2"):
        init_from(multi, source)
    with pytest.raises(WeightsError, match=r"the model colour images"):
        init_from(build_model("fcn8s", num_classes=3, **SMALL), source)
