"""Backbone factories that checkpoints may name, and which modules may be imported for them.

A custom-backbone checkpoint records ``"package.module:function"``, which rebuilding the model
calls. A checkpoint is data from anywhere, so naming a module must never be enough to run its
code (importing ``evilmod`` from the current folder would run it before any check). A factory
is found without importing anything when its module has been imported by your own code
(``@backbone_factory`` registers the function then), or else only when the module is allowed
explicitly: :func:`allow_factory_modules` (the CLI's ``--allow-factory MODULE``) or
``FCNSEG_ALLOW_FACTORIES`` (comma-separated; ``mypkg`` allows ``mypkg.*`` too). Either way the
function must be marked with :func:`backbone_factory`."""

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
    """Mark (and register) a function as a backbone factory that checkpoints may name.

    Rebuilding a custom-backbone model calls the function its checkpoint names with the
    recorded keyword arguments. Only marked functions are ever called, and only those whose
    module your code has imported or allowed (see the module docstring).
    """
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


def allowed_factory_modules() -> tuple[str, ...]:
    """The allowed module names: :func:`allow_factory_modules` plus ``FCNSEG_ALLOW_FACTORIES``."""
    from_env = (s.strip() for s in os.environ.get(ALLOW_ENV, "").split(","))
    return tuple(sorted(_ALLOWED | {s for s in from_env if s}))


def resolve_factory(path: str) -> Callable[..., nn.Module]:
    """The factory named ``"package.module:function"``, without importing anything not allowed.

    Raises :class:`~fcnseg.models.trunk.BackboneError` naming the factory and how to allow it
    when its module is neither imported-and-registered nor allowed, or when the function is not
    marked with :func:`backbone_factory`.
    """
    module_name, sep, attr = str(path).partition(":")
    if not sep or not module_name or not attr:
        raise BackboneError(f"backbone factory {path!r} must be 'package.module:function'")
    registered = _REGISTRY.get(f"{module_name}:{attr}")
    if registered is not None:
        return registered
    if not any(module_name == a or module_name.startswith(a + ".")
               for a in allowed_factory_modules()):
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
