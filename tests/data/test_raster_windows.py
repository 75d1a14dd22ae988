"""Windows of large rasters read by window, for training (random) and evaluation (grid)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from fcnseg.data import build_dataset
from fcnseg.data.errors import DataError

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import Affine  # noqa: E402

TRANSFORM = Affine(2.0, 0.0, 300000.0, 0.0, -2.0, 6000000.0)


def write(path, array, transform=TRANSFORM, nodata=None):
    h, w, n = array.shape
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=n, dtype=array.dtype,
                       crs="EPSG:32631", transform=transform, nodata=nodata, tiled=True,
                       blockxsize=16, blockysize=16) as ds:
        ds.write(np.moveaxis(array, -1, 0))


@pytest.fixture()
def scenes(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rng = np.random.default_rng(0)
    arrays = {}
    for stem, (h, w) in {"a": (70, 90), "b": (40, 50)}.items():
        image = rng.integers(1, 60000, (h, w, 4), dtype=np.uint16)
        label = (image[..., 3] > 30000).astype(np.uint8)
        write(tmp_path / "images" / f"{stem}.tif", image, nodata=0)
        write(tmp_path / "masks" / f"{stem}.tif", label[..., None])
        arrays[stem] = (image, label)
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump(
        {"classes": ["land", "water"], "bands": ["red", "green", "blue", "nir"], "nodata": 0}))
    return tmp_path, arrays


def test_grid_windows_cover_every_raster_and_equal_their_crops(scenes):
    root, arrays = scenes
    ds = build_dataset({"name": "raster_windows", "root": str(root), "window": 32}, "val")
    covered = {stem: np.zeros(a[1].shape, bool) for stem, a in arrays.items()}
    for k in range(len(ds)):
        i, y, x = ds.position(k)
        stem = ds.rasters.ids[i]
        image, label = ds[k]
        assert image.shape == (32, 32, 4) and image.dtype == np.uint16
        np.testing.assert_array_equal(image, arrays[stem][0][y:y + 32, x:x + 32])
        np.testing.assert_array_equal(label, arrays[stem][1][y:y + 32, x:x + 32])
        covered[stem][y:y + 32, x:x + 32] = True
    assert all(c.all() for c in covered.values())


def test_random_windows_are_repeatable_and_read_by_window(scenes, monkeypatch):
    root, arrays = scenes
    spec = {"name": "raster_windows", "root": str(root), "window": 24, "windows": 10, "seed": 3}
    ds = build_dataset(spec, "train")
    assert len(ds) == 10 and ds.sampling == "random"
    monkeypatch.setattr("fcnseg.data.rasters.RasterReader.read_all",
                        lambda self: pytest.fail("a whole raster was read"))
    first = [ds[k][0] for k in range(10)]
    again = build_dataset(spec, "train")
    for k in range(10):
        np.testing.assert_array_equal(again[k][0], first[k])
    assert len({ds.position(k) for k in range(10)}) > 5


def test_nodata_pixels_of_a_window_are_ignored(scenes):
    root, arrays = scenes
    image, label = arrays["b"]
    image[5, 6] = 0
    write(root / "images" / "b.tif", image, nodata=0)
    ds = build_dataset({"name": "raster_windows", "root": str(root), "window": 64}, "val")
    k = next(k for k in range(len(ds)) if ds.name(k).startswith("b@"))
    _, lab = ds[k]
    assert lab[5, 6] == 255 and (lab == 255).sum() == 1


def test_nodata_pixels_of_a_window_take_each_bands_mean(scenes, monkeypatch):
    root, arrays = scenes
    monkeypatch.setenv("FCNSEG_HOME", str(root / "home"))  # the band statistics' cache
    image, _ = arrays["b"]
    image[5, 6] = 0
    write(root / "images" / "b.tif", image, nodata=0)
    ds = build_dataset({"name": "raster_windows", "root": str(root), "window": 64}, "val")
    k = next(k for k in range(len(ds)) if ds.name(k).startswith("b@"))
    window, _ = ds[k]
    np.testing.assert_array_equal(window[5, 6], np.float32(ds.rasters.pad_values["color"]))
    np.testing.assert_array_equal(window[5, 7], image[5, 7])


def test_label_raster_off_the_image_grid_is_one_line_naming_it(scenes):
    root, arrays = scenes
    write(root / "masks" / "a.tif", arrays["a"][1][..., None],
          transform=Affine(2.0, 0.0, 300002.0, 0.0, -2.0, 6000000.0))
    ds = build_dataset({"name": "raster_windows", "root": str(root), "window": 64}, "val")
    with pytest.raises(DataError, match=r"masks/a\.tif: label raster's geotransform"):
        ds[0]
