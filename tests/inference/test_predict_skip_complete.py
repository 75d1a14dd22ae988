"""``fcnseg predict --skip-complete`` on images: outputs count as complete only when the folder's
manifest records that this model, with these settings, wrote them."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest
from PIL import Image

from fcnseg.cli.main import main
from fcnseg.inference.files import MANIFEST_NAME


@pytest.fixture
def photos(tmp_path, smooth_image):
    root = tmp_path / "photos"
    root.mkdir()
    Image.fromarray(smooth_image).save(root / "a.png")
    Image.fromarray(np.ascontiguousarray(smooth_image[::-1])).save(root / "b.png")
    return root


@pytest.fixture
def checkpoint(make_checkpoint, tmp_path):
    """A checkpoint at a path of its own (so that a test may train it again)."""
    path = tmp_path / "best.pt"
    shutil.copy(make_checkpoint("same"), path)
    return path


def predict(capsys, checkpoint, photos, out, *extra: str) -> tuple[str, list[str]]:
    """The summary line and what was said on stderr of one ``fcnseg predict`` run."""
    rc = main(["predict", "--checkpoint", str(checkpoint), str(photos), "--out", str(out),
               "--no-progress", "--precision", "fp32", *extra])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return captured.out.strip().splitlines()[-1], captured.err.strip().splitlines()


def test_the_same_model_and_settings_skip_the_images(capsys, checkpoint, photos, tmp_path):
    out = tmp_path / "out"
    predict(capsys, checkpoint, photos, out)
    summary, said = predict(capsys, checkpoint, photos, out, "--skip-complete")
    assert summary == (f"wrote outputs for 0 of 2 input(s) to {out}, precision fp32; "
                       f"2 complete already, skipped")
    assert not [line for line in said if "predicted again" in line]


def test_a_checkpoint_trained_again_at_the_same_path_predicts_again(
        capsys, checkpoint, photos, tiny_checkpoint, class_names, tmp_path):
    out = tmp_path / "out"
    predict(capsys, checkpoint, photos, out)
    shutil.copy(tiny_checkpoint(class_names, "same", score_std=0.07), checkpoint)  # new weights
    summary, said = predict(capsys, checkpoint, photos, out, "--skip-complete")
    assert summary == f"wrote outputs for 2 of 2 input(s) to {out}, precision fp32"
    again = [line for line in said if "predicted again" in line]
    assert again == [f"fcnseg predict: {out}: the outputs of 2 image(s) were written by another "
                     f"model or with other settings; predicted again"]
    # now recorded as this model's
    summary, _ = predict(capsys, checkpoint, photos, out, "--skip-complete")
    assert summary.endswith("2 complete already, skipped")


@pytest.mark.parametrize("changed", [["--alpha", "0.3"], ["--tta-flip"]],
                         ids=["overlay-opacity", "test-time-flip"])
def test_other_settings_predict_again(capsys, checkpoint, photos, tmp_path, changed):
    out = tmp_path / "out"
    predict(capsys, checkpoint, photos, out)
    summary, said = predict(capsys, checkpoint, photos, out, "--skip-complete", *changed)
    assert summary == f"wrote outputs for 2 of 2 input(s) to {out}, precision fp32"
    assert len([line for line in said if "other settings; predicted again" in line]) == 1


def test_a_folder_written_without_a_record_predicts_again(capsys, checkpoint, photos,
                                                          tmp_path):
    out = tmp_path / "out"
    predict(capsys, checkpoint, photos, out)
    manifest = out / MANIFEST_NAME  # as an older fcnseg wrote it: the file names alone
    manifest.write_text("".join(f"{line}\n" for line in manifest.read_text().splitlines()
                                if not line.startswith("\t")))
    summary, said = predict(capsys, checkpoint, photos, out, "--skip-complete")
    assert summary == f"wrote outputs for 2 of 2 input(s) to {out}, precision fp32"
    again = [line for line in said if "predicted again" in line]
    assert len(again) == 1 and "no record of the model" in again[0]


def test_a_model_given_on_another_path_with_the_same_weights_skips(
        capsys, checkpoint, photos, tmp_path):
    out = tmp_path / "out"
    predict(capsys, checkpoint, photos, out)
    copy = tmp_path / "elsewhere" / "model.pt"
    copy.parent.mkdir()
    shutil.copy(checkpoint, copy)
    summary, _ = predict(capsys, copy, photos, out, "--skip-complete")
    assert summary.endswith("2 complete already, skipped")


def written_as_earlier_versions_did(monkeypatch) -> None:
    """``fcnseg predict`` identifies the model by its weights as earlier versions did (not by
    its checkpoint file)."""
    import fcnseg.cli.predict as predict_cli
    from fcnseg.inference.rasters import model_identity

    monkeypatch.setattr(predict_cli, "model_identity",
                        lambda seg, as_loaded=False: model_identity(seg))


def test_outputs_of_an_earlier_version_by_the_same_model_skip(capsys, checkpoint, photos,
                                                              tmp_path, monkeypatch):
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        written_as_earlier_versions_did(m)
        predict(capsys, checkpoint, photos, out)
    summary, said = predict(capsys, checkpoint, photos, out, "--skip-complete")
    assert summary.endswith("2 complete already, skipped")
    assert not [line for line in said if "predicted again" in line]


def test_outputs_of_an_earlier_version_by_another_model_predict_again(
        capsys, checkpoint, photos, tiny_checkpoint, class_names, tmp_path, monkeypatch):
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        written_as_earlier_versions_did(m)
        predict(capsys, tiny_checkpoint(class_names, "same", score_std=0.07), photos, out)
    summary, said = predict(capsys, checkpoint, photos, out, "--skip-complete")
    assert summary == f"wrote outputs for 2 of 2 input(s) to {out}, precision fp32"
    assert len([line for line in said if "another model" in line]) == 1


def test_the_weights_are_hashed_only_for_outputs_recorded_under_another_identity(
        capsys, checkpoint, photos, tmp_path, monkeypatch):
    import fcnseg.cli.predict as predict_cli

    real, by_weights = predict_cli.model_identity, []

    def counted(seg, as_loaded=False):
        by_weights.extend([] if as_loaded else [1])
        return real(seg, as_loaded=as_loaded)

    monkeypatch.setattr(predict_cli, "model_identity", counted)
    out = tmp_path / "out"
    predict(capsys, checkpoint, photos, out, "--skip-complete")
    summary, _ = predict(capsys, checkpoint, photos, out, "--skip-complete")
    assert summary.endswith("2 complete already, skipped")
    assert by_weights == []


def _stopped_while_writing(capsys, checkpoint, photos, out, monkeypatch, *extra: str) -> str:
    """The last line of a run of five images that SIGTERM stops as b.png is segmented, while
    a.png's outputs are still being written (held until b.png's begin)."""
    from fcnseg.inference import files as files_module
    from fcnseg.inference.segmenter import Segmenter

    for k, name in enumerate("cde"):
        shutil.copy(photos / ("a.png" if k % 2 else "b.png"), photos / f"{name}.png")
    segment, write, b_begun, calls = Segmenter.predict_batch, files_module.write_outputs, \
        threading.Event(), []

    def segmented(self, images, **kwargs):  # as `timeout` or Kubernetes stop a run
        calls.append(len(images))
        preds = segment(self, images, **kwargs)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return preds

    def written(files, *args, **kwargs):
        if files.label.name == "b_label.png":
            b_begun.set()
        elif files.label.name == "a_label.png":
            b_begun.wait(timeout=60)
        return write(files, *args, **kwargs)

    def unhandled(signum, frame):
        raise RuntimeError("SIGTERM not handled: the process would end silently")

    monkeypatch.setattr(Segmenter, "predict_batch", segmented)
    monkeypatch.setattr(files_module, "write_outputs", written)
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        rc = main(["predict", "--checkpoint", str(checkpoint), str(photos), "--out", str(out),
                   "--no-progress", "--precision", "fp32", "--batch-size", "1",
                   "--io-workers", "2", *extra])
    finally:
        signal.signal(signal.SIGTERM, previous)
        monkeypatch.undo()
    assert rc == 128 + signal.SIGTERM
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_a_run_stopped_by_sigterm_says_what_it_wrote_and_resumes(capsys, checkpoint, photos,
                                                                  tmp_path, monkeypatch):
    out = tmp_path / "out"
    said = _stopped_while_writing(capsys, checkpoint, photos, out, monkeypatch)
    assert said == (f"fcnseg predict: stopped by signal 15; wrote the outputs of 2 image(s) "
                    f"to {out}; run the same command with --skip-complete to write the rest")
    summary, lines = predict(capsys, checkpoint, photos, out, "--skip-complete")
    assert (summary, [line for line in lines if "predicted again" in line]) == (
        f"wrote outputs for 3 of 5 input(s) to {out}, precision fp32; 2 complete already, "
        f"skipped", [])


def test_a_run_stopped_by_sigterm_counts_the_images_it_says_it_wrote(
        capsys, checkpoint, photos, tmp_path, monkeypatch):
    out, counts = tmp_path / "out", tmp_path / "counts.csv"
    said = _stopped_while_writing(capsys, checkpoint, photos, out, monkeypatch,
                                  "--counts", str(counts))
    rows = [line.split(",")[0] for line in counts.read_text().splitlines()[1:]]
    assert (said.split("; ")[1], rows) == (
        "wrote the outputs of 2 image(s) to " + str(out), [str(photos / "a.png"),
                                                           str(photos / "b.png")])


def test_a_sigterm_while_the_model_loads_says_so_and_exits_by_it(capsys, checkpoint, photos,
                                                                 tmp_path, monkeypatch):
    import fcnseg.cli.predict as predict_cli

    def slow_loading(*args, **kwargs):  # the signal comes while the checkpoint is read
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler acts before this returns; the process would end silently
        raise AssertionError("the model was loaded in full")

    def unhandled(signum, frame):
        raise RuntimeError("SIGTERM not handled: the process would end silently")

    monkeypatch.setattr(predict_cli.Segmenter, "from_checkpoint", slow_loading)
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        out = tmp_path / "out"
        rc = main(["predict", "--checkpoint", str(checkpoint), str(photos), "--out", str(out),
                   "--no-progress"])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert (rc, capsys.readouterr().err.strip().splitlines()) == (128 + signal.SIGTERM, [
        f"fcnseg predict: stopped by signal 15; wrote the outputs of 0 image(s) to {out}; "
        f"run the same command to write the rest"])


def test_a_sigterm_during_the_last_image_ends_the_run_as_finished(capsys, checkpoint, photos,
                                                                tmp_path, monkeypatch):
    import fcnseg.cli.predict as predict_cli

    files = predict_cli.predict_files

    def stopped_during_the_last(*args, **kwargs):
        *before, last = files(*args, **kwargs)
        yield from before
        os.kill(os.getpid(), signal.SIGTERM)  # as the last image is segmented
        yield last

    monkeypatch.setattr(predict_cli, "predict_files", stopped_during_the_last)
    summary, _ = predict(capsys, checkpoint, photos, tmp_path / "out")
    assert summary.startswith("wrote outputs for 2 of 2 input(s)")


def _run(capsys, checkpoint, photos, out, *extra: str) -> tuple[int, str]:
    """The exit status and summary line of one ``fcnseg predict`` run."""
    rc = main(["predict", "--checkpoint", str(checkpoint), str(photos), "--out", str(out),
               "--no-progress", "--precision", "fp32", *extra])
    return rc, capsys.readouterr().out.strip().splitlines()[-1]


@pytest.fixture
def with_a_bad_frame(photos):
    (photos / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # cut short
    return photos


def test_the_images_that_failed_are_listed_in_failed_txt(capsys, checkpoint, with_a_bad_frame,
                                                         tmp_path):
    out = tmp_path / "out"
    assert _run(capsys, checkpoint, with_a_bad_frame, out)[0] == 1
    assert (out / "failed.txt").read_text() == f"{with_a_bad_frame / 'c.png'}\n"


def test_a_folder_named_failed_txt_is_refused_before_any_image_is_segmented(
        capsys, checkpoint, with_a_bad_frame, tmp_path):
    (tmp_path / "out" / "failed.txt").mkdir(parents=True)
    rc = main(["predict", "--checkpoint", str(checkpoint), str(with_a_bad_frame), "--out",
               str(tmp_path / "out"), "--no-progress", "--precision", "fp32"])
    assert (rc, capsys.readouterr().err.strip().splitlines()) == (2, [
        f"fcnseg predict: error: --out {tmp_path / 'out'}: its failed.txt is a folder; move it "
        f"away"])
    assert not (tmp_path / "out" / "a_label.png").exists()


def test_skip_complete_exits_0_when_only_images_listed_as_failed_fail_again(
        capsys, checkpoint, with_a_bad_frame, tmp_path):
    out = tmp_path / "out"
    _run(capsys, checkpoint, with_a_bad_frame, out)
    assert _run(capsys, checkpoint, with_a_bad_frame, out, "--skip-complete") == (0, (
        f"wrote outputs for 0 of 3 input(s) to {out}, precision fp32; 2 complete already, "
        f"skipped; 1 failed (1 as in an earlier run, listed in {out / 'failed.txt'})"))


def test_skip_complete_exits_1_when_an_image_not_listed_fails(capsys, checkpoint,
                                                             with_a_bad_frame, tmp_path):
    out = tmp_path / "out"
    _run(capsys, checkpoint, with_a_bad_frame, out)
    (with_a_bad_frame / "d.png").write_bytes(b"not a picture")
    assert _run(capsys, checkpoint, with_a_bad_frame, out, "--skip-complete")[0] == 1
    assert (out / "failed.txt").read_text().splitlines() == [
        str(with_a_bad_frame / "c.png"), str(with_a_bad_frame / "d.png")]


def test_an_image_written_since_leaves_failed_txt(capsys, checkpoint, with_a_bad_frame,
                                                  smooth_image, tmp_path):
    out = tmp_path / "out"
    _run(capsys, checkpoint, with_a_bad_frame, out)
    Image.fromarray(smooth_image).save(with_a_bad_frame / "c.png")  # replaced by a good copy
    assert _run(capsys, checkpoint, with_a_bad_frame, out, "--skip-complete")[0] == 0
    assert not (out / "failed.txt").exists()


def test_annotations_of_a_resumed_run_hold_the_images_complete_already(capsys, checkpoint,
                                                                       photos, tmp_path):
    out = tmp_path / "out"
    predict(capsys, checkpoint, photos, out, "--format", "coco")
    whole = (out / "annotations.coco.json").read_text()
    (out / "annotations.coco.json").unlink()  # as a run stopped before writing them left it
    (out / "b_label.png").unlink()
    summary, _ = predict(capsys, checkpoint, photos, out, "--format", "coco", "--skip-complete")
    assert summary.endswith("1 complete already, skipped")
    assert (out / "annotations.coco.json").read_text() == whole


def _label_png_reads(monkeypatch):
    """The names of the label PNGs predict reads from now on, in order."""
    import fcnseg.cli.predict as predict_cli

    read, original = [], predict_cli.read_label_png

    def recording(path):
        read.append(path.name)
        return original(path)

    monkeypatch.setattr(predict_cli, "read_label_png", recording)
    return read


def test_a_complete_images_label_png_is_read_once_for_counts_and_annotations(
        capsys, checkpoint, photos, tmp_path, monkeypatch):
    out, options = tmp_path / "out", ("--format", "coco", "--counts", str(tmp_path / "n.csv"))
    predict(capsys, checkpoint, photos, out, *options)
    (out / "b_label.png").unlink()  # b is predicted again, a is complete
    (tmp_path / "n.csv").unlink()  # its rows counted again
    read = _label_png_reads(monkeypatch)
    predict(capsys, checkpoint, photos, out, *options, "--skip-complete")
    assert read == ["a_label.png"]


def test_a_resumed_count_reads_no_label_png_of_an_image_whose_row_it_holds(
        capsys, checkpoint, photos, tmp_path, monkeypatch):
    out, options = tmp_path / "out", ("--counts", str(tmp_path / "n.csv"))
    predict(capsys, checkpoint, photos, out, *options)
    read = _label_png_reads(monkeypatch)
    predict(capsys, checkpoint, photos, out, *options, "--skip-complete")
    assert read == []
