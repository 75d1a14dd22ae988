"""Convert a reference ``.caffemodel`` into an fcnseg model or an ImageNet VGG16 state dict.

The file is checked against the table of :mod:`fcnseg.weightfiles.reference` (every layer
present, none left over, every shape fitting) and its blobs are assigned, without another copy,
as the parameters of a model built on the ``meta`` device."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fcnseg.checkpoint import save_checkpoint, save_safetensors_checkpoint
from fcnseg.conventions import InputConvention
from fcnseg.data.palette import dataset_palette, voc_palette
from fcnseg.models import build_model
from fcnseg.models.weights import save_backbone_weights, vgg16_torchvision_keys
from fcnseg.utils.typing import PathLike
from fcnseg.weightfiles.caffemodel import CaffeBlob, CaffeLayer, CaffeModelError, CaffeNet
from fcnseg.weightfiles.caffemodel import read_caffemodel as _read
from fcnseg.weightfiles.reference import (
    HEADS,
    REFERENCE_MODELS,
    VGG16_IMAGENET,
    VGG16_TRUNK,
    ReferenceModel,
)

#: ``--arch`` values for a Caffe FCN of the reference's layer names but any class count.
GENERIC_ARCHS: dict[str, ReferenceModel] = {
    "vgg16": VGG16_IMAGENET,
    **{arch: ReferenceModel(arch, arch, VGG16_TRUNK + HEADS[head], None, None)
       for arch, head in (("fcn32s", "fcn32s"), ("fcn16s", "fcn16s"), ("fcn8s", "fcn8s"))},
    "fcn8s_atonce": ReferenceModel("fcn8s_atonce", "fcn8s_atonce",
                                   VGG16_TRUNK + HEADS["fcn8s"], None, None,
                                   fixed={"scale_pool4": 0.01, "scale_pool3": 0.0001}),
}


@dataclass
class ConvertedModel:
    """A converted ``.caffemodel``: the fcnseg model (or, for the ImageNet VGG16, only a state
    dict in torchvision's layout), its input convention and classes."""

    source: Path
    reference: ReferenceModel
    convention: InputConvention
    state_dict: dict[str, torch.Tensor]
    model: nn.Module | None = None
    class_names: list[str] = field(default_factory=list)
    palette: list[list[int]] = field(default_factory=list)

    @property
    def is_backbone(self) -> bool:
        return self.model is None

    def save(self, out: PathLike) -> Path:
        """Write a self-describing checkpoint (``.pt``/``.pth``, or ``.safetensors`` with the
        description in its metadata); for the ImageNet VGG16, its state dict."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if self.model is None:
            return save_backbone_weights(self.state_dict, out, self.convention)
        described = {"class_names": self.class_names, "palette": self.palette,
                     # The published scores, prefixed: they were not measured here.
                     "metrics": {f"published_{k}": v for k, v in self.reference.published.items()}}
        if out.suffix == ".safetensors":
            return save_safetensors_checkpoint(out, self.model, **described, source={
                "caffemodel": self.source.name, "reference": self.reference.name})
        return save_checkpoint(
            out, self.model, **described, head_classes=dict(self.reference.heads) or None,
            recipe={"converted_from": self.source.name, "reference": self.reference.name})


def _fits_structure(ref: ReferenceModel, present: set[str]) -> bool:
    allowed = set(ref.layers) | set(ref.dropped) | set(ref.fixed)
    return set(ref.layers) <= present <= allowed


def _output_channels(layers: dict[str, CaffeLayer], ref: ReferenceModel) -> int | None:
    score = next((n for n in ref.layers if n.startswith("score_fr")), None)
    if score is None or score not in layers:
        return None
    return _strip_ones(layers[score].blobs[0])[0]


def recognise(net: CaffeNet) -> ReferenceModel:
    """The reference model (or generic fcnseg arch) a ``.caffemodel`` holds, from its layer
    names and shapes; ties are broken by the file name, else by the fixed layers present."""
    layers = net.with_blobs()
    present = set(layers)
    refs = [r for r in REFERENCE_MODELS.values() if _fits_structure(r, present)]
    matching = [r for r in refs
                if r.num_classes is None or r.num_classes == _output_channels(layers, r)]
    if len(matching) > 1:
        stem = net.path.name.removesuffix(".caffemodel")
        named = [r for r in matching if r.name == stem]
        # Else the at-once FCN-8s carries its Scale layers; a file without them is the plain net.
        with_fixed = [r for r in matching if r.fixed and set(r.fixed) <= present]
        by_layers = with_fixed or [r for r in matching if not r.fixed]
        matching = named or by_layers or matching
    generic = [g for g in GENERIC_ARCHS.values() if _fits_structure(g, present)]
    if len(matching) == 1 or (not matching and len(generic) == 1):
        return (matching or generic)[0]
    candidates = matching or generic or refs
    if candidates:
        raise CaffeModelError(
            f"{net.path}: cannot tell which model this is; it fits "
            f"{', '.join(c.name for c in candidates)}. Pass --arch with one of them.")
    raise CaffeModelError(
        f"{net.path}: its layers with weights ({', '.join(sorted(present)) or 'none'}) match no "
        f"known model. Known reference models: {', '.join(sorted(REFERENCE_MODELS))}; "
        f"generic: {', '.join(GENERIC_ARCHS)} (pass --arch)")


def describe_caffemodel(path: PathLike) -> dict[str, Any]:
    """What a ``.caffemodel`` holds, read without its weights: ``layer_format``,
    ``layers_with_weights`` and, when :func:`recognise` tells the model, ``reference`` (or
    None), ``arch``, ``dataset``, ``num_classes``, ``class_names``, ``published``; else
    ``problem``, the line ``fcnseg convert`` would say. CaffeModelError for a damaged file."""
    net = _read(path, weights=False)
    record: dict[str, Any] = {"layer_format": net.layer_format,
                              "layers_with_weights": len(net.with_blobs())}
    try:
        _check_blob_shapes(net)
        ref = recognise(net)
    except CaffeModelError as e:
        return {**record, "problem": str(e).removeprefix(f"{net.path}: ")}
    known = REFERENCE_MODELS.get(ref.name) is ref
    count = None if ref.arch == "vgg16" else (ref.num_classes
                                              or _output_channels(net.with_blobs(), ref))
    return {**record, "reference": ref.name if known else None, "arch": ref.arch,
            "dataset": ref.dataset, "num_classes": count,
            "class_names": list(ref.classes) if ref.classes else None,
            "published": dict(ref.published)}


def _resolve_arch(arch: str) -> ReferenceModel:
    key = arch.removesuffix(".caffemodel")
    if key in REFERENCE_MODELS:
        return REFERENCE_MODELS[key]
    generic = key.replace("-", "_").lower()
    if generic in GENERIC_ARCHS:
        return GENERIC_ARCHS[generic]
    raise CaffeModelError(
        f"unknown --arch {arch!r}; reference models: {', '.join(sorted(REFERENCE_MODELS))}; "
        f"generic: {', '.join(GENERIC_ARCHS)}"
    )


def _check_blob_shapes(net: CaffeNet) -> None:
    """Every blob of a layer with weights has at least one axis and values."""
    for name, lay in net.with_blobs().items():
        for i, blob in enumerate(lay.blobs):
            if not blob.shape or 0 in blob.shape:
                problem = "no axes" if not blob.shape else "no values"
                raise CaffeModelError(f"{net.path}: layer {name!r} blob {i} has shape "
                                      f"{blob.shape} ({problem}); a weight needs a size on "
                                      f"every axis")


def _finite(net: CaffeNet, name: str, index: int, data: np.ndarray) -> np.ndarray:
    """``data`` (blob ``index`` of layer ``name``), refused if it holds NaN or infinity."""
    flat = data.reshape(-1)
    step = 1 << 22  # a few MB of flags at a time, not a copy of a 400 MB blob's size
    for start in range(0, flat.size, step):
        if not np.isfinite(flat[start:start + step]).all():
            raise CaffeModelError(f"{net.path}: layer {name!r} blob {index} holds NaN or "
                                  f"infinite values; the file is damaged or was saved from a "
                                  f"diverged training run")
    return data


def _strip_ones(blob: CaffeBlob) -> tuple[int, ...]:
    """A legacy (always 4-D) shape without its leading 1s: (1, 1, 1, 64) → (64,)."""
    shape = blob.shape
    if blob.legacy_shape:
        while len(shape) > 1 and shape[0] == 1:
            shape = shape[1:]
    return shape


def _fit(blob: CaffeBlob, target: tuple[int, ...], layer_type: str) -> np.ndarray | None:
    """The blob's data in the model's shape, or None when it does not fit."""
    data = blob.data
    if data.shape == target:
        return data
    shape = _strip_ones(blob)
    if shape == target:
        return data.reshape(target)
    if (layer_type == "InnerProduct" and len(shape) == 2 and len(target) == 4
            and shape[0] == target[0] and shape[1] == math.prod(target[1:])):
        return data.reshape(target)  # Linear (out, in·kh·kw) → convolution (out, in, kh, kw)
    if (layer_type == "Deconvolution" and len(shape) == 4 and len(target) == 4
            and shape[1] == 1 and target[0] == target[1] == shape[0] and shape[2:] == target[2:]):
        # A per-channel deconvolution (group = channels, weight (C, 1, k, k)) is the full one
        # with a channel-diagonal kernel, which is what fcnseg's upsampling layers hold.
        full = np.zeros(target, dtype=data.dtype)
        idx = np.arange(target[0])
        full[idx, idx] = data.reshape(shape)[:, 0]
        return full
    return None


def _check_layers(net: CaffeNet, ref: ReferenceModel, target: str) -> dict[str, CaffeLayer]:
    layers = net.with_blobs()
    missing = [n for n in ref.layers if n not in layers]
    if missing:
        raise CaffeModelError(
            f"{net.path}: layer {missing[0]!r} is missing (the {ref.name} net has it"
            + (f"; also missing: {', '.join(missing[1:])}" if missing[1:] else "") + ")"
        )
    extra = [n for n in layers
             if n not in ref.layers and n not in ref.dropped and n not in ref.fixed]
    if extra:
        lay = layers[extra[0]]
        raise CaffeModelError(
            f"{net.path}: layer {lay.name!r} ({lay.type}, blobs "
            f"{', '.join(str(b.shape) for b in lay.blobs)}) has no place in {target}"
        )
    for name, value in ref.fixed.items():
        if name in layers:
            for blob in layers[name].blobs:
                if not np.all(blob.data == np.float32(value)):
                    raise CaffeModelError(
                        f"{net.path}: layer {name!r} holds values other than the constant "
                        f"{value} that {target} has built in"
                    )
    return layers


def _vgg16_state_dict(net: CaffeNet, ref: ReferenceModel) -> dict[str, torch.Tensor]:
    layers = _check_layers(net, ref, "the ImageNet VGG16 backbone")
    torchvision_keys = vgg16_torchvision_keys()
    sd: dict[str, torch.Tensor] = {}
    for name in ref.layers:
        lay = layers[name]
        if len(lay.blobs) != 2:
            raise CaffeModelError(f"{net.path}: layer {name!r} has {len(lay.blobs)} blobs; "
                                  f"a VGG16 layer has 2 (weight, bias)")
        weight, bias = lay.blobs
        w_shape = _strip_ones(weight)
        if name in ("fc6", "fc7"):
            w_shape = (w_shape[0], math.prod(w_shape[1:]))  # torchvision's Linear layout
        elif len(w_shape) != 4:
            raise CaffeModelError(f"{net.path}: layer {name!r} weight has shape {weight.shape}; "
                                  f"a convolution needs 4 dimensions")
        b_shape = _strip_ones(bias)
        if b_shape != (w_shape[0],):
            raise CaffeModelError(f"{net.path}: layer {name!r} bias has shape {bias.shape}; "
                                  f"expected ({w_shape[0]},) for its {w_shape[0]} outputs")
        sd[torchvision_keys[f"{name}.weight"]] = torch.from_numpy(
            _finite(net, name, 0, weight.data).reshape(w_shape))
        sd[torchvision_keys[f"{name}.bias"]] = torch.from_numpy(
            _finite(net, name, 1, bias.data).reshape(b_shape))
    expected_in = sd["classifier.0.weight"].shape[1]
    pool5 = sd["features.28.weight"].shape[0] * 49
    if expected_in != pool5:
        raise CaffeModelError(f"{net.path}: layer 'fc6' takes {expected_in} inputs; conv5_3's "
                              f"7×7×{pool5 // 49} pool5 gives {pool5}")
    return sd


def _build_kwargs(net: CaffeNet, ref: ReferenceModel, layers: dict[str, CaffeLayer]
                  ) -> dict[str, Any]:
    # The first stream's first convolution and fc6 give the trunk's size.
    alexnet = ref.arch == "fcn_alexnet"
    first, full = ("conv1", 96) if alexnet else ("conv1_1", 64)
    caffe_name = {ref.rename.get(n, n): n for n in ref.layers}
    trunk = {base: layers[next(caffe_name[m] for m in caffe_name if m.startswith(base))]
             for base in (first, "fc6")}
    conv1 = _strip_ones(trunk[first].blobs[0])[0]
    fc = _strip_ones(trunk["fc6"].blobs[0])[0]
    classes = _output_channels(layers, ref)
    if ref.num_classes is not None and classes != ref.num_classes:
        raise CaffeModelError(f"{net.path}: layer 'score_fr' has {classes} outputs; "
                              f"{ref.name} has {ref.num_classes} classes")
    kwargs: dict[str, Any] = {"num_classes": classes}
    if not alexnet:
        kwargs["geometry"] = "caffe"
    if conv1 != full:  # a slimmer trunk (the tests' small nets): width relative to the full net
        kwargs["width"] = conv1 / full
    if fc != 4096:
        kwargs["fc_channels"] = fc
    return kwargs


def _fcn(net: CaffeNet, ref: ReferenceModel) -> nn.Module:
    layers = _check_layers(net, ref, f"fcnseg's {ref.arch}")
    kwargs = _build_kwargs(net, ref, layers)
    with torch.device("meta"):  # no memory for parameters that are about to be replaced
        model = build_model(ref.arch, **kwargs)
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    sd: dict[str, torch.Tensor] = {}
    for name in ref.layers:
        module = ref.rename.get(name, name)
        lay = layers[name]
        keys = [k for k in (f"{module}.weight", f"{module}.bias") if k in own]
        if len(lay.blobs) != len(keys):
            raise CaffeModelError(
                f"{net.path}: layer {name!r} has {len(lay.blobs)} blobs; {ref.arch}'s {module} "
                f"takes {len(keys)} ({', '.join(keys) or 'none'})"
            )
        for i, (key, blob) in enumerate(zip(keys, lay.blobs, strict=True)):
            data = _fit(blob, own[key], lay.type)
            if data is None:
                raise CaffeModelError(
                    f"{net.path}: layer {name!r} blob {i} has shape {blob.shape}; {ref.arch} "
                    f"({', '.join(f'{k}={v}' for k, v in kwargs.items())}) needs {own[key]} "
                    f"for {key}"
                )
            sd[key] = torch.from_numpy(_finite(net, name, i, data))
    unfilled = sorted(set(own) - set(sd))
    if unfilled:
        raise CaffeModelError(f"{net.path}: no Caffe layer fills {', '.join(unfilled)} of "
                              f"{ref.arch}")
    model.load_state_dict(sd, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        model = build_model(ref.arch, **kwargs)  # a model with state outside its state dict
        model.load_state_dict(sd)
    model.input_convention = ref.convention
    return model.eval()


def convert_caffemodel(path: PathLike | CaffeNet, arch: str | None = None) -> ConvertedModel:
    """Read a ``.caffemodel`` and convert it: FCNs into fcnseg models (width and class count
    from the blobs), the ImageNet VGG16 into a state dict in torchvision's layout.

    ``arch`` is a reference model name (``fcn8s-heavy-pascal``) or a generic fcnseg arch
    (``fcn8s``, ``vgg16``, ...); by default recognised from the layers. Errors name the file
    and the layer.
    """
    net = path if isinstance(path, CaffeNet) else _read(path)
    _check_blob_shapes(net)
    ref = _resolve_arch(arch) if arch else recognise(net)
    if ref.arch == "vgg16":
        return ConvertedModel(net.path, ref, ref.convention, _vgg16_state_dict(net, ref))
    model = _fcn(net, ref)
    if ref.classes is None:  # VOC's palette for a model of no known classes
        names, palette = [f"class_{i}" for i in range(model.num_classes)], voc_palette()
    else:
        names, palette = list(ref.classes), dataset_palette(ref.classes)
    return ConvertedModel(net.path, ref, ref.convention, dict(model.state_dict()), model,
                          class_names=names, palette=palette.tolist())
