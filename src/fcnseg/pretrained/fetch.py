"""Published weights from their official sources first, verified, converted once and cached.

Sources are tried in order (the official host, then the PyTorch port's copies); checksums are
checked where published. A ``.caffemodel`` is accepted only if its structure is right, then its
SHA-256 is recorded in ``manifest.json`` and checked on every later read. It is converted on
first use and the result cached, so the cache works offline, even for a file put there by hand.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fcnseg.checkpoint import save_checkpoint
from fcnseg.data.palette import dataset_palette, voc_palette
from fcnseg.models import build_model, load_backbone_weights, load_fcn_weights
from fcnseg.models.alexnet import CAFFE_ALEXNET_KEYS, read_alexnet_caffemodel
from fcnseg.models.weights import copy_convolutionalized, vgg16_torchvision_keys
from fcnseg.utils.download import (
    ConnectionFailed,
    DownloadError,
    cache_dir,
    download,
    file_checksum,
)
from fcnseg.utils.files import atomic_write
from fcnseg.utils.typing import PathLike
from fcnseg.utils.validate import fields_of
from fcnseg.weightfiles.published import PRETRAINED, PublishedWeights, Source
from fcnseg.weightfiles.reference import REFERENCE_MODELS

MANIFEST = "manifest.json"


class FetchError(DownloadError):
    """No source gave a usable file; the message lists every URL tried and what it answered."""


# -- the manifest: SHA-256 of files verified by structure ------------------------------------
def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}  # a damaged manifest only means files are verified again
    return dict(fields_of(data))


def _record(directory: Path, path: Path, **info: Any) -> None:
    manifest = _read_manifest(directory)
    manifest[path.name] = {"sha256": file_checksum(path, "sha256"),
                           "size": path.stat().st_size, "recorded": time.time(), **info}
    with atomic_write(directory / MANIFEST, "w") as f:
        f.write(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _check_recorded(directory: Path, path: Path, notes: list[str]) -> bool:
    """Whether ``path`` still has its recorded SHA-256; a changed one is set aside (noted)."""
    entry = _read_manifest(directory).get(path.name)
    if "sha256" not in fields_of(entry):
        return False
    got = file_checksum(path, "sha256")
    if got == entry["sha256"]:
        return True
    aside = path.with_name(path.name + ".corrupt")
    os.replace(path, aside)
    notes.append(f"cached {path.name}: {path} changed since it was verified (SHA-256 {got}, "
                 f"recorded {entry['sha256']}); moved it to {aside}")
    return False


# -- conversion and structural checks -----------------------------------------------------------
def _expected_kwargs(w: PublishedWeights) -> dict[str, Any]:
    ref = REFERENCE_MODELS[w.reference] if w.reference else None
    kwargs: dict[str, Any] = {"width": 1.0, "fc_channels": 4096}
    if ref is not None and ref.num_classes is not None:
        kwargs["num_classes"] = ref.num_classes
    kwargs.update(w.build_kwargs or {})
    return kwargs


def _convert(w: PublishedWeights, raw: Path, source: Source, out: Path) -> None:
    """Convert a downloaded file into ``out``; raises ValueError when its structure is wrong."""
    expected = _expected_kwargs(w)
    if source.format == "caffemodel" and w.backbone_arch == "fcn_alexnet":
        sd = read_alexnet_caffemodel(raw)  # checked by loading into a probe, then saved
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # loading into meta tensors: shapes only
            copy_convolutionalized(_probe(expected, "fcn_alexnet"), raw, sd, CAFFE_ALEXNET_KEYS,
                                   "Caffe AlexNet")
        with atomic_write(out) as f:
            torch.save(sd, f)
        return
    if source.format == "caffemodel":
        # Lazy: reading a .caffemodel needs protobuf, an optional extra (fcnseg[caffe]).
        from fcnseg.pretrained.convert import convert_caffemodel

        converted = convert_caffemodel(raw, arch=w.reference)
        if converted.model is not None:
            got = {k: converted.model.build_kwargs.get(k) for k in expected}
            if got != expected:
                raise ValueError(f"{raw}: a model of {got}, expected {expected}")
        else:  # check every layer's shape against a VGG16 of the expected size
            _check_vgg16_shapes(raw, _probe(expected), converted.state_dict)
        converted.save(out)
        return
    if w.kind == "checkpoint":  # the port's state dict of a reference FCN
        ref = REFERENCE_MODELS[w.reference or ""]
        model = load_fcn_weights(build_model(ref.arch, **expected), raw, convention=w.convention)
        save_checkpoint(out, model, class_names=list(ref.classes or ()),
                        palette=(dataset_palette(ref.classes) if ref.classes
                                 else voc_palette()).tolist(),
                        metrics={f"published_{k}": v for k, v in ref.published.items()},
                        recipe={"converted_from": source.url, "reference": ref.name})
        return
    # a backbone state dict: check that it loads into a VGG16 of the expected size
    with warnings.catch_warnings():  # loading into meta tensors is a no-op, as intended here
        warnings.simplefilter("ignore", UserWarning)
        load_backbone_weights(_probe(expected), raw, convention=w.convention)


def _probe(expected: Mapping[str, Any], arch: str = "fcn32s") -> nn.Module:
    """An FCN (``arch``) of the expected trunk size on the meta device: shapes, no memory."""
    with torch.device("meta"):
        return build_model(arch, num_classes=1, width=expected["width"],
                           fc_channels=expected["fc_channels"])


def _check_vgg16_shapes(raw: Path, probe: nn.Module, sd: Mapping[str, Any]) -> None:
    own = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    for key, file_key in vgg16_torchvision_keys().items():
        if not key.endswith(".weight"):
            continue
        want = own[key]
        if key in ("fc6.weight", "fc7.weight"):  # torchvision's Linear layers: (out, in·k·k)
            want = (want[0], want[1] * want[2] * want[3])
        got = tuple(sd[file_key].shape)
        if got != want:
            raise ValueError(f"{raw}: layer {key.removesuffix('.weight')!r} has shape {got}, "
                             f"expected {want}")


# -- fetching -----------------------------------------------------------------------------------
def _answer(e: BaseException, url: str = "") -> str:
    """What ``e`` says, short: the URL and the offline hint are said once, by the caller."""
    if isinstance(e, ConnectionFailed):
        return e.reason
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if url:
        text = text.removeprefix(f"downloading {url} failed: ").removeprefix(f"downloading {url} ")
    return text[:600]


def _obtain(source: Source, directory: Path, progress: bool, notes: list[str]) -> Path:
    """The source's file in the cache, downloaded if needed and verified (by checksum, or by
    the manifest for a file seen before; the caller checks the structure of a new one)."""
    final = directory / source.filename
    if source.checksum:
        return download(source.url, filename=source.filename, md5=source.md5,
                        sha256=source.sha256, directory=directory, progress=progress)
    if final.is_file():
        _check_recorded(directory, final, notes)  # a changed file is set aside, fetched again
        if final.is_file():
            return final
    # Unverified downloads land beside the cache file and move in only once checked.
    return download(source.url, filename=f"{source.filename}.unverified",
                    directory=directory, progress=progress)


def backbone_weights_file(spec: PathLike) -> Path:
    """The file ``backbone_weights`` names: a published name through :func:`fetch_pretrained`,
    else the path as given."""
    if isinstance(spec, str) and spec in PRETRAINED:
        return fetch_pretrained(spec)
    return Path(spec)


def fetch_pretrained(name: str, directory: PathLike | None = None, progress: bool = True
                     ) -> Path:
    """The local path of published weights ``name`` (:data:`PRETRAINED`), downloaded from its
    sources in order and converted on first use; a cached file is used offline. Raises
    :class:`FetchError` listing every URL tried and its answer, where a file downloaded by hand
    goes, and how to pass a path instead."""
    try:
        w = PRETRAINED[name]
    except KeyError:
        raise ValueError(f"unknown pretrained weights {name!r}; known: {sorted(PRETRAINED)}") \
            from None
    directory = Path(directory) if directory is not None else cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    tried: list[str] = []
    out = directory / w.converted if w.converted else None
    if out is not None and out.is_file() and _check_recorded(directory, out, tried):
        return out
    for source in w.sources:
        try:
            raw = _obtain(source, directory, progress, tried)
        except (DownloadError, OSError) as e:
            tried.append(f"{source.url}: {_answer(e, source.url)}")
            continue
        if out is None:
            return raw
        try:
            _convert(w, raw, source, out)
        except (ValueError, ImportError, RuntimeError) as e:
            what = "failed the structural check" if not source.checksum else "cannot be used"
            tried.append(f"{source.url}: {raw.name} {what} ({_answer(e)})")
            if raw.name.endswith(".unverified"):
                raw.unlink(missing_ok=True)  # refused; any good copy already cached stays
            continue
        if raw.name.endswith(".unverified"):  # passed: it becomes the cached original
            final = directory / source.filename
            os.replace(raw, final)
            _record(directory, final, source=source.url, verified="structure")
        _record(directory, out, source=source.url, verified="converted")
        return out
    raise FetchError(_failure_message(w, directory, tried))


# Where a user passes a local file instead, by kind of weights.
_INSTEAD = {
    "backbone": ("or pass a local file: --set model.backbone_weights=PATH or "
                 "build_model(..., backbone_weights=PATH) (or model.backbone_weights=null to "
                 "start from random weights)"),
    "checkpoint": ("or pass a local file: --checkpoint PATH or Segmenter.from_checkpoint(PATH) "
                   "(a .caffemodel: fcnseg convert it first)"),
}


def _failure_message(w: PublishedWeights, directory: Path, tried: list[str]) -> str:
    hand = " or ".join(str(directory / s.filename) for s in w.sources)
    instead = _INSTEAD.get(w.kind, "or pass the local file's path where the weights are asked for")
    return (f"could not get pretrained weights {w.name!r}. Tried: " + "; ".join(tried)
            + ". To use a file downloaded elsewhere (as on a machine without internet access), "
            + f"put it at {hand} (it is used offline), " + instead)
