"""Self-describing checkpoints: round trip, the port's format, atomic writes, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fcnseg import checkpoint
from fcnseg.checkpoint import (
    CheckpointError,
    build_model_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from fcnseg.cli.main import main
from fcnseg.conventions import NYUD_BGR, TORCHVISION_RGB
from fcnseg.data.palette import voc_palette
from fcnseg.inference import Segmenter
from fcnseg.models import build_model, fcn8s, fcn8s_vgg16_bn, fcn16s
from fcnseg.utils.files import atomic_write

NAMES = ["background", "disc", "bar"]


def _model() -> torch.nn.Module:
    model = fcn16s(num_classes=3, geometry="same", width=0.0625, fc_channels=8)
    model.input_convention = TORCHVISION_RGB
    with torch.no_grad():
        model.head.score_fr.weight.normal_()
    return model.eval()


def test_checkpoint_describes_and_rebuilds_the_model(tmp_path: Path) -> None:
    model = _model()
    path = save_checkpoint(tmp_path / "best.pt", model, class_names=NAMES,
                           palette=voc_palette(), iteration=7, metrics={"mean_iu": 0.5},
                           recipe={"name": "synthetic-fcn8s"})
    ckpt = load_checkpoint(path)
    assert ckpt["model"]["arch"] == "fcn16s"
    assert ckpt["model"]["build_kwargs"]["geometry"] == "same"
    assert ckpt["model"]["input_convention"]["name"] == "torchvision_rgb"
    assert ckpt["classes"]["names"] == NAMES
    assert ckpt["classes"]["palette"][1] == [128, 0, 0]
    assert ckpt["iteration"] == 7 and ckpt["metrics"]["mean_iu"] == 0.5
    rebuilt = build_model_from_checkpoint(path)
    assert rebuilt.input_convention == TORCHVISION_RGB
    x = torch.randn(1, 3, 37, 41)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_a_checkpoints_build_kwargs_rebuild_its_models_convention(tmp_path: Path) -> None:
    model = _model()
    model.input_convention = NYUD_BGR  # as loading weights of another convention does
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model, class_names=NAMES))
    rebuilt = build_model(ckpt["model"]["arch"], **ckpt["model"]["build_kwargs"])
    assert rebuilt.input_convention == NYUD_BGR


def test_an_older_checkpoints_build_kwargs_rebuild_its_models_convention(tmp_path: Path) -> None:
    model = _model()
    model.input_convention = NYUD_BGR
    older = torch.load(save_checkpoint(tmp_path / "m.pt", model, class_names=NAMES),
                       weights_only=True)
    del older["model"]["build_kwargs"]["input_convention"]  # as written before it was recorded
    torch.save(older, tmp_path / "old.pt")
    ckpt = load_checkpoint(tmp_path / "old.pt")
    rebuilt = build_model(ckpt["model"]["arch"], **ckpt["model"]["build_kwargs"])
    assert rebuilt.input_convention == NYUD_BGR


def test_port_checkpoint_is_read_as_a_caffe_voc_model(tmp_path: Path) -> None:
    model = fcn8s(width=0.0625, fc_channels=8)
    path = tmp_path / "model_best.pth.tar"
    torch.save({"model_state_dict": model.state_dict(), "arch": "FCN8s", "epoch": 2,
                "iteration": 5000, "optim_state_dict": {}, "best_mean_iu": 0.65}, path)
    ckpt = load_checkpoint(path)
    assert ckpt["model"]["arch"] == "fcn8s" and ckpt["classes"]["names"][15] == "person"
    # the port's file says nothing about width: rebuilding at full width must fail clearly
    with pytest.raises(ValueError, match="model_best.pth.tar.*shape mismatches"):
        build_model_from_checkpoint(ckpt)


def test_class_names_must_match_the_model(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="2 class names"):
        save_checkpoint(tmp_path / "x.pt", _model(), class_names=NAMES[:2], palette=voc_palette())


@pytest.mark.parametrize(("palette", "shown"), [
    ([[0, 0, 0], [1, 2, 3], [300, 0, 0]], r"colour 2 is \[300, 0, 0\]"),
    ([[0, 0, 0], [1, 2], [3, 3, 3]], r"colour 1 is \[1, 2\]"),
    ([[0, 0, 0], [1.5, 0, 0], [3, 3, 3]], r"colour 1 is \[1.5, 0, 0\]"),
    ([[0, 0, 0], (), [3, 3, 3]], r"colour 1 is \[\]"),  # an empty colour, as a list
])
def test_a_palette_loading_would_refuse_is_refused_before_writing(tmp_path: Path, palette,
                                                                   shown) -> None:
    out = tmp_path / "x.pt"
    with pytest.raises(CheckpointError, match=f"palette: {shown}: expected \\[r, g, b\\] "
                                              f"integers in 0-255") as e:
        save_checkpoint(out, _model(), class_names=NAMES, palette=palette)
    assert "\n" not in str(e.value) and not out.exists()


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "last.pt", _model(), class_names=NAMES,
                           palette=voc_palette(), iteration=1)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="disk full"), atomic_write(path) as f:
        f.write(b"partial")
        raise RuntimeError("disk full")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind


def test_garbage_file_is_reported_by_name(tmp_path: Path) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_missing_relative_checkpoint_names_the_absolute_path_looked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint("runs/x/best.pt")
    assert str(e.value) == (f"runs/x/best.pt: no such checkpoint (looked for "
                            f"{tmp_path}/runs/x/best.pt)")


def test_a_missing_absolute_checkpoint_is_named_once(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / "best.pt")
    assert str(e.value) == f"{tmp_path}/best.pt: no such checkpoint"


def test_a_missing_checkpoint_under_a_tilde_names_the_path_opened_not_the_home_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    torch.save({"x": torch.zeros(1)}, tmp_path / "home" / "best.pt")  # not what was opened
    with pytest.raises(CheckpointError) as e:
        load_checkpoint("~/best.pt")
    assert str(e.value) == f"~/best.pt: no such checkpoint (looked for {tmp_path}/~/best.pt)"


def test_an_image_given_as_checkpoint_is_named_as_an_image(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "p0.png"
    Image.new("RGB", (4, 3)).save(path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value) == f"{path} is an image (PNG), not a checkpoint"


def test_a_run_log_given_as_checkpoint_is_named_as_json_text(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"iteration": 10, "loss": 0.5}\n')
    with pytest.raises(CheckpointError, match=r"is a text file \(JSON\), not a checkpoint$"):
        load_checkpoint(path)


def test_a_truncated_checkpoint_is_still_called_truncated_or_corrupt(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "best.pt", _model(), class_names=NAMES,
                           palette=voc_palette())
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


# -- metadata is checked before anything is built ------------------------------------------------
def _tampered(tmp_path: Path, name: str, edit) -> Path:
    path = save_checkpoint(tmp_path / name, _model(), class_names=NAMES, palette=voc_palette())
    ckpt = torch.load(path, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, path)
    return path


def _set(section: str, field: str, value):
    def edit(ckpt: dict) -> None:
        target = ckpt["model"]["build_kwargs"] if section == "build_kwargs" else ckpt[section]
        target[field] = value
    return edit


@pytest.fixture
def build_only_on_meta(monkeypatch):
    """Fail the test if the checkpoint loader builds a model anywhere but on the meta device."""
    real = checkpoint.build_model

    def guarded(*args, **kwargs):
        assert torch.empty(0).device.type == "meta", "a real model was built"
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "build_model", guarded)


def test_absurd_width_fails_before_the_model_is_built(tmp_path: Path, build_only_on_meta) -> None:
    path = _tampered(tmp_path, "wide.pt", _set("build_kwargs", "width", 40))
    with pytest.raises(CheckpointError, match=r"wide\.pt: model\.build_kwargs \(width=40.*shape"):
        build_model_from_checkpoint(path)


def test_absurd_class_count_fails_before_the_model_is_built(tmp_path: Path,
                                                           build_only_on_meta) -> None:
    path = _tampered(tmp_path, "classes.pt", _set("build_kwargs", "num_classes", 10_000_000))
    with pytest.raises(CheckpointError, match=r"classes\.pt: .*num_classes=10000000"):
        build_model_from_checkpoint(path)


def test_class_count_is_checked_against_the_weights(tmp_path: Path, build_only_on_meta) -> None:
    def edit(ckpt: dict) -> None:
        ckpt["model"]["build_kwargs"]["num_classes"] = 5
        ckpt["classes"]["names"] = [f"c{i}" for i in range(5)]
    path = _tampered(tmp_path, "five.pt", edit)
    with pytest.raises(CheckpointError, match=r"five\.pt: model\.build_kwargs \(num_classes=5\)"):
        build_model_from_checkpoint(path)


def test_nan_weights_are_refused_for_inference(tmp_path: Path) -> None:
    def edit(ckpt: dict) -> None:
        ckpt["model_state_dict"]["score_fr.weight"][0, 0] = float("nan")
    path = _tampered(tmp_path, "nan.pt", edit)
    with pytest.raises(CheckpointError, match=r"nan\.pt: tensor score_fr\.weight holds NaN"):
        Segmenter.from_checkpoint(path)


def test_infinite_weights_are_refused(tmp_path: Path) -> None:
    def edit(ckpt: dict) -> None:
        ckpt["model_state_dict"]["conv1_1.bias"][1] = float("inf")
    path = _tampered(tmp_path, "inf.pt", edit)
    with pytest.raises(CheckpointError, match=r"inf\.pt: tensor conv1_1\.bias"):
        build_model_from_checkpoint(path)


@pytest.mark.parametrize(("edit", "message"), [
    (_set("build_kwargs", "colour", "red"), r"model\.build_kwargs\.colour: not an argument"),
    (_set("build_kwargs", "width", "wide"), r"model\.build_kwargs\.width: expected float"),
    (_set("build_kwargs", "geometry", 3), r"model\.build_kwargs\.geometry: expected str"),
    (_set("build_kwargs", "backbone_weights", "/etc/passwd"),
     r"model\.build_kwargs\.backbone_weights: not an argument"),
], ids=["unknown-key", "wrong-type", "wrong-type-str", "file-argument"])
def test_malformed_build_kwargs_name_the_file_and_field(tmp_path: Path, edit, message) -> None:
    path = _tampered(tmp_path, "bad.pt", edit)
    with pytest.raises(CheckpointError, match=r"bad\.pt: " + message):
        build_model_from_checkpoint(path)


@pytest.mark.parametrize(("edit", "message"), [
    (_set("classes", "palette", ["red", "green", "blue"]), r"classes\.palette: expected"),
    (_set("classes", "palette", [[0, 0, 0], [300, 0, 0]]), r"classes\.palette: expected"),
    (_set("classes", "ignore_index", "255"), r"classes\.ignore_index: expected an integer"),
    (_set("classes", "ignore_index", 2.5), r"classes\.ignore_index: expected an integer"),
    (_set("classes", "names", ["a", "b"]), r"classes\.names: 2 names for a model with "
                                           r"build_kwargs\.num_classes=3"),
    (_set("classes", "names", "abc"), r"classes\.names: expected a list"),
    (_set("build_kwargs", "num_classes", "3"), r"model\.build_kwargs\.num_classes: expected"),
    (_set("model", "input_convention", "sepia"), r"model\.input_convention: unknown"),
    (_set("classes", "coco_categories", {"a": {"id": "3"}}),
     r"classes\.coco_categories: expected class names mapped to"),
], ids=["palette-strings", "palette-range", "ignore-str", "ignore-float", "name-count",
        "names-str", "num-classes-str", "convention", "coco-id-str"])
def test_malformed_class_metadata_names_the_file_and_field(tmp_path: Path, edit,
                                                           message) -> None:
    path = _tampered(tmp_path, "bad.pt", edit)
    with pytest.raises(CheckpointError, match=r"bad\.pt: " + message):
        load_checkpoint(path)


def test_malformed_metadata_is_one_line_on_the_command_line(tmp_path: Path, capsys) -> None:
    path = _tampered(tmp_path, "bad.pt", _set("classes", "palette", ["red"]))
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.pt: classes.palette" in err


def test_vgg16_bn_checkpoint_records_batch_norm(tmp_path: Path) -> None:
    model = fcn8s_vgg16_bn(num_classes=3, width=1 / 64, fc_channels=4).eval()
    path = save_checkpoint(tmp_path / "bn.pt", model, class_names=NAMES, palette=voc_palette())
    assert load_checkpoint(path)["model"]["build_kwargs"]["batch_norm"] is True
    assert build_model_from_checkpoint(path).batch_norm


def test_checkpoint_contents_and_keyword_fields_write_the_same_checkpoint(tmp_path) -> None:
    from fcnseg.checkpoint import CheckpointContents

    model = _model()
    contents = CheckpointContents(class_names=NAMES, palette=voc_palette(), iteration=3,
                                  background="background")
    by_fields = load_checkpoint(save_checkpoint(
        tmp_path / "a.pt", model, class_names=NAMES, palette=voc_palette(), iteration=3,
        background="background"))
    by_contents = load_checkpoint(save_checkpoint(tmp_path / "b.pt", model, contents))
    for key in ("model", "classes", "iteration", "epoch", "metrics", "recipe"):
        assert by_contents[key] == by_fields[key], key
    assert by_contents["classes"]["background"] == "background"
    assert load_checkpoint(save_checkpoint(tmp_path / "c.pt", model, contents,
                                           iteration=9))["iteration"] == 9
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "d.pt", model, class_names=NAMES, palette=voc_palette(),
                        iterations=3)  # a misspelt field is refused, not ignored


def test_a_checkpoint_without_a_palette_gets_distinct_colours(tmp_path: Path) -> None:
    from fcnseg.data.palette import distinct_palette

    ckpt = load_checkpoint(save_checkpoint(tmp_path / "x.pt", _model(), class_names=NAMES))
    expected = distinct_palette(NAMES, 255).tolist()
    assert ckpt["classes"]["palette"] == expected
    assert ckpt["classes"]["palette"][0] == [0, 0, 0]  # background stays black
    assert len({tuple(c) for c in ckpt["classes"]["palette"][:3]}) == 3


@pytest.mark.parametrize("dilation", [5, "abc", [True], [1, 0, 1]],
                         ids=["number", "string", "one", "integers"])
def test_a_malformed_list_field_names_the_file_and_field(tmp_path: Path, dilation) -> None:
    model = build_model("fcn8s_resnet18", num_classes=3, base_channels=8,
                        replace_stride_with_dilation=[False, False, True])
    path = save_checkpoint(tmp_path / "good.pt", model, class_names=["a", "b", "c"],
                           palette=voc_palette()[:3])
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["build_kwargs"]["replace_stride_with_dilation"] = dilation
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad\.pt: model\.build_kwargs\."
                                              r"replace_stride_with_dilation: expected three"):
        build_model_from_checkpoint(tmp_path / "bad.pt")


def test_saving_without_class_names_names_the_argument(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"^save_checkpoint: class_names is required") as e:
        save_checkpoint(tmp_path / "m.pt", _model())
    assert "CheckpointContents" not in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "m.pt").exists()


def test_a_misspelt_field_is_named_with_the_fields_there_are(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"save_checkpoint: unknown field 'class_name'.*"
                                        r"class_names"):
        save_checkpoint(tmp_path / "m.pt", _model(), class_name=NAMES)


def test_save_checkpoint_help_lists_its_fields() -> None:
    doc = save_checkpoint.__doc__ or ""
    for field in ("class_names", "palette", "ignore_index", "metrics", "head_classes",
                  "background", "recipe", "iteration"):
        assert field in doc, field


def _deflated(path: Path, out: Path) -> Path:
    """``path`` (a torch.save zip) rewritten with its members deflated."""
    import zipfile

    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    return out


def test_a_checkpoint_of_compressed_members_is_refused_before_it_is_inflated(
        tmp_path: Path) -> None:
    # torch.load inflates deflated members to their declared size: 4 MB from 5 KB here.
    from fcnseg.models.weights import WeightsError, read_weights

    torch.save({"model_state_dict": {"w": torch.zeros(1_000_000)}}, tmp_path / "plain.pt")
    bomb = _deflated(tmp_path / "plain.pt", tmp_path / "bomb.pt")
    assert bomb.stat().st_size < 50_000
    with pytest.raises(checkpoint.NotACheckpoint) as e:
        checkpoint.load_checkpoint(bomb)
    assert str(e.value).startswith(f"{bomb}: not a checkpoint: its members declare")
    with pytest.raises(WeightsError) as e:
        read_weights(bomb)
    assert str(e.value).startswith(f"{bomb}: not a weights file: its members declare")
    assert read_weights(tmp_path / "plain.pt")[0]["w"].shape == (1_000_000,)


def test_a_safetensors_checkpoint_refuses_a_metric_json_cannot_hold_as_a_number(
        tmp_path: Path) -> None:
    import numpy as np

    from fcnseg.checkpoint import save_safetensors_checkpoint

    pytest.importorskip("safetensors")
    with pytest.raises(TypeError, match="float32"):  # never stored as the text "0.5"
        save_safetensors_checkpoint(tmp_path / "m.safetensors", _model(), class_names=NAMES,
                                    palette=voc_palette(), metrics={"mean_iu": np.float32(0.5)})
    assert not (tmp_path / "m.safetensors").exists()


def test_a_safetensors_checkpoint_keeps_the_background_class(tmp_path: Path) -> None:
    from fcnseg.checkpoint import save_checkpoint_safetensors, save_safetensors_checkpoint

    pytest.importorskip("safetensors")
    ckpt = save_checkpoint(tmp_path / "m.pt", _model(), class_names=NAMES, background="disc")
    for converted in (save_checkpoint_safetensors(tmp_path / "c.safetensors", ckpt),
                      save_safetensors_checkpoint(tmp_path / "m.safetensors", _model(),
                                                  class_names=NAMES, palette=voc_palette(),
                                                  background="disc")):
        assert load_checkpoint(converted)["classes"]["background"] == "disc"


def test_the_checkpoint_module_lists_what_it_defines_in_all() -> None:
    import inspect

    defined = {name for name, value in vars(checkpoint).items()
               if not name.startswith("_") and (inspect.isfunction(value) or inspect.isclass(value))
               and value.__module__ == checkpoint.__name__}
    assert sorted(checkpoint.__all__) == sorted(defined)
