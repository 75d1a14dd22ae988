"""PASCAL-Context in its own layout: VOC2010 images, full-scene .mat labels, the 59-class task."""

import re

import numpy as np
import pytest
from ondisk import context_full_labels, write_pascal_context

from fcnseg.cli.main import main
from fcnseg.data import PASCAL_CONTEXT_CLASSES, PascalContext, build_dataset


def full_id(name: str) -> int:
    return context_full_labels().index(name) + 1


@pytest.fixture()
def context_root(tmp_path):
    label_map = np.array([
        [full_id("table"), full_id("bedclothes"), full_id("cloth"), full_id("potted plant")],
        [full_id("accordion"), full_id("zebra"), full_id("aeroplane"), full_id("wood")],
        [full_id("air conditioner"), full_id("sky"), full_id("person"), 0],
    ])
    return write_pascal_context(tmp_path, {"train": ["2008_000002", "2008_000003"],
                                           "val": ["2008_000008"]},
                                label_maps={"2008_000008": label_map})


def test_full_scene_labels_map_to_the_59_task_by_name(context_root):
    _, label = PascalContext(context_root, "val")[0]
    task = PASCAL_CONTEXT_CLASSES.index
    np.testing.assert_array_equal(label, [
        [task("diningtable"), task("bedcloth"), task("clothes"), task("pottedplant")],
        [0, 0, task("aeroplane"), task("wood")],  # labels outside the 59 are background
        [0, task("sky"), task("person"), 0],
    ])
    assert label.dtype == np.int64


def test_sixty_outputs_with_background_first_and_no_void(context_root):
    ds = PascalContext(context_root, "train")
    assert ds.num_classes == 60 and ds.classes[0] == "background"
    assert ds.classes == PASCAL_CONTEXT_CLASSES
    image, label = ds[1]
    assert image.shape == (24, 32, 3) and image.dtype == np.uint8
    assert label.shape == (24, 32) and label.max() < 60 and label.min() >= 0


def test_splits_come_from_voc2010_imagesets_main(context_root):
    assert PascalContext(context_root, "train").ids == ["2008_000002", "2008_000003"]
    with pytest.raises(ValueError, match=r"no list 'test'.*ImageSets/Main/test.txt"):
        PascalContext(context_root, "test")


def test_build_dataset_name(context_root):
    ds = build_dataset({"name": "pascal_context", "root": str(context_root), "split": "val"})
    assert isinstance(ds, PascalContext) and len(ds) == 1


def test_missing_task_label_file_is_named(context_root):
    (context_root / "pascal-context" / "59_labels.txt").unlink()
    with pytest.raises(FileNotFoundError, match="59_labels.txt is missing"):
        PascalContext(context_root, "train")


def test_task_class_missing_from_the_full_list_is_named(context_root):
    labels = context_root / "pascal-context" / "labels.txt"
    labels.write_text(labels.read_text().replace(": table\n", ": desk\n"))
    with pytest.raises(ValueError, match="class 'diningtable' is not in .*labels.txt"):
        PascalContext(context_root, "train")


def test_check_data_reports_both_splits_and_60_classes(context_root, capsys):
    assert main(["check-data", "--dataset", "pascal_context", "--root", str(context_root)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"train\s+2\n", out) and re.search(r"val\s+1\n", out)
    assert re.search(r"\n\s+59\s+wood\s+", out) and "no problems found" in out


def test_check_data_names_a_missing_mat_file(context_root, capsys):
    (context_root / "pascal-context" / "trainval" / "2008_000003.mat").unlink()
    assert main(["check-data", "--dataset", "pascal_context", "--root", str(context_root)]) == 1
    assert "2008_000003.mat: missing mask" in capsys.readouterr().out
