"""The stages of a run used one by one: build a setup, step it, save and restore its state;
read a worker's data error back; check validation files from their headers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _train_helpers import tiny_recipe, write_folder_dataset
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from fcnseg.checkpoint import load_checkpoint
from fcnseg.data import DataError, build_dataset
from fcnseg.engine import TrainSetup, TrainState, build_setup, load_config
from fcnseg.engine.config import TrainConfig
from fcnseg.engine.distributed import setup_distributed
from fcnseg.engine.errors import data_error_message
from fcnseg.engine.setup import sample_file_problems
from fcnseg.engine.state import seed_everything
from fcnseg.engine.trainer import step

pytestmark = pytest.mark.usefixtures("one_thread")


def _setup(config: TrainConfig, ckpt: dict | None = None) -> TrainSetup:
    seed_everything(config.seed)
    return build_setup(config, setup_distributed("cpu"), ckpt)


def _steps(setup: TrainSetup, state: TrainState, count: int) -> None:
    setup.sampler.set_epoch(state.epoch, start=state.position * setup.config.data.batch_size)
    batches = iter(setup.loader)
    for _ in range(count):
        images, labels = next(batches)
        step(setup, images, labels, float((labels != setup.ignore_index).sum()))
        state.iteration += 1
        state.position += 1


def test_a_state_restored_into_a_new_setup_continues_bit_for_bit(tmp_path: Path) -> None:
    # Dropout and flips draw random numbers: the restored RNG states must match exactly.
    config = load_config(tiny_recipe(model={"dropout": 0.5}), out=str(tmp_path / "run"))
    first = _setup(config)
    state = TrainState.start(first)
    _steps(first, state, 2)
    state.save(first, tmp_path / "mid.pt")
    _steps(first, state, 2)

    ckpt = load_checkpoint(tmp_path / "mid.pt")
    second = _setup(config, ckpt)
    said: list[str] = []
    restored = TrainState.restore(ckpt, second, said.append)
    assert (restored.iteration, restored.epoch, restored.position) == (2, 0, 2)
    assert said == [f"resumed {tmp_path / 'mid.pt'} at iteration 2 (epoch 0, batch 2)"]
    _steps(second, restored, 2)
    ours, theirs = first.model.state_dict(), second.model.state_dict()
    for key, value in ours.items():
        assert torch.equal(value, theirs[key]), key


class _MissingMasks(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> None:
        raise DataError(f"/data/masks/{index}.png", "missing mask (no such file)")


def test_a_data_error_raised_in_a_loader_worker_is_read_back_as_file_and_problem() -> None:
    loader = DataLoader(_MissingMasks(), num_workers=1)
    # torch re-raises it as a DataError when DataError can be rebuilt from the worker's text,
    # as a RuntimeError holding that text otherwise
    with pytest.raises((DataError, RuntimeError)) as e:
        next(iter(loader))
    message = data_error_message(e.value)
    assert message is not None and "\n" not in message
    assert message.startswith("/data/masks/0.png: missing mask (no such file)")
    assert data_error_message(RuntimeError("CUDA out of memory")) is None


def _phone_photo(path: Path) -> None:
    """Stored 32 wide × 16 high, tagged to be shown turned a quarter (EXIF orientation 6)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((16, 32, 3), np.uint8)).save(path, exif=exif)


@pytest.mark.parametrize(("mask_width", "mask_height", "problem"),
                         [(16, 32, None), (32, 16, "mask is 32×16 but its image 0.jpg is 16×32")])
def test_the_start_up_check_compares_each_mask_with_its_image_turned_upright(
    tmp_path: Path, mask_width: int, mask_height: int, problem: str | None
) -> None:
    spec = write_folder_dataset(tmp_path / "data", count=2)
    images, masks = tmp_path / "data" / "images", tmp_path / "data" / "masks"
    (images / "0.png").unlink()
    _phone_photo(images / "0.jpg")
    Image.fromarray(np.zeros((mask_height, mask_width), np.uint8)).save(masks / "0.png")
    found = sample_file_problems(build_dataset(spec, split="val"))
    assert found == ([] if problem is None else [f"{masks / '0.png'}: {problem} (W×H)"])


def test_the_start_up_check_names_a_missing_image(tmp_path: Path) -> None:
    spec = write_folder_dataset(tmp_path / "data", count=3)
    dataset = build_dataset(spec, split="val")
    (tmp_path / "data" / "images" / "1.png").unlink()
    assert sample_file_problems(dataset) == [
        f"{tmp_path / 'data' / 'images' / '1.png'}: missing image (no such file)"]


def test_the_start_up_check_decodes_only_files_cut_short(tmp_path: Path, monkeypatch) -> None:
    spec = write_folder_dataset(tmp_path / "data", count=3)
    dataset = build_dataset(spec, split="val")
    images = tmp_path / "data" / "images"
    cut = images / "1.png"
    cut.write_bytes(cut.read_bytes()[:60])  # the header whole, the pixels cut short
    with open(images / "2.png", "ab") as f:
        f.write(b"appended by a camera")  # no PNG ending, but whole: it decodes
    loaded: list[int] = []
    load = dataset.load
    monkeypatch.setattr(dataset, "load", lambda i: loaded.append(i) or load(i))
    (problem,) = sample_file_problems(dataset)
    assert problem.startswith(f"{cut}: unreadable image: ") and "\n" not in problem
    assert loaded == [1, 2]


@pytest.mark.parametrize(("setting", "expected"), [(None, True), (False, False)])
def test_training_on_the_cpu_is_channels_last_unless_the_recipe_says_otherwise(
    setting: bool | None, expected: bool
) -> None:
    setup = _setup(load_config(tiny_recipe(channels_last=setting), out="unused"))
    assert setup.channels_last is expected
    assert ("channels_last" in setup.model.optimizations) is expected


def test_the_stage_by_stage_example_of_the_docs_resumes_at_its_next_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text()
    section = text.split("## The code, stage by stage", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace('load_config("synthetic-fcn8s", out="runs/x")',
                        'load_config(tiny_recipe(), out="runs/x")')
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "training.md", "exec"), {"tiny_recipe": tiny_recipe})
    # what `fcnseg train --out runs/x --resume` does: the run folder's recipe, then last.pt
    config = load_config(tmp_path / "runs" / "x" / "recipe.yaml", out="runs/x")
    ckpt = load_checkpoint(tmp_path / "runs" / "x" / "last.pt")
    said: list[str] = []
    TrainState.restore(ckpt, _setup(config, ckpt), said.append)
    assert len(said) == 1 and said[0].endswith("last.pt at iteration 1 (epoch 0, batch 1)")
