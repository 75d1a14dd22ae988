"""Model builders in the manner of torchvision's segmentation builders: plain functions."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from torch import nn

from fcnseg.conventions import (
    CAFFE_BGR,
    NYUD_BGR,
    NYUD_HHA,
    SIFTFLOW_BGR,
    TORCHVISION_RGB,
    InputConvention,
    get_convention,
)
from fcnseg.models.alexnet import (
    AlexNetTrunk,
    alexnet_upsampling,
    load_alexnet_caffe_weights,
    load_alexnet_weights,
)
from fcnseg.models.backbone import backbone_fcn, fcn_custom_backbone
from fcnseg.models.fcn import FCN, vgg16_fcn
from fcnseg.models.googlenet import GOOGLENET_NAMES, GoogLeNetTrunk, load_googlenet_weights
from fcnseg.models.head import VGG_NAMES, SkipHead, edge_upsampling
from fcnseg.models.identity import ModelIdentity
from fcnseg.models.multitask import (
    LateFusionFCN,
    early_fusion_conv1,
    early_fusion_fcn,
    init_late_fusion,
    siftflow_fcn,
)
from fcnseg.models.resnet import ResNetBackbone, load_resnet_weights
from fcnseg.models.torchvision_fcn import TorchvisionFCN, load_torchvision_fcn_weights
from fcnseg.models.vgg import VGG16Trunk
from fcnseg.models.vgg16_bn import load_vgg16_bn_weights
from fcnseg.models.weights import load_backbone_weights
from fcnseg.utils.typing import PathLike

__all__ = [
    "MODEL_BUILDERS",
    "NOT_RECORDED",
    "build_model",
    "builder_parameters",
    "check_build_kwargs",
    "fcn8s",
    "fcn8s_atonce",
    "fcn8s_googlenet",
    "fcn8s_resnet50",
    "fcn8s_vgg16_bn",
    "fcn16s",
    "fcn16s_googlenet",
    "fcn16s_resnet50",
    "fcn16s_vgg16_bn",
    "fcn32s",
    "fcn32s_googlenet",
    "fcn32s_resnet50",
    "fcn32s_vgg16_bn",
    "fcn_alexnet",
    "fcn_googlenet",
    "fcn_resnet50",
    "fcn_resnet101",
    "fcn_resnet_skip",
    "get_builder",
    "nyud_fcn16s_color_hha",
    "nyud_fcn32s_color",
    "nyud_fcn32s_color_d",
    "nyud_fcn32s_color_hha",
    "nyud_fcn32s_hha",
    "siftflow_fcn8s",
    "siftflow_fcn16s",
    "siftflow_fcn32s",
]

BuilderT = TypeVar("BuilderT", bound=Callable[..., nn.Module])


def _recorded(builder: Callable[..., Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """``builder``'s arguments as its models record them: without file names and live objects
    (:data:`NOT_RECORDED`) and without the input convention, which is recorded on its own."""
    skipped = (*NOT_RECORDED, "input_convention")
    return {k: arguments[k] for k in inspect.signature(builder).parameters if k not in skipped}


def _named(builder: BuilderT, arch: str, doc: str) -> BuilderT:
    """``builder`` under its model's name (what the registry, ``help`` and error messages
    show), with its docstring."""
    builder.__name__ = builder.__qualname__ = arch
    builder.__doc__ = doc
    return builder


def _vgg_fcn(arch: str, variant: str, arguments: Mapping[str, Any],
             skip_scales: tuple[float, float] = (1.0, 1.0)) -> FCN:
    """The VGG16 FCN-``variant`` named ``arch``, built from its builder's ``arguments``."""
    a = dict(arguments)
    recorded = {k: v for k, v in a.items() if k not in (*NOT_RECORDED, "input_convention")}
    identity = ModelIdentity(arch, recorded, a["input_convention"])
    trunk = VGG16Trunk(geometry=a["geometry"], width=a["width"], fc_channels=a["fc_channels"],
                       dropout=a["dropout"], batch_norm=a["batch_norm"],
                       in_channels=get_convention(a["input_convention"]).channels)
    model = vgg16_fcn(trunk, a["num_classes"], variant, identity, skip_scales=skip_scales)
    if a["backbone_weights"] is not None and a["batch_norm"]:
        load_vgg16_bn_weights(model, a["backbone_weights"],
                              convention=a["backbone_convention"] or TORCHVISION_RGB)
    elif a["backbone_weights"] is not None:
        load_backbone_weights(model, a["backbone_weights"], convention=a["backbone_convention"])
    return model


def _vgg_builder(arch: str, variant: str, with_bn: bool, doc: str,
                 skip_scales: tuple[float, float] = (1.0, 1.0)) -> Callable[..., FCN]:
    default_convention = TORCHVISION_RGB.name if with_bn else CAFFE_BGR.name

    def builder(
        num_classes: int = 21,
        *,
        geometry: str = "caffe",
        width: float = 1.0,
        fc_channels: int = 4096,
        dropout: float = 0.5,
        batch_norm: bool = with_bn,
        input_convention: InputConvention | str | dict[str, Any] = default_convention,
        backbone_weights: PathLike | None = None,
        backbone_convention: str | None = None,
    ) -> FCN:
        identity = ModelIdentity(arch, _recorded(builder, locals()), input_convention)
        trunk = VGG16Trunk(geometry=geometry, width=width, fc_channels=fc_channels,
                           dropout=dropout, batch_norm=batch_norm,
                           in_channels=get_convention(input_convention).channels)
        model = vgg16_fcn(trunk, num_classes, variant, identity, skip_scales=skip_scales)
        if backbone_weights is not None and batch_norm:
            load_vgg16_bn_weights(model, backbone_weights,
                                  convention=backbone_convention or TORCHVISION_RGB)
        elif backbone_weights is not None:
            load_backbone_weights(model, backbone_weights, convention=backbone_convention)
        return model

    return _named(builder, arch, doc)


_VGG_ARGS = """

    Args:
        num_classes: output channels (21 for PASCAL VOC).
        geometry: ``"caffe"`` (the reference, with the 100-pixel pad and crops) or ``"same"``
            (no pad, no crops, fewer FLOPs; same parameters).
        width, fc_channels: slimmer VGG-style trunks for CPUs and tests (channel multiplier of
            the convolutions; channels of fc6/fc7).
        dropout: dropout probability after fc6 and fc7.
        batch_norm: a BatchNorm2d after each trunk convolution (``bn1_1`` ... ``bn5_3``; True
            for the ``*_vgg16_bn`` models).
        input_convention: pixel convention of the weights (replaced by that of
            ``backbone_weights`` when loaded).
        backbone_weights: optional ImageNet state-dict file to convolutionalize into the model
            (see :func:`fcnseg.models.load_backbone_weights`).
        backbone_convention: input convention of that file when it cannot be recognised.
    """


def fcn32s(
    num_classes: int = 21,
    *,
    geometry: str = "caffe",
    width: float = 1.0,
    fc_channels: int = 4096,
    dropout: float = 0.5,
    batch_norm: bool = False,
    input_convention: InputConvention | str | dict[str, Any] = CAFFE_BGR.name,
    backbone_weights: PathLike | None = None,
    backbone_convention: str | None = None,
) -> FCN:
    """FCN-32s on VGG16 (Fig. 3, top row).

    Args:
        num_classes: output channels (21 for PASCAL VOC).
        geometry: ``"caffe"`` (the reference, with the 100-pixel pad and crops) or ``"same"``
            (no pad, no crops, fewer FLOPs; same parameters).
        width, fc_channels: slimmer VGG-style trunks for CPUs and tests (channel multiplier of
            the convolutions; channels of fc6/fc7).
        dropout: dropout probability after fc6 and fc7.
        batch_norm: a BatchNorm2d after each trunk convolution (``bn1_1`` ... ``bn5_3``; True
            for the ``*_vgg16_bn`` models).
        input_convention: pixel convention of the weights (replaced by that of
            ``backbone_weights`` when loaded).
        backbone_weights: optional ImageNet state-dict file to convolutionalize into the model
            (see :func:`fcnseg.models.load_backbone_weights`).
        backbone_convention: input convention of that file when it cannot be recognised.
    """
    return _vgg_fcn("fcn32s", "32s", locals())


def fcn16s(
    num_classes: int = 21,
    *,
    geometry: str = "caffe",
    width: float = 1.0,
    fc_channels: int = 4096,
    dropout: float = 0.5,
    batch_norm: bool = False,
    input_convention: InputConvention | str | dict[str, Any] = CAFFE_BGR.name,
    backbone_weights: PathLike | None = None,
    backbone_convention: str | None = None,
) -> FCN:
    """FCN-16s on VGG16 (Fig. 3, middle row). Arguments as :func:`fcn32s`."""
    return _vgg_fcn("fcn16s", "16s", locals())


def fcn8s(
    num_classes: int = 21,
    *,
    geometry: str = "caffe",
    width: float = 1.0,
    fc_channels: int = 4096,
    dropout: float = 0.5,
    batch_norm: bool = False,
    input_convention: InputConvention | str | dict[str, Any] = CAFFE_BGR.name,
    backbone_weights: PathLike | None = None,
    backbone_convention: str | None = None,
) -> FCN:
    """FCN-8s on VGG16 (Fig. 3, bottom row). Arguments as :func:`fcn32s`."""
    return _vgg_fcn("fcn8s", "8s", locals())


def fcn8s_atonce(
    num_classes: int = 21,
    *,
    geometry: str = "caffe",
    width: float = 1.0,
    fc_channels: int = 4096,
    dropout: float = 0.5,
    batch_norm: bool = False,
    input_convention: InputConvention | str | dict[str, Any] = CAFFE_BGR.name,
    backbone_weights: PathLike | None = None,
    backbone_convention: str | None = None,
) -> FCN:
    """FCN-8s trained at once: pool4 scaled by 0.01 and pool3 by 0.0001 before scoring.
    Arguments as :func:`fcn32s`."""
    return _vgg_fcn("fcn8s_atonce", "8s", locals(), skip_scales=(0.01, 0.0001))


MODEL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "fcn32s": fcn32s,
    "fcn16s": fcn16s,
    "fcn8s": fcn8s,
    "fcn8s_atonce": fcn8s_atonce,
}


# -- VGG16 with batch normalisation ------------------------------------------------------------
_BN_DOC = ("{name} on VGG16 with batch normalisation (torchvision's vgg16_bn): a BatchNorm2d "
           "(``bn1_1`` ... ``bn5_3``) after each trunk convolution. ``backbone_weights`` is a "
           "torchvision ``vgg16_bn-*.pth`` file (RGB convention), see "
           ":func:`fcnseg.models.vgg16_bn.load_vgg16_bn_weights`." + _VGG_ARGS)
fcn32s_vgg16_bn = _vgg_builder("fcn32s_vgg16_bn", "32s", True, _BN_DOC.format(name="FCN-32s"))
fcn16s_vgg16_bn = _vgg_builder("fcn16s_vgg16_bn", "16s", True, _BN_DOC.format(name="FCN-16s"))
fcn8s_vgg16_bn = _vgg_builder("fcn8s_vgg16_bn", "8s", True, _BN_DOC.format(name="FCN-8s"))


# -- ResNet backbones with FCN-32s/16s/8s heads ------------------------------------------------
def _resnet_skip_builder(variant: str, depth: int) -> Callable[..., FCN]:
    arch = f"fcn{variant}_resnet{depth}"

    def builder(
        num_classes: int = 21,
        *,
        replace_stride_with_dilation: list[bool] | None = None,
        base_channels: int = 64,
        input_convention: InputConvention | str | dict[str, Any] = TORCHVISION_RGB.name,
        backbone_weights: PathLike | None = None,
        backbone_convention: str | None = None,
    ) -> FCN:
        dilation = None if replace_stride_with_dilation is None else \
            [bool(d) for d in replace_stride_with_dilation]
        # A multi-band convention sizes the first convolution (one input channel per band).
        bands = get_convention(input_convention).bands  # type: ignore[arg-type]
        backbone = ResNetBackbone(depth, replace_stride_with_dilation=dilation,
                                  base_channels=base_channels,
                                  in_channels=3 if bands is None else len(bands))
        identity = ModelIdentity(arch, {
            "num_classes": num_classes, "replace_stride_with_dilation": dilation,
            "base_channels": base_channels}, input_convention)
        model = backbone_fcn(backbone, num_classes, identity, variant=variant)
        if backbone_weights is not None:
            weights_convention = backbone_convention or (
                TORCHVISION_RGB.name if bands is not None else input_convention)
            load_resnet_weights(model, backbone_weights, convention=weights_convention,
                                bands=bands)
        return model

    doc = f"""FCN-{variant} heads on layer4/layer3/layer2 of a ResNet-{depth}.

    Args:
        num_classes: output channels.
        replace_stride_with_dilation: dilate layer2/3/4 instead of striding (the heads then
            fuse maps of equal resolution).
        base_channels: stem width (64 in torchvision); smaller for light CPU models.
        input_convention: pixel convention of the model (torchvision's RGB); a multi-band one
            (:func:`fcnseg.conventions.band_convention`) builds conv1 for its bands.
        backbone_weights: a torchvision ImageNet ResNet file (``resnet{depth}-*.pth``) to load
            into the backbone (see :func:`fcnseg.models.resnet.load_resnet_weights`); for
            multi-band input its conv1 is widened to the bands.
        backbone_convention: input convention of that file (default: ``input_convention``).
    """
    return _named(builder, arch, doc)


def fcn_resnet_skip(variant: str, depth: int, num_classes: int = 21, **options: Any) -> FCN:
    """FCN-``variant`` heads (``"32s"``, ``"16s"``, ``"8s"``) on a ResNet of ``depth`` (18, 34,
    50 or 101): the builder ``fcn{variant}_resnet{depth}`` (see :func:`fcn8s_resnet50`) called
    with ``num_classes`` and ``options``."""
    return get_builder(f"fcn{variant}_resnet{depth}")(num_classes, **options)


_RESNET_SKIP_BUILDERS = {
    f"fcn{v}_resnet{d}": _resnet_skip_builder(v, d)
    for d in (18, 34, 50, 101) for v in ("32s", "16s", "8s")
}
fcn32s_resnet50 = _RESNET_SKIP_BUILDERS["fcn32s_resnet50"]
fcn16s_resnet50 = _RESNET_SKIP_BUILDERS["fcn16s_resnet50"]
fcn8s_resnet50 = _RESNET_SKIP_BUILDERS["fcn8s_resnet50"]


# -- torchvision's FCN variant ------------------------------------------------------------------
def _torchvision_builder(depth: int) -> Callable[..., TorchvisionFCN]:
    def builder(
        num_classes: int = 21,
        *,
        aux_loss: bool = False,
        output: str = "tensor",
        base_channels: int = 64,
        replace_stride_with_dilation: list[bool] | None = None,
        input_convention: InputConvention | str | dict[str, Any] = TORCHVISION_RGB.name,
        weights: PathLike | None = None,
        backbone_weights: PathLike | None = None,
        backbone_convention: str | None = None,
    ) -> TorchvisionFCN:
        identity = ModelIdentity(f"fcn_resnet{depth}", _recorded(builder, locals()),
                                 input_convention)
        model = TorchvisionFCN(
            num_classes, depth=depth, aux_loss=aux_loss, output=output,
            base_channels=base_channels,
            replace_stride_with_dilation=replace_stride_with_dilation or [False, True, True],
            identity=identity,
        )
        if backbone_weights is not None:
            load_resnet_weights(model, backbone_weights,
                                convention=backbone_convention or input_convention)
        if weights is not None:
            load_torchvision_fcn_weights(model, weights)
        return model

    doc = f"""torchvision's FCN-ResNet{depth}: dilated ResNet-{depth} (output stride 8),
    FCNHead, bilinear resize.

    Args:
        num_classes: output channels (21 for torchvision's published COCO-VOC weights).
        aux_loss: add the auxiliary FCNHead on layer3 (``aux_classifier``).
        output: ``"tensor"`` (logits, this package's convention) or ``"dict"``
            (torchvision's ``{{"out", "aux"}}``).
        base_channels, replace_stride_with_dilation: see :class:`fcnseg.models.resnet.ResNet`.
        input_convention: pixel convention of the model (torchvision's RGB).
        weights: a torchvision FCN checkpoint (``fcn_resnet{depth}_coco-*.pth``), loaded with
            torchvision's keys unchanged.
        backbone_weights: a torchvision ImageNet ``resnet{depth}-*.pth`` for the backbone only.
        backbone_convention: its input convention (default: ``input_convention``).
    """
    return _named(builder, f"fcn_resnet{depth}", doc)


fcn_resnet50 = _torchvision_builder(50)
fcn_resnet101 = _torchvision_builder(101)

MODEL_BUILDERS.update({
    "fcn32s_vgg16_bn": fcn32s_vgg16_bn,
    "fcn16s_vgg16_bn": fcn16s_vgg16_bn,
    "fcn8s_vgg16_bn": fcn8s_vgg16_bn,
    **_RESNET_SKIP_BUILDERS,
    "fcn_resnet50": fcn_resnet50,
    "fcn_resnet101": fcn_resnet101,
    "fcn_custom_backbone": fcn_custom_backbone,
})

# -- FCN-AlexNet and FCN-GoogLeNet (the paper's Table 1) ----------------------------------------
def fcn_alexnet(
    num_classes: int = 21,
    *,
    variant: str = "caffe",
    width: float = 1.0,
    fc_channels: int = 4096,
    dropout: float = 0.5,
    input_convention: InputConvention | str | dict[str, Any] | None = None,
    backbone_weights: PathLike | None = None,
    backbone_convention: str | None = None,
) -> FCN:
    """FCN-AlexNet (the reference's ``voc-fcn-alexnet``): AlexNet's convolutions, fc6 (6×6) and
    fc7 (1×1) convolutionalized, ``score_fr`` and a frozen bilinear ``upscore`` (kernel 63,
    stride 32) cropped to the input (see :mod:`fcnseg.models.alexnet`).

    Args:
        num_classes: output channels (21 for PASCAL VOC).
        variant: ``"caffe"`` (the reference: LRN, grouped conv2/4/5, keys ``conv1`` …
            ``conv5``) or ``"torchvision"`` (torchvision's single-tower AlexNet, keys
            ``features.0`` … ``features.10``).
        width, fc_channels: slimmer trunks for CPUs and tests (channel multiplier of the
            convolutions; channels of fc6/fc7).
        dropout: dropout probability after fc6 and fc7.
        input_convention: pixel convention of the weights (default: Caffe's BGR for
            ``"caffe"``, torchvision's RGB for ``"torchvision"``).
        backbone_weights: ImageNet AlexNet weights: for ``"caffe"`` Caffe's
            ``bvlc_alexnet.caffemodel`` (or a state dict with its layer names), for
            ``"torchvision"`` torchvision's ``alexnet-owt-7be5be79.pth``.
        backbone_convention: input convention of that file (default: the variant's).
    """
    recorded = _recorded(fcn_alexnet, locals())
    default = CAFFE_BGR.name if variant == "caffe" else TORCHVISION_RGB.name
    trunk = AlexNetTrunk(variant=variant, width=width, fc_channels=fc_channels, dropout=dropout,
                         in_channels=get_convention(input_convention or default).channels)
    head = SkipHead(trunk.out_channels, trunk.coord_maps(), num_classes, variant="32s",
                    upsampling=alexnet_upsampling, names=VGG_NAMES)
    identity = ModelIdentity("fcn_alexnet", recorded, input_convention or default)
    # The reference's layers sit at the top (conv1 …); torchvision's under backbone.features
    # (an FCN's own ``features`` method keeps that name from the top level).
    model = FCN(trunk, head, identity, trunk_name=None if variant == "caffe" else "backbone")
    if backbone_weights is not None and variant == "caffe":
        load_alexnet_caffe_weights(model, backbone_weights,
                                   convention=backbone_convention or default)
    elif backbone_weights is not None:
        load_alexnet_weights(model, backbone_weights, convention=backbone_convention or default)
    return model


def _googlenet_builder(variant: str) -> Callable[..., FCN]:
    arch = f"fcn{variant}_googlenet"

    def builder(
        num_classes: int = 21,
        *,
        width: float = 1.0,
        transform_input: bool = True,
        input_convention: InputConvention | str | dict[str, Any] = TORCHVISION_RGB.name,
        backbone_weights: PathLike | None = None,
        backbone_convention: str | None = None,
    ) -> FCN:
        trunk = GoogLeNetTrunk(width=width, transform_input=transform_input,
                               in_channels=get_convention(input_convention).channels)
        head = SkipHead(trunk.out_channels, trunk.coord_maps(), num_classes, variant=variant,
                        upsampling=edge_upsampling, names=GOOGLENET_NAMES)
        identity = ModelIdentity(arch, _recorded(builder, locals()), input_convention)
        model = FCN(trunk, head, identity, trunk_name=None)
        if backbone_weights is not None:
            load_googlenet_weights(model, backbone_weights,
                                   convention=backbone_convention or input_convention)
        return model

    doc = f"""FCN-{variant} on GoogLeNet (Inception v1, torchvision's module and key
    names; see :mod:`fcnseg.models.googlenet`): ``score_fr`` on inception5b, skips scoring
    inception4e (stride 16) and inception3b (stride 8), frozen bilinear upsampling placed by
    the coordinate maps.

    Args:
        num_classes: output channels.
        width: multiplier of every channel count (slimmer trunks for CPUs and tests).
        transform_input: rescale ImageNet-normalised input to torchvision's GoogLeNet scaling
            inside the model (True for torchvision's weights).
        input_convention: pixel convention of the model (torchvision's RGB).
        backbone_weights: torchvision's ImageNet ``googlenet-1378be20.pth`` (aux1, aux2 and fc
            are dropped; see :func:`fcnseg.models.googlenet.load_googlenet_weights`).
        backbone_convention: input convention of that file (default: ``input_convention``).
    """
    return _named(builder, arch, doc)


def fcn_googlenet(variant: str, num_classes: int = 21, **options: Any) -> FCN:
    """FCN-``variant`` (``"32s"``, ``"16s"``, ``"8s"``) on GoogLeNet: the builder
    ``fcn{variant}_googlenet`` (see :func:`fcn8s_googlenet`) called with ``num_classes`` and
    ``options``."""
    return get_builder(f"fcn{variant}_googlenet")(num_classes, **options)


fcn32s_googlenet = _googlenet_builder("32s")
fcn16s_googlenet = _googlenet_builder("16s")
fcn8s_googlenet = _googlenet_builder("8s")

MODEL_BUILDERS.update({
    "fcn_alexnet": fcn_alexnet,
    "fcn32s_googlenet": fcn32s_googlenet,
    "fcn16s_googlenet": fcn16s_googlenet,
    "fcn8s_googlenet": fcn8s_googlenet,
})

#: Builder arguments that name files or live objects: used when building, never recorded in or
#: read from a checkpoint's ``build_kwargs``.
NOT_RECORDED = ("backbone_weights", "backbone_convention", "weights", "backbone",
                "stream_weights")


# -- the reference's other tasks: SIFT Flow (two heads) and NYUDv2 (modalities) ----------------
def _load_imagenet(model: nn.Module, path: PathLike, convention: str | None,
                   task_convention: InputConvention | str | dict[str, Any]) -> None:
    """ImageNet VGG16 weights into a VGG16 FCN; Caffe weights keep the task's own mean (the
    reference fine-tunes them on the dataset's mean), torchvision's bring their convention."""
    load_backbone_weights(model, path, convention=convention)
    if model.input_convention.name == CAFFE_BGR.name:
        model.input_convention = get_convention(task_convention)


def _load_imagenet_early_fusion(model: FCN, twin_trunk: VGG16Trunk, path: PathLike,
                                convention: str | None,
                                task_convention: InputConvention | str | dict[str, Any]) -> None:
    """ImageNet VGG16 weights into an early-fusion FCN: loaded into a 3-channel twin on
    ``twin_trunk``, whose conv1_1 is then widened for depth (:func:`early_fusion_conv1`)."""
    twin = vgg16_fcn(twin_trunk, model.num_classes, "32s", ModelIdentity("fcn32s"))
    _load_imagenet(twin, path, convention, task_convention)
    sd = twin.state_dict()
    sd["conv1_1_bgrd.weight"] = early_fusion_conv1(sd.pop("conv1_1.weight"))
    sd["conv1_1_bgrd.bias"] = sd.pop("conv1_1.bias")
    model.load_state_dict(sd)
    model.input_convention = twin.input_convention


def _siftflow_builder(arch: str, variant: str) -> Callable[..., FCN]:
    def builder(
        num_classes: int = 33,
        *,
        geometric_classes: int = 3,
        geometry: str = "caffe",
        width: float = 1.0,
        fc_channels: int = 4096,
        dropout: float = 0.5,
        input_convention: InputConvention | str | dict[str, Any] = SIFTFLOW_BGR,
        backbone_weights: PathLike | None = None,
        backbone_convention: str | None = None,
    ) -> FCN:
        identity = ModelIdentity(arch, _recorded(builder, locals()), input_convention)
        trunk = VGG16Trunk(geometry=geometry, width=width, fc_channels=fc_channels,
                           dropout=dropout)
        model = siftflow_fcn(trunk, variant, identity, num_classes, geometric_classes)
        if backbone_weights is not None:
            _load_imagenet(model, backbone_weights, backbone_convention, input_convention)
        return model

    doc = f"""SIFT Flow FCN-{variant}: one VGG16 trunk, a ``semantic`` and a
    ``geometric`` head, each with its own scorers and upsampling (``score_fr_sem``,
    ``upscore2_geo`` ...).
    ``model(x)`` returns ``{{"semantic": N×33×H×W, "geometric": N×3×H×W}}``.

    Args:
        num_classes: classes of the semantic head (33).
        geometric_classes: classes of the geometric head (3: sky, horizontal, vertical).
        geometry, width, fc_channels, dropout: as :func:`fcn32s`.
        input_convention: the SIFT Flow mean, BGR (the reference's).
        backbone_weights, backbone_convention: ImageNet VGG16 weights, as :func:`fcn32s`.
    """
    return _named(builder, arch, doc)


siftflow_fcn32s = _siftflow_builder("siftflow_fcn32s", "32s")
siftflow_fcn16s = _siftflow_builder("siftflow_fcn16s", "16s")
siftflow_fcn8s = _siftflow_builder("siftflow_fcn8s", "8s")


def _nyud_builder(arch: str, modalities: tuple[str, ...], convention: InputConvention,
                  doc: str) -> Callable[..., FCN]:
    """A builder of the NYUDv2 FCN-32s on one modality, or on colour and depth stacked into one
    input (early fusion)."""
    early_fusion = modalities == ("color", "depth")

    def builder(
        num_classes: int = 40,
        *,
        geometry: str = "caffe",
        width: float = 1.0,
        fc_channels: int = 4096,
        dropout: float = 0.5,
        input_convention: InputConvention | str | dict[str, Any] = convention,
        backbone_weights: PathLike | None = None,
        backbone_convention: str | None = None,
    ) -> FCN:
        identity = ModelIdentity(arch, _recorded(builder, locals()), input_convention)
        trunk_options = {"geometry": geometry, "width": width, "fc_channels": fc_channels,
                         "dropout": dropout}
        if early_fusion:
            trunk = VGG16Trunk(**trunk_options, in_channels=4)
            model = early_fusion_fcn(trunk, num_classes, "32s", identity)
        else:
            model = vgg16_fcn(VGG16Trunk(**trunk_options), num_classes, "32s", identity,
                              input_names=modalities)
        if backbone_weights is not None and early_fusion:
            _load_imagenet_early_fusion(model, VGG16Trunk(**trunk_options), backbone_weights,
                                        backbone_convention, input_convention)
        elif backbone_weights is not None:
            _load_imagenet(model, backbone_weights, backbone_convention, input_convention)
        return model

    return _named(builder, arch, doc)


_NYUD_SINGLE_DOC = """NYUDv2 FCN-32s on {modality} alone (40 classes): the VGG16 FCN-32s, its
    input named ``{modality!r}`` (``model(x)`` takes N×3×H×W or ``{{{modality!r}: N×3×H×W}}``).

    Args:
        num_classes: 40 (Gupta et al.'s NYUDv2 classes).
        geometry, width, fc_channels, dropout: as :func:`fcn32s`.
        input_convention: the reference's {modality} normalisation (``{convention}``).
        backbone_weights, backbone_convention: ImageNet VGG16 weights, as :func:`fcn32s`.
    """
nyud_fcn32s_color = _nyud_builder(
    "nyud_fcn32s_color", ("color",), NYUD_BGR,
    _NYUD_SINGLE_DOC.format(modality="color", convention=NYUD_BGR.name))
nyud_fcn32s_hha = _nyud_builder(
    "nyud_fcn32s_hha", ("hha",), NYUD_HHA,
    _NYUD_SINGLE_DOC.format(modality="hha", convention=NYUD_HHA.name))
nyud_fcn32s_color_d = _nyud_builder(
    "nyud_fcn32s_color_d", ("color", "depth"), NYUD_BGR,
    """NYUDv2 FCN-32s RGB-D, early fusion: colour and depth stacked into a 4-channel
    ``conv1_1_bgrd`` (the reference's name). ``model(x)`` takes ``{"color": N×3×H×W, "depth":
    N×1×H×W}`` or the stacked N×4×H×W tensor (colour channels first).

    Args:
        num_classes: 40.
        geometry, width, fc_channels, dropout: as :func:`fcn32s`.
        input_convention: the colour normalisation (the NYUDv2 mean, BGR); depth comes as
            log depth minus its mean.
        backbone_weights: ImageNet VGG16 weights; conv1_1_bgrd gets ImageNet conv1_1 on the
            colour channels and, for depth, its mean over the input channels
            (:func:`fcnseg.models.multitask.early_fusion_conv1`); the bias is copied.
        backbone_convention: that file's convention, as :func:`fcn32s`.
    """)


def _late_fusion_builder(arch: str, variant: str) -> Callable[..., LateFusionFCN]:
    def builder(
        num_classes: int = 40,
        *,
        geometry: str = "caffe",
        width: float = 1.0,
        fc_channels: int = 4096,
        dropout: float = 0.5,
        input_convention: InputConvention | str | dict[str, Any] = NYUD_BGR,
        stream_weights: Mapping[str, PathLike] | None = None,
    ) -> LateFusionFCN:
        identity = ModelIdentity(arch, _recorded(builder, locals()), input_convention)
        streams = {m: VGG16Trunk(geometry=geometry, width=width, fc_channels=fc_channels,
                                 dropout=dropout) for m in ("color", "hha")}
        model = LateFusionFCN(streams, num_classes, identity, variant=variant,
                              fusion_weights=(0.5, 0.5), pad_to_target=geometry == "same")
        if stream_weights is not None:
            init_late_fusion(model, stream_weights)
        return model

    doc = f"""NYUDv2 FCN-{variant} RGB-HHA, late fusion: a ``color`` and an ``hha``
    VGG16 stream whose score maps are summed with weights 0.5 / 0.5 before one shared
    upsampling. ``model(x)`` takes ``{{"color": N×3×H×W, "hha": N×3×H×W}}``.

    Args:
        num_classes: 40.
        geometry, width, fc_channels, dropout: as :func:`fcn32s` (every stream alike).
        input_convention: the colour stream's normalisation (the NYUDv2 mean, BGR); the HHA
            stream takes HHA minus its mean.
        stream_weights: ``{{"color": checkpoint, "hha": checkpoint}}`` of trained single-stream
            nets (``nyud_fcn32s_color``, ``nyud_fcn32s_hha``) to start each stream from
            (:func:`fcnseg.models.multitask.init_late_fusion`).
    """
    return _named(builder, arch, doc)


nyud_fcn32s_color_hha = _late_fusion_builder("nyud_fcn32s_color_hha", "32s")
nyud_fcn16s_color_hha = _late_fusion_builder("nyud_fcn16s_color_hha", "16s")

MODEL_BUILDERS.update({
    "siftflow_fcn32s": siftflow_fcn32s,
    "siftflow_fcn16s": siftflow_fcn16s,
    "siftflow_fcn8s": siftflow_fcn8s,
    "nyud_fcn32s_color": nyud_fcn32s_color,
    "nyud_fcn32s_hha": nyud_fcn32s_hha,
    "nyud_fcn32s_color_d": nyud_fcn32s_color_d,
    "nyud_fcn32s_color_hha": nyud_fcn32s_color_hha,
    "nyud_fcn16s_color_hha": nyud_fcn16s_color_hha,
})


def get_builder(name: str) -> Callable[..., nn.Module]:
    """The builder of model ``name`` (``fcn8s``, ``fcn8s-resnet50``, ...)."""
    key = name.replace("-", "_").lower()
    try:
        return MODEL_BUILDERS[key]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODEL_BUILDERS)}") from None


def builder_parameters(name: str) -> tuple[str, ...]:
    """The keyword arguments that model ``name``'s builder takes."""
    return tuple(inspect.signature(get_builder(name)).parameters)


def check_build_kwargs(name: str, kwargs: Mapping[str, Any]) -> None:
    """Check recorded build arguments against the builder's signature, before building.

    Raises ValueError naming the field: ``build_kwargs.width: expected float, got 'abc'``.
    """
    builder = get_builder(name)
    params = inspect.signature(builder).parameters
    hints = typing.get_type_hints(builder)
    for key, value in kwargs.items():
        if key not in params or key in NOT_RECORDED:
            known = [p for p in params if p not in NOT_RECORDED]
            raise ValueError(f"build_kwargs.{key}: not an argument of {name} (known: {known})")
        hint = hints.get(key, Any)
        if not _fits(value, hint):
            got = repr(value)[:100]
            raise ValueError(f"build_kwargs.{key}: expected {_hint_name(hint)}, got {got}")


def _fits(value: Any, hint: Any) -> bool:
    """Whether plain data ``value`` (from a checkpoint) has type ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin in (list, tuple, Sequence):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(_fits, value, args))
        return not args or all(_fits(v, args[0]) for v in value)
    if origin in (dict, Mapping):
        return isinstance(value, Mapping)
    if isinstance(origin or hint, type):
        return isinstance(value, origin or hint)
    return True


def _hint_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def build_model(name: str, *, preprocess: bool = True, **kwargs: Any) -> nn.Module:
    """Build a model by name (``fcn32s``, ``fcn16s``, ``fcn8s``, ``fcn8s_atonce``, ...).

    The model takes raw pixels (RGB 0-255) and normalises them in ``model.preprocess``;
    ``preprocess=False`` leaves that an ``nn.Identity()``: the bare network, taking input
    already normalised in the model's ``input_convention``."""
    model = get_builder(name)(**kwargs)
    if not preprocess:
        model.preprocess = nn.Identity()
    return model
