"""fcnseg import of pictures with bands no colour image holds (a satellite's 4-band uint16
GeoTIFF chips): sized from their header, copied as they are, their bands declared; images that
fail for one reason said in one line; nothing written when nothing is imported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from fcnseg.cli.main import main
from fcnseg.data import FolderSegmentation, build_dataset
from fcnseg.data.errors import DataError
from tests.data.test_annotations_every_format import label_map, write_source

rasterio = pytest.importorskip("rasterio")
tifffile = pytest.importorskip("tifffile")
# pycocotools 2.0 on NumPy 2 warns when it decodes (its __array__ lacks the copy keyword).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

BANDS = ["blue", "green", "red", "nir"]


def chip(k: int) -> np.ndarray:
    """A 24×32 4-band uint16 chip, values far above 8 bits, a nodata (0) corner."""
    values = (1000 * np.arange(1, 5, dtype=np.uint16)[:, None, None]
              + 7 * k + np.zeros((4, 24, 32), np.uint16))
    values[:, :3, :3] = 0
    return values


def write_geotiff(path: Path, values: np.ndarray, names: list[str] | None) -> None:
    """A georeferenced 4-band uint16 GeoTIFF, its bands described by ``names`` (if any)."""
    with rasterio.open(path, "w", driver="GTiff", height=24, width=32, count=4,
                       dtype="uint16", crs="EPSG:32633", nodata=0,
                       transform=rasterio.Affine(3, 0, 500000, 0, -3, 5000000)) as ds:
        ds.write(values)
        for b, name in enumerate(names or (), start=1):
            ds.set_band_description(b, name)


def band_source(fmt: str, root: Path, names: list[str] | None = BANDS) -> Path:
    """:func:`write_source`'s three images as 4-band uint16 GeoTIFFs (``i0.tif`` ...), the
    annotations naming them."""
    src = write_source(fmt, root)
    for k in range(3):
        (root / "images" / f"i{k}.png").unlink()
        write_geotiff(root / "images" / f"i{k}.tif", chip(k), names)
    for path in root.rglob("*"):
        if path.suffix in (".json", ".xml"):
            text = path.read_text()
            for k in range(3):
                text = text.replace(f"i{k}.png", f"i{k}.tif")
            path.write_text(text)
    return src


def import_args(fmt: str, src: Path, out: Path, root: Path) -> list[str]:
    images = ["--images", str(root / "images")] if fmt != "labelme" else []
    return ["import", fmt, str(src), "--out", str(out), *images]


def imported(fmt: str, tmp_path: Path) -> tuple[Path, Path]:
    """The annotations of ``band_source`` and the folder ``fcnseg import FMT`` writes from
    them."""
    if fmt == "coco":
        pytest.importorskip("pycocotools")
    out = tmp_path / "out"
    src = band_source(fmt, tmp_path / "src")
    assert main(import_args(fmt, src, out, tmp_path / "src")) == 0
    return src, out


@pytest.mark.parametrize("fmt", ["labelme", "coco", "cvat", "cvat-mask", "labelstudio"])
def test_band_rasters_are_imported_as_they_are_with_their_bands(fmt, tmp_path: Path,
                                                               capsys) -> None:
    _, out = imported(fmt, tmp_path)
    said = capsys.readouterr().out
    assert "error" not in said and "imported 3 image(s)" in said
    assert "wrote bands: [blue, green, red, nir]; rgb: [red, green, blue]; nodata: 0" in said
    config = yaml.safe_load((out / "dataset.yaml").read_text())
    assert config["bands"] == BANDS and config["rgb"] == ["red", "green", "blue"]
    assert config["nodata"] == 0
    for k in range(3):  # copied byte for byte: bands, depth and georeferencing kept
        assert (out / "images" / f"i{k}.tif").read_bytes() == \
            (tmp_path / "src" / "images" / f"i{k}.tif").read_bytes()
    folder = FolderSegmentation(out)
    for k, name in enumerate(folder.ids):
        image, label = folder.load(k)  # as stored
        assert image.shape == (24, 32, 4) and image.dtype == np.uint16
        np.testing.assert_array_equal(image, chip(int(name[-1])).transpose(1, 2, 0))
        expected = label_map(int(name[-1])).astype(np.int64)
        expected[:3, :3] = 255  # nodata pixels ignored
        np.testing.assert_array_equal(label, expected)


def test_a_band_raster_embedded_in_labelme_json_is_imported_as_it_is(tmp_path: Path,
                                                                     capsys) -> None:
    import base64

    src = band_source("labelme", tmp_path / "src")
    for k in range(3):  # the picture only inside the JSON (labelme's imageData)
        picture = tmp_path / "src" / "images" / f"i{k}.tif"
        doc = json.loads(picture.with_suffix(".json").read_text())
        doc["imageData"] = base64.b64encode(picture.read_bytes()).decode()
        picture.with_suffix(".json").write_text(json.dumps(doc))
        (tmp_path / "src" / "embedded" / f"i{k}.tif").parent.mkdir(exist_ok=True)
        picture.rename(tmp_path / "src" / "embedded" / f"i{k}.tif")
    out = tmp_path / "out"
    assert main(import_args("labelme", src, out, tmp_path / "src")) == 0
    assert "imported 3 image(s)" in capsys.readouterr().out
    assert yaml.safe_load((out / "dataset.yaml").read_text())["bands"] == BANDS
    for k in range(3):
        assert (out / "images" / f"i{k}.tif").read_bytes() == \
            (tmp_path / "src" / "embedded" / f"i{k}.tif").read_bytes()


def test_a_dataset_yaml_declaring_the_bands_is_kept(tmp_path: Path, capsys) -> None:
    pytest.importorskip("pycocotools")
    src = band_source("coco", tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    declared = {"bands": ["Blue", "Green", "Red", "NIR"], "rgb": ["Red", "Green", "Blue"],
                "nodata": 0}
    (out / "dataset.yaml").write_text(yaml.safe_dump(declared))
    assert main(import_args("coco", src, out, tmp_path / "src")) == 0
    assert "imported 3 image(s)" in capsys.readouterr().out
    config = yaml.safe_load((out / "dataset.yaml").read_text())
    assert {k: config[k] for k in declared} == declared
    image, _ = FolderSegmentation(out).load(0)
    assert image.shape == (24, 32, 4) and image.dtype == np.uint16


def test_bands_the_files_do_not_name_are_declared_by_number(tmp_path: Path, capsys) -> None:
    pytest.importorskip("pycocotools")
    src = band_source("coco", tmp_path / "src", names=None)
    for k in range(3):  # no georeferencing, no names, no nodata: tifffile's plain TIFF
        tifffile.imwrite(tmp_path / "src" / "images" / f"i{k}.tif",
                         chip(k).transpose(1, 2, 0), photometric="minisblack",
                         planarconfig="contig")
    out = tmp_path / "out"
    assert main(import_args("coco", src, out, tmp_path / "src")) == 0
    capsys.readouterr()
    config = yaml.safe_load((out / "dataset.yaml").read_text())
    assert config["bands"] == ["band1", "band2", "band3", "band4"]
    assert "rgb" not in config and "nodata" not in config
    image, _ = FolderSegmentation(out).load(0)
    assert image.shape == (24, 32, 4) and image.dtype == np.uint16


def test_the_dataset_read_directly_names_the_bands_to_declare(tmp_path: Path) -> None:
    pytest.importorskip("pycocotools")
    src = band_source("coco", tmp_path / "src")
    direct = build_dataset({"name": "coco", "root": str(src),
                            "images": str(tmp_path / "src" / "images")})
    with pytest.raises(DataError) as caught:
        direct[0]
    line = str(caught.value)
    assert "\n" not in line and "4 band(s) of uint16" in line and "the model" not in line
    assert "bands: [blue, green, red, nir] in the dataset's spec" in line
    assert f"fcnseg import coco {src} --out DIR" in line


@pytest.mark.parametrize("fmt", ["labelme", "coco", "cvat", "cvat-mask", "labelstudio"])
def test_the_dataset_read_directly_with_bands_equals_the_imported_folder(fmt, tmp_path: Path,
                                                                         capsys) -> None:
    src, out = imported(fmt, tmp_path)
    capsys.readouterr()
    folder = FolderSegmentation(out)
    images = {"images": str(tmp_path / "src" / "images")} if fmt != "labelme" else {}
    direct = build_dataset({"name": fmt.replace("-", "_"), "root": str(src), **images,
                            "bands": BANDS, "rgb": ["red", "green", "blue"], "nodata": 0})
    assert direct.bands == folder.bands and direct.rgb_bands == folder.rgb_bands
    for k, name in enumerate(folder.ids):
        image, label = direct.load(list(direct.ids).index(name))
        want_image, want_label = folder.load(k)
        assert image.dtype == np.uint16
        np.testing.assert_array_equal(image, want_image)
        np.testing.assert_array_equal(label, want_label)  # nodata ignored alike
    assert direct.band_convention().mean == folder.band_convention().mean
    filled, _ = direct[0]  # pixels without data take each band's mean, as the folder's do
    assert np.isclose(filled[0, 0], direct.band_convention().mean, rtol=1e-6).all()


def test_images_not_imported_for_one_reason_are_one_line(tmp_path: Path, capsys) -> None:
    pytest.importorskip("pycocotools")
    src = write_source("coco", tmp_path / "src")
    for k in range(3):
        (tmp_path / "src" / "images" / f"i{k}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "out"
    assert main(import_args("coco", src, out, tmp_path / "src")) == 1
    errors = [line for line in capsys.readouterr().out.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert errors[0].startswith("fcnseg import: error: 3 images not imported, all for one "
                                f"reason; the first: {src}: unreadable image ")
    assert "i0.png" in errors[0]


def test_nothing_is_written_when_no_image_is_imported(tmp_path: Path, capsys) -> None:
    pytest.importorskip("pycocotools")
    src = write_source("coco", tmp_path / "src")
    doc = json.loads(src.read_text())
    for image in doc["images"]:
        image["width"] = 99  # every annotation is for another size than its picture
    src.write_text(json.dumps(doc))
    out = tmp_path / "out"
    assert main(import_args("coco", src, out, tmp_path / "src")) == 1
    said = capsys.readouterr().out.splitlines()
    assert said[-1] == f"imported no image, so no dataset was written to {out}; 3 not imported"
    assert not out.exists()


def test_a_folder_imported_into_before_is_left_as_it_was_when_nothing_is_imported(
        tmp_path: Path, capsys) -> None:
    pytest.importorskip("pycocotools")
    src = write_source("coco", tmp_path / "src")
    out = tmp_path / "out"
    assert main(import_args("coco", src, out, tmp_path / "src")) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for k in range(3):
        (tmp_path / "src" / "images" / f"i{k}.png").unlink()
    assert main(import_args("coco", src, out, tmp_path / "src")) == 1
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert "imported no image, so no dataset was written" in capsys.readouterr().out


def write_hyperstack(path: Path, values: np.ndarray) -> None:
    """A Fiji/ImageJ hyperstack of ``values`` (channels×H×W uint16): one channel a page, axes
    CYX, as Fiji saves a multi-channel image."""
    tifffile.imwrite(path, values, imagej=True, metadata={"axes": "CYX"})


@pytest.mark.parametrize("fmt", ["labelme", "coco", "cvat", "cvat-mask", "labelstudio"])
def test_a_hyperstack_of_channels_one_a_page_is_imported_as_its_bands(fmt, tmp_path: Path,
                                                                     capsys) -> None:
    if fmt == "coco":
        pytest.importorskip("pycocotools")
    src = band_source(fmt, tmp_path / "src", names=None)
    for k in range(3):  # 2 channels, one a page, as every other reader reads them: 2 bands
        write_hyperstack(tmp_path / "src" / "images" / f"i{k}.tif", chip(k)[:2])
    out = tmp_path / "out"
    assert main(import_args(fmt, src, out, tmp_path / "src")) == 0
    said = capsys.readouterr().out
    assert "error" not in said and "imported 3 image(s)" in said
    assert yaml.safe_load((out / "dataset.yaml").read_text())["bands"] == ["band1", "band2"]
    folder = FolderSegmentation(out)
    for k, name in enumerate(folder.ids):
        assert (out / "images" / f"{name}.tif").read_bytes() == \
            (tmp_path / "src" / "images" / f"{name}.tif").read_bytes()
        image, label = folder.load(k)
        np.testing.assert_array_equal(image, chip(int(name[-1]))[:2].transpose(1, 2, 0))
        np.testing.assert_array_equal(label, label_map(int(name[-1])))


def test_a_hyperstack_embedded_in_labelme_json_is_imported_as_its_bands(tmp_path: Path,
                                                                       capsys) -> None:
    import base64

    src = band_source("labelme", tmp_path / "src", names=None)
    for k in range(3):  # the hyperstack only inside the JSON (labelme's imageData)
        picture = tmp_path / "src" / "images" / f"i{k}.tif"
        write_hyperstack(picture, chip(k)[:2])
        doc = json.loads(picture.with_suffix(".json").read_text())
        doc["imageData"] = base64.b64encode(picture.read_bytes()).decode()
        picture.with_suffix(".json").write_text(json.dumps(doc))
        picture.unlink()
    out = tmp_path / "out"
    assert main(import_args("labelme", src, out, tmp_path / "src")) == 0
    assert "imported 3 image(s)" in capsys.readouterr().out
    image, _ = FolderSegmentation(out).load(0)
    assert image.shape == (24, 32, 2) and image.dtype == np.uint16
