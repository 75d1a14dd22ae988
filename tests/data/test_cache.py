"""Decoded samples kept in memory (data.cache): the same samples, errors kept, the auto rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fcnseg.data import DataError, build_dataset
from fcnseg.data.cache import DecodedSamples, cache_decoded


def _folder(root: Path, count: int = 4) -> dict:
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "dataset.yaml").write_text("classes: [bg, thing]\nignore_index: 255\n")
    rng = np.random.default_rng(0)
    for n in range(count):
        Image.fromarray(rng.integers(0, 255, (20 + n, 30, 3), np.uint8)).save(
            root / "images" / f"{n}.png")
        mask = rng.integers(0, 2, (20 + n, 30), np.uint8)
        mask[0, :3] = 255
        Image.fromarray(mask).save(root / "masks" / f"{n}.png")
    (root / "train.txt").write_text("".join(f"{n}\n" for n in range(count)))
    return {"name": "folder", "root": str(root)}


def test_cached_samples_equal_decoded_ones_and_are_fresh_copies(tmp_path: Path) -> None:
    dataset = build_dataset(_folder(tmp_path), split="train")
    store = DecodedSamples(dataset.load, len(dataset), threads=2)
    for i in range(len(dataset)):
        image, label = store(i)
        want_image, want_label = dataset.load(i)
        assert image.dtype == want_image.dtype and label.dtype == np.int64
        assert np.array_equal(image, want_image) and np.array_equal(label, want_label)
        image[:] = 0  # a transform writing into its sample changes nothing kept
        assert np.array_equal(store(i)[0], want_image)
    assert store.nbytes == sum((20 + n) * 30 * 4 for n in range(4))  # labels kept as uint8


def test_a_cached_dataset_decodes_no_file_again(tmp_path: Path) -> None:
    spec = _folder(tmp_path)
    dataset = build_dataset(spec, split="train")
    plan = cache_decoded("ram", [dataset])
    assert plan.cached and "4 samples decoded into memory" in plan.message
    before = [dataset[i] for i in range(4)]
    for path in (tmp_path / "images").iterdir():
        path.unlink()
    after = [dataset[i] for i in range(4)]
    for (image, label), (image_again, label_again) in zip(before, after, strict=True):
        assert np.array_equal(image, image_again) and np.array_equal(label, label_again)


def test_a_bad_sample_raises_its_error_when_used(tmp_path: Path) -> None:
    spec = _folder(tmp_path)
    (tmp_path / "masks" / "2.png").write_bytes(b"not a png")
    dataset = build_dataset(spec, split="train")
    cache_decoded("ram", [dataset])
    dataset[1]
    with pytest.raises(DataError, match="2.png"):
        dataset[2]


def test_auto_keeps_the_set_only_under_a_quarter_of_the_available_memory(
        tmp_path: Path) -> None:
    spec = _folder(tmp_path)
    size = sum((20 + n) * 30 * 4 for n in range(4))
    small = build_dataset(spec, split="train")
    plan = cache_decoded("auto", [small], available=4 * size)  # not under a quarter
    assert not plan.cached and "not under a quarter" in plan.message
    assert not isinstance(small.load, DecodedSamples)
    plan = cache_decoded("auto", [small], available=4 * size + 64)
    assert plan.cached and "under a quarter" in plan.message
    two = build_dataset(spec, split="train")  # two processes need twice as much
    assert not cache_decoded("auto", [two], processes=2, available=4 * size + 64).cached
    assert "off" in cache_decoded("none", [two]).message


def test_a_lazy_cache_decodes_each_sample_when_first_used_and_only_then(tmp_path: Path) -> None:
    dataset = build_dataset(_folder(tmp_path), split="train")
    calls: list[int] = []

    def load(index: int):  # type: ignore[no-untyped-def]
        calls.append(index)
        return dataset.load(index)

    store = DecodedSamples(load, len(dataset), eager=False)
    assert calls == []
    for i in (2, 0, 2, 0, 2):
        assert np.array_equal(store(i)[1], dataset.load(i)[1])
    assert calls == [2, 0]


@pytest.mark.parametrize("eager", [True, False])
def test_cached_problems_name_a_bad_sample_decoding_each_sample_once(tmp_path: Path,
                                                                     monkeypatch, eager) -> None:
    import fcnseg.data.base
    from fcnseg.data.cache import cached_problems

    spec = _folder(tmp_path)
    image = tmp_path / "images" / "2.png"
    image.write_bytes(image.read_bytes()[:100])  # truncated: its header still reads
    dataset = build_dataset(spec, split="train")
    decoded = []
    read_image = fcnseg.data.base.read_image
    monkeypatch.setattr(fcnseg.data.base, "read_image",
                        lambda path: decoded.append(path) or read_image(path))
    assert cached_problems(dataset) is None  # not cached: not known without decoding
    cache_decoded("ram", [dataset], eager=eager)
    problems = cached_problems(dataset)
    assert len(problems) == 1 and problems[0].startswith(f"{image}: ")
    assert len(decoded) == 4
    for i in (0, 1, 3):
        dataset[i]
    assert len(decoded) == 4  # kept: not decoded again when used
