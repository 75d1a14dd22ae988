"""Pretrained folders, hf:// checkpoints from a local Hugging Face cache, and fcnseg convert."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _caffe_files import random_fcn_state_dict, write_reference_fcn
from PIL import Image

from fcnseg.checkpoint import load_checkpoint, save_checkpoint
from fcnseg.cli.main import main
from fcnseg.conventions import TORCHVISION_RGB
from fcnseg.data import SYNTHETIC_CLASSES, palette_for
from fcnseg.data.palette import VOC_CLASSES
from fcnseg.hub import HubError, from_pretrained, push_to_hub, save_pretrained
from fcnseg.models import fcn8s
from fcnseg.pretrained.hub import resolve_checkpoint
from fcnseg.pretrained.reference import REFERENCE_MODELS

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _private_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FCNSEG_HOME", str(tmp_path / "fcnseg-cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _model(num_classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = fcn8s(num_classes=num_classes, geometry="same", width=0.0625, fc_channels=16)
    with torch.no_grad():  # score layers start at zero; random ones give varied predictions
        for layer in (model.head.score_fr, model.head.score_pool4, model.head.score_pool3):
            layer.weight.normal_(0, 1.0)
    model.input_convention = TORCHVISION_RGB
    return model.eval()


def _hf_cache_repo(root: Path, repo: str, folder: Path, *, ref: str = "main") -> Path:
    """Lay ``folder`` out as the Hugging Face cache holds a downloaded repository."""
    base = root / f"models--{repo.replace('/', '--')}"
    snapshot = base / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for f in folder.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (base / "refs").mkdir()
    (base / "refs" / ref).write_text(COMMIT)
    return snapshot


def test_save_pretrained_then_from_pretrained_round_trip(tmp_path: Path) -> None:
    model = _model(len(SYNTHETIC_CLASSES))
    folder = save_pretrained(model, tmp_path / "tiny", class_names=list(SYNTHETIC_CLASSES),
                             palette=palette_for(len(SYNTHETIC_CLASSES)), metrics={"mean_iu": 0.5})
    config = json.loads((folder / "config.json").read_text())
    assert config["arch"] == "fcn8s" and config["build_kwargs"]["width"] == 0.0625
    assert config["classes"]["names"] == list(SYNTHETIC_CLASSES)
    assert config["input_convention"]["name"] == "torchvision_rgb"
    assert config["metrics"] == {"mean_iu": 0.5}
    loaded = from_pretrained(folder)
    assert loaded.class_names == list(SYNTHETIC_CLASSES)
    assert loaded.input_convention == TORCHVISION_RGB
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key


def test_save_pretrained_takes_a_checkpoint_with_its_classes(tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "m.pt", _model(21), class_names=list(VOC_CLASSES),
                           palette=palette_for(21), metrics={"mean_iu": 0.25})
    folder = save_pretrained(ckpt, tmp_path / "folder")
    loaded = load_checkpoint(folder)  # a folder is a checkpoint too
    assert loaded["classes"]["names"] == list(VOC_CLASSES)
    assert loaded["metrics"] == {"mean_iu": 0.25}


def test_hf_spec_through_predict_and_evaluate_from_the_local_cache(tmp_path: Path) -> None:
    model = _model(len(SYNTHETIC_CLASSES))
    folder = save_pretrained(model, tmp_path / "export", class_names=list(SYNTHETIC_CLASSES),
                             palette=palette_for(len(SYNTHETIC_CLASSES)))
    _hf_cache_repo(tmp_path / "hf-cache", "someone/tiny-fcn", folder)
    image = (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
    Image.fromarray(image).save(tmp_path / "x.png")

    for spec in ("hf://someone/tiny-fcn", f"hf://someone/tiny-fcn@{COMMIT}"):
        out = tmp_path / f"pred-{len(spec)}"
        assert main(["predict", "--checkpoint", spec, str(tmp_path / "x.png"), "--out", str(out),
                     "--no-progress"]) == 0
        assert (out / "x_label.png").is_file()
    report_dir = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", "hf://someone/tiny-fcn", "--dataset", "synthetic",
                 "--num-images", "2", "--size", "40x48", "--out", str(report_dir),
                 "--device", "cpu"]) == 0
    report = json.loads((report_dir / "report.json").read_text())
    assert [c["class"] for c in report["per_class"]] == list(SYNTHETIC_CLASSES)
    # the predictions are the model's own
    ckpt = load_checkpoint("hf://someone/tiny-fcn")
    assert torch.equal(ckpt["model_state_dict"]["score_fr.weight"],
                       model.state_dict()["score_fr.weight"])


def test_missing_revision_and_repository_are_clear_errors(tmp_path: Path) -> None:
    folder = save_pretrained(_model(3), tmp_path / "export", class_names=["a", "b", "c"])
    _hf_cache_repo(tmp_path / "hf-cache", "someone/tiny-fcn", folder)
    with pytest.raises(HubError, match=r"hf://someone/tiny-fcn@v2: .*revision 'v2'.* "
                                              r"not in the Hugging Face cache.*HF_HUB_OFFLINE"):
        resolve_checkpoint("hf://someone/tiny-fcn@v2")
    with pytest.raises(HubError, match=r"hf://nobody/none: config.json of nobody/none is "
                                              r"not in the Hugging Face cache"):
        resolve_checkpoint("hf://nobody/none")


def test_a_folder_without_weights_is_named(tmp_path: Path) -> None:
    folder = save_pretrained(_model(3), tmp_path / "export", class_names=["a", "b", "c"])
    (folder / "model.safetensors").unlink()
    with pytest.raises(HubError, match=r"no model.safetensors in .*export"):
        load_checkpoint(folder)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_convert_cli_output_is_a_checkpoint_predict_takes(tmp_path: Path, suffix: str,
                                                          capsys: pytest.CaptureFixture) -> None:
    ref = REFERENCE_MODELS["fcn8s-heavy-pascal"]
    sd = random_fcn_state_dict("fcn8s", 21)
    caffemodel = write_reference_fcn(tmp_path / "fcn8s-heavy-pascal.caffemodel", ref, sd)
    out = tmp_path / f"fcn8s-voc{suffix}"
    assert main(["convert", str(caffemodel), "--out", str(out)]) == 0
    assert "fcn8s-heavy-pascal" in capsys.readouterr().out
    ckpt = load_checkpoint(out)
    assert ckpt["classes"]["names"] == list(VOC_CLASSES)
    assert torch.equal(ckpt["model_state_dict"]["upscore8.weight"], sd["upscore8.weight"])
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "x.png")
    assert main(["predict", "--checkpoint", str(out), str(tmp_path / "x.png"),
                 "--out", str(tmp_path / "pred"), "--no-progress"]) == 0
    # an existing output is not replaced without --force
    assert main(["convert", str(caffemodel), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_push_to_hub_uploads_a_pretrained_folder(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    calls: dict[str, object] = {}

    class FakeApi:  # records what would go to the Hub (no network in tests)
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, private=None, exist_ok=False):
            calls["repo"] = (repo_id, private, exist_ok)

        def upload_folder(self, repo_id, folder_path, commit_message):
            calls["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            calls["config"] = json.loads((Path(folder_path) / "config.json").read_text())
            return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = push_to_hub(_model(3), "someone/tiny", class_names=["a", "b", "c"], token="t")
    assert url == "https://huggingface.co/someone/tiny/commit/abc"
    assert calls["repo"] == ("someone/tiny", None, True)
    assert calls["files"] == ["config.json", "model.safetensors"]
    assert calls["config"]["classes"]["names"] == ["a", "b", "c"]


def test_push_to_hub_takes_every_option_of_save_pretrained(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    import huggingface_hub

    configs: list[dict] = []

    class FakeApi:  # keeps the uploaded config (no network in tests)
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, private=None, exist_ok=False):
            pass

        def upload_folder(self, repo_id, folder_path, commit_message):
            configs.append(json.loads((Path(folder_path) / "config.json").read_text()))
            return "url"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    push_to_hub(_model(3), "someone/tiny", class_names=["a", "b", "c"], ignore_index=7,
                metrics={"mean_iu": 0.5})
    assert configs[0]["classes"]["ignore_index"] == 7
    assert configs[0]["metrics"] == {"mean_iu": 0.5}


def test_a_training_run_folder_points_to_its_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    save_checkpoint(run / "best.pt", _model(3), class_names=["a", "b", "c"],
                    palette=palette_for(3))
    with pytest.raises(HubError, match=r"run: a training run folder; pass its checkpoint "
                                       r".*run/best.pt \(no config.json in "):
        load_checkpoint(run)


def test_pretrained_folders_and_safetensors_keep_the_coco_categories(tmp_path: Path) -> None:
    from fcnseg.checkpoint import save_checkpoint_safetensors

    coco = {"car": {"id": 3, "supercategory": "vehicle"}}
    ckpt = save_checkpoint(tmp_path / "m.pt", _model(3), class_names=["_background_", "car", "dog"],
                           coco_categories=coco)
    for converted in (save_pretrained(ckpt, tmp_path / "folder"),
                      save_checkpoint_safetensors(tmp_path / "m.safetensors", ckpt)):
        assert load_checkpoint(converted)["classes"]["coco_categories"] == coco


def test_renamed_classes_carry_the_background_by_its_index(tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "c.pt", _model(3), class_names=["bg", "a", "b"],
                           background="bg")
    folder = save_pretrained(ckpt, tmp_path / "p", class_names=["back", "a", "b"])
    assert load_checkpoint(folder)["classes"]["background"] == "back"


def _spoilt_config(tmp_path: Path, spoil) -> Path:
    """A pretrained folder whose config.json ``spoil`` (config -> config) has rewritten."""
    folder = save_pretrained(_model(3), tmp_path / "spoilt", class_names=["a", "b", "c"])
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(spoil(config)))
    return folder


@pytest.mark.parametrize(("spoil", "problem"), [
    (lambda c: [c], "expected a JSON object of fields, got a list"),
    (lambda c: {**c, "metrics": 5}, "metrics: expected a JSON object, got a number"),
    (lambda c: {**c, "classes": [1]}, "classes: expected a JSON object, got a list"),
    (lambda c: {**c, "arch": 5}, "arch: expected a model name, got 5"),
    (lambda c: {**c, "classes": {**c["classes"], "names": ["a"]}},
     "classes.names: 1 names for a model with build_kwargs.num_classes=3"),
    (lambda c: {**c, "classes": {**c["classes"], "ignore_index": "x"}},
     "classes.ignore_index: expected an integer label value, got 'x'"),
    (lambda c: {**c, "classes": {**c["classes"], "coco_categories": {"b": {"id": "3"}}}},
     "classes.coco_categories: expected class names mapped to {id: integer, supercategory: "
     "text}"),
])
def test_a_config_json_that_lies_is_one_line_naming_it_and_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture, spoil, problem: str
) -> None:
    folder = _spoilt_config(tmp_path, spoil)
    assert main(["info", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"fcnseg info: error: {folder / 'config.json'}: {problem}"


@pytest.mark.parametrize(("spoil", "problem"), [
    (lambda c: {**c, "arch": "fcn4s"}, "arch: unknown model 'fcn4s'"),
    (lambda c: {**c, "build_kwargs": {**c["build_kwargs"], "width": 0.5}},
     "build_kwargs (width=0.5, fc_channels=16) do not fit the weights"),
    (lambda c: {**c, "build_kwargs": {**c["build_kwargs"], "colour": 1}},
     "build_kwargs.colour: not an argument of fcn8s"),
])
def test_a_config_json_that_does_not_build_names_it_not_the_cached_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture, spoil, problem: str
) -> None:
    folder = _spoilt_config(tmp_path, spoil)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "x.png")
    assert main(["predict", "--checkpoint", str(folder), str(tmp_path / "x.png"),
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"fcnseg predict: error: {folder / 'config.json'}: {problem}"), err
    assert "checkpoints" not in err  # the cache folder of built copies


def test_nan_weights_in_a_pretrained_folder_name_its_safetensors_file(tmp_path: Path) -> None:
    from fcnseg.checkpoint import CheckpointError, build_model_from_checkpoint

    model = _model(3)
    with torch.no_grad():
        model.head.score_fr.weight[0, 0] = float("nan")
    folder = save_pretrained(model, tmp_path / "nan", class_names=["a", "b", "c"])
    with pytest.raises(CheckpointError, match=r"nan/model\.safetensors: tensor score_fr\.weight "
                                              r"holds NaN"):
        build_model_from_checkpoint(folder)


def test_info_reads_hf_references_as_predict_does(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    folder = save_pretrained(_model(3), tmp_path / "export", class_names=["a", "b", "c"])
    _hf_cache_repo(tmp_path / "hf-cache", "someone/tiny-fcn", folder)
    assert main(["info", "--checkpoint", "hf://someone/tiny-fcn", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert record["path"] == "hf://someone/tiny-fcn" and record["file_bytes"] == size


def test_info_on_a_pretrained_folder_gives_the_size_of_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = save_pretrained(_model(3), tmp_path / "export", class_names=["a", "b", "c"])
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size > 100_000  # shows as 0.1 MB or more
    assert main(["info", str(folder)]) == 0
    assert f"{size / 1e6:.1f} MB on disk" in capsys.readouterr().out


_CALIBRATE_ON_SYNTHETIC = ["--dataset", "synthetic", "--num-images", "1", "--size", "32",
                           "--max-pixels", "500", "--device", "cpu", "--no-progress"]


def test_calibrate_in_place_on_a_safetensors_checkpoint_writes_safetensors(
        tmp_path: Path) -> None:
    from safetensors import safe_open

    from fcnseg.checkpoint import save_safetensors_checkpoint

    model = _model(len(SYNTHETIC_CLASSES))
    target = save_safetensors_checkpoint(
        tmp_path / "model.safetensors", model, class_names=list(SYNTHETIC_CLASSES),
        palette=palette_for(len(SYNTHETIC_CLASSES)), metrics={"mean_iu": 0.5},
        source={"caffemodel": "tiny.caffemodel"})
    assert main(["calibrate", "--checkpoint", str(target), "--in-place",
                 *_CALIBRATE_ON_SYNTHETIC]) == 0
    with safe_open(str(target), framework="pt") as f:  # a torch pickle would not open
        config = json.loads(f.metadata()["fcnseg"])
        assert torch.equal(f.get_tensor("score_fr.weight"), model.head.score_fr.weight)
    assert config["temperature"] > 0 and config["calibration"]["pixels"] == 500
    assert config["metrics"] == {"mean_iu": 0.5}
    assert config["source"] == {"caffemodel": "tiny.caffemodel"}
    ckpt = load_checkpoint(target)  # every command reads it, the temperature with it
    assert ckpt["temperature"] == config["temperature"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_calibrate_out_in_another_format_is_refused_before_the_fit(tmp_path: Path,
                                                                 capsys) -> None:
    ckpt = save_checkpoint(tmp_path / "m.pt", _model(len(SYNTHETIC_CLASSES)),
                           class_names=list(SYNTHETIC_CLASSES),
                           palette=palette_for(len(SYNTHETIC_CLASSES)))
    assert main(["calibrate", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx"),
                 *_CALIBRATE_ON_SYNTHETIC]) == 2
    err = capsys.readouterr().err.strip()
    assert "m.onnx: a checkpoint is written as .pt (torch) or .safetensors" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "m.onnx").exists()


def test_calibrate_of_a_hub_checkpoint_writes_a_local_file_and_says_where(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    folder = save_pretrained(_model(len(SYNTHETIC_CLASSES)), tmp_path / "export",
                             class_names=list(SYNTHETIC_CLASSES),
                             palette=palette_for(len(SYNTHETIC_CLASSES)))
    _hf_cache_repo(tmp_path / "hf-cache", "someone/tiny-fcn", folder)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["calibrate", "--checkpoint", "hf://someone/tiny-fcn",
                 *_CALIBRATE_ON_SYNTHETIC]) == 0
    out = work / "someone--tiny-fcn_calibrated.pt"
    assert f"wrote {out}" in capsys.readouterr().out
    assert load_checkpoint(out)["temperature"] > 0
    assert sorted(p.name for p in work.iterdir()) == [out.name], "no ./hf:/ folder"
    assert main(["calibrate", "--checkpoint", "hf://someone/tiny-fcn", "--in-place",
                 *_CALIBRATE_ON_SYNTHETIC]) == 2
    err = capsys.readouterr().err
    assert "--in-place: hf://someone/tiny-fcn is a Hub repository" in err


def _full_disk(kind: str):
    """A stand-in for safetensors' writer on a full disk: it leaves part of the file, then
    fails as safetensors does (its own error, the OS error only in the text) or as the OS
    does."""
    import errno

    from safetensors import SafetensorError

    def save_file(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"part of the file")
        if kind == "safetensors":
            raise SafetensorError("Error while serializing: I/O error: No space left on device "
                                  "(os error 28)")
        raise OSError(errno.ENOSPC, "No space left on device")

    return save_file


@pytest.mark.parametrize("kind", ["safetensors", "os"])
@pytest.mark.parametrize("backbone", [False, True], ids=["fcn", "vgg16"])
def test_convert_to_safetensors_on_a_full_disk_is_one_line_and_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, kind: str,
    backbone: bool,
) -> None:
    import safetensors.torch
    from _caffe_files import imagenet_vgg16_layers

    from fcnseg.pretrained.caffemodel import write_caffemodel

    if backbone:
        caffemodel = write_caffemodel(tmp_path / "VGG_ILSVRC_16_layers.caffemodel",
                                      imagenet_vgg16_layers(), v1=True)
    else:
        caffemodel = write_reference_fcn(tmp_path / "fcn8s-heavy-pascal.caffemodel",
                                         REFERENCE_MODELS["fcn8s-heavy-pascal"],
                                         random_fcn_state_dict("fcn8s", 21))
    monkeypatch.setattr(safetensors.torch, "save_file", _full_disk(kind))
    out = tmp_path / "out" / "model.safetensors"
    assert main(["convert", str(caffemodel), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"fcnseg convert: error: cannot write {out}: disk full (")
    assert "model.safetensors was not written" in err and len(err.splitlines()) == 1, err
    assert list((tmp_path / "out").iterdir()) == []  # no partial file, no temporary


def test_save_pretrained_and_save_checkpoint_pick_the_same_default_palette(
        tmp_path: Path) -> None:
    model, names = _model(3), ["background", "disc", "bar"]
    folder = save_pretrained(model, tmp_path / "folder", class_names=names)
    saved = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model, class_names=names))
    config = json.loads((folder / "config.json").read_text())
    assert config["classes"]["palette"] == [list(c) for c in saved["classes"]["palette"]]


def test_an_unreachable_hub_fails_at_once_without_retrying(monkeypatch, caplog) -> None:
    import socket

    from huggingface_hub import constants

    with socket.socket() as s:  # a port nothing listens on: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(HubError, match=r"hf://nobody/none: .*the Hub could not be reached"):
        resolve_checkpoint("hf://nobody/none")
    assert not [r for r in caplog.records if "Retrying" in r.getMessage()]
