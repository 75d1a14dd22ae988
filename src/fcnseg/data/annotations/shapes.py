"""Shapes drawn in annotation tools, and turning them into a label map.

Every reader gives, per image, an :class:`AnnotatedImage`: its picture and its :class:`Shape`
list in drawing order. **Later shapes are drawn on top** (labelme's order, CVAT's ``z_order``),
or, with ``overlap="ignore"``, pixels that shapes of two classes cover become the ignore value.
labelme puts pixel ``(x, y)``'s centre at ``(x, y)`` and draws shapes as Pillow does (outline
included, as its ``labelme2voc``); COCO, CVAT and Label Studio put pixel ``(x, y)`` on the
square ``[x, x+1) × [y, y+1)``, inside a polygon when its centre is (even-odd, as pycocotools).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from fcnseg.data.errors import DataError
from fcnseg.data.palette import background_indices

#: labelme's labels.txt names: ``__ignore__`` is the ignore value, ``_background_`` class 0.
IGNORE_LABEL = "__ignore__"
BACKGROUND_LABEL = "_background_"

#: Shape kinds drawn by Pillow with pixel centres at integer coordinates (labelme's
#: convention); the others put pixel (x, y) on the square [x, x+1) × [y, y+1).
CENTRE_KINDS = ("polygon", "rectangle", "circle", "line", "linestrip", "point")


def printable(path: Path | str) -> str:
    """``path`` as text; a name whose bytes are not UTF-8 shows those bytes."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return repr(os.fsencode(text))
    return text


def quoted(name: str) -> str:
    """``name`` in quotes as written (a Windows path's backslashes single), escaped as Python
    writes strings where it holds a line break or another control character (one line)."""
    return f"'{name}'" if name.isprintable() else repr(name)


def sample_name(file_name: str) -> str:
    """The name an image of an annotation file gets in an imported dataset: its path without
    the suffix, folders joined by ``__`` (``train/a.jpg`` -> ``train__a``); a path that leaves
    the images folder (``../photos/img00.jpg``) gives the picture's own stem (``img00``)."""
    path = PurePosixPath(file_name.replace("\\", "/"))
    parts = path.with_suffix("").parts
    if ".." in parts or path.is_absolute():
        return path.stem
    return "__".join(p for p in parts if p not in ("", "."))


def find_picture(candidates: Iterable[Path], expected: Path) -> Path:
    """The first of ``candidates`` that is a file, else ``expected`` (messages name it)."""
    return next((c for c in candidates if c.is_file()), expected)


def load_json(path: Path, what: str) -> Any:
    """The JSON document in ``path``; a ValueError saying it is not ``what`` when it is not
    UTF-8 JSON."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except ValueError as e:  # not UTF-8, not JSON, or a number of too many digits
        raise ValueError(f"{printable(path)}: not a {what} ({e})") from None
    except RecursionError:  # arrays or objects nested thousands deep
        raise ValueError(f"{printable(path)}: not a {what} (nested too deeply)") from None
    except IsADirectoryError:  # a folder named where the file is asked for
        raise ValueError(f"{printable(path)}: a folder, not a {what}") from None


def positive_size(height: Any, width: Any) -> tuple[int, int] | None:
    """``(height, width)`` when both are positive integers, else None."""
    if isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0:
        return height, width
    return None


@dataclass
class Shape:
    """One annotated region, named in messages by ``where`` (``shape 3 (polygon 'car')``).

    ``kind``: labelme's ``polygon``, ``rectangle``, ``circle``, ``line``, ``linestrip`` or
    ``point`` (of ``points``, pixel centres at integer coordinates); ``corner_polygon`` (its
    ``rings`` in pixel-square coordinates, even-odd); ``mask`` (``mask``, an H×W boolean array,
    or ``decode(height, width)`` giving it); or ``box_mask`` (``mask`` with its top-left pixel
    at ``points[0]``). ``crowd``: a COCO ``iscrowd`` region (ignored with
    :attr:`RasterOptions.crowd_as_ignore`).
    """

    label: str
    kind: str
    points: list[tuple[float, float]] = field(default_factory=list)
    where: str = ""
    rings: list[np.ndarray] = field(default_factory=list)
    mask: np.ndarray | None = None
    decode: Callable[[int, int], np.ndarray] | None = None
    crowd: bool = False


@dataclass
class AnnotatedImage:
    """One image's annotations. ``labelled``: the export marks it labelled (a labelme file, a
    CVAT frame ``<tag>``, a submitted Label Studio annotation), so without shapes it is all
    background; ``listed``: the export lists every image, labelled or not (CVAT, COCO): then
    without shapes and unlabelled, all background only with ``empty_as_background``."""

    name: str  # the stem its image and mask get in an imported folder
    source: Path  # the annotation file (messages name it)
    image_path: Path | None = None  # the picture on disk
    image_bytes: bytes | None = None  # or its bytes the annotation embeds
    size: tuple[int, int] | None = None  # (height, width) the annotation says
    shapes: list[Shape] = field(default_factory=list)  # in drawing order
    problems: list[str] = field(default_factory=list)  # found reading; the image still usable
    error: str | None = None  # one line when the image cannot be imported at all
    labelled: bool = False
    listed: bool = False
    where: str = ""  # how messages name it in a file of several (``image 'a.jpg'``)
    image_name: str = ""  # the picture's name as the annotation file gives it
    broken: list[str] = field(default_factory=list)  # shapes that cannot be drawn
    # The name an earlier import gave its picture, where it is now named apart from another
    # picture of its name (IMG_0001 of site_a__IMG_0001): that mask is set aside.
    former_name: str = ""

    def refuse_shape(self, line: str) -> None:
        """A shape that cannot be drawn: the image is left out, error names the first."""
        self.broken.append(line)
        more = f" (and {len(self.broken) - 1} more shape(s))" if len(self.broken) > 1 else ""
        # (check-data reads the annotations too: "left out", imported or scanned)
        self.error = (f"{self.broken[0]}: the shape cannot be drawn{more}; image left out "
                      f"(fix or delete the shape)")


@dataclass
class Annotations:
    """What a reader found. ``classes``: the label names in the tool's own order (COCO
    categories, CVAT's label list), which the classes follow without a labels file (empty:
    sorted); ``unreviewed``: the pictures of ``unannotated`` whose annotation is a prediction
    nobody reviewed; ``predicted_only``: those whose Label Studio tasks hold predictions and no
    annotation (one line of ``problems`` says so, for each)."""

    items: list[AnnotatedImage]
    unannotated: list[Path] = field(default_factory=list)  # not marked labelled: not imported
    classes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # about the annotations as a whole
    image_folders: list[Path] = field(default_factory=list)  # where pictures were looked for
    colours: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # the tool's (CVAT)
    listed_empty: list[AnnotatedImage] = field(default_factory=list)  # no shape or mark
    unreviewed: list[Path] = field(default_factory=list)
    predicted_only: list[Path] = field(default_factory=list)
    #: COCO's ``{id, supercategory}`` of each class, by name (a class of several: the first).
    coco_categories: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def sorted_out(cls, items: Iterable[AnnotatedImage], **extra: Any) -> Annotations:
        """The images labelled or with shapes or problems, the others as unannotated (less the
        pictures of the first)."""
        items = list(items)
        used = [i for i in items if i.labelled or i.shapes or i.error or i.problems]
        # A picture labelled in one entry is not left to annotate by another (Label Studio's
        # task of an upload beside the task of its predictions).
        taken = {i.image_path for i in used} - {None}
        empty = [i for i in items if not (i.labelled or i.shapes or i.error or i.problems)
                 and i.image_path not in taken]
        return cls(used, [i.image_path for i in empty],
                   listed_empty=[i for i in empty if i.listed], **extra)

    def renamed(self, rename: Mapping[str, str]) -> tuple[Annotations, list[str]]:
        """These annotations with each label ``rename`` maps (spaces around names not
        counting) given its new name, which merges it with a label of that name; and the
        names of ``rename`` no label has."""
        lookup = {old.strip(): new for old, new in rename.items()}
        used: set[str] = set()

        def new_name(name: str) -> str:
            if name.strip() in lookup:
                used.add(name.strip())
                return lookup[name.strip()]
            return name

        for item in [*self.items, *self.listed_empty]:
            for shape in item.shapes:
                shape.label = new_name(shape.label)

        def by_new_name(table: Mapping[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, value in table.items():
                out.setdefault(new_name(name), value)
            return out

        classes = list(dict.fromkeys(new_name(c) for c in self.classes))
        unused = [old for old in rename if old.strip() not in used]
        return replace(self, classes=classes, colours=by_new_name(self.colours),
                       coco_categories=by_new_name(self.coco_categories)), unused

    def with_empty_as_background(self) -> Annotations:
        """These annotations with listed_empty among items, all background."""
        paths = {i.image_path for i in self.listed_empty}
        return replace(self, items=[*self.items, *self.listed_empty], listed_empty=[],
                       unannotated=[p for p in self.unannotated if p not in paths])


class LabelSet:
    """Label names to class indices, from a labels file (labelme's labels.txt: ``__ignore__``
    the ignore value, the others 0, 1, ... in order) or grown from the labels found; ``fixed``
    refuses labels that are not listed. Background is one class whatever its spelling: when
    class 0 is named like background (:func:`fcnseg.data.palette.background_indices`), a
    label named like background that is not listed (CVAT's ``background``, labelme's
    ``_background_``) is class 0."""

    def __init__(self, names: Sequence[str] = (), *, fixed: bool = False,
                 ignore_index: int = 255) -> None:
        self.ignore_index = ignore_index
        self.fixed = fixed
        self.classes: list[str] = []
        self.ids: dict[str, int] = {}
        for name in names:
            self.add(name, listed=True)

    @classmethod
    def from_file(cls, path: Path, *, ignore_index: int = 255, fixed: bool = True) -> LabelSet:
        """Read labelme's labels.txt (UTF-8, one label a line, blank lines skipped)."""
        from fcnseg.data.layout import read_utf8

        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such labels file (one label name a line)")
        names = [n for ln in read_utf8(Path(path), "labels file").splitlines() if (n := ln.strip())]
        if not names:
            raise ValueError(f"{path}: no labels (expected one label name a line)")
        seen: set[str] = set()  # not names[:k]: that would compare every pair of labels
        for n in names:
            if n in seen:
                raise ValueError(f"{path}: label {n!r} listed twice")
            seen.add(n)
        return cls(names, fixed=fixed, ignore_index=ignore_index)

    def add(self, name: str, listed: bool = False) -> int:
        """The class of ``name``, a new one after the others when it is not known yet (but a
        background spelling, unless ``listed``: class 0 when that is background)."""
        if name == IGNORE_LABEL:
            self.ids[name] = self.ignore_index
        elif name not in self.ids:
            if not listed and self.background_alias(name):
                self.ids[name] = 0
            else:
                self.ids[name] = len(self.classes)
                self.classes.append(name)
        return self.ids[name]

    def background_alias(self, name: str) -> bool:
        """Whether ``name`` is another spelling of a background class 0."""
        return (name not in self.classes and background_indices([name]) == [0]
                and background_indices(self.classes[:1]) == [0])

    def index(self, name: str) -> int | None:
        """The class of ``name``; None when ``fixed`` and it is not listed."""
        if self.fixed:
            return 0 if self.background_alias(name) else self.ids.get(name)
        return self.add(name)


@dataclass(frozen=True)
class RasterOptions:
    """How shapes become a label map: ``overlap="top"`` draws later shapes over earlier ones,
    ``"ignore"`` gives pixels covered by shapes of different classes the ignore value;
    ``line_width`` is that of lines and line strips, in pixels (labelme2voc uses 10);
    ``crowd_as_ignore`` ignores COCO ``iscrowd`` regions (else their class, as semantic
    segmentation reads them)."""

    overlap: str = "top"
    line_width: float = 10.0
    crowd_as_ignore: bool = False

    def __post_init__(self) -> None:
        if self.overlap not in ("top", "ignore"):
            raise ValueError(f"overlap: expected 'top' or 'ignore', got {self.overlap!r}")
        if not self.line_width > 0:
            raise ValueError(f"line width: expected a positive number, got {self.line_width}")


def fill_polygons(rings: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """Pixels whose centre lies inside ``rings`` (even-odd), pixel (x, y) being the square
    ``[x, x+1) × [y, y+1)``; rings are N×2 arrays of (x, y) and need not be closed."""
    toggles = np.zeros((height, width + 1), np.int32)
    for ring in rings:
        ring = np.asarray(ring, np.float64).reshape(-1, 2)
        if len(ring) < 3:
            continue
        x0, y0 = ring[:, 0], ring[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        keep = y0 != y1
        x0, y0, x1, y1 = x0[keep], y0[keep], x1[keep], y1[keep]
        lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
        # Rows whose centre r + 0.5 is in [lo, hi): r from ceil(lo - 0.5) to ceil(hi - 0.5) - 1.
        first = np.clip(np.ceil(lo - 0.5), 0, height).astype(np.int64)
        last = np.clip(np.ceil(hi - 0.5), 0, height).astype(np.int64)
        counts = np.maximum(last - first, 0)
        if not counts.sum():
            continue
        edge = np.repeat(np.arange(len(first)), counts)
        rows = first[edge] + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts,
                                                                  counts))
        t = (rows + 0.5 - y0[edge]) / (y1[edge] - y0[edge])
        xs = x0[edge] + t * (x1[edge] - x0[edge])
        cols = np.clip(np.ceil(xs - 0.5), 0, width).astype(np.int64)
        np.add.at(toggles, (rows, cols), 1)
    return (np.cumsum(toggles, axis=1)[:, :width] % 2).astype(bool)


Box = tuple[int, int, np.ndarray]  # (top row, left column, boolean pixels of the box)


def _points_of(shape: Shape) -> np.ndarray:
    """Every (x, y) point of a shape given by points, its rings' included."""
    if shape.kind == "corner_polygon":
        return np.concatenate([np.asarray(r, np.float64).reshape(-1, 2) for r in shape.rings])
    return np.asarray(shape.points, np.float64).reshape(-1, 2)


def _clipped_box(pts: np.ndarray, pad: int, height: int, width: int
                 ) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) around pts, pad more on each side, in the image; NaN refused."""
    x0 = min(max(int(math.floor(pts[:, 0].min())) - pad, 0), width)
    y0 = min(max(int(math.floor(pts[:, 1].min())) - pad, 0), height)
    x1 = max(min(int(math.ceil(pts[:, 0].max())) + pad, width), x0)
    y1 = max(min(int(math.ceil(pts[:, 1].max())) + pad, height), y0)
    return x0, y0, x1, y1


def _draw_centre_shape(shape: Shape, height: int, width: int, line_width: float) -> Box:
    """A labelme shape as labelme's shape_to_mask draws it, in its box."""
    pts = _points_of(shape)
    pad = int(math.ceil(line_width)) + 2 if shape.kind in ("line", "linestrip") else 2
    if shape.kind == "circle":
        (cx, cy), (px, py) = pts[0], pts[1]
        r = math.hypot(px - cx, py - cy)
        pts = np.array([[cx - r, cy - r], [cx + r, cy + r]])
    x0, y0, x1, y1 = _clipped_box(pts, pad, height, width)
    if x1 == x0 or y1 == y0:
        return 0, 0, np.zeros((0, 0), bool)
    canvas = Image.new("1", (x1 - x0, y1 - y0), 0)
    draw = ImageDraw.Draw(canvas)
    xy = [(float(x) - x0, float(y) - y0) for x, y in pts]
    if shape.kind == "circle":
        draw.ellipse(xy, outline=1, fill=1)
    elif shape.kind == "rectangle":
        (ax, ay), (bx, by) = xy[0], xy[1]
        draw.rectangle([min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)], outline=1, fill=1)
    elif shape.kind in ("line", "linestrip"):
        draw.line(xy, fill=1, width=max(int(round(line_width)), 1))
    else:
        draw.polygon(xy * 2 if len(xy) == 1 else xy, outline=1, fill=1)
    return y0, x0, np.asarray(canvas, bool)


def shape_box(shape: Shape, height: int, width: int, line_width: float = 10.0) -> Box:
    """One shape's pixels in its box, clipped to the H×W image: (top, left, array)."""
    if shape.kind == "mask":
        mask = shape.mask if shape.mask is not None else shape.decode(height, width)
        if mask.shape != (height, width):
            raise ValueError(f"its mask is {mask.shape[1]}×{mask.shape[0]}, the image "
                             f"{width}×{height}")
        return 0, 0, mask.astype(bool, copy=False)
    if shape.kind == "box_mask":
        x, y = (int(round(v)) for v in shape.points[0])
        box = shape.mask[max(-y, 0):max(height - y, 0), max(-x, 0):max(width - x, 0)]
        return max(y, 0), max(x, 0), box
    if shape.kind == "corner_polygon":
        x0, y0, x1, y1 = _clipped_box(_points_of(shape), 0, height, width)
        shifted = [np.asarray(r, np.float64).reshape(-1, 2) - (x0, y0) for r in shape.rings]
        return y0, x0, fill_polygons(shifted, y1 - y0, x1 - x0)
    return _draw_centre_shape(shape, height, width, line_width)


def shape_pixels(shape: Shape, height: int, width: int, line_width: float = 10.0) -> np.ndarray:
    """The H×W boolean mask of one shape."""
    y0, x0, box = shape_box(shape, height, width, line_width)
    out = np.zeros((height, width), bool)
    out[y0:y0 + box.shape[0], x0:x0 + box.shape[1]] = box
    return out


def _outside(shape: Shape, height: int, width: int, wholly: bool = True) -> bool:
    """Whether a shape given by points lies wholly outside the H×W image (or, not
    ``wholly``, reaches beyond it without being wholly outside)."""
    if shape.kind == "box_mask" or shape.kind == "mask" and not shape.points:
        return False  # (the points of a mask: the polygon it was drawn from)
    pts = _points_of(shape)
    if not len(pts):
        return wholly
    low = -0.5 if shape.kind in CENTRE_KINDS else 0.0  # the image's edges in its coordinates
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    out = x1 < low or y1 < low or x0 > width + low or y0 > height + low
    return bool(out if wholly else not out and (min(x0, y0) < low or x1 > width + low
                                                   or y1 > height + low))


def partly_outside(shape: Shape, height: int, width: int) -> bool:
    """Whether a shape given by points reaches beyond the H×W image, not wholly."""
    return shape.kind != "point" and _outside(shape, height, width, wholly=False)


#: Why pixels of an imported mask are ignored, as :func:`rasterise` counts them.
IGNORED_CROWD, IGNORED_LABEL, IGNORED_OVERLAP = "iscrowd", IGNORE_LABEL, "overlap"


def rasterise(item: AnnotatedImage, labels: LabelSet, height: int, width: int,
              options: RasterOptions = RasterOptions(),
              ignored: dict[str, int] | None = None) -> tuple[np.ndarray | None, list[str]]:
    """Draw ``item``'s shapes (but points, which mark no region) into an H×W uint8 label map
    (0 where none is). Returns the map and one warning per shape skipped, or None and one
    error per label not in a fixed label list or shape that cannot be drawn. ``ignored`` (if
    given) gets the ignored pixels counted by why (:data:`IGNORED_CROWD`, ``_LABEL``,
    ``_OVERLAP``)."""
    source = printable(item.source)
    label = np.zeros((height, width), np.uint8)
    covered = np.full((height, width), -1, np.int16)
    conflict = np.zeros((height, width), bool)
    crowd = np.zeros((height, width), bool)  # ignored as a crowd region, not as labelled
    problems: list[str] = []
    errors: list[str] = []
    for shape in item.shapes:
        if shape.kind == "point":  # no region, so no class: its label needs no list entry
            continue
        as_crowd = shape.crowd and options.crowd_as_ignore
        value = labels.ignore_index if as_crowd else labels.index(shape.label)
        if value is None:
            errors.append(f"{source}: {shape.where}: label {shape.label!r} is not in the label "
                          f"list (add it to the labels file, or import without --labels)")
            continue
        try:
            y0, x0, pixels = shape_box(shape, height, width, options.line_width)
        except DataError as e:  # a file it needs is missing or bad: the image is wrong without
            errors.append(f"{source}: {shape.where}: {e.path}: {e.problem}")
            continue
        except ValueError as e:  # the shape itself is malformed: its pixels are unknown
            errors.append(f"{source}: {shape.where}: {e}: the shape cannot be drawn; image "
                          f"left out (fix or delete the shape)")
            continue
        if not pixels.any():
            why = "outside the" if _outside(shape, height, width) else "covers no pixel of the"
            problems.append(f"{source}: {shape.where}: {why} {width}×{height} image (skipped)")
            continue
        box = (slice(y0, y0 + pixels.shape[0]), slice(x0, x0 + pixels.shape[1]))
        if options.overlap == "ignore":
            conflict[box] |= pixels & (covered[box] >= 0) & (covered[box] != value)
        covered[box][pixels] = value
        label[box][pixels] = value
        crowd[box][pixels] = as_crowd
    if errors:
        return None, errors
    if options.overlap == "ignore":
        label[conflict] = labels.ignore_index
    if ignored is not None:  # by why: an overlap, a crowd, else a label
        is_ignored = label == labels.ignore_index
        for why, where in ((IGNORED_OVERLAP, conflict), (IGNORED_CROWD, crowd & ~conflict),
                           (IGNORED_LABEL, (covered == labels.ignore_index) & ~crowd & ~conflict)):
            if n := int(np.count_nonzero(is_ignored & where)):
                ignored[why] = ignored.get(why, 0) + n
    return label, problems
