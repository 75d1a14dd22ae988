"""SIFT Flow's two heads and NYUDv2's modalities: outputs, layer names, fusion, initialisation,
checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from floats import assert_close_to_scale
from torch import nn

from fcnseg.checkpoint import (
    CheckpointError,
    build_model_from_checkpoint,
    head_class_names,
    load_checkpoint,
    save_checkpoint,
)
from fcnseg.conventions import NYUD_BGR, NYUD_HHA, SIFTFLOW_BGR
from fcnseg.data.palette import voc_palette
from fcnseg.models import (
    WeightsError,
    build_model,
    early_fusion_conv1,
    fcn8s,
    init_from,
    init_late_fusion,
    optimize,
)
from fcnseg.models.head import Scorer
from fcnseg.models.upsample import is_bilinear
from fcnseg.pretrained.reference import NYUD_CLASSES, SIFT_FLOW_CLASSES, VGG16_TRUNK

SMALL = {"width": 0.0625, "fc_channels": 16}
SIZES = [(32, 32), (37, 45), (64, 50)]
SIFTFLOW = ["siftflow_fcn32s", "siftflow_fcn16s", "siftflow_fcn8s"]
NYUD = ["nyud_fcn32s_color", "nyud_fcn32s_hha", "nyud_fcn32s_color_d", "nyud_fcn32s_color_hha",
        "nyud_fcn16s_color_hha"]
GEOMETRIC = ["sky", "horizontal", "vertical"]


def _randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random scorers (the reference's zeros would make every output zero) and random trunk
    biases; the bilinear upsampling is kept."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, Scorer):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.05)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)
    return model.eval()


def _inputs(n: int, h: int, w: int, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"color": torch.randn(n, 3, h, w, generator=g) * 50,
            "hha": torch.randn(n, 3, h, w, generator=g) * 50,
            "depth": torch.randn(n, 1, h, w, generator=g)}


# -- SIFT Flow: one trunk, two heads -----------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("arch", SIFTFLOW)
def test_siftflow_returns_a_semantic_and_a_geometric_map_at_the_input_size(arch, size) -> None:
    model = build_model(arch, **SMALL).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert list(out) == ["semantic", "geometric"]
    assert out["semantic"].shape == (2, 33, *size)
    assert out["geometric"].shape == (2, 3, *size)


@pytest.mark.parametrize(("arch", "head"), [("siftflow_fcn32s", ("score_fr", "upscore")),
                                            ("siftflow_fcn16s", ("score_fr", "score_pool4",
                                                                 "upscore2", "upscore16")),
                                            ("siftflow_fcn8s", ("score_fr", "score_pool4",
                                                                "score_pool3", "upscore2",
                                                                "upscore_pool4", "upscore8"))])
def test_siftflow_layers_carry_the_reference_names(arch, head) -> None:
    keys = {k.rpartition(".")[0] for k in build_model(arch, **SMALL).state_dict()}
    expected = {*VGG16_TRUNK, *(f"{layer}_{s}" for s in ("sem", "geo") for layer in head)}
    assert keys == expected


def test_each_siftflow_head_computes_the_single_head_fcn_on_the_shared_trunk() -> None:
    model = _randomized(build_model("siftflow_fcn8s", **SMALL))
    x = torch.randn(1, 3, 45, 37)
    with torch.no_grad():
        out = model(x)
    sd = model.state_dict()
    for head, suffix, classes in (("semantic", "_sem", 33), ("geometric", "_geo", 3)):
        single = fcn8s(num_classes=classes, **SMALL).eval()
        single.input_convention = model.input_convention  # the SIFT Flow mean
        own = {}
        for key, value in sd.items():
            layer, _, param = key.partition(".")
            if layer.endswith(suffix):  # this head's layers, unsuffixed
                own[f"{layer.removesuffix(suffix)}.{param}"] = value
            elif not layer.endswith(("_sem", "_geo")):  # the shared trunk
                own[key] = value
        single.load_state_dict(own)
        with torch.no_grad():
            assert_close_to_scale(out[head], single(x))


def test_siftflow_checkpoint_keeps_the_class_names_of_both_heads(tmp_path: Path) -> None:
    model = _randomized(build_model("siftflow_fcn16s", **SMALL))
    path = save_checkpoint(tmp_path / "sift.pt", model, class_names=list(SIFT_FLOW_CLASSES),
                           palette=voc_palette(),
                           head_classes={"semantic": SIFT_FLOW_CLASSES, "geometric": GEOMETRIC})
    ckpt = load_checkpoint(path)
    assert head_class_names(ckpt) == {"semantic": list(SIFT_FLOW_CLASSES),
                                      "geometric": GEOMETRIC}
    assert ckpt["classes"]["names"] == list(SIFT_FLOW_CLASSES)  # readers of one head still work
    assert ckpt["model"]["input_convention"]["name"] == SIFTFLOW_BGR.name


def test_head_class_names_of_the_wrong_count_are_refused(tmp_path: Path) -> None:
    model = build_model("siftflow_fcn32s", **SMALL)
    with pytest.raises(CheckpointError, match="2 class names given for head 'geometric'"):
        save_checkpoint(tmp_path / "bad.pt", model, class_names=list(SIFT_FLOW_CLASSES),
                        palette=voc_palette(),
                        head_classes={"semantic": SIFT_FLOW_CLASSES, "geometric": ["a", "b"]})
    assert not (tmp_path / "bad.pt").exists()


def test_a_single_head_checkpoint_reads_as_one_head(tmp_path: Path) -> None:
    model = build_model("nyud_fcn32s_color", **SMALL)
    path = save_checkpoint(tmp_path / "c.pt", model, class_names=list(NYUD_CLASSES),
                           palette=voc_palette())
    ckpt = load_checkpoint(path)
    assert "heads" not in ckpt["classes"]
    assert head_class_names(ckpt) == {"out": list(NYUD_CLASSES)}


# -- NYUDv2: inputs named by modality ----------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("arch", NYUD)
def test_nyud_models_take_a_dict_of_modalities(arch, size) -> None:
    model = build_model(arch, **SMALL).eval()
    with torch.no_grad():
        out = model(_inputs(2, *size))
    assert out.shape == (2, 40, *size)


@pytest.mark.parametrize(("arch", "modality"), [("nyud_fcn32s_color", "color"),
                                                ("nyud_fcn32s_hha", "hha")])
def test_single_stream_nets_take_their_modality_or_a_tensor(arch, modality) -> None:
    model = _randomized(build_model(arch, **SMALL))
    x = _inputs(1, 40, 36)
    with torch.no_grad():
        assert torch.equal(model(x), model(x[modality]))


def test_a_missing_modality_is_named() -> None:
    model = build_model("nyud_fcn32s_color_hha", **SMALL)
    with pytest.raises(ValueError, match=r"lacks \['hha'\]"):
        model({"color": torch.zeros(1, 3, 32, 32)})


def test_a_fusion_model_missing_an_input_names_every_input_it_takes() -> None:
    model = build_model("nyud_fcn32s_color_hha", **SMALL)
    with pytest.raises(ValueError) as e:
        model({"color": torch.zeros(1, 3, 32, 32)})
    assert str(e.value) == ("the model takes inputs ['color', 'hha']; the input dict lacks "
                            "['hha'] (it has ['color'])")


def test_a_fusion_model_given_an_input_of_no_modality_names_every_input_it_takes() -> None:
    model = build_model("nyud_fcn32s_color_hha", **SMALL)
    x = torch.zeros(1, 3, 32, 32)
    with pytest.raises(ValueError) as e:
        model({"color": x, "hha": x, "dpth": x})
    assert str(e.value) == ("the model takes inputs ['color', 'hha']; the input dict holds "
                            "['dpth'], no modality (it has ['color', 'dpth', 'hha'])")


def test_early_fusion_stacks_colour_then_depth_into_conv1_1_bgrd() -> None:
    model = _randomized(build_model("nyud_fcn32s_color_d", **SMALL))
    assert model.state_dict()["conv1_1_bgrd.weight"].shape[1] == 4
    assert "conv1_1.weight" not in model.state_dict()
    x = _inputs(1, 38, 42)
    with torch.no_grad():
        assert torch.equal(model(x), model(torch.cat([x["color"], x["depth"]], 1)))


def test_early_fusion_conv1_keeps_colour_and_adds_the_channel_mean_for_depth() -> None:
    w = torch.randn(8, 3, 3, 3)
    four = early_fusion_conv1(w)
    assert torch.equal(four[:, :3], w)
    assert_close_to_scale(four[:, 3], (w[:, 0] + w[:, 1] + w[:, 2]) / 3)


def test_early_fusion_starts_from_imagenet_conv1_1_on_colour_and_its_mean_on_depth(
        tmp_path: Path) -> None:
    # A small ImageNet VGG16 in torchvision's layout (features.*, classifier.0/3).
    donor = _randomized(fcn8s(**SMALL))
    tv = {}
    for name, idx in zip((n for n in VGG16_TRUNK if n.startswith("conv")),
                         (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28), strict=True):
        tv[f"features.{idx}.weight"] = getattr(donor.trunk, name).weight.detach().clone()
        tv[f"features.{idx}.bias"] = torch.randn(getattr(donor.trunk, name).bias.shape)
    tv["classifier.0.weight"] = donor.trunk.fc6.weight.detach().reshape(16, -1).clone()
    tv["classifier.0.bias"] = torch.randn(16)
    tv["classifier.3.weight"] = donor.trunk.fc7.weight.detach().reshape(16, -1).clone()
    tv["classifier.3.bias"] = torch.randn(16)
    torch.save(tv, tmp_path / "vgg16_small.pth")
    model = build_model("nyud_fcn32s_color_d", **SMALL, backbone_weights=tmp_path /
                        "vgg16_small.pth", backbone_convention="caffe_bgr")
    w = model.trunk.conv1_1.weight
    assert torch.equal(w[:, :3], tv["features.0.weight"])
    assert_close_to_scale(w[:, 3], tv["features.0.weight"].mean(1))
    assert torch.equal(model.trunk.conv1_1.bias, tv["features.0.bias"])
    assert torch.equal(model.trunk.fc6.bias, tv["classifier.0.bias"])
    assert model.input_convention == NYUD_BGR  # Caffe weights fine-tune on the NYUDv2 mean


@pytest.mark.parametrize(("arch", "skip"), [("nyud_fcn32s_color_hha", ()),
                                            ("nyud_fcn16s_color_hha", ("score_pool4",))])
def test_late_fusion_layers_are_suffixed_per_stream_and_upsampling_shared(arch, skip) -> None:
    keys = {k.rpartition(".")[0] for k in build_model(arch, **SMALL).state_dict()}
    streams = {f"{layer}_{s}" for s in ("color", "hha")
               for layer in (*VGG16_TRUNK, "score_fr", *skip)}
    shared = {"upscore"} if not skip else {"upscore2", "upscore16"}
    assert keys == streams | shared


@pytest.mark.parametrize(("arch", "single"), [("nyud_fcn32s_color_hha", "nyud_fcn32s_color"),
                                              ("nyud_fcn16s_color_hha", "fcn16s")])
def test_late_fusion_is_half_of_each_single_stream_net(arch, single) -> None:
    """Score maps summed 0.5/0.5 before a linear upsampling = the mean of the two nets."""
    color = _randomized(build_model(single, num_classes=40, **SMALL), seed=1)
    hha = _randomized(build_model(single, num_classes=40, **SMALL), seed=2)
    with torch.no_grad():  # different trunks too, so that a swapped stream would show
        for p in hha.parameters():
            if p.requires_grad:
                p.mul_(1.1)
    model = init_late_fusion(build_model(arch, **SMALL).eval(), {"color": color, "hha": hha})
    # Each stream normalises its input as the fused net does.
    color.input_convention, hha.input_convention = model.input_convention, NYUD_HHA
    x = _inputs(2, 45, 39)
    with torch.no_grad():
        expected = 0.5 * color(x["color"]) + 0.5 * hha(x["hha"])
        got = model(x)
    assert_close_to_scale(got, expected)
    assert all(is_bilinear(u) for u in model.upsampling_layers())


def test_late_fusion_streams_start_from_checkpoints_through_the_builder(tmp_path: Path) -> None:
    paths = {}
    for i, modality in enumerate(("color", "hha")):
        single = _randomized(build_model(f"nyud_fcn32s_{modality}", **SMALL), seed=i)
        paths[modality] = save_checkpoint(tmp_path / f"{modality}.pt", single,
                                          class_names=list(NYUD_CLASSES), palette=voc_palette())
    model = build_model("nyud_fcn32s_color_hha", **SMALL, stream_weights=paths)
    color = build_model_from_checkpoint(paths["color"])
    assert torch.equal(model.streams["color"].scorers["32"].weight, color.head.score_fr.weight)
    assert torch.equal(model.streams["color"].trunk.conv3_2.bias, color.trunk.conv3_2.bias)
    assert "stream_weights" not in model.build_kwargs  # a file name is never recorded


def test_late_fusion_16s_from_32s_streams_keeps_pool4_scores_at_zero() -> None:
    color = _randomized(build_model("nyud_fcn32s_color", **SMALL))
    model = init_late_fusion(build_model("nyud_fcn16s_color_hha", **SMALL), {"color": color})
    assert torch.equal(model.streams["color"].scorers["32"].weight, color.head.score_fr.weight)
    assert not model.streams["color"].scorers["16"].weight.any()


def test_late_fusion_from_a_net_of_another_width_names_the_tensor() -> None:
    wide = build_model("nyud_fcn32s_color", width=0.125, fc_channels=16)
    with pytest.raises(WeightsError, match=r"conv1_1\.weight has shape .* conv1_1_color\.weight"):
        init_late_fusion(build_model("nyud_fcn32s_color_hha", **SMALL), {"color": wide})


def test_late_fusion_from_a_net_holding_nan_names_the_tensor() -> None:
    color = build_model("nyud_fcn32s_color", **SMALL)
    with torch.no_grad():
        color.trunk.fc6.bias[0] = float("nan")
    with pytest.raises(WeightsError, match=r"the color model: tensor fc6\.bias holds NaN"):
        init_late_fusion(build_model("nyud_fcn32s_color_hha", **SMALL), {"color": color})


def test_optimize_reaches_both_streams_and_keeps_the_output() -> None:
    model = _randomized(build_model("nyud_fcn32s_color_hha", **SMALL))
    x = _inputs(1, 50, 44)
    with torch.no_grad():
        plain = model(x)
        optimize(model)
        fast = model(x)
    assert {"fc6_color: GEMM", "fc6_hha: GEMM", "fc7_hha: GEMM"} <= set(model.optimizations)
    assert_close_to_scale(fast, plain)


# -- checkpoints -------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", SIFTFLOW + NYUD)
def test_every_builder_round_trips_through_a_checkpoint(arch, tmp_path: Path) -> None:
    model = _randomized(build_model(arch, geometry="same", **SMALL))
    names = list(SIFT_FLOW_CLASSES if arch.startswith("siftflow") else NYUD_CLASSES)
    path = save_checkpoint(tmp_path / "m.pt", model, class_names=names, palette=voc_palette())
    rebuilt = build_model_from_checkpoint(path)
    assert rebuilt.arch == arch and rebuilt.build_kwargs == model.build_kwargs
    assert rebuilt.build_kwargs["geometry"] == "same"
    assert rebuilt.input_convention == model.input_convention
    x = _inputs(1, 33, 41)
    with torch.no_grad():
        before, after = model(x), rebuilt(x)
    if isinstance(before, dict):
        assert list(before) == list(after)
        for head in before:
            assert torch.equal(before[head], after[head])
    else:
        assert torch.equal(before, after)


def test_staged_initialisation_carries_both_heads_from_32s_to_16s() -> None:
    s32 = _randomized(build_model("siftflow_fcn32s", **SMALL))
    s16 = build_model("siftflow_fcn16s", **SMALL)
    copied = set(init_from(s16, s32))
    assert {"score_fr_sem.weight", "score_fr_geo.bias", "fc7.weight"} <= copied
    assert torch.equal(s16.heads["geometric"].score_fr.weight,
                       s32.heads["geometric"].score_fr.weight)
    assert not s16.heads["semantic"].score_pool4.weight.any()
    assert not s16.heads["geometric"].score_pool4.weight.any()
