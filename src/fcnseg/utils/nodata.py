"""Pixels without data, one rule for the raster reader's NumPy arrays and the model's torch
tensors: every band holds the raster's ``nodata`` value, or any band is NaN."""

from __future__ import annotations

import functools
import math
import operator
from typing import Any

import numpy as np
import torch


def without_data(values: Any, nodata: float | None, axis: int) -> Any:
    """The pixels of ``values`` (a NumPy array or torch tensor, its bands along ``axis``) whose
    every band is ``nodata``, compared exactly in the values' type (none where it holds no such
    sample: -9999 in uint16), or (float values) any band NaN; None where neither can be (and
    for a NumPy array where none is)."""
    index = (slice(None),) * (axis % values.ndim)
    limits = _integer_limits(values.dtype)
    value = nodata if limits is None else _integer_sample(nodata, limits)
    found = [] if value is None else [_across_bands(values == value, index, operator.and_)]
    if limits is None:
        found.append(_across_bands(values != values, index, operator.or_))  # NaN
    found = [f for f in found if f is not None]
    return functools.reduce(operator.or_, found) if found else None


def _across_bands(flags: Any, index: tuple[slice, ...], combine: Any) -> Any:
    """``combine`` of ``flags``' bands (after ``index``), band by band (NumPy's all(axis=-1)
    is many times slower); None for a NumPy array of no flag, found at once (a tensor's graph
    takes no branch on its values)."""
    if isinstance(flags, np.ndarray) and not flags.any():
        return None
    count = flags.shape[len(index)]
    return functools.reduce(combine, (flags[(*index, b)] for b in range(count)))


def _integer_limits(dtype: Any) -> tuple[int, int] | None:
    """The least and greatest sample of an integer NumPy or torch ``dtype``; None for others."""
    if isinstance(dtype, torch.dtype):
        integer = not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)
        info: Any = torch.iinfo(dtype) if integer else None
    else:
        info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    return None if info is None else (int(info.min), int(info.max))


def _integer_sample(nodata: float | None, limits: tuple[int, int]) -> int | None:
    """``nodata`` as a sample of an integer type of these ``limits``; None where none equals it
    (a fraction, an infinity, NaN, a value out of range)."""
    if nodata is None or not math.isfinite(nodata) or nodata != int(nodata):
        return None
    return int(nodata) if limits[0] <= int(nodata) <= limits[1] else None
