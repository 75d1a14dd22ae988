"""Command-line options shared by every command that loads a checkpoint."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

__all__ = ["add_allow_factory_option"]


class _AllowFactory(argparse.Action):
    """Allows the module as soon as the option is parsed, so every later load sees it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        # Lazy: fcnseg.models imports torch, which `fcnseg --help` should not wait for.
        from fcnseg.models.factories import allow_factory_modules

        try:
            allow_factory_modules(str(values))
        except ValueError as e:
            parser.error(str(e))
        getattr(namespace, self.dest).append(str(values))


def add_allow_factory_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--allow-factory MODULE`` (repeatable): let custom-backbone checkpoints import their
    backbone factory from MODULE (and its sub-modules). Nothing else is ever imported."""
    parser.add_argument(
        "--allow-factory", action=_AllowFactory, default=[], metavar="MODULE",
        help="let a custom-backbone checkpoint import its @backbone_factory from MODULE "
             "(repeatable; or FCNSEG_ALLOW_FACTORIES=mod1,mod2). Trusted code only: importing "
             "a module runs it")
