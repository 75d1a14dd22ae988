"""Shared pieces of the training tests: a tiny recipe and ways to run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from fcnseg.engine.config import model_fields_not_taken


def tiny_recipe(**sections: Any) -> dict[str, Any]:
    """A recipe small enough to train in seconds on a CPU: FCN-8s at 1/16 width on 32-pixel
    synthetic scenes. Keyword arguments update the named sections."""
    recipe: dict[str, Any] = {
        "name": "tiny",
        "model": {"arch": "fcn8s", "geometry": "same", "width": 0.0625, "fc_channels": 16,
                  "dropout": 0.0, "input_convention": "torchvision_rgb"},
        "data": {"train": {"name": "synthetic", "num_images": 10, "size": 32, "seed": 0},
                 "val": {"name": "synthetic", "num_images": 4, "size": 32, "seed": 0,
                         "split": "val"},
                 "batch_size": 2, "flip": True, "val_batch_size": 2},
        "loss": {"reduction": "mean"},
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4,
                  "bias_lr_mult": 2.0},
        "schedule": {"name": "poly", "warmup_iters": 2},
        "train": {"iterations": 12, "eval_every": 6, "checkpoint_every": 3, "log_every": 2,
                  "progress": False, "tensorboard": False},
        "device": "cpu",
        "seed": 0,
    }
    model = sections.get("model")
    if isinstance(model, dict) and "arch" in model:
        # another model keeps only the tiny VGG16's fields it takes, as a recipe based on
        # this one would (its width, fc_channels, ... describe the VGG16)
        recipe["model"] = {k: v for k, v in recipe["model"].items()
                           if k not in model_fields_not_taken(model["arch"])}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {**recipe[key], **value}
        else:
            recipe[key] = value
    return recipe


def write_recipe(path: Path, recipe: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(recipe))
    return path


def subprocess_env() -> dict[str, str]:
    """One thread per process: the test machine is small and results must not depend on
    thread scheduling."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def fcnseg_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from fcnseg.cli.main import main; sys.exit(main())",
            *args]


def start_training(recipe: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        fcnseg_command("train", "--recipe", str(recipe), "--out", str(out), *extra),
        env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def start_ddp_training(recipe: Path, out: Path, processes: int = 2) -> subprocess.Popen:
    """``fcnseg train`` under torchrun: ``processes`` gloo processes on this machine."""
    fcnseg_script = str(Path(sys.executable).parent / "fcnseg")
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         str(processes), fcnseg_script, "train", "--recipe", str(recipe), "--out", str(out)],
        env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


#: How long a test waits for a training process before calling it hung. Only a guard against a
#: hang, not a speed check: on a loaded machine starting torch alone can take a minute or more.
HANG_TIMEOUT_S = 600.0


def finish(proc: subprocess.Popen, timeout: float = HANG_TIMEOUT_S) -> str:
    """Wait for a started run; its output, after checking that it exited with 0."""
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def write_folder_dataset(root: Path, count: int = 6, size: int = 32) -> dict[str, Any]:
    """A two-class folder dataset (square on a plain background) with every sample in both the
    train and val lists; returns its dataset spec. Tests then break one sample's files."""
    import numpy as np
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "dataset.yaml").write_text("classes: [bg, thing]\n")
    for n in range(count):
        image = np.full((size, size, 3), 30 * n, np.uint8)
        mask = np.zeros((size, size), np.uint8)
        mask[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
        image[mask == 1] = 200
        Image.fromarray(image).save(root / "images" / f"{n}.png")
        Image.fromarray(mask).save(root / "masks" / f"{n}.png")
    for split in ("train", "val"):
        (root / f"{split}.txt").write_text("".join(f"{n}\n" for n in range(count)))
    return {"name": "folder", "root": str(root)}
