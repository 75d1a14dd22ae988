"""The FCN skip head: FCN-32s, FCN-16s and FCN-8s on any trunk (Long, Shelhamer & Darrell).

The head scores the trunk's stride-32 feature, upsamples the scores ×2 onto the stride-16 grid,
adds the stride-16 scores, does the same onto the stride-8 grid, and upsamples the result onto
the input (Fig. 3 of the paper)::

    score = upscore2(score_fr(fc7)) + score_pool4(pool4)
    score = upscore_pool4(score) + score_pool3(pool3)
    return upscore8(score)

Each upsampling (:class:`AlignedUpsampling`) places its output on the grid of the map it is
added to, from the coordinate maps (:mod:`fcnseg.models.geometry`): where the reference crops
its larger deconvolution output (offsets 5, 9 and 31 for FCN-8s), the same window is taken.
Stride-aligned trunks (ResNets) use :func:`edge_upsampling`. The layers are saved under the
reference's names (:data:`VGG_NAMES`) or the backbone models' (:data:`BACKBONE_NAMES`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fcnseg.models.geometry import IDENTITY, CoordMap, crop_offset, deconv_padding_for, trace
from fcnseg.models.trunk import BackboneError
from fcnseg.models.upsample import bilinear_upsampling

#: FCN variant → the strides it fuses, coarsest first.
VARIANTS: dict[str, tuple[int, ...]] = {"32s": (32,), "16s": (32, 16), "8s": (32, 16, 8)}


class Scorer(nn.Conv2d):
    """A 1×1 convolution from features to class scores, starting at zero as the reference's (a
    new skip contributes nothing at first); ``input_scale`` multiplies the feature first (FCN-8s
    at once: 0.01 for pool4, 0.0001 for pool3)."""

    def __init__(self, in_channels: int, num_classes: int, input_scale: float = 1.0) -> None:
        super().__init__(in_channels, num_classes, 1)
        self.input_scale = float(input_scale)

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x if self.input_scale == 1.0 else x * self.input_scale)

    def extra_repr(self) -> str:
        scale = "" if self.input_scale == 1.0 else f", input_scale={self.input_scale:g}"
        return super().extra_repr() + scale


class AlignedUpsampling(nn.Module):
    """Upsampling of a score map from coordinate map ``src`` onto the grid of ``target``.

    ``up`` is a :class:`~fcnseg.models.upsample.BilinearUpsampling` (None between equal maps),
    applied after edge-padding the input by ``edge_pad``; ``offset`` is where the target's first
    pixel lies in its output. ``forward(x, like)`` returns the window of ``like``'s (H, W).
    """

    def __init__(self, up: nn.ConvTranspose2d | None, src: CoordMap, target: CoordMap,
                 *, edge_pad: int = 0) -> None:
        super().__init__()
        self.up = up
        self.src, self.target, self.edge_pad = src, target, edge_pad
        if up is None:
            if src != target:
                raise BackboneError(f"maps {src} and {target} differ: they need an upsampling")
            self.offset = 0
            return
        # Edge padding moves the map's origin back by edge_pad source pixels.
        padded = CoordMap(src.scale, src.shift - edge_pad * src.scale)
        out = trace([up], padded)
        if not math.isclose(out.scale, target.scale):
            raise BackboneError(f"upsampling {src} by {up.stride[0]} gives scale {out.scale}, "
                                f"not the target's {target.scale}")
        self.offset = crop_offset(out, target, allow_negative=True)

    def forward(self, x: torch.Tensor, like: torch.Tensor | Sequence[int]) -> torch.Tensor:
        size = like.shape[-2:] if isinstance(like, torch.Tensor) else like
        if self.up is None:
            return x[..., : size[0], : size[1]]
        if self.edge_pad:
            x = F.pad(x, (self.edge_pad,) * 4, mode="replicate")
        return self.up.forward_window(x, self.offset, size)

    def extra_repr(self) -> str:
        return f"offset={self.offset}, edge_pad={self.edge_pad}"


def reference_upsampling(channels: int, src: CoordMap, target: CoordMap, *,
                         pad_to_target: bool) -> AlignedUpsampling:
    """The paper's bilinear deconvolution for factor r: kernel 2r, stride r; padded onto
    ``target``'s pixel centres when ``pad_to_target`` ("same" geometry), else unpadded."""
    r = _ratio(src, target)
    pad = deconv_padding_for(src, target, 2 * r, r) if pad_to_target else 0
    return AlignedUpsampling(bilinear_upsampling(channels, 2 * r, r, pad), src, target)


def edge_upsampling(channels: int, src: CoordMap, target: CoordMap) -> AlignedUpsampling:
    """Bilinear upsampling between stride-aligned maps (ResNet-style), exact at the borders:
    kernel ``2r - 1`` for a whole-pixel offset between the grids, ``2r`` for a half; the input
    edge-padded by one; the identity for ``r = 1`` (dilated trunks).
    """
    r = _ratio(src, target)
    if r == 1:
        return AlignedUpsampling(None, src, target)
    delta = (target.shift - src.shift) / target.scale  # in target pixels
    twice = 2 * delta
    if not math.isclose(twice, round(twice), abs_tol=1e-9):
        raise BackboneError(f"{src} and {target} are offset by {delta} target pixels; "
                            f"bilinear deconvolution needs a whole or half offset")
    kernel = 2 * r - 1 if math.isclose(delta, round(delta), abs_tol=1e-9) else 2 * r
    return AlignedUpsampling(bilinear_upsampling(channels, kernel, r), src, target, edge_pad=1)


def _ratio(src: CoordMap, target: CoordMap) -> int:
    ratio = src.scale / target.scale
    if ratio < 1 or not math.isclose(ratio, round(ratio)):
        raise BackboneError(f"cannot upsample scale {src.scale} onto scale {target.scale}: "
                            f"the ratio must be a whole number >= 1")
    return int(round(ratio))


@dataclass(frozen=True)
class HeadNames:
    """Where a head's layers sit in the state dict: ``score`` by stride, ``up`` by (coarse,
    fine) stride, ``final`` by variant. A name ending in ``.up`` registers the
    :class:`AlignedUpsampling` under the part before it; otherwise the deconvolution itself."""

    score: Mapping[int, str]
    up: Mapping[tuple[int, int], str]
    final: Mapping[str, str]
    suffix: str = ""

    def suffixed(self, suffix: str) -> HeadNames:
        """The names of one head of a multi-head model: ``score_fr`` → ``score_fr{suffix}``."""
        return HeadNames(self.score, self.up, self.final, self.suffix + suffix)

    def name(self, base: str) -> str:
        first, dot, rest = base.partition(".")
        return first + self.suffix + dot + rest


#: The reference's layer names (Caffe prototxts and the PyTorch port).
VGG_NAMES = HeadNames(
    score={32: "score_fr", 16: "score_pool4", 8: "score_pool3"},
    up={(32, 16): "upscore2", (16, 8): "upscore_pool4"},
    final={"32s": "upscore", "16s": "upscore16", "8s": "upscore8"},
)

#: The backbone models' layer names (ResNets and custom trunks).
BACKBONE_NAMES = HeadNames(
    score={32: "score32", 16: "score16", 8: "score8"},
    up={(32, 16): "up32to16.up", (16, 8): "up16to8.up"},
    final={"32s": "upscore.up", "16s": "upscore.up", "8s": "upscore.up"},
)

UpsamplingFactory = Callable[[int, CoordMap, CoordMap], AlignedUpsampling]


class SkipHead(nn.Module):
    """FCN-32s, FCN-16s or FCN-8s scoring and fusion of a trunk's features.

    ``in_channels`` and ``coord_maps`` are the trunk's by stride; ``upsampling(channels, src,
    target)`` gives an :class:`AlignedUpsampling`; ``skip_scales`` scale the stride-16 and
    stride-8 scorers' input; ``names`` place the layers in the state dict.
    ``forward({stride: feature}, (H, W))`` returns N×num_classes×H×W scores.
    """

    def __init__(self, in_channels: Mapping[int, int], coord_maps: Mapping[int, CoordMap],
                 num_classes: int, *, variant: str = "8s",
                 upsampling: UpsamplingFactory = edge_upsampling,
                 skip_scales: Sequence[float] = (1.0, 1.0),
                 names: HeadNames = BACKBONE_NAMES) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        self.variant, self.num_classes, self.names = variant, num_classes, names
        self.strides = VARIANTS[variant]
        self.coord_maps = {s: coord_maps[s] for s in self.strides}
        scale16, scale8 = float(skip_scales[0]), float(skip_scales[1])
        fcn16, fcn8 = 16 in self.strides, 8 in self.strides
        # The paper's names for the roles; `names` says where each sits in the state dict.
        self.score_fr = Scorer(in_channels[32], num_classes)
        self.score_pool4 = Scorer(in_channels[16], num_classes, scale16) if fcn16 else None
        self.score_pool3 = Scorer(in_channels[8], num_classes, scale8) if fcn8 else None
        self.upscore2 = upsampling(num_classes, coord_maps[32], coord_maps[16]) if fcn16 else None
        self.upscore_pool4 = (upsampling(num_classes, coord_maps[16], coord_maps[8])
                              if fcn8 else None)
        self.upscore = upsampling(num_classes, coord_maps[self.strides[-1]], IDENTITY)

    def forward(self, features: Mapping[int, torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        score = self.score_fr(features[32])
        if self.upscore2 is not None:  # FCN-16s and FCN-8s: stride 32 → 16
            pool4 = features[16]
            score = self.upscore2(score, pool4) + self.score_pool4(pool4)
        if self.upscore_pool4 is not None:  # FCN-8s: stride 16 → 8
            pool3 = features[8]
            score = self.upscore_pool4(score, pool3) + self.score_pool3(pool3)
        return self.upscore(score, size)  # onto the input's pixels

    def reference_names(self) -> dict[str, str]:
        """``{path in this head: state-dict name}``: ``{"upscore2.up": "upscore2", ...}``."""
        roles = [("score_fr", self.names.score[32]), ("upscore", self.names.final[self.variant])]
        if self.upscore2 is not None:
            roles += [("score_pool4", self.names.score[16]),
                      ("upscore2", self.names.up[(32, 16)])]
        if self.upscore_pool4 is not None:
            roles += [("score_pool3", self.names.score[8]),
                      ("upscore_pool4", self.names.up[(16, 8)])]
        paths: dict[str, str] = {}
        for path, base in roles:
            name = self.names.name(base)
            if isinstance(getattr(self, path), AlignedUpsampling) and not name.endswith(".up"):
                paths[f"{path}.up"] = name  # the deconvolution itself holds the name
            else:
                paths[path] = name.removesuffix(".up")
        return paths

    def crop_offsets(self) -> dict[str, int]:
        """The Caffe reference's crop offsets, from the coordinate maps: at each fusion the
        larger map is cropped to the smaller, ``final`` crops the output (19; 5, 27; 5, 9, 31
        for FCN-32s, 16s, 8s in the Caffe geometry; 0 in "same")."""
        offsets: dict[str, int] = {}
        current = self.coord_maps[32]
        for up, fine, key in ((self.upscore2, 16, "pool4"), (self.upscore_pool4, 8, "pool3")):
            if up is None:
                break
            upsampled = trace([up.up], current)
            skip = self.coord_maps[fine]
            offset = crop_offset(upsampled, skip, allow_negative=True)
            offsets[key] = abs(offset)
            current = skip if offset >= 0 else upsampled  # the smaller map is kept
        final = self.upscore.up
        offsets["final"] = crop_offset(trace([final], current) if final is not None else current,
                                       IDENTITY)
        return offsets

    def upsampling_layers(self) -> list[nn.ConvTranspose2d]:
        """The bilinear deconvolutions (frozen unless their ``requires_grad`` is set)."""
        ups = (self.upscore2, self.upscore_pool4, self.upscore)
        return [u.up for u in ups if u is not None and u.up is not None]
