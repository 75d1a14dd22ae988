"""Shared pieces of the training tests: a tiny recipe and ways to run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


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
