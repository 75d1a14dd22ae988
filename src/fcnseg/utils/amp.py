"""Mixed precision by name: ``"bf16"`` / ``"fp16"`` autocast, or full precision."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["autocast", "autocast_dtype"]

_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
           "fp16": torch.float16, "float16": torch.float16}
_OFF = (None, False, "", "none", "off", "fp32", "float32")


def autocast_dtype(amp: str | None) -> torch.dtype | None:
    """The autocast dtype for ``amp`` ("bf16", "fp16"), None for full precision."""
    if amp in _OFF:
        return None
    key = str(amp).lower()
    if key not in _DTYPES:
        raise ValueError(f"amp: expected one of bf16, fp16, none; got {amp!r}")
    return _DTYPES[key]


def autocast(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``amp`` on ``device``'s type; a no-op for full precision."""
    dtype = autocast_dtype(amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
