"""Start-up warnings: each names the setting and a value to try; the trainer prints them."""

from __future__ import annotations

from pathlib import Path

import pytest
from _train_helpers import tiny_recipe, write_folder_dataset

from fcnseg.engine import load_config, train
from fcnseg.engine.preflight import (
    MachineFacts,
    crop_from_sizes,
    eta_warning,
    images_reaching,
    preflight_warnings,
    sample_image_sizes,
    summed_lr_warning,
)

pytestmark = pytest.mark.usefixtures("one_thread")


TWO_CORES = MachineFacts(cpu_count=2)


def _config(**sections):
    return load_config(tiny_recipe(**sections))


def test_a_sensible_config_gets_no_warning() -> None:
    config = _config(data={"num_workers": 2, "crop_size": 32})
    assert preflight_warnings(config, TWO_CORES, [(48, 64)] * 5) == []


def test_more_workers_than_cores_is_warned_about_with_a_value_to_set() -> None:
    messages = preflight_warnings(_config(data={"num_workers": 8}), TWO_CORES)
    assert len(messages) == 1
    assert "data.num_workers is 8" in messages[0] and "2 CPU cores" in messages[0]
    assert "data.num_workers=2 or less" in messages[0]


def test_a_crop_larger_than_most_images_is_warned_about_with_a_smaller_crop() -> None:
    sizes = [(200, 300), (180, 240), (500, 500)]  # two of three are under 320 on a side
    messages = preflight_warnings(_config(data={"crop_size": 320}), TWO_CORES, sizes)
    assert len(messages) == 1
    assert "data.crop_size is 320" in messages[0] and "2 of the 3" in messages[0]
    assert "data.crop_size=192 or less" in messages[0]  # median shorter side 200, by 32


def test_a_crop_larger_than_a_few_images_only_is_not_warned_about() -> None:
    sizes = [(200, 300), (400, 400), (500, 500)]
    assert preflight_warnings(_config(data={"crop_size": 320}), TWO_CORES, sizes) == []


def test_a_warm_up_as_long_as_the_run_is_warned_about() -> None:
    config = _config(schedule={"name": "poly", "warmup_iters": 12},
                     train={"iterations": 12})
    messages = preflight_warnings(config, TWO_CORES)
    assert len(messages) == 1
    assert "schedule.warmup_iters is 12" in messages[0] and "train.iterations (12)" in messages[0]


@pytest.mark.parametrize(("iterations", "suggested"), [
    (6, "schedule.warmup_iters=1 (about 17% of the run)"),
    (200, "schedule.warmup_iters=10 (about 5% of the run)"),
    (30, "schedule.warmup_iters=1 (about 3% of the run)"),
    (1, "schedule.warmup_iters=0 (no warm-up"),
])
def test_the_warm_up_suggested_says_its_true_share_of_the_run(iterations: int,
                                                              suggested: str) -> None:
    config = _config(schedule={"name": "poly", "warmup_iters": iterations},
                     train={"iterations": iterations})
    (message,) = preflight_warnings(config, TWO_CORES)
    assert suggested in message


def test_an_eta_over_a_day_on_a_cpu_suggests_the_cpu_recipe() -> None:
    config = _config(train={"iterations": 100_000})
    message = eta_warning(config, "cpu", seconds_per_iteration=12.0, remaining_iterations=99_980)
    assert message is not None
    assert "333 hours" in message and "--recipe folder-cpu" in message


def test_an_eta_under_a_day_or_on_a_gpu_is_not_warned_about() -> None:
    config = _config()
    assert eta_warning(config, "cpu", 0.5, 100_000) is None  # about 14 hours
    assert eta_warning(config, "cuda", 12.0, 100_000) is None


def test_the_cpu_recipe_itself_is_told_to_shrink_rather_than_to_use_itself() -> None:
    config = load_config("folder-cpu")
    message = eta_warning(config, "cpu", 100.0, 10_000)
    assert message is not None
    assert "--recipe" not in message and "train.iterations" in message


def test_the_eta_is_judged_once_from_the_images_per_second_logged(
    tmp_path: Path, monkeypatch,
) -> None:
    import json

    import fcnseg.engine.trainer as trainer

    judged = []
    monkeypatch.setattr(trainer, "eta_warning",
                        lambda config, device, seconds, left: judged.append((seconds, left)))
    recipe = tiny_recipe(train={"iterations": 6, "eval_every": 6, "log_every": 2,
                                "progress": False, "tensorboard": False}, device="cpu")
    train(recipe, out=str(tmp_path / "run"))
    first = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert len(judged) == 1
    seconds, left = judged[0]
    # data.batch_size 2 images per iteration at the speed of the first record
    assert seconds == pytest.approx(2 / first["images_per_s"], rel=1e-3) and left == 4


def test_image_sizes_are_read_from_the_headers_of_a_folder_dataset(tmp_path: Path) -> None:
    from fcnseg.data import build_dataset

    spec = write_folder_dataset(tmp_path / "data", count=3, size=40)
    dataset = build_dataset(spec, split="train")
    assert sample_image_sizes(dataset) == [(40, 40)] * 3


def test_the_trainer_prints_the_start_up_warnings(tmp_path: Path, capsys) -> None:
    recipe = tiny_recipe(schedule={"name": "poly", "warmup_iters": 4},
                         train={"iterations": 2, "eval_every": 2, "log_every": 1,
                                "progress": False, "tensorboard": False})
    train(recipe, out=str(tmp_path / "run"))
    out = capsys.readouterr().out
    assert "warning: schedule.warmup_iters is 4" in out


def _train_cli(tmp_path: Path, spec: dict, capsys, iterations: int = 1) -> list[str]:
    """``fcnseg train`` on a folder dataset's train and val splits for a few iterations: the
    lines it printed (standard output, then standard error)."""
    import yaml

    from fcnseg.cli.main import main

    recipe = tiny_recipe(data={"train": {**spec, "split": "train"},
                               "val": {**spec, "split": "val"}, "batch_size": 2},
                         train={"iterations": iterations, "eval_every": iterations,
                                "log_every": 1, "progress": False, "tensorboard": False})
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", "--recipe", str(tmp_path / "r.yaml"), "--out",
                 str(tmp_path / "run")]) == 0
    out = capsys.readouterr()
    return (out.out + out.err).splitlines()


def test_train_warns_once_at_start_of_16_bit_images_read_as_dark_8_bit_ones(tmp_path, capsys):
    from ondisk import write_grey_16_bit_cells

    root = write_grey_16_bit_cells(tmp_path / "d", 2500)
    spec = {"name": "folder", "root": str(root)}
    lines = [x for x in _train_cli(tmp_path, spec, capsys, iterations=2) if "16-bit" in x]
    assert len(lines) == 1
    assert lines[0].startswith("fcnseg train: warning: images/c0.tif")
    assert lines[0].endswith("`bands: [intensity]`")


def test_the_trainer_prints_the_eta_warning_after_the_first_logged_iterations(
    tmp_path: Path, capsys, monkeypatch,
) -> None:
    import fcnseg.engine.preflight as preflight

    # Any speed is "too slow" against a limit of zero seconds.
    monkeypatch.setattr(preflight, "ETA_LIMIT_S", 0.0)
    recipe = tiny_recipe(train={"iterations": 4, "eval_every": 4, "log_every": 2,
                                "progress": False, "tensorboard": False}, device="cpu")
    train(recipe, out=str(tmp_path / "run"))
    out = capsys.readouterr().out
    assert out.count("warning: at ") == 1 and "--recipe folder-cpu" in out


def test_auto_crop_is_the_largest_multiple_of_32_within_most_images() -> None:
    # A street set of 180×240 images (one odd small one): 160, not a 224 that is mostly padding.
    sizes = [(180, 240)] * 7 + [(90, 120)]
    assert crop_from_sizes(sizes) == (160, 180)
    assert crop_from_sizes(sizes, upper=128) == (128, 180)
    assert crop_from_sizes([(20, 30)]) == (32, 20)  # never below one stride-32 cell


def test_the_auto_crop_note_counts_the_images_that_reach_the_side() -> None:
    assert images_reaching([(128, 128)] * 18, 128) == "all 18"
    assert images_reaching([(128, 160)] * 3 + [(100, 400)], 128) == "3 of the 4"


def test_crop_size_auto_is_chosen_from_the_training_images_and_said(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from fcnseg.engine.setup import build_datasets

    root = tmp_path / "street"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "dataset.yaml").write_text("classes: [sky, car]\n")
    for n in range(4):
        Image.fromarray(np.zeros((180, 240, 3), np.uint8)).save(root / "images" / f"{n}.png")
        Image.fromarray(np.zeros((180, 240), np.uint8)).save(root / "masks" / f"{n}.png")
    (root / "train.txt").write_text("0\n1\n2\n3\n")
    spec = {"name": "folder", "root": str(root)}
    config = load_config(tiny_recipe(data={"train": spec, "val": None, "crop_size": "auto",
                                           "crop_size_max": 224}))
    notes: list[str] = []
    train_ds, _ = build_datasets(config, notes)
    assert config.data.crop_size == 160  # what the run folder's recipe then records
    assert any(n.startswith("data.crop_size auto: 160") for n in notes), notes
    # every image is 180 pixels on its shorter side: said as all of them, not 3 in 4
    assert any("(180 pixels: all 4 looked at reach it), at most data.crop_size_max=224" in n
               for n in notes), notes
    image, _ = train_ds[0]
    assert tuple(image.shape[-2:]) == (160, 160)


def test_a_batch_larger_than_the_training_set_names_the_value_that_works(tmp_path: Path) -> None:
    spec = write_folder_dataset(tmp_path / "two", count=2)
    recipe = tiny_recipe(data={"train": spec, "val": None, "batch_size": 8})
    with pytest.raises(ValueError, match="set data.batch_size=2 or less"):
        train(load_config(recipe, out=str(tmp_path / "run")))


def test_a_batch_scaled_by_the_loss_sample_rate_is_named_by_the_batch_size_set(
        tmp_path: Path) -> None:
    spec = write_folder_dataset(tmp_path / "two", count=2)
    recipe = tiny_recipe(data={"train": spec, "val": None, "batch_size": 1},
                         loss={"sample_rate": 0.25, "sample_rate_scales_batch": True})
    with pytest.raises(ValueError, match=r"data.batch_size: 1 \(÷ loss.sample_rate: 4 images\) "
                                         r"per process is more than the 2 training images"):
        train(load_config(recipe, out=str(tmp_path / "run")))


def test_raster_windows_are_measured_as_windows_not_as_generated_images(tmp_path: Path) -> None:
    import numpy as np
    import tifffile

    from fcnseg.data import build_dataset

    root = tmp_path / "scenes"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "dataset.yaml").write_text("classes: [bg, fg]\nbands: [red, green, blue, nir]\n")
    for name, (h, w) in {"a": (100, 70), "b": (60, 90)}.items():
        tifffile.imwrite(root / "images" / f"{name}.tif", np.zeros((h, w, 4), np.uint16),
                         photometric="minisblack", planarconfig="contig")
        tifffile.imwrite(root / "masks" / f"{name}.tif", np.zeros((h, w), np.uint8))
    spec = {"name": "raster_windows", "root": str(root), "window": 64, "windows": 8}
    assert sorted(sample_image_sizes(build_dataset(spec, split="train"))) == [(60, 64),
                                                                              (64, 64)]


def _train_on_grey_cells(tmp_path: Path, monkeypatch, capsys, png_sample: bool) -> list[str]:
    """The start-up lines of `fcnseg train` on a one-band dataset of two images: 16-bit TIFFs,
    or one of them an 8-bit PNG; the lines that speak of sample types."""
    import numpy as np
    from ondisk import write_grey_16_bit_cells
    from PIL import Image

    monkeypatch.setenv("FCNSEG_HOME", str(tmp_path / "home"))
    root = write_grey_16_bit_cells(tmp_path / "d", 2500, count=2,
                                   bands_line="bands: [intensity]\n")
    if png_sample:
        (root / "images" / "c1.tif").unlink()
        Image.fromarray(np.full((32, 32), 90, np.uint8)).save(root / "images" / "c1.png")
    spec = {"name": "folder", "root": str(root)}
    return [x for x in _train_cli(tmp_path, spec, capsys) if "sample types" in x]


def test_train_warns_once_at_start_of_band_images_of_mixed_sample_types(
        tmp_path, monkeypatch, capsys):
    lines = _train_on_grey_cells(tmp_path, monkeypatch, capsys, png_sample=True)
    assert len(lines) == 1
    assert lines[0].startswith("warning: the images mix sample types: ")
    assert "1 of uint16 (e.g. " in lines[0] and "c0.tif" in lines[0]
    assert "1 of uint8 (e.g. " in lines[0] and "c1.png" in lines[0]


def test_train_says_nothing_of_sample_types_when_the_band_images_share_one(
        tmp_path, monkeypatch, capsys):
    assert _train_on_grey_cells(tmp_path, monkeypatch, capsys, png_sample=False) == []


def test_the_train_warning_takes_the_band_statistics_training_computes_anyway(
        tmp_path, monkeypatch, capsys):
    import traceback

    import fcnseg.data.band_stats as band_stats

    callers = []
    computed = band_stats.band_statistics

    def counted(*args, **kwargs):
        callers.append({frame.name for frame in traceback.extract_stack()})
        return computed(*args, **kwargs)

    monkeypatch.setattr(band_stats, "band_statistics", counted)
    assert len(_train_on_grey_cells(tmp_path, monkeypatch, capsys, png_sample=True)) == 1
    # The datasets' normalisation computes them (train, and val for its padding); the start-up
    # warnings read those.
    assert callers and all("band_convention" in names for names in callers)
    assert not any("startup_warnings" in names for names in callers)


def test_training_images_over_2048_pixels_are_counted_in_one_warning() -> None:
    sizes = [(3000, 4000), (480, 640), (4000, 3000), (2048, 1536)]
    messages = preflight_warnings(_config(data={"crop_size": 224}), TWO_CORES, sizes)
    assert messages == [
        "2 of the 4 training images looked at are over 2048 pixels on the long side (the "
        "largest 4000×3000): a training crop shows a tiny part of such a photo. Resize them "
        "to about 500-1000 pixels on the long side first (docs/own-data-cpu.md, \"Large "
        "photos\"), or narrow data.scale_range"]


def test_one_large_training_image_is_counted_in_the_singular() -> None:
    sizes = [(3000, 4000), (480, 640)]
    (line,) = preflight_warnings(_config(data={"crop_size": 224}), TWO_CORES, sizes)
    assert line.startswith("1 of the 2 training images looked at is over 2048 pixels")


def test_crop_size_auto_is_not_compared_with_the_image_sizes() -> None:
    config = _config(data={"crop_size": "auto", "num_workers": 0})
    assert preflight_warnings(config, TWO_CORES, [(48, 64)] * 5) == []


def test_start_up_warns_of_large_training_images_whatever_the_crop(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from fcnseg.data import build_dataset
    from fcnseg.engine.preflight import startup_warnings

    spec = write_folder_dataset(tmp_path / "data", count=3, size=32)
    Image.fromarray(np.zeros((16, 2100, 3), np.uint8)).save(tmp_path / "data/images/1.png")
    Image.fromarray(np.zeros((16, 2100), np.uint8)).save(tmp_path / "data/masks/1.png")
    dataset = build_dataset(spec, split="train")
    config = _config(data={"crop_size": None, "num_workers": 0})
    (line,) = startup_warnings(config, dataset)
    assert line.startswith("1 of the 3 training images looked at is over 2048 pixels")


def test_train_warns_at_start_of_mask_values_a_remap_table_leaves_as_classes(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    spec = write_folder_dataset(tmp_path / "d", count=2, size=32)
    (tmp_path / "d" / "dataset.yaml").write_text("classes: [bg, thing]\nremap: {7: 1}\n")
    ids = np.zeros((32, 32), np.uint8)
    ids[8:24, 8:24], ids[0, :4] = 7, 1  # raw id 1 is no class here, yet stays class 1
    Image.fromarray(ids).save(tmp_path / "d" / "masks" / "0.png")
    lines = [x for x in _train_cli(tmp_path, spec, capsys) if "remap" in x]
    assert lines == [f"fcnseg train: warning: {tmp_path / 'd' / 'dataset.yaml'}: remap does not "
                     f"list mask value 1, so it stays a class index (1 → thing): list it in "
                     f"remap, or say what unlisted values become with 'other: ignore' (or "
                     f"'other: <class index>')"]


def test_a_summed_loss_rate_with_the_averaged_loss_is_warned_about_with_the_rate_it_needs() -> None:
    config = _config(loss={"reduction": "mean"}, optim={"lr": 1e-12},
                     data={"crop_size": 32, "batch_size": 2, "num_workers": 0})
    messages = preflight_warnings(config, TWO_CORES)
    assert len(messages) == 1
    assert "optim.lr is 1e-12 with loss.reduction mean" in messages[0]
    assert "optim.lr=2e-09 (optim.lr × the ~2,048 pixels per step)" in messages[0]  # 2 × 32²


def test_the_pixels_per_step_of_whole_images_come_from_the_median_image() -> None:
    config = load_config("voc-fcn16s", ["loss.reduction=mean"])
    message = summed_lr_warning(config, [(375, 500), (500, 500), (300, 400)])
    assert message is not None and "optim.lr=1.9e-07" in message  # 1e-12 × 375 × 500


@pytest.mark.parametrize("name", ["voc-fcn32s", "voc-fcn8s", "voc-fcn-alexnet",
                                  "voc-fcn32s-googlenet", "voc-fcn8s-modern", "synthetic-fcn8s"])
def test_the_shipped_recipes_rates_suit_their_reduction(name: str) -> None:
    assert summed_lr_warning(load_config(name), [(375, 500)]) is None


def test_the_trainer_prints_the_summed_rate_warning_at_start(tmp_path: Path, capsys) -> None:
    recipe = tiny_recipe(optim={"lr": 1e-12},
                         train={"iterations": 1, "eval_every": 1, "log_every": 1,
                                "progress": False, "tensorboard": False})
    train(recipe, out=str(tmp_path / "run"))
    warned = [line for line in capsys.readouterr().out.splitlines() if "optim.lr is" in line]
    assert len(warned) == 1 and "loss.reduction mean" in warned[0]


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_no_summed_rate_is_suggested_for_adam_whose_steps_do_not_scale_with_the_loss(
        optimizer: str) -> None:
    config = _config(loss={"reduction": "mean"}, optim={"name": optimizer, "lr": 1e-9},
                     data={"crop_size": 32, "batch_size": 2, "num_workers": 0})
    assert summed_lr_warning(config) is None
