"""Loading weights: ImageNet VGG16 backbones, published FCN models, staged initialisation.

Nothing here executes code from a file: ``torch.load(weights_only=True)`` or safetensors only.
Every error names the file and, for mismatches, the offending keys and shapes.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fcnseg.conventions import CAFFE_BGR, TORCHVISION_RGB, InputConvention, get_convention
from fcnseg.models.vgg import VGG16_BLOCKS
from fcnseg.utils.files import atomic_write
from fcnseg.utils.safe_load import safe_load
from fcnseg.utils.typing import PathLike
from fcnseg.utils.validate import expect_mapping, fields_of
from fcnseg.weightfiles.published import PRETRAINED
from fcnseg.weightfiles.resolve import read_safetensors, write_safetensors

StateDict = dict[str, torch.Tensor]
log = logging.getLogger(__name__)


class WeightsError(ValueError):
    """A weights file cannot be read, or its keys or shapes do not fit the model."""


def _unwrap(obj: Any, path: Path) -> StateDict:
    what = "a state dict (a mapping of names to tensors)"
    obj = expect_mapping(obj, str(path), what, error=WeightsError)
    # A checkpoint or training state holds the state dict under one of these keys.
    key = next((k for k in ("model_state_dict", "state_dict", "model") if k in obj), None)
    obj = obj if key is None else expect_mapping(obj[key], f"{path}: {key}", what,
                                                 error=WeightsError)
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: not {what}")
    # Checkpoints saved from DataParallel / DDP wrappers prefix every key with "module.".
    if obj and all(k.startswith("module.") for k in obj):
        return {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def read_state_dict(path: PathLike) -> StateDict:
    """Read a state dict from a ``.safetensors`` or ``torch.save`` file, safely: a bare one or
    a checkpoint holding one under ``model_state_dict``, ``state_dict`` or ``model``."""
    return read_weights(path)[0]


#: Where weights fcnseg wrote record their input convention: an attribute of the saved
#: OrderedDict (``torch.save`` keeps it), or a ``.safetensors`` metadata key.
CONVENTION_FIELD = "input_convention"


def read_weights(path: PathLike) -> tuple[StateDict, str | None]:
    """:func:`read_state_dict` and the name of the input convention the file records, or None."""
    path = Path(path)
    obj, recorded = _read_file(path)
    return _unwrap(obj, path), recorded


def _read_file(path: Path) -> tuple[Any, str | None]:
    """What a weights file holds, as read, and the input convention it records (or None)."""
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")

    def damaged(e: Exception) -> str:
        first = (str(e).strip().splitlines() or [""])[0][:300]
        return (f"{path}: cannot be read as weights ({type(e).__name__}: {first}). The file may "
                f"be truncated or corrupt, or hold Python objects that are not loaded for safety.")

    if path.suffix == ".safetensors":
        obj, metadata = safe_load(path, WeightsError, "a weights file", damaged,
                                  read=read_safetensors)
        recorded = metadata.get(CONVENTION_FIELD)
    else:
        obj = safe_load(path, WeightsError, "a weights file", damaged)
        recorded = getattr(obj, CONVENTION_FIELD, None)
    return obj, recorded if isinstance(recorded, str) else None


def save_backbone_weights(state_dict: Mapping[str, torch.Tensor], out: PathLike,
                          convention: InputConvention) -> Path:
    """Write backbone weights (torchvision's layout) recording their input convention, so that
    :func:`load_backbone_weights` needs no ``convention=``: in ``.safetensors`` metadata, or on
    a ``torch.save`` state dict that still loads anywhere as one."""
    out = Path(out)
    if out.suffix == ".safetensors":
        return write_safetensors(out, state_dict, metadata={CONVENTION_FIELD: convention.name})
    sd: OrderedDict[str, torch.Tensor] = OrderedDict(state_dict)
    setattr(sd, CONVENTION_FIELD, convention.name)
    with atomic_write(out) as f:
        torch.save(sd, f)
    return out


def load_exactly(path: Path, model: nn.Module, sd: Mapping[str, torch.Tensor],
                 expected: str = "", recorded: Mapping[str, Any] | None = None) -> None:
    """``model.load_state_dict(sd)``, or a :class:`WeightsError` of :func:`describe_mismatch`
    followed by ``expected``."""
    problem = describe_mismatch(path, model, sd, recorded)
    if problem:
        raise WeightsError(problem + expected)
    model.load_state_dict(sd)


def describe_mismatch(path: Path, model: nn.Module, sd: Mapping[str, torch.Tensor],
                      recorded: Mapping[str, Any] | None = None) -> str | None:
    """One line naming the model, the one the file records (``recorded``: a checkpoint's
    ``model`` section), and the first few missing, unexpected and mis-shaped keys; or None if
    ``sd`` fits."""
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and sd[k].shape != own[k].shape]
    parts = [f"{what} {_listing(keys, 3)}" for what, keys in (
        ("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes))
        if keys]
    if not parts:
        return None
    described = recorded_description(recorded, classes=True)
    records = f"; the file records {described}" if described else ""
    return (f"{path}: weights do not fit the model, {model_description(model, classes=True)}"
            f"{records}: " + "; ".join(parts))


def _listing(items: list[str], limit: int = 12) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "[" + ", ".join(items[:limit]) + "]" + more


def _recorded(obj: Any) -> Mapping[str, Any] | None:
    """The ``model`` section of a checkpoint as read (what it was built as), or None."""
    model = fields_of(fields_of(obj).get("model"))
    return model if model and "model_state_dict" in fields_of(obj) else None


def load_fcn_weights(model: nn.Module, path: PathLike | Mapping[str, Any], *,
                     convention: InputConvention | str | None = None) -> nn.Module:
    """Load a whole-model state dict (ours, or the PyTorch FCN port's: its file, or the state
    dict or checkpoint as loaded) into ``model``, strictly, and set ``convention`` when given
    (the port's models are Caffe BGR). Weights that do not fit are one line naming the model
    the file records, where it records one."""
    file = isinstance(path, str | os.PathLike)
    obj, path = (_read_file(Path(path))[0], Path(path)) if file else (path, Path("<state dict>"))
    recorded = _recorded(obj)
    call = (f"build_model_from_checkpoint({str(path)!r})" if file else
            "build_model_from_checkpoint(checkpoint), given the checkpoint as loaded")
    remedy = (f"; build the model the file records with fcnseg.checkpoint.{call}"
              if recorded_description(recorded) else "")
    load_exactly(path, model, _unwrap(obj, path), remedy, recorded)
    if convention is not None:
        model.input_convention = get_convention(convention)
    return model


_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def vgg16_torchvision_keys(batch_norm: bool = False) -> dict[str, str]:
    """The VGG16 FCN's trunk keys (``conv1_1.weight`` … ``fc7.bias``, ``bn1_1.*`` … with
    ``batch_norm``) → torchvision's ``vgg16`` (``vgg16_bn``) keys (``features.0.weight`` …)."""
    keys: dict[str, str] = {}
    index = 0  # torchvision's features: convolution, (BatchNorm,) ReLU; a pool after each block
    for b, (n_convs, _) in enumerate(VGG16_BLOCKS, start=1):
        for i in range(1, n_convs + 1):
            keys |= {f"conv{b}_{i}.{p}": f"features.{index}.{p}" for p in ("weight", "bias")}
            if batch_norm:
                keys |= {f"bn{b}_{i}.{k}": f"features.{index + 1}.{k}" for k in _BN_KEYS}
            index += 3 if batch_norm else 2
        index += 1
    fc = {"fc6": "classifier.0", "fc7": "classifier.3"}
    return keys | {f"{ours}.{p}": f"{theirs}.{p}" for ours, theirs in fc.items()
                   for p in ("weight", "bias")}


def _guess_convention(path: Path) -> InputConvention | None:
    name = path.name.lower()
    for published in PRETRAINED.values():
        names = [s.filename.lower() for s in published.sources] + [published.converted.lower()]
        if published.kind == "backbone" and name in names:
            return published.convention
    if "caffe" in name:
        return CAFFE_BGR
    if re.fullmatch(r"vgg16-[0-9a-f]{8}\.pth", name):
        return TORCHVISION_RGB
    return None


class ConventionUnknown(WeightsError):
    """Weights whose input convention cannot be told: the message says how to give it, by the
    caller's ``argument`` (``convention=``, ``backbone_convention=``, a recipe's field)."""

    def __init__(self, path: Path, what: str, argument: str = "convention") -> None:
        self.path, self.what, self.argument = path, what, argument
        caffe, torchvision = ("(BGR, 0-255, mean subtracted)",
                              "(RGB, [0, 1], ImageNet mean/std)")
        if "." in argument:  # a recipe's field
            advice = (f"set {argument}: caffe_bgr {caffe} or torchvision_rgb {torchvision} "
                      f"in the recipe")
        else:
            advice = f"pass {argument}='caffe_bgr' {caffe} or 'torchvision_rgb' {torchvision}"
        super().__init__(f"{path}: cannot tell which input convention these {what} weights "
                         f"expect; {advice}")

    def naming(self, argument: str) -> ConventionUnknown:
        """The same error, its advice naming ``argument`` instead."""
        return ConventionUnknown(self.path, self.what, argument)


def load_backbone_weights(model: nn.Module, path: PathLike, *,
                          convention: InputConvention | str | None = None) -> nn.Module:
    """Copy ImageNet VGG16 weights (torchvision's layout) into an FCN: the convolutionalization.

    ``features.*`` go to conv1_1 … conv5_3, the Linear ``classifier.0`` / ``classifier.3``
    become fc6 (7×7) / fc7 (1×1), ``classifier.6`` is dropped. ``model.input_convention``
    becomes ``convention``, else the one the file records, else the one its published name
    says; a multi-band model keeps its own and gets conv1_1 widened (:func:`band_conv1`).
    """
    path = Path(path)
    sd, recorded = read_weights(path)
    given = convention or recorded
    conv = get_convention(given) if given else _guess_convention(path)
    if conv is None:
        raise ConventionUnknown(path, "VGG16")
    return copy_imagenet_trunk(model, path, sd, vgg16_torchvision_keys(), "VGG16", conv)


def load_vgg16_bn_weights(model: nn.Module, path: PathLike, *,
                          convention: InputConvention | str = TORCHVISION_RGB) -> nn.Module:
    """Copy torchvision ``vgg16_bn`` ImageNet weights into an FCN built with ``batch_norm=True``,
    as :func:`load_backbone_weights` does, each BatchNorm to ``bn{b}_{i}``."""
    path = Path(path)
    if not getattr(model, "batch_norm", False):
        raise WeightsError(f"{path}: vgg16_bn weights need a model built with batch_norm=True")
    return copy_imagenet_trunk(model, path, read_state_dict(path),
                               vgg16_torchvision_keys(batch_norm=True), "vgg16_bn", convention)


def copy_imagenet_trunk(model: nn.Module, path: Path, sd: dict[str, torch.Tensor],
                        mapping: Mapping[str, str], what: str, convention: InputConvention | str,
                        *, record: bool = True) -> nn.Module:
    """:func:`copy_convolutionalized` for a colour file trained on ``convention``: a colour model
    records it (when ``record``); a multi-band model gets the first convolution widened."""
    bands = model_bands(model)
    if bands is not None:
        first_conv = [None if k is None else mapping.get(k) for k in first_conv_keys(model)]
        widen_first_conv(sd, bands, convention, *first_conv)
    copy_convolutionalized(model, path, sd, mapping, what)
    if bands is None and record:
        model.input_convention = get_convention(convention)
    return model


def copy_convolutionalized(model: nn.Module, path: Path, sd: Mapping[str, torch.Tensor],
                           mapping: Mapping[str, str], what: str) -> None:
    """Copy ``sd[mapping[k]]`` into the model's ``k`` for every key of ``mapping``, the Linear
    fc6/fc7 weights reshaped; errors name the file and the missing or mis-shaped keys."""
    own = model.state_dict()
    # Files saved before PyTorch 0.4.1 lack BatchNorm's num_batches_tracked, only a counter.
    missing = sorted(v for v in mapping.values()
                     if v not in sd and not v.endswith("num_batches_tracked"))
    if missing:
        raise WeightsError(f"{path}: not a {what} state dict in torchvision's layout; missing "
                           f"keys {_listing(missing)}")
    new: StateDict = {}
    bad: list[str] = []
    for dst, src in mapping.items():
        if src not in sd:
            continue
        t = sd[src]
        fc = dst.endswith(("fc6.weight", "fc7.weight"))
        if fc and dst in own and t.numel() == own[dst].numel():
            t = t.reshape(own[dst].shape)  # Linear (out, in·k·k) → convolution (out, in, k, k)
        if dst not in own:
            bad.append(f"{src}: model has no {dst}")
        elif t.shape != own[dst].shape:
            bad.append(f"{src} {tuple(sd[src].shape)} vs {dst} {tuple(own[dst].shape)}")
        else:
            new[dst] = t
    if bad:
        raise WeightsError(f"{path}: {what} weights do not fit the model: {_listing(bad)}")
    model.load_state_dict(new, strict=False)


#: Band names that take an ImageNet colour filter of their own.
COLOUR_BANDS = ("red", "green", "blue")


def widen_conv1(weight: torch.Tensor, bands: Sequence[str], *, weight_order: str = "RGB",
                keep_variance: bool = True) -> torch.Tensor:
    """A first-convolution weight for input ``bands`` (``("red", "green", "blue", "nir")``)
    from an (out, 3, k, k) colour one in ``weight_order`` ("RGB" or "BGR").

    Red, green and blue keep their filter; every other band starts from the mean of each filter
    over its colour channels. ``keep_variance`` then scales each output filter to its former
    sum of squared weights; False is the reference's early-fusion rule, unscaled.
    """
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected a conv1_1 weight of shape (out, 3, k, k), got "
                         f"{tuple(weight.shape)}")
    if weight_order not in ("RGB", "BGR"):
        raise ValueError(f"weight_order must be 'RGB' or 'BGR', got {weight_order!r}")
    order = COLOUR_BANDS if weight_order == "RGB" else COLOUR_BANDS[::-1]
    mean = weight.mean(dim=1)
    filters = [weight[:, order.index(b.lower())] if b.lower() in COLOUR_BANDS else mean
               for b in bands]
    if not filters:
        raise ValueError("no input bands given")
    wide = torch.stack(filters, dim=1)
    if not keep_variance:
        return wide
    before = weight.pow(2).sum(dim=(1, 2, 3))
    after = wide.pow(2).sum(dim=(1, 2, 3))
    scale = torch.where(after > 0, (before / after.clamp_min(1e-30)).sqrt(),
                        torch.ones_like(after))
    return wide * scale.view(-1, 1, 1, 1)


#: ImageNet's mean and standard deviation of RGB pixels in [0, 1] (torchvision's constants).
IMAGENET_RGB_MEAN = (0.485, 0.456, 0.406)
IMAGENET_RGB_STD = (0.229, 0.224, 0.225)


def band_conv1(weight: torch.Tensor, bands: Sequence[str],
               convention: InputConvention | str) -> tuple[torch.Tensor, torch.Tensor]:
    """A first convolution for standardised ``bands`` from a colour one trained in
    ``convention``, and the offset to add to its bias (or subtract from the next BatchNorm's
    running mean).

    Each colour filter is scaled by the spread of ImageNet pixels in the convention's units
    (about 58 for Caffe's, 1 for torchvision's), then :func:`widen_conv1` gives the bands their
    filters. The offset, per output channel, is the colour layer's response to ImageNet's mean
    pixel, which the dataset's mean pixel (0 in the band convention) then gives too.
    """
    conv = get_convention(convention)
    if conv.bands is not None:
        raise ValueError(f"expected the convention of colour weights, got one of bands "
                         f"{list(conv.bands)}")
    # Channel i of the weight holds colour rgb[i] of ImageNet's constants.
    rgb = (0, 1, 2) if conv.channel_order == "RGB" else (2, 1, 0)
    spread = [IMAGENET_RGB_STD[c] * 255 * conv.scale / s
              for c, s in zip(rgb, conv.std, strict=True)]
    centre = [(IMAGENET_RGB_MEAN[c] * 255 * conv.scale - m) / s
              for c, m, s in zip(rgb, conv.mean, conv.std, strict=True)]
    shape = (1, 3, 1, 1)
    offset = (weight * weight.new_tensor(centre).view(shape)).sum(dim=(1, 2, 3))
    scaled = weight * weight.new_tensor(spread).view(shape)
    return widen_conv1(scaled, bands, weight_order=conv.channel_order), offset


def model_bands(model: nn.Module) -> tuple[str, ...] | None:
    """The input bands of a multi-band model (its input convention's), or None for colour."""
    convention = getattr(model, "input_convention", None)
    return None if convention is None else convention.bands


def widen_first_conv(sd: dict[str, torch.Tensor], bands: Sequence[str],
                     convention: InputConvention | str, weight_key: str,
                     bias_key: str | None = None, bn_mean_key: str | None = None) -> list[str]:
    """Replace ``sd[weight_key]`` by :func:`band_conv1`'s for ``bands``, its offset into
    ``sd[bias_key]`` or else out of ``sd[bn_mean_key]``; returns the keys set (none without a
    colour ``weight_key``: the copy then names a missing key)."""
    weight = sd.get(weight_key)
    if weight is None or weight.dim() != 4 or weight.shape[1] != 3:
        return []
    sd[weight_key], offset = band_conv1(weight, bands, convention)
    if bias_key is not None and bias_key in sd:
        sd[bias_key] = sd[bias_key] + offset
        return [weight_key, bias_key]
    if bn_mean_key is not None and bn_mean_key in sd:
        sd[bn_mean_key] = sd[bn_mean_key] - offset
        return [weight_key, bn_mean_key]
    return [weight_key]


@dataclass
class InitReport:
    """What :func:`init_from` copied and what it left alone, with the reason for each key."""

    source: str
    copied: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # model key → why it was left alone
    unused: list[str] = field(default_factory=list)  # source keys the model has no place for
    #: model keys from a colour source's first convolution widened to the model's bands
    widened: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[str]:
        return iter(self.copied)

    def __len__(self) -> int:
        return len(self.copied)

    def summary(self) -> str:
        """One line: counts, then every key left alone and why."""
        parts = [f"init from {self.source}: copied {len(self.copied)} tensors"]
        if self.widened:
            parts.append("widened the colour first convolution to the bands: "
                         + _listing(self.widened))
        if self.kept:
            parts.append(f"kept the model's own initialisation for {len(self.kept)}: "
                         + _listing([f"{k} ({why})" for k, why in self.kept.items()], 40))
        if self.unused:
            parts.append(f"ignored {len(self.unused)} source tensors the model lacks: "
                         + _listing(self.unused, 40))
        return "; ".join(parts)


_HEAD_PREFIXES = ("score", "upscore", "classifier", "aux_classifier")


def _is_trunk_key(key: str) -> bool:
    return not key.split(".", 1)[0].startswith(_HEAD_PREFIXES)


NONFINITE = ("holds NaN or infinite values (saved from a run that diverged?); training from it "
             "would give a NaN loss at once")


def first_nonfinite(sd: Mapping[str, torch.Tensor], keys: Iterable[str]) -> str | None:
    """The first of ``keys`` whose floating-point tensor in ``sd`` holds NaN or infinity."""
    return next((k for k in keys
                 if sd[k].is_floating_point() and not bool(torch.isfinite(sd[k]).all())), None)


def first_conv_keys(model: nn.Module) -> tuple[str, str | None, str | None]:
    """The state-dict keys of ``model``'s first convolution (the first Conv2d taking its input
    channels): weight, bias and the running mean of a BatchNorm right after it (or None)."""
    channels = model.input_convention.channels  # type: ignore[union-attr]
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.BatchNorm2d)]
    first = next((i for i, m in enumerate(layers)
                  if isinstance(m, nn.Conv2d) and m.in_channels == channels), None)
    if first is None:
        raise WeightsError(f"{type(model).__name__} has no convolution of {channels} input "
                           f"channels")
    conv, after = layers[first], layers[first + 1 : first + 2]
    bn_mean = after[0].running_mean if after and isinstance(after[0], nn.BatchNorm2d) else None
    # State-dict keys may be the reference's names, not module paths: found by the tensor.
    key_of = {id(t): k for k, t in model.state_dict(keep_vars=True).items()}
    return (key_of[id(conv.weight)],
            None if conv.bias is None else key_of.get(id(conv.bias)),
            None if bn_mean is None else key_of.get(id(bn_mean)))


def _widen_colour_source(model: nn.Module, sd: Mapping[str, torch.Tensor],
                         convention: InputConvention | str | Mapping[str, Any] | None,
                         what: str) -> tuple[Mapping[str, torch.Tensor], list[str]]:
    """``sd`` with a colour first convolution widened to ``model``'s bands, and the keys set."""
    bands = model_bands(model)
    source = None if convention is None else get_convention(convention)  # type: ignore[arg-type]
    if source is not None and source.bands is not None:
        takes = f"init: {what} takes bands {', '.join(source.bands)}, the model"
        if bands is None:
            raise WeightsError(f"{takes} colour images: initialise from colour weights")
        if [b.lower() for b in source.bands] != [b.lower() for b in bands]:
            raise WeightsError(f"{takes} {', '.join(bands)}: initialise from colour weights or "
                               f"a model of the same bands")
    if source is None or source.bands is not None or bands is None:
        return sd, []
    out = dict(sd)
    return out, widen_first_conv(out, bands, source, *first_conv_keys(model))


def state_dict_of(source: nn.Module | Mapping[str, torch.Tensor] | PathLike, *,
                  read: Callable[[Any], StateDict] = read_state_dict,
                  ) -> tuple[Mapping[str, torch.Tensor], str]:
    """The weights of a model, a state dict or a file (read by ``read``), and which it was:
    ``"module"``, ``"state dict"`` or ``"file"``."""
    if isinstance(source, nn.Module):
        return source.state_dict(), "module"
    if isinstance(source, Mapping):
        return source, "state dict"
    return read(source), "file"


def _matched(model: nn.Module, sd: Mapping[str, torch.Tensor],
             report: InitReport, recorded: Mapping[str, Any] | None = None) -> InitReport:
    """``report`` filled in; refused when less than half of the trunk matched (naming the
    model the source records, ``recorded``, where it records one)."""
    own = model.state_dict()
    for key, tensor in own.items():
        if key not in sd:
            report.kept[key] = "not in the source"
        elif sd[key].shape != tensor.shape:
            report.kept[key] = (f"shape {tuple(sd[key].shape)} in the source vs "
                                f"{tuple(tensor.shape)} in the model")
        else:
            report.copied.append(key)
    report.unused = sorted(k for k in sd if k not in own)
    trunk = [k for k in own if _is_trunk_key(k)]
    trunk_copied = [k for k in report.copied if _is_trunk_key(k)]
    # A few coincidental matches (fc7 of equal width on a narrower trunk) are no initialisation.
    if not trunk_copied or 2 * len(trunk_copied) < len(trunk):
        source = recorded_description(recorded)
        differ = ", " if source else " (in width, bands or architecture), "
        raise WeightsError(
            f"init: {report.source}{f', {source},' if source else ''} cannot initialise the "
            f"model, {model_description(model)}: their trunks differ{differ}only "
            f"{len(trunk_copied)} of the model's {len(trunk)} trunk tensors match by name and "
            f"shape (source vs model: {_trunk_differences(own, sd)}). "
            f"Initialise from a checkpoint of the same backbone, width and bands"
            f"{_as_the_source(model, recorded)}.")
    return report


def _trunk_differences(own: Mapping[str, torch.Tensor], sd: Mapping[str, torch.Tensor],
                       limit: int = 3) -> str:
    """``conv1_1.weight (8, 3, 3, 3) vs (4, 3, 3, 3), conv1_2.bias missing, +27 more``: the
    first trunk tensors of the model that the source lacks or holds in another shape."""
    differ = [f"{k} {tuple(sd[k].shape)} vs {tuple(t.shape)}" if k in sd else f"{k} missing"
              for k, t in own.items()
              if _is_trunk_key(k) and (k not in sd or sd[k].shape != t.shape)]
    more = [f"+{len(differ) - limit} more"] if len(differ) > limit else []
    return ", ".join(differ[:limit] + more)


def _as_the_source(model: nn.Module, recorded: Mapping[str, Any] | None) -> str:
    """``, or set model.width: 1.0 ... in the recipe (the source's)``: the recipe's size fields
    in which the build the source records differs from the model's ('' if none)."""
    theirs = fields_of(fields_of(recorded).get("build_kwargs"))
    ours = fields_of(getattr(model, "build_kwargs", None))
    if not theirs or not ours:
        return ""
    fields = {"width": "model.width", "fc_channels": "model.fc_channels",
              "base_channels": "model.options.base_channels"}
    differ = [f"{field}: {theirs[k]}" for k, field in fields.items()
              if k in theirs and theirs[k] != ours.get(k)]
    return f", or set {', '.join(differ)} in the recipe (the source's)" if differ else ""


#: The build arguments that shape a model's trunk, as descriptions name them.
_SHAPING = ("backbone", "width", "fc_channels", "base_channels")


def _description(arch: str, kwargs: Mapping[str, Any], bands: Sequence[str] | None = None,
                 classes: bool = False) -> str:
    shaping = [f"{kwargs['num_classes']} classes"] if classes and "num_classes" in kwargs else []
    shaping += [f"{k} {kwargs[k]}" for k in _SHAPING if k in kwargs]
    if bands:
        shaping.append(f"bands {', '.join(bands)}")
    return arch + (f" ({', '.join(shaping)})" if shaping else "")


def model_description(model: nn.Module, classes: bool = False) -> str:
    """``fcn16s (width 0.0625, fc_channels 8)``: the architecture and what shapes its trunk
    (with ``classes``, its number of classes first)."""
    kwargs = getattr(model, "build_kwargs", None) or {}
    name = getattr(model, "arch", None) or type(model).__name__
    return _description(name, kwargs, model_bands(model), classes)


def recorded_description(recorded: Any, classes: bool = False) -> str | None:
    """:func:`model_description` of the model a checkpoint's ``model`` section records (None
    for anything else)."""
    section = fields_of(recorded)
    arch, kwargs = section.get("arch"), fields_of(section.get("build_kwargs"))
    if not isinstance(arch, str) or not kwargs:
        return None
    return _description(arch, kwargs, classes=classes)


def init_from(model: nn.Module, source: nn.Module | Mapping[str, torch.Tensor] | PathLike, *,
              name: str | None = None,
              convention: InputConvention | str | Mapping[str, Any] | None = None,
              recorded: Mapping[str, Any] | None = None) -> InitReport:
    """Staged initialisation: copy every tensor of ``source`` (a model, a state dict or a
    file; ``name`` says where it came from) whose name and shape match.

    FCN-16s starts from a trained FCN-32s and FCN-8s from an FCN-16s: the new skip scorers keep
    their zero start, so the new model computes what the previous stage did. A module source
    passes on its input convention. A multi-band model started from colour weights gets their
    first convolution widened (:func:`band_conv1`, from ``convention``); other bands are refused.
    ``recorded``: the source checkpoint's ``model`` section, which a refusal names.

    Returns an :class:`InitReport`, logged at INFO; a ``UserWarning`` where trunk layers kept
    their own initialisation. Raises :class:`WeightsError` when less than half of the trunk
    matched: such an "initialisation" would silently train from scratch.
    """
    if isinstance(source, str | os.PathLike):  # a file: a checkpoint records its model
        obj, _ = _read_file(Path(source))
        sd, kind, recorded = _unwrap(obj, Path(source)), "file", recorded or _recorded(obj)
    else:
        sd, kind = state_dict_of(source)
    what = name or {"module": f"the given {model_description(source)} module",
                    "state dict": "a state dict"}.get(kind, str(source))
    if convention is None and isinstance(source, nn.Module):
        convention = getattr(source, "input_convention", None)
    sd, widened = _widen_colour_source(model, sd, convention, what)
    report = _matched(model, sd, InitReport(what, widened=widened), recorded)
    bad = first_nonfinite(sd, report.copied)
    if bad is not None:
        raise WeightsError(f"init: {what}: tensor {bad} {NONFINITE}")
    if isinstance(source, nn.Module) and hasattr(source, "input_convention") and not widened:
        model.input_convention = source.input_convention
    model.load_state_dict({k: sd[k] for k in report.copied}, strict=False)
    # Only trunk layers left alone deserve a warning; fcnseg train prints the report.
    log.info("%s", report.summary())
    if any(_is_trunk_key(k) for k in report.kept):
        warnings.warn(report.summary(), UserWarning, stacklevel=2)
    return report
