"""labelme's JSON files (one per image) are read here without labelme.
``shape_type`` may be polygon, rectangle, circle, line, linestrip, point (counted, not drawn) or
mask (a PNG of its box); the picture is ``imagePath`` (relative to the JSON), else ``imageData``."""

from __future__ import annotations

import base64
import binascii
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fcnseg.data.annotations.reviewed import PREDICT_MANIFEST as PREDICT_MANIFEST
from fcnseg.data.annotations.reviewed import predict_outputs
from fcnseg.data.annotations.shapes import (
    AnnotatedImage,
    Annotations,
    Shape,
    find_picture,
    load_json,
    positive_size,
    printable,
)
from fcnseg.data.folder import IMAGE_EXTENSIONS
from fcnseg.utils.validate import fields_of

#: The shape types read, and the fewest points each needs.
_MIN_POINTS = {"polygon": 3, "rectangle": 2, "circle": 2, "line": 2, "linestrip": 2,
               "point": 1, "mask": 2}


def _number_pairs(points: Any) -> list[tuple[float, float]] | None:
    """``points`` as (x, y) floats; None unless a list of pairs of numbers (not booleans)."""
    if not isinstance(points, list) or not all(
            isinstance(p, list | tuple) and len(p) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in p)
            for p in points):
        return None
    return [(float(x), float(y)) for x, y in points]


def _mask_shape(raw: dict, where: str, size: tuple[int, int] | None) -> np.ndarray | str:
    """The boolean box of a labelme mask shape, or why it is unusable."""
    from fcnseg.data.io import MAX_PIXELS

    try:
        data = base64.b64decode(raw.get("mask") or "", validate=True)
        # PNG only: no other Pillow plugin sees the data (some run outside programs).
        with Image.open(io.BytesIO(data), formats=("PNG",)) as img:
            # Read from the header: a mask larger than its image is never decoded.
            h, w = size or (img.height, img.width)
            if img.width > w or img.height > h or img.width * img.height > (MAX_PIXELS or 1 << 30):
                return f"{where}: its {img.width}×{img.height} mask is larger than the image"
            return np.asarray(img.convert("L")) > 0
    except Image.DecompressionBombError:  # a header past twice Pillow's limit
        return f"{where}: its mask's PNG header claims more pixels than any image is read with"
    except (binascii.Error, OSError, ValueError):
        return f"{where}: 'mask' is not a base64 PNG"


def read_labelme_file(path: Path, name: str, images: Path | None = None) -> AnnotatedImage:
    """One labelme JSON file; problems with single shapes are listed, not raised. Its picture:
    ``imagePath`` from the file's folder, else that name in the file's folder or ``images``."""
    source = printable(path)
    item = AnnotatedImage(name=name, source=path, labelled=True)  # no shapes: all background
    try:
        data = load_json(path, "labelme JSON file")
    except ValueError as e:
        item.error = str(e)
        return item
    if not isinstance(fields_of(data).get("shapes"), list):
        item.error = f"{source}: not a labelme JSON file (no 'shapes' list)"
        return item
    item.size = positive_size(data.get("imageHeight"), data.get("imageWidth"))
    image_path = data.get("imagePath")
    if isinstance(image_path, str) and image_path:
        given = path.parent / image_path.replace("\\", "/")
        # a path of another machine (C:\Users\bob\IMG.jpg): the picture of its name
        item.image_path = find_picture(
            [given, *(folder / given.name for folder in (images, path.parent) if folder)], given)
        item.image_name = image_path
    if isinstance(data.get("imageData"), str) and data["imageData"]:
        try:
            item.image_bytes = base64.b64decode(data["imageData"], validate=True)
        except binascii.Error:
            item.problems.append(f"{source}: 'imageData' is not base64 (not used)")
    for k, raw in enumerate(data["shapes"]):
        raw = fields_of(raw)  # not an object: refused below for its missing label
        label, kind = raw.get("label"), raw.get("shape_type") or "polygon"
        where = f"shape {k} ({kind} {label!r})"
        if not isinstance(label, str) or not label:
            item.refuse_shape(f"{source}: shape {k}: no label")
            continue
        if kind not in _MIN_POINTS:
            item.refuse_shape(f"{source}: {where}: unknown shape_type {kind!r}")
            continue
        points = _number_pairs(raw.get("points"))
        if points is None or len(points) < _MIN_POINTS[kind]:
            line = (f"{source}: {where}: 'points' must be at least {_MIN_POINTS[kind]} "
                    f"[x, y] pairs")
            if kind == "point":  # points mark no region: nothing is lost
                item.problems.append(f"{line} (skipped)")
            else:
                item.refuse_shape(line)
            continue
        if kind != "mask":
            item.shapes.append(Shape(label, kind, points, where))
        elif isinstance(box := _mask_shape(raw, where, item.size), str):
            item.refuse_shape(f"{source}: {box}")
        else:
            item.shapes.append(Shape(label, "box_mask", points[:2], where, mask=box))
    return item


def read_labelme(src: Path, images: Path | None = None) -> Annotations:
    """Every labelme JSON file under ``src`` (a folder, searched recursively, or one file),
    and the images there no JSON file annotates (not the files ``fcnseg predict`` wrote)."""
    src = Path(src)
    if src.is_file():
        return Annotations([read_labelme_file(src, src.stem, images)])
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such folder or file")
    files = sorted(p for p in src.rglob("*.json") if not p.name.startswith("."))
    items = [read_labelme_file(p, "__".join(p.relative_to(src).with_suffix("").parts), images)
             for p in files]
    # realpath, not resolve: a picture that is a link loop is reported where it is read
    used = {Path(os.path.realpath(p)) for item in items
            for p in (item.source.with_suffix(""), item.image_path) if p is not None}
    used |= set(predict_outputs(src))
    unannotated = [p for p in sorted(src.rglob("*"))
                   if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                   and p.resolve() not in used and p.with_suffix("").resolve() not in used]
    return Annotations(items, unannotated)
