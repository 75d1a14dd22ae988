"""Multi-band training learns what only the non-RGB bands show.

Writes a folder dataset of 5-band uint16 TIFFs (red, green, blue, nir, swir1) whose two object
classes are visible only in nir (class 1) and swir1 (class 2): the colour bands are the same
noise everywhere. The CPU recipe (``folder-cpu``, random weights) trains on all five bands,
then on a copy holding only the three colour bands, for the same iterations; each run's
validation mean IU is read back.

Targets: on all bands the classes are learned (mean IU ≥ 0.6), and that is the bands' doing,
not the network's: at least 0.2 above the colour-only run, which can tell the classes apart
only by chance.

    python benchmarks/multiband_bands.py [--quick] [--iterations N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from fcnseg.bench.targets import print_target
from fcnseg.engine import load_config, train

ALL_BANDS = ["red", "green", "blue", "nir", "swir1"]
MEAN_IU_GOAL = 0.6
GAIN_GOAL = 0.2


def scene(rng: np.random.Generator, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Five noisy uint16 bands and a label: one rectangle of each class at a random place,
    class 1 bright in nir only, class 2 bright in swir1 only."""
    image = (rng.random((side, side, 5)) * 3000 + 1000).astype(np.uint16)
    label = np.zeros((side, side), np.uint8)
    for cls, band in ((1, 3), (2, 4)):
        h, w = rng.integers(side // 4, side // 2, size=2)
        y, x = rng.integers(0, side - h), rng.integers(0, side - w)
        label[y:y + h, x:x + w] = cls
        image[y:y + h, x:x + w, band] += 6000
    return image, label


def write_datasets(root: Path, images: int, side: int) -> tuple[Path, Path]:
    """The 5-band dataset and its colour-only copy (same images, same splits)."""
    rng = np.random.default_rng(0)
    folders = {"all": (root / "all", ALL_BANDS), "rgb": (root / "rgb", ALL_BANDS[:3])}
    for folder, bands in folders.values():
        (folder / "images").mkdir(parents=True)
        (folder / "masks").mkdir()
        (folder / "dataset.yaml").write_text(
            f"classes: [other, vegetation, bare]\nbands: [{', '.join(bands)}]\n")
    n_val = max(2, images // 5)
    for i in range(images):
        image, label = scene(rng, side)
        for folder, bands in folders.values():
            tifffile.imwrite(folder / "images" / f"s{i}.tif", image[..., :len(bands)],
                             photometric="minisblack", planarconfig="contig")
            Image.fromarray(label).save(folder / "masks" / f"s{i}.png")
    for folder, _ in folders.values():
        (folder / "train.txt").write_text("".join(f"s{i}\n" for i in range(n_val, images)))
        (folder / "val.txt").write_text("".join(f"s{i}\n" for i in range(n_val)))
    return folders["all"][0], folders["rgb"][0]


def train_mean_iu(root: Path, out: Path, iterations: int) -> float:
    """Validation mean IU (fraction) after ``iterations`` of the CPU recipe on ``root``."""
    config = load_config("folder-cpu", [
        f"data.train.root={root}", f"data.val.root={root}", "model.backbone_weights=null",
        f"train.iterations={iterations}", f"train.eval_every={iterations}",
        f"train.checkpoint_every={iterations}", "schedule.warmup_iters=5", "optim.lr=0.02",
        "data.batch_size=4", "data.num_workers=0", "data.scale_range=null",
        "train.progress=false", "train.tensorboard=false"])
    result = train(config, out=str(out))
    iu = float(result.best_mean_iu)
    return iu / 100 if iu > 1 else iu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and iterations")
    parser.add_argument("--iterations", type=int, default=None)
    args = parser.parse_args()
    images, side = (20, 64) if args.quick else (40, 64)
    iterations = args.iterations or (60 if args.quick else 120)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("FCNSEG_HOME", str(Path(tmp) / "home"))
        all_root, rgb_root = write_datasets(Path(tmp), images, side)
        all_iu = train_mean_iu(all_root, Path(tmp) / "run_all", iterations)
        rgb_iu = train_mean_iu(rgb_root, Path(tmp) / "run_rgb", iterations)
    print(f"{images} images of {side}², {iterations} iterations of folder-cpu:")
    print(f"  all 5 bands:        mean IU {all_iu:.3f}")
    print(f"  colour bands only:  mean IU {rgb_iu:.3f}")
    print_target("multiband_all_bands_mean_iu", all_iu, MEAN_IU_GOAL)
    print_target("multiband_gain_over_rgb", all_iu - rgb_iu, GAIN_GOAL)


if __name__ == "__main__":
    main()
