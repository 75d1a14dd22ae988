"""Synthetic scenes on disk stand in for "own data" when trying the folder recipes.
They form a folder dataset (:class:`fcnseg.data.FolderSegmentation`'s layout): no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fcnseg.data import SyntheticSegmentation
from fcnseg.utils.typing import PathLike


def write_synthetic_folder(root: PathLike, train: int = 240, val: int = 60,
                           size: int | tuple[int, int] = 320, seed: int = 0) -> Path:
    """Write ``train + val`` synthetic scenes (JPEG images, PNG masks, listed in ``train.txt``
    and ``val.txt``) as a folder dataset in ``root``, which must not hold ``images/`` or
    ``masks/`` yet; ``size`` is ``S`` or ``(H, W)``; scene ``i`` depends only on ``(seed, i)``."""
    if train < 1 or val < 0:
        raise ValueError(f"write_synthetic_folder: need train >= 1 and val >= 0, got {train}, "
                         f"{val}")
    root = Path(root)
    for sub in ("images", "masks"):
        if (root / sub).exists():
            raise FileExistsError(f"{root / sub}: already exists; choose an empty folder")
    scenes = SyntheticSegmentation(train + val, size, seed=seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    names = ", ".join(scenes.classes)
    (root / "dataset.yaml").write_text(f"classes: [{names}]\nignore_index: 255\n",
                                       encoding="utf-8")
    ids = [f"{i:05d}" for i in range(train + val)]
    for i, name in enumerate(ids):
        image, label = scenes.load(i)
        Image.fromarray(image).save(root / "images" / f"{name}.jpg", quality=92)
        Image.fromarray(label.astype(np.uint8)).save(root / "masks" / f"{name}.png")
    (root / "train.txt").write_text("".join(n + "\n" for n in ids[:train]), encoding="utf-8")
    (root / "val.txt").write_text("".join(n + "\n" for n in ids[train:]), encoding="utf-8")
    return root
