"""Pretrained-model folders, the Hugging Face Hub, and the one resolver for ``--checkpoint``.

A pretrained folder holds ``config.json`` (arch, build kwargs, classes, palette, input
convention, metrics) and ``model.safetensors``: no pickle, readable by any safetensors tool, and
what :func:`push_to_hub` uploads. :func:`resolve_checkpoint` turns every form a user may pass as
a checkpoint into a local checkpoint file:

- a checkpoint file: itself;
- a pretrained folder, or a ``.safetensors`` file written by ``fcnseg convert``: a checkpoint
  built from it once and cached (``<cache>/checkpoints/``);
- ``hf://user/repo[@revision]``: the folder from the Hub, through the Hugging Face cache
  (``HF_HUB_CACHE``); with ``HF_HUB_OFFLINE=1`` only the cache is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fcnseg.checkpoint import FORMAT, build_model_from_checkpoint, describe_model, load_checkpoint
from fcnseg.conventions import get_convention
from fcnseg.data.palette import voc_palette
from fcnseg.utils.download import cache_dir
from fcnseg.utils.files import atomic_write
from fcnseg.utils.typing import PathLike

__all__ = [
    "CONFIG_FORMAT",
    "HubError",
    "from_pretrained",
    "is_pretrained_spec",
    "push_to_hub",
    "resolve_checkpoint",
    "save_pretrained",
    "save_safetensors_checkpoint",
]

CONFIG_FORMAT = "fcnseg.pretrained/1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_METADATA_KEY = "fcnseg"  # the config, as JSON, in a .safetensors file's metadata
_HF_SPEC = re.compile(r"hf://(?P<repo>[\w.\-]+/[\w.\-]+)(?:@(?P<rev>[\w.\-/]+))?")


class HubError(ValueError):
    """A pretrained folder, ``.safetensors`` checkpoint or Hub repository cannot be used.

    Not a :class:`~fcnseg.checkpoint.CheckpointError`: code that takes "not a checkpoint" to
    mean "try it as a plain state dict" must not swallow a missing Hub repository."""


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


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_safetensors_checkpoint(
    path: PathLike, model: nn.Module, *, class_names: Sequence[str], palette: Any,
    ignore_index: int = 255, metrics: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
) -> Path:
    """One ``.safetensors`` file whose metadata holds the ``config.json`` description, so that
    ``--checkpoint FILE.safetensors`` works like a checkpoint."""
    from safetensors.torch import save_file  # optional extra (fcnseg[hub] or [safetensors])

    path = Path(path)
    config = _config(model, class_names, palette, ignore_index, metrics, source)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(_tensors(model), str(tmp), metadata={_METADATA_KEY: json.dumps(config)})
    os.replace(tmp, path)
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
    from safetensors.torch import save_file  # optional extra (fcnseg[hub])

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
    weights_tmp = folder / f".{WEIGHTS_NAME}.tmp"
    save_file(_tensors(model), str(weights_tmp), metadata={"format": "pt"})
    os.replace(weights_tmp, folder / WEIGHTS_NAME)
    with atomic_write(folder / CONFIG_NAME, "w") as f:
        f.write(json.dumps(config, indent=2) + "\n")
    return folder


# -- reading -----------------------------------------------------------------------------------


def _checkpoint_from(config: Mapping[str, Any], state_dict: dict[str, torch.Tensor],
                     where: str) -> dict[str, Any]:
    """The checkpoint dict (see :mod:`fcnseg.checkpoint`) that a config describes."""
    if config.get("format") != CONFIG_FORMAT:
        raise HubError(f"{where}: not an fcnseg pretrained config (format "
                       f"{config.get('format')!r}, expected {CONFIG_FORMAT!r})")
    try:
        get_convention(config["input_convention"])
        model = {"arch": str(config["arch"]), "build_kwargs": dict(config["build_kwargs"]),
                 "input_convention": dict(config["input_convention"])}
        classes = config["classes"]
        classes = {"names": [str(n) for n in classes["names"]], "palette": classes["palette"],
                   "ignore_index": int(classes["ignore_index"])}
    except (KeyError, TypeError, ValueError) as e:
        raise HubError(f"{where}: config lacks or mangles a field ({type(e).__name__}: {e})") \
            from e
    return {"format": FORMAT, "model_state_dict": state_dict, "model": model,
            "classes": classes, "recipe": {"pretrained": where}, "iteration": 0, "epoch": 0,
            "metrics": dict(config.get("metrics") or {}), "state": {}}


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open  # optional extra (fcnseg[hub])
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        return load_file(str(path)), metadata
    except Exception as e:  # truncated or not safetensors
        raise HubError(f"{path}: cannot be read as safetensors ({type(e).__name__}: {e})") \
            from e


def _read_folder(folder: Path, where: str) -> dict[str, Any]:
    config_path, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for p in (config_path, weights):
        if not p.is_file():
            runs = [c.name for c in (folder / "best.pt", folder / "last.pt") if c.is_file()]
            hint = f"; for a training run, pass {folder / runs[0]}" if runs else ""
            raise HubError(f"{where}: no {p.name} in {folder} (a pretrained folder holds "
                           f"{CONFIG_NAME} and {WEIGHTS_NAME}){hint}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HubError(f"{config_path}: not valid JSON ({e})") from e
    state_dict, _ = _read_safetensors(weights)
    return _checkpoint_from(config, state_dict, where)


def _read_safetensors_checkpoint(path: Path) -> dict[str, Any]:
    state_dict, metadata = _read_safetensors(path)
    if _METADATA_KEY not in metadata:
        raise HubError(f"{path}: a .safetensors file without fcnseg's description in its "
                       f"metadata; convert it with `fcnseg convert` or save it with "
                       f"fcnseg.hub.save_pretrained")
    try:
        config = json.loads(metadata[_METADATA_KEY])
    except json.JSONDecodeError as e:
        raise HubError(f"{path}: its fcnseg metadata is not valid JSON ({e})") from e
    return _checkpoint_from(config, state_dict, str(path))


def _hf_folder(spec: str) -> Path:
    """The local folder (Hugging Face cache snapshot) of ``hf://user/repo[@revision]``."""
    m = _HF_SPEC.fullmatch(spec)
    if m is None:
        raise HubError(f"{spec}: not a Hub reference; write hf://user/repo or "
                       f"hf://user/repo@revision")
    repo, revision = m["repo"], m["rev"]
    try:
        # optional extra (fcnseg[hub]); imported here so that checkpoints need no Hub client
        from huggingface_hub import errors as hf_errors
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise HubError(f"{spec}: hf:// checkpoints need huggingface_hub "
                       f"(pip install 'fcnseg[hub]')") from None
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    cache = os.environ.get("HF_HUB_CACHE") or None
    where = f"{repo}" + (f" at revision {revision!r}" if revision else "")
    paths = []
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        try:
            paths.append(Path(hf_hub_download(repo, name, revision=revision, cache_dir=cache,
                                              local_files_only=offline)))
        except hf_errors.RevisionNotFoundError as e:
            raise HubError(f"{spec}: revision {revision!r} not found in {repo}") from e
        except hf_errors.RepositoryNotFoundError as e:
            raise HubError(f"{spec}: no Hub repository {repo!r} (or it is private: log in "
                           f"with `hf auth login`)") from e
        except hf_errors.LocalEntryNotFoundError as e:
            mode = "offline (HF_HUB_OFFLINE)" if offline else "the Hub could not be reached"
            raise HubError(
                f"{spec}: {name} of {where} is not in the Hugging Face cache "
                f"({cache or 'default cache'}) and {mode}. Fetch it once with network, or "
                f"pass a local folder holding {CONFIG_NAME} and {WEIGHTS_NAME}."
            ) from e
        except hf_errors.EntryNotFoundError as e:
            raise HubError(f"{spec}: {where} has no {name}; it is not an fcnseg model") from e
        except (hf_errors.HfHubHTTPError, OSError) as e:
            raise HubError(f"{spec}: download failed ({type(e).__name__}: {e})") from e
    return paths[0].parent


def is_pretrained_spec(spec: PathLike) -> bool:
    """Whether ``spec`` is a Hub reference, a pretrained folder or a ``.safetensors`` file
    (rather than a plain checkpoint file)."""
    s = os.fspath(spec)
    if s.startswith("hf://"):
        return True
    p = Path(s)
    return p.is_dir() or (p.suffix == ".safetensors" and p.is_file())


def _materialised(sources: Sequence[Path], build: Any) -> Path:
    """A checkpoint file built by ``build()`` once for these source files (keyed by their real
    paths, sizes and modification times) and kept in the cache."""
    h = hashlib.sha256()
    for src in sources:
        real = src.resolve()
        st = real.stat()
        h.update(f"{real}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    out_dir = cache_dir() / "checkpoints"
    out = out_dir / f"{h.hexdigest()[:24]}.pt"
    if out.is_file():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = build()
    with atomic_write(out) as f:
        torch.save(ckpt, f)
    return out


def resolve_checkpoint(spec: PathLike) -> Path:
    """A local checkpoint file for anything a user may pass as ``--checkpoint``.

    Plain files are returned as they are; pretrained folders, fcnseg ``.safetensors`` files and
    ``hf://user/repo[@revision]`` are turned into a cached checkpoint (built once per version
    of the files). Errors name the spec and what is wrong.
    """
    s = os.fspath(spec)
    if s.startswith("hf://"):
        folder = _hf_folder(s)
        return _materialised([folder / CONFIG_NAME, folder / WEIGHTS_NAME],
                             lambda: _read_folder(folder, s))
    path = Path(s)
    if path.is_dir():
        return _materialised([path / CONFIG_NAME, path / WEIGHTS_NAME]
                             if (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()
                             else [path], lambda: _read_folder(path, s))
    if path.suffix == ".safetensors" and path.is_file():
        return _materialised([path], lambda: _read_safetensors_checkpoint(path))
    return path


def from_pretrained(spec: PathLike, *, revision: str | None = None,
                    device: str | torch.device = "cpu") -> nn.Module:
    """The model of ``"user/repo"`` (the Hub), ``hf://user/repo[@rev]``, a pretrained folder or
    any checkpoint, in eval mode. Its classes and palette are on ``model.class_names`` and
    ``model.palette``; its pixel convention on ``model.input_convention``."""
    s = os.fspath(spec)
    if not s.startswith("hf://") and not Path(s).exists() and _HF_SPEC.fullmatch(f"hf://{s}"):
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
    class_names: Sequence[str] | None = None,
    palette: Any = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload fcnseg model",
) -> str:
    """Save the model as a pretrained folder and upload it to ``repo_id`` (created if needed).
    Returns the commit URL. Needs ``huggingface_hub`` and a token (``hf auth login``)."""
    from huggingface_hub import HfApi  # optional extra (fcnseg[hub])

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="fcnseg-push-"))
    try:
        save_pretrained(model_or_checkpoint, tmp, class_names=class_names, palette=palette)
        info = api.upload_folder(repo_id=repo_id, folder_path=tmp,
                                 commit_message=commit_message)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(getattr(info, "commit_url", info))
