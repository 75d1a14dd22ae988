"""Every form a user may pass as ``--checkpoint``, turned into a local checkpoint file.

:func:`resolve_checkpoint` keeps a checkpoint file as it is and builds a pretrained folder, an
fcnseg ``.safetensors`` file or a Hub repository (``hf://``) into a cached checkpoint dict. It
builds no model, so :mod:`fcnseg.checkpoint` builds on it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import socket
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from fcnseg.conventions import get_convention
from fcnseg.utils.download import cache_dir
from fcnseg.utils.files import atomic_path, atomic_write
from fcnseg.utils.typing import PathLike
from fcnseg.utils.validate import describe, expect_mapping

#: The format of fcnseg checkpoints (:mod:`fcnseg.checkpoint`), which this module writes too.
FORMAT = "fcnseg.checkpoint/1"
CONFIG_FORMAT = "fcnseg.pretrained/1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
METADATA_KEY = "fcnseg"  # the config, as JSON, in a .safetensors file's metadata
HF_SPEC = re.compile(r"hf://(?P<repo>[\w.\-]+/[\w.\-]+)(?:@(?P<rev>[\w.\-/]+))?")


def checkpoint_dict(state_dict: Mapping[str, torch.Tensor], model: Mapping[str, Any],
                    classes: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """A checkpoint of :data:`FORMAT`; ``fields`` set its ``recipe``, ``iteration``, ``epoch``,
    ``metrics`` and ``state`` (else empty or 0) or add others."""
    return {"format": FORMAT, "model_state_dict": state_dict, "model": model, "classes": classes,
            "recipe": {}, "iteration": 0, "epoch": 0, "metrics": {}, "state": {}, **fields}


class HubError(ValueError):
    """A pretrained folder, ``.safetensors`` checkpoint or Hub repository cannot be used (not a
    CheckpointError, which callers may take as "try it as a plain state dict")."""


def _checkpoint_from(config: Any, state_dict: dict[str, torch.Tensor], spec: str,
                     where: str) -> dict[str, Any]:
    """The checkpoint dict a config describes; ``where`` names the user's config in errors."""
    def bad(problem: str) -> HubError:
        return _refused(f"{where}: {problem}")

    config = expect_mapping(config, where, "a JSON object of fields", error=_refused)
    if config.get("format") != CONFIG_FORMAT:
        raise bad(f"not an fcnseg pretrained config (format {config.get('format')!r}, "
                  f"expected {CONFIG_FORMAT!r})")
    missing = [k for k in ("arch", "build_kwargs", "input_convention", "classes")
               if k not in config]
    if missing:
        raise bad(f"lacks the field(s) {', '.join(missing)}")
    for key in ("build_kwargs", "input_convention", "classes", "metrics"):
        if key != "metrics" or config.get(key) is not None:
            expect_mapping(config.get(key), f"{where}: {key}", "a JSON object", error=_refused)
    try:
        get_convention(config["input_convention"])
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"input_convention: {e}") from None
    classes = config["classes"]
    missing = [k for k in ("names", "palette", "ignore_index") if k not in classes]
    if missing:
        raise bad(f"classes lacks the field(s) {', '.join(missing)}")
    if not isinstance(classes["names"], list):
        raise bad(f"classes.names: expected a list of names, got {describe(classes['names'])}")
    model = {"arch": config["arch"], "build_kwargs": dict(config["build_kwargs"]),
             "input_convention": dict(config["input_convention"])}
    ignore_index = classes["ignore_index"]
    with contextlib.suppress(TypeError, ValueError):  # else the checkpoint checks name it
        ignore_index = int(ignore_index)
    classes = {"names": [str(n) for n in classes["names"]], "palette": classes["palette"],
               "ignore_index": ignore_index,  # the checkpoint checks check the others
               **{k: classes[k] for k in ("coco_categories", "background") if k in classes}}
    calibrated = {}  # what ``fcnseg calibrate`` stored
    if "temperature" in config:
        t = config["temperature"]
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) \
                or t <= 0:
            raise bad(f"temperature: expected a positive number, got {t!r}")
        calibration = expect_mapping(config.get("calibration") or {}, f"{where}: calibration",
                                     "a JSON object", error=_refused)
        calibrated = {"temperature": float(t), "calibration": dict(calibration)}
    return checkpoint_dict(state_dict, model, classes, recipe={"pretrained": spec},
                           metrics=dict(config.get("metrics") or {}), **calibrated)


def _refused(message: str) -> HubError:
    return HubError(message[:400])  # a config can quote a long value


def safetensors_metadata(path: PathLike) -> dict[str, str]:
    """The metadata of a ``.safetensors`` file (its tensors are not read)."""
    from safetensors import safe_open  # optional extra (fcnseg[safetensors] or [hub])

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def read_safetensors(path: PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the metadata of a ``.safetensors`` file."""
    from safetensors.torch import load_file  # optional extra (fcnseg[safetensors] or [hub])

    metadata = safetensors_metadata(path)
    return load_file(str(path)), metadata


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        return read_safetensors(path)
    except Exception as e:  # truncated or not safetensors
        raise HubError(f"{path}: cannot be read as safetensors ({type(e).__name__}: {e})") \
            from e


def write_safetensors(path: PathLike, tensors: Mapping[str, torch.Tensor],
                      metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``tensors`` as a ``.safetensors`` file, whole or not at all; a full disk is a
    :class:`~fcnseg.utils.files.DiskFullError`, another failure a RuntimeError naming ``path``."""
    from safetensors import SafetensorError  # optional extra (fcnseg[hub] or [safetensors])
    from safetensors.torch import save_file

    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            try:
                save_file(dict(tensors), str(tmp), metadata=dict(metadata or {}))
            except SafetensorError as e:
                if any(text in str(e) for text in _DISK_FULL_TEXTS):
                    raise OSError(errno.ENOSPC, str(e)) from e
                raise
    except (OSError, SafetensorError) as e:  # a DiskFullError (a RuntimeError) passes
        kept = f"the previous {path.name} is intact" if path.exists() else "nothing was written"
        raise RuntimeError(f"cannot write {path}: {e}; {kept}") from e
    return path


# How safetensors reports a full disk: as text only.
_DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded", "StorageFull",
                    "os error 28", "os error 122")


def _read_folder(folder: Path, where: str) -> dict[str, Any]:
    config_path, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for p in (config_path, weights):
        if not p.is_file():
            runs = [c.name for c in (folder / "best.pt", folder / "last.pt") if c.is_file()]
            if runs:  # the likelier meaning first
                raise HubError(f"{where}: a training run folder; pass its checkpoint "
                               f"{folder / runs[0]} (no {p.name} in {folder}: not a "
                               f"pretrained folder, which holds {CONFIG_NAME} and "
                               f"{WEIGHTS_NAME})")
            raise HubError(f"{where}: no {p.name} in {folder} (a pretrained folder holds "
                           f"{CONFIG_NAME} and {WEIGHTS_NAME})")
    config = _json(config_path.read_text(encoding="utf-8"), f"{config_path}: not valid JSON")
    state_dict, _ = _read_safetensors(weights)
    return _checkpoint_from(config, state_dict, where, checkpoint_source(where)["config"])


def _json(text: str, problem: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # ValueError: also numbers of 4300+ digits
        raise HubError(f"{problem} ({e})") from e


def _read_safetensors_checkpoint(path: Path) -> dict[str, Any]:
    state_dict, metadata = _read_safetensors(path)
    if METADATA_KEY not in metadata:
        raise HubError(f"{path}: a .safetensors file without fcnseg's description in its "
                       f"metadata; convert it with `fcnseg convert` or save it with "
                       f"fcnseg.hub.save_pretrained")
    config = _json(metadata[METADATA_KEY], f"{path}: its fcnseg metadata is not valid JSON")
    return _checkpoint_from(config, state_dict, str(path), checkpoint_source(path)["config"])


def _hf_folder(spec: str) -> Path:
    """The local folder (Hugging Face cache snapshot) of ``hf://user/repo[@revision]``."""
    m = HF_SPEC.fullmatch(spec)
    if m is None:
        raise HubError(f"{spec}: not a Hub reference; write hf://user/repo or "
                       f"hf://user/repo@revision")
    repo, revision = m["repo"], m["rev"]
    try:
        # optional extra (fcnseg[hub]); imported here so that checkpoints need no Hub client
        from huggingface_hub import constants, hf_hub_download
        from huggingface_hub import errors as hf_errors
    except ImportError:
        raise HubError(f"{spec}: hf:// checkpoints need huggingface_hub "
                       f"(pip install 'fcnseg[hub]')") from None
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    endpoint = str(constants.ENDPOINT).rstrip("/")  # HF_ENDPOINT, else huggingface.co
    # The client retries an unreachable Hub for about 25 s: one connection attempt tells now.
    cache_only = offline or not hub_reachable(endpoint)
    cache = os.environ.get("HF_HUB_CACHE") or None
    where = f"{repo}" + (f" at revision {revision!r}" if revision else "")
    paths = []
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        try:
            paths.append(Path(hf_hub_download(repo, name, revision=revision, cache_dir=cache,
                                              local_files_only=cache_only,
                                              endpoint=endpoint)))
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


def hub_reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """Whether ``endpoint`` accepts a connection within ``timeout`` seconds (True behind a
    proxy, which the client goes through)."""
    url = urllib.parse.urlsplit(endpoint)
    if not url.hostname:
        return True
    proxies = urllib.request.getproxies()
    if (url.scheme in proxies or "all" in proxies) and not urllib.request.proxy_bypass(
            url.hostname):
        return True
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:  # no name resolution, refused, unreachable, timed out
        return False


def checkpoint_source(spec: PathLike) -> dict[str, str] | None:
    """How errors name the user's files behind a pretrained ``spec``: ``{"config": ...,
    "weights": ...}``, a checkpoint's ``source``; None for a plain checkpoint file."""
    s = os.fspath(spec)
    path = Path(s)
    if s.startswith("hf://"):
        return {"config": f"{s} ({CONFIG_NAME})", "weights": f"{s} ({WEIGHTS_NAME})"}
    if path.is_dir():
        return {"config": str(path / CONFIG_NAME), "weights": str(path / WEIGHTS_NAME)}
    if path.suffix == ".safetensors" and path.is_file():
        return {"config": f"{path} (its fcnseg metadata)", "weights": str(path)}
    return None


def checkpoint_files(spec: PathLike) -> list[Path]:
    """The local files ``spec`` is read from (``hf://`` fetched into the cache first)."""
    s = os.fspath(spec)
    folder = _hf_folder(s) if s.startswith("hf://") else Path(s)
    if folder.is_dir():
        return [f for f in (folder / CONFIG_NAME, folder / WEIGHTS_NAME) if f.is_file()]
    return [folder]


def _materialised(sources: Sequence[Path], build: Any) -> Path:
    """The cached checkpoint ``build()`` makes once per (path, size, mtime) of ``sources``."""
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
    """A local checkpoint file for anything a user may pass as ``--checkpoint``: plain files as
    they are; pretrained folders, fcnseg ``.safetensors`` and ``hf://user/repo[@revision]``
    (``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``) as a checkpoint cached once per version of the files.
    """
    s = os.fspath(spec)
    path = _hf_folder(s) if s.startswith("hf://") else Path(s)
    if path.is_dir():  # keyed by the folder itself until it holds both files
        files = checkpoint_files(path)
        return _materialised(files if len(files) == 2 else [path], lambda: _read_folder(path, s))
    if path.suffix == ".safetensors" and path.is_file():
        return _materialised([path], lambda: _read_safetensors_checkpoint(path))
    return path
