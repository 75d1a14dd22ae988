"""Writers of small datasets in the exact on-disk formats of VOC and SBD, for any test.

pytest puts tests/ on sys.path (its conftest.py has no package), so ``import ondisk`` works from
every test folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fcnseg.data.palette import voc_palette


def scene(seed: int, h: int = 40, w: int = 48, num_classes: int = 21,
          border: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """An image and a label: background plus a rectangle of one class with a 255 border band."""
    rng = np.random.default_rng(seed)
    label = np.zeros((h, w), dtype=np.uint8)
    cls = int(rng.integers(1, num_classes))
    top, left = int(rng.integers(2, h // 2)), int(rng.integers(2, w // 2))
    label[top : top + h // 3, left : left + w // 3] = cls
    if border:
        edge = np.zeros_like(label, dtype=bool)
        edge[:-1] |= label[:-1] != label[1:]
        edge[:, :-1] |= label[:, :-1] != label[:, 1:]
        label[edge] = 255
    image = voc_palette()[label].copy()
    return image, label


def save_palette_png(path: Path, label: np.ndarray) -> None:
    img = Image.fromarray(label.astype(np.uint8), mode="P")
    img.putpalette(voc_palette().ravel().tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def save_jpeg(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=95)


def write_voc(root: Path, year: str, splits: dict[str, list[str]], seed: int = 0) -> Path:
    """Write ``root/VOCdevkit/VOC<year>`` with the given segmentation split lists."""
    voc = root / "VOCdevkit" / f"VOC{year}"
    lists = voc / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    every = sorted({i for ids in splits.values() for i in ids})
    for n, stem in enumerate(every):
        image, label = scene(seed + n)
        save_jpeg(voc / "JPEGImages" / f"{stem}.jpg", image)
        save_palette_png(voc / "SegmentationClass" / f"{stem}.png", label)
    for split, ids in splits.items():
        (lists / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return voc


def write_sbd(root: Path, splits: dict[str, list[str]], seed: int = 100) -> Path:
    """Write ``root/benchmark_RELEASE/dataset`` with img/*.jpg, cls/*.mat and split lists."""
    from scipy.io import savemat

    ds = root / "benchmark_RELEASE" / "dataset"
    (ds / "cls").mkdir(parents=True)
    every = sorted({i for ids in splits.values() for i in ids})
    for n, stem in enumerate(every):
        image, label = scene(seed + n, border=False)
        save_jpeg(ds / "img" / f"{stem}.jpg", image)
        gt = {"Segmentation": label.astype(np.uint8),
              "Boundaries": np.zeros((1, 1), dtype=np.uint8),
              "CategoriesPresent": np.unique(label[label > 0]).astype(np.uint8)}
        savemat(ds / "cls" / f"{stem}.mat", {"GTcls": gt})
    for split, ids in splits.items():
        (ds / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return ds
