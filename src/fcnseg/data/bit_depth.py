"""A warning for 16-bit images read as 8-bit RGB that fill only a small part of their range.

Without ``bands`` declared, 16-bit values are divided by 257: a 12-bit camera's images (up to
4,095) become 0-16 of 255, nearly black; declaring the band keeps the values.
:func:`narrow_range_warning` looks at a few images (``check-data`` and ``train`` at start);
:func:`dim_sixteen_bit_warning` at the 8-bit values of an image ``predict`` segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fcnseg.data.band_images import bands_declaration
from fcnseg.data.images import (
    SIXTEEN_TO_EIGHT_BITS,
    TIFF_MAGIC,
    ImageError,
    file_head,
    png_depth_and_colour_type,
    tiff_samples,
)
from fcnseg.data.rasters import open_raster

#: 16-bit images whose brightest value, read as 8 bits, is below this are warned about.
NARROW_BELOW = 64
#: The band names the warning suggests, by the images' band count.
BAND_NAMES = {1: ["intensity"], 3: ["red", "green", "blue"]}


def _band_names(bands: int) -> list[str]:
    """The band names the warnings suggest for images of ``bands`` bands."""
    return BAND_NAMES.get(bands, [f"b{k + 1}" for k in range(bands)])


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


def narrow_range_warning(dataset: Any, limit: int = 8) -> str | None:
    """One line when a file dataset read as 8-bit RGB has 16-bit images that, divided by 257,
    stay below :data:`NARROW_BELOW`: the files, the range and the declaration that keeps their
    depth. Looks at up to ``limit`` images; None when fine or for other datasets."""
    if getattr(dataset, "bands", None) is not None or not hasattr(dataset, "image_path") \
            or len(dataset) == 0:
        return None
    n = len(dataset)
    picks = sorted({i * n // limit for i in range(limit)}) if n > limit else range(n)
    looked = [Path(dataset.image_path(i)) for i in picks]
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
    where, how = bands_declaration(dataset, _band_names(bands))
    named = [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in found]
    shown = ", ".join(named[:3]) + (f" and {len(named) - 3} more" if len(named) > 3 else "")
    return (f"{shown} ({len(found)} of the {len(looked)} images looked at): "
            f"16-bit values {low:,}-{high:,} of 0-65,535, read as 8-bit RGB (value / 257) "
            f"they {_span(round(low / SIXTEEN_TO_EIGHT_BITS), top)}; "
            f"declare the band{'s' if bands > 1 else ''} in {where} to keep their depth: {how}")


def _span(low: int, top: int) -> str:
    return f"span {low}-{top} of 0-255, nearly black"


#: A PNG's colour types (IHDR) by their bands, alpha aside.
_PNG_BANDS = {0: 1, 4: 1, 2: 3, 6: 3}


def sixteen_bit_bands(path: Path) -> int | None:
    """The bands (alpha aside) of a 16-bit PNG or TIFF by its header; None for others."""
    head = file_head(Path(path), 26)
    if (ihdr := png_depth_and_colour_type(head)) is not None:
        return _PNG_BANDS.get(ihdr[1]) if ihdr[0] == 16 else None
    if head[:4] in TIFF_MAGIC and (samples := tiff_samples(Path(path))) is not None \
            and samples.dtype == np.uint16:
        return samples.bands - samples.alpha
    return None


def dim_sixteen_bit_warning(path: Path, rgb: np.ndarray) -> str | None:
    """One line when ``rgb``, the 8-bit RGB a colour model takes from the 16-bit image at
    ``path``, is nearly black (:func:`narrow_range_warning`'s rule): the file, the range and
    the fix; None otherwise. Costs one maximum, and a header read for dark images only."""
    if rgb.dtype != np.uint8 or rgb.size == 0:
        return None
    top = int(rgb.max())  # round(highest / 257): the rounding keeps the order
    if top >= NARROW_BELOW or (bands := sixteen_bit_bands(path)) is None:
        return None
    names = _band_names(bands)
    return (f"{path}: 16-bit values read as 8-bit RGB (value / 257) by this colour model "
            f"{_span(int(rgb.min()), top)}; "
            f"segment them with a model trained with the band{'s' if bands > 1 else ''} "
            f"declared (`bands: [{', '.join(names)}]` in its dataset.yaml, see docs/data.md)")


def deep_one_band_types(paths: Sequence[Path]) -> list[str] | None:
    """The sample types (``uint16``, ...) of ``paths`` when every one is one band of integers
    deeper than 8 bits (read as 8-bit RGB without ``bands``); else None."""
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
