"""Per-band statistics of a multi-band folder dataset, cached, and check-data's report."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import yaml

from fcnseg.cli.main import main
from fcnseg.data import FolderSegmentation
from fcnseg.data.band_stats import band_statistics

BANDS = ["red", "green", "blue", "nir"]


def write_folder(root, images, config=None):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem, image in images.items():
        tifffile.imwrite(root / "images" / f"{stem}.tif", image, photometric="minisblack",
                         planarconfig="contig")
        tifffile.imwrite(root / "masks" / f"{stem}.tif",
                         np.zeros(image.shape[:2], np.uint8))
    cfg = {"classes": ["a", "b"], "bands": BANDS, **(config or {})}
    (root / "dataset.yaml").write_text(yaml.safe_dump(cfg))
    return root


def images(seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for k in range(3):
        a = rng.integers(0, 4000, (20, 30, 4), dtype=np.uint16)
        a[..., 2] = 1234  # a band that never varies
        out[f"s{k}"] = a
    return out


def test_mean_std_and_percentiles_are_those_of_all_pixels(tmp_path):
    data = images()
    ds = FolderSegmentation(write_folder(tmp_path / "d", data))
    stats = band_statistics(ds, cache_dir=tmp_path / "cache")
    every = np.concatenate([a.reshape(-1, 4) for a in data.values()]).astype(np.float64)
    np.testing.assert_allclose(stats.mean, every.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, every.std(0), rtol=1e-9)
    np.testing.assert_allclose(stats.p2, np.percentile(every, 2, axis=0, method="inverted_cdf"))
    np.testing.assert_allclose(stats.p98, np.percentile(every, 98, axis=0,
                                                        method="inverted_cdf"))
    assert stats.constant_bands == ["blue"]


def test_statistics_are_cached_until_an_image_changes(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "d", images())
    ds = FolderSegmentation(root)
    first = band_statistics(ds, cache_dir=tmp_path / "cache")
    monkeypatch.setattr("fcnseg.data.band_stats.open_raster",
                        lambda *a, **k: pytest.fail("read again"))
    assert band_statistics(ds, cache_dir=tmp_path / "cache") == first
    monkeypatch.undo()
    changed = images(seed=1)["s0"]
    tifffile.imwrite(root / "images" / "s0.tif", changed, photometric="minisblack",
                     planarconfig="contig")
    assert band_statistics(ds, cache_dir=tmp_path / "cache").mean != first.mean


def test_nodata_and_nan_pixels_are_counted_and_left_out(tmp_path):
    a = np.random.default_rng(0).random((10, 10, 4)).astype(np.float32)
    a[0, 0] = -9999.0
    a[1, 1, 3] = np.nan
    ds = FolderSegmentation(write_folder(tmp_path / "d", {"x": a}, {"nodata": -9999}))
    stats = band_statistics(ds, use_cache=False)
    assert stats.nodata_pixels == 2 and stats.nan_pixels == [0, 0, 0, 1]
    kept = np.delete(a.reshape(-1, 4), [0, 11], axis=0).astype(np.float64)
    np.testing.assert_allclose(stats.mean, kept.mean(0), rtol=1e-6)


def test_statistics_of_32_bit_integer_bands_are_those_of_the_values_stored(tmp_path):
    rng = np.random.default_rng(0)
    # Large values that vary little: float32 steps are 256 apart here; 2**32 - 1 is nodata.
    a = (4_000_000_000 + rng.integers(0, 7, (10, 10, 4))).astype(np.uint32)
    a[0, 0] = 2**32 - 1
    a[0, 1] = 2**32 - 2  # data, though float32 would take it for the nodata value
    ds = FolderSegmentation(write_folder(tmp_path / "d", {"x": a}, {"nodata": 2**32 - 1}))
    stats = band_statistics(ds, use_cache=False)
    kept = np.delete(a.reshape(-1, 4), [0], axis=0).astype(np.float64)
    assert stats.nodata_pixels == 1 and stats.pixels == 99
    np.testing.assert_allclose(stats.mean, kept.mean(0), rtol=1e-15)
    np.testing.assert_allclose(stats.std, kept.std(0), rtol=1e-9)
    np.testing.assert_array_equal(stats.p98, np.percentile(kept, 98, axis=0, method="linear"))


def test_check_data_prints_bands_and_names_images_of_another_band_count(tmp_path, capsys,
                                                                        monkeypatch):
    monkeypatch.setenv("FCNSEG_HOME", str(tmp_path / "home"))
    data = images()
    data["odd"] = data["s0"][..., :3]
    root = write_folder(tmp_path / "d", data)
    rc = main(["check-data", "--dataset", "folder", "--root", str(root), "--workers", "0"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "warning: band 'blue' has no variance" in out
    assert [line.strip() for line in out.splitlines() if "odd.tif" in line] == [
        f"{root / 'images' / 'odd.tif'}: has 3 band(s) but 4 are declared (red, green, blue, "
        f"nir)"]
    assert any(line.startswith("nir ") for line in out.splitlines())


def _one_band_folder(root, kinds):
    """A 1-band folder dataset whose images are of the sample types ``kinds`` (stem: dtype),
    the 8-bit ones PNGs, the others TIFFs."""
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for stem, dtype in kinds.items():
        a = rng.integers(0, 256 if dtype == np.uint8 else 4096, (16, 20)).astype(dtype)
        if dtype == np.uint8:
            Image.fromarray(a).save(root / "images" / f"{stem}.png")
        else:
            tifffile.imwrite(root / "images" / f"{stem}.tif", a)
        Image.fromarray(np.zeros((16, 20), np.uint8)).save(root / "masks" / f"{stem}.png")
    (root / "dataset.yaml").write_text(yaml.safe_dump({"classes": ["a", "b"],
                                                       "bands": ["intensity"]}))
    return root


def test_the_band_convention_records_the_images_sample_types(tmp_path, monkeypatch):
    monkeypatch.setenv("FCNSEG_HOME", str(tmp_path / "home"))
    root = _one_band_folder(tmp_path / "d", {"a": np.uint16, "b": np.uint16})
    stats = band_statistics(FolderSegmentation(root), use_cache=False)
    assert stats.sample_types == {"uint16": [2, str(root / "images" / "a.tif")]}
    assert FolderSegmentation(root).band_convention().sample_types == ("uint16",)


def test_check_data_names_an_image_of_each_sample_type_when_they_mix(tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.setenv("FCNSEG_HOME", str(tmp_path / "home"))
    root = _one_band_folder(tmp_path / "d", {"a": np.uint16, "b": np.uint16, "c": np.uint8})
    assert main(["check-data", "--dataset", "folder", "--root", str(root),
                 "--workers", "0"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "sample types" in line]
    assert lines == [
        f"warning: the images mix sample types: 2 of uint16 (e.g. {root / 'images' / 'a.tif'}),"
        f" 1 of uint8 (e.g. {root / 'images' / 'c.png'}); their values lie on other scales, "
        f"which the band statistics standardise differently: convert them to one type on one "
        f"scale"]


def test_check_data_says_nothing_of_sample_types_when_they_agree(tmp_path, capsys,
                                                                monkeypatch):
    monkeypatch.setenv("FCNSEG_HOME", str(tmp_path / "home"))
    root = _one_band_folder(tmp_path / "d", {"a": np.uint16, "b": np.uint16})
    assert main(["check-data", "--dataset", "folder", "--root", str(root),
                 "--workers", "0"]) == 0
    assert "sample types" not in capsys.readouterr().out


def test_check_data_prints_statistics_cached_before_min_and_max_were_recorded(tmp_path, capsys,
                                                                             monkeypatch):
    import json

    monkeypatch.setenv("FCNSEG_HOME", str(tmp_path / "home"))
    root = write_folder(tmp_path / "d", images())
    band_statistics(FolderSegmentation(root))
    (cached,) = (tmp_path / "home" / "band_stats").glob("*.json")
    data = json.loads(cached.read_text())
    del data["low"], data["high"]  # as an earlier version cached them
    cached.write_text(json.dumps(data))
    main(["check-data", "--dataset", "folder", "--root", str(root), "--workers", "0"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines if line.startswith("band ")] == [
        ["band", "mean", "std", "p2", "p98"]]
    assert any(line.startswith("nir ") for line in lines)
