"""Datasets without colours get well-separated ones; only a declared or named background is
left as the photo (black in the palette), never class 0 for its position."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fcnseg.checkpoint import load_checkpoint, save_checkpoint
from fcnseg.data import FolderSegmentation
from fcnseg.data.palette import distinct_palette, palette_for
from fcnseg.data.siftflow import SIFTFLOW_GEOMETRIC_CLASSES
from fcnseg.inference import Segmenter
from fcnseg.inference.files import PictureStyle, overlay_picture
from fcnseg.inference.visualize import background_classes, overlay
from fcnseg.models import fcn8s

STREET = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
          "Pedestrian", "Bicyclist"]


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of sRGB colours, N×3 uint8 → N×3 float."""
    c = rgb.astype(np.float64) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                        [0.0193, 0.1192, 0.9505]]).T / np.array([0.9505, 1.0, 1.089])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def _closest_pair(colours: np.ndarray) -> float:
    lab = _lab(colours)
    return min(float(np.linalg.norm(a - b)) for a, b in itertools.combinations(lab, 2))


def test_distinct_palette_keeps_eleven_street_classes_apart_even_blended_over_a_photo() -> None:
    grey = np.full(3, 128.0)

    def blended(pal: np.ndarray) -> np.ndarray:  # an overlay at alpha 0.5 over a grey photo
        return (0.5 * pal + 0.5 * grey).round().astype(np.uint8)

    pal = distinct_palette(STREET)[: len(STREET)]
    assert _closest_pair(pal) > 25 and _closest_pair(blended(pal)) > 14
    # The VOC palette these datasets had (Car [64,0,0] beside Building [128,0,0]) fails both.
    voc = palette_for(11)[:11]
    assert _closest_pair(voc) < 13 and _closest_pair(blended(voc)) < 13


def test_background_is_black_and_the_void_colour_stays() -> None:
    pal = distinct_palette(["background", "road", "car"], ignore_index=255)
    assert pal[0].tolist() == [0, 0, 0] and pal[1].tolist() != [0, 0, 0]
    assert pal[255].tolist() == [224, 224, 192]
    assert distinct_palette(["Sky", "Car"], background="Sky")[0].tolist() == [0, 0, 0]
    many = distinct_palette([f"c{k}" for k in range(60)])[:60]
    assert len({tuple(c) for c in many.tolist()}) == 60


def test_sift_flow_geometric_classes_are_all_tinted() -> None:
    pal = distinct_palette(SIFTFLOW_GEOMETRIC_CLASSES)[:3]
    assert background_classes(SIFTFLOW_GEOMETRIC_CLASSES) == []
    assert all(c.max() >= 100 for c in pal)  # none dark: an overlay does not darken the photo


def _street_folder(root: Path, yaml: str) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "dataset.yaml").write_text(yaml)
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(root / "images" / "a.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "masks" / "a.png")
    return root


def test_a_folder_without_colours_gets_the_distinct_palette(tmp_path: Path) -> None:
    ds = FolderSegmentation(_street_folder(tmp_path, "classes: [Sky, Building, Car]\n"))
    assert ds.palette[:3].tolist() == distinct_palette(["Sky", "Building", "Car"])[:3].tolist()
    assert ds.palette[0].tolist() != [0, 0, 0]  # sky is not background here


def test_a_declared_background_travels_to_the_checkpoint_and_stays_the_photo(
        tmp_path: Path) -> None:
    ds = FolderSegmentation(_street_folder(tmp_path / "d", "classes: [Sky, Building, Car]\n"
                                                          "background: Building\n"))
    assert ds.background_class == "Building" and ds.palette[1].tolist() == [0, 0, 0]
    model = fcn8s(num_classes=3, geometry="same", width=0.0625, fc_channels=16)
    path = save_checkpoint(tmp_path / "m.pt", model, class_names=ds.classes,
                           palette=ds.palette, background=ds.background_class)
    assert load_checkpoint(path)["classes"]["background"] == "Building"
    seg = Segmenter.from_checkpoint(path)
    assert background_classes(seg.class_names, seg.background_class) == [1]
    with pytest.raises(ValueError, match="background"):
        FolderSegmentation(_street_folder(tmp_path / "e", "classes: [a, b]\nbackground: c\n"))


def test_an_overlay_tints_class_0_when_it_is_not_background() -> None:
    photo = np.full((4, 4, 3), 120, np.uint8)
    label = np.zeros((4, 4), np.int64)  # all Sky, class 0
    pal = distinct_palette(STREET)
    picture = overlay(photo, label, pal, 0.5, exclude=background_classes(STREET))
    assert not np.array_equal(picture, photo)
    from fcnseg.inference.segmenter import Prediction

    pred = Prediction(image=photo, label=label, class_names=tuple(STREET))
    legend = overlay_picture(pred, pal, PictureStyle(unblended=tuple(background_classes(STREET))))
    assert legend.shape[1] > photo.shape[1]  # a legend beside it, naming Sky
    torch.manual_seed(0)


def test_datasets_without_their_own_colours_default_to_distinct_ones() -> None:
    from fcnseg.data import SyntheticSegmentation
    from fcnseg.data.base import FileSegmentationDataset
    from fcnseg.data.palette import VOC_CLASSES

    synthetic = SyntheticSegmentation(1, 32)
    assert synthetic.palette[0].tolist() == [0, 0, 0]  # its class 0 is "background"
    assert synthetic.palette[1:7].tolist() == distinct_palette(synthetic.classes)[1:7].tolist()

    class Rooms(FileSegmentationDataset):  # class 0 is a real class, as in NYUDv2 or SIFT Flow
        classes = ("wall", "floor", "bed")

    assert Rooms().palette[0].tolist() not in ([0, 0, 0], palette_for(3)[0].tolist())

    class Voc(FileSegmentationDataset):
        classes = VOC_CLASSES

    assert Voc().palette.tolist() == palette_for(21).tolist()  # VOC keeps its own colours
