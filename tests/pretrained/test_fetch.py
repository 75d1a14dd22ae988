"""fetch_pretrained over a loopback server: official source first, fallback, structural check,
manifest, offline cache, and what a failure says."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from _caffe_files import FC, WIDTH, random_fcn_state_dict, write_reference_fcn

from fcnseg.checkpoint import build_model_from_checkpoint, load_checkpoint
from fcnseg.pretrained import fetch as fetch_mod
from fcnseg.pretrained.fetch import FetchError, Source, fetch_pretrained
from fcnseg.pretrained.reference import REFERENCE_MODELS

SMALL = {"width": WIDTH, "fc_channels": FC}
REF = REFERENCE_MODELS["fcn8s-heavy-pascal"]


def _use_sources(monkeypatch: pytest.MonkeyPatch, *sources: Source) -> None:
    """fcn8s_caffe, sized like the tests' small nets, with these sources."""
    entry = replace(fetch_mod.PRETRAINED["fcn8s_caffe"], sources=sources, build_kwargs=SMALL)
    monkeypatch.setitem(fetch_mod.PRETRAINED, "fcn8s_caffe", entry)


def _caffemodel(server, sd, name: str = "fcn8s-heavy-pascal.caffemodel") -> Source:
    write_reference_fcn(server.root / name, REF, sd)
    return Source(server.url(name), "fcn8s-heavy-pascal.caffemodel", format="caffemodel")


def _assert_weights(path: Path, sd: dict[str, torch.Tensor]) -> None:
    model = build_model_from_checkpoint(path)
    for key, tensor in sd.items():
        assert torch.equal(model.state_dict()[key], tensor), key


def test_official_caffemodel_is_converted_once_and_then_used_offline(
        loopback_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sd = random_fcn_state_dict("fcn8s", 21)
    _use_sources(monkeypatch, _caffemodel(loopback_server, sd))
    cache = tmp_path / "cache"
    path = fetch_pretrained("fcn8s_caffe", cache, progress=False)
    _assert_weights(path, sd)
    assert load_checkpoint(path)["classes"]["names"][1] == "aeroplane"
    (loopback_server.root / "fcn8s-heavy-pascal.caffemodel").unlink()  # the host is gone
    assert fetch_pretrained("fcn8s_caffe", cache, progress=False) == path
    assert len(loopback_server.requests) == 1


def test_first_source_failing_falls_back_to_the_next(loopback_server, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    sd = random_fcn_state_dict("fcn8s", 21)
    port_file = loopback_server.root / "fcn8s_from_caffe.pth"
    torch.save({"model_state_dict": sd, "arch": "FCN8s"}, port_file)
    md5 = hashlib.md5(port_file.read_bytes()).hexdigest()
    missing = Source(loopback_server.url("gone.caffemodel"), "fcn8s-heavy-pascal.caffemodel",
                     format="caffemodel")
    _use_sources(monkeypatch, missing,
                 Source(loopback_server.url("fcn8s_from_caffe.pth"), "fcn8s_from_caffe.pth",
                        md5=md5))
    path = fetch_pretrained("fcn8s_caffe", tmp_path / "cache", progress=False)
    _assert_weights(path, sd)
    assert loopback_server.requests == ["/gone.caffemodel", "/fcn8s_from_caffe.pth"]


def test_a_file_failing_the_structural_check_is_refused_and_a_good_copy_kept(
        loopback_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = random_fcn_state_dict("fcn8s", 21)
    wrong = random_fcn_state_dict("fcn8s", 21)
    del wrong["score_pool3.weight"], wrong["score_pool3.bias"]  # a layer without its blobs
    bad_source = _caffemodel(loopback_server, wrong, "bad.caffemodel")
    _use_sources(monkeypatch, bad_source, _caffemodel(loopback_server, good, "good.caffemodel"))
    cache = tmp_path / "cache"
    path = fetch_pretrained("fcn8s_caffe", cache, progress=False)
    _assert_weights(path, good)
    kept = cache / "fcn8s-heavy-pascal.caffemodel"
    assert kept.read_bytes() == (loopback_server.root / "good.caffemodel").read_bytes()
    assert not list(cache.glob("*.unverified*"))  # the refused download is gone
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest[kept.name]["sha256"] == hashlib.sha256(kept.read_bytes()).hexdigest()


def test_the_manifest_is_checked_on_the_next_read(loopback_server, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    sd = random_fcn_state_dict("fcn8s", 21)
    _use_sources(monkeypatch, _caffemodel(loopback_server, sd))
    cache = tmp_path / "cache"
    path = fetch_pretrained("fcn8s_caffe", cache, progress=False)
    original = cache / "fcn8s-heavy-pascal.caffemodel"
    served = (loopback_server.root / "fcn8s-heavy-pascal.caffemodel").read_bytes()
    original.write_bytes(served[:-10] + b"0123456789")  # bit rot, same size, still parses
    path.write_bytes(b"")  # the converted file is checked too
    assert fetch_pretrained("fcn8s_caffe", cache, progress=False) == path
    _assert_weights(path, sd)
    assert original.read_bytes() == served  # fetched again
    assert original.with_name(original.name + ".corrupt").exists()
    assert len(loopback_server.requests) == 2


def test_a_changed_cache_file_with_no_source_left_is_reported(
        loopback_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sd = random_fcn_state_dict("fcn8s", 21)
    _use_sources(monkeypatch, _caffemodel(loopback_server, sd))
    cache = tmp_path / "cache"
    path = fetch_pretrained("fcn8s_caffe", cache, progress=False)
    original = cache / "fcn8s-heavy-pascal.caffemodel"
    original.write_bytes(original.read_bytes()[:-10] + b"0123456789")
    path.unlink()
    (loopback_server.root / "fcn8s-heavy-pascal.caffemodel").unlink()
    with pytest.raises(FetchError, match=r"fcn8s-heavy-pascal.caffemodel changed since it was "
                                         r"verified .* moved it to .*\.corrupt.*HTTP 404"):
        fetch_pretrained("fcn8s_caffe", cache, progress=False)


def test_a_file_put_in_the_cache_by_hand_is_used_offline(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    sd = random_fcn_state_dict("fcn8s", 21)
    cache = tmp_path / "cache"
    cache.mkdir()
    write_reference_fcn(cache / "fcn8s-heavy-pascal.caffemodel", REF, sd)
    _use_sources(monkeypatch, Source("http://127.0.0.1:9/fcn8s-heavy-pascal.caffemodel",
                                     "fcn8s-heavy-pascal.caffemodel", format="caffemodel"))
    _assert_weights(fetch_pretrained("fcn8s_caffe", cache, progress=False), sd)


def test_failure_lists_urls_answers_cache_path_and_alternatives(
        loopback_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (loopback_server.root / "page.html").write_text("<html>confirm</html>")
    _use_sources(monkeypatch,
                 Source(loopback_server.url("none.caffemodel"), "fcn8s-heavy-pascal.caffemodel",
                        format="caffemodel"),
                 Source(loopback_server.url("page.html"), "fcn8s_from_caffe.pth", md5="0" * 32))
    cache = tmp_path / "cache"
    with pytest.raises(FetchError) as info:
        fetch_pretrained("fcn8s_caffe", cache, progress=False)
    msg = str(info.value)
    assert f"{loopback_server.url('none.caffemodel')}: HTTP 404" in msg
    assert f"{loopback_server.url('page.html')}: returned an HTML page" in msg
    assert msg.count(loopback_server.url("none.caffemodel")) == 1  # each URL said once
    assert str(cache / "fcn8s-heavy-pascal.caffemodel") in msg
    assert "--checkpoint PATH" in msg and "fcnseg convert" in msg
    assert "Segmenter.from_checkpoint(PATH)" in msg  # what a Python user passes it to


def test_backbone_failure_says_how_to_pass_a_path(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    entry = replace(fetch_mod.PRETRAINED["vgg16_caffe"],
                    sources=(Source("http://127.0.0.1:9/VGG_ILSVRC_16_layers.caffemodel",
                                    "VGG_ILSVRC_16_layers.caffemodel", format="caffemodel"),))
    monkeypatch.setitem(fetch_mod.PRETRAINED, "vgg16_caffe", entry)
    with pytest.raises(FetchError, match=r"VGG_ILSVRC_16_layers.caffemodel .*"
                                         r"--set model.backbone_weights=PATH.*"
                                         r"build_model\(\.\.\., backbone_weights=PATH\)"):
        fetch_pretrained("vgg16_caffe", tmp_path / "cache", progress=False)


def test_offline_failure_says_the_no_internet_hint_once_not_per_url(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 9 (discard) on the loopback: nothing listens, as for a machine without network.
    _use_sources(monkeypatch,
                 Source("http://127.0.0.1:9/fcn8s-heavy-pascal.caffemodel",
                        "fcn8s-heavy-pascal.caffemodel", format="caffemodel"),
                 Source("http://127.0.0.1:9/fcn8s_from_caffe.pth", "fcn8s_from_caffe.pth",
                        md5="0" * 32))
    cache = tmp_path / "cache"
    with pytest.raises(FetchError) as info:
        fetch_pretrained("fcn8s_caffe", cache, progress=False)
    msg = str(info.value)
    assert msg.count("internet") == 1, msg
    assert msg.count("http://127.0.0.1:9/fcn8s-heavy-pascal.caffemodel") == 1, msg
    assert "Errno" not in msg and len(msg.replace(str(cache), "CACHE")) < 500, msg
    assert info.value.__cause__ is None and info.value.__context__ is None  # no chained trace


def test_torchvision_sources_check_the_sha256_prefix_of_their_names() -> None:
    for name in ("resnet18", "resnet34", "resnet50", "resnet101", "vgg16_torchvision",
                 "vgg16_bn", "fcn_resnet50_coco", "fcn_resnet101_coco"):
        (source,) = fetch_mod.PRETRAINED[name].sources
        assert source.url == f"https://download.pytorch.org/models/{source.filename}"
        assert source.filename.split("-")[-1] == f"{source.sha256}.pth"


def _serve_small_vgg16_caffe(loopback_server, monkeypatch: pytest.MonkeyPatch):
    """A small ImageNet VGG16 .caffemodel on the loopback server as the ``vgg16_caffe`` entry:
    its layers and the entry."""
    from _caffe_files import imagenet_vgg16_layers

    from fcnseg.pretrained.caffemodel import write_caffemodel

    layers = imagenet_vgg16_layers()
    write_caffemodel(loopback_server.root / "VGG_ILSVRC_16_layers.caffemodel", layers, v1=True)
    entry = replace(fetch_mod.PRETRAINED["vgg16_caffe"], build_kwargs=SMALL,
                    sources=(Source(loopback_server.url("VGG_ILSVRC_16_layers.caffemodel"),
                                    "VGG_ILSVRC_16_layers.caffemodel", format="caffemodel"),))
    monkeypatch.setitem(fetch_mod.PRETRAINED, "vgg16_caffe", entry)
    return layers, entry


def test_imagenet_vgg16_caffemodel_becomes_backbone_weights(
        loopback_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fcnseg.conventions import CAFFE_BGR
    from fcnseg.models import fcn32s, load_backbone_weights

    layers, entry = _serve_small_vgg16_caffe(loopback_server, monkeypatch)
    path = fetch_pretrained("vgg16_caffe", tmp_path / "cache", progress=False)
    model = load_backbone_weights(fcn32s(width=WIDTH, fc_channels=FC), path)
    assert model.input_convention == CAFFE_BGR
    assert torch.equal(model.trunk.conv2_1.weight, torch.from_numpy(layers[3][2][0]))
    # a full-size VGG16 is what the real entry expects: the small file fails its check
    monkeypatch.setitem(fetch_mod.PRETRAINED, "vgg16_caffe", replace(entry, build_kwargs=None))
    with pytest.raises(FetchError, match=r"failed the structural check .*layer 'conv1_1' has "
                                         r"shape \(4, 3, 3, 3\), expected \(64, 3, 3, 3\)"):
        fetch_pretrained("vgg16_caffe", tmp_path / "other-cache", progress=False)


def test_an_interrupted_caffemodel_download_resumes(loopback_server, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    sd = random_fcn_state_dict("fcn8s", 21)
    source = _caffemodel(loopback_server, sd)
    _use_sources(monkeypatch, source)
    cache = tmp_path / "cache"
    cache.mkdir()
    served = (loopback_server.root / "fcn8s-heavy-pascal.caffemodel").read_bytes()
    (cache / "fcn8s-heavy-pascal.caffemodel.unverified.part").write_bytes(served[:5000])
    _assert_weights(fetch_pretrained("fcn8s_caffe", cache, progress=False), sd)
    assert loopback_server.range_requests == ["bytes=5000-"]
    assert (cache / "fcn8s-heavy-pascal.caffemodel").read_bytes() == served


def test_a_published_backbone_name_from_python_is_fetched_as_the_error_says(
        loopback_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fcnseg.conventions import CAFFE_BGR
    from fcnseg.models import WeightsError, build_model
    from fcnseg.pretrained.fetch import backbone_weights_file

    layers, _ = _serve_small_vgg16_caffe(loopback_server, monkeypatch)
    monkeypatch.setenv("FCNSEG_HOME", str(tmp_path / "cache"))
    with pytest.raises(WeightsError, match=r"fetch_pretrained\('vgg16_caffe'\)"):
        build_model("fcn32s", num_classes=5, width=WIDTH, fc_channels=FC,
                    backbone_weights="vgg16_caffe")
    assert loopback_server.requests == []  # the builders never download
    # What the message says to call, and what a recipe's model.backbone_weights resolves to:
    path = fetch_pretrained("vgg16_caffe", progress=False)
    assert backbone_weights_file("vgg16_caffe") == path
    model = build_model("fcn32s", num_classes=5, width=WIDTH, fc_channels=FC,
                        backbone_weights=path)
    assert model.input_convention == CAFFE_BGR
    assert torch.equal(model.trunk.conv2_1.weight, torch.from_numpy(layers[3][2][0]))
    assert len(loopback_server.requests) == 1  # downloaded once, then from the cache
