"""The FCN models: shapes, layer names, initialisation, and the two geometries."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnseg.models import build_model, fcn8s, fcn8s_atonce, fcn16s, fcn32s

TINY = {"width": 0.0625, "fc_channels": 8}
ARCHS = ["fcn32s", "fcn16s", "fcn8s", "fcn8s_atonce"]


def _randomize_scorers(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("score"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


@pytest.mark.parametrize("geometry", ["caffe", "same"])
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (3, 5), (31, 17), (33, 65)])
def test_output_size_equals_input_size(arch: str, geometry: str, size: tuple[int, int]) -> None:
    model = build_model(arch, num_classes=5, geometry=geometry, **TINY).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 5, *size)


def test_state_dict_keys_and_shapes_follow_the_pytorch_port() -> None:
    with torch.device("meta"):
        model = fcn8s()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    convs = [f"conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, n + 1)]
    expected = {f"{c}.{p}" for c in convs for p in ("weight", "bias")}
    expected |= {f"{c}.{p}" for c in ("fc6", "fc7", "score_fr", "score_pool4", "score_pool3")
                 for p in ("weight", "bias")}
    expected |= {"upscore2.weight", "upscore_pool4.weight", "upscore8.weight"}
    assert set(shapes) == expected
    assert shapes["fc6.weight"] == (4096, 512, 7, 7)
    assert shapes["fc7.weight"] == (4096, 4096, 1, 1)
    assert shapes["upscore8.weight"] == (21, 21, 16, 16)
    assert shapes["upscore2.weight"] == (21, 21, 4, 4)


def test_upsampling_layer_names_per_variant() -> None:
    with torch.device("meta"):
        names = {a: {k for k in build_model(a).state_dict() if k.startswith("upscore")}
                 for a in ("fcn32s", "fcn16s")}
    assert names["fcn32s"] == {"upscore.weight"}
    assert names["fcn16s"] == {"upscore2.weight", "upscore16.weight"}


def test_caffe_geometry_layers_follow_the_reference() -> None:
    model = fcn8s(**TINY)
    assert model.trunk.conv1_1.padding == (100, 100)
    assert model.trunk.conv1_2.padding == (1, 1)
    assert all(getattr(model.trunk, f"pool{b}").ceil_mode for b in range(1, 6))
    assert model.trunk.fc6.kernel_size == (7, 7) and model.trunk.fc6.padding == (0, 0)
    assert model.trunk.fc7.kernel_size == (1, 1)
    # element-wise dropout as in Caffe, not channel dropout
    assert type(model.trunk.drop6) is nn.Dropout and model.trunk.drop6.p == 0.5
    assert type(model.trunk.drop7) is nn.Dropout
    assert [(m.kernel_size, m.stride) for m in model.upsampling_layers()] == [
        ((4, 4), (2, 2)), ((4, 4), (2, 2)), ((16, 16), (8, 8))]
    assert all(m.bias is None for m in model.upsampling_layers())


def test_score_layers_start_at_zero_and_upsampling_is_frozen() -> None:
    model = fcn8s(**TINY)
    for name in ("score_fr", "score_pool4", "score_pool3"):
        layer = getattr(model.head, name)
        assert not layer.weight.any() and not layer.bias.any(), name
    assert all(not m.weight.requires_grad for m in model.upsampling_layers())
    trainable = {model.key_map.to_reference(n) for n, p in model.named_parameters()
                 if p.requires_grad}
    assert "score_fr.weight" in trainable
    assert not any(n.startswith("upscore") for n in trainable)
    assert "score_pool3.weight" in trainable


def test_one_state_dict_loads_into_both_geometries() -> None:
    caffe = fcn8s(num_classes=3, geometry="caffe", **TINY)
    _randomize_scorers(caffe)
    same = fcn8s(num_classes=3, geometry="same", **TINY)
    same.load_state_dict(caffe.state_dict(), strict=True)
    for k, v in caffe.state_dict().items():
        assert torch.equal(v, same.state_dict()[k]), k
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        assert same.eval()(x).shape == caffe.eval()(x).shape


def test_atonce_scales_skips_before_scoring() -> None:
    model = fcn8s_atonce(num_classes=3, **TINY).eval()
    seen: dict[str, torch.Tensor] = {}
    model.head.score_pool4.register_forward_hook(lambda m, i, o: seen.__setitem__("pool4", o))
    model.head.score_pool3.register_forward_hook(lambda m, i, o: seen.__setitem__("pool3", o))
    for layer in (model.head.score_pool4, model.head.score_pool3):
        nn.init.normal_(layer.weight)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        model(x)
        features = model.features(model.preprocess(x))
        pool4 = F.conv2d(features[16] * 0.01, model.head.score_pool4.weight,
                         model.head.score_pool4.bias)
        pool3 = F.conv2d(features[8] * 0.0001, model.head.score_pool3.weight,
                         model.head.score_pool3.bias)
    torch.testing.assert_close(seen["pool4"], pool4)
    torch.testing.assert_close(seen["pool3"], pool3)
    assert model.arch == "fcn8s_atonce"


def test_skip_scores_change_the_prediction_in_fcn8s() -> None:
    model = fcn8s(num_classes=3, **TINY).eval()
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        before = model(x)
        model.head.score_pool3.bias.fill_(1.0)
        after = model(x)
    # a constant pool3 score of 1 reaches the output through the ×8 bilinear upsampling
    interior = (after - before)[..., 8:-8, 8:-8]
    assert torch.allclose(interior, torch.ones_like(interior), atol=1e-5)


@pytest.mark.parametrize("geometry", ["caffe", "same"])
def test_constant_scores_upsample_to_the_constant_inside(geometry: str) -> None:
    model = fcn32s(num_classes=2, geometry=geometry, **TINY).eval()
    with torch.no_grad():
        model.head.score_fr.bias.copy_(torch.tensor([2.0, -1.0]))
        out = model(torch.randn(1, 3, 96, 96))
    inside = out[0, :, 32:-32, 32:-32]
    assert torch.allclose(inside[0], torch.full_like(inside[0], 2.0), atol=1e-5)
    assert torch.allclose(inside[1], torch.full_like(inside[1], -1.0), atol=1e-5)


def test_builders_record_how_to_rebuild_the_model() -> None:
    model = fcn16s(num_classes=4, geometry="same", **TINY)
    rebuilt = build_model(model.arch, **model.build_kwargs)
    assert type(rebuilt) is type(model)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    assert rebuilt.geometry == "same" and rebuilt.num_classes == 4


def test_build_model_rejects_unknown_names_and_geometries() -> None:
    with pytest.raises(ValueError, match="unknown model 'fcn4s'"):
        build_model("fcn4s")
    with pytest.raises(ValueError, match="geometry"):
        fcn8s(geometry="valid")
    with pytest.raises(ValueError, match="num_classes"):
        fcn8s(num_classes=0)


def test_input_must_be_a_batch_of_rgb_images() -> None:
    model = fcn8s(**TINY)
    with pytest.raises(ValueError, match="N×3×H×W"):
        model(torch.randn(3, 32, 32))
