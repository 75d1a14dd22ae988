"""``fcnseg predict``: outputs per input, bad inputs reported and skipped, unique names."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from floats import assert_close_to_scale, assert_labels_match
from PIL import Image

from fcnseg.cli.main import main
from fcnseg.inference.visualize import read_label_png


@pytest.fixture
def images(tmp_path, smooth_image):
    """A folder with a subfolder, a same-stem pair (x.png, x.jpg) and an unreadable file."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(smooth_image).save(root / "x.png")
    Image.fromarray(smooth_image[:40, :48]).save(root / "x.jpg", quality=95)
    Image.fromarray(np.ascontiguousarray(smooth_image[::-1])).save(root / "sub" / "x.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def test_writes_every_output_and_skips_the_unreadable_input(
    make_checkpoint, segmenter, images, tmp_path, capsys, class_names
) -> None:
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(images),
               "--out", str(out), "--heatmaps", "cat,3", "--probs", "--no-progress",
               "--precision", "fp32"])
    err = capsys.readouterr().err
    assert rc == 1, "a failed input must make the exit status non-zero"
    assert "broken.png" in err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    # the list of what was written, for later runs, and of the inputs that failed
    expected = [".fcnseg-outputs.txt", "failed.txt"]
    for name in ("sub/x", "x_jpg", "x_png"):
        expected += [f"{name}_heatmap_cat.png", f"{name}_heatmap_potted_plant.png",
                     f"{name}_label.png", f"{name}_overlay.png", f"{name}_probs.npz"]
    assert written == sorted(expected)

    pred = segmenter.predict(images / "x.png", return_probs=True)
    # The command's batches and Segmenter.predict run different kernels: equal up to rounding.
    assert_labels_match(read_label_png(out / "x_png_label.png"), pred.label, pred.probs)
    with Image.open(out / "x_png_overlay.png") as overlay:
        assert overlay.mode == "RGB"
        assert overlay.size[0] > 64 and overlay.size[1] >= 48, "a legend goes beside the image"
    with Image.open(out / "x_jpg_label.png") as label:
        assert label.size == (48, 40)
    with np.load(out / "x_png_probs.npz") as npz:
        assert_close_to_scale(npz["probs"], pred.probs)
        assert list(npz["class_names"]) == class_names


def test_heatmaps_present_and_globs(make_checkpoint, segmenter, images, tmp_path,
                                    class_names) -> None:
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(images / "*.png"),
               "--out", str(out), "--heatmaps-present", "--no-progress"])
    assert rc == 1  # broken.png matches the glob too
    present = np.unique(segmenter.predict(images / "x.png").label)
    names = [class_names[c].replace(" ", "_") for c in present]
    heatmaps = sorted(p.name for p in out.glob("x_heatmap_*.png"))
    assert heatmaps == sorted(f"x_heatmap_{n}.png" for n in names)


def test_all_good_inputs_exit_zero_with_tta_and_sliding_window(
    make_checkpoint, images, tmp_path
) -> None:
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(images / "x.png"),
               str(images / "sub"), "--out", str(out), "--sliding-window", "32",
               "--tta-flip", "--tta-scales", "1,0.75", "--batch-size", "2", "--no-progress"])
    assert rc == 0
    # Both inputs are called "x": the parent folder keeps their outputs apart.
    labels = sorted(p.relative_to(out).as_posix() for p in out.rglob("*_label.png"))
    assert labels == ["in/x_png_label.png", "sub/x_png_label.png"]


def test_unknown_heatmap_class_is_a_clear_error(make_checkpoint, images, tmp_path,
                                                capsys) -> None:
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(images / "x.png"),
               "--out", str(tmp_path / "out"), "--heatmaps", "zebra", "--no-progress"])
    assert rc == 2
    assert "unknown class 'zebra'" in capsys.readouterr().err


def test_missing_input_is_reported_and_the_rest_written(make_checkpoint, images, tmp_path,
                                                        capsys) -> None:
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(images / "x.png"),
               str(tmp_path / "nope.png"), "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 1
    assert "nope.png: no such file" in captured.err
    assert "wrote outputs for 1 of 2 input(s)" in captured.out and "1 failed" in captured.out
    assert (out / "x_label.png").is_file()


def test_an_output_never_overwrites_an_input(make_checkpoint, smooth_image, tmp_path,
                                             capsys) -> None:
    # --out is the input folder, which holds a ground-truth mask named like an output.
    root = tmp_path / "photos"
    root.mkdir()
    Image.fromarray(smooth_image).save(root / "x.png")
    truth = np.zeros(smooth_image.shape[:2], dtype=np.uint8)
    Image.fromarray(truth).save(root / "x_label.png")
    before = (root / "x_label.png").read_bytes()
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(root),
               "--out", str(root), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert (root / "x_label.png").read_bytes() == before, "an input was overwritten"
    assert "would overwrite the input" in err and "x_label.png" in err
    assert (root / "x_label_label.png").is_file(), "the other input's outputs are written"


def test_an_input_whose_decoder_raises_an_unusual_error_is_skipped(
    make_checkpoint, smooth_image, tmp_path, capsys
) -> None:
    root = tmp_path / "in"
    root.mkdir()
    Image.fromarray(smooth_image).save(root / "good.png")
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="DDS")
    dds = bytearray(buf.getvalue())
    dds[80:84] = (130).to_bytes(4, "little")  # unknown pixel-format flags: NotImplementedError
    (root / "odd.png").write_bytes(bytes(dds))
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(root / "odd.png"),
               str(root / "good.png"), "--out", str(out), "--batch-size", "1", "--no-progress"])
    assert rc == 1
    assert "odd.png" in capsys.readouterr().err
    assert (out / "good_label.png").is_file()


def test_colliding_names_from_parent_folders_stay_inside_out(make_checkpoint, smooth_image,
                                                             tmp_path, monkeypatch) -> None:
    # "../x.png" and "x.png" collide; the parent folder that tells them apart must be a real
    # name, not "..", or the outputs would land outside --out.
    (tmp_path / "work").mkdir()
    Image.fromarray(smooth_image).save(tmp_path / "x.png")
    Image.fromarray(smooth_image).save(tmp_path / "work" / "x.png")
    monkeypatch.chdir(tmp_path / "work")
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), "../x.png", "x.png",
               "--out", "out", "--no-progress"])
    assert rc == 0
    out = tmp_path / "work" / "out"
    labels = sorted(p.relative_to(out).as_posix() for p in out.rglob("*_label.png"))
    assert labels == sorted([f"{tmp_path.name}/x_png_label.png", "work/x_png_label.png"])
    assert not list(tmp_path.glob("*_label.png"))


def test_a_second_run_into_the_input_folder_leaves_its_own_outputs_alone(
    make_checkpoint, smooth_image, tmp_path, capsys
) -> None:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(smooth_image).save(root / "x.png")
    Image.fromarray(smooth_image).save(root / "sub" / "y.png")
    argv = ["predict", "--checkpoint", str(make_checkpoint("same")), str(root), "--out",
            str(root), "--heatmaps", "cat", "--probs", "--no-progress"]
    assert main(argv) == 0
    first = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.*"))
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    assert "wrote outputs for 2 of 2" in capsys.readouterr().out
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.*")) == first
    # Named one by one or by a pattern, they are not segmented either.
    assert main(argv[:3] + [str(root / "*.png"), *argv[4:]]) == 0


@contextlib.contextmanager
def _read_only_folder(folder: Path) -> Iterator[Path]:
    """``folder`` as a read-only file system while in use (one refuses root too, where file
    permissions would not); the test is skipped where a tmpfs cannot be mounted."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_output_location_is_a_one_line_error(make_checkpoint, images, tmp_path,
                                                         capsys) -> None:
    with _read_only_folder(tmp_path / "readonly") as readonly:
        rc = main(["predict", "--checkpoint", str(make_checkpoint("same")),
                   str(images / "x.png"), "--out", str(readonly / "preds"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{readonly / 'preds'}: cannot create it: Read-only file system" in err


def test_a_read_only_output_folder_is_one_line_before_any_image(make_checkpoint, images,
                                                                tmp_path, capsys) -> None:
    with _read_only_folder(tmp_path / "readonly") as readonly:
        rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(images),
                   "--out", str(readonly), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == (f"fcnseg predict: error: output folder {readonly}: cannot write in it "
                   f"(read-only, or no write permission): give another folder\n")


def test_a_file_of_an_outputs_name_that_predict_did_not_write_is_kept(make_checkpoint, images,
                                                                      tmp_path, capsys) -> None:
    out = tmp_path / "preds"
    out.mkdir()
    (out / "x_overlay.png").write_text("notes of mine")
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(images / "x.png"),
               "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert (out / "x_overlay.png").read_text() == "notes of mine"
    assert sorted(p.name for p in out.iterdir()) == ["x_overlay.png"], "nothing is written"
    assert err.count("\n") == 1
    assert f"1 file(s) named as its outputs, the first {out / 'x_overlay.png'}, " in err


@pytest.fixture
def listless_out(make_checkpoint, smooth_image, tmp_path) -> tuple[list[str], Path]:
    """A run's arguments on 4 images, its --out written by a release that kept no output list."""
    root = tmp_path / "in"
    root.mkdir()
    for k in range(4):
        Image.fromarray(np.roll(smooth_image, 5 * k, axis=1)).save(root / f"img{k}.png")
    out = tmp_path / "out"
    args = ["predict", "--checkpoint", str(make_checkpoint("same")), str(root), "--out", str(out),
            "--no-progress"]
    assert main(args) == 0
    (out / ".fcnseg-outputs.txt").unlink()
    return args, out


def test_outputs_kept_in_a_folder_without_the_output_list_are_one_line(listless_out,
                                                                       capsys) -> None:
    args, out = listless_out
    capsys.readouterr()
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2
    assert err == (f"fcnseg predict: error: --out: 8 file(s) named as its outputs, the first "
                   f"{out / 'img0_label.png'}, were not written by fcnseg predict (not in its "
                   f".fcnseg-outputs.txt: files of yours, or outputs of an earlier fcnseg that "
                   f"kept no such list); none is replaced: move them away or choose another "
                   f"--out\n")
    assert not (out / ".fcnseg-outputs.txt").exists(), "nothing is written"


def test_outputs_kept_in_a_folder_without_the_output_list_segment_nothing(listless_out,
                                                                          monkeypatch) -> None:
    from fcnseg.inference.segmenter import Segmenter

    args, _ = listless_out
    segmented: list[str] = []

    def counted(method: str) -> Callable[..., object]:
        run = getattr(Segmenter, method)

        def call(*a, **k):
            segmented.append(method)
            return run(*a, **k)
        return call

    for method in ("predict", "predict_batch"):
        monkeypatch.setattr(Segmenter, method, counted(method))
    main(args)
    assert segmented == []


def test_an_output_location_below_a_file_is_a_one_line_error(make_checkpoint, images, tmp_path,
                                                            capsys) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(images / "x.png"),
               "--out", str(tmp_path / "notes.txt" / "preds"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "notes.txt" in err and "Not a directory" in err


def test_heatmap_classes_before_the_inputs_leave_the_inputs_alone(make_checkpoint, images,
                                                                   tmp_path) -> None:
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), "--heatmaps", "cat,dog",
               str(images / "x.png"), "--out", str(out), "--no-progress"])
    assert rc == 0
    assert sorted(p.name for p in out.glob("x_heatmap_*.png")) == ["x_heatmap_cat.png",
                                                                  "x_heatmap_dog.png"]


def test_no_input_gives_a_hint(make_checkpoint, tmp_path, capsys) -> None:
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), "--heatmaps", "cat",
               "--out", str(tmp_path / "out"), "--no-progress"])
    assert rc == 2
    assert "no INPUT given" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_only_missing_inputs_is_an_error_that_names_them(make_checkpoint, tmp_path,
                                                         capsys) -> None:
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(tmp_path / "a.png"),
               "--out", str(tmp_path / "out"), "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 2
    assert f"nothing to segment: {tmp_path / 'a.png'}: no such file or folder" in captured.err
    assert "wrote outputs" not in captured.out


def test_a_postscript_file_named_jpg_is_refused_in_one_line_without_running_ghostscript(
    make_checkpoint, images, tmp_path, fake_ghostscript, postscript_bytes, capsys
) -> None:
    (tmp_path / "photo.jpg").write_bytes(postscript_bytes)
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(tmp_path / "photo.jpg"),
               str(images / "x.png"), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert not fake_ghostscript.exists(), "Ghostscript was run on an untrusted file"
    lines = [line for line in err.splitlines() if "photo.jpg" in line]
    assert len(lines) == 1 and "a PostScript/EPS file" in lines[0]
    assert (out / "x_label.png").is_file(), "the other input is still segmented"


@pytest.mark.skipif(sys.platform != "linux",
                    reason="file names of arbitrary bytes are a Linux matter")
@pytest.mark.parametrize("given", ["folder", "file"])
def test_an_input_whose_name_is_not_utf8_is_segmented_under_a_safe_name(
    make_checkpoint, smooth_image, tmp_path, capsys, given
) -> None:
    root = tmp_path / "in"
    root.mkdir()
    latin1 = os.path.join(os.fsencode(root), b"caf\xe9.png")  # "café" from an old Latin-1 disk
    Image.fromarray(smooth_image).save(latin1)
    out = tmp_path / "out"
    spec = str(root) if given == "folder" else os.fsdecode(latin1)
    assert main(["predict", "--checkpoint", str(make_checkpoint("same")), spec,
                 "--out", str(out), "--no-progress"]) == 0
    assert "1 of 1 input(s)" in capsys.readouterr().out
    assert (out / "caf%E9_label.png").is_file() and (out / "caf%E9_overlay.png").is_file()
    manifest = (out / ".fcnseg-outputs.txt").read_text(encoding="utf-8")
    assert "caf%E9_label.png" in manifest.splitlines()


@pytest.mark.parametrize("tiling,named", [(["--overlap", "300"], "--overlap"),
                                          (["--tile", "8"], "--tile")])
def test_tile_and_overlap_errors_name_the_option_as_typed(tiling, named, tmp_path,
                                                          capsys) -> None:
    # Checked before the checkpoint or any input is read.
    assert main(["predict", "--checkpoint", str(tmp_path / "none.pt"), "x.tif", "--out",
                 str(tmp_path / "out"), *tiling]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{named} must" in err


def test_the_summary_line_says_the_precision_auto_chose(make_checkpoint, smooth_image,
                                                        tmp_path, capsys) -> None:
    from fcnseg.utils.hardware import auto_precision

    Image.fromarray(smooth_image).save(tmp_path / "x.png")
    assert main(["predict", "--checkpoint", str(make_checkpoint("same")),
                 str(tmp_path / "x.png"), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    chosen = auto_precision("cpu")
    assert summary.startswith("wrote outputs for 1 of 1")
    assert f", precision {chosen}, chosen automatically on this CPU" in summary
    assert ("--precision fp32 for float32" in summary) == (chosen != "fp32")


def test_the_speed_line_counts_only_the_images_written(make_checkpoint, images, tmp_path,
                                                       capsys) -> None:
    # stderr is no terminal here: the closing line of the progress says the speed
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(images),
               "--out", str(tmp_path / "out"), "--precision", "fp32"])
    assert rc == 1  # broken.png failed
    speed = [line for line in capsys.readouterr().err.splitlines() if " images/s)" in line]
    assert len(speed) == 1 and speed[0].startswith("predict: 3 images in "), speed


def test_a_folder_names_each_photo_it_cannot_segment_and_counts_it(
        make_checkpoint, smooth_image, tmp_path, capsys) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(smooth_image).save(photos / "IMG_0042.jpg")
    (photos / "IMG_0071.heic").write_bytes(
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200))
    (photos / "poster.psd").write_bytes(b"8BPS" + bytes(100))
    (photos / "notes.txt").write_text("not a picture, not an input\n")
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(photos),
               "--out", str(tmp_path / "out"), "--no-progress", "--precision", "fp32"])
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).splitlines()
    assert rc == 1, "a photo that was not segmented makes the exit status non-zero"
    heic = [x for x in lines if "IMG_0071.heic" in x]
    assert len(heic) == 1 and "HEIC" in heic[0] and "convert it to JPEG" in heic[0]
    psd = [x for x in lines if "poster.psd" in x]
    assert len(psd) == 1 and "Photoshop" in psd[0] and "predict: note: " in psd[0]
    assert not any("notes.txt" in x for x in lines)
    assert any("wrote outputs for 1 of 2 input(s)" in x and "1 failed" in x for x in lines)


def test_a_cameras_raw_files_beside_its_jpegs_are_one_note_not_failures(
        make_checkpoint, smooth_image, tmp_path, capsys) -> None:
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    for i in range(3):
        Image.fromarray(smooth_image).save(shoot / f"IMG_{i:04d}.JPG")
        # raw files begin as TIFFs do: never read, so never misread
        (shoot / f"IMG_{i:04d}.CR2").write_bytes(b"II*\x00" + bytes(100))
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(shoot),
               "--out", str(tmp_path / "out"), "--no-progress", "--precision", "fp32"])
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).splitlines()
    assert rc == 0
    raw = [x for x in lines if ".CR2" in x]
    assert len(raw) == 1 and "predict: note: " in raw[0] and "3 files" in raw[0]
    assert "camera raw" in raw[0] and "IMG_0000.CR2" in raw[0]
    assert any("wrote outputs for 3 of 3 input(s)" in x for x in lines)


def test_a_dng_given_by_name_is_refused_in_one_line_not_segmented(
        make_checkpoint, tmp_path, capsys) -> None:
    import tifffile

    dng = tmp_path / "DJI_0000.DNG"
    tifffile.imwrite(dng, np.full((24, 32), 3000, np.uint16),
                     extratags=[(50706, "B", 4, (1, 4, 0, 0), True)])
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(dng),
               "--out", str(tmp_path / "out"), "--no-progress", "--precision", "fp32"])
    captured = capsys.readouterr()
    lines = [x for x in (captured.out + captured.err).splitlines() if "DJI_0000.DNG" in x]
    assert rc == 1
    assert len(lines) == 1 and "a camera raw file (DNG)" in lines[0]
    assert "from the raw converter" in lines[0]
    assert not any((tmp_path / "out").glob("DJI_0000*"))


def test_a_picture_over_max_pixels_is_one_line_naming_the_option(
        make_checkpoint, smooth_image, tmp_path, capsys) -> None:
    photo = tmp_path / "mosaic.jpg"
    Image.fromarray(smooth_image).save(photo)
    h, w = smooth_image.shape[:2]
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(photo),
               "--out", str(tmp_path / "out"), "--no-progress", "--precision", "fp32",
               "--max-pixels", str(h * w - 1)])
    captured = capsys.readouterr()
    lines = [x for x in (captured.out + captured.err).splitlines() if "mosaic.jpg" in x]
    assert rc == 1
    assert len(lines) == 1 and f"{w}×{h} = {h * w} pixels is more than the limit" in lines[0]
    assert "fcnseg predict --max-pixels PIXELS" in lines[0] and "bomb?" not in lines[0]


def test_a_precision_asked_of_an_exported_model_is_said_not_to_apply(make_checkpoint,
                                                                     smooth_image, tmp_path,
                                                                     capsys) -> None:
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    model = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(make_checkpoint("same")), "--format", "onnx",
                 "--out", str(model), "--height", "32", "--width", "32"]) == 0
    Image.fromarray(smooth_image).save(tmp_path / "x.png")
    for asked, note in (([], False), (["--precision", "bf16"], True)):
        capsys.readouterr()
        assert main(["predict", "--checkpoint", str(model), str(tmp_path / "x.png"), "--out",
                     str(tmp_path / "out"), "--no-progress", *asked]) == 0
        summary = capsys.readouterr().out.strip().splitlines()[-1]
        assert ", precision fp32 (onnxruntime)" in summary
        assert ("; --precision bf16 does not apply to it" in summary) is note


def test_no_overlay_writes_the_label_pngs_alone_and_they_count_as_complete(
        make_checkpoint, smooth_image, tmp_path, capsys) -> None:
    Image.fromarray(smooth_image).save(tmp_path / "x.png")
    out = tmp_path / "out"
    for extra in ([], ["--skip-complete"]):
        assert main(["predict", "--checkpoint", str(make_checkpoint("same")),
                     str(tmp_path / "x.png"), "--out", str(out), "--no-progress",
                     "--no-overlay", *extra]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["x_label.png"]
    assert "1 complete already, skipped" in capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["predict", "--checkpoint", str(make_checkpoint("same")),
                 str(tmp_path / "x.png"), "--out", str(out), "--no-progress",
                 "--skip-complete"]) == 0  # overlays asked now: predicted again
    assert (out / "x_overlay.png").is_file()


def test_an_ignore_mask_leaves_the_hood_out_of_the_labels_and_the_overlay(
    make_checkpoint, smooth_image, tmp_path
) -> None:
    Image.fromarray(smooth_image).save(tmp_path / "frame.png")
    hood = np.full(smooth_image.shape[:2], 255, np.uint8)
    hood[-10:] = 0
    Image.fromarray(hood).save(tmp_path / "hood.png")
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(make_checkpoint("same")),
                 str(tmp_path / "frame.png"), "--out", str(out), "--no-progress",
                 "--ignore-mask", str(tmp_path / "hood.png"), "--no-legend",
                 "--alpha", "1"]) == 0
    label = read_label_png(out / "frame_label.png")
    assert (label[-10:] == 255).all() and (label[:-10] != 255).all()
    overlay = np.asarray(Image.open(out / "frame_overlay.png").convert("RGB"))
    np.testing.assert_array_equal(overlay[-10:], smooth_image[-10:])  # the photo's colours


def test_an_ignore_mask_of_another_size_than_the_first_image_stops_in_one_line(
    make_checkpoint, smooth_image, tmp_path, capsys
) -> None:
    (tmp_path / "frames").mkdir()
    for k in range(3):
        Image.fromarray(smooth_image).save(tmp_path / "frames" / f"f{k}.png")
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(tmp_path / "hood.png")
    assert main(["predict", "--checkpoint", str(make_checkpoint("same")),
                 str(tmp_path / "frames"), "--out", str(tmp_path / "out"), "--no-progress",
                 "--ignore-mask", str(tmp_path / "hood.png")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"frames{os.sep}f0.png: ignore mask {tmp_path / 'hood.png'} is 30×30 pixels" in line


def test_an_unreadable_ignore_mask_is_refused_naming_the_option(
    make_checkpoint, smooth_image, tmp_path, capsys
) -> None:
    Image.fromarray(smooth_image).save(tmp_path / "frame.png")
    (tmp_path / "hood.png").write_bytes(b"not an image")
    assert main(["predict", "--checkpoint", str(make_checkpoint("same")),
                 str(tmp_path / "frame.png"), "--out", str(tmp_path / "out"), "--no-progress",
                 "--ignore-mask", str(tmp_path / "hood.png")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"fcnseg predict: error: --ignore-mask {tmp_path / 'hood.png'}: ")


def test_label_ids_cityscapes_writes_label_ids_named_as_the_benchmark_takes_them(
    tiny_checkpoint, smooth_image, tmp_path
) -> None:
    from fcnseg.data.cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_LABEL_IDS

    test = tmp_path / "cs" / "leftImg8bit" / "test"
    (test / "aachen").mkdir(parents=True)
    Image.fromarray(smooth_image).save(test / "aachen" / "aachen_000000_000019_leftImg8bit.png")
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(tiny_checkpoint(list(CITYSCAPES_CLASSES))),
                 str(test), "--out", str(out), "--no-progress", "--no-overlay",
                 "--label-ids", "cityscapes"]) == 0
    train_ids = read_label_png(out / "aachen" / "aachen_000000_000019_leftImg8bit_label.png")
    with Image.open(out / "label_ids" / "aachen" / "aachen_000000_000019_leftImg8bit.png") as f:
        assert f.mode == "L"
        label_ids = np.asarray(f)
    np.testing.assert_array_equal(label_ids, np.array(CITYSCAPES_LABEL_IDS)[train_ids])


def test_a_label_ids_file_never_overwrites_an_input(tiny_checkpoint, smooth_image, tmp_path,
                                                   capsys) -> None:
    from fcnseg.data.cityscapes import CITYSCAPES_CLASSES

    out = tmp_path / "out"
    (out / "label_ids").mkdir(parents=True)
    Image.fromarray(smooth_image).save(out / "label_ids" / "x.png")
    before = (out / "label_ids" / "x.png").read_bytes()
    assert main(["predict", "--checkpoint", str(tiny_checkpoint(list(CITYSCAPES_CLASSES))),
                 str(out / "label_ids"), "--out", str(out), "--no-progress", "--no-overlay",
                 "--label-ids", "cityscapes"]) == 1
    assert (out / "label_ids" / "x.png").read_bytes() == before, "an input was overwritten"
    assert "would overwrite the input" in capsys.readouterr().err


def test_label_ids_of_a_model_of_other_classes_are_refused(make_checkpoint, smooth_image,
                                                            tmp_path, capsys) -> None:
    Image.fromarray(smooth_image).save(tmp_path / "x.png")
    checkpoint = make_checkpoint("same")
    assert main(["predict", "--checkpoint", str(checkpoint), str(tmp_path / "x.png"), "--out",
                 str(tmp_path / "out"), "--label-ids", "cityscapes"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"fcnseg predict: error: --label-ids cityscapes: {checkpoint} has other classes "
        f"(background, cat, dog ...) than cityscapes's 19 (road, sidewalk, building ...)")
