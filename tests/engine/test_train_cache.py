"""data.cache in training: each file decoded once, and the same run as without the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _train_helpers import tiny_recipe, write_folder_dataset

import fcnseg.data.base
from fcnseg.checkpoint import load_checkpoint
from fcnseg.engine import load_config
from fcnseg.engine.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    decoded: list[str] = []
    read_image = fcnseg.data.base.read_image

    def counting(path):  # type: ignore[no-untyped-def]
        decoded.append(str(path))
        return read_image(path)

    monkeypatch.setattr(fcnseg.data.base, "read_image", counting)
    return decoded


@pytest.mark.parametrize(("cache", "decodes"), [("ram", 6 + 6), ("none", 4 * 6 + 2 * 6)])
def test_each_image_is_decoded_once_with_the_cache(tmp_path: Path, monkeypatch, cache: str,
                                                   decodes: int) -> None:
    spec = write_folder_dataset(tmp_path / "data", count=6)
    decoded = _count_decodes(monkeypatch)
    # 6 images, batch 2: 12 iterations are 4 epochs; evaluations (6 images) at 6 and 12
    recipe = tiny_recipe(data={"train": spec, "val": {**spec, "split": "val"},
                               "cache": cache, "num_workers": 0},
                         train={"iterations": 12, "eval_every": 6})
    train(load_config(recipe), out=tmp_path / "run")
    assert len(decoded) == decodes


def test_a_cached_run_with_a_worker_is_the_uncached_run_bit_for_bit(tmp_path: Path) -> None:
    # flips and dropout draw random numbers per sample and step: the samples must be the same
    common = {"model": {"dropout": 0.5}, "train": {"iterations": 8, "eval_every": 8}}
    runs = {}
    for name, data in (("plain", {"cache": "none", "num_workers": 0}),
                       ("cached", {"cache": "ram", "num_workers": 1})):
        recipe = tiny_recipe(data=data, **common)
        train(load_config(recipe), out=tmp_path / name)
        runs[name] = load_checkpoint(tmp_path / name / "last.pt")["model_state_dict"]
    for key, value in runs["plain"].items():
        assert torch.equal(value, runs["cached"][key]), key


def test_the_run_says_what_start_up_decided_and_cost(tmp_path: Path, capsys) -> None:
    train(load_config(tiny_recipe(train={"iterations": 1, "eval_every": 1})),
          out=tmp_path / "run")
    out = capsys.readouterr().out
    # no loader workers here (2 cores): each sample is kept as first decoded
    assert "data cache: the 10 + 4 samples are kept in memory as first decoded" in out
    assert "auto: under a quarter of the" in out
    assert "time to first step: " in out
    assert "evaluation: batches of up to 2 images of one size" not in out  # the recipe says 2


def _with_truncated_val_image(root: Path) -> Path:
    """A sample in the val list only, whose image is cut short (its header still reads)."""
    from PIL import Image

    Image.open(root / "images" / "0.png").save(root / "images" / "cut.png")
    Image.open(root / "masks" / "0.png").save(root / "masks" / "cut.png")
    cut = root / "images" / "cut.png"
    cut.write_bytes(cut.read_bytes()[:45])  # the image data cut short, the header whole
    with open(root / "val.txt", "a") as f:
        f.write("cut\n")
    return cut


def test_a_corrupt_val_image_stops_the_run_at_start_up(tmp_path: Path) -> None:
    from fcnseg.engine import BadSampleError

    spec = write_folder_dataset(tmp_path / "data", count=4)
    cut = _with_truncated_val_image(tmp_path / "data")
    recipe = tiny_recipe(data={"train": spec, "val": {**spec, "split": "val"}, "cache": "ram",
                               "num_workers": 0}, train={"iterations": 4, "eval_every": 4})
    with pytest.raises(BadSampleError) as raised:
        train(load_config(recipe), out=tmp_path / "run")
    message = str(raised.value)
    assert message.startswith(f"data.val: {cut}: ") and "\n" not in message
    assert "skip_bad" in message
    assert not (tmp_path / "run" / "last.pt").exists()  # no training time spent


def test_a_corrupt_train_image_the_cache_decoded_stops_the_run_at_start_up(
        tmp_path: Path) -> None:
    from fcnseg.engine import BadSampleError

    spec = write_folder_dataset(tmp_path / "data", count=4)
    cut = _with_truncated_val_image(tmp_path / "data")
    (tmp_path / "data" / "train.txt").write_text("0\n1\ncut\n2\n3\n")
    (tmp_path / "data" / "val.txt").write_text("0\n1\n")
    # a loader worker: the cache decodes every sample at start-up, before the workers fork
    recipe = tiny_recipe(data={"train": spec, "val": {**spec, "split": "val"}, "cache": "ram",
                               "num_workers": 1}, train={"iterations": 4, "eval_every": 4})
    with pytest.raises(BadSampleError) as raised:
        train(load_config(recipe), out=tmp_path / "run")
    message = str(raised.value)
    assert message.startswith(f"data.train: {cut}: ") and "\n" not in message
    assert not (tmp_path / "run" / "last.pt").exists()  # no training time spent


def test_without_the_cache_a_val_image_cut_short_stops_the_run_at_start_up(
        tmp_path: Path) -> None:
    from fcnseg.engine import BadSampleError

    spec = write_folder_dataset(tmp_path / "data", count=4)
    cut = _with_truncated_val_image(tmp_path / "data")
    recipe = tiny_recipe(data={"train": spec, "val": {**spec, "split": "val"}, "cache": "none",
                               "num_workers": 0}, train={"iterations": 4, "eval_every": 4})
    with pytest.raises(BadSampleError, match=f"^data.val: {cut}: unreadable image"):
        train(load_config(recipe), out=tmp_path / "run")
    assert not (tmp_path / "run" / "last.pt").exists()


def test_skip_bad_leaves_a_corrupt_val_image_out_and_trains(tmp_path: Path) -> None:
    spec = write_folder_dataset(tmp_path / "data", count=4)
    _with_truncated_val_image(tmp_path / "data")
    recipe = tiny_recipe(data={"train": spec, "val": {**spec, "split": "val"}, "cache": "ram",
                               "num_workers": 0, "skip_bad": True},
                         train={"iterations": 2, "eval_every": 2})
    train(load_config(recipe), out=tmp_path / "run")
    assert load_checkpoint(tmp_path / "run" / "last.pt")["iteration"] == 2


def _write_cityscapes(root: Path, mask: np.ndarray, splits: tuple[str, ...]) -> None:
    """Two 8×4 images a split, each with ``mask`` as its *_gtFine_labelIds.png."""
    from PIL import Image

    for split in splits:
        for k in range(2):
            stem = f"{split}/lindau/lindau_000000_00001{k}"
            image = root / "leftImg8bit" / f"{stem}_leftImg8bit.png"
            label = root / "gtFine" / f"{stem}_gtFine_labelIds.png"
            image.parent.mkdir(parents=True, exist_ok=True)
            label.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 4)).save(image)
            Image.fromarray(mask).save(label)


def test_train_id_masks_saved_as_label_ids_stop_the_run_at_start_up(tmp_path: Path) -> None:
    # Train ids read as label ids would train every class shifted (car as fence, road void).
    from fcnseg.engine import BadSampleError

    train_ids = np.array([[10] * 8, [2, 2, 2, 2, 2, 5, 10, 10], [0, 0, 0, 13, 13, 5, 0, 0],
                          [255] * 8], np.uint8)  # sky, building, pole, road, car; void
    _write_cityscapes(tmp_path / "cs", train_ids, ("train", "val"))
    spec = {"name": "cityscapes", "root": str(tmp_path / "cs")}
    recipe = tiny_recipe(data={"train": spec, "val": {**spec, "split": "val"}, "cache": "ram",
                               "num_workers": 0}, train={"iterations": 4, "eval_every": 4})
    with pytest.raises(BadSampleError) as raised:
        train(load_config(recipe), out=tmp_path / "run")
    message = str(raised.value)
    assert message.startswith("data.val: ") and "lindau_000000_000010_gtFine_labelIds" in message
    assert "`labels: train_ids`" in message and "\n" not in message
    assert "skip_bad" not in message  # leaving every sample out is no fix
    assert not (tmp_path / "run" / "last.pt").exists()


def test_validating_on_the_cityscapes_test_split_is_refused_at_start_up(tmp_path: Path) -> None:
    label_ids = np.full((4, 8), 7, np.uint8)  # road
    _write_cityscapes(tmp_path / "cs", label_ids, ("train",))
    _write_cityscapes(tmp_path / "cs", np.zeros((4, 8), np.uint8), ("test",))  # all void
    spec = {"name": "cityscapes", "root": str(tmp_path / "cs")}
    recipe = tiny_recipe(data={"train": spec, "val": {**spec, "split": "test"},
                               "num_workers": 0}, train={"iterations": 4, "eval_every": 4})
    with pytest.raises(ValueError, match=r"^data\.val: Cityscapes test labels are withheld "
                                         r"\(all void\): nothing to score; [^\n]*$"):
        train(load_config(recipe), out=tmp_path / "run")
    assert not (tmp_path / "run" / "last.pt").exists()
