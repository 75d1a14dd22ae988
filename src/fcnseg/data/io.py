"""Reading images and label maps, turning every kind of bad file into a :class:`DataError`.

Images and masks are read by :mod:`fcnseg.data.images`, as ``predict`` and ``serve`` read them.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from fcnseg.data.errors import DataError
from fcnseg.data.images import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    ImageTooLargeError,
    file_head,
    load_image,
    open_upright,
    read_samples,
    signature_format,
)
from fcnseg.utils.typing import PathLike

#: Images larger than this many pixels are refused as possible decompression bombs (Pillow's
#: default); raise it for genuinely huge images (``None`` leaves only Pillow's own limit).
MAX_PIXELS: int | None = DEFAULT_MAX_PIXELS
#: What a refusal for the limit advises.
RAISE_LIMIT = "if it is genuine, raise fcnseg.data.io.MAX_PIXELS"

T = TypeVar("T")


@dataclass(frozen=True)
class MaskAdvice:
    """What a bad mask's message advises, in the dataset's terms: ``rgb`` for an RGB mask where
    class indices are expected, ``values`` for values outside the classes."""

    rgb: str
    values: str


def _open(path: Path, what: str, reader: Callable[..., T] = open_upright) -> T:
    """``reader``'s upright image at ``path`` (an image or a mask), or a DataError."""
    if not path.is_file():
        why = "a link to no file, or a loop of links" if path.is_symlink() else "no such file"
        raise DataError(path, f"missing {what} ({why})")
    try:
        return reader(path, max_pixels=MAX_PIXELS)
    except ImageTooLargeError as e:
        raise DataError(path, f"refusing {what}: {e.problem} ({RAISE_LIMIT})") from None
    except ImageError as e:
        raise DataError(path, f"unreadable {what}: {e.problem}") from None


def read_image(path: PathLike, what: str = "image") -> np.ndarray:
    """Read an image file as an upright H×W×3 uint8 RGB array (see :mod:`fcnseg.data.images`);
    errors name it as ``what``."""
    return _open(Path(path), what, load_image)


def read_raw(path: PathLike, what: str) -> np.ndarray:
    """The pixel values of an image file as stored (upright; 16-bit stays 16-bit, colour
    included: :func:`~fcnseg.data.images.read_samples`), e.g. depth."""
    return _open(Path(path), what, read_samples)


#: MATLAB v5 data type of a zlib-compressed variable.
_MI_COMPRESSED = 15


def mat_decoded_bytes(path: Path, limit: int) -> int:
    """The bytes a MATLAB v5 ``.mat`` file's compressed variables decode to, counted in constant
    memory up to past ``limit``; 0 for no v5 ``.mat`` (loadmat says what is wrong)."""
    total = 0
    with open(path, "rb") as f:
        head = f.read(128)
        order = {b"IM": "<", b"MI": ">"}.get(head[126:128])
        while order is not None and total <= limit and len(tag := f.read(8)) == 8:
            kind, nbytes = struct.unpack(order + "II", tag)
            if kind != _MI_COMPRESSED:  # stored as is: the file's own bytes, 8-byte aligned
                f.seek(nbytes + -nbytes % 8, os.SEEK_CUR)
                continue
            stream, left = zlib.decompressobj(), nbytes
            while left > 0 and total <= limit and (chunk := f.read(min(left, 1 << 16))):
                left -= len(chunk)
                try:
                    while chunk and total <= limit:
                        total += len(stream.decompress(chunk, 1 << 20))
                        chunk = stream.unconsumed_tail
                except zlib.error:
                    return total  # corrupt: for loadmat to report
    return total


def load_mat(path: Path, **options: bool) -> dict:
    """A ``.mat`` mask file's variables (:func:`scipy.io.loadmat` ``options``), or a DataError
    naming it; refused first where they decode to more than a float64 mask of
    :data:`MAX_PIXELS`."""
    from scipy.io import loadmat  # lazy: scipy is the optional 'data' extra

    if not path.is_file():
        raise DataError(path, "missing mask (no such file)")
    if MAX_PIXELS is not None:
        limit = 8 * MAX_PIXELS + (1 << 20)  # float64 pixels, and the variables' headers
        if (decoded := mat_decoded_bytes(path, limit)) > limit:
            raise DataError(path, f"refusing mask: its compressed variables decode to more "
                                  f"than {limit} bytes ({decoded} so far), more than a mask of "
                                  f"{MAX_PIXELS} pixels holds ({RAISE_LIMIT})")
    try:
        return loadmat(path, **options)
    except Exception as e:  # scipy raises many types (ValueError, TypeError, OSError) on bad files
        raise DataError(path, f"unreadable .mat file: {e}") from None


def read_mat_label(path: PathLike, field: str) -> np.ndarray:
    """The 2-D array ``field`` of a MATLAB ``.mat`` file as int64 (a DataError otherwise)."""
    path = Path(path)
    mat = load_mat(path, squeeze_me=False)
    if field not in mat:
        have = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise DataError(path, f"no field {field!r} in this .mat file (it has: {have})")
    value = np.asarray(mat[field])
    if value.ndim != 2 or not np.issubdtype(value.dtype, np.number):
        raise DataError(path, f"field {field!r} is a {value.dtype} array of shape "
                              f"{value.shape}: expected an H×W array of numbers")
    check_mat_pixels(path, f"field {field!r}", value)
    return value.astype(np.int64)


def check_mat_pixels(path: Path, what: str, value: np.ndarray) -> None:
    """A DataError naming ``path`` when the H×W mask ``value`` (``what`` of a ``.mat`` file)
    has more than :data:`MAX_PIXELS` pixels (before it is widened)."""
    if MAX_PIXELS is not None and value.size > MAX_PIXELS:
        raise DataError(path, f"refusing mask: {what} of {value.shape[1]}×{value.shape[0]} = "
                              f"{value.size} pixels is more than the limit of {MAX_PIXELS} "
                              f"({RAISE_LIMIT})")


#: What a bad mask's message advises unless the dataset says better.
MASK_ADVICE = MaskAdvice(rgb="save masks as index or palette PNGs", values="fix the masks")


def benchmark_advice(masks: str) -> MaskAdvice:
    """The advice for a benchmark's masks (read as published): ``masks`` says what they hold."""
    text = f"{masks}; use the files as the benchmark publishes them"
    return MaskAdvice(rgb=text, values=text)


def read_label(path: PathLike, *, num_classes: int | None = None, ignore_index: int = 255,
               remap: Mapping[int, int] | None = None, colors: np.ndarray | None = None,
               color_ignore: tuple[int, int, int] | None = None, advice: MaskAdvice = MASK_ADVICE,
               remap_other: int | None = None) -> np.ndarray:
    """Read a label map as an H×W int64 array of class indices: the label of
    :func:`read_label_and_values`, which says what the options are."""
    return read_label_and_values(
        path, num_classes=num_classes, ignore_index=ignore_index, remap=remap, colors=colors,
        color_ignore=color_ignore, advice=advice, remap_other=remap_other)[0]


def read_label_and_values(
        path: PathLike, *, num_classes: int | None = None, ignore_index: int = 255,
        remap: Mapping[int, int] | None = None, colors: np.ndarray | None = None,
        color_ignore: tuple[int, int, int] | None = None, advice: MaskAdvice = MASK_ADVICE,
        remap_other: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a label map as an H×W int64 array of class indices, and the mask's values before
    ``remap`` (what :func:`passed_through` inspects) from the same read of the file.

    Palette PNGs give their indices, grey and 16-bit masks their values; RGB masks need
    ``colors`` (K×3: class k is ``colors[k]``; ``color_ignore`` marks void), by which palette
    PNGs are read too where given; any other colour is an error naming a few. ``remap`` then
    replaces raw values (``{255: 1}``), ``remap_other`` every value it does not list but
    ``ignore_index``; with ``num_classes`` every value must be a class or ``ignore_index``.
    ``advice`` says what to do otherwise.
    """
    path = Path(path)
    if signature_format(file_head(path)) == "JPEG":  # whatever its name
        raise DataError(path, "a JPEG mask: JPEG's lossy compression changes the values along "
                              "every edge into values of no class; save masks as PNG (lossless)")
    with _open(path, "mask") as img:
        mode = img.mode
        # A palette PNG read by its colours where they are given: palettes differ between tools
        if mode in ("RGB", "RGBA") or (mode == "P" and colors is not None):
            if colors is None:
                raise DataError(path, f"RGB mask where class indices are expected: {advice.rgb}")
            rgb = np.asarray(img.convert("RGB"))
            label = _rgb_to_index(path, rgb, np.asarray(colors), color_ignore, ignore_index,
                                  np.asarray(img) == ignore_index if mode == "P" else None)
        elif mode in ("P", "L", "1", "I;16", "I;16B", "I;16L", "I", "LA", "PA"):
            # with alpha (a GIMP export of a grey mask): the values, their alpha left aside
            label = np.asarray(img.getchannel(0) if mode[1:] == "A" else img).astype(np.int64)
        else:
            raise DataError(path, f"mask has unsupported mode {mode}: expected an index or "
                                  f"palette PNG")
    raw, label = label, remap_values(label, remap, remap_other, void=ignore_index)
    if num_classes is not None:
        depth = "16-bit mask: " if mode.startswith("I") else ""
        check_label_values(path, label, num_classes, ignore_index, prefix=depth,
                           advice=advice.values)
    return label, raw


def _rgb_to_index(path: Path, rgb: np.ndarray, colors: np.ndarray,
                  color_ignore: tuple[int, int, int] | None, ignore_index: int,
                  at_ignore: np.ndarray | None = None) -> np.ndarray:
    code = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    ignored = [] if color_ignore is None else [(ignore_index, color_ignore)]
    table = {(int(r) << 16) | (int(g) << 8) | int(b): k
             for k, (r, g, b) in [*enumerate(colors), *ignored]}
    keys = np.array(sorted(table), dtype=np.int64)
    values = np.array([table[k] for k in keys], dtype=np.int64)
    pos = np.searchsorted(keys, code).clip(0, len(keys) - 1)
    known = keys[pos] == code
    label = values[pos]
    if at_ignore is not None:  # a palette's void index (VOC's border) of no class's colour
        label[at_ignore & ~known] = ignore_index
        known |= at_ignore
    if not known.all():
        bad = np.unique(code[~known])[:5]
        shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in bad)
        raise DataError(path, f"{int((~known).sum())} pixels have colours not in the colour "
                              f"table, e.g. {shown}: save masks without antialiasing (and resize "
                              f"them nearest-neighbour), which blends class colours along edges, "
                              f"or add a class's colour missing from the table")
    return label


def remap_values(label: np.ndarray, remap: Mapping[int, int] | None,
                 other: int | None = None, void: int | None = None) -> np.ndarray:
    """Replace raw mask values (``{255: 1}`` for 0/255 masks); with ``other``, every value
    ``remap`` does not list becomes ``other``, but ``void`` (unless listed)."""
    if not remap and other is None:
        return label
    if other is None:
        out = label.copy()
    else:
        out = np.full_like(label, other)
        if void is not None:
            out[label == void] = void
    for src, dst in (remap or {}).items():
        out[label == int(src)] = int(dst)
    return out


def passed_through(raw: np.ndarray, remap: Mapping[int, int], num_classes: int) -> set[int]:
    """The raw mask values ``remap`` does not list that stay class indices where that looks
    unmeant: the table maps a class index elsewhere (raw values are no class indices, as
    Cityscapes' ids) or other values onto that class (``{255: 1}`` passes 0 unremarked)."""
    kept = set(range(num_classes)) - set(remap)
    renames_classes = any(0 <= k < num_classes and v != k for k, v in remap.items())
    suspect = kept if renames_classes else kept & set(remap.values())
    if not suspect:
        return set()
    counts = np.bincount(raw[(raw >= 0) & (raw < num_classes)].ravel(), minlength=num_classes)
    return {v for v in suspect if counts[v]}


def void_first(path: PathLike, stored: np.ndarray, num_classes: int, ignore_index: int,
               *, advice: str = MASK_ADVICE.values) -> np.ndarray:
    """Labels stored as 0 for void and k + 1 for class k, checked, as class indices with void
    ``ignore_index``."""
    _refuse_values(path, stored, (stored < 0) | (stored > num_classes),
                   f"label values outside [0, {num_classes + 1}) (0 void, 1-{num_classes} the "
                   f"classes)", advice)
    return np.where(stored == 0, ignore_index, stored - 1)


def _refuse_values(path: PathLike, label: np.ndarray, bad: np.ndarray, outside: str,
                   advice: str) -> None:
    """A DataError naming the first few distinct ``bad`` values, their pixels and ``advice``."""
    if bad.any():
        values = np.unique(label[bad])
        shown = ", ".join(str(int(v)) for v in values[:8]) + (" ..." if len(values) > 8 else "")
        raise DataError(path, f"{outside}: {shown} ({int(bad.sum())} pixels). "
                              f"{advice[:1].upper() + advice[1:]}")


def check_label_values(path: PathLike, label: np.ndarray, num_classes: int, ignore_index: int,
                       *, prefix: str = "", advice: str = MASK_ADVICE.values) -> None:
    """A :class:`DataError` ending with ``advice`` for values neither class nor ignore."""
    _refuse_values(path, label, ((label < 0) | (label >= num_classes)) & (label != ignore_index),
                   f"{prefix}label values outside [0, {num_classes}) other than the ignore value "
                   f"{ignore_index}", advice)
