"""Model builders: ``build_model(name, **options)`` and the table of named architectures.

The paper's four VGG16 nets are plain functions (:func:`fcn32s` … :func:`fcn8s_atonce`). Every
named model is a row of :data:`ARCHITECTURES`, called like a function: trunk family, head
variant, pixel convention and an options dataclass whose fields are its keyword arguments. A
model records its options except files (:data:`NOT_RECORDED`), which checkpoints rebuild it from."""

from __future__ import annotations

import functools
import inspect
import numbers
import typing
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field, fields
from pathlib import Path
from typing import Any

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
from fcnseg.models.backbone import Convention, backbone_fcn, fcn_custom_backbone
from fcnseg.models.fcn import FCN, vgg16_fcn
from fcnseg.models.googlenet import GOOGLENET_NAMES, GoogLeNetTrunk, load_googlenet_weights
from fcnseg.models.head import VARIANTS, VGG_NAMES, SkipHead, edge_upsampling
from fcnseg.models.identity import ModelIdentity
from fcnseg.models.multitask import (
    LateFusionFCN,
    early_fusion_conv1,
    early_fusion_fcn,
    init_late_fusion,
    siftflow_fcn,
)
from fcnseg.models.preprocess import COLOR, BareInput, Preprocess
from fcnseg.models.resnet import ResNetBackbone, load_resnet_weights
from fcnseg.models.torchvision_fcn import TorchvisionFCN, load_torchvision_fcn_weights
from fcnseg.models.vgg import VGG16Trunk
from fcnseg.models.weights import (
    ConventionUnknown,
    WeightsError,
    load_backbone_weights,
    load_vgg16_bn_weights,
)
from fcnseg.utils.typing import PathLike
from fcnseg.weightfiles.published import PRETRAINED

#: Builder arguments that name files or live objects: used when building, never recorded in or
#: read from a checkpoint's ``build_kwargs``.
NOT_RECORDED = ("backbone_weights", "backbone_convention", "weights", "backbone",
                "stream_weights")


# -- the options each trunk family takes (a builder's keyword arguments) -------------------------
@dataclass
class ModelOptions:
    """Arguments every model takes: ``num_classes`` (21 for PASCAL VOC) and
    ``input_convention``, the weights' pixel convention that ``model.preprocess`` applies
    (replaced by that of loaded ``backbone_weights``). Its default is the architecture's own, as
    each builder's signature shows (``help(fcn8s)``); a bare network (``preprocess=False``)
    takes input normalised in it: name yours, so that checkpoints record what the model saw."""

    num_classes: int = 21
    _: KW_ONLY
    input_convention: Convention = TORCHVISION_RGB.name

    @property
    def convention(self) -> InputConvention:
        """The input convention; a multi-band one sizes the first convolution (its bands)."""
        return get_convention(self.input_convention)  # type: ignore[arg-type]


@dataclass(kw_only=True)
class _BackboneFile(ModelOptions):
    """An ImageNet file for the trunk, and its input convention when it cannot be told."""

    backbone_weights: PathLike | None = None
    backbone_convention: str | None = None


@dataclass(kw_only=True)
class _VGGTrunk(ModelOptions):
    """The VGG16 trunk: ``geometry`` ``"caffe"`` (the reference's pad and crops) or ``"same"``;
    ``width`` (channel multiplier), ``fc_channels`` (of fc6/fc7), ``dropout`` after them."""

    geometry: str = "caffe"
    width: float = 1.0
    fc_channels: int = 4096
    dropout: float = 0.5

    def trunk(self, **extra: Any) -> VGG16Trunk:
        return VGG16Trunk(geometry=self.geometry, width=self.width,
                          fc_channels=self.fc_channels, dropout=self.dropout, **extra)


@dataclass(kw_only=True)
class NYUDOptions(_VGGTrunk, _BackboneFile):
    """The NYUDv2 single-modality and early-fusion FCNs: the VGG16 trunk and ImageNet VGG16."""


@dataclass(kw_only=True)
class VGGOptions(NYUDOptions):
    """The VGG16 FCNs' options, besides ``num_classes`` and ``input_convention``:

    - ``geometry``: ``"caffe"`` (the reference's 100-pixel pad and crops) or ``"same"`` (none);
    - ``width``: multiplies every trunk layer's channels (1.0: VGG16's);
    - ``fc_channels``: the channels of fc6 and fc7 (4096);
    - ``dropout``: the dropout probability after fc6 and fc7;
    - ``batch_norm``: adds ``bn1_1`` … ``bn5_3``;
    - ``backbone_weights``: an ImageNet VGG16 file (:func:`fcnseg.models.load_backbone_weights`;
      ``vgg16_bn-*.pth``);
    - ``backbone_convention``: that file's input convention, where the file cannot tell it.
    """

    batch_norm: bool = False


@dataclass(kw_only=True)
class SiftFlowOptions(NYUDOptions):
    """SIFT Flow: ``num_classes`` of the semantic head (33), ``geometric_classes`` of the
    geometric one (3: sky, horizontal, vertical)."""

    geometric_classes: int = 3


@dataclass(kw_only=True)
class LateFusionOptions(_VGGTrunk):
    """NYUDv2 late fusion: ``stream_weights``, ``{"color": checkpoint, "hha": checkpoint}`` of
    single-stream nets to start each stream from (:func:`~fcnseg.models.init_late_fusion`)."""

    stream_weights: Mapping[str, PathLike] | None = None


@dataclass(kw_only=True)
class ResNetOptions(_BackboneFile):
    """ResNet trunks: ``replace_stride_with_dilation`` dilates layer2/3/4 instead of striding;
    ``base_channels`` is the stem width (64); ``backbone_weights`` a torchvision ImageNet file."""

    replace_stride_with_dilation: list[bool] | None = None
    base_channels: int = 64

    def __post_init__(self) -> None:
        dilation = self.replace_stride_with_dilation
        if dilation is None:
            return
        if (not isinstance(dilation, (list, tuple)) or len(dilation) != 3
                or not all(isinstance(d, bool) for d in dilation)):
            raise ValueError("replace_stride_with_dilation: expected three booleans "
                             f"(layer2, layer3, layer4), got {repr(dilation)[:60]}")
        self.replace_stride_with_dilation = list(dilation)


@dataclass(kw_only=True)
class TorchvisionFCNOptions(ResNetOptions):
    """torchvision's FCN: ``aux_loss`` adds the auxiliary FCNHead on layer3 (its scores come out
    with ``output="dict"``, else ``"tensor"``); ``weights`` a torchvision FCN checkpoint."""

    aux_loss: bool = False
    output: str = "tensor"
    weights: PathLike | None = None


@dataclass(kw_only=True)
class AlexNetOptions(_BackboneFile):
    """FCN-AlexNet: ``variant`` ``"caffe"`` (the reference, Caffe's BGR) or ``"torchvision"``
    (single tower, RGB); ``width``, ``fc_channels``, ``dropout`` as VGG16's."""

    variant: str = "caffe"
    width: float = 1.0
    fc_channels: int = 4096
    dropout: float = 0.5
    input_convention: Convention | None = None

    def __post_init__(self) -> None:
        self.input_convention = self.input_convention or self.default_convention()

    def default_convention(self) -> str:
        return CAFFE_BGR.name if self.variant == "caffe" else TORCHVISION_RGB.name


@dataclass(kw_only=True)
class GoogLeNetOptions(_BackboneFile):
    """FCN-GoogLeNet: ``width`` multiplies every channel count; ``transform_input`` rescales
    the input to torchvision's GoogLeNet scaling inside the model."""

    width: float = 1.0
    transform_input: bool = True


# -- the trunk families: (row, options, identity) -> model --------------------------------------
def _vgg16(row: Architecture, o: VGGOptions, identity: ModelIdentity) -> FCN:
    """FCN-32s/16s/8s on VGG16 (Fig. 3); ``8s_atonce`` scales pool4 and pool3 before scoring."""
    scales = (0.01, 0.0001) if row.variant == "8s_atonce" else (1.0, 1.0)
    trunk = o.trunk(batch_norm=o.batch_norm, in_channels=o.convention.channels)
    model = vgg16_fcn(trunk, o.num_classes, row.variant.removesuffix("_atonce"), identity,
                      skip_scales=scales)
    if o.backbone_weights is not None and o.batch_norm:
        load_vgg16_bn_weights(model, o.backbone_weights,
                              convention=o.backbone_convention or TORCHVISION_RGB)
    elif o.backbone_weights is not None:
        load_backbone_weights(model, o.backbone_weights, convention=o.backbone_convention)
    return model


def _resnet(row: Architecture, o: ResNetOptions, identity: ModelIdentity) -> FCN:
    """FCN-32s/16s/8s heads on layer4/layer3/layer2 of a ResNet (conv1 sized for the bands)."""
    bands = o.convention.bands
    backbone = ResNetBackbone(row.depth, base_channels=o.base_channels,
                              replace_stride_with_dilation=o.replace_stride_with_dilation,
                              in_channels=3 if bands is None else len(bands))
    model = backbone_fcn(backbone, o.num_classes, identity, variant=row.variant)
    if o.backbone_weights is not None:
        weights_convention = o.backbone_convention or (
            TORCHVISION_RGB.name if bands is not None else o.input_convention)
        load_resnet_weights(model, o.backbone_weights, convention=weights_convention, bands=bands)
    return model


def _torchvision_fcn(row: Architecture, o: TorchvisionFCNOptions,
                     identity: ModelIdentity) -> TorchvisionFCN:
    """torchvision's FCN-ResNet: dilated ResNet (output stride 8), FCNHead, bilinear resize."""
    model = TorchvisionFCN(o.num_classes, depth=row.depth, aux_loss=o.aux_loss, output=o.output,
                           base_channels=o.base_channels, identity=identity,
                           replace_stride_with_dilation=o.replace_stride_with_dilation
                           or [False, True, True])
    if o.backbone_weights is not None:
        load_resnet_weights(model, o.backbone_weights,
                            convention=o.backbone_convention or o.input_convention)
    if o.weights is not None:
        load_torchvision_fcn_weights(model, o.weights)
    return model


def _alexnet(row: Architecture, o: AlexNetOptions, identity: ModelIdentity) -> FCN:
    """FCN-AlexNet, the reference's ``voc-fcn-alexnet`` (see :mod:`fcnseg.models.alexnet`)."""
    trunk = AlexNetTrunk(variant=o.variant, width=o.width, fc_channels=o.fc_channels,
                         dropout=o.dropout, in_channels=o.convention.channels)
    head = SkipHead(trunk.out_channels, trunk.coord_maps(), o.num_classes, variant=row.variant,
                    upsampling=alexnet_upsampling, names=VGG_NAMES)
    # The reference's layers sit at the top (conv1 …); torchvision's under backbone.features
    # (an FCN's own ``features`` method keeps that name from the top level).
    caffe = o.variant == "caffe"
    model = FCN(trunk, head, identity, trunk_name=None if caffe else "backbone")
    if o.backbone_weights is not None:
        load = load_alexnet_caffe_weights if caffe else load_alexnet_weights
        load(model, o.backbone_weights, convention=o.backbone_convention or o.default_convention())
    return model


def _googlenet(row: Architecture, o: GoogLeNetOptions, identity: ModelIdentity) -> FCN:
    """FCN-32s/16s/8s on GoogLeNet: inception5b, 4e and 3b scored, edge-aligned upsampling."""
    trunk = GoogLeNetTrunk(width=o.width, transform_input=o.transform_input,
                           in_channels=o.convention.channels)
    head = SkipHead(trunk.out_channels, trunk.coord_maps(), o.num_classes, variant=row.variant,
                    upsampling=edge_upsampling, names=GOOGLENET_NAMES)
    model = FCN(trunk, head, identity, trunk_name=None)
    if o.backbone_weights is not None:
        load_googlenet_weights(model, o.backbone_weights,
                               convention=o.backbone_convention or o.input_convention)
    return model


def _siftflow(row: Architecture, o: SiftFlowOptions, identity: ModelIdentity) -> FCN:
    """SIFT Flow: one VGG16 trunk with a ``semantic`` and a ``geometric`` head."""
    model = siftflow_fcn(o.trunk(), row.variant, identity, o.num_classes, o.geometric_classes)
    _load_imagenet(model, o)
    return model


def _nyud(row: Architecture, o: NYUDOptions, identity: ModelIdentity) -> FCN:
    """NYUDv2 FCN-32s on one modality, or on colour and depth stacked (early fusion)."""
    if row.inputs != ("color", "depth"):
        model = vgg16_fcn(o.trunk(), o.num_classes, row.variant, identity, input_names=row.inputs)
        _load_imagenet(model, o)
        return model
    model = early_fusion_fcn(o.trunk(in_channels=4), o.num_classes, row.variant, identity)
    if o.backbone_weights is not None:
        twin = vgg16_fcn(o.trunk(), o.num_classes, row.variant, ModelIdentity("fcn32s"))
        _load_imagenet(twin, o)
        sd = twin.state_dict()
        sd["conv1_1_bgrd.weight"] = early_fusion_conv1(sd.pop("conv1_1.weight"))
        sd["conv1_1_bgrd.bias"] = sd.pop("conv1_1.bias")
        model.load_state_dict(sd)
        model.input_convention = twin.input_convention
    return model


def _load_imagenet(model: FCN, o: NYUDOptions) -> None:
    """``o.backbone_weights`` into a VGG16 FCN; Caffe's keep the task's mean, as the reference."""
    if o.backbone_weights is None:
        return
    load_backbone_weights(model, o.backbone_weights, convention=o.backbone_convention)
    if model.input_convention.name == CAFFE_BGR.name:
        model.input_convention = get_convention(o.input_convention)  # type: ignore[arg-type]


def _late_fusion(row: Architecture, o: LateFusionOptions,
                 identity: ModelIdentity) -> LateFusionFCN:
    """NYUDv2 RGB-HHA late fusion: score maps of two VGG16 streams summed 0.5 / 0.5."""
    streams = {m: o.trunk() for m in row.inputs}
    model = LateFusionFCN(streams, o.num_classes, identity, variant=row.variant,
                          fusion_weights=(0.5, 0.5), pad_to_target=o.geometry == "same")
    if o.stream_weights is not None:
        init_late_fusion(model, o.stream_weights)
    return model


# -- the table ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Architecture:
    """One named model, called like a builder function: the trunk family's ``build``, its
    ``options`` dataclass, head ``variant``, pixel ``convention`` (None: the options' own),
    ResNet ``depth``, NYUDv2 ``inputs`` and the ``defaults`` that differ from the options'."""

    name: str
    build: Callable[[Architecture, Any, ModelIdentity], nn.Module]
    options: type[ModelOptions]
    variant: str = "32s"
    convention: str | None = TORCHVISION_RGB.name
    depth: int = 0
    inputs: tuple[str, ...] = ("color",)
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The signature callers see (help, inspect, bind): the options with this row's defaults.
        defaults = dict(self.defaults)
        if self.convention is not None:
            defaults["input_convention"] = self.convention
        sig = inspect.signature(self.options)
        params = [p.replace(default=defaults.get(p.name, p.default))
                  for p in sig.parameters.values()]
        object.__setattr__(self, "__signature__",
                           sig.replace(parameters=params, return_annotation="nn.Module"))

    def __call__(self, *args: Any, **kwargs: Any) -> nn.Module:
        """Build the model: arguments bound to the options, then the family assembles it."""
        try:  # the types checked before the options compare values
            bound = self.__signature__.bind(*args, **kwargs)  # type: ignore[attr-defined]
            bound.arguments.update(_plain_values(_hints(self.options), bound.arguments))
        except (TypeError, ValueError) as e:
            raise TypeError(f"{self.name}: {e}") from None
        bound.apply_defaults()
        o = self.options(**bound.arguments)
        if o.convention.bands is not None and (problem := bands_problem(self.name)):
            raise ValueError(problem)
        if getattr(o, "backbone_weights", None) is not None:
            o.backbone_weights = _weights_file(o.backbone_weights)
        recorded = {f.name: getattr(o, f.name) for f in fields(o)
                    if f.name not in (*NOT_RECORDED, "input_convention")}
        try:
            return self.build(self, o, ModelIdentity(self.name, recorded, o.input_convention))
        except ConventionUnknown as e:  # its advice names this builder's argument
            raise e.naming("backbone_convention") from None


def _weights_file(spec: Any) -> Any:
    """``backbone_weights`` as given; a published name that is no file is a WeightsError
    saying how to fetch it (models never download: the fetcher lives above them)."""
    if isinstance(spec, str) and spec in PRETRAINED and not Path(spec).is_file():
        raise WeightsError(
            f"backbone_weights: {spec!r} is the name of published weights, not a file; from "
            f"Python fetch it first: backbone_weights=fetch_pretrained({spec!r}) (from "
            f"fcnseg.pretrained.fetch import fetch_pretrained; downloaded once, then cached), "
            f"as a recipe's model.backbone_weights does")
    return spec


_CAFFE = CAFFE_BGR.name
_BN = {"batch_norm": True}
_SIFTFLOW = {"num_classes": 33}
_NYUD = {"num_classes": 40}

#: Every named model (``build_model`` also knows ``fcn_custom_backbone``, a function).
ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("fcn32s", _vgg16, VGGOptions, "32s", _CAFFE),
    Architecture("fcn16s", _vgg16, VGGOptions, "16s", _CAFFE),
    Architecture("fcn8s", _vgg16, VGGOptions, "8s", _CAFFE),
    Architecture("fcn8s_atonce", _vgg16, VGGOptions, "8s_atonce", _CAFFE),
    *(Architecture(f"fcn{v}_vgg16_bn", _vgg16, VGGOptions, v, defaults=_BN) for v in VARIANTS),
    *(Architecture(f"fcn{v}_resnet{d}", _resnet, ResNetOptions, v, depth=d)
      for d in (18, 34, 50, 101) for v in VARIANTS),
    Architecture("fcn_resnet50", _torchvision_fcn, TorchvisionFCNOptions, depth=50),
    Architecture("fcn_resnet101", _torchvision_fcn, TorchvisionFCNOptions, depth=101),
    Architecture("fcn_alexnet", _alexnet, AlexNetOptions, convention=None),
    *(Architecture(f"fcn{v}_googlenet", _googlenet, GoogLeNetOptions, v) for v in VARIANTS),
    *(Architecture(f"siftflow_fcn{v}", _siftflow, SiftFlowOptions, v, SIFTFLOW_BGR.name,
                   defaults=_SIFTFLOW) for v in VARIANTS),
    Architecture("nyud_fcn32s_color", _nyud, NYUDOptions, "32s", NYUD_BGR.name, defaults=_NYUD),
    Architecture("nyud_fcn32s_hha", _nyud, NYUDOptions, "32s", NYUD_HHA.name,
                 inputs=("hha",), defaults=_NYUD),
    Architecture("nyud_fcn32s_color_d", _nyud, NYUDOptions, "32s", NYUD_BGR.name,
                 inputs=("color", "depth"), defaults=_NYUD),
    *(Architecture(f"nyud_fcn{v}_color_hha", _late_fusion, LateFusionOptions, v, NYUD_BGR.name,
                   inputs=("color", "hha"), defaults=_NYUD) for v in ("32s", "16s")),
)}


# -- the paper's VGG16 nets, as functions --------------------------------------------------------
def fcn32s(num_classes: int = 21, **options: Any) -> FCN:
    """FCN-32s on VGG16 (Fig. 3, top row), in Caffe's BGR convention; ``options`` are
    :class:`VGGOptions`'s fields (``help`` shows them with this model's defaults)."""
    return ARCHITECTURES["fcn32s"](num_classes, **options)


def fcn16s(num_classes: int = 21, **options: Any) -> FCN:
    """FCN-16s on VGG16 (Fig. 3, middle row); ``options`` as :func:`fcn32s`."""
    return ARCHITECTURES["fcn16s"](num_classes, **options)


def fcn8s(num_classes: int = 21, **options: Any) -> FCN:
    """FCN-8s on VGG16 (Fig. 3, bottom row), the paper's best; ``options`` as :func:`fcn32s`."""
    return ARCHITECTURES["fcn8s"](num_classes, **options)


def fcn8s_atonce(num_classes: int = 21, **options: Any) -> FCN:
    """FCN-8s trained at once: pool4 scaled by 0.01 and pool3 by 0.0001 before scoring;
    ``options`` as :func:`fcn32s`."""
    return ARCHITECTURES["fcn8s_atonce"](num_classes, **options)


# help(fcn8s) and inspect.signature show the arguments (VGGOptions's fields, this model's
# defaults) rather than **options.
for _builder in (fcn32s, fcn16s, fcn8s, fcn8s_atonce):
    _builder.__signature__ = ARCHITECTURES[_builder.__name__].__signature__  # type: ignore[attr-defined]


#: Every builder by model name: the functions above, the table's rows, custom backbones.
MODEL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    **ARCHITECTURES, "fcn32s": fcn32s, "fcn16s": fcn16s, "fcn8s": fcn8s,
    "fcn8s_atonce": fcn8s_atonce, "fcn_custom_backbone": fcn_custom_backbone,
}

# The table's models under their own names, to call directly.
fcn32s_vgg16_bn, fcn16s_vgg16_bn, fcn8s_vgg16_bn = (
    ARCHITECTURES[f"fcn{v}_vgg16_bn"] for v in VARIANTS)
(fcn32s_resnet18, fcn16s_resnet18, fcn8s_resnet18, fcn32s_resnet34, fcn16s_resnet34,
 fcn8s_resnet34, fcn32s_resnet50, fcn16s_resnet50, fcn8s_resnet50, fcn32s_resnet101,
 fcn16s_resnet101, fcn8s_resnet101) = (ARCHITECTURES[f"fcn{v}_resnet{d}"]
                                       for d in (18, 34, 50, 101) for v in VARIANTS)
fcn32s_googlenet, fcn16s_googlenet, fcn8s_googlenet = (
    ARCHITECTURES[f"fcn{v}_googlenet"] for v in VARIANTS)
siftflow_fcn32s, siftflow_fcn16s, siftflow_fcn8s = (
    ARCHITECTURES[f"siftflow_fcn{v}"] for v in VARIANTS)
fcn_alexnet, fcn_resnet50, fcn_resnet101 = (
    ARCHITECTURES[n] for n in ("fcn_alexnet", "fcn_resnet50", "fcn_resnet101"))
(nyud_fcn32s_color, nyud_fcn32s_hha, nyud_fcn32s_color_d, nyud_fcn32s_color_hha,
 nyud_fcn16s_color_hha) = (ARCHITECTURES[f"nyud_fcn{n}"] for n in (
    "32s_color", "32s_hha", "32s_color_d", "32s_color_hha", "16s_color_hha"))


def model_names() -> list[str]:
    """Every model name :func:`build_model` takes, sorted."""
    return sorted(MODEL_BUILDERS)


def get_builder(name: str) -> Callable[..., nn.Module]:
    """The builder of model ``name`` (``fcn8s``, ``fcn8s-resnet50``, ...)."""
    try:
        return MODEL_BUILDERS[_key(name)]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODEL_BUILDERS)}") from None


def _key(name: str) -> str:
    return name.replace("-", "_").lower()


def builder_defaults(name: str) -> dict[str, Any]:
    """The default of each keyword argument of model ``name``'s builder (empty if unknown)."""
    try:
        sig = inspect.signature(get_builder(name))
    except ValueError:
        return {}
    return {k: p.default for k, p in sig.parameters.items()
            if p.default is not inspect.Parameter.empty}


def builder_parameters(name: str) -> tuple[str, ...]:
    """The keyword arguments that model ``name``'s builder takes."""
    return tuple(inspect.signature(get_builder(name)).parameters)


def backbone_trunk(name: str, options: Mapping[str, Any] | None = None) -> str | None:
    """The trunk family (:data:`fcnseg.weightfiles.published.TRUNKS`: ``"VGG16"``,
    ``"ResNet-50"``, ...) whose ``backbone_weights`` model ``name`` with ``options`` takes; None
    if it takes none. Raises ValueError for an unknown model."""
    if "backbone_weights" not in builder_parameters(name):
        return None
    row = ARCHITECTURES[_key(name)]
    chosen = {**builder_defaults(name), **(options or {})}
    if row.build in (_resnet, _torchvision_fcn):
        return f"ResNet-{row.depth}"
    if row.build is _alexnet:
        return "AlexNet (Caffe)" if chosen.get("variant") == "caffe" else "AlexNet (torchvision)"
    if row.build is _googlenet:
        return "GoogLeNet"
    return "VGG16-BN" if row.build is _vgg16 and chosen.get("batch_norm") else "VGG16"


#: What a builder argument annotated with a plain type takes (NumPy's numbers too).
_SCALARS: dict[Any, tuple[type, ...]] = {bool: (bool,), int: (numbers.Integral,),
                                         float: (numbers.Real,), str: (str,)}


#: The type hints of a builder's options dataclass (or of a builder function).
_hints = functools.cache(typing.get_type_hints)


def _plain_values(hints: Mapping[str, Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` with NumPy numbers as the plain int or float their hint names; a ValueError
    ``width: expected float, got '0.25'`` for a value not of that type (None is no int)."""
    plain = dict(kwargs)
    for key, value in kwargs.items():
        hint = hints.get(key)
        kinds = _SCALARS.get(hint)
        if kinds is not None and (not isinstance(value, kinds)
                                  or (hint is not bool and isinstance(value, bool))):
            raise ValueError(f"{key}: expected {hint.__name__}, got {repr(value)[:100]}")
        if hint in (int, float) and type(value) not in (int, float):
            plain[key] = int(value) if isinstance(value, numbers.Integral) else float(value)
    return plain


def bands_problem(name: str) -> str | None:
    """Why model ``name`` takes no multi-band convention (its first convolution takes colour),
    or None: the VGG16, AlexNet, GoogLeNet and ResNet FCNs take any number of bands."""
    row = ARCHITECTURES.get(_key(name))
    if row is not None and row.build in (_vgg16, _resnet, _alexnet, _googlenet):
        return None
    return (f"{name} takes 3-band colour images; for multi-band data use an FCN on VGG16, "
            f"AlexNet, GoogLeNet or a ResNet (fcn8s, fcn_alexnet, fcn8s_googlenet, "
            f"fcn8s_resnet18, ...)")


def check_build_kwargs(name: str, kwargs: Mapping[str, Any]) -> None:
    """Check recorded build arguments against the builder's signature, before building: a
    ValueError naming the field (``build_kwargs.width: expected float, got 'abc'``)."""
    known = [p for p in inspect.signature(get_builder(name)).parameters if p not in NOT_RECORDED]
    for key in kwargs:
        if key not in known:
            raise ValueError(f"build_kwargs.{key}: not an argument of {name} (known: {known})")
    try:
        _check_values(name, kwargs)
    except ValueError as e:
        raise ValueError(f"build_kwargs.{e}") from None


def _check_values(name: str, kwargs: Mapping[str, Any]) -> None:
    """A ValueError naming the first of ``kwargs`` of another type or a refused value."""
    row = ARCHITECTURES.get(_key(name))
    _plain_values(_hints(row.options if row is not None else get_builder(name)), kwargs)
    if row is not None:
        try:  # each options dataclass checks the fields a scalar type cannot describe
            row.options(**kwargs)
        except (TypeError, ValueError) as e:
            raise ValueError(str(e)) from None


def check_builder_options(name: str, options: Mapping[str, Any]) -> None:
    """Check keyword arguments for model ``name``'s builder without building (no file read):
    a ValueError starting with the argument's name (``base_channel: unknown option of
    fcn8s_resnet18; known: ...``, ``base_channels: expected int, got 'sixteen'``)."""
    params = inspect.signature(get_builder(name)).parameters
    for key in options:
        if key not in params:
            known = [p for p in params if p != "num_classes"]
            raise ValueError(f"{key}: unknown option of {name}; known: {', '.join(known)}")
    _check_values(name, options)


def build_model(name: str, *, preprocess: bool = True, **kwargs: Any) -> nn.Module:
    """Build a model by name (``fcn32s``, ``fcn16s``, ``fcn8s``, ``fcn8s_atonce``, ...).

    The model takes raw pixels (RGB as uint8 or float 0-255, not torchvision's float 0-1 that
    :meth:`Segmenter.predict <fcnseg.inference.Segmenter.predict>` reads floats as;
    ``model(x / 255)`` is not checked and sees a near-black image) and normalises them in
    ``model.preprocess``. ``preprocess=False`` gives the bare network (its preprocess a
    :class:`~fcnseg.models.preprocess.BareInput`, an ``nn.Identity`` refusing raw pixels),
    taking float input normalised in its ``input_convention``. An argument the builder does not
    take, or not of its plain type, is a one-line TypeError naming the model and the argument
    (``fcn8s: width: expected float, got '0.25'``)."""
    model = get_builder(name)(**kwargs)
    if not preprocess:
        own = getattr(model, "preprocess", None)
        model.preprocess = BareInput(getattr(model, "input_convention", None),
                                     own.image_input if isinstance(own, Preprocess) else COLOR)
    return model
