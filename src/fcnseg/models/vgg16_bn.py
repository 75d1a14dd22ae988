"""VGG16 with batch normalisation as the FCN trunk: loading torchvision's ``vgg16_bn`` weights
(``vgg16_bn-6c64b313.pth``: each convolution's BatchNorm at the next ``features`` index)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from fcnseg.conventions import TORCHVISION_RGB, InputConvention
from fcnseg.models.weights import (
    WeightsError,
    copy_imagenet_trunk,
    read_state_dict,
    vgg16_torchvision_keys,
)
from fcnseg.utils.typing import PathLike


def load_vgg16_bn_weights(model: nn.Module, path: PathLike, *,
                          convention: InputConvention | str = TORCHVISION_RGB) -> nn.Module:
    """Copy torchvision ``vgg16_bn`` ImageNet weights into an FCN built with ``batch_norm=True``,
    as :func:`fcnseg.models.load_backbone_weights` does, each BatchNorm to ``bn{b}_{i}``."""
    path = Path(path)
    if not getattr(model, "batch_norm", False):
        raise WeightsError(f"{path}: vgg16_bn weights need a model built with batch_norm=True")
    return copy_imagenet_trunk(model, path, read_state_dict(path),
                               vgg16_torchvision_keys(batch_norm=True), "vgg16_bn", convention)
