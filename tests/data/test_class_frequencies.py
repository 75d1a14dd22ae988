"""Class pixel counts (cached by the dataset's fingerprint) and class-balancing weights."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fcnseg.data.class_frequencies as cf
from fcnseg.data import build_dataset
from fcnseg.data.class_frequencies import (
    ClassBalanceWarning,
    class_pixel_counts,
    class_weights,
    format_class_table,
)


def _write_masks(root: Path, masks: list[np.ndarray]) -> dict:
    """A three-class folder dataset whose masks are exactly ``masks``."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "dataset.yaml").write_text("classes: [bg, a, b]\n")
    for n, mask in enumerate(masks):
        Image.fromarray(np.zeros((*mask.shape, 3), np.uint8)).save(root / "images" / f"{n}.png")
        Image.fromarray(mask.astype(np.uint8)).save(root / "masks" / f"{n}.png")
    (root / "train.txt").write_text("".join(f"{n}\n" for n in range(len(masks))))
    return {"name": "folder", "root": str(root), "split": "train"}


def _masks() -> list[np.ndarray]:
    first = np.zeros((10, 10), np.uint8)
    first[:2] = 1          # 20 pixels of class 1
    first[9] = 255         # 10 ignored
    second = np.full((10, 10), 2, np.uint8)
    second[:5] = 0         # 50 of class 0, 50 of class 2
    return [first, second]


def test_counts_are_exact_and_exclude_the_ignore_value(tmp_path: Path) -> None:
    ds = build_dataset(_write_masks(tmp_path / "d", _masks()))
    counts = class_pixel_counts(ds, cache_dir=tmp_path / "cache")
    assert counts.tolist() == [70 + 50, 20, 50]


def test_a_parallel_scan_counts_the_same(tmp_path: Path) -> None:
    ds = build_dataset(_write_masks(tmp_path / "d", _masks() * 3))
    assert class_pixel_counts(ds, cache_dir=tmp_path / "c1", workers=2).tolist() == \
        class_pixel_counts(ds, cache_dir=tmp_path / "c2", workers=0).tolist()


def test_an_unchanged_dataset_is_read_from_the_cache(tmp_path: Path, monkeypatch) -> None:
    ds = build_dataset(_write_masks(tmp_path / "d", _masks()))
    first = class_pixel_counts(ds, cache_dir=tmp_path / "cache")

    def no_scan(*args, **kwargs):
        raise AssertionError("the masks were read again")

    monkeypatch.setattr(cf, "scan_dataset", no_scan)
    assert class_pixel_counts(ds, cache_dir=tmp_path / "cache").tolist() == first.tolist()


def test_changing_one_mask_invalidates_the_cache(tmp_path: Path) -> None:
    root = tmp_path / "d"
    ds = build_dataset(_write_masks(root, _masks()))
    assert class_pixel_counts(ds, cache_dir=tmp_path / "cache")[1] == 20
    path = root / "masks" / "0.png"
    Image.fromarray(np.ones((10, 10), np.uint8)).save(path)
    # an edit some time later (a filesystem with coarse timestamps could not tell otherwise)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert class_pixel_counts(ds, cache_dir=tmp_path / "cache").tolist() == [50, 100, 50]


def test_median_frequency_weights_are_median_over_frequency() -> None:
    # frequencies 0.6, 0.3, 0.1; median 0.3
    np.testing.assert_allclose(class_weights([600, 300, 100], "median_frequency", None),
                               [0.5, 1.0, 3.0], rtol=1e-12)


def test_inverse_frequency_weights_are_clipped_at_max_weight() -> None:
    # 1 / (3 f): 1/2.7, 1/0.27, 1/0.03 = 33.3 -> 10
    np.testing.assert_allclose(class_weights([900, 90, 10], "inverse_frequency", 10.0),
                               [1 / 2.7, 1 / 0.27, 10.0], rtol=1e-12)


def test_a_balanced_set_gets_unit_inverse_frequency_weights() -> None:
    np.testing.assert_allclose(class_weights([5, 5, 5, 5], "inverse_frequency", None),
                               [1.0] * 4, rtol=1e-12)


@pytest.mark.parametrize("max_weight, expected", [(10.0, 10.0), (None, 2.0)])
def test_a_class_that_never_occurs_gets_a_finite_weight_and_a_warning(max_weight,
                                                                       expected) -> None:
    with pytest.warns(ClassBalanceWarning, match="class b never occurs"):
        weights = class_weights([600, 200, 0], "median_frequency", max_weight,
                                class_names=["bg", "a", "b"])
    assert np.isfinite(weights).all()
    # occurring classes: median(0.75, 0.25) = 0.5 -> 0.5/0.75, 0.5/0.25
    np.testing.assert_allclose(weights, [2 / 3, 2.0, expected], rtol=1e-12)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="loss.class_weights: 'balanced'"):
        class_weights([1, 2], "balanced")


def test_table_lists_every_class_with_its_share_and_weight() -> None:
    table = format_class_table(["bg", "a"], np.array([75, 25]), np.array([0.5, 1.5]))
    lines = table.splitlines()
    assert lines[1].split() == ["bg", "75", "75.00%", "0.5"]
    assert lines[2].split() == ["a", "25", "25.00%", "1.5"]


@pytest.mark.parametrize("content", [
    '{"fingerprint": "FP", "counts": ["a", "b", "c"]}',  # once: invalid literal for int()
    '{"fingerprint": "FP", "counts": [0, 0, 0]}',  # once: "no labelled pixel"
    '{"fingerprint": "FP", "counts": [[1], [2], [3]]}',
    '{"fingerprint": "FP", "counts": [-5, 10, 10]}',
    '{"fingerprint": "FP", "counts": [true, true, true]}',
    '{"fingerprint": "FP", "counts": [1e400, 1, 1]}',
    '{"fingerprint": "FP", "counts": [100000000000000000000000000000, 1, 1]}',
    '{"fingerprint": "FP", "counts": null}',
    '[{"fingerprint": "FP", "counts": [1, 2, 3]}]',
    '{"fingerprint": "FP", "counts": [1, 2',
    "\udcff",
    "[" * 100_000,
])
def test_a_damaged_cache_is_counted_again_with_a_warning_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    ds = build_dataset(_write_masks(tmp_path / "d", _masks()))
    cache = tmp_path / "cache"
    class_pixel_counts(ds, cache_dir=cache)
    (cache_file,) = cache.iterdir()
    fingerprint = cf.dataset_fingerprint(ds)
    cache_file.write_bytes(content.replace("FP", fingerprint)
                           .encode("utf-8", "surrogateescape"))
    with caplog.at_level("WARNING", logger="fcnseg.data.class_frequencies"):
        counts = class_pixel_counts(ds, cache_dir=cache)
    assert counts.tolist() == [120, 20, 50]
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"{cache_file}: damaged class-frequency cache (")
    assert message.endswith("counting the class pixels again") and "\n" not in message
    assert cf._read_cache(cache_file, fingerprint, 3).tolist() == [120, 20, 50]  # rewritten
