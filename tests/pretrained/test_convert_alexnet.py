"""The reference's FCN-AlexNet (fcn-alexnet-pascal.caffemodel) converted into fcn_alexnet, and
Caffe's ImageNet AlexNet (bvlc_alexnet.caffemodel) as its backbone weights."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from _caffe_files import (
    FC,
    WIDTH,
    imagenet_alexnet_layers,
    random_fcn_state_dict,
    write_reference_fcn,
)

from fcnseg.checkpoint import build_model_from_checkpoint, load_checkpoint
from fcnseg.conventions import CAFFE_BGR
from fcnseg.models import fcn_alexnet
from fcnseg.pretrained import fetch as fetch_mod
from fcnseg.pretrained.caffemodel import write_caffemodel
from fcnseg.pretrained.convert import convert_caffemodel
from fcnseg.pretrained.fetch import FetchError, fetch_pretrained
from fcnseg.pretrained.reference import REFERENCE_MODELS

REF = REFERENCE_MODELS["fcn-alexnet-pascal"]


def test_fcn_alexnet_entry_is_mapped_to_the_built_model() -> None:
    assert REF.arch == "fcn_alexnet"
    assert REF.layers == ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7",
                          "score_fr", "upscore")


def test_converted_fcn_alexnet_computes_what_the_written_net_computes(tmp_path: Path) -> None:
    sd = random_fcn_state_dict("fcn_alexnet", 21, seed=5)
    # the reference's upscore is bilinear and frozen; random values would still convert, but
    # the written net should be the one the reference trained
    reference = fcn_alexnet(21, width=WIDTH, fc_channels=FC).state_dict()
    sd["upscore.weight"] = reference["upscore.weight"].clone()
    path = write_reference_fcn(tmp_path / "fcn-alexnet-pascal.caffemodel", REF, sd, v1=True)
    out = convert_caffemodel(path).save(tmp_path / "fcn-alexnet.pt")  # recognised by its layers
    ckpt = load_checkpoint(out)
    assert ckpt["model"]["arch"] == "fcn_alexnet"
    assert ckpt["model"]["build_kwargs"]["variant"] == "caffe"
    assert ckpt["metrics"]["published_mean_iu"] == 48.0
    model = build_model_from_checkpoint(ckpt)
    assert model.input_convention == CAFFE_BGR
    expected = fcn_alexnet(21, width=WIDTH, fc_channels=FC).eval()
    expected.load_state_dict(sd)
    x = torch.randn(1, 3, 41, 66)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected(x), rtol=0, atol=0)


def test_caffe_imagenet_alexnet_loads_as_backbone_weights(tmp_path: Path) -> None:
    layers = imagenet_alexnet_layers(0.125, 16)
    path = write_caffemodel(tmp_path / "bvlc_alexnet.caffemodel", layers, v1=True)
    model = fcn_alexnet(21, width=0.125, fc_channels=16, backbone_weights=path)
    blobs = {name: b for name, _, b in layers}
    assert torch.equal(model.state_dict()["conv4.weight"], torch.from_numpy(blobs["conv4"][0]))
    assert torch.equal(model.state_dict()["conv2.bias"], torch.from_numpy(blobs["conv2"][1]))
    assert torch.equal(model.trunk.fc6.weight, torch.from_numpy(blobs["fc6"][0]).view(16, 32, 6, 6))
    assert torch.equal(model.trunk.fc7.weight, torch.from_numpy(blobs["fc7"][0]).view(16, 16, 1, 1))
    assert model.input_convention == CAFFE_BGR


@pytest.fixture
def small_alexnet_caffe(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = replace(fetch_mod.PRETRAINED["alexnet_caffe"],
                    build_kwargs={"width": 0.125, "fc_channels": 16})
    monkeypatch.setitem(fetch_mod.PRETRAINED, "alexnet_caffe", entry)


def test_bvlc_alexnet_in_the_cache_is_converted_for_backbone_weights(
        tmp_path: Path, small_alexnet_caffe: None) -> None:
    layers = imagenet_alexnet_layers(0.125, 16)
    write_caffemodel(tmp_path / "bvlc_alexnet.caffemodel", layers, v1=True)  # put by hand
    converted = fetch_pretrained("alexnet_caffe", directory=tmp_path, progress=False)
    model = fcn_alexnet(21, width=0.125, fc_channels=16, backbone_weights=converted)
    assert torch.equal(model.state_dict()["conv1.weight"], torch.from_numpy(layers[1][2][0]))
    assert model.input_convention == CAFFE_BGR


def test_a_caffemodel_of_the_wrong_shape_fails_the_structural_check(
        tmp_path: Path, small_alexnet_caffe: None) -> None:
    layers = imagenet_alexnet_layers(0.25, 16)  # a wider net than expected
    write_caffemodel(tmp_path / "bvlc_alexnet.caffemodel", layers, v1=True)
    with pytest.raises(FetchError, match="conv1"):
        fetch_pretrained("alexnet_caffe", directory=tmp_path, progress=False)
    assert not (tmp_path / "alexnet_caffe_converted.pth").exists()
