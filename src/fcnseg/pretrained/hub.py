"""Pretrained-model folders and the Hugging Face Hub: writing, uploading, building back.

A pretrained folder holds ``config.json`` (arch, build kwargs, classes, palette, input
convention, metrics) and ``model.safetensors``: no pickle, readable by any safetensors tool, and
what :func:`push_to_hub` uploads. Reading one (and every other form a user may pass as a
checkpoint) is :func:`~fcnseg.pretrained.resolve.resolve_checkpoint`, named here too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fcnseg.checkpoint import build_model_from_checkpoint, describe_model, load_checkpoint
from fcnseg.data.palette import voc_palette
from fcnseg.pretrained.resolve import (
    CONFIG_FORMAT,
    CONFIG_NAME,
    HF_SPEC,
    METADATA_KEY,
    WEIGHTS_NAME,
    HubError,
    is_pretrained_spec,
    resolve_checkpoint,
    write_safetensors,
)
from fcnseg.utils.files import atomic_write
from fcnseg.utils.typing import PathLike
from fcnseg.utils.validate import fields_of

__all__ = [
    "CONFIG_FORMAT",
    "HubError",
    "from_pretrained",
    "is_pretrained_spec",
    "push_to_hub",
    "resolve_checkpoint",
    "save_checkpoint_safetensors",
    "save_pretrained",
    "save_safetensors_checkpoint",
    "write_safetensors",
]



def _config(model: nn.Module, class_names: Sequence[str], palette: Any, ignore_index: int,
            metrics: Mapping[str, Any] | None, source: Mapping[str, Any] | None
            ) -> dict[str, Any]:
    names = [str(n) for n in class_names]
    if len(names) != getattr(model, "num_classes", len(names)):
        raise HubError(f"{len(names)} class names given for a model with "
                       f"{model.num_classes} classes")
    pal = [[int(c) for c in rgb] for rgb in list(palette)[: max(len(names), ignore_index + 1)]]
    desc = describe_model(model)
    return {
        "format": CONFIG_FORMAT,
        "arch": desc["arch"],
        "build_kwargs": desc["build_kwargs"],
        "input_convention": desc["input_convention"],
        "classes": {"names": names, "palette": pal, "ignore_index": int(ignore_index)},
        "metrics": dict(metrics or {}),
        "source": dict(source or {}),
    }


def _write_safetensors(path: Path, model: nn.Module, metadata: dict[str, str]) -> None:
    """The model's state dict as a ``.safetensors`` file, written whole or not at all."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_safetensors(path, tensors, metadata)


def save_safetensors_checkpoint(
    path: PathLike, model: nn.Module, *, class_names: Sequence[str], palette: Any,
    ignore_index: int = 255, metrics: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
) -> Path:
    """One ``.safetensors`` file whose metadata holds the ``config.json`` description, so that
    ``--checkpoint FILE.safetensors`` works like a checkpoint."""
    path = Path(path)
    config = _config(model, class_names, palette, ignore_index, metrics, source)
    _write_safetensors(path, model, {METADATA_KEY: json.dumps(config)})
    return path


def _converted_from(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """The ``source`` recorded in the description of the pretrained files a checkpoint was read
    from (what ``fcnseg convert`` converted), so that rewriting them keeps it; {} otherwise."""
    files = ckpt.get("source") or {}
    config_file, weights = Path(str(files.get("config", ""))), str(files.get("weights", ""))
    try:
        if config_file.name == CONFIG_NAME and config_file.is_file():
            config = json.loads(config_file.read_text(encoding="utf-8"))
        elif weights.endswith(".safetensors") and Path(weights).is_file():
            from safetensors import safe_open

            with safe_open(weights, framework="pt") as f:
                config = json.loads((f.metadata() or {}).get(METADATA_KEY, "{}"))
        else:
            return {}
    except (OSError, ValueError):
        return {}
    return dict(fields_of(fields_of(config).get("source")))


def save_checkpoint_safetensors(path: PathLike, checkpoint: PathLike | Mapping[str, Any]) -> Path:
    """A checkpoint (file or loaded dict) as one ``.safetensors`` file, as ``fcnseg convert``
    writes them: its weights, and in the metadata its description, classes, metrics and any
    temperature and calibration (``fcnseg calibrate``). Written whole or not at all."""
    ckpt = load_checkpoint(checkpoint) if not isinstance(checkpoint, Mapping) else checkpoint
    model = build_model_from_checkpoint(ckpt)
    classes = ckpt["classes"]
    config = _config(model, classes["names"], classes["palette"], int(classes["ignore_index"]),
                     ckpt.get("metrics"), _converted_from(ckpt))
    for key in ("temperature", "calibration"):
        if key in ckpt:
            config[key] = ckpt[key]
    path = Path(path)
    _write_safetensors(path, model, {METADATA_KEY: json.dumps(config, default=str)})
    return path


def save_pretrained(
    model_or_checkpoint: nn.Module | PathLike | Mapping[str, Any],
    folder: PathLike,
    *,
    class_names: Sequence[str] | None = None,
    palette: Any = None,
    ignore_index: int = 255,
    metrics: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``folder/config.json`` and ``folder/model.safetensors``.

    ``model_or_checkpoint`` is a model built by fcnseg (then ``class_names`` are needed; the
    palette defaults to the VOC one) or a checkpoint (file or loaded dict), whose classes,
    palette and metrics are used.
    """
    if isinstance(model_or_checkpoint, nn.Module):
        model = getattr(model_or_checkpoint, "module", model_or_checkpoint)
        if class_names is None:
            raise HubError("save_pretrained(model, ...) needs class_names")
        names, pal, ignore = list(class_names), palette, ignore_index
        if pal is None:
            pal = voc_palette().tolist()
    else:
        ckpt = (load_checkpoint(model_or_checkpoint)
                if not isinstance(model_or_checkpoint, Mapping) else model_or_checkpoint)
        model = build_model_from_checkpoint(ckpt)
        classes = ckpt["classes"]
        names = list(class_names or classes["names"])
        pal = palette if palette is not None else classes["palette"]
        ignore = int(classes["ignore_index"])
        metrics = metrics if metrics is not None else ckpt.get("metrics")
    config = _config(model, names, pal, ignore, metrics, None)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _write_safetensors(folder / WEIGHTS_NAME, model, {"format": "pt"})
    with atomic_write(folder / CONFIG_NAME, "w") as f:
        f.write(json.dumps(config, indent=2) + "\n")
    return folder


# -- reading -----------------------------------------------------------------------------------


def from_pretrained(spec: PathLike, *, revision: str | None = None,
                    device: str | torch.device = "cpu") -> nn.Module:
    """The model of ``"user/repo"`` (the Hub), ``hf://user/repo[@rev]``, a pretrained folder or
    any checkpoint, in eval mode. Its classes and palette are on ``model.class_names`` and
    ``model.palette``; its pixel convention on ``model.input_convention``."""
    s = os.fspath(spec)
    if not s.startswith("hf://") and not Path(s).exists() and HF_SPEC.fullmatch(f"hf://{s}"):
        s = f"hf://{s}"  # "user/repo": the Hub
    if revision is not None:
        if not s.startswith("hf://"):
            raise HubError(f"{spec}: revision= applies to Hub repositories only")
        s = f"{s.split('@', 1)[0]}@{revision}"
    ckpt = load_checkpoint(resolve_checkpoint(s))
    model = build_model_from_checkpoint(ckpt).to(device)
    model.class_names = list(ckpt["classes"]["names"])
    model.palette = [list(c) for c in ckpt["classes"]["palette"]]
    return model


def push_to_hub(
    model_or_checkpoint: nn.Module | PathLike | Mapping[str, Any],
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload fcnseg model",
    **pretrained: Any,
) -> str:
    """Save the model as a pretrained folder and upload it to ``repo_id`` (created if needed).
    ``pretrained`` are :func:`save_pretrained`'s options (``class_names``, ``palette``,
    ``ignore_index``, ``metrics``). Returns the commit URL. Needs ``huggingface_hub`` and a
    token (``hf auth login``)."""
    from huggingface_hub import HfApi  # optional extra (fcnseg[hub])

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="fcnseg-push-"))
    try:
        save_pretrained(model_or_checkpoint, tmp, **pretrained)
        info = api.upload_folder(repo_id=repo_id, folder_path=tmp,
                                 commit_message=commit_message)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(getattr(info, "commit_url", info))
