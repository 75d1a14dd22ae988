"""Arithmetic precision by name: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast), or ``"auto"``.

One vocabulary for training, evaluation and inference (:data:`PRECISIONS`); ``"auto"`` is what
the hardware runs natively (:func:`fcnseg.utils.hardware.auto_precision`).
"""

from __future__ import annotations

import contextlib

import torch

from fcnseg.utils.hardware import PRECISIONS, resolve_precision

__all__ = ["PRECISIONS", "autocast", "autocast_dtype"]

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str, device: str | torch.device = "cpu") -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (``"auto"`` decided by the hardware);
    None for fp32 (full precision). Another name is a ValueError naming the choices."""
    return _DTYPES[resolve_precision(precision, device)]


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``precision`` on ``device``'s type; a no-op for fp32."""
    dtype = autocast_dtype(precision, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
