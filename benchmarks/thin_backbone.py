"""A small trunk for thin structures, used by ``int8_inference.py`` through fcnseg's
bring-your-own-backbone interface (:func:`fcnseg.models.fcn_from_backbone`).

FCN-8s scores a stride-8 grid and upsamples it bilinearly: between two grid points the scores
are linear, so a 2-4 pixel line lying between them cannot be drawn 2-4 pixels wide. This trunk
gives the same skip head (three levels, each scored, upsampled ×2 and added to the next) its
features at strides 8, 4 and 2 instead of 32, 16 and 8; dilated 3×3 convolutions at stride 8
keep a receptive field of ~240 pixels, wide enough to tell an arc from a line. Convolutions are
followed by batch normalisation, so it trains from scratch in minutes on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fcnseg.models import backbone_factory
from fcnseg.models.geometry import CoordMap


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation,
                                   bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FineTrunk(nn.Module):
    """Features at strides 2, 4 and 8 for the FCN head's levels "8", "16" and "32"."""

    def __init__(self, channels: Sequence[int] = (16, 32, 64),
                 dilations: Sequence[int] = (1, 2, 4, 8)) -> None:
        super().__init__()
        c2, c4, c8 = (int(c) for c in channels)
        self.stage2 = nn.Sequential(_conv(3, c2), _conv(c2, c2, stride=2))
        self.stage4 = nn.Sequential(_conv(c2, c4, stride=2), _conv(c4, c4))
        self.stage8 = nn.Sequential(_conv(c4, c8, stride=2),
                                    *(_conv(c8, c8, dilation=int(d)) for d in dilations))
        self.out_channels = {8: c2, 16: c4, 32: c8}

    def coord_maps(self) -> dict[int, CoordMap]:
        # 3×3 stride-2 convolutions padded by 1: index i lies on input pixel s·i.
        return {8: CoordMap(2.0, 0.0), 16: CoordMap(4.0, 0.0), 32: CoordMap(8.0, 0.0)}

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        f2 = self.stage2(x)
        f4 = self.stage4(f2)
        return {8: f2, 16: f4, 32: self.stage8(f4)}


@backbone_factory
def fine_trunk(channels: Sequence[int] = (16, 32, 64),
               dilations: Sequence[int] = (1, 2, 4, 8)) -> FineTrunk:
    """The trunk (a checkpoint records this factory and its arguments)."""
    return FineTrunk(channels, dilations)
