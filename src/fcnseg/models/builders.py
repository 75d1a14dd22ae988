"""Model builders in the manner of torchvision's segmentation builders: plain functions."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from torch import nn

from fcnseg.models.fcn import FCN8s, FCN16s, FCN32s

__all__ = [
    "MODEL_BUILDERS",
    "VGG_TRUNK_OPTIONS",
    "build_model",
    "fcn8s",
    "fcn8s_atonce",
    "fcn8s_resnet50",
    "fcn8s_vgg16_bn",
    "fcn16s",
    "fcn16s_resnet50",
    "fcn16s_vgg16_bn",
    "fcn32s",
    "fcn32s_resnet50",
    "fcn32s_vgg16_bn",
    "fcn_resnet50",
    "fcn_resnet101",
    "fcn_resnet_skip",
    "uses_vgg_trunk",
]

PathLike = str | os.PathLike[str]


def _finish(model: nn.Module, backbone_weights: PathLike | None, convention: str | None) -> Any:
    if backbone_weights is not None and getattr(model, "batch_norm", False):
        from fcnseg.models.vgg16_bn import load_vgg16_bn_weights

        load_vgg16_bn_weights(model, backbone_weights, convention=convention or "torchvision_rgb")
    elif backbone_weights is not None:
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


# -- VGG16 with batch normalisation ------------------------------------------------------------
def _vgg16_bn_builder(base: Callable[..., nn.Module], arch: str) -> Callable[..., nn.Module]:
    def builder(
        num_classes: int = 21,
        *,
        geometry: str = "caffe",
        backbone_weights: PathLike | None = None,
        backbone_convention: str | None = None,
        input_convention: str = "torchvision_rgb",
        **kwargs: Any,
    ) -> nn.Module:
        kwargs.pop("batch_norm", None)  # recorded in build_kwargs; always True here
        model = base(num_classes, geometry=geometry, batch_norm=True,
                     input_convention=input_convention, backbone_weights=backbone_weights,
                     backbone_convention=backbone_convention, **kwargs)
        model.arch = arch
        return model

    builder.__name__ = builder.__qualname__ = arch
    builder.__doc__ = (
        f"{base.__name__} on VGG16 with batch normalisation (torchvision's vgg16_bn).\n\n"
        f"Arguments as :func:`{base.__name__}`; ``backbone_weights`` is a torchvision "
        f"``vgg16_bn-*.pth`` file (RGB convention), see "
        f":func:`fcnseg.models.vgg16_bn.load_vgg16_bn_weights`."
    )
    return builder


fcn32s_vgg16_bn = _vgg16_bn_builder(fcn32s, "fcn32s_vgg16_bn")
fcn16s_vgg16_bn = _vgg16_bn_builder(fcn16s, "fcn16s_vgg16_bn")
fcn8s_vgg16_bn = _vgg16_bn_builder(fcn8s, "fcn8s_vgg16_bn")


# -- ResNet backbones with FCN-32s/16s/8s heads ------------------------------------------------
def fcn_resnet_skip(
    variant: str,
    depth: int,
    num_classes: int = 21,
    *,
    backbone_weights: PathLike | None = None,
    backbone_convention: str | None = None,
    replace_stride_with_dilation: list[bool] | None = None,
    base_channels: int = 64,
    input_convention: str = "torchvision_rgb",
) -> nn.Module:
    """FCN-``variant`` heads (``"32s"``, ``"16s"``, ``"8s"``) on layer4/layer3/layer2 of a ResNet.

    Args:
        variant: which skip levels to fuse.
        depth: 18, 34, 50 or 101.
        num_classes: output channels.
        backbone_weights: a torchvision ImageNet ResNet file (``resnet50-*.pth`` ...) to load
            into the backbone (see :func:`fcnseg.models.resnet.load_resnet_weights`).
        backbone_convention: input convention of that file (default: ``input_convention``).
        replace_stride_with_dilation: dilate layer2/3/4 instead of striding (the heads then
            fuse maps of equal resolution).
        base_channels: stem width (64 in torchvision); smaller for light CPU models.
        input_convention: pixel convention of the model (torchvision's RGB).
    """
    from fcnseg.models.backbone import BackboneFCN
    from fcnseg.models.resnet import ResNetBackbone, load_resnet_weights

    dilation = None if replace_stride_with_dilation is None else \
        [bool(d) for d in replace_stride_with_dilation]
    backbone = ResNetBackbone(depth, replace_stride_with_dilation=dilation,
                              base_channels=base_channels)
    model = BackboneFCN(
        backbone, num_classes, variant=variant, arch=f"fcn{variant}_resnet{depth}",
        build_kwargs={"num_classes": num_classes, "replace_stride_with_dilation": dilation,
                      "base_channels": base_channels},
        input_convention=input_convention,
    )
    if backbone_weights is not None:
        load_resnet_weights(model, backbone_weights,
                            convention=backbone_convention or input_convention)
    return model


def _resnet_skip_builder(variant: str, depth: int) -> Callable[..., nn.Module]:
    def builder(num_classes: int = 21, **kwargs: Any) -> nn.Module:
        return fcn_resnet_skip(variant, depth, num_classes, **kwargs)

    builder.__name__ = builder.__qualname__ = f"fcn{variant}_resnet{depth}"
    builder.__doc__ = (f"FCN-{variant} on ResNet-{depth}; arguments as "
                       f":func:`fcn_resnet_skip`.")
    return builder


_RESNET_SKIP_BUILDERS = {
    f"fcn{v}_resnet{d}": _resnet_skip_builder(v, d)
    for d in (18, 34, 50, 101) for v in ("32s", "16s", "8s")
}
fcn32s_resnet50 = _RESNET_SKIP_BUILDERS["fcn32s_resnet50"]
fcn16s_resnet50 = _RESNET_SKIP_BUILDERS["fcn16s_resnet50"]
fcn8s_resnet50 = _RESNET_SKIP_BUILDERS["fcn8s_resnet50"]


# -- torchvision's FCN variant ------------------------------------------------------------------
def _torchvision_fcn(
    depth: int,
    num_classes: int = 21,
    *,
    aux_loss: bool = False,
    output: str = "tensor",
    weights: PathLike | None = None,
    backbone_weights: PathLike | None = None,
    backbone_convention: str | None = None,
    base_channels: int = 64,
    replace_stride_with_dilation: list[bool] | None = None,
    input_convention: str = "torchvision_rgb",
) -> nn.Module:
    from fcnseg.models.resnet import load_resnet_weights
    from fcnseg.models.torchvision_fcn import TorchvisionFCN, load_torchvision_fcn_weights

    model = TorchvisionFCN(
        num_classes, depth=depth, aux_loss=aux_loss, output=output, base_channels=base_channels,
        replace_stride_with_dilation=replace_stride_with_dilation or [False, True, True],
        input_convention=input_convention,
    )
    if backbone_weights is not None:
        load_resnet_weights(model, backbone_weights,
                            convention=backbone_convention or input_convention)
    if weights is not None:
        load_torchvision_fcn_weights(model, weights)
    return model


def fcn_resnet50(num_classes: int = 21, **kwargs: Any) -> nn.Module:
    """torchvision's FCN-ResNet50: dilated ResNet-50 (output stride 8), FCNHead, bilinear resize.

    Args:
        num_classes: output channels (21 for torchvision's published COCO-VOC weights).
        aux_loss: add the auxiliary FCNHead on layer3 (``aux_classifier``).
        output: ``"tensor"`` (logits, this package's convention) or ``"dict"``
            (torchvision's ``{"out", "aux"}``).
        weights: a torchvision FCN checkpoint (``fcn_resnet50_coco-1167a1af.pth``), loaded with
            torchvision's keys unchanged.
        backbone_weights: a torchvision ImageNet ``resnet50-*.pth`` for the backbone only.
        backbone_convention: its input convention (default: ``input_convention``).
        base_channels, replace_stride_with_dilation: see :class:`fcnseg.models.resnet.ResNet`.
        input_convention: pixel convention of the model (torchvision's RGB).
    """
    return _torchvision_fcn(50, num_classes, **kwargs)


def fcn_resnet101(num_classes: int = 21, **kwargs: Any) -> nn.Module:
    """torchvision's FCN-ResNet101 (arguments as :func:`fcn_resnet50`)."""
    return _torchvision_fcn(101, num_classes, **kwargs)


def _fcn_custom_backbone(num_classes: int = 21, **kwargs: Any) -> nn.Module:
    from fcnseg.models.backbone import fcn_custom_backbone

    return fcn_custom_backbone(num_classes, **kwargs)


MODEL_BUILDERS.update({
    "fcn32s_vgg16_bn": fcn32s_vgg16_bn,
    "fcn16s_vgg16_bn": fcn16s_vgg16_bn,
    "fcn8s_vgg16_bn": fcn8s_vgg16_bn,
    **_RESNET_SKIP_BUILDERS,
    "fcn_resnet50": fcn_resnet50,
    "fcn_resnet101": fcn_resnet101,
    "fcn_custom_backbone": _fcn_custom_backbone,
})


#: Builder arguments that only the VGG16 trunks (fcn32s ... fcn8s_vgg16_bn) take.
VGG_TRUNK_OPTIONS = ("geometry", "width", "fc_channels", "dropout")


def uses_vgg_trunk(name: str) -> bool:
    """Whether model ``name`` is built on the VGG16 trunk (and takes ``VGG_TRUNK_OPTIONS``)."""
    key = name.replace("-", "_").lower()
    return key in ("fcn32s", "fcn16s", "fcn8s", "fcn8s_atonce") or key.endswith("_vgg16_bn")


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a model by name (``fcn32s``, ``fcn16s``, ``fcn8s``, ``fcn8s_atonce``, ...)."""
    key = name.replace("-", "_").lower()
    try:
        builder = MODEL_BUILDERS[key]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODEL_BUILDERS)}") from None
    return builder(**kwargs)
