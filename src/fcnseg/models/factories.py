"""Backbone factories that checkpoints may name, and which modules may be imported for them.

A custom-backbone checkpoint records ``"package.module:function"``. A checkpoint is data from
anywhere, so naming a module must never run its code: a factory is found when your code has
imported its module (``@backbone_factory`` registers it), or when the module is allowed
(:func:`allow_factory_modules`, ``--allow-factory MODULE``, or ``FCNSEG_ALLOW_FACTORIES``,
comma-separated, ``mypkg`` allowing ``mypkg.*``), and the function must be marked."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from torch import nn

from fcnseg.models.trunk import BackboneError

#: Environment variable holding comma-separated module names allowed to be imported.
ALLOW_ENV = "FCNSEG_ALLOW_FACTORIES"

_FACTORY_MARK = "__fcnseg_backbone_factory__"
#: "module:qualname" → factory, filled by @backbone_factory as user code imports its modules.
_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
#: Module names (and their sub-modules) allowed to be imported by resolve_factory.
_ALLOWED: set[str] = set()


def factory_path(fn: Callable[..., Any]) -> str:
    """``"module:qualname"`` of a function, as checkpoints record it."""
    return f"{fn.__module__}:{fn.__qualname__}"


def backbone_factory(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Mark (and register) a function as a backbone factory that checkpoints may name (only
    marked functions of imported or allowed modules are ever called)."""
    setattr(fn, _FACTORY_MARK, True)
    _REGISTRY[factory_path(fn)] = fn
    return fn


def allow_factory_modules(*modules: str) -> None:
    """Allow checkpoints to import backbone factories from these modules (and sub-modules)."""
    for name in modules:
        name = str(name).strip()
        if not name or not all(part.isidentifier() for part in name.split(".")):
            raise ValueError(f"--allow-factory: {name!r} is not a module name like "
                             f"'mypkg.backbones'")
        _ALLOWED.add(name)


def resolve_factory(path: str) -> Callable[..., nn.Module]:
    """The factory named ``"package.module:function"``, without importing anything not allowed:
    else a :class:`~fcnseg.models.trunk.BackboneError` saying how to allow it."""
    module_name, sep, attr = str(path).partition(":")
    if not sep or not module_name or not attr:
        raise BackboneError(f"backbone factory {path!r} must be 'package.module:function'")
    registered = _REGISTRY.get(f"{module_name}:{attr}")
    if registered is not None:
        return registered
    allowed = _ALLOWED | {s.strip() for s in os.environ.get(ALLOW_ENV, "").split(",")} - {""}
    if not any(module_name == a or module_name.startswith(a + ".") for a in allowed):
        raise BackboneError(
            f"backbone factory {path!r} is not registered and module {module_name!r} is not "
            f"allowed to be imported; if you trust it, pass --allow-factory {module_name} "
            f"(or set {ALLOW_ENV}={module_name}, or call "
            f"fcnseg.models.allow_factory_modules({module_name!r}), or import it first)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise BackboneError(f"backbone factory {path!r}: cannot import {module_name!r} ({e}); "
                            f"install or put on sys.path the code that defines the backbone, or "
                            f"pass backbone=<module> instead") from e
    fn: Any = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
    if fn is None or not callable(fn):
        raise BackboneError(f"backbone factory {path!r}: {module_name!r} has no callable {attr!r}")
    if not getattr(fn, _FACTORY_MARK, False):
        raise BackboneError(f"backbone factory {path!r} is not marked with "
                            f"@fcnseg.models.backbone_factory; refusing to call it")
    return fn
