"""Arithmetic precision is named alike in training, evaluation and inference.
The names (:data:`fcnseg.utils.hardware.PRECISIONS`) are ``"fp32"``, ``"bf16"``, ``"fp16"``
(autocast) and ``"auto"``: the native one (:func:`fcnseg.utils.hardware.auto_precision`)."""

from __future__ import annotations

import contextlib

import torch

from fcnseg.utils.hardware import resolve_precision

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``precision`` on ``device``'s type (``"auto"`` decided by the
    hardware); a no-op for fp32. Another name is a ValueError naming the choices."""
    dtype = _DTYPES[resolve_precision(precision, device)]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
