"""FCN-32s/16s/8s heads on any backbone, and the bring-your-own-backbone interface.

The backbone protocol
---------------------
A backbone is an ``nn.Module`` that

- has ``out_channels``: a dict ``{8: c8, 16: c16, 32: c32}`` of the channel counts of its
  features at nominal strides 8, 16 and 32 (FCN-32s needs only 32; FCN-16s 16 and 32);
- returns from ``forward(x)`` (``x``: N×3×H×W) those features, either as a mapping keyed by the
  same strides (``{8: t8, 16: t16, 32: t32}``) or as a sequence in ascending stride order;
- optionally has ``coord_maps`` (a dict, or a method returning one) giving for each stride the
  :class:`~fcnseg.models.geometry.CoordMap` of its feature: index ``i`` is centred on input pixel
  ``scale * i + shift``. Without it, stride ``s`` is taken to be ``CoordMap(s, 0)``: index ``i`` at
  pixel ``s * i``, which is what stride-2 convolutions with "same" padding (3×3 pad 1, 7×7 pad 3,
  1×1 pad 0) and 3×3/2 pad 1 max pools give, as in ResNets and MobileNets. 2×2/2 pools without
  padding (VGG) give ``CoordMap(s, (s - 1) / 2)`` instead. Dilated backbones declare their
  true scales (e.g. ``CoordMap(8, 0)`` for the "32" feature at output stride 8).

The heads
---------
Each used level gets a zero-initialised 1×1 scorer (``score32``, ``score16``, ``score8``). Coarse
scores are upsampled to the next level with frozen channel-diagonal bilinear deconvolutions (as
the VGG16 FCNs; run by :func:`~fcnseg.models.upsample.upsample_crop`'s separable fast path)
placed by the coordinate maps (:class:`AlignedBilinear`): the output lies exactly on the finer
map's pixel centres, borders repeat the edge values, and the result is cropped to the finer
map's size, so any input size gives an output of the same size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fcnseg.conventions import TORCHVISION_RGB, InputConvention, get_convention
from fcnseg.models.factories import backbone_factory, factory_path, resolve_factory
from fcnseg.models.geometry import IDENTITY, CoordMap, crop_offset, trace
from fcnseg.models.trunk import BackboneError
from fcnseg.models.upsample import bilinear_upsampling, upsample_crop

__all__ = [
    "VARIANTS",
    "AlignedBilinear",
    "BackboneError",
    "BackboneFCN",
    "backbone_factory",
    "fcn_custom_backbone",
    "fcn_from_backbone",
    "fcn_from_factory",
    "resolve_factory",
]

#: FCN variant → the strides it fuses, coarsest first.
VARIANTS: dict[str, tuple[int, ...]] = {"32s": (32,), "16s": (32, 16), "8s": (32, 16, 8)}

class AlignedBilinear(nn.Module):
    """Bilinear upsampling of a score map from coordinate map ``src`` onto ``target``.

    A frozen channel-diagonal bilinear transposed convolution with stride
    ``r = src.scale / target.scale``. The kernel is ``2r - 1`` wide when the two grids' offset is a
    whole number of target pixels (ResNet-style maps) and ``2r`` when it is a half (VGG-style
    maps); the input is edge-padded by one so that the borders interpolate towards the edge value
    rather than towards zero, and the result is cropped at the offset the coordinate maps give.
    ``r = 1`` with equal maps is the identity (used by dilated backbones).
    """

    def __init__(self, channels: int, src: CoordMap, target: CoordMap) -> None:
        super().__init__()
        ratio = src.scale / target.scale
        if ratio < 1 or not math.isclose(ratio, round(ratio)):
            raise BackboneError(f"cannot upsample scale {src.scale} onto scale {target.scale}: "
                                f"the ratio must be a whole number >= 1")
        r = int(round(ratio))
        delta = (target.shift - src.shift) / target.scale  # in target pixels
        self.ratio = r
        self.src, self.target = src, target
        if r == 1:
            if not math.isclose(delta, 0.0, abs_tol=1e-9):
                raise BackboneError(f"maps of equal scale are offset by {delta} pixels: "
                                    f"{src} vs {target}")
            self.up = None
            self.offset = 0
            return
        twice = 2 * delta
        if not math.isclose(twice, round(twice), abs_tol=1e-9):
            raise BackboneError(f"{src} and {target} are offset by {delta} target pixels; "
                                f"bilinear deconvolution needs a whole or half offset")
        kernel = 2 * r - 1 if math.isclose(delta, round(delta), abs_tol=1e-9) else 2 * r
        self.up = bilinear_upsampling(channels, kernel, r)
        # The edge padding moves the map's origin one source pixel back.
        padded = CoordMap(src.scale, src.shift - src.scale)
        self.offset = crop_offset(trace([self.up], padded), target)

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """Upsample ``x`` and crop it to ``size`` (H, W) of the target map."""
        h, w = size[0], size[1]  # no int(): tracing for export keeps them symbolic
        if self.up is None:
            return x[..., :h, :w]
        return upsample_crop(self.up, F.pad(x, (1, 1, 1, 1), mode="replicate"), self.offset,
                             (h, w))


def _as_feature_dict(feats: Any, strides: Sequence[int]) -> dict[int, torch.Tensor]:
    if isinstance(feats, Mapping):
        missing = [s for s in strides if s not in feats]
        if missing:
            raise BackboneError(f"backbone returned features for strides {sorted(feats)}, "
                                f"missing {missing}")
        return {s: feats[s] for s in strides}
    if isinstance(feats, list | tuple):
        if len(feats) != 3:
            raise BackboneError(f"backbone returned {len(feats)} feature maps; a sequence must "
                                f"hold three, at strides 8, 16, 32")
        return dict(zip((8, 16, 32), feats, strict=True))
    raise BackboneError(f"backbone returned {type(feats).__name__}; expected a mapping "
                        f"{{8: ..., 16: ..., 32: ...}} or a sequence of three feature maps")


def backbone_coord_maps(backbone: nn.Module) -> dict[int, CoordMap]:
    """The backbone's declared coordinate maps, defaulting to ``CoordMap(s, 0)`` per stride."""
    declared = getattr(backbone, "coord_maps", None)
    if callable(declared):
        declared = declared()
    maps = {s: CoordMap(float(s), 0.0) for s in (8, 16, 32)}
    if declared is not None:
        if not isinstance(declared, Mapping):
            raise BackboneError(f"{type(backbone).__name__}.coord_maps must be a dict "
                                f"{{stride: CoordMap}}, got {type(declared).__name__}")
        for s, m in declared.items():
            maps[int(s)] = m if isinstance(m, CoordMap) else CoordMap(*m)
    return maps


class BackboneFCN(nn.Module):
    """FCN-32s, FCN-16s or FCN-8s heads on a backbone that follows the protocol above.

    Args:
        backbone: the feature extractor (stored as ``self.backbone``; its state-dict keys are
            prefixed ``backbone.``).
        num_classes: output channels.
        variant: ``"32s"``, ``"16s"`` or ``"8s"``.
        skip_scales: multipliers of the stride-16 and stride-8 features before their scorers
            (FCN-8s-at-once style); 1 by default.
        arch, build_kwargs: how :func:`fcnseg.models.build_model` rebuilds this model (set by
            the builders; checkpoints record them).
        input_convention: the pixel convention of the backbone's weights.

    ``forward`` returns N×num_classes×H×W logits for an N×3×H×W input.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        variant: str = "8s",
        skip_scales: tuple[float, float] = (1.0, 1.0),
        arch: str = "fcn_custom_backbone",
        build_kwargs: dict[str, Any] | None = None,
        input_convention: InputConvention | str | dict[str, Any] = TORCHVISION_RGB,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        channels = getattr(backbone, "out_channels", None)
        if not isinstance(channels, Mapping):
            raise BackboneError(f"{type(backbone).__name__} has no out_channels dict "
                                f"{{8: c8, 16: c16, 32: c32}} (see fcnseg.models.backbone)")
        strides = VARIANTS[variant]
        missing = [s for s in strides if s not in channels]
        if missing:
            raise BackboneError(f"FCN-{variant} needs features at strides {list(strides)}; "
                                f"{type(backbone).__name__}.out_channels lacks {missing}")
        self.backbone = backbone
        self.num_classes = num_classes
        self.variant = variant
        self.strides = strides
        self.arch = arch
        self.build_kwargs: dict[str, Any] = dict(build_kwargs or {"num_classes": num_classes,
                                                                  "variant": variant})
        self.input_convention = get_convention(input_convention)
        self.skip_scales = {16: float(skip_scales[0]), 8: float(skip_scales[1])}
        self.in_channels = {s: int(channels[s]) for s in strides}

        maps = backbone_coord_maps(backbone)
        for s in strides:
            scorer = nn.Conv2d(self.in_channels[s], num_classes, 1)
            # Zero scorers, as in the reference: training starts with no class preference and
            # a new skip level starts out contributing nothing.
            nn.init.zeros_(scorer.weight)
            nn.init.zeros_(scorer.bias)
            setattr(self, f"score{s}", scorer)
        for coarse, fine in zip(strides, strides[1:], strict=False):
            setattr(self, f"up{coarse}to{fine}",
                    AlignedBilinear(num_classes, maps[coarse], maps[fine]))
        self.upscore = AlignedBilinear(num_classes, maps[strides[-1]], IDENTITY)

    def upsampling_layers(self) -> list[nn.ConvTranspose2d]:
        """The bilinear deconvolutions (frozen unless their ``requires_grad`` is set)."""
        return [m.up for m in self.modules() if isinstance(m, AlignedBilinear) and m.up is not None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected an N×C×H×W input, got shape {tuple(x.shape)}")
        feats = _as_feature_dict(self.backbone(x), self.strides)
        for s in self.strides:
            if feats[s].shape[1] != self.in_channels[s]:
                raise BackboneError(
                    f"{type(self.backbone).__name__} returned {feats[s].shape[1]} channels at "
                    f"stride {s}; its out_channels declares {self.in_channels[s]}")
        coarse = self.strides[0]
        score = self.score32(feats[coarse])
        for fine in self.strides[1:]:
            skip = feats[fine]
            scale = self.skip_scales[fine]
            skip_score = getattr(self, f"score{fine}")(skip if scale == 1.0 else skip * scale)
            up = getattr(self, f"up{coarse}to{fine}")
            score = up(score, skip_score.shape[-2:]) + skip_score
            coarse = fine
        return self.upscore(score, x.shape[-2:])

    def extra_repr(self) -> str:
        return f"arch={self.arch}, variant={self.variant}, num_classes={self.num_classes}"


# -- bring your own backbone -------------------------------------------------------------------
def fcn_from_backbone(
    backbone: nn.Module,
    num_classes: int,
    *,
    variant: str = "8s",
    factory: str | Callable[..., nn.Module] | None = None,
    factory_kwargs: Mapping[str, Any] | None = None,
    input_convention: InputConvention | str | dict[str, Any] = TORCHVISION_RGB,
    skip_scales: tuple[float, float] = (1.0, 1.0),
) -> BackboneFCN:
    """FCN-32s/16s/8s heads on your own ``backbone`` (see the module docstring's protocol).

    ``factory`` (``"package.module:function"`` or the function itself, marked with
    :func:`backbone_factory`) and ``factory_kwargs`` record how to rebuild the backbone:
    checkpoints store them, and :func:`~fcnseg.checkpoint.build_model_from_checkpoint` calls
    ``factory(**factory_kwargs)`` then loads the weights. Without a factory the checkpoint says
    that the backbone must be supplied: ``build_model_from_checkpoint(path, backbone=module)``.
    ``factory_kwargs`` must be plain data (numbers, strings, lists, dicts).
    """
    if callable(factory):
        factory = factory_path(factory)
    if factory is not None:
        resolve_factory(factory)  # fail now, not when someone loads the checkpoint
    conv = get_convention(input_convention)
    kwargs = {
        "num_classes": num_classes, "variant": variant, "factory": factory,
        "factory_kwargs": dict(factory_kwargs or {}), "input_convention": conv.to_dict(),
        "skip_scales": [float(s) for s in skip_scales],
    }
    return BackboneFCN(backbone, num_classes, variant=variant, skip_scales=skip_scales,
                       arch="fcn_custom_backbone", build_kwargs=kwargs, input_convention=conv)


def fcn_from_factory(
    factory: str | Callable[..., nn.Module],
    num_classes: int,
    *,
    variant: str = "8s",
    factory_kwargs: Mapping[str, Any] | None = None,
    input_convention: InputConvention | str | dict[str, Any] = TORCHVISION_RGB,
    skip_scales: tuple[float, float] = (1.0, 1.0),
) -> BackboneFCN:
    """Build the backbone with ``factory(**factory_kwargs)`` and put FCN heads on it."""
    fn = resolve_factory(factory if isinstance(factory, str) else factory_path(factory))
    backbone = fn(**dict(factory_kwargs or {}))
    return fcn_from_backbone(backbone, num_classes, variant=variant, factory=factory,
                             factory_kwargs=factory_kwargs, input_convention=input_convention,
                             skip_scales=skip_scales)


def fcn_custom_backbone(
    num_classes: int = 21,
    *,
    variant: str = "8s",
    factory: str | None = None,
    factory_kwargs: Mapping[str, Any] | None = None,
    input_convention: InputConvention | str | dict[str, Any] = TORCHVISION_RGB.name,
    skip_scales: Sequence[float] = (1.0, 1.0),
    backbone: nn.Module | None = None,
) -> BackboneFCN:
    """Builder behind ``build_model("fcn_custom_backbone", ...)``, which checkpoints call.

    Rebuilds the backbone from its recorded ``factory``, or takes ``backbone`` (a freshly built
    module of the same architecture) when the checkpoint names no factory or the factory's code
    is not importable here.
    """
    scales = (float(skip_scales[0]), float(skip_scales[1]))
    if backbone is None:
        if factory is None:
            raise BackboneError(
                "this custom-backbone model records no backbone factory, so its backbone cannot "
                "be rebuilt automatically; build the backbone yourself and pass it: "
                "build_model_from_checkpoint(path, backbone=my_backbone)")
        return fcn_from_factory(factory, num_classes, variant=variant,
                                factory_kwargs=factory_kwargs, input_convention=input_convention,
                                skip_scales=scales)
    return fcn_from_backbone(backbone, num_classes, variant=variant, factory=factory,
                             factory_kwargs=factory_kwargs, input_convention=input_convention,
                             skip_scales=scales)
