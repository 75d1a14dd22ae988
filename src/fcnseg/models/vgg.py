"""The VGG16 trunk of the reference FCNs, in two geometries, with or without batch norm.

``geometry="caffe"`` is the reference: conv1_1 padded by 100, ceil-mode pools, fc6 7×7 unpadded.
``"same"`` drops the 100-pixel pad and pads fc6 by 3 (no crops needed); both have the same
parameters. ``batch_norm=True`` adds ``bn{b}_{i}`` after each convolution (vgg16_bn)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fcnseg.models.geometry import CoordMap, trace
from fcnseg.models.trunk import ConvolutionalizedTrunk, check_batch

GEOMETRIES = ("caffe", "same")

#: VGG16's convolution blocks: (number of 3×3 convolutions, output channels).
VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


class VGG16Trunk(ConvolutionalizedTrunk):
    """VGG16 convolutions, pools and convolutionalized fc6/fc7 (of ``fc_channels``);
    ``width`` multiplies the convolution channels. ``forward`` returns ``{8: pool3, 16: pool4,
    32: fc7}``."""

    def __init__(self, *, geometry: str = "caffe", width: float = 1.0, fc_channels: int = 4096,
                 dropout: float = 0.5, batch_norm: bool = False, in_channels: int = 3) -> None:
        super().__init__()
        if geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
        self.set_input(in_channels, width, fc_channels)
        self.geometry = geometry
        self.batch_norm = bool(batch_norm)
        caffe = geometry == "caffe"
        in_ch = self.in_channels
        block_channels = []
        for b, (n_convs, ch) in enumerate(VGG16_BLOCKS, start=1):
            ch = max(1, round(ch * width))
            for i in range(1, n_convs + 1):
                # The reference's pad of 100 leaves any input a 7×7 pool5 for fc6.
                pad = 100 if (caffe and b == 1 and i == 1) else 1
                setattr(self, f"conv{b}_{i}", nn.Conv2d(in_ch, ch, 3, padding=pad))
                if batch_norm:
                    setattr(self, f"bn{b}_{i}", nn.BatchNorm2d(ch))
                in_ch = ch
            setattr(self, f"pool{b}", nn.MaxPool2d(2, stride=2, ceil_mode=True))
            block_channels.append(ch)
        self.add_fully_connected(in_ch, fc_channels, 7, dropout, padding=0 if caffe else 3)
        self.out_channels = {8: block_channels[2], 16: block_channels[3], 32: fc_channels}
        self.init_convolutions([m for m in self.children() if isinstance(m, nn.Conv2d)])

    def block_layers(self, last_block: int) -> list[nn.Module]:
        """The convolutions and pools of blocks 1 … ``last_block``, in order."""
        layers: list[nn.Module] = []
        for b, (n_convs, _) in enumerate(VGG16_BLOCKS[:last_block], start=1):
            layers += [getattr(self, f"conv{b}_{i}") for i in range(1, n_convs + 1)]
            layers.append(getattr(self, f"pool{b}"))
        return layers

    def coord_maps(self) -> dict[int, CoordMap]:
        """Coordinate maps of pool3, pool4 and fc7 (the features ``forward`` returns)."""
        return {8: trace(self.block_layers(3)), 16: trace(self.block_layers(4)),
                32: trace(self.block_layers(5) + [self.fc6, self.fc7])}

    def _block(self, x: torch.Tensor, b: int) -> torch.Tensor:
        for i in range(1, VGG16_BLOCKS[b - 1][0] + 1):
            x = getattr(self, f"conv{b}_{i}")(x)
            if self.batch_norm:
                x = getattr(self, f"bn{b}_{i}")(x)
            x = F.relu(x, inplace=True)
        return getattr(self, f"pool{b}")(x)

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """``{8: pool3, 16: pool4, 32: fc7}`` of an N×C×H×W batch (C = ``in_channels``)."""
        check_batch(x, self.in_channels)
        x = self._block(self._block(x, 1), 2)
        pool3 = self._block(x, 3)
        pool4 = self._block(pool3, 4)
        fc7 = self.fully_connected_forward(self._block(pool4, 5))
        return {8: pool3, 16: pool4, 32: fc7}

    def extra_repr(self) -> str:
        return f"geometry={self.geometry}, batch_norm={self.batch_norm}"
