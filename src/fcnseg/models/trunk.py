"""The trunk protocol shared by every FCN head."""

from __future__ import annotations

__all__ = ["BackboneError"]


class BackboneError(ValueError):
    """A backbone does not follow the protocol, or its factory cannot be used."""
