"""FCN-GoogLeNet is the paper's Table 1 net on an Inception v1 trunk.
The trunk has torchvision's ``googlenet`` names, up to ``inception5b`` (its 3×3 where the paper's
third branch has 5×5; ``aux1``, ``aux2`` and ``fc`` dropped, as in the paper). The head scores
inception3b, 4e and 5b (strides 8, 16, 32) with :func:`~fcnseg.models.head.edge_upsampling`."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fcnseg.conventions import TORCHVISION_RGB, InputConvention, get_convention
from fcnseg.models.geometry import CoordMap, output_size, trace
from fcnseg.models.head import HeadNames
from fcnseg.models.trunk import check_batch
from fcnseg.models.weights import (
    IMAGENET_RGB_MEAN,
    IMAGENET_RGB_STD,
    WeightsError,
    copy_imagenet_trunk,
    model_bands,
    read_state_dict,
)
from fcnseg.utils.typing import PathLike

#: torchvision's Inception blocks: (in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj).
INCEPTION_CONFIGS: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}

#: The FCN head's layers: score_fr on inception5b, the skips named by the block they score.
GOOGLENET_NAMES = HeadNames(
    score={32: "score_fr", 16: "score_inception4e", 8: "score_inception3b"},
    up={(32, 16): "upscore2", (16, 8): "upscore_inception4e"},
    final={"32s": "upscore", "16s": "upscore16", "8s": "upscore8"},
)

#: The input torchvision's GoogLeNet weights were trained on: RGB scaled to [-1, 1].
GOOGLENET_INPUT = InputConvention(name="torchvision_googlenet", channel_order="RGB",
                                  scale=1.0 / 255.0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


class BasicConv2d(nn.Module):
    """Convolution (no bias), BatchNorm (eps 0.001), ReLU: torchvision's ``BasicConv2d``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """torchvision's Inception block: four branches concatenated along the channels."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int,
                 ch5x5: int, pool_proj: int) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, 1),
                                     BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, 1),
                                     BasicConv2d(ch5x5red, ch5x5, 3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNetTrunk(nn.Module):
    """Inception v1 up to inception5b in the trunk protocol: ``forward`` returns ``{8:
    inception3b, 16: inception4e, 32: inception5b}``.

    ``width`` multiplies every channel count; ``transform_input`` rescales ImageNet-normalised
    RGB to [-1, 1] inside the model (colour only: a multi-band trunk's conv1 is scaled when
    loading instead). Inputs under the 15-pixel minimum are zero-padded at the bottom and right.
    """

    def __init__(self, *, width: float = 1.0, transform_input: bool = True,
                 in_channels: int = 3) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        self.in_channels = int(in_channels)
        self.transform_input = bool(transform_input) and self.in_channels == 3

        def ch(c: int) -> int:
            return max(1, round(c * width))

        self.conv1 = BasicConv2d(self.in_channels, ch(64), 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(ch(64), ch(64), 1)
        self.conv3 = BasicConv2d(ch(64), ch(192), 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        in_ch = ch(192)
        for name, (_, *branches) in INCEPTION_CONFIGS.items():
            block = Inception(in_ch, *(ch(c) for c in branches))
            setattr(self, name, block)
            in_ch = block.out_channels
            if name == "inception3b":
                self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            elif name == "inception4e":
                self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.out_channels = {8: self.inception3b.out_channels,
                             16: self.inception4e.out_channels,
                             32: self.inception5b.out_channels}
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # torchvision: truncated normal, std 0.01
                nn.init.trunc_normal_(m.weight, std=0.01, a=-2, b=2)
        self.min_input = next(n for n in range(1, 1024)
                              if output_size(n, self.strided_layers(32)) >= 1)

    def strided_layers(self, stride: int) -> list[nn.Module]:
        """The layers that move the grid, from the input to the feature at ``stride``."""
        layers: list[nn.Module] = [self.conv1.conv, self.maxpool1, self.conv3.conv, self.maxpool2]
        if stride >= 16:
            layers.append(self.maxpool3)
        if stride >= 32:
            layers.append(self.maxpool4)
        return layers

    def coord_maps(self) -> dict[int, CoordMap]:
        """Maps of inception3b, 4e and 5b: ``CoordMap(8, 6)``, ``(16, 14)``, ``(32, 22)``."""
        return {s: trace(self.strided_layers(s)) for s in (8, 16, 32)}

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """``{8: inception3b, 16: inception4e, 32: inception5b}`` of an N×C×H×W batch."""
        check_batch(x, self.in_channels)
        if self.transform_input:  # ImageNet mean/std normalisation → (x - 0.5) / 0.5
            scale = x.new_tensor([s / 0.5 for s in IMAGENET_RGB_STD]).view(1, 3, 1, 1)
            shift = x.new_tensor([(m - 0.5) / 0.5 for m in IMAGENET_RGB_MEAN]).view(1, 3, 1, 1)
            x = x * scale + shift
        short_h, short_w = self.min_input - x.shape[-2], self.min_input - x.shape[-1]
        if short_h > 0 or short_w > 0:
            x = F.pad(x, (0, max(0, short_w), 0, max(0, short_h)))
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        s8 = self.inception3b(self.inception3a(x))
        s16 = self.maxpool3(s8)
        for name in ("inception4a", "inception4b", "inception4c", "inception4d", "inception4e"):
            s16 = getattr(self, name)(s16)
        s32 = self.inception5b(self.inception5a(self.maxpool4(s16)))
        return {8: s8, 16: s16, 32: s32}

    def extra_repr(self) -> str:
        return f"transform_input={self.transform_input}"


#: Keys of torchvision's ``googlenet`` file that the FCN does without.
DROPPED_PREFIXES = ("aux1.", "aux2.", "fc.")


def load_googlenet_weights(model: nn.Module, path: PathLike, *,
                           convention: InputConvention | str = TORCHVISION_RGB) -> nn.Module:
    """Copy torchvision's ImageNet ``googlenet-1378be20.pth`` into an FCN-GoogLeNet, one to one
    (``aux1``, ``aux2``, ``fc`` dropped), recording ``convention``; a multi-band model gets conv1
    widened from the [-1, 1] input (:data:`GOOGLENET_INPUT`) instead."""
    path = Path(path)
    layers = {"conv1", "conv2", "conv3", *INCEPTION_CONFIGS}
    trunk_keys = [k for k in model.state_dict() if k.split(".", 1)[0] in layers]
    if not trunk_keys:
        raise WeightsError(f"{path}: GoogLeNet weights need an FCN-GoogLeNet model")
    sd = read_state_dict(path)
    unexpected = sorted(k for k in sd if k not in trunk_keys and not k.startswith(DROPPED_PREFIXES))
    if unexpected:
        raise WeightsError(f"{path}: not torchvision's GoogLeNet; unexpected keys "
                           f"{unexpected[:12]}")
    trained_on = get_convention(convention)
    # The builder passes a multi-band model's own convention when none is given.
    if model_bands(model) is not None and (trained_on.bands is not None
                                           or trained_on.name == TORCHVISION_RGB.name):
        trained_on = GOOGLENET_INPUT
    return copy_imagenet_trunk(model, path, sd, {k: k for k in trunk_keys},
                               "torchvision GoogLeNet", trained_on)
