"""Weight loading: convolutionalization, the PyTorch port's files, errors, staged init, download."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fcnseg.checkpoint import save_checkpoint
from fcnseg.conventions import CAFFE_BGR, TORCHVISION_RGB
from fcnseg.models import (
    WeightsError,
    build_model,
    fcn8s,
    fcn16s,
    fcn32s,
    init_from,
    load_backbone_weights,
    load_fcn_weights,
)
from fcnseg.pretrained import fetch as fetch_mod
from fcnseg.pretrained.fetch import Source
from fcnseg.utils.download import DownloadError

WIDTH = 0.125  # conv5 has 64 channels: pool5 flattens to 64·7·7 = 3136 features
FC = 32
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def _vgg16_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A VGG16 state dict in torchvision's layout, sized for a width-reduced trunk."""
    g = torch.Generator().manual_seed(seed)
    chans = [3] + [c for n, c in ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
                   for _ in range(n)]
    chans = [3] + [round(c * WIDTH) for c in chans[1:]]
    sd = {}
    for i, idx in enumerate(CONV_INDICES):
        sd[f"features.{idx}.weight"] = torch.randn(chans[i + 1], chans[i], 3, 3, generator=g)
        sd[f"features.{idx}.bias"] = torch.randn(chans[i + 1], generator=g)
    sd["classifier.0.weight"] = torch.randn(FC, chans[-1] * 49, generator=g) * 0.05
    sd["classifier.0.bias"] = torch.randn(FC, generator=g)
    sd["classifier.3.weight"] = torch.randn(FC, FC, generator=g) * 0.1
    sd["classifier.3.bias"] = torch.randn(FC, generator=g)
    sd["classifier.6.weight"] = torch.randn(1000, FC, generator=g)
    sd["classifier.6.bias"] = torch.randn(1000, generator=g)
    return sd


@pytest.fixture
def vgg_file(tmp_path: Path) -> Path:
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(_vgg16_state_dict(), path)
    return path


def test_convolutionalized_fc6_fc7_equal_the_linear_layers(vgg_file: Path) -> None:
    model = fcn32s(width=WIDTH, fc_channels=FC).double().eval()
    load_backbone_weights(model, vgg_file)
    sd = {k: v.double() for k, v in _vgg16_state_dict().items()}
    pool5 = torch.randn(2, round(512 * WIDTH), 7, 7, dtype=torch.float64)
    conv = model.trunk.fc7(F.relu(model.trunk.fc6(pool5)))  # N×FC×1×1
    linear = F.linear(F.relu(F.linear(pool5.flatten(1), sd["classifier.0.weight"],
                                      sd["classifier.0.bias"])),
                      sd["classifier.3.weight"], sd["classifier.3.bias"])
    assert conv.shape == (2, FC, 1, 1)
    torch.testing.assert_close(conv.flatten(1), linear, rtol=1e-12, atol=1e-12)


def test_backbone_convs_are_copied_in_order(vgg_file: Path) -> None:
    model = fcn8s(width=WIDTH, fc_channels=FC)
    load_backbone_weights(model, vgg_file)
    sd = _vgg16_state_dict()
    assert torch.equal(model.trunk.conv1_1.weight, sd["features.0.weight"])
    assert torch.equal(model.trunk.conv3_3.bias, sd["features.14.bias"])
    assert torch.equal(model.trunk.conv5_3.weight, sd["features.28.weight"])
    assert not model.head.score_fr.weight.any()  # the 1000-way classifier is dropped


def test_input_convention_comes_with_the_weights(tmp_path: Path, vgg_file: Path) -> None:
    model = fcn32s(width=WIDTH, fc_channels=FC)
    assert load_backbone_weights(model, vgg_file).input_convention == TORCHVISION_RGB
    caffe_file = tmp_path / "vgg16_from_caffe.pth"
    torch.save(_vgg16_state_dict(), caffe_file)
    assert load_backbone_weights(model, caffe_file).input_convention == CAFFE_BGR


def test_unrecognised_weights_need_an_explicit_convention(tmp_path: Path) -> None:
    path = tmp_path / "my_vgg.pth"
    torch.save(_vgg16_state_dict(), path)
    model = fcn32s(width=WIDTH, fc_channels=FC)
    with pytest.raises(WeightsError, match="my_vgg.pth.*convention"):
        load_backbone_weights(model, path)
    load_backbone_weights(model, path, convention="caffe_bgr")
    assert model.input_convention == CAFFE_BGR


def test_the_convention_advice_names_the_builders_argument_which_then_works(
        tmp_path: Path) -> None:
    path = tmp_path / "my_vgg.pth"
    torch.save(_vgg16_state_dict(), path)
    options = {"num_classes": 3, "width": WIDTH, "fc_channels": FC, "backbone_weights": path}
    with pytest.raises(WeightsError, match="pass backbone_convention='caffe_bgr'") as e:
        build_model("fcn8s", **options)
    assert "\n" not in str(e.value) and "pass convention=" not in str(e.value)
    model = build_model("fcn8s", **options, backbone_convention="torchvision_rgb")
    assert model.input_convention == TORCHVISION_RGB


def test_backbone_shape_mismatch_names_file_and_keys(vgg_file: Path) -> None:
    model = fcn32s(width=0.25, fc_channels=FC)  # twice as wide as the file
    with pytest.raises(WeightsError, match=r"vgg16-397923af\.pth.*features\.0\.weight"):
        load_backbone_weights(model, vgg_file)


def _trained_fcn8s() -> torch.nn.Module:
    model = fcn8s(num_classes=4, width=0.0625, fc_channels=8)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("score"):
                p.copy_(torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize("wrapped", [False, True])
def test_port_checkpoints_load_with_no_conversion(tmp_path: Path, wrapped: bool) -> None:
    source = _trained_fcn8s()
    path = tmp_path / ("model.pth.tar" if wrapped else "model.pth")
    payload = {"model_state_dict": source.state_dict(), "arch": "FCN8s", "epoch": 3,
               "iteration": 100, "optim_state_dict": {}, "best_mean_iu": 0.5}
    torch.save(payload if wrapped else source.state_dict(), path)
    target = fcn8s(num_classes=4, width=0.0625, fc_channels=8).eval()
    load_fcn_weights(target, path)
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(target(x), source(x))


def test_a_checkpoint_as_loaded_that_does_not_fit_names_the_remedy_without_a_file() -> None:
    from fcnseg.checkpoint import checkpoint_payload

    ckpt = checkpoint_payload(fcn8s(num_classes=4, width=0.0625, fc_channels=8),
                              class_names=list("abcd"))
    with pytest.raises(WeightsError) as err:
        load_fcn_weights(fcn8s(num_classes=4, width=0.125, fc_channels=16), ckpt)
    assert str(err.value).endswith("fcnseg.checkpoint.build_model_from_checkpoint(checkpoint), "
                                   "given the checkpoint as loaded")


def test_a_state_dict_as_loaded_loads_as_its_file_does() -> None:
    source = _trained_fcn8s()
    target = load_fcn_weights(fcn8s(num_classes=4, width=0.0625, fc_channels=8).eval(),
                              source.state_dict())
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(target(x), source(x))


def test_truncated_file_is_reported_by_name(tmp_path: Path) -> None:
    path = tmp_path / "cut.pth"
    torch.save(_trained_fcn8s().state_dict(), path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightsError, match=r"cut\.pth.*truncated"):
        load_fcn_weights(fcn8s(num_classes=4, width=0.0625, fc_channels=8), path)


def test_wrong_keys_and_shapes_are_listed(tmp_path: Path) -> None:
    sd = _trained_fcn8s().state_dict()
    sd["extra.weight"] = torch.zeros(1)
    del sd["score_pool3.bias"]
    sd["score_fr.weight"] = torch.zeros(5, 8, 1, 1)
    path = tmp_path / "odd.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsError) as err:
        load_fcn_weights(fcn8s(num_classes=4, width=0.0625, fc_channels=8), path)
    msg = str(err.value)
    assert "odd.pth" in msg and "missing keys [score_pool3.bias]" in msg
    assert "unexpected keys [extra.weight]" in msg and "score_fr.weight" in msg


def test_a_checkpoint_of_another_width_is_one_short_line_naming_both_models_and_the_remedy(
        tmp_path: Path) -> None:
    narrow = fcn8s(num_classes=4, width=0.0625, fc_channels=8)
    path = save_checkpoint(tmp_path / "best.pt", narrow, class_names=list("abcd"))
    with pytest.raises(WeightsError) as err:
        load_fcn_weights(fcn8s(num_classes=4, width=0.125, fc_channels=16), path)
    msg = str(err.value)
    assert "\n" not in msg and len(msg.replace(str(path), "P")) < 450
    assert msg.startswith(
        f"{path}: weights do not fit the model, fcn8s (4 classes, width 0.125, fc_channels 16); "
        f"the file records fcn8s (4 classes, width 0.0625, fc_channels 8): shape mismatches "
        f"[conv1_1.weight: file (4, 3, 3, 3) vs model (8, 3, 3, 3), conv1_1.bias: file (4,) vs "
        f"model (8,), conv1_2.weight: file (4, 4, 3, 3) vs model (8, 8, 3, 3)] (+")
    assert msg.endswith(f"; build the model the file records with "
                        f"fcnseg.checkpoint.build_model_from_checkpoint('{path}')")


class _Payload:
    """Unpickling this would create a file: loading must never execute it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (Path(self.marker),))


def test_loading_never_executes_code_from_a_file(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    torch.save({"model_state_dict": {"w": torch.zeros(1)}, "x": _Payload(str(marker))}, path)
    with pytest.raises(WeightsError, match="evil.pth"):
        load_fcn_weights(fcn8s(num_classes=4, width=0.0625, fc_channels=8), path)
    assert not marker.exists()


def test_safetensors_files_load(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = _trained_fcn8s()
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    target = load_fcn_weights(fcn8s(num_classes=4, width=0.0625, fc_channels=8), path)
    assert torch.equal(target.head.score_fr.weight, source.head.score_fr.weight)


def test_staged_init_copies_matching_layers_and_keeps_new_scorers_zero() -> None:
    stage32 = fcn32s(num_classes=4, width=0.0625, fc_channels=8)
    with torch.no_grad():
        stage32.head.score_fr.weight.normal_()
    stage16 = fcn16s(num_classes=4, width=0.0625, fc_channels=8)
    copied = init_from(stage16, stage32)
    assert "conv1_1.weight" in copied and "score_fr.weight" in copied
    assert "upscore.weight" not in copied  # 64×64 kernel vs 16s's 4×4 and 32×32
    assert torch.equal(stage16.head.score_fr.weight, stage32.head.score_fr.weight)
    assert not stage16.head.score_pool4.weight.any()
    stage8 = fcn8s(num_classes=4, width=0.0625, fc_channels=8)
    init_from(stage8, stage16)
    assert torch.equal(stage8.head.score_pool4.weight, stage16.head.score_pool4.weight)
    assert not stage8.head.score_pool3.weight.any()


def test_staged_init_refuses_an_unrelated_source() -> None:
    with pytest.raises(WeightsError, match="only 0 of the model's 30 trunk tensors"):
        init_from(fcn16s(width=0.0625, fc_channels=8), {"other.weight": torch.zeros(1)})


def test_published_weights_download_over_loopback(loopback_server, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"fake weights " * 1000
    (loopback_server.root / "vgg.pth").write_bytes(data)
    src = fetch_mod.PRETRAINED["vgg16_torchvision"]
    fake = replace(src, sources=(Source(loopback_server.url("vgg.pth"), "vgg.pth",
                                        md5=hashlib.md5(data).hexdigest()),))
    monkeypatch.setitem(fetch_mod.PRETRAINED, "vgg16_torchvision", fake)
    cache = tmp_path / "cache"
    path = fetch_mod.fetch_pretrained("vgg16_torchvision", cache, progress=False)
    assert path.read_bytes() == data
    assert fetch_mod.fetch_pretrained("vgg16_torchvision", cache, progress=False) == path
    assert len(loopback_server.requests) == 1  # the second call used the cache


def test_checksum_mismatch_leaves_no_file(loopback_server, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (loopback_server.root / "vgg.pth").write_bytes(b"not the published file")
    src = fetch_mod.PRETRAINED["vgg16_torchvision"]
    fake = replace(src, sources=(Source(loopback_server.url("vgg.pth"), "vgg.pth",
                                        sha256="397923af"),))
    monkeypatch.setitem(fetch_mod.PRETRAINED, "vgg16_torchvision", fake)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="vgg.pth.*sha256 expected 397923af"):
        fetch_mod.fetch_pretrained("vgg16_torchvision", cache, progress=False)
    assert list(cache.iterdir()) == []


def test_staged_init_reports_each_key_left_alone_and_why(caplog: pytest.LogCaptureFixture) -> None:
    stage32 = fcn32s(num_classes=4, width=0.0625, fc_channels=8)
    stage16 = fcn16s(num_classes=4, width=0.0625, fc_channels=8)
    with caplog.at_level("INFO", logger="fcnseg.models.weights"):
        report = init_from(stage16, stage32.state_dict(), name="runs/32s/best.pt")
    assert "conv1_1.weight" in report.copied and "fc7.bias" in report.copied
    assert report.kept["score_pool4.weight"] == "not in the source"
    assert report.kept["upscore2.weight"] == "not in the source"
    assert report.unused == ["upscore.weight"]
    line = caplog.records[-1].getMessage()
    assert line.startswith(f"init from runs/32s/best.pt: copied {len(report.copied)} tensors")
    assert "score_pool4.weight (not in the source)" in line and "upscore.weight" in line


def test_staged_init_names_shape_mismatches() -> None:
    source = fcn32s(num_classes=5, width=0.0625, fc_channels=8)
    report = init_from(fcn32s(num_classes=4, width=0.0625, fc_channels=8), source)
    assert report.kept["score_fr.weight"] == "shape (5, 8, 1, 1) in the source vs (4, 8, 1, 1) " \
                                             "in the model"
    assert "conv5_3.weight" in report.copied


def test_staged_init_refuses_a_source_whose_trunk_mostly_has_other_shapes() -> None:
    source = fcn32s(num_classes=4, width=0.125, fc_channels=8)  # twice as wide, same fc7
    target = fcn16s(num_classes=4, width=0.0625, fc_channels=8)
    before = target.trunk.conv1_2.weight.clone()
    with pytest.raises(WeightsError, match=r"only 3 of the model's 30 trunk tensors.*"
                                           r"conv1_2.weight \(8, 8, 3, 3\) vs \(4, 4"):
        init_from(target, source)
    assert torch.equal(target.trunk.conv1_2.weight, before)  # nothing was copied


def test_a_source_of_another_width_names_both_models_and_says_the_trunks_differ() -> None:
    source = fcn32s(num_classes=4, width=0.125, fc_channels=16)
    target = fcn16s(num_classes=4, width=0.0625, fc_channels=8)
    with pytest.raises(WeightsError) as info:
        init_from(target, source.state_dict(), name="runs/wide/best.pt")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "init: runs/wide/best.pt cannot initialise the model, fcn16s (width 0.0625, "
        "fc_channels 8): their trunks differ (in width, bands or architecture), only 0 of the "
        "model's 30 trunk tensors match by name and shape (source vs model: conv1_1.weight "
        "(8, 3, 3, 3) vs (4, 3, 3, 3), ")
    with pytest.raises(WeightsError, match=r"^init: the given fcn32s \(width 0.125, "
                                           r"fc_channels 16\) module cannot initialise"):
        init_from(target, source)


def test_an_init_from_a_checkpoint_file_of_another_width_names_the_build_it_records(
        tmp_path: Path) -> None:
    wide = fcn32s(num_classes=4, width=0.125, fc_channels=16)
    path = save_checkpoint(tmp_path / "best.pt", wide, class_names=list("abcd"))
    with pytest.raises(WeightsError, match=rf"^init: {path}, fcn32s \(width 0.125, fc_channels "
                                           rf"16\), cannot initialise the model, fcn16s \(width "
                                           rf"0.0625, fc_channels 8\).* or set model.width: "
                                           rf"0.125, model.fc_channels: 16 in the recipe"):
        init_from(fcn16s(num_classes=4, width=0.0625, fc_channels=8), path)


def test_a_staged_init_as_expected_writes_nothing_to_the_terminal(capfd, caplog) -> None:
    stage32 = fcn32s(num_classes=4, width=0.0625, fc_channels=8)
    stage16 = fcn16s(num_classes=4, width=0.0625, fc_channels=8)
    caplog.set_level("INFO", logger="fcnseg.models.weights")
    report = init_from(stage16, stage32)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # the report is returned, and logged at INFO
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert report.summary().startswith("init from")


def test_an_init_that_leaves_trunk_layers_alone_warns() -> None:
    source = fcn32s(num_classes=4, width=0.0625, fc_channels=8).state_dict()
    source.pop("conv1_1.weight")
    with pytest.warns(UserWarning, match=r"conv1_1.weight \(not in the source\)"):
        init_from(fcn16s(num_classes=4, width=0.0625, fc_channels=8), source)
