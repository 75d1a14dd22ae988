"""Pretrained-model folders and the Hugging Face Hub: writing, uploading, building back.

A pretrained folder holds ``config.json`` (arch, build kwargs, classes, palette, convention,
metrics) and ``model.safetensors`` (no pickle);
:func:`~fcnseg.weightfiles.resolve.resolve_checkpoint` reads it."""

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

from fcnseg.checkpoint import (
    as_checkpoint,
    build_model_from_checkpoint,
    load_checkpoint,
    pretrained_config,
    write_model_safetensors,
)
from fcnseg.data.palette import distinct_palette
from fcnseg.utils.files import atomic_write
from fcnseg.utils.typing import PathLike
from fcnseg.weightfiles.resolve import (
    CONFIG_NAME,
    HF_SPEC,
    WEIGHTS_NAME,
    HubError,
    resolve_checkpoint,
)


def save_pretrained(model_or_checkpoint: nn.Module | PathLike | Mapping[str, Any],
                    folder: PathLike, *, class_names: Sequence[str] | None = None,
                    palette: Any = None, ignore_index: int = 255,
                    metrics: Mapping[str, Any] | None = None) -> Path:
    """Write ``folder/config.json`` and ``folder/model.safetensors`` of a model built by fcnseg
    (``class_names`` needed; the palette defaults to :func:`save_checkpoint`'s) or of a
    checkpoint (file or loaded dict), whose classes, palette and metrics are used."""
    if isinstance(model_or_checkpoint, nn.Module):
        model = getattr(model_or_checkpoint, "module", model_or_checkpoint)
        if class_names is None:
            raise HubError("save_pretrained(model, ...) needs class_names")
        names, pal, ignore, classes = list(class_names), palette, ignore_index, {}
        if pal is None:  # save_checkpoint's default: one model, one look
            pal = distinct_palette(names, ignore).tolist()
    else:
        ckpt = as_checkpoint(model_or_checkpoint)
        model = build_model_from_checkpoint(ckpt)
        classes = dict(ckpt["classes"])
        names = list(class_names or classes["names"])
        bg = classes.get("background")  # renamed classes: the background keeps its index
        classes["background"] = dict(zip(classes["names"], names, strict=False)).get(bg, bg)
        pal = palette if palette is not None else classes["palette"]
        ignore = int(classes["ignore_index"])
        metrics = metrics if metrics is not None else ckpt.get("metrics")
    config = pretrained_config(model, names, pal, ignore, metrics, None, class_extras=classes)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_model_safetensors(folder / WEIGHTS_NAME, model, {"format": "pt"})
    with atomic_write(folder / CONFIG_NAME, "w") as f:
        f.write(json.dumps(config, indent=2) + "\n")
    return folder


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


def push_to_hub(model_or_checkpoint: nn.Module | PathLike | Mapping[str, Any], repo_id: str, *,
                private: bool | None = None, token: str | None = None,
                commit_message: str = "Upload fcnseg model", **pretrained: Any) -> str:
    """Save the model as a pretrained folder (``pretrained``: :func:`save_pretrained`'s options)
    and upload it to ``repo_id`` (created if needed); returns the commit URL. Needs
    ``huggingface_hub`` and a token (``hf auth login``)."""
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
