"""Loading weights: ImageNet VGG16 backbones, published FCN models, staged initialisation.

Nothing here executes code from a file: ``torch.load(weights_only=True)`` or safetensors only.
Every error names the file and, for mismatches, the offending keys and shapes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fcnseg.conventions import CAFFE_BGR, TORCHVISION_RGB, InputConvention, get_convention
from fcnseg.models.fcn import VGG16_BLOCKS
from fcnseg.utils.download import download

__all__ = [
    "PRETRAINED",
    "WeightSource",
    "WeightsError",
    "copy_convolutionalized",
    "describe_mismatch",
    "fetch_pretrained",
    "init_from",
    "load_backbone_weights",
    "load_fcn_weights",
    "read_state_dict",
]

PathLike = str | os.PathLike[str]
StateDict = dict[str, torch.Tensor]


class WeightsError(ValueError):
    """A weights file cannot be read, or its keys or shapes do not fit the model."""


@dataclass(frozen=True)
class WeightSource:
    """A published weights file: where it lives, its checksum and its input convention."""

    name: str
    url: str
    filename: str
    convention: InputConvention
    kind: str  # "vgg16" (backbone) or an FCN arch name
    md5: str | None = None
    sha256: str | None = None


def _drive(file_id: str) -> str:
    return f"https://drive.google.com/uc?id={file_id}&export=download"


PRETRAINED: dict[str, WeightSource] = {
    s.name: s
    for s in (
        WeightSource("vgg16_torchvision", "https://download.pytorch.org/models/vgg16-397923af.pth",
                     "vgg16-397923af.pth", TORCHVISION_RGB, "vgg16", sha256="397923af"),
        WeightSource("vgg16_caffe", _drive("1adDBTGY3GcEB_47dvcibajyzi872RAs3"),
                     "vgg16_from_caffe.pth", CAFFE_BGR, "vgg16",
                     md5="aa75b158f4181e7f6230029eb96c1b13"),
        WeightSource("fcn32s_caffe", _drive("11k2Q0bvRQgQbT6-jYWeh6nmAsWlSCY3f"),
                     "fcn32s_from_caffe.pth", CAFFE_BGR, "fcn32s",
                     md5="d3eb467a80e7da0468a20dfcbc13e6c8"),
        WeightSource("fcn16s_caffe", _drive("1bctu58B6YH9bu6lBBSBB2rUeGlGhYLoP"),
                     "fcn16s_from_caffe.pth", CAFFE_BGR, "fcn16s",
                     md5="a2d4035f669f09483b39c9a14a0d6670"),
        WeightSource("fcn8s_caffe", _drive("1ieXWyoG68xqoHJPWdyrDyaIaaWlfmUxI"),
                     "fcn8s_from_caffe.pth", CAFFE_BGR, "fcn8s",
                     md5="de93e540ec79512f8770033849c8ae89"),
        WeightSource("fcn8s_atonce_caffe", _drive("0B9P1L--7Wd2vblE1VUIxV1o2d2M"),
                     "fcn8s-atonce_from_caffe.pth", CAFFE_BGR, "fcn8s_atonce",
                     md5="bfed4437e941fef58932891217fe6464"),
    )
}


def fetch_pretrained(name: str, directory: PathLike | None = None, progress: bool = True) -> Path:
    """Download (or find in the cache) a published weights file and verify its checksum."""
    try:
        src = PRETRAINED[name]
    except KeyError:
        raise WeightsError(f"unknown pretrained weights {name!r}; known: {sorted(PRETRAINED)}") \
            from None
    return download(src.url, filename=src.filename, md5=src.md5, sha256=src.sha256,
                    directory=directory, progress=progress)


def _unwrap(obj: Any, path: Path) -> StateDict:
    if isinstance(obj, Mapping):
        for key in ("model_state_dict", "state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: not a state dict (a mapping of names to tensors)")
    # Checkpoints saved from DataParallel / DDP wrappers prefix every key with "module.".
    if obj and all(k.startswith("module.") for k in obj):
        return {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def read_state_dict(path: PathLike) -> StateDict:
    """Read a state dict from a ``.safetensors`` or ``torch.save`` file, safely.

    Accepts a bare state dict or a checkpoint holding one under ``model_state_dict`` (the
    PyTorch FCN port's ``.pth.tar``), ``state_dict`` or ``model``.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except ImportError:
        raise
    except Exception as e:  # truncated, corrupt, or holding objects that are not plain data
        raise WeightsError(
            f"{path}: cannot be read as weights ({type(e).__name__}: {_short(e)}). The file may be "
            f"truncated or corrupt, or hold Python objects that are not loaded for safety."
        ) from e
    return _unwrap(obj, path)


def _short(e: Exception, limit: int = 300) -> str:
    s = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return s[:limit]


def describe_mismatch(
    path: Path, model: nn.Module, sd: Mapping[str, torch.Tensor]
) -> str | None:
    """A message naming missing, unexpected and mis-shaped keys, or None if ``sd`` fits."""
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(sd))
        if sd[k].shape != own[k].shape
    ]
    if not (missing or unexpected or shapes):
        return None
    parts = []
    if missing:
        parts.append(f"missing keys {_listing(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {_listing(unexpected)}")
    if shapes:
        parts.append(f"shape mismatches {_listing(shapes)}")
    return f"{path}: weights do not fit {type(model).__name__}: " + "; ".join(parts)


def _listing(items: list[str], limit: int = 12) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "[" + ", ".join(items[:limit]) + "]" + more


def load_fcn_weights(
    model: nn.Module,
    path: PathLike,
    *,
    convention: InputConvention | str | None = None,
) -> nn.Module:
    """Load a whole-model state dict (ours, or the PyTorch FCN port's) into ``model``, strictly.

    The port's published models were converted from the Caffe release, so their convention is
    Caffe BGR; pass ``convention`` for files trained otherwise.
    """
    path = Path(path)
    sd = read_state_dict(path)
    problem = describe_mismatch(path, model, sd)
    if problem:
        raise WeightsError(problem)
    model.load_state_dict(sd)
    if convention is not None:
        model.input_convention = get_convention(convention)
    return model


# torchvision's vgg16: features.{i} indices of the 13 convolutions, and classifier.{0,3} = fc6, fc7.
_VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def _vgg16_conv_names() -> list[str]:
    return [f"conv{b}_{i}" for b, (n, _) in enumerate(VGG16_BLOCKS, 1) for i in range(1, n + 1)]


def _guess_convention(path: Path) -> InputConvention | None:
    name = path.name.lower()
    for src in PRETRAINED.values():
        if src.kind == "vgg16" and name == src.filename.lower():
            return src.convention
    if "caffe" in name:
        return CAFFE_BGR
    if re.fullmatch(r"vgg16-[0-9a-f]{8}\.pth", name):
        return TORCHVISION_RGB
    return None


def load_backbone_weights(
    model: nn.Module,
    path: PathLike,
    *,
    convention: InputConvention | str | None = None,
) -> nn.Module:
    """Copy ImageNet VGG16 weights (torchvision's state-dict layout) into an FCN: the
    convolutionalization.

    ``features.{0..28}`` go to conv1_1 … conv5_3; ``classifier.0`` (Linear 25088→4096) becomes fc6,
    a 7×7 convolution over 512 channels, and ``classifier.3`` (Linear 4096→4096) becomes fc7, a
    1×1 convolution; the 1000-way ``classifier.6`` is dropped. This covers torchvision's
    ``vgg16-397923af.pth`` (RGB convention) and the Caffe-converted ``vgg16_from_caffe.pth`` (BGR
    convention). The file's input convention is recorded on ``model.input_convention``; it is
    recognised from the published file names, otherwise ``convention`` must be given.
    """
    path = Path(path)
    conv = get_convention(convention) if convention is not None else _guess_convention(path)
    if conv is None:
        raise WeightsError(
            f"{path}: cannot tell which input convention these VGG16 weights expect; pass "
            f"convention='caffe_bgr' (BGR, 0-255, mean subtracted) or 'torchvision_rgb' "
            f"(RGB, [0, 1], ImageNet mean/std)"
        )
    mapping: dict[str, str] = {}
    for name, idx in zip(_vgg16_conv_names(), _VGG16_CONV_INDICES, strict=True):
        mapping[f"{name}.weight"] = f"features.{idx}.weight"
        mapping[f"{name}.bias"] = f"features.{idx}.bias"
    mapping.update({"fc6.weight": "classifier.0.weight", "fc6.bias": "classifier.0.bias",
                    "fc7.weight": "classifier.3.weight", "fc7.bias": "classifier.3.bias"})
    copy_convolutionalized(model, path, read_state_dict(path), mapping, "VGG16")
    model.input_convention = conv
    return model



def copy_convolutionalized(
    model: nn.Module,
    path: Path,
    sd: Mapping[str, torch.Tensor],
    mapping: Mapping[str, str],
    what: str,
    optional: tuple[str, ...] = (),
) -> None:
    """Copy ``sd[mapping[k]]`` into the model's ``k`` for every key of ``mapping``, reshaping the
    Linear fc6/fc7 weights into their convolutions. Keys of the file ending in one of
    ``optional`` may be absent. Errors name the file and the missing or mis-shaped keys."""
    own = model.state_dict()
    missing = sorted(v for v in mapping.values() if v not in sd and not v.endswith(optional))
    if missing:
        raise WeightsError(
            f"{path}: not a {what} state dict in torchvision's layout; missing keys "
            f"{_listing(missing)}"
        )
    new: StateDict = {}
    bad: list[str] = []
    for dst, src in mapping.items():
        if src not in sd:
            continue
        t = sd[src]
        if dst in ("fc6.weight", "fc7.weight") and dst in own and t.numel() == own[dst].numel():
            t = t.reshape(own[dst].shape)  # Linear (out, in·7·7) → convolution (out, in, 7, 7)
        if dst not in own:
            bad.append(f"{src}: model has no {dst}")
        elif t.shape != own[dst].shape:
            bad.append(f"{src} {tuple(sd[src].shape)} vs {dst} {tuple(own[dst].shape)}")
        else:
            new[dst] = t
    if bad:
        raise WeightsError(f"{path}: {what} weights do not fit the model: {_listing(bad)}")
    model.load_state_dict(new, strict=False)


def init_from(
    model: nn.Module, source: nn.Module | Mapping[str, torch.Tensor] | PathLike
) -> list[str]:
    """Staged initialisation: copy every parameter of ``source`` whose name and shape match.

    FCN-16s is initialised from a trained FCN-32s and FCN-8s from an FCN-16s: the trunk, fc6/fc7
    and score_fr are copied, and the new skip scorers (score_pool4, score_pool3) keep their zero
    initialisation, so the new model starts out computing exactly what the previous stage did.
    Upsampling layers of different sizes keep their bilinear kernels. Returns the copied keys.
    A module source also passes on its input convention.
    """
    if isinstance(source, nn.Module):
        sd: Mapping[str, torch.Tensor] = source.state_dict()
        if hasattr(source, "input_convention"):
            model.input_convention = source.input_convention
    elif isinstance(source, Mapping):
        sd = source
    else:
        sd = read_state_dict(source)
    own = model.state_dict()
    copied = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    if not any(k.startswith("conv1_1") for k in copied):
        raise WeightsError("init_from: the source shares no trunk layers with the model "
                           f"(matching keys: {_listing(sorted(copied))})")
    model.load_state_dict(copied, strict=False)
    return sorted(copied)
