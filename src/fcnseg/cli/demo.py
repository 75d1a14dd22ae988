"""``fcnseg demo``: the main job on the embedded default (the built-in synthetic data)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "demo"
HELP = "Run the embedded default: FCN-8s on the built-in synthetic data."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from fcnseg.data.palette import colorize, voc_palette
    from fcnseg.models import fcn8s

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    image = rng.integers(0, 256, size=(96, 128, 3), dtype=np.uint8)
    torch.manual_seed(args.seed)
    model = fcn8s(num_classes=21, geometry="same", width=0.25, fc_channels=256).eval()
    x = model.input_convention.normalize(torch.from_numpy(image).permute(2, 0, 1))[None]
    with torch.inference_mode():
        label = model(x).argmax(1)[0].numpy().astype(np.uint8)
    Image.fromarray(image).save(out / "image.png")
    Image.fromarray(colorize(label, voc_palette())).save(out / "mask.png")
    print(f"wrote {out / 'image.png'} and {out / 'mask.png'}")
    return 0
