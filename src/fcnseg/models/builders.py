"""Model builders in the manner of torchvision's segmentation builders: plain functions."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from torch import nn

from fcnseg.models.fcn import FCN8s, FCN16s, FCN32s

__all__ = ["MODEL_BUILDERS", "build_model", "fcn8s", "fcn8s_atonce", "fcn16s", "fcn32s"]

PathLike = str | os.PathLike[str]


def _finish(model: nn.Module, backbone_weights: PathLike | None, convention: str | None) -> Any:
    if backbone_weights is not None:
        from fcnseg.models.weights import load_backbone_weights

        load_backbone_weights(model, backbone_weights, convention=convention)
    return model


def fcn32s(
    num_classes: int = 21,
    *,
    geometry: str = "caffe",
    backbone_weights: PathLike | None = None,
    backbone_convention: str | None = None,
    **kwargs: Any,
) -> FCN32s:
    """FCN-32s on VGG16.

    Args:
        num_classes: output channels (21 for PASCAL VOC).
        geometry: ``"caffe"`` (the reference, with the 100-pixel pad and crops) or ``"same"``
            (no pad, no crops, fewer FLOPs; same parameters).
        backbone_weights: optional ImageNet VGG16 state-dict file to convolutionalize into the
            model (see :func:`fcnseg.models.load_backbone_weights`).
        backbone_convention: input convention of that file when it cannot be recognised.
        **kwargs: ``width`` and ``fc_channels`` (slimmer VGG-style trunks for CPUs), ``dropout``,
            ``input_convention``.
    """
    model = FCN32s(num_classes, geometry=geometry, **kwargs)
    return _finish(model, backbone_weights, backbone_convention)


def fcn16s(
    num_classes: int = 21,
    *,
    geometry: str = "caffe",
    backbone_weights: PathLike | None = None,
    backbone_convention: str | None = None,
    **kwargs: Any,
) -> FCN16s:
    """FCN-16s on VGG16 (arguments as :func:`fcn32s`)."""
    model = FCN16s(num_classes, geometry=geometry, **kwargs)
    return _finish(model, backbone_weights, backbone_convention)


def fcn8s(
    num_classes: int = 21,
    *,
    geometry: str = "caffe",
    backbone_weights: PathLike | None = None,
    backbone_convention: str | None = None,
    **kwargs: Any,
) -> FCN8s:
    """FCN-8s on VGG16 (arguments as :func:`fcn32s`)."""
    model = FCN8s(num_classes, geometry=geometry, **kwargs)
    return _finish(model, backbone_weights, backbone_convention)


def fcn8s_atonce(
    num_classes: int = 21,
    *,
    geometry: str = "caffe",
    backbone_weights: PathLike | None = None,
    backbone_convention: str | None = None,
    **kwargs: Any,
) -> FCN8s:
    """FCN-8s trained at once: pool4 scaled by 0.01 and pool3 by 0.0001 before scoring."""
    model = FCN8s(num_classes, geometry=geometry, skip_scales=(0.01, 0.0001), **kwargs)
    model.arch = "fcn8s_atonce"
    return _finish(model, backbone_weights, backbone_convention)


MODEL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "fcn32s": fcn32s,
    "fcn16s": fcn16s,
    "fcn8s": fcn8s,
    "fcn8s_atonce": fcn8s_atonce,
}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a model by name (``fcn32s``, ``fcn16s``, ``fcn8s``, ``fcn8s_atonce``, ...)."""
    key = name.replace("-", "_").lower()
    try:
        builder = MODEL_BUILDERS[key]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODEL_BUILDERS)}") from None
    return builder(**kwargs)
