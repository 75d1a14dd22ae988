"""ResNets (18/34/50/101) in plain torch keep torchvision's names: its ImageNet files load as is.
:func:`load_resnet_weights` loads them; :class:`ResNetBackbone` follows the trunk protocol."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from fcnseg.conventions import TORCHVISION_RGB, InputConvention, get_convention
from fcnseg.models.geometry import IDENTITY, CoordMap, trace
from fcnseg.models.trunk import check_batch
from fcnseg.models.weights import load_exactly, read_state_dict, widen_first_conv
from fcnseg.utils.typing import PathLike


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=dilation * (kernel // 2),
                     dilation=dilation, bias=False)


class ResidualBlock(nn.Module):
    """torchvision's ``BasicBlock`` (two 3×3 convolutions; dilation > 1 allowed) or, with
    ``bottleneck``, its ``Bottleneck`` (1×1 – 3×3 – 1×1, stride on the 3×3: ResNet V1.5).
    Each ``conv{i}`` is followed by ``bn{i}`` and a ReLU (the last after the residual sum)."""

    def __init__(self, in_ch: int, planes: int, *, bottleneck: bool, stride: int = 1,
                 downsample: nn.Module | None = None, dilation: int = 1,
                 first_dilation: int | None = None) -> None:
        super().__init__()
        first = first_dilation or dilation
        if bottleneck:
            convs = [_conv(in_ch, planes, 1), _conv(planes, planes, 3, stride, first),
                     _conv(planes, planes * 4, 1)]
        else:
            convs = [_conv(in_ch, planes, 3, stride, first),
                     _conv(planes, planes, 3, dilation=dilation)]
        for i, conv in enumerate(convs, start=1):
            self.add_module(f"conv{i}", conv)
            self.add_module(f"bn{i}", nn.BatchNorm2d(conv.out_channels))
        self.num_convs = len(convs)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def strided_layers(self) -> list[nn.Module]:
        """The layers that change the coordinate map."""
        return [getattr(self, f"conv{i}") for i in range(1, self.num_convs + 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = x
        for i in range(1, self.num_convs + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            if i < self.num_convs:
                out = self.relu(out)
        return self.relu(out + identity)


#: depth → (bottleneck blocks?, blocks per stage), as in the ResNet paper and torchvision.
RESNET_DEPTHS: dict[int, tuple[bool, tuple[int, int, int, int]]] = {
    18: (False, (2, 2, 2, 2)),
    34: (False, (3, 4, 6, 3)),
    50: (True, (3, 4, 6, 3)),
    101: (True, (3, 4, 23, 3)),
}


class ResNet(nn.Module):
    """A ResNet of ``depth`` 18, 34, 50 or 101 with torchvision's module names.

    ``include_top`` keeps ``avgpool`` and ``fc`` (of ``num_classes``);
    ``replace_stride_with_dilation`` (three booleans, layer2 … layer4) dilates instead of
    striding (``[False, True, True]``: output stride 8); ``base_channels`` is the stem width (64).
    """

    def __init__(self, depth: int = 50, *, num_classes: int = 1000, include_top: bool = True,
                 replace_stride_with_dilation: Sequence[bool] | None = None,
                 base_channels: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        if depth not in RESNET_DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_DEPTHS)}, got {depth}")
        dilate = list(replace_stride_with_dilation or (False, False, False))
        if len(dilate) != 3:
            raise ValueError("replace_stride_with_dilation needs three booleans (layer2, layer3, "
                             f"layer4), got {replace_stride_with_dilation!r}")
        if base_channels < 1:
            raise ValueError(f"base_channels must be >= 1, got {base_channels}")
        self._bottleneck, counts = RESNET_DEPTHS[depth]
        self.depth = depth
        self.replace_stride_with_dilation = [bool(d) for d in dilate]
        self._in_ch = base_channels
        self._dilation = 1
        self.conv1 = nn.Conv2d(in_channels, base_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(base_channels, counts[0])
        self.layer2 = self._make_layer(base_channels * 2, counts[1], 2, dilate[0])
        self.layer3 = self._make_layer(base_channels * 4, counts[2], 2, dilate[1])
        self.layer4 = self._make_layer(base_channels * 8, counts[3], 2, dilate[2])
        #: output channels of layer1 … layer4
        expansion = 4 if self._bottleneck else 1
        self.stage_channels = tuple(base_channels * m * expansion for m in (1, 2, 4, 8))
        if include_top:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(self.stage_channels[-1], num_classes)
        for m in self.modules():  # BatchNorm starts at weight 1, bias 0 by itself
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes: int, blocks: int, stride: int = 1,
                    dilate: bool = False) -> nn.Sequential:
        # torchvision's rule, kept for identical outputs: the first block of a dilated stage
        # keeps the previous dilation.
        previous_dilation = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        out_ch = planes * (4 if self._bottleneck else 1)
        downsample = None
        if stride != 1 or self._in_ch != out_ch:
            downsample = nn.Sequential(_conv(self._in_ch, out_ch, 1, stride),
                                       nn.BatchNorm2d(out_ch))
        layers = [ResidualBlock(self._in_ch, planes, bottleneck=self._bottleneck, stride=stride,
                                downsample=downsample, dilation=self._dilation,
                                first_dilation=previous_dilation)]
        self._in_ch = out_ch
        layers += [ResidualBlock(out_ch, planes, bottleneck=self._bottleneck,
                                 dilation=self._dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """conv1 – bn1 – relu – maxpool (stride 4)."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of layer1 … layer4 for an input batch."""
        check_batch(x, self.conv1.in_channels)
        out = [self.layer1(self.stem(x))]
        for layer in (self.layer2, self.layer3, self.layer4):
            out.append(layer(out[-1]))
        return out

    def coord_maps(self) -> list[CoordMap]:
        """Coordinate maps of layer1 … layer4 (feature index → input pixel)."""
        m = trace([self.conv1, self.maxpool], IDENTITY)
        maps = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for blk in layer:
                m = trace(blk.strided_layers(), m)
            maps.append(m)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (with ``include_top``), else the layer4 features."""
        x = self.stages(x)[-1]
        if not hasattr(self, "fc"):
            return x
        return self.fc(torch.flatten(self.avgpool(x), 1))


class ResNetBackbone(ResNet):
    """A ResNet without classifier, in the trunk protocol: ``forward`` returns ``{8: layer2,
    16: layer3, 32: layer4}`` (nominal strides; ``coord_maps()`` gives the true placement)."""

    def __init__(self, depth: int = 50, *,
                 replace_stride_with_dilation: Sequence[bool] | None = None,
                 base_channels: int = 64, in_channels: int = 3) -> None:
        super().__init__(depth, include_top=False,
                         replace_stride_with_dilation=replace_stride_with_dilation,
                         base_channels=base_channels, in_channels=in_channels)
        self.out_channels = {8: self.stage_channels[1], 16: self.stage_channels[2],
                             32: self.stage_channels[3]}

    def coord_maps(self) -> dict[int, CoordMap]:  # type: ignore[override]
        """Coordinate maps of the features returned by ``forward``, by nominal stride."""
        maps = ResNet.coord_maps(self)
        return {8: maps[1], 16: maps[2], 32: maps[3]}

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:  # type: ignore[override]
        _, c8, c16, c32 = self.stages(x)
        return {8: c8, 16: c16, 32: c32}


def load_resnet_weights(module: nn.Module, path: PathLike, *, prefix: str | None = None,
                        convention: InputConvention | str = TORCHVISION_RGB,
                        bands: Sequence[str] | None = None) -> nn.Module:
    """Load torchvision-layout ResNet ImageNet weights (``resnet50-*.pth`` …) from a local file.

    ``module`` is a :class:`ResNet`, or holds one as ``backbone``, ``trunk`` or at ``prefix``.
    ``fc.*`` is skipped without a classifier; every other key must fit (errors name the file and
    keys). ``convention`` goes to ``module.input_convention``; a ResNet of other than 3 input
    channels gets the colour ``conv1`` widened to its ``bands`` instead
    (:func:`~fcnseg.models.weights.band_conv1`).
    """
    path = Path(path)
    if prefix is None:
        prefix = next((f"{name}." for name in ("backbone", "trunk")
                       if isinstance(getattr(module, name, None), ResNet)), "")
    net = module.get_submodule(prefix.rstrip(".")) if prefix else module
    if not isinstance(net, ResNet):
        raise TypeError(f"load_resnet_weights: {type(net).__name__} is not a ResNet "
                        f"(prefix {prefix!r})")
    sd = read_state_dict(path)
    if not hasattr(net, "fc"):
        sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    wide = net.conv1.in_channels != 3
    if wide:
        if bands is None or len(bands) != net.conv1.in_channels:
            raise ValueError(f"load_resnet_weights: the ResNet takes {net.conv1.in_channels} "
                             f"input channels: name its bands to widen the ImageNet conv1")
        # conv1 has no bias; the offset of torchvision's standardised RGB is 0.
        widen_first_conv(sd, bands, convention, "conv1.weight")
    load_exactly(path, net, sd, f" (expected torchvision's ResNet-{net.depth} layout)")
    if not wide:
        module.input_convention = get_convention(convention)
    return module
