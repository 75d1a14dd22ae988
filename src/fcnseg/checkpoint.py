"""Self-describing checkpoints.

A checkpoint is one ``torch.save`` file that is always read back with ``weights_only=True``
(no code runs on load). Besides ``model_state_dict`` (the key the PyTorch FCN port uses, so its
tools can read ours) it records everything needed to rebuild and use the model:

- ``model``: ``arch``, ``build_kwargs`` (for :func:`fcnseg.models.build_model`) and
  ``input_convention``;
- ``classes``: ``names``, ``palette`` (list of [r, g, b]) and ``ignore_index``;
- ``recipe``, ``iteration``, ``epoch``, ``metrics``;
- ``state``: optional training state (optimizer, scheduler, scaler, RNG, data order) for resume.

Writes are atomic (temporary file, fsync, rename): a crash at any moment leaves the previous
file intact.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fcnseg.conventions import CAFFE_BGR, InputConvention, get_convention
from fcnseg.utils.files import atomic_write

__all__ = [
    "FORMAT",
    "CheckpointError",
    "build_model_from_checkpoint",
    "describe_model",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT = "fcnseg.checkpoint/1"
PathLike = str | os.PathLike[str]


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or lacks a required field."""


def describe_model(model: nn.Module) -> dict[str, Any]:
    """The JSON-able description of a model that :func:`build_model_from_checkpoint` rebuilds."""
    arch = getattr(model, "arch", None)
    build_kwargs = getattr(model, "build_kwargs", None)
    if arch is None or build_kwargs is None:
        raise CheckpointError(
            f"{type(model).__name__} does not describe itself (needs .arch and .build_kwargs); "
            f"build it with fcnseg.models.build_model or a builder function"
        )
    conv: InputConvention = getattr(model, "input_convention", CAFFE_BGR)
    return {"arch": arch, "build_kwargs": dict(build_kwargs),
            "input_convention": conv.to_dict()}


def save_checkpoint(
    path: PathLike,
    model: nn.Module,
    *,
    class_names: Sequence[str],
    palette: Sequence[Sequence[int]] | Any,
    ignore_index: int = 255,
    recipe: Mapping[str, Any] | None = None,
    iteration: int = 0,
    epoch: int = 0,
    metrics: Mapping[str, Any] | None = None,
    state: Mapping[str, Any] | None = None,
) -> Path:
    """Write a self-describing checkpoint atomically and return its path."""
    path = Path(path)
    model_to_save = getattr(model, "module", model)  # unwrap DDP / DataParallel
    names = [str(n) for n in class_names]
    if len(names) != getattr(model_to_save, "num_classes", len(names)):
        raise CheckpointError(
            f"{len(names)} class names given for a model with "
            f"{model_to_save.num_classes} classes"
        )
    pal = [[int(c) for c in rgb] for rgb in list(palette)[: max(len(names), ignore_index + 1)]]
    payload = {
        "format": FORMAT,
        "model_state_dict": {k: v.detach().cpu() for k, v in
                             model_to_save.state_dict().items()},
        "model": describe_model(model_to_save),
        "classes": {"names": names, "palette": pal, "ignore_index": int(ignore_index)},
        "recipe": dict(recipe or {}),
        "iteration": int(iteration),
        "epoch": int(epoch),
        "metrics": dict(metrics or {}),
        "state": dict(state or {}),
    }
    with atomic_write(path) as f:
        torch.save(payload, f)
    return path


# The PyTorch FCN port stores "arch" as its class name.
_PORT_ARCHS = {"FCN32s": "fcn32s", "FCN16s": "fcn16s", "FCN8s": "fcn8s",
               "FCN8sAtOnce": "fcn8s_atonce"}


def load_checkpoint(path: PathLike) -> dict[str, Any]:
    """Read a checkpoint safely and check its fields. Also accepts the PyTorch FCN port's
    ``.pth.tar`` checkpoints, which are described as Caffe-geometry VOC models, and (through
    :func:`fcnseg.pretrained.resolve_checkpoint`) pretrained folders, fcnseg ``.safetensors``
    files and ``hf://user/repo[@revision]``."""
    from fcnseg.pretrained.hub import resolve_checkpoint  # lazy: it builds on this module

    path = resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"{path}: cannot be read as a checkpoint ({type(e).__name__}); the file may be "
            f"truncated or corrupt, or hold objects that are not loaded for safety"
        ) from e
    if not isinstance(ckpt, dict) or "model_state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a checkpoint (no 'model_state_dict')")
    if ckpt.get("format") != FORMAT:
        arch = _PORT_ARCHS.get(str(ckpt.get("arch")))
        if arch is None:
            raise CheckpointError(
                f"{path}: not an fcnseg checkpoint and its 'arch' ({ckpt.get('arch')!r}) is none "
                f"of the PyTorch FCN port's {sorted(_PORT_ARCHS)}"
            )
        from fcnseg.data.palette import VOC_CLASSES, voc_palette

        ckpt = {
            "format": FORMAT,
            "model_state_dict": ckpt["model_state_dict"],
            "model": {"arch": arch, "build_kwargs": {"num_classes": 21, "geometry": "caffe"},
                      "input_convention": CAFFE_BGR.to_dict()},
            "classes": {"names": list(VOC_CLASSES), "palette": voc_palette().tolist(),
                        "ignore_index": 255},
            "recipe": {}, "iteration": int(ckpt.get("iteration", 0)),
            "epoch": int(ckpt.get("epoch", 0)),
            "metrics": {"mean_iu": float(ckpt.get("best_mean_iu", float("nan")))},
            "state": {},
        }
    for section, keys in (("model", ("arch", "build_kwargs", "input_convention")),
                          ("classes", ("names", "palette", "ignore_index"))):
        missing = [k for k in keys if k not in ckpt.get(section, {})]
        if missing:
            raise CheckpointError(f"{path}: checkpoint section {section!r} lacks {missing}")
    ckpt["path"] = str(path)
    return ckpt


def build_model_from_checkpoint(
    ckpt: PathLike | Mapping[str, Any],
    *,
    load_weights: bool = True,
    backbone: nn.Module | None = None,
) -> nn.Module:
    """Rebuild the model a checkpoint describes (in eval mode) and load its weights.

    ``backbone`` is for custom-backbone models (``fcnseg.models.fcn_from_backbone``): a freshly
    built backbone module to use instead of calling the factory the checkpoint records (or
    needed when it records none).
    """
    from fcnseg.models import build_model
    from fcnseg.models.backbone import BackboneError
    from fcnseg.models.weights import WeightsError, describe_mismatch

    if not isinstance(ckpt, Mapping):
        ckpt = load_checkpoint(ckpt)
    desc = ckpt["model"]
    extra: dict[str, Any] = {}
    if backbone is not None:
        if desc["arch"] != "fcn_custom_backbone":
            raise CheckpointError(f"{ckpt.get('path', '<checkpoint>')}: backbone= applies only to "
                                  f"custom-backbone models, not {desc['arch']!r}")
        extra["backbone"] = backbone
    try:
        model = build_model(desc["arch"], **desc["build_kwargs"], **extra)
    except BackboneError as e:
        raise CheckpointError(f"{ckpt.get('path', '<checkpoint>')}: {e}") from e
    model.input_convention = get_convention(desc["input_convention"])
    if load_weights:
        where = Path(ckpt.get("path", "<checkpoint>"))
        problem = describe_mismatch(where, model, ckpt["model_state_dict"])
        if problem:
            raise WeightsError(problem)
        model.load_state_dict(ckpt["model_state_dict"])
    return model.eval()
