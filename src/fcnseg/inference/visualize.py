"""Pictures of predictions are drawn with Pillow alone (the core install has no matplotlib):
colour label maps, overlays, per-class heatmaps and index PNGs, and annotated pictures
(legends, colour bars, titled panels, reliability diagrams)."""

from __future__ import annotations

import functools
import importlib.util
import io
import logging
import math
import os
import unicodedata
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fcnseg.data.palette import BACKGROUND_NAMES as BACKGROUND_NAMES  # re-exported
from fcnseg.data.palette import background_indices
from fcnseg.data.palette import colorize as colorize  # re-exported
from fcnseg.utils.files import atomic_write_bytes

_log = logging.getLogger(__name__)

# Anchor colours of matplotlib's viridis at 0, 1/4, 1/2, 3/4 and 1 (its published key colours);
# the table interpolates linearly between them, close enough for a picture.
_VIRIDIS_ANCHORS = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64
)

COLORMAPS = ("viridis", "jet", "gray")


def colormap_lut(name: str = "viridis") -> np.ndarray:
    """A 256×3 uint8 lookup table for ``name`` (one of :data:`COLORMAPS`)."""
    t = np.linspace(0.0, 1.0, 256)
    if name == "viridis":
        pos = np.linspace(0.0, 1.0, len(_VIRIDIS_ANCHORS))
        rgb = np.stack([np.interp(t, pos, _VIRIDIS_ANCHORS[:, c]) for c in range(3)], -1) / 255
    elif name == "jet":
        # The classic piecewise-linear jet: blue → cyan → yellow → red.
        rgb = np.stack([np.clip(1.5 - np.abs(4 * t - k), 0, 1) for k in (3, 2, 1)], -1)
    elif name == "gray":
        rgb = np.repeat(t[:, None], 3, axis=1)
    else:
        raise ValueError(f"unknown colormap {name!r}; known: {COLORMAPS}")
    return np.round(rgb * 255).astype(np.uint8)


def normalize_palette(palette: np.ndarray | Iterable[Iterable[int]]) -> np.ndarray:
    """Any palette (n×3 values, n ≤ 256) as a 256×3 uint8 array, missing entries black."""
    pal = np.zeros((256, 3), dtype=np.uint8)
    p = np.asarray(list(palette) if not isinstance(palette, np.ndarray) else palette)
    p = p.astype(np.int64).reshape(-1, 3)[:256]
    if p.size and (p.min() < 0 or p.max() > 255):
        raise ValueError("palette entries must be in 0..255")
    pal[: len(p)] = p
    return pal


#: The classes an overlay leaves unblended (:func:`fcnseg.data.palette.background_indices`).
background_classes = background_indices


def class_outlines(label: np.ndarray, exclude: Iterable[int] = ()) -> np.ndarray:
    """An H×W bool mask of region borders: pixels with a 4-neighbour of another label, except
    those of the ``exclude`` classes (an outline against the background lies on the object's
    side, one pixel thin; where two objects touch, both sides are marked)."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"a label map must be H×W, got shape {label.shape}")
    edge = np.zeros(label.shape, dtype=bool)
    dy = label[1:] != label[:-1]
    dx = label[:, 1:] != label[:, :-1]
    edge[1:] |= dy
    edge[:-1] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    skip = list(exclude)
    if skip:
        edge &= ~np.isin(label, skip)
    return edge


def overlay(image: np.ndarray, label: np.ndarray, palette: np.ndarray, alpha: float = 0.5, *,
            exclude: Iterable[int] = (), outlines: bool = False,
            grey_under: bool = False) -> np.ndarray:
    """Blend the label colours over an H×W×3 uint8 image (:func:`blend`), but for the
    ``exclude`` classes (e.g. :func:`background_classes`); ``outlines`` draws the region
    borders (:func:`class_outlines`) at full strength; ``grey_under`` blends over the image's
    lightness (:func:`grey_picture`), so that stretched bands' hues do not change the colours."""
    image = np.asarray(image)
    label = np.asarray(label)
    if image.ndim != 3 or image.shape[-1] != 3 or image.shape[:2] != label.shape:
        raise ValueError(f"overlay needs an H×W×3 image and an H×W label of the same size, "
                         f"got {image.shape} and {label.shape}")
    colour = colorize(label, palette)
    out = blend(grey_picture(image) if grey_under else image, colour, alpha)
    skip = list(exclude)
    if skip:
        keep = np.isin(label, skip)
        out[keep] = image[keep]
    if outlines:
        edge = class_outlines(label, skip)
        out[edge] = colour[edge]
    return out


def grey_picture(image: np.ndarray) -> np.ndarray:
    """An H×W×3 uint8 image's lightness (ITU-R 601 luma, as Pillow's "L") in three channels."""
    image = np.asarray(image)
    luma = image[..., 0] * np.float32(0.299)  # a channel at a time: 4 bytes a pixel
    luma += image[..., 1] * np.float32(0.587)
    luma += image[..., 2] * np.float32(0.114)
    grey = np.clip(np.round(luma, out=luma), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def blend(image: np.ndarray, picture: np.ndarray, alpha: float) -> np.ndarray:
    """``(1-alpha)·image + alpha·picture`` for two H×W×3 uint8 arrays, rounded to uint8."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    image, picture = np.asarray(image), np.asarray(picture)
    if (image.dtype == picture.dtype == np.uint8 and image.shape == picture.shape
            and isinstance(alpha, (int, float, np.number))):
        # Looked up among the 65536 pairs, computed once per alpha: the same, several times faster.
        # Indexed, not np.take, which would copy the pairs as 8-byte indices (1 GB at 40 MP).
        pair = image.astype(np.uint16) << 8
        pair |= picture
        return _blend_table(alpha)[pair]
    return _blend_values(image, picture, alpha)


def _blend_values(image: np.ndarray, picture: np.ndarray, alpha: float) -> np.ndarray:
    mixed = (1.0 - alpha) * np.asarray(image, np.float32) + alpha * np.asarray(picture, np.float32)
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


# typed: a NumPy float64 alpha makes the arithmetic float64, a Python float leaves it float32.
@functools.lru_cache(maxsize=16, typed=True)
def _blend_table(alpha: float) -> np.ndarray:
    """:func:`_blend_values` of every uint8 pair, at index ``256·image + picture``."""
    values = np.arange(256, dtype=np.uint8)
    table = _blend_values(np.repeat(values, 256), np.tile(values, 256), alpha)
    table.flags.writeable = False  # shared between threads and calls
    return table


def heatmap(scores: np.ndarray, colormap: str | np.ndarray = "viridis", *,
            vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """An H×W score map as an H×W×3 uint8 image: ``[vmin, vmax]`` (default: the map's range)
    mapped linearly onto ``colormap`` (a name from :data:`COLORMAPS` or a 256×3 table), values
    outside clipped; a constant map gets the colormap's first colour."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"heatmap needs an H×W score map, got shape {s.shape}")
    lut = colormap_lut(colormap) if isinstance(colormap, str) else np.asarray(colormap, np.uint8)
    if lut.shape != (256, 3):
        raise ValueError(f"a colormap table must be 256×3, got {lut.shape}")
    s = np.nan_to_num(s)
    lo = float(s.min()) if vmin is None else float(vmin)
    hi = float(s.max()) if vmax is None else float(vmax)
    t = np.zeros_like(s) if hi <= lo else np.clip((s - lo) / (hi - lo), 0.0, 1.0)
    return lut[np.round(t * 255).astype(np.int64)]


def label_png_bytes(label: np.ndarray, palette: np.ndarray) -> bytes:
    """An H×W label map as PNG bytes of the class indices: a palette PNG in the model's colours
    for up to 256 classes, a 16-bit grayscale PNG for more."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"a label map must be H×W, got shape {label.shape}")
    if label.size and (label.min() < 0 or label.max() > 65535):
        raise ValueError(f"label values must be in 0..65535 for a PNG, got "
                         f"{label.min()}..{label.max()}")
    if not label.size or label.max() <= 255:
        img = Image.fromarray(label.astype(np.uint8))  # "L"; putpalette makes it "P"
        img.putpalette(normalize_palette(palette).reshape(-1).tolist())
    else:
        img = Image.fromarray(label.astype(np.uint16))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_label_png(path: str | os.PathLike[str], label: np.ndarray, palette: np.ndarray) -> None:
    """Write an H×W label map as :func:`label_png_bytes` does, atomically."""
    try:
        data = label_png_bytes(label, palette)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    atomic_write_bytes(path, data)


def read_label_png(path: str | os.PathLike[str]) -> np.ndarray:
    """A label PNG's indices (never its colours): uint8, or int64 for 16-bit files."""
    with Image.open(path, formats=("PNG",)) as img:  # no other plugin ever sees the data
        if img.mode in ("P", "L"):
            return np.array(img, dtype=np.uint8)
        if img.mode.startswith("I"):
            return np.array(img).astype(np.int64)
        raise ValueError(f"{path}: a label PNG must be palette or grayscale, not {img.mode}")


# -- annotated pictures: legends, colour bars, titled panels ----------------------------------

_PAPER = (255, 255, 255)
_INK = (30, 30, 30)
_MUTED = (110, 110, 110)
_BAR = (76, 120, 168)  # reliability diagram: accuracy bars,
_CONFIDENCE = (180, 40, 30)  # mean-confidence marks,
_GAP = (244, 185, 175)  # and the gap between them, drawn as in the key


Font = ImageFont.ImageFont | ImageFont.FreeTypeFont

# Fonts tried in turn for each text, the first that has a glyph for every character used:
# FCNSEG_FONT (a .ttf/.otf file), then DejaVu Sans or Arial from the system's font folders or
# matplotlib's, then Pillow's bundled font (ASCII only).
_FONT_NAMES = ("DejaVuSans.ttf", "Arial Unicode.ttf", "arial.ttf")
_UNDRAWABLE = "?"  # what stands for a character no font has


@functools.lru_cache(maxsize=1)
def _font_files() -> tuple[str, ...]:
    """The font files found, resolved once (Pillow searches the system's folders by name)."""
    names = [os.environ.get("FCNSEG_FONT", ""), *_FONT_NAMES]
    spec = importlib.util.find_spec("matplotlib")  # located, not imported
    for folder in (spec.submodule_search_locations or []) if spec else []:
        names.append(os.path.join(folder, "mpl-data", "fonts", "ttf", "DejaVuSans.ttf"))
    found: list[str] = []
    for name in filter(None, names):
        try:
            path = str(ImageFont.truetype(name, 12).path)
        except OSError:
            if name == names[0]:
                _log.warning("FCNSEG_FONT=%s: not a font file Pillow can read", name)
            continue
        if path not in found:
            found.append(path)
    return tuple(found)


@functools.lru_cache(maxsize=32)
def _fonts(size: int) -> tuple[Font, ...]:
    fonts: list[Font] = [ImageFont.truetype(path, size) for path in _font_files()]
    try:  # Pillow's bundled font: no font files needed
        fonts.append(ImageFont.load_default(size=size))
    except TypeError:  # Pillow < 10.1 has only its small fixed bitmap font
        fonts.append(ImageFont.load_default())
    return tuple(fonts)


def _font(size: int) -> Font:
    """The first font, for texts of ASCII digits and words."""
    return _fonts(size)[0]


@functools.lru_cache(maxsize=16)
def _missing_glyph(font: Font) -> tuple[tuple[int, int], bytes]:
    return _glyph(font, "\U000f0000")  # a private-use character no font draws


def _glyph(font: Font, char: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(char)
    return mask.size, bytes(mask)


def _has_glyphs(font: Font, text: str) -> bool:
    """Whether ``font`` draws every character of ``text`` (not as its missing-glyph box)."""
    try:
        missing = _missing_glyph(font)
        return all(ch.isspace() or _glyph(font, ch) != missing for ch in set(text))
    except (UnicodeError, OSError, ValueError):  # the bitmap font takes Latin-1 only
        return False


@functools.lru_cache(maxsize=256)
def fitted_text(texts: tuple[str, ...], size: int) -> tuple[Font, tuple[str, ...]]:
    """A font of ``size`` pixels that draws every one of ``texts``, and the texts to draw.
    Where no font found has some character, the first font draws the texts with accents
    dropped from the letters it lacks (é → e) and "?" for the other missing characters, and
    a warning names them: never its missing-glyph box."""
    fonts = _fonts(size)
    for font in fonts:
        if all(_has_glyphs(font, t) for t in texts):
            return font, texts
    font = fonts[0]
    drawn = tuple("".join(_stand_in(font, ch) for ch in t) for t in texts)
    _log.warning("no font found draws every character of %s; drawn as %s (set FCNSEG_FONT to "
                 "a font file that has them)", ", ".join(map(repr, texts)),
                 ", ".join(map(repr, drawn)))
    return font, drawn


def _stand_in(font: Font, char: str) -> str:
    if _has_glyphs(font, char):
        return char
    plain = "".join(c for c in unicodedata.normalize("NFKD", char)
                    if not unicodedata.combining(c))
    return plain if plain and plain != char and _has_glyphs(font, plain) else _UNDRAWABLE


def _text_width(font: Font, text: str) -> int:
    return int(math.ceil(font.getbbox(text)[2]))


def text_size_for(height: int, width: int | None = None) -> int:
    """A font size in proportion to a picture ``height`` tall (and ``width`` wide): at least 12
    pixels, at most a twelfth of the width."""
    size = round(height / 22)
    if width is not None:
        size = min(size, round(width / 12))
    return max(12, int(size))


def _side_by_side(pictures: Sequence[np.ndarray], gap: int) -> np.ndarray:
    """``pictures`` left to right, ``gap`` apart, on a white canvas as tall as the tallest."""
    width = sum(p.shape[1] for p in pictures) + gap * (len(pictures) - 1)
    out = np.full((max(p.shape[0] for p in pictures), width, 3), 255, dtype=np.uint8)
    x = 0
    for p in pictures:
        out[: p.shape[0], x : x + p.shape[1]] = p
        x += p.shape[1] + gap
    return out


def legend_entries(label: np.ndarray, palette: np.ndarray, class_names: Sequence[str], *,
                   exclude: Iterable[int] = (), ignore_index: int | None = None
                   ) -> list[tuple[str, tuple[int, int, int]]]:
    """(name, colour) for each class present in ``label``, in class order, except ``exclude``;
    ``ignore_index`` is listed as "ignored", other values without a name by number."""
    pal = normalize_palette(palette)
    skip = set(int(c) for c in exclude)
    entries = []
    for c in np.unique(np.asarray(label)).tolist():
        if c in skip:
            continue
        name = (str(class_names[c]) if 0 <= c < len(class_names)
                else "ignored" if c == ignore_index else str(c))
        entries.append((name, tuple(int(v) for v in pal[c]) if 0 <= c < 256 else (0, 0, 0)))
    return entries


def legend_panel(entries: Sequence[tuple[str, Sequence[int]]], *, height: int,
                 font_size: int | None = None, empty_text: str = "no classes") -> np.ndarray:
    """A white panel of colour swatches and names, in columns that fit ``height`` when it
    holds three rows or more (else one column, taller)."""
    size = font_size or text_size_for(height)
    row, pad, swatch = round(size * 1.6), max(4, size // 2), size
    items = list(entries) or [(empty_text, None)]
    font, names = fitted_text(tuple(str(n) for n, _ in items), size)
    items = [(n, c) for n, (_, c) in zip(names, items, strict=True)]
    rows = (height - 2 * pad) // row
    if rows < 3:
        rows = len(items)
    columns = [items[i : i + rows] for i in range(0, len(items), rows)]
    widths = [swatch + pad + max(_text_width(font, str(n)) for n, _ in col) for col in columns]
    width = pad + sum(w + 2 * pad for w in widths)
    panel_h = max(height, 2 * pad + min(rows, len(items)) * row)
    img = Image.new("RGB", (width, panel_h), _PAPER)
    draw = ImageDraw.Draw(img)
    x = pad
    for col, w in zip(columns, widths, strict=True):
        for r, (name, colour) in enumerate(col):
            y = pad + r * row + (row - swatch) // 2
            if colour is None:
                draw.text((x, y), str(name), fill=_MUTED, font=font)
                continue
            draw.rectangle([x, y, x + swatch - 1, y + swatch - 1],
                           fill=tuple(int(v) for v in colour), outline=_MUTED,
                           width=max(1, size // 20))
            draw.text((x + swatch + pad, y + swatch / 2), str(name), fill=_INK, font=font,
                      anchor="lm")
        x += w + 2 * pad
    return np.asarray(img)


def add_legend(picture: np.ndarray, entries: Sequence[tuple[str, Sequence[int]]], *,
               font_size: int | None = None, empty_text: str = "no classes") -> np.ndarray:
    """``picture`` with a :func:`legend_panel` on its right (a taller one extends the canvas
    down), in text scaled with the picture (:func:`text_size_for`) unless ``font_size``."""
    picture = np.asarray(picture)
    size = font_size or text_size_for(*picture.shape[:2])
    key = tuple((str(name), None if colour is None else tuple(int(v) for v in colour))
                for name, colour in entries)
    panel = _legend_panel_once(key, picture.shape[0], size, empty_text)
    return _side_by_side([picture, panel], gap=max(4, size // 2))


# The pictures of one folder show a few sets of classes over and over: each set's legend is
# drawn once (read-only, as it is shared between threads).
@functools.lru_cache(maxsize=32)
def _legend_panel_once(entries: tuple[tuple[str, tuple[int, ...] | None], ...], height: int,
                       font_size: int, empty_text: str) -> np.ndarray:
    panel = legend_panel(entries, height=height, font_size=font_size, empty_text=empty_text)
    panel.flags.writeable = False
    return panel


def _with_title(body: np.ndarray, text: str, size: int) -> np.ndarray:
    """``body`` under a row holding ``text``; the canvas widens if the text is wider."""
    font, (text,) = fitted_text((text,), size)
    row = round(size * 1.7)
    title = Image.new("RGB", (max(body.shape[1], _text_width(font, text) + 4), row), _PAPER)
    ImageDraw.Draw(title).text((2, row / 2), text, fill=_INK, font=font, anchor="lm")
    out = np.full((row + body.shape[0], title.width, 3), 255, dtype=np.uint8)
    out[:row] = np.asarray(title)
    out[row:, : body.shape[1]] = body
    return out


def titled_panels(panels: Sequence[np.ndarray], titles: Sequence[str], *,
                  font_size: int | None = None) -> np.ndarray:
    """Pictures side by side, each with its title above it."""
    if len(panels) != len(titles):
        raise ValueError(f"{len(panels)} panels but {len(titles)} titles")
    size = font_size or text_size_for(max(p.shape[0] for p in panels))
    titled = [_with_title(np.asarray(p), t, size) for p, t in zip(panels, titles, strict=True)]
    return _side_by_side(titled, gap=max(6, size // 2))


def _format_tick(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:.3g}"


def colorbar(height: int, colormap: str | np.ndarray = "viridis", *, vmin: float = 0.0,
             vmax: float = 1.0, font_size: int | None = None, ticks: int = 5) -> np.ndarray:
    """A vertical colour bar ``height`` pixels tall (``vmax`` at the top) with tick labels."""
    size = font_size or text_size_for(height)
    font = _font(size)
    pad = size // 2 + 1  # room for the top and bottom labels' halves
    bar_h = max(height - 2 * pad, 2)
    bar_w = max(size, 10)
    labels = [_format_tick(vmin + (vmax - vmin) * k / (ticks - 1)) for k in range(ticks)]
    width = bar_w + 8 + max(_text_width(font, t) for t in labels) + 4
    img = Image.new("RGB", (width, height), _PAPER)
    column = heatmap(np.linspace(1.0, 0.0, bar_h)[:, None], colormap, vmin=0.0, vmax=1.0)
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, pad - 1, bar_w + 1, pad + bar_h], outline=_MUTED)  # a frame around it
    img.paste(Image.fromarray(np.repeat(column, bar_w, axis=1)), (1, pad))
    for k, text in enumerate(labels):
        y = pad + (bar_h - 1) * (1 - k / (ticks - 1))
        draw.line([bar_w + 2, y, bar_w + 5, y], fill=_INK)
        draw.text((bar_w + 8, y), text, fill=_INK, font=font, anchor="lm")
    return np.asarray(img)


@dataclass(frozen=True)
class PictureStyle:
    """How overlays and heatmaps are drawn: ``unblended``, the classes left as the photo
    (usually the background); ``legend``, a legend beside overlays, a title and colour bar on
    heatmaps; ``heatmap_over_photo``, heatmaps over the photo at ``alpha``; ``max_side``,
    the pictures drawn at most that many pixels on the photo's longer side (None: the photo's
    size; the label PNGs, the data, keep it always); ``overlay``: False writes none."""

    alpha: float = 0.5
    colormap: str = "viridis"
    legend: bool = True
    outlines: bool = False
    unblended: tuple[int, ...] = ()
    heatmap_over_photo: bool = False
    max_side: int | None = None
    overlay: bool = True


def picture_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(height, width) of a picture of a ``height``×``width`` image drawn at most ``max_side``
    pixels on its longer side (None: as large as the image; never enlarged)."""
    if max_side is None or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def shrunk(values: np.ndarray, size: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """``values`` (H×W×3 uint8, or H×W labels or floats) resized to ``size`` (height, width):
    antialiased, or the ``nearest`` value for labels; as they are when of that size."""
    values = np.asarray(values)
    if values.shape[:2] == tuple(size):
        return values
    if nearest:  # labels: uint8, else int32 for Pillow (no model has 2**31 classes)
        small = Image.fromarray(values if values.dtype == np.uint8 else values.astype(np.int32))
        resized = small.resize(size[::-1], Image.NEAREST)
        return np.asarray(resized).astype(values.dtype)
    if values.ndim == 2:
        plane = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32))
        return np.asarray(plane.resize(size[::-1], Image.BILINEAR))
    return np.asarray(Image.fromarray(values).resize(size[::-1], Image.LANCZOS))


def labelled_overlay(image: np.ndarray, label: np.ndarray, palette: np.ndarray,
                     class_names: Sequence[str], style: PictureStyle,
                     exclude: Iterable[int] | None = None, *,
                     grey_under: bool = False) -> np.ndarray:
    """:func:`overlay` of ``label`` on ``image`` as ``style`` draws it, with a legend of the
    classes present; the ``exclude`` classes (default ``style.unblended``) stay out of both."""
    keep = tuple(style.unblended if exclude is None else exclude)
    picture = overlay(image, label, palette, style.alpha, exclude=keep, outlines=style.outlines,
                      grey_under=grey_under)
    if not style.legend:
        return picture
    entries = legend_entries(label, palette, class_names, exclude=keep)
    return add_legend(picture, entries, empty_text="background only")


@dataclass(frozen=True)
class HeatmapStyle:
    """How :func:`heatmap_picture` draws a map: ``colormap`` from ``vmin`` to ``vmax`` (None: the
    map's own), at ``alpha`` over a photo, with a title and colour bar (``annotate``) in
    ``font_size`` text (None: by the picture's height)."""

    colormap: str | np.ndarray = "viridis"
    vmin: float | None = 0.0
    vmax: float | None = 1.0
    alpha: float = 0.6
    font_size: int | None = None
    annotate: bool = True


def heatmap_picture(scores: np.ndarray, *, title: str | None = None,
                    image: np.ndarray | None = None,
                    style: HeatmapStyle = HeatmapStyle()) -> np.ndarray:
    """A :func:`heatmap`, over ``image`` (H×W×3 uint8) when given, with a title above and a
    colour bar beside it, as ``style`` says."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64))
    lo = float(s.min()) if style.vmin is None else float(style.vmin)
    hi = float(s.max()) if style.vmax is None else float(style.vmax)
    picture = heatmap(s, style.colormap, vmin=lo, vmax=hi)
    if image is not None:
        image = np.asarray(image)
        if image.shape != picture.shape:
            raise ValueError(f"heatmap over a photo needs an H×W×3 image of the map's size "
                             f"{s.shape}, got {image.shape}")
        picture = blend(image, picture, style.alpha)
    if not style.annotate:
        return picture
    size = style.font_size or text_size_for(*picture.shape[:2])
    bar = colorbar(picture.shape[0], style.colormap, vmin=lo, vmax=hi if hi > lo else lo + 1,
                   font_size=size)
    body = _side_by_side([picture, bar], gap=max(4, size // 2))
    if title is None:
        return body
    return _with_title(body, title, size)


def enlarge(picture: np.ndarray, min_height: int = 256) -> np.ndarray:
    """``picture`` repeated by the smallest whole factor that makes it ``min_height`` tall."""
    picture = np.asarray(picture)
    factor = max(1, math.ceil(min_height / max(picture.shape[0], 1)))
    if factor == 1:
        return picture
    return np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1)


def comparison_strip(image: np.ndarray, truth: np.ndarray, pred: np.ndarray,
                     palette: np.ndarray, class_names: Sequence[str], *,
                     ignore_index: int | None = 255, min_height: int = 256) -> np.ndarray:
    """image | ground truth | prediction, titled, enlarged to ``min_height`` (:func:`enlarge`),
    with a legend of the classes in either; the prediction's title gives its pixel accuracy."""
    image, truth, pred = np.asarray(image), np.asarray(truth), np.asarray(pred)
    if not (image.shape[:2] == truth.shape == pred.shape) or image.ndim != 3:
        raise ValueError(f"a comparison strip needs an H×W×3 image and two H×W label maps of "
                         f"its size, got {image.shape}, {truth.shape} and {pred.shape}")
    scored = truth != ignore_index if ignore_index is not None else np.ones(truth.shape, bool)
    right = float((truth[scored] == pred[scored]).mean()) if scored.any() else math.nan
    score = "" if math.isnan(right) else f" ({100 * right:.1f}% of pixels right)"
    panels = [enlarge(image.astype(np.uint8), min_height), enlarge(colorize(truth, palette),
              min_height), enlarge(colorize(pred, palette), min_height)]
    strip = titled_panels(panels, ["image", "ground truth", "prediction" + score])
    both = np.concatenate([truth.reshape(-1), pred.reshape(-1)])
    return add_legend(strip, legend_entries(both, palette, class_names,
                                            ignore_index=ignore_index))


# Where a reliability diagram's parts lie, in pixels: the plot's square, the histogram below.
_X0, _Y0, _SIDE = 58, 56, 400
_HIST_TOP, _HIST_H = _Y0 + _SIDE + 22, 80


def _px(v: float) -> float:
    return _X0 + v * _SIDE


def _py(v: float) -> float:
    return _Y0 + (1 - v) * _SIDE


def _bin_box(b: Mapping[str, Any], top: float, bottom: float) -> list[float]:
    """The rectangle over bin ``b``'s confidence range, one pixel in from each side."""
    return [_px(b["lower"]) + 1, top, _px(b["upper"]) - 1, bottom]


_TEXT_SIZE = 14
_SMALL = _TEXT_SIZE - 2
_TICKS = [k / 5 for k in range(6)]


#: The reliability diagram's key: (colour, text, drawn as a line rather than a swatch).
_RELIABILITY_KEY = [
    (_BAR, "accuracy of the pixels in a bin", False),
    (_CONFIDENCE, "their mean confidence", True),
    (_GAP, "the gap between the two", False),
    ((90, 90, 90), "perfect calibration", True),
]


def reliability_diagram(calibration: Mapping[str, Any], *, title: str | None = None) -> np.ndarray:
    """A reliability diagram (RGB) of what :meth:`fcnseg.metrics.CalibrationBins.compute`
    returns: per confidence bin, the accuracy (bars) against the mean confidence (the gap
    shaded), the diagonal of perfect calibration, and below it each bin's share of pixels."""
    small = _font(_SMALL)
    # The key goes beside the plot, outside the axes: bars may reach any height in any bin.
    kx = _X0 + _SIDE + 16
    key_width = 30 + max(_text_width(small, text) for _, text, _ in _RELIABILITY_KEY)
    img = Image.new("RGB", (kx + key_width + 24, _HIST_TOP + _HIST_H + 48), _PAPER)
    draw = ImageDraw.Draw(img)
    ece, pixels = calibration.get("ece"), int(calibration.get("pixels", 0))
    title_font, (title,) = fitted_text((title or "reliability diagram",), _TEXT_SIZE)
    draw.text((_X0, 8), title, fill=_INK, font=title_font)
    ece_text = "n/a" if ece is None or not math.isfinite(ece) else f"{100 * ece:.2f}%"
    draw.text((_X0, 28), f"expected calibration error {ece_text} over {pixels:,} pixels",
              fill=_MUTED, font=small)
    for v in _TICKS:  # the plot's grid with its value labels
        draw.line([_px(v), _Y0, _px(v), _Y0 + _SIDE], fill=(232, 232, 232))
        draw.line([_X0, _py(v), _X0 + _SIDE, _py(v)], fill=(232, 232, 232))
        draw.text((_X0 - 6, _py(v)), f"{v:.1f}", fill=_INK, font=small, anchor="rm")
    bins = list(calibration.get("bins", []))
    _draw_reliability_bins(img, [b for b in bins if b["count"]])
    for i, (colour, text, as_line) in enumerate(_RELIABILITY_KEY):
        y = _Y0 + i * 20
        if as_line:
            draw.line([kx, y + 6, kx + 14, y + 6], fill=colour, width=2)
        else:
            draw.rectangle([kx, y, kx + 14, y + 12], fill=colour, outline=_MUTED)
        draw.text((kx + 20, y + 6), text, fill=_INK, font=small, anchor="lm")
    _draw_share_histogram(draw, bins)
    return np.asarray(img)


def _draw_reliability_bins(img: Image.Image, filled: Sequence[Mapping[str, Any]]) -> None:
    """The bars, gaps, confidence lines, diagonal, frame and axis label, drawn on ``img``."""
    draw = ImageDraw.Draw(img)
    # The bar up to the lower of accuracy and confidence, the gap up to the higher, then the
    # accuracy bar's outline over both: its top stays visible where the gap lies inside it.
    for b in filled:
        accuracy, confidence = float(b["accuracy"]), float(b["confidence"])
        lo, hi = sorted((accuracy, confidence))
        draw.rectangle(_bin_box(b, _py(lo), _py(0)), fill=_BAR)
        if hi > lo:
            draw.rectangle(_bin_box(b, _py(hi), _py(lo)), fill=_GAP)
        draw.rectangle(_bin_box(b, _py(accuracy), _py(0)), outline=(40, 70, 110))
    for b in filled:
        y = _py(float(b["confidence"]))
        draw.line(_bin_box(b, y, y), fill=_CONFIDENCE, width=2)
    draw.line([_px(0), _py(0), _px(1), _py(1)], fill=(90, 90, 90), width=2)
    draw.rectangle([_X0, _Y0, _X0 + _SIDE, _Y0 + _SIDE], outline=_INK)
    small = _font(_SMALL)
    label = Image.new("RGB", (_text_width(small, "accuracy") + 4, _TEXT_SIZE + 4), _PAPER)
    ImageDraw.Draw(label).text((2, 2), "accuracy", fill=_INK, font=small)
    label = label.rotate(90, expand=True)
    img.paste(label, (_X0 - 40 - label.width // 2, int(_Y0 + _SIDE / 2 - label.height / 2)))


def _draw_share_histogram(draw: ImageDraw.ImageDraw, bins: Sequence[Mapping[str, Any]]) -> None:
    """Below the plot: each bin's share of the pixels, scaled to the tallest, and the x axis."""
    small = _font(_SMALL)
    hy, hist_h = _HIST_TOP, _HIST_H
    counts = np.array([b["count"] for b in bins], dtype=np.float64)
    share = counts / counts.sum() if counts.sum() > 0 else counts
    top_share = float(share.max()) if share.size else 0.0
    for b, s in zip(bins, share, strict=True):
        if s <= 0:
            continue
        bar = max(1.0, hist_h * s / top_share)
        draw.rectangle(_bin_box(b, hy + hist_h - bar, hy + hist_h), fill=(150, 150, 150))
    draw.rectangle([_X0, hy, _X0 + _SIDE, hy + hist_h], outline=_INK)
    draw.text((_X0 + 4, hy + 2), f"share of pixels (tallest {100 * top_share:.1f}%)",
              fill=_MUTED, font=small)
    for v in _TICKS:
        draw.text((_px(v), hy + hist_h + 4), f"{v:.1f}", fill=_INK, font=small, anchor="mt")
    draw.text((_X0 + _SIDE / 2, hy + hist_h + 24),
              "confidence (largest class probability)", fill=_INK, font=small, anchor="mt")


#: zlib strategy for pictures: run-length matches only, 3-4 times faster than Pillow's default
#: on photos into files as small (flat drawings about a quarter larger).
PICTURE_PNG_STRATEGY = zlib.Z_RLE


def picture_png_bytes(rgb: np.ndarray) -> bytes:
    """An H×W×3 uint8 picture as PNG bytes, compressed with :data:`PICTURE_PNG_STRATEGY`."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(
        buf, format="PNG", compress_type=PICTURE_PNG_STRATEGY)
    return buf.getvalue()


def save_png(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    """Write an H×W×3 uint8 picture as a PNG (:func:`picture_png_bytes`), atomically."""
    atomic_write_bytes(path, picture_png_bytes(rgb))
