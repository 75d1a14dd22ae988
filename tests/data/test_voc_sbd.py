import numpy as np
import pytest
from PIL import Image

from fcnseg.data import SBDSegmentation, VOCSegmentation, build_dataset
from fcnseg.data.palette import VOC_CLASSES


def test_voc_reads_palette_indices_with_the_void_border(voc_root):
    ds = VOCSegmentation(voc_root, year="2012", split="train")
    assert len(ds) == 2 and ds.ids == ["2007_000032", "2007_000039"]
    image, label = ds[0]
    assert image.shape == (40, 48, 3) and image.dtype == np.uint8
    assert label.dtype == np.int64
    png = ds.dir / "SegmentationClass" / "2007_000032.png"
    np.testing.assert_array_equal(label, np.asarray(Image.open(png)))  # indices, not colours
    assert 255 in label and set(np.unique(label)) - {255} <= set(range(21))
    assert ds.classes == VOC_CLASSES and ds.num_classes == 21 and ds.ignore_index == 255
    assert tuple(ds.palette[255]) == (224, 224, 192)
    assert ds.name(1) == "2007_000039"


@pytest.mark.parametrize("relative", ["", "VOCdevkit", "VOCdevkit/VOC2012"])
def test_voc_root_may_be_the_parent_the_devkit_or_the_year_folder(voc_root, relative):
    ds = VOCSegmentation(voc_root / relative if relative else voc_root, split="val")
    assert ds.ids == ["2007_000042"]
    assert ds.dir == voc_root / "VOCdevkit" / "VOC2012"


@pytest.mark.parametrize("year", ["2007", "2011"])
def test_voc_other_years_share_the_layout(tmp_path, ondisk, year):
    ondisk.write_voc(tmp_path, year, {"trainval": ["000032", "000033"]})
    ds = VOCSegmentation(tmp_path, year=year, split="trainval")
    assert len(ds) == 2 and ds[1][1].shape == (40, 48)


def test_voc2011_archive_layout_is_found(tmp_path, ondisk):
    ondisk.write_voc(tmp_path / "TrainVal", "2011", {"val": ["2008_000002"]})
    assert len(VOCSegmentation(tmp_path, year="2011", split="val")) == 1


def test_voc_unknown_split_and_missing_tree_are_clear_errors(voc_root, tmp_path):
    with pytest.raises(ValueError, match="no segmentation split 'test'.*train"):
        VOCSegmentation(voc_root, split="test")
    with pytest.raises(FileNotFoundError, match="no VOC2011 segmentation data"):
        VOCSegmentation(voc_root, year="2011")


def test_sbd_reads_gtcls_segmentation_from_mat_files(tmp_path, ondisk):
    ondisk.write_sbd(tmp_path, {"train": ["2008_000002", "2008_000003"], "val": ["2008_000004"]})
    ds = SBDSegmentation(tmp_path, split="train")
    assert len(ds) == 2
    image, label = ds[1]
    expected = ondisk.scene(101, border=False)[1]
    np.testing.assert_array_equal(label, expected)
    assert image.shape == (40, 48, 3) and label.dtype == np.int64
    assert SBDSegmentation(tmp_path / "benchmark_RELEASE", split="val").ids == ["2008_000004"]


def test_sbd_unknown_split_names_the_lists_there(tmp_path, ondisk):
    ondisk.write_sbd(tmp_path, {"train": ["2008_000002"], "val": ["2008_000004"]})
    with pytest.raises(ValueError, match=r"SBD has no split 'test' \(.*test.txt missing\); "
                                         r"available: train, val"):
        SBDSegmentation(tmp_path, split="test")


def test_build_dataset_makes_each_kind(voc_root, tmp_path, ondisk):
    ondisk.write_sbd(tmp_path / "sbd", {"train": ["a"], "val": ["b"]})
    voc = build_dataset({"name": "voc", "root": str(voc_root), "year": "2012"}, split="val")
    assert isinstance(voc, VOCSegmentation) and len(voc) == 1
    sbd = build_dataset({"name": "sbd", "root": str(tmp_path / "sbd"), "split": "val"})
    assert isinstance(sbd, SBDSegmentation) and sbd.ids == ["b"]
    syn = build_dataset({"name": "synthetic", "num_images": 3, "size": [16, 24], "seed": 1})
    assert len(syn) == 3 and syn[0][0].shape == (16, 24, 3)
    val = build_dataset({"name": "synthetic", "num_images": 3, "size": 16, "seed": 1}, "val")
    assert not np.array_equal(val[0][1], build_dataset(
        {"name": "synthetic", "num_images": 3, "size": 16, "seed": 1})[0][1])


@pytest.mark.parametrize(
    ("spec", "field"),
    [({"name": "mapillary"}, "dataset.name"),
     ({"name": "voc"}, "dataset.root"),
     ({"name": "seg11valid", "voc_root": "x"}, "dataset.sbd_root"),
     ({"name": "synthetic", "num_images": 2, "colour": 1}, "dataset.colour")],
)
def test_build_dataset_errors_name_the_field(spec, field):
    with pytest.raises(ValueError, match=field):
        build_dataset(spec)
