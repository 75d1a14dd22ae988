"""The trunk protocol: what every FCN head needs from the network below it.

A trunk is an ``nn.Module`` that

- has ``out_channels``: ``{8: c8, 16: c16, 32: c32}``, the channels of its features at nominal
  strides 8, 16 and 32 (FCN-32s needs only 32; FCN-16s 16 and 32);
- returns from ``forward(x)`` those features, keyed by stride or as a sequence of three;
- optionally has ``coord_maps`` (a dict, or a method returning one): each feature's
  :class:`~fcnseg.models.geometry.CoordMap`. The default, ``CoordMap(s, 0)``, is what "same"
  padded stride-2 layers give (ResNets); unpadded 2×2/2 pools (VGG) give ``CoordMap(s, (s - 1)
  / 2)``, and dilated trunks declare their true scales.

Any module that follows it can be used with :func:`fcnseg.models.fcn_from_backbone`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fcnseg.models.geometry import CoordMap
from fcnseg.utils.validate import expect_mapping

#: The nominal strides of the features an FCN head fuses, finest first.
STRIDES = (8, 16, 32)


class BackboneError(ValueError):
    """A backbone does not follow the protocol, or its factory cannot be used."""


class ConvolutionalizedTrunk(nn.Module):
    """Base of the trunks ending in a classifier's fully connected layers as convolutions
    (VGG16, AlexNet): ``fc6``, ``fc7``, each with a ReLU and dropout ``drop6`` / ``drop7``;
    ``fully_connected`` names them for :func:`fcnseg.models.optimize`."""

    fully_connected = ("fc6", "fc7")

    def set_input(self, in_channels: int, width: float, fc_channels: int) -> None:
        """Record ``in_channels``; refuse a size that builds no network."""
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if width <= 0 or fc_channels < 1:
            raise ValueError(f"width must be > 0 and fc_channels >= 1, got {width}, {fc_channels}")
        self.in_channels = int(in_channels)

    def add_fully_connected(self, in_channels: int, fc_channels: int, kernel_size: int,
                            dropout: float, padding: int = 0) -> None:
        """Register ``fc6``, ``drop6``, ``fc7`` and ``drop7``, in that order."""
        self.fc6 = nn.Conv2d(in_channels, fc_channels, kernel_size, padding=padding)
        self.drop6 = nn.Dropout(dropout)
        self.fc7 = nn.Conv2d(fc_channels, fc_channels, 1)
        self.drop7 = nn.Dropout(dropout)

    def fully_connected_forward(self, x: torch.Tensor) -> torch.Tensor:
        """fc7's features from the last pool's."""
        x = self.drop6(F.relu(self.fc6(x), inplace=True))
        return self.drop7(F.relu(self.fc7(x), inplace=True))

    @staticmethod
    def init_convolutions(convs: Sequence[nn.Conv2d]) -> None:
        """He initialisation (fan out) and zero biases, in the order given."""
        for conv in convs:
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)


def check_batch(x: torch.Tensor, channels: int) -> None:
    """Refuse a batch that is not N×``channels``×H×W."""
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"expected an N×{channels}×H×W input, got shape {tuple(x.shape)}")


def trunk_channels(trunk: nn.Module, strides: Sequence[int],
                   needed_by: str = "the head") -> dict[int, int]:
    """The trunk's declared channel count at each of ``strides`` (``needed_by``: for errors)."""
    channels = expect_mapping(
        getattr(trunk, "out_channels", None), type(trunk).__name__,
        "an out_channels dict {8: c8, 16: c16, 32: c32} (see fcnseg.models.trunk)",
        error=BackboneError)
    missing = [s for s in strides if s not in channels]
    if missing:
        raise BackboneError(f"{needed_by} needs features at strides {list(strides)}; "
                            f"{type(trunk).__name__}.out_channels lacks {missing}")
    return {s: int(channels[s]) for s in strides}


def trunk_coord_maps(trunk: nn.Module) -> dict[int, CoordMap]:
    """The trunk's declared coordinate maps, defaulting to ``CoordMap(s, 0)`` per stride."""
    declared = getattr(trunk, "coord_maps", None)
    if callable(declared):
        declared = declared()
    maps = {s: CoordMap(float(s), 0.0) for s in STRIDES}
    if declared is not None:
        declared = expect_mapping(declared, f"{type(trunk).__name__}.coord_maps",
                                  "a dict {stride: CoordMap}", error=BackboneError)
        for s, m in declared.items():
            maps[int(s)] = m if isinstance(m, CoordMap) else CoordMap(*m)
    return maps


def trunk_features(trunk: nn.Module, output: Any,
                   channels: Mapping[int, int]) -> dict[int, torch.Tensor]:
    """The trunk's ``forward`` output as ``{stride: feature}``, checked against ``channels``."""
    if isinstance(output, Mapping):
        missing = [s for s in channels if s not in output]
        if missing:
            raise BackboneError(f"backbone returned features for strides {sorted(output)}, "
                                f"missing {missing}")
        feats = {s: output[s] for s in channels}
    elif isinstance(output, list | tuple):
        if len(output) != 3:
            raise BackboneError(f"backbone returned {len(output)} feature maps; a sequence must "
                                f"hold three, at strides 8, 16, 32")
        feats = {s: f for s, f in zip(STRIDES, output, strict=True) if s in channels}
    else:
        raise BackboneError(f"backbone returned {type(output).__name__}; expected a mapping "
                            f"{{8: ..., 16: ..., 32: ...}} or a sequence of three feature maps")
    for s, c in channels.items():
        if feats[s].shape[1] != c:
            raise BackboneError(f"{type(trunk).__name__} returned {feats[s].shape[1]} channels "
                                f"at stride {s}; its out_channels declares {c}")
    return feats
