"""An FCN: preprocessing, a trunk, one skip head (or several), and the identity that rebuilds it.

Its state-dict keys are the reference's (:mod:`fcnseg.models.keymap`): the VGG16 trunk's layers
at the top level (``conv1_1.weight`` … ``fc7.bias``), other trunks under ``backbone.``; the
heads' layers under their :class:`~fcnseg.models.head.HeadNames`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from fcnseg.models.head import VGG_NAMES, HeadNames, SkipHead, reference_upsampling
from fcnseg.models.identity import DescribedModel, ModelIdentity
from fcnseg.models.keymap import KeyMap, use_reference_keys
from fcnseg.models.preprocess import Preprocess
from fcnseg.models.trunk import trunk_channels, trunk_coord_maps, trunk_features
from fcnseg.models.vgg import VGG16Trunk
from fcnseg.utils.keyed import keyed


class FCN(DescribedModel, nn.Module):
    """A trunk (following the trunk protocol) and its FCN head(s).

    ``heads``: one :class:`SkipHead`, or ``{name: head}`` (``forward`` then returns ``{name:
    scores}``); ``identity``: what rebuilds the model; ``trunk_name``: the trunk's state-dict
    prefix, or None for the top level; ``input_names``: the modalities, in stacking order;
    ``layer_names``: top-level trunk layers renamed (``{"conv1_1": "conv1_1_bgrd"}``).

    ``forward(x)`` returns N×num_classes×H×W scores for N×3×H×W raw pixels (RGB, uint8 or
    float 0-255, which ``model.preprocess`` normalises) or a dict of them by input name. Not
    torchvision's float 0-1, which :meth:`Segmenter.predict <fcnseg.inference.Segmenter.predict>`
    takes: ``model(x / 255)`` is not checked and gives a near-black image.
    """

    def __init__(self, trunk: nn.Module, heads: SkipHead | Mapping[str, SkipHead],
                 identity: ModelIdentity, *, trunk_name: str | None = "backbone",
                 input_names: Sequence[str] = ("color",),
                 layer_names: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.input_names = tuple(input_names)
        #: Raw pixels → the network's input (see :mod:`fcnseg.models.preprocess`).
        self.preprocess: nn.Module = Preprocess(self.input_names, identity.input_convention)
        self._single = isinstance(heads, SkipHead)
        self.trunk = trunk
        self.heads = nn.ModuleDict({"out": heads} if self._single else dict(heads))
        self.identity = identity
        use_reference_keys(self, _reference_names(self.heads, trunk_name, layer_names))
        self._strides = sorted({s for h in self.heads.values() for s in h.strides})
        self._channels = trunk_channels(trunk, self._strides, "the heads")

    # -- description ---------------------------------------------------------------------------
    @property
    def head(self) -> SkipHead:
        """The head (of a single-head model)."""
        return next(iter(self.heads.values()))

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def variant(self) -> str:
        return self.head.variant

    @property
    def strides(self) -> tuple[int, ...]:
        return self.head.strides

    @property
    def geometry(self) -> str | None:
        """The VGG16 trunk's geometry (``"caffe"`` or ``"same"``); None for other trunks."""
        return getattr(self.trunk, "geometry", None)

    @property
    def batch_norm(self) -> bool:
        return bool(getattr(self.trunk, "batch_norm", False))

    @property
    def offsets(self) -> dict[str, int]:
        """The Caffe reference's crop offsets (see :meth:`SkipHead.crop_offsets`)."""
        return self.head.crop_offsets()

    def coord_maps(self) -> dict[int, Any]:
        """The trunk's coordinate maps by stride."""
        return trunk_coord_maps(self.trunk)

    def upsampling_layers(self) -> list[nn.ConvTranspose2d]:
        """The bilinear deconvolutions (frozen unless their ``requires_grad`` is set)."""
        return [layer for h in self.heads.values() for layer in h.upsampling_layers()]

    def extra_repr(self) -> str:
        geometry = f", geometry={self.geometry}" if self.geometry else ""
        return f"arch={self.arch}{geometry}, num_classes={self.num_classes}"

    @property
    def head_classes(self) -> dict[str, int]:
        """Output channels by head name (``{"out": C}`` for a single-head model)."""
        return {name: head.num_classes for name, head in self.heads.items()}

    # -- forward -------------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """The trunk's features ``{stride: tensor}`` of an input batch."""
        if x.dim() != 4:
            raise ValueError(f"expected a batch N×C×H×W (N×3×H×W for RGB images), got shape "
                             f"{tuple(x.shape)}")
        return trunk_features(self.trunk, self.trunk(x), self._channels)

    def forward(self, x: torch.Tensor | Mapping[str, torch.Tensor]
                ) -> torch.Tensor | dict[str, torch.Tensor]:
        x = stack_inputs(self.preprocess(x), self.input_names)
        features = self.features(x)
        size = x.shape[-2:]
        if self._single:
            return self.head(features, size)
        return {name: head(features, size) for name, head in self.heads.items()}


def _reference_names(heads: Mapping[str, SkipHead], trunk_name: str | None,
                     layer_names: Mapping[str, str] | None) -> KeyMap:
    """The key map of an FCN: its trunk at the top level or under ``trunk_name``, its heads'."""
    if trunk_name is None:
        pairs = [("trunk.", "")] + [(f"trunk.{old}.", f"{new}.")
                                    for old, new in (layer_names or {}).items()]
    else:
        pairs = [("trunk.", f"{trunk_name}.")]
    for key, head in heads.items():
        pairs += [(f"heads.{key}.{path}.", f"{name}.")
                  for path, name in head.reference_names().items()]
    return KeyMap(pairs)


def require_inputs(x: Mapping[str, torch.Tensor], input_names: Sequence[str]) -> None:
    """A ValueError naming every input the model takes and those ``x`` lacks, or holds of
    no modality at all, if any (other modalities' inputs are for other models: left alone)."""
    missing = [n for n in input_names if n not in x]
    if missing or (unknown := sorted(set(x) - {*input_names, "color", "hha", "depth"})):
        what = f"lacks {missing}" if missing else f"holds {unknown}, no modality"
        raise ValueError(f"the model takes inputs {list(input_names)}; the input dict {what} "
                         f"(it has {sorted(x)})")


def stack_inputs(x: torch.Tensor | Mapping[str, torch.Tensor],
                 input_names: Sequence[str]) -> torch.Tensor:
    """A tensor input as it is; a dict input's tensors for ``input_names`` stacked along the
    channels (a missing one is a ValueError naming it)."""
    inputs = keyed(x)
    if None in inputs:
        return inputs[None]
    require_inputs(inputs, input_names)
    if len(input_names) == 1:
        return inputs[input_names[0]]
    return torch.cat([inputs[n] for n in input_names], dim=1)


def vgg16_head(trunk: VGG16Trunk, num_classes: int, variant: str, *,
               skip_scales: Sequence[float] = (1.0, 1.0), names: HeadNames = VGG_NAMES
               ) -> SkipHead:
    """The reference's FCN-``variant`` head on a VGG16 trunk (its layer names and upsampling)."""
    upsampling = partial(reference_upsampling, pad_to_target=trunk.geometry == "same")
    return SkipHead(trunk.out_channels, trunk.coord_maps(), num_classes, variant=variant,
                    upsampling=upsampling, skip_scales=skip_scales, names=names)


def vgg16_fcn(trunk: VGG16Trunk, num_classes: int, variant: str, identity: ModelIdentity, *,
              skip_scales: Sequence[float] = (1.0, 1.0),
              input_names: Sequence[str] = ("color",)) -> FCN:
    """FCN-``variant`` on a VGG16 trunk, its layers at the top level as in the reference."""
    head = vgg16_head(trunk, num_classes, variant, skip_scales=skip_scales)
    return FCN(trunk, head, identity, trunk_name=None, input_names=input_names)
