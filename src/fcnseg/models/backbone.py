"""Bring your own backbone: FCN-32s/16s/8s heads fit modules of the trunk protocol.
That is :mod:`fcnseg.models.trunk`'s; checkpoints record the backbone's factory
(:mod:`fcnseg.models.factories`) and its arguments."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from fcnseg.conventions import TORCHVISION_RGB, InputConvention, get_convention
from fcnseg.models.factories import factory_path, resolve_factory
from fcnseg.models.fcn import FCN
from fcnseg.models.head import BACKBONE_NAMES, VARIANTS, SkipHead, edge_upsampling
from fcnseg.models.identity import ModelIdentity
from fcnseg.models.trunk import BackboneError, trunk_channels, trunk_coord_maps

Convention = InputConvention | str | Mapping[str, Any]


def backbone_fcn(backbone: nn.Module, num_classes: int, identity: ModelIdentity, *,
                 variant: str = "8s", skip_scales: Sequence[float] = (1.0, 1.0)) -> FCN:
    """An :class:`~fcnseg.models.FCN` with a skip head on ``backbone`` (state-dict prefix
    ``backbone.``, head layers ``score32`` …, ``up32to16.up`` …, ``upscore.up``)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    channels = trunk_channels(backbone, VARIANTS[variant], f"FCN-{variant}")
    head = SkipHead(channels, trunk_coord_maps(backbone), num_classes, variant=variant,
                    upsampling=edge_upsampling, skip_scales=skip_scales, names=BACKBONE_NAMES)
    return FCN(backbone, head, identity)


def fcn_from_backbone(backbone: nn.Module, num_classes: int, *, variant: str = "8s",
                      factory: str | Callable[..., nn.Module] | None = None,
                      factory_kwargs: Mapping[str, Any] | None = None,
                      input_convention: Convention = TORCHVISION_RGB,
                      skip_scales: Sequence[float] = (1.0, 1.0)) -> FCN:
    """FCN-32s/16s/8s heads on your own ``backbone`` (following the trunk protocol).

    ``factory`` (``"package.module:function"`` or the function, marked with
    :func:`~fcnseg.models.factories.backbone_factory`) and ``factory_kwargs`` (plain data) are
    recorded to rebuild the backbone from a checkpoint; without a factory it must be supplied:
    ``build_model_from_checkpoint(path, backbone=module)``.
    """
    if callable(factory):
        factory = factory_path(factory)
    if factory is not None:
        resolve_factory(factory)  # fail now, not when someone loads the checkpoint
    identity = ModelIdentity("fcn_custom_backbone", {
        "num_classes": num_classes, "variant": variant, "factory": factory,
        "factory_kwargs": dict(factory_kwargs or {}),
        "skip_scales": [float(s) for s in skip_scales],
    }, get_convention(input_convention))
    return backbone_fcn(backbone, num_classes, identity, variant=variant,
                        skip_scales=skip_scales)


def fcn_from_factory(factory: str | Callable[..., nn.Module], num_classes: int, *,
                     variant: str = "8s", factory_kwargs: Mapping[str, Any] | None = None,
                     input_convention: Convention = TORCHVISION_RGB,
                     skip_scales: Sequence[float] = (1.0, 1.0)) -> FCN:
    """Build the backbone with ``factory(**factory_kwargs)`` and put FCN heads on it."""
    fn = resolve_factory(factory if isinstance(factory, str) else factory_path(factory))
    backbone = fn(**dict(factory_kwargs or {}))
    return fcn_from_backbone(backbone, num_classes, variant=variant, factory=factory,
                             factory_kwargs=factory_kwargs, input_convention=input_convention,
                             skip_scales=skip_scales)


def fcn_custom_backbone(num_classes: int = 21, *, variant: str = "8s",
                        factory: str | None = None,
                        factory_kwargs: Mapping[str, Any] | None = None,
                        input_convention: Convention = TORCHVISION_RGB.name,
                        skip_scales: Sequence[float] = (1.0, 1.0),
                        backbone: nn.Module | None = None) -> FCN:
    """Builder behind ``build_model("fcn_custom_backbone", ...)``, which checkpoints call: the
    backbone from its ``factory``, or ``backbone`` (a fresh module of the same architecture)."""
    options = {"variant": variant, "factory_kwargs": factory_kwargs,
               "input_convention": input_convention,
               "skip_scales": (float(skip_scales[0]), float(skip_scales[1]))}
    if backbone is not None:
        return fcn_from_backbone(backbone, num_classes, factory=factory, **options)
    if factory is None:
        raise BackboneError(
            "this custom-backbone model records no backbone factory, so its backbone cannot "
            "be rebuilt automatically; build the backbone yourself and pass it: "
            "build_model_from_checkpoint(path, backbone=my_backbone)")
    # fcn_from_factory also takes the marked function itself (recorded as its path).
    return fcn_from_factory(factory, num_classes, **options)
