"""The reference's other nets, each with its layer names, are built here:
two heads on one trunk (SIFT Flow, :func:`siftflow_fcn`) and several input modalities (NYUDv2),
fused early (RGB-D, :func:`early_fusion_fcn`) or late (RGB-HHA, :class:`LateFusionFCN`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial, reduce
from typing import Any

import torch
from torch import nn

from fcnseg.models.fcn import FCN, require_inputs, vgg16_head
from fcnseg.models.geometry import IDENTITY
from fcnseg.models.head import (
    VARIANTS,
    VGG_NAMES,
    AlignedUpsampling,
    Scorer,
    reference_upsampling,
)
from fcnseg.models.identity import DescribedModel, ModelIdentity
from fcnseg.models.keymap import KeyMap, use_reference_keys
from fcnseg.models.preprocess import Preprocess
from fcnseg.models.vgg import VGG16Trunk
from fcnseg.models.weights import (
    COLOUR_BANDS,
    NONFINITE,
    WeightsError,
    first_nonfinite,
    read_state_dict,
    state_dict_of,
    widen_conv1,
)
from fcnseg.utils.validate import expect_mapping
from fcnseg.weightfiles.resolve import resolve_checkpoint

#: The SIFT Flow heads and the suffix the reference gives their layers.
HEAD_SUFFIXES: dict[str, str] = {"semantic": "_sem", "geometric": "_geo"}


def siftflow_fcn(trunk: VGG16Trunk, variant: str, identity: ModelIdentity, num_classes: int = 33,
                 geometric_classes: int = 3) -> FCN:
    """FCN-``variant`` on one VGG16 trunk with a ``semantic`` and a ``geometric`` head (layers
    ``score_fr_sem``, ``upscore2_geo`` ...); ``forward`` returns ``{head: scores}``."""
    counts = {"semantic": num_classes, "geometric": geometric_classes}
    heads = {name: vgg16_head(trunk, counts[name], variant, names=VGG_NAMES.suffixed(suffix))
             for name, suffix in HEAD_SUFFIXES.items()}
    return FCN(trunk, heads, identity, trunk_name=None)


def early_fusion_conv1(weight: torch.Tensor) -> torch.Tensor:
    """The 4-channel (colour + depth) conv1_1 weight from a 3-channel one: the depth filter the
    mean of the colour ones (:func:`widen_conv1` unscaled, as the reference does)."""
    # Channels 0-2 keep the weight's own order whatever it is: named here as if RGB.
    return widen_conv1(weight, (*COLOUR_BANDS, "depth"), keep_variance=False)


def early_fusion_fcn(trunk: VGG16Trunk, num_classes: int, variant: str,
                     identity: ModelIdentity) -> FCN:
    """FCN-``variant`` on a 4-channel VGG16 trunk (``conv1_1_bgrd`` as in the reference): takes
    ``{"color": N×3×H×W, "depth": N×1×H×W}`` or their N×4×H×W stack."""
    if trunk.in_channels != 4:
        raise ValueError(f"early fusion stacks colour and depth: 4 input channels, got a "
                         f"trunk of {trunk.in_channels}")
    return FCN(trunk, vgg16_head(trunk, num_classes, variant), identity, trunk_name=None,
               input_names=("color", "depth"), layer_names={"conv1_1": "conv1_1_bgrd"})


class LateFusionStream(nn.Module):
    """One modality's stream of a late-fusion net: a VGG16 trunk and its scorers by stride
    (``scorers["32"]``, and ``scorers["16"]`` for FCN-16s)."""

    def __init__(self, trunk: VGG16Trunk, num_classes: int, strides: Sequence[int]) -> None:
        super().__init__()
        self.trunk = trunk
        self.scorers = nn.ModuleDict({str(s): Scorer(trunk.out_channels[s], num_classes)
                                      for s in (32, 16) if s in strides})


class LateFusionFCN(DescribedModel, nn.Module):
    """Late fusion: one VGG16 trunk and scorer set per input modality, the streams' score maps
    summed with fixed ``fusion_weights`` before one shared upsampling.

    State-dict keys: each stream's layers suffixed by ``_<modality>`` (``conv1_1_color``,
    ``score_fr_hha``), the shared deconvolutions unsuffixed (``upscore2``, ``upscore16``).
    ``forward({modality: N×3×H×W})`` returns N×num_classes×H×W scores.
    """

    def __init__(self, streams: Mapping[str, VGG16Trunk], num_classes: int,
                 identity: ModelIdentity, *, variant: str = "32s",
                 fusion_weights: Sequence[float] | None = None,
                 pad_to_target: bool = False) -> None:
        super().__init__()
        if variant not in ("32s", "16s"):
            raise ValueError(f"late fusion is built for FCN-32s and FCN-16s, got {variant!r}")
        if len(streams) < 2:
            raise ValueError(f"late fusion needs at least two streams, got {list(streams)}")
        weights = [1.0 / len(streams)] * len(streams) if fusion_weights is None \
            else [float(w) for w in fusion_weights]
        if len(weights) != len(streams):
            raise ValueError(f"{len(weights)} fusion weights for {len(streams)} streams")
        self.identity = identity
        self.variant, self.num_classes = variant, num_classes
        self.strides = VARIANTS[variant]
        self.input_names = tuple(streams)
        self.preprocess: nn.Module = Preprocess(self.input_names, identity.input_convention)
        self.fusion_weights = dict(zip(self.input_names, weights, strict=True))
        self.streams = nn.ModuleDict({m: LateFusionStream(trunk, num_classes, self.strides)
                                      for m, trunk in streams.items()})
        maps = next(iter(streams.values())).coord_maps()
        up = partial(reference_upsampling, pad_to_target=pad_to_target)
        self.up_pool4 = up(num_classes, maps[32], maps[16]) if 16 in self.strides else None
        self.up_final = up(num_classes, maps[self.strides[-1]], IDENTITY)
        use_reference_keys(self, self._reference_names())

    def _reference_names(self) -> KeyMap:
        """Each stream's layers suffixed by its modality, the shared ones as the reference's."""
        pairs = []
        for m, stream in self.streams.items():
            pairs += [(f"streams.{m}.trunk.{name}.", f"{name}_{m}.")
                      for name, _ in stream.trunk.named_children()]
            pairs += [(f"streams.{m}.scorers.{s}.", f"{VGG_NAMES.score[int(s)]}_{m}.")
                      for s in stream.scorers]
        if self.up_pool4 is not None:
            pairs.append(("up_pool4.up.", f"{VGG_NAMES.up[(32, 16)]}."))
        pairs.append(("up_final.up.", f"{VGG_NAMES.final[self.variant]}."))
        return KeyMap(pairs)

    @property
    def geometry(self) -> str:
        return next(iter(self.streams.values())).trunk.geometry

    @property
    def head_classes(self) -> dict[str, int]:
        return {"out": self.num_classes}

    def upsampling_layers(self) -> list[nn.ConvTranspose2d]:
        """The shared bilinear deconvolutions (frozen unless their ``requires_grad`` is set)."""
        ups: list[AlignedUpsampling] = [u for u in (self.up_pool4, self.up_final) if u is not None]
        return [u.up for u in ups if u.up is not None]

    def extra_repr(self) -> str:
        weights = ", ".join(f"{k}={w:g}" for k, w in self.fusion_weights.items())
        return (f"arch={self.arch}, geometry={self.geometry}, num_classes={self.num_classes}, "
                f"fusion=({weights})")

    def _fused(self, features: Mapping[str, Mapping[int, torch.Tensor]],
               stride: int) -> torch.Tensor:
        scores = [self.streams[m].scorers[str(stride)](features[m][stride]) * w
                  for m, w in self.fusion_weights.items()]
        return reduce(torch.add, scores)

    def forward(self, x: Mapping[str, torch.Tensor]) -> torch.Tensor:
        expect_mapping(x, self.arch, f"a dict of inputs {list(self.input_names)}")
        require_inputs(x, self.input_names)  # every input named, not just a stream's own
        x = self.preprocess(x)
        inputs = {m: x[m] for m in self.input_names}
        size = inputs[self.input_names[0]].shape[-2:]
        if any(t.shape[-2:] != size for t in inputs.values()):
            raise ValueError(f"the inputs {list(self.input_names)} differ in size: "
                             f"{[tuple(t.shape) for t in inputs.values()]}")
        features = {m: self.streams[m].trunk(t) for m, t in inputs.items()}
        score = self._fused(features, 32)
        if self.up_pool4 is not None:  # FCN-16s: stride 32 → 16, pool4 scores fused alike
            pool4 = features[self.input_names[0]][16]
            score = self.up_pool4(score, pool4) + self._fused(features, 16)
        return self.up_final(score, size)


def init_late_fusion(model: LateFusionFCN, sources: Mapping[str, Any]) -> LateFusionFCN:
    """Start each stream of ``model`` from a trained single-modality FCN, as the reference does.

    ``sources``: ``{modality: model | state dict | checkpoint path}`` of single-stream VGG16
    FCNs of the same width and classes, copied into the stream's suffixed layers (a
    ``score_pool4`` the source lacks keeps its zero start). Raises
    :class:`~fcnseg.models.WeightsError` naming the source and a missing or mis-shaped key.
    """
    unknown = sorted(set(sources) - set(model.input_names))
    if unknown:
        raise ValueError(f"init_late_fusion: no stream {unknown}; the model's streams are "
                         f"{list(model.input_names)}")
    own = model.state_dict()
    with torch.no_grad():
        for modality, source in sources.items():
            # A file is anything --checkpoint takes (a pretrained folder, hf://).
            sd, kind = state_dict_of(source, read=lambda s: read_state_dict(resolve_checkpoint(s)))
            where = {"module": f"the {modality} model",
                     "state dict": f"the {modality} state dict"}.get(kind, str(source))
            suffix = f"_{modality}"
            for key, target in own.items():
                layer, dot, param = key.partition(".")
                if not layer.endswith(suffix):
                    continue
                src_key = layer.removesuffix(suffix) + dot + param
                if src_key not in sd:
                    if src_key.startswith(VGG_NAMES.score[16]):
                        continue  # the staged 32s → 16s start: the new skip starts at zero
                    raise WeightsError(f"{where}: no {src_key} for {key} (is it a "
                                       f"single-stream VGG16 FCN?)")
                if sd[src_key].shape != target.shape:
                    raise WeightsError(f"{where}: {src_key} has shape {tuple(sd[src_key].shape)}; "
                                       f"{key} needs {tuple(target.shape)}")
                if first_nonfinite(sd, [src_key]) is not None:
                    raise WeightsError(f"{where}: tensor {src_key} {NONFINITE}")
                target.copy_(sd[src_key])
    return model
