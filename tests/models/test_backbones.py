"""FCN-32s/16s/8s heads on ResNets, their bilinear alignment, VGG16-BN, and checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnseg.checkpoint import build_model_from_checkpoint, save_checkpoint
from fcnseg.models import WeightsError, build_model, load_vgg16_bn_weights, optimize, plain_copy
from fcnseg.models.geometry import CoordMap
from fcnseg.models.head import edge_upsampling
from fcnseg.models.upsample import is_bilinear


# -- bilinear upsampling placed by coordinate maps ---------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 5])
def test_aligned_bilinear_on_stride_maps_is_align_corners_interpolation(n: int) -> None:
    # ResNet-style maps: coarse index i sits on fine index 2i, so for 2n - 1 fine pixels the
    # result is align_corners=True interpolation.
    up = edge_upsampling(3, CoordMap(32, 0), CoordMap(16, 0))
    x = torch.randn(2, 3, n, n + 1)
    got = up(x, (2 * n - 1, 2 * n + 1))
    want = F.interpolate(x, size=(2 * n - 1, 2 * n + 1), mode="bilinear", align_corners=True)
    torch.testing.assert_close(got, want)


def test_aligned_bilinear_on_pixel_centre_maps_is_half_pixel_interpolation() -> None:
    # VGG-style maps (2×2 pools): coarse index i is centred at 2i + 0.5, which is exactly
    # align_corners=False interpolation, edges included.
    up = edge_upsampling(2, CoordMap(2, 0.5), CoordMap(1, 0))
    x = torch.randn(1, 2, 4, 5)
    want = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(up(x, (8, 10)), want)


@pytest.mark.parametrize("ratio", [2, 8, 32])
def test_aligned_bilinear_keeps_constants_up_to_the_borders(ratio: int) -> None:
    up = edge_upsampling(1, CoordMap(ratio, 0), CoordMap(1, 0))
    x = torch.full((1, 1, 3, 2), 2.5)
    y = up(x, (3 * ratio, 2 * ratio))
    assert y.shape[-2:] == (3 * ratio, 2 * ratio)
    torch.testing.assert_close(y, torch.full_like(y, 2.5))


def test_aligned_bilinear_rejects_misaligned_maps() -> None:
    with pytest.raises(ValueError, match="offset"):
        edge_upsampling(1, CoordMap(2, 0.3), CoordMap(1, 0))


# -- FCN heads on ResNets ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["fcn32s_resnet18", "fcn16s_resnet18", "fcn8s_resnet18"])
@pytest.mark.parametrize("size", [(64, 64), (37, 53)])
def test_resnet_fcn_output_matches_input_size(name: str, size: tuple[int, int]) -> None:
    model = build_model(name, num_classes=3, base_channels=8).eval()
    for p in model.parameters():  # non-zero scorers, so the fusion path is exercised
        if p.requires_grad:
            nn.init.normal_(p, std=0.1)
    with torch.no_grad():
        y = model(torch.randn(1, 3, *size))
    assert y.shape == (1, 3, *size)
    assert y.abs().sum() > 0


def test_resnet_fcn_scorers_start_at_zero() -> None:
    model = build_model("fcn8s_resnet18", num_classes=4, base_channels=8).eval()
    assert [k.removesuffix(".weight") for k in model.state_dict()
            if k.startswith("score") and k.endswith("weight")] == ["score32", "score16", "score8"]
    with torch.no_grad():
        assert torch.equal(model(torch.randn(1, 3, 40, 40)), torch.zeros(1, 4, 40, 40))


def test_resnet_fcn8s_fuses_each_level() -> None:
    # Each skip scorer's bias shows up, upsampled, in the output: the level is wired in.
    model = build_model("fcn8s_resnet18", num_classes=2, base_channels=8).eval()
    x = torch.randn(1, 3, 48, 48)
    for name in ("score_fr", "score_pool4", "score_pool3"):  # score32, score16, score8
        with torch.no_grad():
            getattr(model.head, name).bias.fill_(1.0)
            y = model(x)
            getattr(model.head, name).bias.zero_()
        torch.testing.assert_close(y, torch.ones_like(y))


def test_upsampling_layers_are_frozen_bilinear() -> None:
    model = build_model("fcn8s_resnet18", num_classes=5, base_channels=8)
    layers = model.upsampling_layers()
    assert [m.stride[0] for m in layers] == [2, 2, 8]
    assert all(not m.weight.requires_grad and is_bilinear(m) for m in layers)


def test_fast_path_equals_plain_deconvolution() -> None:
    model = build_model("fcn8s_resnet18", num_classes=3, base_channels=8).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:  # the upsampling stays bilinear
                p.add_(torch.randn_like(p) * 0.1)
        x = torch.randn(1, 3, 45, 38)
        plain = model(x)
        fast = optimize(plain_copy(model))
        assert sum("separable" in o for o in fast.optimizations) == 3
        torch.testing.assert_close(fast(x), plain, rtol=1e-5, atol=1e-5 * float(plain.abs().max()))


def test_dilated_backbone_fuses_at_equal_resolution() -> None:
    model = build_model("fcn8s_resnet18", num_classes=3, base_channels=8,
                        replace_stride_with_dilation=[False, True, True]).eval()
    assert model.upsampling_layers() == [model.head.upscore.up]  # the ×8 step only
    with torch.no_grad():
        assert model(torch.randn(1, 3, 50, 43)).shape == (1, 3, 50, 43)


# -- checkpoints --------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "kwargs"), [
    ("fcn8s_resnet18", {"base_channels": 8}),
    ("fcn16s_resnet50", {"base_channels": 8, "replace_stride_with_dilation": [False, False, True]}),
    ("fcn_resnet50", {"base_channels": 8, "aux_loss": True}),
    ("fcn8s_vgg16_bn", {"geometry": "same", "width": 0.0625, "fc_channels": 16}),
])
def test_checkpoint_round_trip(tmp_path: Path, name: str, kwargs: dict) -> None:
    model = build_model(name, num_classes=3, **kwargs).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = save_checkpoint(tmp_path / "m.pt", model, class_names=["a", "b", "c"],
                           palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0]])
    rebuilt = build_model_from_checkpoint(path)
    assert rebuilt.arch == name == model.arch
    assert rebuilt.build_kwargs == model.build_kwargs
    assert rebuilt.input_convention == model.input_convention
    x = torch.randn(1, 3, 40, 36)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


# -- VGG16 with batch normalisation -------------------------------------------------------------
def torchvision_vgg16_bn_features(width: float) -> nn.Sequential:
    """torchvision's vgg16_bn ``features`` (Conv–BN–ReLU per conv, max pools), built here from
    its configuration list so that the indices come out as torchvision's."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
           512, 512, 512, "M"]
    layers: list[nn.Module] = []
    in_ch = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            ch = round(v * width)
            layers += [nn.Conv2d(in_ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU()]
            in_ch = ch
    return nn.Sequential(*layers)


def test_vgg16_bn_loads_torchvision_layout(tmp_path: Path) -> None:
    width, fc = 0.0625, 16
    features = torchvision_vgg16_bn_features(width)
    sd = {f"features.{k}": torch.randn_like(v.float()) if v.dtype.is_floating_point else v
          for k, v in features.state_dict().items()}
    sd = {k: (v.abs() + 0.5 if k.endswith("running_var") else v) for k, v in sd.items()}
    sd.update({"classifier.0.weight": torch.randn(fc, 32 * 7 * 7), "classifier.0.bias":
               torch.randn(fc), "classifier.3.weight": torch.randn(fc, fc),
               "classifier.3.bias": torch.randn(fc), "classifier.6.weight": torch.randn(10, fc),
               "classifier.6.bias": torch.randn(10)})
    path = tmp_path / "vgg16_bn-6c64b313.pth"
    torch.save(sd, path)
    model = build_model("fcn8s_vgg16_bn", num_classes=3, geometry="same", width=width,
                        fc_channels=fc, backbone_weights=path).eval()
    features.load_state_dict({k[len("features."):]: v for k, v in sd.items()
                              if k.startswith("features.")})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        pool4 = model.features(x)[16]
        want = features.eval()[:34](x)  # up to and including torchvision's pool4
    torch.testing.assert_close(pool4, want)
    assert torch.equal(model.trunk.fc6.weight.flatten(1), sd["classifier.0.weight"])
    assert model.input_convention.name == "torchvision_rgb"


def test_vgg16_bn_weights_need_batch_norm_model(tmp_path: Path) -> None:
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "w.pth")
    model = build_model("fcn32s", num_classes=2, geometry="same", width=0.0625, fc_channels=8)
    with pytest.raises(WeightsError, match=r"w\.pth.*batch_norm=True"):
        load_vgg16_bn_weights(model, tmp_path / "w.pth")


def test_plain_vgg16_keeps_its_layout() -> None:
    model = build_model("fcn32s", num_classes=2, geometry="same", width=0.0625, fc_channels=8)
    assert not any(k.startswith("bn") for k in model.state_dict())
    assert model.build_kwargs["batch_norm"] is False
