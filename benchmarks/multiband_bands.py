"""Multi-band training learns what only the non-RGB bands show: FCN-8s on 6-band uint16 TIFFs.

Writes a folder dataset of 6-band uint16 TIFFs (blue, green, red, nir, swir1, swir2, in that
file order) whose two object classes are visible only in the two non-RGB bands nir (class 1)
and swir1 (class 2): the colour bands and swir2 are the same noise everywhere. One FCN-8s recipe
(the VGG16 FCN-8s of ``folder-fcn8s`` at the CPU size of ``synthetic-fcn8s``: width 0.25, fc6/fc7
of 256 channels, "same" geometry, random weights: the ImageNet files cannot be had offline)
trains on all six bands, then on a copy holding only the red, green and blue bands, for the same
iterations; each run's validation mean IU is read back, beside chance: the best mean IU of one
class predicted everywhere.

Targets: on all bands the classes are learned (mean IU ≥ 0.80), while the colour-only run stays
near chance (at most 0.10 above it).

    python benchmarks/multiband_bands.py [--quick] [--iterations N] [--recipe NAME]

``--quick`` (30 images of 64², 300 iterations per run) takes about 9 CPU-minutes for both
runs, a few minutes on 2 idle cores; without it, 60 images and 600 iterations.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from fcnseg.bench.targets import print_target
from fcnseg.engine import load_config, train

ALL_BANDS = ["blue", "green", "red", "nir", "swir1", "swir2"]
RGB_BANDS = ["red", "green", "blue"]
MEAN_IU_GOAL = 0.80
NEAR_CHANCE = 0.10

#: The FCN-8s (VGG16) recipe at CPU size: folder-fcn8s's model and data, synthetic-fcn8s's
#: width and optimiser.
FCN8S_CPU = ["model.width=0.25", "model.fc_channels=256", "model.dropout=0.0",
             "optim.name=adamw", "optim.lr=0.002", "optim.bias_lr_mult=1.0"]


def scene(rng: np.random.Generator, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Six noisy uint16 bands and a label: one rectangle of each class at a random place,
    class 1 bright in nir only, class 2 bright in swir1 only."""
    image = (rng.random((side, side, len(ALL_BANDS))) * 3000 + 1000).astype(np.uint16)
    label = np.zeros((side, side), np.uint8)
    for cls, band in ((1, "nir"), (2, "swir1")):
        h, w = rng.integers(side // 4, side // 2, size=2)
        y, x = rng.integers(0, side - h), rng.integers(0, side - w)
        label[y:y + h, x:x + w] = cls
        image[y:y + h, x:x + w, ALL_BANDS.index(band)] += 6000
    return image, label


def write_datasets(root: Path, images: int, side: int) -> tuple[Path, Path, list[np.ndarray]]:
    """The 6-band dataset, its colour-only copy (same images, same splits) and the validation
    labels."""
    rng = np.random.default_rng(0)
    rgb_index = [ALL_BANDS.index(b) for b in RGB_BANDS]
    folders = {"all": (root / "all", ALL_BANDS, list(range(len(ALL_BANDS)))),
               "rgb": (root / "rgb", RGB_BANDS, rgb_index)}
    for folder, bands, _ in folders.values():
        (folder / "images").mkdir(parents=True)
        (folder / "masks").mkdir()
        (folder / "dataset.yaml").write_text(
            f"classes: [other, vegetation, bare]\nbands: [{', '.join(bands)}]\n"
            f"rgb: [{', '.join(RGB_BANDS)}]\n")
    n_val = max(2, images // 5)
    val_labels = []
    for i in range(images):
        image, label = scene(rng, side)
        if i < n_val:
            val_labels.append(label)
        for folder, _, index in folders.values():
            tifffile.imwrite(folder / "images" / f"s{i}.tif", image[..., index],
                             photometric="minisblack", planarconfig="contig")
            Image.fromarray(label).save(folder / "masks" / f"s{i}.png")
    for folder, _, _ in folders.values():
        (folder / "train.txt").write_text("".join(f"s{i}\n" for i in range(n_val, images)))
        (folder / "val.txt").write_text("".join(f"s{i}\n" for i in range(n_val)))
    return folders["all"][0], folders["rgb"][0], val_labels


def chance_mean_iu(labels: list[np.ndarray], classes: int = 3) -> float:
    """The best mean IU of predicting one class everywhere (what a net blind to the classes
    can reach without position cues): that class's pixel share over the classes."""
    counts = np.bincount(np.concatenate([lb.ravel() for lb in labels]), minlength=classes)
    return float(counts.max() / counts.sum() / classes)


def train_mean_iu(recipe: str, root: Path, out: Path, iterations: int,
                  extra: list[str]) -> float:
    """Validation mean IU (fraction) after ``iterations`` of ``recipe`` on ``root``."""
    config = load_config(recipe, [
        f"data.train.root={root}", f"data.val.root={root}", "model.backbone_weights=null",
        f"train.iterations={iterations}", f"train.eval_every={iterations}",
        f"train.checkpoint_every={iterations}", "schedule.warmup_iters=10",
        "data.batch_size=8", "data.num_workers=0", "data.scale_range=null",
        "train.progress=false", "train.tensorboard=false", "seed=0", *extra])
    result = train(config, out=str(out))
    iu = float(result.best_mean_iu)
    return iu / 100 if iu > 1 else iu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and iterations")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--recipe", default="folder-fcn8s",
                        help="recipe to train (default: folder-fcn8s at CPU size; "
                             "folder-cpu for the ResNet-18 FCN-8s)")
    args = parser.parse_args()
    images, side = (30, 64) if args.quick else (60, 64)
    iterations = args.iterations or (300 if args.quick else 600)
    extra = FCN8S_CPU if args.recipe == "folder-fcn8s" else []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("FCNSEG_HOME", str(Path(tmp) / "home"))
        all_root, rgb_root, val_labels = write_datasets(Path(tmp), images, side)
        start = time.perf_counter()
        all_iu = train_mean_iu(args.recipe, all_root, Path(tmp) / "run_all", iterations, extra)
        rgb_iu = train_mean_iu(args.recipe, rgb_root, Path(tmp) / "run_rgb", iterations, extra)
        seconds = time.perf_counter() - start
    chance = chance_mean_iu(val_labels)
    print(f"{images} images of {side}², {iterations} iterations of {args.recipe} "
          f"{' '.join(extra)} ({seconds:.0f} s for both runs):")
    print(f"  all 6 bands:               mean IU {all_iu:.3f}")
    print(f"  red, green, blue only:     mean IU {rgb_iu:.3f}")
    print(f"  chance (one class):        mean IU {chance:.3f}")
    print_target("multiband_all_bands_mean_iu", all_iu, MEAN_IU_GOAL)
    print_target("multiband_rgb_over_chance", rgb_iu - chance, NEAR_CHANCE,
                 ok=rgb_iu - chance <= NEAR_CHANCE)


if __name__ == "__main__":
    main()
