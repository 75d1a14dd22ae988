"""Temperature scaling and uncertainty maps: fitting, storing, and applying a temperature."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
from floats import assert_close_to_scale
from ondisk import write_folder, write_nyud
from PIL import Image
from tiny_models import tiny_task_model

from fcnseg.checkpoint import load_checkpoint, save_checkpoint
from fcnseg.cli.main import main
from fcnseg.data.palette import voc_palette
from fcnseg.data.synthetic import SYNTHETIC_CLASSES
from fcnseg.inference import Segmenter, calibration
from fcnseg.inference.calibration import (
    TEMPERATURE_RANGE,
    calibrate_checkpoint,
    entropy,
    fit_temperature,
    maxprob_uncertainty,
    save_with_temperature,
    uncertainty_maps,
)
from fcnseg.pretrained.reference import NYUD_CLASSES


def _labels_drawn_from(logits: torch.Tensor, temperature: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.multinomial((logits / temperature).softmax(1), 1, generator=gen).squeeze(1)


@pytest.mark.parametrize("true_temperature", [0.5, 2.5])
def test_fit_recovers_the_temperature_the_labels_were_drawn_with(true_temperature) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn((40_000, 6), generator=gen) * 3.0
    labels = _labels_drawn_from(logits, true_temperature, seed=1)
    fit = fit_temperature(logits, labels)
    # 40,000 samples pin T down to about 1%; 5% leaves room for the sampling noise.
    assert fit.temperature == pytest.approx(true_temperature, rel=0.05)
    assert fit.nll_after < fit.nll_before and fit.pixels == 40_000


def test_fit_on_labels_drawn_at_temperature_1_stays_near_1() -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn((40_000, 4), generator=gen) * 2.0
    fit = fit_temperature(logits, _labels_drawn_from(logits, 1.0, seed=3))
    assert fit.temperature == pytest.approx(1.0, rel=0.05)


def test_entropy_and_maxprob_uncertainty_of_known_probabilities() -> None:
    probs = np.zeros((4, 1, 3), np.float32)
    probs[:, 0, 0] = 0.25            # uniform: the most uncertain
    probs[2, 0, 1] = 1.0             # certain
    probs[:2, 0, 2] = 0.5            # a coin toss between two classes
    np.testing.assert_allclose(entropy(probs)[0], [math.log(4), 0.0, math.log(2)], rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(maxprob_uncertainty(probs)[0], [0.75, 0.0, 0.5], rtol=1e-6)


def test_uncertainty_maps_computed_by_strips_equal_those_of_the_whole_probabilities(
        monkeypatch: pytest.MonkeyPatch) -> None:
    logits = np.random.default_rng(0).normal(0, 3, (21, 37, 53))
    probs = np.exp(logits) / np.exp(logits).sum(axis=0)
    probs[:, 5, 7] = np.eye(21)[4]  # certain: 0·log 0 counts 0
    probs = probs.astype(np.float32)
    p = probs.astype(np.float64)
    whole = {"entropy": -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=0),
             "maxprob": 1.0 - probs.max(axis=0)}
    monkeypatch.setattr(calibration, "_STRIP_VALUES", 21 * 53 * 3)  # 3 rows: 13 strips
    for kind, (values, _, _) in uncertainty_maps(probs).items():
        assert values.dtype == np.float32
        assert_close_to_scale(values, whole[kind], rtol=1e-6, err_msg=kind)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_temperature_is_written_to_a_new_file_leaving_the_original(
    make_checkpoint, tmp_path
) -> None:
    source = make_checkpoint("same")
    before = _digest(source)
    out = save_with_temperature(source, tmp_path / "calibrated.pt", 1.7, {"pixels": 10})
    assert _digest(source) == before
    ckpt = load_checkpoint(out)
    assert ckpt["temperature"] == 1.7 and ckpt["calibration"] == {"pixels": 10}
    assert "temperature" not in load_checkpoint(source)
    with pytest.raises(ValueError, match="positive"):
        save_with_temperature(source, tmp_path / "bad.pt", 0.0)
    assert not (tmp_path / "bad.pt").exists()


def test_segmenter_applies_the_stored_temperature(make_checkpoint, smooth_image,
                                                  tmp_path) -> None:
    raw = Segmenter.from_checkpoint(make_checkpoint("same"))
    hot = Segmenter.from_checkpoint(
        save_with_temperature(make_checkpoint("same"), tmp_path / "t.pt", 2.0))
    assert hot.temperature == 2.0 and hot.describe()["temperature"] == 2.0
    x = raw.preprocess(smooth_image)
    np.testing.assert_allclose(hot.logits(x).numpy(), raw.logits(x).numpy() / 2.0, rtol=1e-6,
                               atol=1e-6)
    a = raw.predict(smooth_image, return_probs=True)
    b = hot.predict(smooth_image, return_probs=True)
    np.testing.assert_array_equal(a.label, b.label)  # a temperature never changes labels
    expected = torch.from_numpy(raw.logits(x).numpy()[0] / 2.0).softmax(0).numpy()
    np.testing.assert_allclose(b.probs, expected, rtol=1e-5, atol=1e-7)


def test_predict_writes_uncertainty_maps_with_the_stored_temperature(
    make_checkpoint, smooth_image, tmp_path
) -> None:
    Image.fromarray(smooth_image).save(tmp_path / "x.png")
    checkpoint = save_with_temperature(make_checkpoint("same"), tmp_path / "t.pt", 0.5)
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(checkpoint), str(tmp_path / "x.png"), "--out",
               str(out), "--uncertainty-kind", "both", "--probs", "--no-progress"])
    assert rc == 0
    for kind in ("entropy", "maxprob"):
        with Image.open(out / f"x_uncertainty_{kind}.png") as img:
            assert img.mode == "RGB" and img.size[0] > 64 and img.size[1] > 48  # bar, title
    sharpened = Segmenter.from_checkpoint(checkpoint).predict(smooth_image, return_probs=True)
    with np.load(out / "x_probs.npz") as npz:
        np.testing.assert_allclose(npz["probs"], sharpened.probs, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(npz["entropy"], entropy(sharpened.probs), rtol=1e-4,
                                   atol=1e-6)
        np.testing.assert_allclose(npz["maxprob_uncertainty"],
                                   maxprob_uncertainty(sharpened.probs), rtol=1e-4, atol=1e-6)


def test_calibrate_command_fits_and_writes_a_new_checkpoint(tiny_checkpoint, tmp_path,
                                                            capsys) -> None:
    source = tiny_checkpoint(list(SYNTHETIC_CLASSES))
    before = _digest(source)
    out = tmp_path / "calibrated.pt"
    rc = main(["calibrate", "--checkpoint", str(source), "--dataset", "synthetic",
               "--num-images", "2", "--size", "48", "--max-pixels", "2000", "--device", "cpu",
               "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0 and "temperature" in printed and str(out) in printed
    assert _digest(source) == before, "the original checkpoint is never modified"
    ckpt = load_checkpoint(out)
    assert ckpt["temperature"] > 0 and ckpt["calibration"]["pixels"] == 2000
    assert ckpt["calibration"]["nll_after"] <= ckpt["calibration"]["nll_before"]


def test_calibrate_in_place_replaces_the_file_atomically(tiny_checkpoint, tmp_path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(tiny_checkpoint(list(SYNTHETIC_CLASSES)).read_bytes())
    rc = main(["calibrate", "--checkpoint", str(target), "--dataset", "synthetic",
               "--num-images", "1", "--size", "32", "--device", "cpu", "--in-place",
               "--no-progress"])
    assert rc == 0
    assert load_checkpoint(target)["temperature"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"], "no temporary left over"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.load
def test_export_folds_the_temperature_into_the_graph(make_checkpoint, tmp_path) -> None:
    from fcnseg.export import read_torchscript_metadata

    checkpoint = save_with_temperature(make_checkpoint("same"), tmp_path / "t.pt", 4.0)
    out = tmp_path / "model.ts"
    rc = main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--out",
               str(out), "--height", "32", "--width", "40"])
    assert rc == 0
    raw = Segmenter.from_checkpoint(make_checkpoint("same"), precision="fp32")
    pixels = torch.randint(0, 256, (1, 3, 32, 40), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8).float()  # exports take RGB pixel values
    exported = torch.jit.load(str(out))
    with torch.no_grad():
        np.testing.assert_allclose(exported(pixels).numpy(), raw.logits(pixels).numpy() / 4.0,
                                   rtol=1e-4, atol=1e-5)
    assert read_torchscript_metadata(out)["temperature"] == 4.0


@pytest.mark.parametrize(("logits", "labels", "bound"), [
    # All wrong: the NLL falls towards log 2 as T grows without end.
    ([[1.0, 0.0], [0.0, 2.0]], [1, 0], TEMPERATURE_RANGE[1]),
    # All right by a hair: the NLL falls towards 0 as T shrinks without end.
    ([[0.01, 0.0], [0.0, 0.01]], [0, 1], TEMPERATURE_RANGE[0]),
])
def test_fit_stays_in_range_when_the_optimum_is_at_infinity_or_zero(logits, labels,
                                                                     bound) -> None:
    fit = fit_temperature(torch.tensor(logits), torch.tensor(labels))
    assert fit.temperature == pytest.approx(bound, rel=1e-6)
    assert math.isfinite(fit.nll_after) and fit.nll_after < fit.nll_before


def test_calibrate_removes_the_temporaries_of_an_earlier_killed_run(tiny_checkpoint,
                                                                     tmp_path) -> None:
    import os
    import subprocess
    import sys
    import time

    target = tmp_path / "model.pt"
    target.write_bytes(tiny_checkpoint(list(SYNTHETIC_CLASSES)).read_bytes())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = [tmp_path / f".model.pt.{dead.pid}_k3j2h1g0.tmp",  # a run killed mid-write
            tmp_path / ".model.pt.x8_1ab2c.tmp"]  # one of an older version, hours ago
    for path in left:
        path.write_bytes(b"half a checkpoint")
        then = time.time() - 2 * 3600
        os.utime(path, (then, then))
    rc = main(["calibrate", "--checkpoint", str(target), "--dataset", "synthetic",
               "--num-images", "1", "--size", "32", "--device", "cpu", "--in-place",
               "--no-progress"])
    assert rc == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_calibrate_matches_the_same_classes_in_another_order_by_name(tiny_checkpoint, tmp_path,
                                                                      capsys) -> None:
    source = tiny_checkpoint(list(SYNTHETIC_CLASSES))
    shuffled = [SYNTHETIC_CLASSES[i] for i in (0, 4, 2, 6, 1, 5, 3)]
    fitted = {}
    for name, classes in (("same", list(SYNTHETIC_CLASSES)), ("shuffled", shuffled)):
        root = write_folder(tmp_path / name, classes)
        out = tmp_path / f"{name}.pt"
        assert main(["calibrate", "--checkpoint", str(source), "--dataset", "folder", "--root",
                     str(root), "--out", str(out), "--no-progress"]) == 0
        assert ("matched to them by name" in capsys.readouterr().out) == (name == "shuffled")
        fitted[name] = load_checkpoint(out)["temperature"]
    assert fitted["shuffled"] == fitted["same"]


def test_calibrate_refuses_other_class_names_in_one_line(tiny_checkpoint, tmp_path,
                                                         capsys) -> None:
    source = tiny_checkpoint(["background", "road", "car"])
    out = tmp_path / "out.pt"
    assert main(["calibrate", "--checkpoint", str(source), "--dataset", "synthetic",
                 "--num-images", "1", "--size", "32", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "[background, road, car]" in err
    assert not out.exists()


def test_calibrate_says_it_fits_on_the_split_evaluate_reports(tiny_checkpoint, tmp_path,
                                                              capsys) -> None:
    source = tiny_checkpoint(list(SYNTHETIC_CLASSES))
    data = ["--dataset", "synthetic", "--num-images", "1", "--size", "32", "--no-progress"]
    assert main(["calibrate", "--checkpoint", str(source), *data,
                 "--out", str(tmp_path / "a.pt")]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "evaluate" in line]
    assert len(notes) == 2  # where it was fitted, and what the file's temperature does
    assert "the val split of synthetic" in notes[0] and "--split NAME" in notes[0]
    assert main(["calibrate", "--checkpoint", str(source), *data, "--split", "train",
                 "--out", str(tmp_path / "b.pt")]) == 0
    assert "scores by default" not in capsys.readouterr().out


def test_a_temperature_that_raises_the_calibration_error_is_not_written(
        tiny_checkpoint, tmp_path, capsys, monkeypatch) -> None:
    from fcnseg.inference import calibration

    def too_sharp(logits, labels, **kwargs):  # a fit that makes every pixel "certain"
        return calibration.TemperatureFit(0.01, 1.0, 0.9, int(labels.numel()))

    monkeypatch.setattr(calibration, "fit_temperature", too_sharp)
    out = tmp_path / "calibrated.pt"
    assert main(["calibrate", "--checkpoint", str(tiny_checkpoint(list(SYNTHETIC_CLASSES))),
                 "--dataset", "synthetic", "--num-images", "1", "--size", "32",
                 "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "raised the expected calibration error" in printed
    assert f"wrote {out} with temperature 1" in printed
    ckpt = load_checkpoint(out)
    assert ckpt["temperature"] == 1.0
    assert ckpt["calibration"]["temperature"] == 0.01
    assert ckpt["calibration"]["ece_after"] > ckpt["calibration"]["ece_before"]


def test_calibrate_refuses_an_out_it_cannot_write_before_the_fit(
        tiny_checkpoint, tmp_path, capsys, monkeypatch) -> None:
    import fcnseg.cli.calibrate as calibrate_cli

    monkeypatch.setattr(calibrate_cli, "calibrate_checkpoint",
                        lambda *a, **k: pytest.fail("fitted before checking --out"))
    (tmp_path / "a_file").write_text("not a folder")
    out = tmp_path / "a_file" / "calibrated.pt"
    assert main(["calibrate", "--checkpoint", str(tiny_checkpoint(list(SYNTHETIC_CLASSES))),
                 "--dataset", "synthetic", "--num-images", "1", "--size", "32",
                 "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"fcnseg calibrate: error: --out {out}: ")
    assert len(err.splitlines()) == 1


def test_calibrate_refuses_the_cityscapes_test_split_whose_labels_are_withheld(
        tiny_checkpoint, tmp_path, capsys) -> None:
    from fcnseg.data.cityscapes import CITYSCAPES_CLASSES

    for kind, suffix in (("leftImg8bit", "leftImg8bit"), ("gtFine", "gtFine_labelIds")):
        folder = tmp_path / "cs" / kind / "test" / "berlin"
        folder.mkdir(parents=True)
        picture = Image.new("RGB" if kind == "leftImg8bit" else "L", (32, 32))  # masks all void
        picture.save(folder / f"berlin_000000_000019_{suffix}.png")
    out = tmp_path / "out.pt"
    assert main(["calibrate", "--checkpoint", str(tiny_checkpoint(list(CITYSCAPES_CLASSES))),
                 "--dataset", "cityscapes", "--root", str(tmp_path / "cs"), "--split", "test",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "test labels are withheld (all void)" in err
    assert not out.exists()


def test_calibrate_reads_the_nyud_modalities_the_model_takes(tmp_path) -> None:
    write_nyud(tmp_path, {"val": ["1"]}, size=(32, 32))
    ckpt = save_checkpoint(tmp_path / "m.pt", tiny_task_model("nyud_fcn32s_color_hha"),
                           class_names=list(NYUD_CLASSES), palette=voc_palette())
    result = calibrate_checkpoint(ckpt, {"name": "nyud", "root": str(tmp_path)},
                                  tmp_path / "cal.pt")
    assert result["dataset"]["modalities"] == ["color", "hha"]
    assert (tmp_path / "cal.pt").is_file()
