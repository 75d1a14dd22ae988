"""ResNet backbones: torchvision's key layout, feature strides and channels, dilation, weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fcnseg.conventions import TORCHVISION_RGB
from fcnseg.models import WeightsError, build_model, load_resnet_weights
from fcnseg.models.resnet import ResNet, ResNetBackbone

# Written out from the ResNet paper / torchvision's documented architecture, independently of
# fcnseg.models.resnet: blocks per stage, and whether the net uses bottlenecks (expansion 4).
ARCHS = {18: ((2, 2, 2, 2), False), 34: ((3, 4, 6, 3), False),
         50: ((3, 4, 6, 3), True), 101: ((3, 4, 23, 3), True)}


def torchvision_resnet_shapes(depth: int, base: int = 64, fc: bool = True) -> dict[str, tuple]:
    """Every state-dict key of torchvision's resnet{depth} with its shape."""
    counts, bottleneck = ARCHS[depth]
    shapes: dict[str, tuple] = {}

    def bn(name: str, c: int) -> None:
        for k in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.{k}"] = (c,)
        shapes[f"{name}.num_batches_tracked"] = ()

    shapes["conv1.weight"] = (base, 3, 7, 7)
    bn("bn1", base)
    in_ch = base
    for stage, n in enumerate(counts):
        planes = base * 2**stage
        out_ch = planes * (4 if bottleneck else 1)
        for b in range(n):
            p = f"layer{stage + 1}.{b}"
            if bottleneck:
                convs = [(in_ch, planes, 1), (planes, planes, 3), (planes, out_ch, 1)]
            else:
                convs = [(in_ch, planes, 3), (planes, planes, 3)]
            for i, (ci, co, k) in enumerate(convs, start=1):
                shapes[f"{p}.conv{i}.weight"] = (co, ci, k, k)
                bn(f"{p}.bn{i}", co)
            if b == 0 and (stage > 0 or in_ch != out_ch):
                shapes[f"{p}.downsample.0.weight"] = (out_ch, in_ch, 1, 1)
                bn(f"{p}.downsample.1", out_ch)
            in_ch = out_ch
    if fc:
        shapes["fc.weight"] = (1000, in_ch)
        shapes["fc.bias"] = (1000,)
    return shapes


def random_state_dict(shapes: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, s in shapes.items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(s, generator=g) + 0.5
        else:
            sd[k] = torch.randn(s, generator=g) * 0.1
    return sd


@pytest.mark.parametrize("depth", [18, 50])
def test_state_dict_matches_torchvision_layout(depth: int) -> None:
    own = {k: tuple(v.shape) for k, v in ResNet(depth).state_dict().items()}
    assert own == torchvision_resnet_shapes(depth)


@pytest.mark.parametrize("depth", [34, 101])
def test_state_dict_matches_torchvision_layout_slim(depth: int) -> None:
    # Same key set and shape pattern at 1/8 width: cheap to build, same structure.
    own = {k: tuple(v.shape) for k, v in ResNet(depth, base_channels=8).state_dict().items()}
    assert own == torchvision_resnet_shapes(depth, base=8)


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_backbone_features_at_strides_8_16_32(depth: int) -> None:
    backbone = ResNetBackbone(depth, base_channels=8).eval()
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 64, 64))
    assert sorted(feats) == [8, 16, 32]
    for stride, t in feats.items():
        assert t.shape[-2:] == (64 // stride, 64 // stride)
        assert t.shape[1] == backbone.out_channels[stride]
    expansion = 4 if depth >= 50 else 1
    assert backbone.out_channels == {8: 16 * expansion, 16: 32 * expansion, 32: 64 * expansion}


def test_full_width_resnet18_channels() -> None:
    backbone = ResNetBackbone(18).eval()
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 64, 64))
    assert {s: (t.shape[1], t.shape[2]) for s, t in feats.items()} == {
        8: (128, 8), 16: (256, 4), 32: (512, 2)}


@pytest.mark.parametrize(("dilate", "sizes", "scales"), [
    ([False, False, True], (8, 4, 4), (8, 16, 16)),  # output stride 16
    ([False, True, True], (8, 8, 8), (8, 8, 8)),  # output stride 8
])
def test_dilation_sets_output_stride(dilate: list[bool], sizes: tuple, scales: tuple) -> None:
    backbone = ResNetBackbone(50, base_channels=8, replace_stride_with_dilation=dilate).eval()
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 64, 64))
    assert tuple(feats[s].shape[-1] for s in (8, 16, 32)) == sizes
    maps = backbone.coord_maps()
    assert tuple(maps[s].scale for s in (8, 16, 32)) == scales
    assert all(m.shift == 0 for m in maps.values())


def test_dilated_blocks_follow_torchvision_rule() -> None:
    # torchvision: the first block of a dilated stage keeps the previous dilation.
    net = ResNet(50, base_channels=8, replace_stride_with_dilation=[False, True, True])
    assert [b.conv2.dilation[0] for b in net.layer3] == [1, 2, 2, 2, 2, 2]
    assert [b.conv2.dilation[0] for b in net.layer4] == [2, 4, 4]
    assert net.layer3[0].downsample[0].stride == (1, 1)


def _save(sd: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save(sd, path)
    return path


def test_load_torchvision_file_equals_load_state_dict(tmp_path: Path) -> None:
    sd = random_state_dict(torchvision_resnet_shapes(18))
    path = _save(sd, tmp_path / "resnet18-f37072fd.pth")
    model = build_model("fcn8s_resnet18", num_classes=3)
    load_resnet_weights(model, path)
    reference = ResNetBackbone(18)
    reference.load_state_dict({k: v for k, v in sd.items() if not k.startswith("fc.")})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        got = model.eval().trunk(x)
        want = reference.eval()(x)
    for s in (8, 16, 32):
        assert torch.equal(got[s], want[s])
    assert model.input_convention == TORCHVISION_RGB


def test_classifier_loads_with_fc(tmp_path: Path) -> None:
    sd = random_state_dict(torchvision_resnet_shapes(18, base=8))
    net = load_resnet_weights(ResNet(18, base_channels=8), _save(sd, tmp_path / "r18.pth"))
    assert torch.equal(net.fc.weight, sd["fc.weight"])
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 1000)


def test_builder_loads_backbone_weights(tmp_path: Path) -> None:
    sd = random_state_dict(torchvision_resnet_shapes(34, base=8))
    path = _save(sd, tmp_path / "r34.pth")
    model = build_model("fcn16s_resnet34", num_classes=4, base_channels=8, backbone_weights=path)
    assert torch.equal(model.trunk.layer3[5].conv2.weight, sd["layer3.5.conv2.weight"])


def test_missing_key_error_names_file_and_key(tmp_path: Path) -> None:
    sd = random_state_dict(torchvision_resnet_shapes(18, base=8))
    del sd["layer2.0.downsample.0.weight"]
    path = _save(sd, tmp_path / "broken.pth")
    with pytest.raises(WeightsError, match=r"broken\.pth.*layer2\.0\.downsample\.0\.weight"):
        load_resnet_weights(ResNetBackbone(18, base_channels=8), path)


def test_wrong_depth_error_names_shapes(tmp_path: Path) -> None:
    path = _save(random_state_dict(torchvision_resnet_shapes(34, base=8)), tmp_path / "r34.pth")
    with pytest.raises(WeightsError, match=r"r34\.pth.*unexpected keys.*layer1\.2"):
        load_resnet_weights(ResNetBackbone(18, base_channels=8), path)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="depth"):
        ResNet(42)
    with pytest.raises(ValueError, match="three booleans"):
        ResNet(18, replace_stride_with_dilation=[True])


# -- torchvision's FCN variant (fcn_resnet50 / fcn_resnet101) ------------------------------------
def torchvision_fcn_shapes(depth: int, num_classes: int = 21, base: int = 64,
                           aux: bool = True) -> dict[str, tuple]:
    """State-dict keys and shapes of torchvision's fcn_resnet{depth}: the ResNet minus fc under
    ``backbone.``, FCNHead(2048 → 512 → classes) and FCNHead(1024 → 256 → classes)."""
    shapes = {f"backbone.{k}": s for k, s in
              torchvision_resnet_shapes(depth, base=base, fc=False).items()}
    heads = {"classifier": base * 32}
    if aux:
        heads["aux_classifier"] = base * 16
    for name, in_ch in heads.items():
        inter = in_ch // 4
        shapes[f"{name}.0.weight"] = (inter, in_ch, 3, 3)
        for k in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.1.{k}"] = (inter,)
        shapes[f"{name}.1.num_batches_tracked"] = ()
        shapes[f"{name}.4.weight"] = (num_classes, inter, 1, 1)
        shapes[f"{name}.4.bias"] = (num_classes,)
    return shapes


@pytest.mark.parametrize(("name", "depth"), [("fcn_resnet50", 50), ("fcn_resnet101", 101)])
def test_fcn_resnet_key_layout(name: str, depth: int) -> None:
    model = build_model(name, num_classes=21, aux_loss=True)
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert own == torchvision_fcn_shapes(depth)


def test_fcn_resnet_without_aux_has_no_aux_keys() -> None:
    model = build_model("fcn_resnet50", num_classes=5, base_channels=8)
    assert set(model.state_dict()) == set(torchvision_fcn_shapes(50, 5, base=8, aux=False))


def reference_fcn_resnet(sd: dict[str, torch.Tensor], x: torch.Tensor, counts: tuple,
                         ) -> dict[str, torch.Tensor]:
    """torchvision's fcn_resnet forward (eval mode), re-implemented with functional ops on a
    state dict in its key layout. Dilation rule: layer3 and layer4 trade stride 2 for dilation;
    each stage's first block keeps the dilation before the stage."""
    def bn(t: torch.Tensor, p: str) -> torch.Tensor:
        return F.batch_norm(t, sd[f"{p}.running_mean"], sd[f"{p}.running_var"],
                            sd[f"{p}.weight"], sd[f"{p}.bias"], False, 0.0, 1e-5)

    def head(t: torch.Tensor, p: str) -> torch.Tensor:
        t = F.relu(bn(F.conv2d(t, sd[f"{p}.0.weight"], padding=1), f"{p}.1"))
        t = F.conv2d(t, sd[f"{p}.4.weight"], sd[f"{p}.4.bias"])
        return F.interpolate(t, size=x.shape[-2:], mode="bilinear", align_corners=False)

    t = F.relu(bn(F.conv2d(x, sd["backbone.conv1.weight"], stride=2, padding=3), "backbone.bn1"))
    t = F.max_pool2d(t, 3, 2, 1)
    dilation, feats = 1, []
    for stage, (n, dilate) in enumerate(zip(counts, (False, False, True, True), strict=True)):
        stride, previous = (1 if stage == 0 else 2), dilation
        if dilate:
            dilation, stride = dilation * stride, 1
        for b in range(n):
            p = f"backbone.layer{stage + 1}.{b}"
            d, s = (previous, stride) if b == 0 else (dilation, 1)
            out = F.relu(bn(F.conv2d(t, sd[f"{p}.conv1.weight"]), f"{p}.bn1"))
            out = F.relu(bn(F.conv2d(out, sd[f"{p}.conv2.weight"], stride=s, padding=d,
                                     dilation=d), f"{p}.bn2"))
            out = bn(F.conv2d(out, sd[f"{p}.conv3.weight"]), f"{p}.bn3")
            if f"{p}.downsample.0.weight" in sd:
                t = bn(F.conv2d(t, sd[f"{p}.downsample.0.weight"], stride=s), f"{p}.downsample.1")
            t = F.relu(out + t)
        feats.append(t)
    return {"out": head(feats[3], "classifier"), "aux": head(feats[2], "aux_classifier")}


def test_fcn_resnet50_matches_reference_forward(tmp_path: Path) -> None:
    sd = random_state_dict(torchvision_fcn_shapes(50, num_classes=4, base=8), seed=1)
    path = _save(sd, tmp_path / "fcn_resnet50_coco.pth")
    model = build_model("fcn_resnet50", num_classes=4, base_channels=8, aux_loss=True,
                        output="dict", weights=path).eval()
    x = torch.randn(2, 3, 45, 61)
    with torch.no_grad():
        got = model(x)
        want = reference_fcn_resnet(sd, x, ARCHS[50][0])
    assert set(got) == {"out", "aux"}
    for k in ("out", "aux"):
        assert got[k].shape == (2, 4, 45, 61)
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-5)
    # Default output convention: the logits tensor itself.
    model.output = "tensor"
    with torch.no_grad():
        assert torch.equal(model(x), got["out"])


def test_fcn_weights_with_aux_load_into_model_without_aux(tmp_path: Path) -> None:
    sd = random_state_dict(torchvision_fcn_shapes(50, num_classes=4, base=8))
    model = build_model("fcn_resnet50", num_classes=4, base_channels=8,
                        weights=_save(sd, tmp_path / "fcn.pth"))
    assert model.aux_classifier is None
    assert torch.equal(model.classifier[4].weight, sd["classifier.4.weight"])
    assert model.input_convention == TORCHVISION_RGB


def test_fcn_weights_with_wrong_classes_fail_clearly(tmp_path: Path) -> None:
    sd = random_state_dict(torchvision_fcn_shapes(50, num_classes=4, base=8))
    with pytest.raises(WeightsError, match=r"fcn\.pth.*classifier\.4\.weight"):
        build_model("fcn_resnet50", num_classes=21, base_channels=8,
                    weights=_save(sd, tmp_path / "fcn.pth"))


def test_training_an_aux_model_on_the_tensor_warns_once_that_the_head_is_left_out() -> None:
    import warnings

    model = build_model("fcn_resnet50", num_classes=3, aux_loss=True, base_channels=8).train()
    x = torch.rand(1, 3, 33, 33) * 255
    with pytest.warns(UserWarning, match=r"aux_loss=True.*model.output = 'dict'"):
        assert isinstance(model(x), torch.Tensor)  # the public edge stays a tensor
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(x)  # once only
        model.eval()(x)  # never in eval mode
        model.train().output = "dict"
        assert set(model(x)) == {"out", "aux"}
