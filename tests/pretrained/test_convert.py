"""Converting the reference models: every table entry, both layer formats, exact tensors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from _caffe_files import (
    FC,
    WIDTH,
    imagenet_vgg16_layers,
    random_fcn_state_dict,
    write_reference_fcn,
)

from fcnseg.checkpoint import build_model_from_checkpoint, load_checkpoint
from fcnseg.conventions import CAFFE_BGR
from fcnseg.models import fcn32s, load_backbone_weights
from fcnseg.pretrained.caffemodel import CaffeModelError, write_caffemodel
from fcnseg.pretrained.convert import convert_caffemodel
from fcnseg.pretrained.reference import REFERENCE_MODELS

MAPPED = sorted(n for n, r in REFERENCE_MODELS.items() if r.arch != "vgg16")
SCALES = (("scale_pool4", "Scale", [np.full(32, 0.01, np.float32)]),
          ("scale_pool3", "Scale", [np.full(16, 0.0001, np.float32)]))


@pytest.mark.parametrize("v1", [False, True], ids=["layer", "V1"])
@pytest.mark.parametrize("name", MAPPED)
def test_every_mapped_reference_model_converts_exactly(tmp_path: Path, name: str,
                                                       v1: bool) -> None:
    ref = REFERENCE_MODELS[name]
    sd = random_fcn_state_dict(ref.arch, ref.num_classes)
    extra = SCALES if ref.fixed and not v1 else ()  # Scale layers came after the V1 format
    path = write_reference_fcn(tmp_path / f"{name}.caffemodel", ref, sd, v1=v1, extra=extra)
    converted = convert_caffemodel(path)
    assert converted.reference is ref
    model = converted.model
    assert model.arch == ref.arch
    assert model.build_kwargs["width"] == WIDTH and model.build_kwargs["fc_channels"] == FC
    got = model.state_dict()
    assert sorted(got) == sorted(sd)
    for key, tensor in sd.items():
        assert torch.equal(got[key], tensor), key
    assert converted.class_names == list(ref.classes)
    assert model.input_convention == ref.convention


def test_imagenet_vgg16_in_v1_format_is_convolutionalized(tmp_path: Path) -> None:
    layers = imagenet_vgg16_layers()
    path = write_caffemodel(tmp_path / "VGG_ILSVRC_16_layers.caffemodel", layers, v1=True)
    converted = convert_caffemodel(path)
    assert converted.reference.name == "VGG_ILSVRC_16_layers" and converted.is_backbone
    out = converted.save(tmp_path / "vgg16_caffe.pth")
    model = load_backbone_weights(fcn32s(width=WIDTH, fc_channels=FC), out)
    blobs = {name: b for name, _, b in layers}
    assert torch.equal(model.trunk.conv1_1.weight, torch.from_numpy(blobs["conv1_1"][0]))
    assert torch.equal(model.trunk.conv5_3.bias, torch.from_numpy(blobs["conv5_3"][1]))
    assert torch.equal(model.trunk.fc6.weight, torch.from_numpy(blobs["fc6"][0]).view(FC, 32, 7, 7))
    assert torch.equal(model.trunk.fc7.weight, torch.from_numpy(blobs["fc7"][0]).view(FC, FC, 1, 1))
    assert model.input_convention == CAFFE_BGR


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_converted_imagenet_vgg16_records_its_convention(tmp_path: Path, suffix: str) -> None:
    path = write_caffemodel(tmp_path / "VGG_ILSVRC_16_layers.caffemodel",
                            imagenet_vgg16_layers(), v1=True)
    out = convert_caffemodel(path).save(tmp_path / f"vgg16{suffix}")  # a name that says nothing
    model = load_backbone_weights(fcn32s(width=WIDTH, fc_channels=FC), out)  # no convention=
    assert model.input_convention == CAFFE_BGR
    # Still a plain state dict for any other reader.
    if suffix == ".pth":
        sd = torch.load(out, weights_only=True)
        assert "features.0.weight" in sd and all(isinstance(v, torch.Tensor) for v in sd.values())


def test_converted_checkpoint_describes_itself(tmp_path: Path) -> None:
    ref = REFERENCE_MODELS["fcn8s-heavy-pascal"]
    sd = random_fcn_state_dict("fcn8s", 21)
    path = write_reference_fcn(tmp_path / "fcn8s-heavy-pascal.caffemodel", ref, sd)
    out = convert_caffemodel(path).save(tmp_path / "fcn8s-voc.pt")
    ckpt = load_checkpoint(out)
    assert ckpt["model"]["arch"] == "fcn8s"
    assert ckpt["classes"]["names"][15] == "person"
    assert ckpt["model"]["input_convention"]["channel_order"] == "BGR"
    assert ckpt["metrics"]["published_mean_iu"] == 65.5
    model = build_model_from_checkpoint(ckpt)
    assert torch.equal(model.state_dict()["score_pool3.weight"], sd["score_pool3.weight"])


def test_fcn8s_and_at_once_are_told_apart_by_the_file_name(tmp_path: Path) -> None:
    ref = REFERENCE_MODELS["fcn8s-heavy-pascal"]
    sd = random_fcn_state_dict("fcn8s", 21)
    # The V1 format had no Scale layers: the file name is then all that tells them apart.
    named = write_reference_fcn(tmp_path / "fcn8s-atonce-pascal.caffemodel", ref, sd, v1=True)
    assert convert_caffemodel(named).model.arch == "fcn8s_atonce"
    anonymous = write_reference_fcn(tmp_path / "mine.caffemodel", ref, sd)
    assert convert_caffemodel(anonymous, arch="fcn8s_atonce").model.arch == "fcn8s_atonce"


def test_fcn8s_and_at_once_are_told_apart_by_their_scale_layers(tmp_path: Path) -> None:
    ref = REFERENCE_MODELS["fcn8s-heavy-pascal"]
    sd = random_fcn_state_dict("fcn8s", 21)
    plain = write_reference_fcn(tmp_path / "my-fcn8s.caffemodel", ref, sd)
    converted = convert_caffemodel(plain)
    assert converted.reference.name == "fcn8s-heavy-pascal"
    assert converted.model.arch == "fcn8s"
    at_once = write_reference_fcn(tmp_path / "my-atonce.caffemodel", ref, sd, extra=SCALES)
    converted = convert_caffemodel(at_once)
    assert converted.reference.name == "fcn8s-atonce-pascal"
    assert converted.model.arch == "fcn8s_atonce"


def test_an_fcn_with_another_class_count_converts_with_a_generic_arch(tmp_path: Path) -> None:
    ref = REFERENCE_MODELS["fcn16s-heavy-pascal"]
    sd = random_fcn_state_dict("fcn16s", 5)
    path = write_reference_fcn(tmp_path / "own.caffemodel", ref, sd)
    converted = convert_caffemodel(path)
    assert converted.model.arch == "fcn16s" and converted.model.num_classes == 5
    assert converted.class_names == [f"class_{i}" for i in range(5)]


def test_a_missing_layer_is_named(tmp_path: Path) -> None:
    ref = REFERENCE_MODELS["fcn32s-heavy-pascal"]
    sd = random_fcn_state_dict("fcn32s", 21)
    del sd["fc7.weight"], sd["fc7.bias"]
    path = write_reference_fcn(tmp_path / "f.caffemodel", ref, sd)  # fc7 with no blobs
    with pytest.raises(CaffeModelError, match=r"f.caffemodel: layer 'fc7' is missing"):
        convert_caffemodel(path, arch="fcn32s-heavy-pascal")


def test_a_layer_the_model_lacks_is_named(tmp_path: Path) -> None:
    ref = REFERENCE_MODELS["fcn32s-heavy-pascal"]
    sd = random_fcn_state_dict("fcn32s", 21)
    extra = (("score_aux", "Convolution", [np.zeros((21, 16, 1, 1), np.float32)]),)
    path = write_reference_fcn(tmp_path / "f.caffemodel", ref, sd, extra=extra)
    with pytest.raises(CaffeModelError, match=r"layer 'score_aux' \(Convolution, blobs "
                                              r"\(21, 16, 1, 1\)\) has no place in fcnseg's "
                                              r"fcn32s"):
        convert_caffemodel(path, arch="fcn32s")


def test_a_shape_mismatch_names_layer_and_shapes(tmp_path: Path) -> None:
    ref = REFERENCE_MODELS["fcn32s-heavy-pascal"]
    sd = random_fcn_state_dict("fcn32s", 21)
    sd["conv3_2.weight"] = sd["conv3_2.weight"][:, :4]
    path = write_reference_fcn(tmp_path / "f.caffemodel", ref, sd)
    with pytest.raises(CaffeModelError, match=r"f.caffemodel: layer 'conv3_2' blob 0 has shape "
                                              r"\(16, 4, 3, 3\); fcn32s .* needs "
                                              r"\(16, 16, 3, 3\) for conv3_2.weight"):
        convert_caffemodel(path)


def test_at_once_scales_other_than_the_built_in_ones_are_refused(tmp_path: Path) -> None:
    ref = REFERENCE_MODELS["fcn8s-atonce-pascal"]
    sd = random_fcn_state_dict("fcn8s_atonce", 21)
    scales = (("scale_pool4", "Scale", [np.full(32, 0.5, np.float32)]),)
    path = write_reference_fcn(tmp_path / "f.caffemodel", ref, sd, extra=scales)
    with pytest.raises(CaffeModelError, match="layer 'scale_pool4' holds values other than "
                                              "the constant 0.01"):
        convert_caffemodel(path)


def test_unknown_layers_list_the_known_models(tmp_path: Path) -> None:
    path = write_caffemodel(tmp_path / "other.caffemodel",
                            [("conv_a", "Convolution", [np.zeros((2, 3, 1, 1), np.float32)])])
    with pytest.raises(CaffeModelError, match=r"\(conv_a\) match no known model.*"
                                              r"fcn8s-heavy-pascal"):
        convert_caffemodel(path)


def test_a_per_channel_deconvolution_becomes_a_channel_diagonal_kernel(tmp_path: Path) -> None:
    ref = REFERENCE_MODELS["fcn32s-heavy-pascal"]
    sd = random_fcn_state_dict("fcn32s", 21)
    grouped = torch.randn(21, 1, 64, 64)  # group = 21: one kernel per class
    path = write_reference_fcn(tmp_path / "f.caffemodel", ref, {**sd, "upscore.weight": grouped})
    weight = convert_caffemodel(path).model.head.upscore.up.weight
    assert torch.equal(weight[torch.arange(21), torch.arange(21)], grouped[:, 0])
    assert not weight[0, 1:].any() and not weight[1:, 0].any()


def test_rgb_hha_converts_from_the_reference_layer_names(tmp_path: Path) -> None:
    # The reference appends the modality to every layer name of a stream with no separator.
    trunk = [f"conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, n + 1)]
    sd = random_fcn_state_dict("nyud_fcn32s_color_hha", 40)
    layers = [(f"{layer}{s}", "Convolution",
               [sd[f"{layer}_{s}.weight"].numpy(), sd[f"{layer}_{s}.bias"].numpy()])
              for s in ("color", "hha") for layer in (*trunk, "fc6", "fc7", "score_fr")]
    layers.append(("upscore", "Deconvolution", [sd["upscore.weight"].numpy()]))
    path = write_caffemodel(tmp_path / "nyud-fcn32s-color-hha-heavy.caffemodel", layers)
    model = convert_caffemodel(path).model
    assert model.arch == "nyud_fcn32s_color_hha"
    assert torch.equal(model.state_dict()["conv1_1_hha.weight"], sd["conv1_1_hha.weight"])
    assert torch.equal(model.state_dict()["score_fr_color.bias"], sd["score_fr_color.bias"])
    x = {"color": torch.randn(1, 3, 40, 40), "hha": torch.randn(1, 3, 40, 40)}
    with torch.no_grad():
        assert model(x).shape == (1, 40, 40, 40)


def test_a_converted_siftflow_checkpoint_names_both_heads(tmp_path: Path) -> None:
    ref = REFERENCE_MODELS["siftflow-fcn16s-heavy"]
    sd = random_fcn_state_dict("siftflow_fcn16s", 33)
    path = write_reference_fcn(tmp_path / "siftflow-fcn16s-heavy.caffemodel", ref, sd)
    ckpt = load_checkpoint(convert_caffemodel(path).save(tmp_path / "siftflow.pt"))
    assert ckpt["classes"]["heads"]["geometric"] == ["sky", "horizontal", "vertical"]
    assert ckpt["classes"]["heads"]["semantic"][27] == "sky"
    model = build_model_from_checkpoint(ckpt)
    assert torch.equal(model.state_dict()["score_pool4_geo.weight"], sd["score_pool4_geo.weight"])
    with torch.no_grad():
        out = model(torch.randn(1, 3, 36, 36))
    assert out["semantic"].shape == (1, 33, 36, 36) and out["geometric"].shape == (1, 3, 36, 36)


def _fcn32s_with_score_blob(path: Path, blob: bytes) -> Path:
    """The reference FCN-32s whose score_fr layer holds one blob of the given encoding."""
    from fcnseg.pretrained.caffe_proto import LayerParameter

    def field(number: int, payload: bytes) -> bytes:  # length-delimited: wire type 2
        return bytes([number << 3 | 2]) + _varint(len(payload)) + payload

    sd = random_fcn_state_dict("fcn32s", 21)
    del sd["score_fr.weight"], sd["score_fr.bias"]  # written as a layer without blobs
    write_reference_fcn(path, REFERENCE_MODELS["fcn32s-heavy-pascal"], sd)
    layer = LayerParameter(name="score_fr", type="Convolution").SerializeToString()
    with path.open("ab") as f:
        f.write(_varint(100 << 3 | 2) + _varint(len(layer) + len(field(7, blob))) + layer
                + field(7, blob))
    return path


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out) + bytes([n])


@pytest.mark.parametrize(("dims", "values", "problem"), [
    ([], [1.0], r"has shape \(\) \(no axes\)"),
    ([0, 16, 1, 1], [], r"has shape \(0, 16, 1, 1\) \(no values\)"),
    ([-1, -4], [1.0, 2.0, 3.0, 4.0], r": shape \(-1, -4\) has a negative dimension"),
    ([1] * 65, [1.0], r": a shape of 65 axes, more than Caffe's 32"),
])
def test_a_blob_of_no_usable_shape_is_one_line_naming_file_and_layer(
    tmp_path: Path, capsys: pytest.CaptureFixture, dims: list[int], values: list[float],
    problem: str,
) -> None:
    from fcnseg.cli.main import main
    from fcnseg.pretrained.caffe_proto import BlobProto, BlobShape

    blob = BlobProto(shape=BlobShape(dim=dims), data=values).SerializeToString()
    path = _fcn32s_with_score_blob(tmp_path / "f.caffemodel", blob)
    assert main(["convert", str(path), "--out", str(tmp_path / "f.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert re.search(rf"f\.caffemodel: layer 'score_fr' blob 0.*{problem}", err), err
    assert not (tmp_path / "f.pt").exists()


def test_messages_nested_thousands_deep_are_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from fcnseg.cli.main import main

    nested = b""
    for _ in range(2_000):  # a blob's shape holding a blob's shape holding ...
        nested = bytes([7 << 3 | 2]) + _varint(len(nested)) + nested
    path = _fcn32s_with_score_blob(tmp_path / "deep.caffemodel", nested)
    assert main(["convert", str(path), "--out", str(tmp_path / "deep.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "deep.caffemodel: layer 'score_fr' blob 0" in err, err


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_weights_holding_nan_or_infinity_are_refused_at_convert_naming_the_layer(
    tmp_path: Path, capsys: pytest.CaptureFixture, value: float
) -> None:
    from fcnseg.cli.main import main

    sd = random_fcn_state_dict("fcn32s", 21)
    sd["fc7.weight"][3, 2, 0, 0] = value
    path = write_reference_fcn(tmp_path / "f.caffemodel",
                               REFERENCE_MODELS["fcn32s-heavy-pascal"], sd)
    assert main(["convert", str(path), "--out", str(tmp_path / "f.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "f.caffemodel: layer 'fc7' blob 0 holds NaN or infinite values" in err
    assert "fcnseg predict" not in err and not (tmp_path / "f.pt").exists()


def test_an_imagenet_vgg16_holding_nan_is_refused_naming_the_layer(tmp_path: Path) -> None:
    layers = imagenet_vgg16_layers()
    layers[3][2][1][0] = np.nan  # the bias of the third convolution (after the Data layer)
    path = write_caffemodel(tmp_path / "VGG_ILSVRC_16_layers.caffemodel", layers, v1=True)
    with pytest.raises(CaffeModelError, match=rf"layer '{layers[3][0]}' blob 1 holds NaN"):
        convert_caffemodel(path)


def test_convert_help_names_where_the_files_come_from_and_the_extra(capsys) -> None:
    from fcnseg.cli.main import main

    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "http://dl.caffe.berkeleyvision.org/NAME.caffemodel" in text
    assert "fcn8s-heavy-pascal" in text and "siftflow-fcn8s-heavy" in text
    assert "VGG_ILSVRC_16_layers.caffemodel" in text
    assert "pip install 'fcnseg[caffe]'" in text


@pytest.mark.parametrize(("name", "dataset"), [("nyud-fcn32s-color-heavy", "nyud"),
                                               ("siftflow-fcn16s-heavy", "siftflow"),
                                               ("pascalcontext-fcn8s-heavy", "context"),
                                               ("fcn8s-heavy-pascal", "voc")])
def test_a_converted_model_draws_with_its_datasets_palette(tmp_path: Path, name: str,
                                                           dataset: str) -> None:
    # One palette per dataset, whether the checkpoint was converted or trained by fcnseg.
    from ondisk import write_nyud, write_pascal_context, write_siftflow

    from fcnseg.data import NYUDv2, PascalContext, SIFTFlow
    from fcnseg.data.palette import voc_palette

    ref = REFERENCE_MODELS[name]
    path = write_reference_fcn(tmp_path / f"{name}.caffemodel", ref,
                               random_fcn_state_dict(ref.arch, ref.num_classes))
    palette = np.asarray(load_checkpoint(convert_caffemodel(path).save(
        tmp_path / "converted.pt"))["classes"]["palette"])
    data = tmp_path / "data"
    if dataset == "nyud":
        expected = NYUDv2(write_nyud(data, {"train": ["0001"]}), "train").palette
    elif dataset == "siftflow":
        expected = SIFTFlow(write_siftflow(data, {"trainval": ["a"]}), "trainval").palette
    elif dataset == "context":
        expected = PascalContext(write_pascal_context(data, {"train": ["2008_000002"]}),
                                 "train").palette
    else:
        expected = voc_palette()
    n = ref.num_classes
    assert np.array_equal(palette[:n], expected[:n])
    if dataset != "voc":
        assert palette[0].tolist() != [0, 0, 0] or ref.classes[0] == "background"


@pytest.mark.parametrize("name", sorted(n for n in REFERENCE_MODELS
                                        if n.startswith(("pascalcontext-", "nyud-", "siftflow-"))))
def test_a_reference_model_records_the_scores_its_recipe_publishes(name: str) -> None:
    # What fcnseg info shows of a converted model is what fcnseg recipes lists for it.
    from fcnseg.engine.config import load_recipe

    published = load_recipe(name.removesuffix("-heavy")).get("published") or {}
    scores = {k: v for k, v in published.items() if isinstance(v, (int, float))}
    got = {k: v for k, v in REFERENCE_MODELS[name].published.items() if k in scores}
    assert got == scores


def test_info_of_a_caffemodel_names_its_reference_model_and_how_to_convert_it(
        tmp_path: Path, capsys) -> None:
    from fcnseg.cli.main import main

    ref = REFERENCE_MODELS["nyud-fcn32s-color-hha-heavy"]
    path = write_reference_fcn(tmp_path / "mine.caffemodel", ref,
                               random_fcn_state_dict(ref.arch, ref.num_classes))
    assert main(["info", str(path)]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert "the reference model nyud-fcn32s-color-hha-heavy (nyud_fcn32s_color_hha" in \
        lines["contents"]
    assert lines["classes"].strip().startswith("40: wall, floor")
    assert "published mean IU 32.8" in lines["metrics"]
    assert f"fcnseg convert {path} --out" in lines["convert"]


def test_a_caffemodel_read_without_weights_keeps_shapes_and_holds_no_values(
        tmp_path: Path) -> None:
    from fcnseg.pretrained.caffemodel import read_caffemodel

    ref = REFERENCE_MODELS["fcn32s-heavy-pascal"]
    path = write_reference_fcn(tmp_path / "fcn32s-heavy-pascal.caffemodel", ref,
                               random_fcn_state_dict(ref.arch, ref.num_classes))
    full, shapes = read_caffemodel(path), read_caffemodel(path, weights=False)
    for got, expected in zip(shapes.layers, full.layers, strict=True):
        assert [b.shape for b in got.blobs] == [b.shape for b in expected.blobs]
        assert all(b.data.strides == (0,) * b.data.ndim for b in got.blobs)


def test_info_of_a_converted_pascal_context_model_shows_its_published_score(
        tmp_path: Path, capsys) -> None:
    from fcnseg.cli.main import main

    ref = REFERENCE_MODELS["pascalcontext-fcn8s-heavy"]
    path = write_reference_fcn(tmp_path / f"{ref.name}.caffemodel", ref,
                               random_fcn_state_dict(ref.arch, ref.num_classes))
    converted = convert_caffemodel(path).save(tmp_path / "context.pt")
    assert main(["info", str(converted)]) == 0
    assert "published mean IU 39.1" in capsys.readouterr().out
