"""``fcnseg predict --counts``: one CSV row of class pixel counts per image, in input order,
never twice when a run is resumed."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from fcnseg.cli.main import main
from fcnseg.inference.visualize import read_label_png


@pytest.fixture
def photos(tmp_path, smooth_image):
    root = tmp_path / "frames"
    root.mkdir()
    for k, image in enumerate([smooth_image, smooth_image[::-1], smooth_image[:, ::-1]]):
        Image.fromarray(np.ascontiguousarray(image)).save(root / f"frame_{k:06d}.png")
    return root


def predict(checkpoint, photos, out, *extra: str) -> int:
    return main(["predict", "--checkpoint", str(checkpoint), str(photos), "--out", str(out),
                 "--no-progress", "--precision", "fp32", *extra])


def rows_of(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def first_run(checkpoint, photos, tmp_path):
    """A run with ``--counts``: its output folder, counts file and the file's rows."""
    out, table = tmp_path / "out", tmp_path / "counts.csv"
    assert predict(checkpoint, photos, out, "--counts", str(table)) == 0
    return out, table, rows_of(table)


def test_one_row_per_image_in_input_order_counts_each_class_by_name(
        make_checkpoint, photos, tmp_path, class_names):
    out, table = tmp_path / "out", tmp_path / "counts.csv"
    assert predict(make_checkpoint("same"), photos, out, "--counts", str(table)) == 0
    header, *rows = rows_of(table)
    assert header == ["path", *class_names, "(no data)"]
    assert [row[0] for row in rows] == [str(p) for p in sorted(photos.iterdir())]
    for row in rows:
        label = read_label_png(out / f"{row[0].split('/')[-1][:-4]}_label.png")
        assert [int(v) for v in row[1:]] == [*(int((label == c).sum()) for c in range(4)), 0]


def test_pixels_an_ignore_mask_leaves_out_count_as_no_data(make_checkpoint, photos, tmp_path,
                                                          smooth_image):
    hood = np.full(smooth_image.shape[:2], 255, np.uint8)
    hood[-10:] = 0
    Image.fromarray(hood).save(tmp_path / "hood.png")
    table = tmp_path / "counts.csv"
    assert predict(make_checkpoint("same"), photos, tmp_path / "out", "--counts", str(table),
                   "--ignore-mask", str(tmp_path / "hood.png")) == 0
    for row in rows_of(table)[1:]:
        assert int(row[-1]) == 10 * smooth_image.shape[1]
        assert sum(map(int, row[1:])) == hood.size


def test_a_resumed_run_adds_the_missing_rows_and_repeats_none(make_checkpoint, photos,
                                                              tmp_path):
    out, table, first = first_run(make_checkpoint("same"), photos, tmp_path)
    (out / "frame_000001_label.png").unlink()  # as a run stopped before that frame leaves it
    table.write_text("\n".join(",".join(row) for row in first[:2]) + "\n")
    assert predict(make_checkpoint("same"), photos, out, "--counts", str(table),
                   "--skip-complete") == 0
    assert rows_of(table) == first


def test_blank_lines_of_a_counts_file_edited_by_hand_are_passed_over(make_checkpoint, photos,
                                                                     tmp_path):
    out, table, first = first_run(make_checkpoint("same"), photos, tmp_path)
    table.write_text(table.read_text() + "\n\n")  # as an editor may leave it
    assert predict(make_checkpoint("same"), photos, out, "--counts", str(table)) == 0
    assert rows_of(table) == first


def test_rows_of_frames_skipped_as_complete_come_from_their_label_pngs(make_checkpoint, photos,
                                                                      tmp_path):
    out, table, first = first_run(make_checkpoint("same"), photos, tmp_path)
    table.unlink()
    assert predict(make_checkpoint("same"), photos, out, "--counts", str(table),
                   "--skip-complete") == 0
    assert rows_of(table) == first


def test_a_counts_file_of_other_classes_is_refused(make_checkpoint, photos, tmp_path, capsys):
    table = tmp_path / "counts.csv"
    table.write_text("path,road,car,(no data)\n")
    assert predict(make_checkpoint("same"), photos, tmp_path / "out", "--counts",
                   str(table)) == 2
    assert not (tmp_path / "out").exists()  # a refusal writes nothing
    assert capsys.readouterr().err.strip() == (
        f"fcnseg predict: error: --counts {table}: its columns (road, car, (no data)) are not "
        f"this model's classes; name another file")


def test_a_folder_given_as_the_counts_file_is_refused_before_segmenting(make_checkpoint, photos,
                                                                        tmp_path, capsys):
    (tmp_path / "counts").mkdir()
    assert predict(make_checkpoint("same"), photos, tmp_path / "out", "--counts",
                   str(tmp_path / "counts")) == 2
    assert not (tmp_path / "out").exists()
    assert capsys.readouterr().err.strip() == (
        f"fcnseg predict: error: --counts {tmp_path / 'counts'}: a folder; name a CSV file")


def test_an_image_that_fails_has_no_row_from_an_earlier_runs_label_png(make_checkpoint, photos,
                                                                       tmp_path):
    out, table, first = first_run(make_checkpoint("same"), photos, tmp_path)
    table.unlink()
    (photos / "frame_000001.png").write_bytes(b"not a picture any more")
    assert predict(make_checkpoint("same"), photos, out, "--counts", str(table)) == 1
    assert rows_of(table) == [first[0], first[1], first[3]]


def test_an_image_that_fails_drops_its_row_of_an_earlier_run_from_the_file(make_checkpoint,
                                                                          photos, tmp_path):
    out, table, first = first_run(make_checkpoint("same"), photos, tmp_path)
    (photos / "frame_000001.png").write_bytes(b"not a picture any more")
    assert predict(make_checkpoint("same"), photos, out, "--counts", str(table)) == 1
    assert rows_of(table) == [first[0], first[1], first[3]]
