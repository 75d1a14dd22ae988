"""The one skip head: shared by every trunk, named by HeadNames, ready for several heads."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from fcnseg.checkpoint import describe_model
from fcnseg.models import (
    FCN,
    VGG_NAMES,
    ModelIdentity,
    SkipHead,
    VGG16Trunk,
    build_model,
    fcn8s_atonce,
    reference_upsampling,
)

TRUNK = {"width": 1 / 64, "fc_channels": 4}


def _head(trunk: VGG16Trunk, num_classes: int, suffix: str) -> SkipHead:
    return SkipHead(trunk.out_channels, trunk.coord_maps(), num_classes, variant="8s",
                    upsampling=partial(reference_upsampling, pad_to_target=False),
                    names=VGG_NAMES.suffixed(suffix))


def test_two_heads_share_one_trunk_under_suffixed_names() -> None:
    trunk = VGG16Trunk(**TRUNK)
    heads = {"sem": _head(trunk, 3, "_sem"), "geo": _head(trunk, 2, "_geo")}
    model = FCN(trunk, heads, ModelIdentity("two_heads"), trunk_name=None).eval()
    keys = set(model.state_dict())
    assert {"conv1_1.weight", "score_fr_sem.weight", "score_pool3_geo.bias",
            "upscore2_sem.weight", "upscore8_geo.weight"} <= keys
    assert not any(k.startswith(("score_fr.", "upscore2.")) for k in keys)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 37, 30))
    assert out["sem"].shape == (1, 3, 37, 30) and out["geo"].shape == (1, 2, 37, 30)


def test_every_trunk_gets_the_same_head() -> None:
    vgg = build_model("fcn8s", num_classes=2, **TRUNK)
    resnet = build_model("fcn8s_resnet18", num_classes=2, base_channels=2)
    assert type(vgg.head) is type(resnet.head) is SkipHead
    assert [n for n, _ in resnet.named_children()] == ["preprocess", "trunk", "heads"]
    assert [k for k in resnet.state_dict() if not k.startswith("backbone.")] == [
        "score32.weight", "score32.bias", "score16.weight", "score16.bias", "score8.weight",
        "score8.bias", "up32to16.up.weight", "up16to8.up.weight", "upscore.up.weight"]


def test_built_models_run_plain_layers() -> None:
    model = build_model("fcn8s", num_classes=2, **TRUNK)
    assert type(model.trunk.fc6) is nn.Conv2d
    assert not getattr(model, "optimizations", [])


def test_identity_is_recorded_once_by_the_builder() -> None:
    model = fcn8s_atonce(num_classes=3, geometry="same", **TRUNK)
    assert model.identity == ModelIdentity("fcn8s_atonce", {
        "num_classes": 3, "geometry": "same", "width": 1 / 64, "fc_channels": 4,
        "dropout": 0.5, "batch_norm": False}, "caffe_bgr")
    assert model.head.score_pool4.input_scale == 0.01
    assert model.head.score_pool3.input_scale == 0.0001
    assert describe_model(model) == {**model.identity.describe(),
                                     "preprocess": model.preprocess.describe()}
    rebuilt = build_model(model.arch, **model.build_kwargs)
    assert rebuilt.identity == model.identity


def test_loading_weights_of_another_convention_updates_the_identity() -> None:
    model = build_model("fcn8s", num_classes=2, **TRUNK)
    model.input_convention = "torchvision_rgb"
    assert model.identity.describe()["input_convention"]["name"] == "torchvision_rgb"
