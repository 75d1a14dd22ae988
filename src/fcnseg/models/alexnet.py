"""FCN-AlexNet: the reference's ``voc-fcn-alexnet`` and a torchvision-AlexNet variant.

``variant="caffe"`` (LRN, grouped conv2/4/5) keeps the reference's layer names at the top of the
state dict (``conv1`` … ``fc7``, ``score_fr``, ``upscore``: kernel 63, stride 32), so
``fcn-alexnet-pascal.caffemodel`` loads one to one. ``variant="torchvision"`` is torchvision's
single tower under ``backbone.``. Both keep the reference's geometry (conv1 padded by 100,
ceil-mode pools); no "same" geometry exists, as fc6's 6×6 kernel cannot be centred."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fcnseg.conventions import CAFFE_BGR, TORCHVISION_RGB, InputConvention
from fcnseg.models.geometry import CoordMap, trace
from fcnseg.models.head import AlignedUpsampling
from fcnseg.models.trunk import ConvolutionalizedTrunk, check_batch
from fcnseg.models.upsample import bilinear_upsampling
from fcnseg.models.weights import WeightsError, copy_imagenet_trunk, read_state_dict
from fcnseg.utils.typing import PathLike
from fcnseg.weightfiles.reference import ALEXNET_TRUNK

ALEXNET_VARIANTS = ("caffe", "torchvision")

#: (name, output channels, kernel, padding, groups) of the convolutions of each variant.
_CAFFE_CONVS = (("conv1", 96, 11, 100, 1), ("conv2", 256, 5, 2, 2), ("conv3", 384, 3, 1, 1),
                ("conv4", 384, 3, 1, 2), ("conv5", 256, 3, 1, 2))
_TORCHVISION_CONVS = (("0", 64, 11, 100, 1), ("3", 192, 5, 2, 1), ("6", 384, 3, 1, 1),
                      ("8", 256, 3, 1, 1), ("10", 256, 3, 1, 1))


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)  # Caffe's pools round up


class AlexNetTrunk(ConvolutionalizedTrunk):
    """AlexNet's convolutions and convolutionalized fc6/fc7 (of ``fc_channels``) in the trunk
    protocol: ``forward`` returns ``{32: fc7}``. ``variant`` ``"caffe"`` or ``"torchvision"``;
    ``width`` multiplies the convolution channels (the groups need even counts)."""

    def __init__(self, *, variant: str = "caffe", width: float = 1.0, fc_channels: int = 4096,
                 dropout: float = 0.5, in_channels: int = 3) -> None:
        super().__init__()
        if variant not in ALEXNET_VARIANTS:
            raise ValueError(f"variant must be one of {ALEXNET_VARIANTS}, got {variant!r}")
        self.set_input(in_channels, width, fc_channels)
        self.variant = variant
        specs = _CAFFE_CONVS if variant == "caffe" else _TORCHVISION_CONVS
        convs: list[nn.Conv2d] = []
        in_ch = self.in_channels
        for name, ch, k, pad, groups in specs:
            ch = max(groups, round(ch * width))
            if in_ch % groups or ch % groups:
                raise ValueError(f"width {width} gives {name} {in_ch}→{ch} channels, which its "
                                 f"{groups} groups cannot split evenly; choose a width giving "
                                 f"even channel counts")
            convs.append(nn.Conv2d(in_ch, ch, k, stride=4 if k == 11 else 1, padding=pad,
                                   groups=groups))
            in_ch = ch
        if variant == "caffe":
            self.conv1, self.conv2, self.conv3, self.conv4, self.conv5 = convs
            self.pool1, self.pool2, self.pool5 = _pool(), _pool(), _pool()
            self.norm1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
            self.norm2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        else:
            relu = nn.ReLU(inplace=True)
            layers: list[nn.Module] = [convs[0], relu, _pool(), convs[1], relu, _pool(),
                                       convs[2], relu, convs[3], relu, convs[4], relu, _pool()]
            self.features = nn.Sequential(*layers)
        self.add_fully_connected(in_ch, fc_channels, 6, dropout)
        self.out_channels = {32: fc_channels}
        self.init_convolutions([*convs, self.fc6, self.fc7])

    def spatial_layers(self) -> list[nn.Module]:
        """The convolutions and pools from the input to fc7, in order (for the geometry)."""
        if self.variant == "caffe":
            return [self.conv1, self.pool1, self.conv2, self.pool2, self.conv3, self.conv4,
                    self.conv5, self.pool5, self.fc6, self.fc7]
        return [m for m in self.features if isinstance(m, nn.Conv2d | nn.MaxPool2d)] + \
            [self.fc6, self.fc7]

    def coord_maps(self) -> dict[int, CoordMap]:
        """The coordinate map of fc7: ``CoordMap(32, 13)``."""
        return {32: trace(self.spatial_layers())}

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """``{32: fc7}`` of an N×C×H×W batch (C = ``in_channels``)."""
        check_batch(x, self.in_channels)
        if self.variant == "caffe":
            x = self.norm1(self.pool1(F.relu(self.conv1(x), inplace=True)))
            x = self.norm2(self.pool2(F.relu(self.conv2(x), inplace=True)))
            x = F.relu(self.conv3(x), inplace=True)
            x = F.relu(self.conv4(x), inplace=True)
            x = self.pool5(F.relu(self.conv5(x), inplace=True))
        else:
            x = self.features(x)
        return {32: self.fully_connected_forward(x)}

    def extra_repr(self) -> str:
        return f"variant={self.variant}"


def alexnet_upsampling(channels: int, src: CoordMap, target: CoordMap) -> AlignedUpsampling:
    """The reference's ``upscore``: a frozen bilinear deconvolution, kernel 63, stride 32."""
    return AlignedUpsampling(bilinear_upsampling(channels, 63, 32), src, target)


def torchvision_alexnet_key_map(model: nn.Module) -> dict[str, str]:
    """Our key → torchvision ``alexnet`` key: ``features.*`` unchanged, fc6 / fc7 from
    ``classifier.1`` / ``classifier.4``."""
    prefix = "backbone."
    mapping = {k: k.removeprefix(prefix) for k in model.state_dict()
               if k.startswith(prefix + "features.")}
    fc = (("fc6", "classifier.1"), ("fc7", "classifier.4"))
    return mapping | {f"{prefix}{ours}.{p}": f"{theirs}.{p}" for ours, theirs in fc
                      for p in ("weight", "bias")}


def load_alexnet_weights(model: nn.Module, path: PathLike, *,
                         convention: InputConvention | str = TORCHVISION_RGB) -> nn.Module:
    """Copy torchvision's ``alexnet-owt-7be5be79.pth`` into ``fcn_alexnet(variant=
    "torchvision")``, fc6/fc7 reshaped, ``classifier.6`` dropped, as
    :func:`fcnseg.models.load_backbone_weights` does."""
    path = Path(path)
    if "backbone.features.0.weight" not in model.state_dict():
        raise WeightsError(f"{path}: torchvision's AlexNet weights need "
                           f"fcn_alexnet(variant='torchvision')")
    mapping = torchvision_alexnet_key_map(model)
    return copy_imagenet_trunk(model, path, read_state_dict(path), mapping, "torchvision AlexNet",
                               convention)


#: The Caffe ImageNet AlexNet's (``bvlc_alexnet``) weighted layers that the FCN keeps.
CAFFE_ALEXNET_LAYERS = ALEXNET_TRUNK
CAFFE_ALEXNET_KEYS = {f"{n}.{kind}": f"{n}.{kind}" for n in CAFFE_ALEXNET_LAYERS
                      for kind in ("weight", "bias")}


def load_alexnet_caffe_weights(model: nn.Module, path: PathLike, *,
                               convention: InputConvention | str | None = None) -> nn.Module:
    """Copy Caffe's ImageNet AlexNet (``bvlc_alexnet.caffemodel``, or a state dict ``conv1.weight``
    … ``fc7.bias``) into an ``fcn_alexnet`` model, fc6/fc7 reshaped, fc8 dropped. The convention
    stays the model's unless ``convention`` is given (a multi-band model's conv1 is widened from
    it, Caffe's BGR by default)."""
    path = Path(path)
    if "conv1.weight" not in model.state_dict():
        raise WeightsError(f"{path}: Caffe AlexNet weights need fcn_alexnet(variant='caffe')")
    sd = read_alexnet_caffemodel(path) if path.suffix == ".caffemodel" else read_state_dict(path)
    return copy_imagenet_trunk(model, path, sd, CAFFE_ALEXNET_KEYS, "Caffe AlexNet",
                               convention or CAFFE_BGR, record=convention is not None)


def read_alexnet_caffemodel(path: PathLike) -> dict[str, torch.Tensor]:
    """A Caffe ImageNet AlexNet file as a state dict ``conv1.weight`` … ``fc7.bias`` (Caffe's
    shapes without legacy leading 1s)."""
    # Lazy: the .caffemodel reader needs protobuf, an optional extra (fcnseg[caffe]).
    from fcnseg.weightfiles.caffemodel import read_caffemodel

    layers = read_caffemodel(path).with_blobs()
    sd: dict[str, torch.Tensor] = {}
    for name in CAFFE_ALEXNET_LAYERS:
        if name not in layers:
            continue
        for kind, blob in zip(("weight", "bias"), layers[name].blobs, strict=False):
            shape = list(blob.shape)
            while len(shape) > {"weight": 2, "bias": 1}[kind] and shape[0] == 1:
                shape = shape[1:]
            sd[f"{name}.{kind}"] = torch.from_numpy(blob.data.reshape(shape).copy())
    return sd

