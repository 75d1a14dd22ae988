"""A warning for 16-bit images read as 8-bit RGB that fill only a small part of their range.

Without ``bands`` declared (in ``dataset.yaml``, or in the spec of an export read directly),
16-bit values are divided by 257: a 12-bit camera's images (up to 4,095) become 0-16 of 255,
nearly black. Declaring the band keeps the values.
:func:`narrow_range_warning` looks at a few images only, so ``check-data`` and ``train`` can
afford it at start.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fcnseg.data.band_images import bands_declaration
from fcnseg.data.images import SIXTEEN_TO_EIGHT_BITS, ImageError
from fcnseg.data.rasters import open_raster

#: 16-bit images whose brightest value, read as 8 bits, stays below this (a quarter of 0-255)
#: are warned about.
NARROW_BELOW = 64
#: The band names the warning suggests, by the images' band count.
BAND_NAMES = {1: ["intensity"], 3: ["red", "green", "blue"]}


def _sampled_paths(dataset: Any, limit: int) -> list[Path]:
    n = len(dataset)
    picks = sorted({i * n // limit for i in range(limit)}) if n > limit else range(n)
    return [Path(dataset.image_path(i)) for i in picks]


def _sixteen_bit_range(path: Path) -> tuple[int, int, int] | None:
    """``(lowest, highest, bands)`` of a 16-bit image file; None for any other (or unreadable)."""
    try:
        with open_raster(path) as reader:
            if reader.info.dtype != np.uint16:
                return None
            values = reader.read_all()
    except (ImageError, OSError, ValueError):
        return None
    return int(values.min()), int(values.max()), int(values.shape[-1])


def _named(paths: list[Path], root: Path) -> str:
    names = [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in paths]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def narrow_range_warning(dataset: Any, limit: int = 8) -> str | None:
    """One line when a file dataset read as 8-bit RGB has 16-bit images that, divided by 257,
    stay below :data:`NARROW_BELOW`: the files, the range and the ``dataset.yaml`` line that
    keeps their depth. Looks at up to ``limit`` images; None when fine or for other datasets."""
    if getattr(dataset, "bands", None) is not None or not hasattr(dataset, "image_path") \
            or len(dataset) == 0:
        return None
    looked = _sampled_paths(dataset, limit)
    found = {p: r for p in looked if (r := _sixteen_bit_range(p)) is not None}
    if not found:
        return None
    low = min(r[0] for r in found.values())
    high = max(r[1] for r in found.values())
    top = round(high / SIXTEEN_TO_EIGHT_BITS)
    if top >= NARROW_BELOW:
        return None
    root = Path(getattr(dataset, "root", "."))
    root = root.parent if root.is_file() else root  # an export's annotation file
    bands = max(r[2] for r in found.values())
    names = BAND_NAMES.get(bands, [f"b{k + 1}" for k in range(bands)])
    where, how = bands_declaration(dataset, names)
    return (f"{_named(list(found), root)} ({len(found)} of the {len(looked)} images looked at): "
            f"16-bit values {low:,}-{high:,} of 0-65,535, read as 8-bit RGB (value / 257) "
            f"they span {round(low / SIXTEEN_TO_EIGHT_BITS)}-{top} of 0-255, nearly black; "
            f"declare the band{'s' if bands > 1 else ''} in {where} to keep their depth: {how}")


def deep_one_band_types(paths: Sequence[Path]) -> list[str] | None:
    """The sample types (``uint16``, ...) of ``paths`` when every one is an image of one band
    of integers deeper than 8 bits (which a dataset without ``bands`` reads as 8-bit RGB);
    None when any is not (or is unreadable), or there are none."""
    types = set()
    for path in paths:
        try:
            with open_raster(path) as reader:
                info = reader.info
        except (ImageError, OSError, ValueError):
            return None
        if info.bands != 1 or info.dtype.kind not in "iu" or info.dtype.itemsize < 2:
            return None
        types.add(info.dtype.name)
    return sorted(types) or None
