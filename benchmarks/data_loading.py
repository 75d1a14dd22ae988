"""Does data loading keep up with training? Loader batches/s vs FCN-8s training steps/s.

Writes VOC-like data to a temporary folder (JPEG images of ~500×375 and palette PNG masks, as
a FolderSegmentation), then measures in one run:

1. the loader: DataLoader with the training augmentation (random scale 0.5-2, crop, flip,
   colour jitter, normalisation) and ``--workers`` processes, batches per second;
2. the same loader in the main process alone (``num_workers=0``), a lower bound;
3. training: FCN-8s (same geometry, full width) forward + backward + SGD step on batches of the
   same shape, steps per second.

The ratio loader/training must be at least 3 for loading never to be the bottleneck. Run:

    .venv/bin/python benchmarks/data_loading.py            # defaults: batch 4, crop 320
    .venv/bin/python benchmarks/data_loading.py --quick    # fewer batches and steps

Last line (see benchmarks/README.md): ``TARGET data_loading_ratio ...``: loader/training with
the workers ``fcnseg train`` would use here (``data.num_workers: auto``: in the main process on
2 cores or fewer, else ``--workers``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from torch.utils.data import DataLoader

from fcnseg.bench.targets import print_target
from fcnseg.bench.timing import time_interleaved
from fcnseg.data import (
    FolderSegmentation,
    SyntheticSegmentation,
    build_train_transform,
    collate_segmentation,
)
from fcnseg.engine.setup import loader_workers
from fcnseg.models import fcn8s

GOAL = 3.0


def write_dataset(root: Path, n: int) -> None:
    """n VOC-like samples: 500×375 (or 375×500) JPEGs and palette PNG masks."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    landscape = SyntheticSegmentation(n, (375, 500), seed=0)
    portrait = SyntheticSegmentation(n, (500, 375), seed=1)
    for i in range(n):
        image, label = (landscape if i % 3 else portrait)[i]
        Image.fromarray(image).save(root / "images" / f"{i:05d}.jpg", quality=90)
        mask = Image.fromarray(label.astype(np.uint8), mode="P")
        mask.putpalette(landscape.palette.ravel().tolist())
        mask.save(root / "masks" / f"{i:05d}.png")
    (root / "dataset.yaml").write_text(yaml.safe_dump({"classes": list(landscape.classes)}))


def loader_rate(dataset, batch_size: int, workers: int, batches: int) -> float:
    """Batches per second after the workers have started (first two batches not timed)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        collate_fn=collate_segmentation, drop_last=True,
                        persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(0))
    it = iter(loader)
    seen = 0
    for _ in range(2):
        next(it)
    start = time.perf_counter()
    while seen < batches:
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            continue
        seen += 1
    return seen / (time.perf_counter() - start)


def train_rate(batch: tuple[torch.Tensor, torch.Tensor], num_classes: int, steps: int) -> float:
    """FCN-8s (same geometry, full width) training steps per second on ``batch``."""
    torch.manual_seed(0)
    model = fcn8s(num_classes=num_classes, geometry="same").train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    images, labels = batch

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(images), labels, ignore_index=255)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # One warm-up step (allocations, kernel selection), then the timed ones.
    timing = time_interleaved({"step": step}, warmup=1, repeats=steps)["step"]
    return steps / sum(timing.samples)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--crop", type=int, default=320)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--loader-batches", type=int, default=40)
    p.add_argument("--train-steps", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="16 loader batches, 1 training step")
    args = p.parse_args()
    if args.quick:
        args.loader_batches, args.train_steps, args.images = 16, 1, 24

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dataset(root, args.images)
        transform = build_train_transform(crop_size=args.crop,
                                          scale_range=(0.5, 2.0), flip=True, jitter=True)
        dataset = FolderSegmentation(root, transform=transform)
        parallel = loader_rate(dataset, args.batch_size, args.workers, args.loader_batches)
        serial = loader_rate(dataset, args.batch_size, 0, max(4, args.loader_batches // 4))
        images, labels = next(iter(DataLoader(dataset, batch_size=args.batch_size,
                                              collate_fn=collate_segmentation)))
        train = train_rate((images, labels), dataset.num_classes, args.train_steps)

    print(f"batch {args.batch_size} × 3 × {args.crop} × {args.crop}, JPEG ~500×375 sources")
    print(f"loader, {args.workers} workers:   {parallel:8.2f} batches/s")
    print(f"loader, main process: {serial:8.2f} batches/s")
    print(f"FCN-8s training:      {train:8.3f} steps/s ({1 / train:.2f} s/step)")
    print(f"ratio loader/training: {parallel / train:.1f}× with {args.workers} workers, "
          f"{serial / train:.1f}× in the main process (needs >= 3)")
    auto = loader_workers("auto")
    print(f"data.num_workers: auto picks {auto} here")
    print_target("data_loading_ratio", (parallel if auto else serial) / train, GOAL)


if __name__ == "__main__":
    main()
