"""Reading ahead and writing behind the model: the same files as one file after another, in
the same order, with the same problems reported."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from PIL import Image

from fcnseg.inference.files import MANIFEST_NAME, PictureStyle, collect_inputs
from fcnseg.inference.pipeline import (
    OutputOptions,
    Plan,
    Tally,
    plan_inputs,
    predict_files,
    segment_files,
    write_predictions,
)
from fcnseg.inference.prefetch import BACKGROUND_NICENESS, background_pool, read_ahead


def _folder_bytes(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _photos(root, smooth_image):
    """Eight images of three sizes (so batches mix sizes), one of them unreadable."""
    root.mkdir()
    for i in range(7):
        image = np.roll(smooth_image, 5 * i, axis=1)
        if i % 3 == 1:
            image = image[:40, :56]
        elif i % 3 == 2:
            image = np.ascontiguousarray(image.transpose(1, 0, 2))
        Image.fromarray(image).save(root / f"p{i}.png")
    (root / "p3b.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    return root


def test_pipelined_outputs_are_byte_identical_to_sequential(segmenter, smooth_image, tmp_path):
    inputs, _ = collect_inputs([str(_photos(tmp_path / "in", smooth_image))])
    options = OutputOptions(heatmap_classes=(1, 3), uncertainty=("entropy", "maxprob"),
                            probs=True, style=PictureStyle(unblended=(0,)))
    folders = {}
    for workers in (0, 3):
        out = tmp_path / f"out{workers}"
        out.mkdir()
        list(predict_files(segmenter, inputs, out, options, batch_size=3, workers=workers))
        folders[workers] = _folder_bytes(out)
    # label, overlay, 2 heatmaps, 2 uncertainty maps and the npz of 7 images; the manifest
    assert len(folders[0]) == 7 * 7 + 1
    assert folders[3].keys() == folders[0].keys()
    assert [k for k in folders[0] if folders[0][k] != folders[3][k]] == []
    assert MANIFEST_NAME in folders[3]


def test_outcomes_come_in_input_order_and_a_bad_file_is_named(segmenter, smooth_image,
                                                               tmp_path):
    inputs, _ = collect_inputs([str(_photos(tmp_path / "in", smooth_image))])
    out = tmp_path / "out"
    out.mkdir()
    outcomes = list(predict_files(segmenter, inputs, out, batch_size=2, workers=2))
    assert [o.path for o in outcomes] == [path for path, _ in inputs]
    problems = {o.path.name: o.problem for o in outcomes if o.problem}
    assert list(problems) == ["p3b.png"]
    assert problems["p3b.png"].startswith("skipped ") and "p3b.png" in problems["p3b.png"]
    assert all((out / f"p{i}_label.png").is_file() for i in range(7))


def test_a_write_failure_is_reported_for_its_file_and_the_others_written(
        segmenter, smooth_image, tmp_path):
    inputs, _ = collect_inputs([str(_photos(tmp_path / "in", smooth_image))])
    out = tmp_path / "out"
    out.mkdir()
    (out / "p2_overlay.png").mkdir()  # a folder where p2's overlay should go
    options = OutputOptions(style=PictureStyle())
    predictions = ((path, name, segmenter.predict(path)) for path, name in inputs
                   if not name.endswith("3b"))
    outcomes = list(write_predictions(predictions, out, segmenter.palette, options, workers=3))
    problems = [o.problem for o in outcomes if o.problem]
    assert len(problems) == 1 and "cannot write outputs" in problems[0]
    assert "p2.png" in problems[0]
    assert all((out / f"p{i}_overlay.png").is_file() for i in range(7) if i != 2)


def test_read_ahead_keeps_the_input_order_and_hands_back_read_errors(smooth_image, tmp_path):
    root = _photos(tmp_path / "in", smooth_image)
    inputs = [(p, p.stem) for p in sorted(root.iterdir())]
    read = list(read_ahead(inputs, max_pixels=None, workers=3, ahead=2))
    assert [name for _, name, _ in read] == [p.stem for p in sorted(root.iterdir())]
    kinds = {name: type(image).__name__ for _, name, image in read}
    assert kinds.pop("p3b") == "ImageError"
    assert set(kinds.values()) == {"ndarray"}


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="thread nice levels are POSIX-only")
def test_reading_and_writing_threads_run_below_the_model():
    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    with background_pool(1, "fcnseg-test") as pool:
        theirs = pool.submit(nice).result()
    assert theirs == min(19, nice() + BACKGROUND_NICENESS)


def test_a_failing_batch_is_retried_image_by_image_and_only_the_culprit_reported(
        segmenter, smooth_image, tmp_path, monkeypatch):
    inputs, _ = collect_inputs([str(_photos(tmp_path / "in", smooth_image))])
    real_predict_batch = segmenter.predict_batch
    culprit = np.roll(smooth_image, 5 * 3, axis=1)  # p3.png's pixels

    def predict_batch(images, **kwargs):  # fails for any batch that holds the culprit
        if any(np.array_equal(image, culprit) for image in images):
            raise RuntimeError("out of memory")
        return real_predict_batch(images, **kwargs)

    monkeypatch.setattr(segmenter, "predict_batch", predict_batch)
    results = list(segment_files(segmenter, inputs, batch_size=4, read_workers=0))
    assert [path for path, _, _ in results] == [path for path, _ in inputs]
    failed = {path.name: type(r).__name__ for path, _, r in results if isinstance(r, Exception)}
    assert failed == {"p3.png": "RuntimeError", "p3b.png": "ImageError"}
    assert all(r.label.shape == r.image.shape[:2] for _, _, r in results
               if not isinstance(r, Exception))


def test_plan_inputs_sorts_out_the_rasters_and_shares_the_inputs_among_processes(
        segmenter, smooth_image, tmp_path):
    import tifffile

    photos = []
    for k in range(3):
        Image.fromarray(smooth_image).save(tmp_path / f"p{k}.png")  # 48×64: within 4000 pixels
        photos.append((tmp_path / f"p{k}.png", f"p{k}"))
    raster = (tmp_path / "big.tif", "big")  # a TIFF over --max-pixels is a raster
    tifffile.imwrite(raster[0], np.zeros((64, 80, 3), np.uint8), photometric="rgb")
    inputs = [*photos, raster]
    alone = plan_inputs(segmenter, inputs, max_pixels=4000, input_dirs=(), rank=0, world_size=1,
                        gather=lambda obj: [obj])
    assert (alone.images, alone.rasters, alone.share) == (photos, [raster], None)
    second = plan_inputs(segmenter, inputs, max_pixels=4000, input_dirs=(), rank=1,
                         world_size=2, gather=lambda obj: [obj, obj])
    # every other image; fewer rasters than processes: each process takes a share of its rows
    assert (second.images, second.rasters, second.share) == (photos[1::2], [raster], (1, 2))
    assert second.protected == frozenset(path.resolve() for path, _ in inputs)


def test_a_tally_gathered_sums_the_counts_of_every_process():
    others = Tally(written=2, failed=1)
    plan = Plan([], [], None, frozenset(), None, rank=0, world_size=2,
                gather=lambda own: [own, others])
    assert Tally(written=1, skipped=3).gathered(plan) == Tally(written=3, failed=1, skipped=3)


def test_images_of_a_single_pixel_value_are_named_in_one_line(segmenter, smooth_image, tmp_path):
    (tmp_path / "in").mkdir()
    Image.fromarray(smooth_image).save(tmp_path / "in" / "a_scene.png")
    for name, colour in (("b_black.png", (0, 0, 0)), ("c_blank.png", (10, 200, 30))):
        Image.new("RGB", (48, 40), colour).save(tmp_path / "in" / name)
    inputs, _ = collect_inputs([str(tmp_path / "in")])
    (tmp_path / "out").mkdir()
    lines = []
    outcomes = list(predict_files(segmenter, inputs, tmp_path / "out", batch_size=2,
                                  warn=lines.append))
    assert [o.problem for o in outcomes] == [None] * 3
    [line] = lines
    assert line.startswith("2 image(s) of one pixel value throughout")
    assert line.endswith(f": {tmp_path / 'in' / 'b_black.png'}, {tmp_path / 'in' / 'c_blank.png'}")


def test_the_line_naming_uniform_images_names_five_and_counts_the_rest(segmenter, tmp_path):
    (tmp_path / "in").mkdir()
    for k in range(7):  # the black frames of a video
        Image.new("RGB", (48, 40)).save(tmp_path / "in" / f"f{k}.png")
    inputs, _ = collect_inputs([str(tmp_path / "in")])
    (tmp_path / "out").mkdir()
    lines = []
    list(predict_files(segmenter, inputs, tmp_path / "out", batch_size=4, warn=lines.append))
    [line] = lines
    assert line.endswith(f"{tmp_path / 'in' / 'f4.png'} and 2 more")
