"""An untrusted ``torch.save`` file (a checkpoint, weights) is read here without running its code.
Nothing a crafted zip declares is allocated, and failures are one line in the caller's error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fcnseg.utils.file_kinds import what_file_is, zip_expansion_problem


def _torch_load(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def safe_load(path: Path, error: Callable[[str], Exception], what: str,
              damaged: Callable[[Exception], str],
              read: Callable[[Path], Any] | None = None) -> Any:
    """What ``read(path)`` returns; by default ``torch.load(weights_only=True)`` onto the CPU,
    after refusing a zip whose members declare more bytes than the file holds.

    Failures raise ``error(message)``: ``"PATH: not WHAT: why"`` for such a zip, ``"PATH is
    KIND, not WHAT"`` for a file of another kind (an image, JSON, ...), else ``damaged(e)``
    for the exception ``e`` the read raised (truncated, corrupt, or holding objects that are
    not loaded for safety). An ImportError of a given ``read`` (a missing optional library)
    passes through; torch.load's says what the file holds, so it is a damaged file's."""
    optional_library = read is not None
    if read is None:
        if (problem := zip_expansion_problem(path)) is not None:
            raise error(f"{path}: not {what}: {problem}")
        read = _torch_load
    try:
        return read(path)
    except Exception as e:
        if isinstance(e, ImportError) and optional_library:
            raise
        kind = what_file_is(path)
        if kind is not None:  # a file of another kind, not a damaged one
            raise error(f"{path} is {kind}, not {what}") from None
        raise error(damaged(e)) from e
