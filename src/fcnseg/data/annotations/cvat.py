"""CVAT's exports: "Segmentation mask 1.1", "CVAT for images 1.1" and "CVAT for video 1.1".

Segmentation mask 1.1 is a folder: ``labelmap.txt`` (``label:r,g,b:parts:actions`` a line),
``SegmentationClass/<name>.png`` (the class colours) and, when saved, ``JPEGImages/``.

CVAT for images 1.1 is ``annotations.xml`` (beside ``images/``): ``<image>`` elements holding
``polygon``, ``box`` and ``ellipse`` (turned ``rotation`` degrees clockwise about their centre),
``polyline``, ``mask`` (run lengths in its box), ``points`` and ``skeleton`` (counted, not
drawn), drawn in ``z_order`` then document order, pixel (x, y) on ``[x, x+1) × [y, y+1)``.

CVAT for video 1.1 holds ``<track>`` elements instead: the same shapes, one per ``frame``
(``outside="1"``: not in it). The task's frames are ``start_frame`` to ``stop_frame`` every
``frame_filter`` ``step=N``, their pictures ``images/frame_%06d.PNG`` when the export saved
them; ``<meta><source>`` names the video.
"""

from __future__ import annotations

import math
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from fcnseg.data.annotations.shapes import (
    AnnotatedImage,
    Annotations,
    Shape,
    find_picture,
    printable,
    sample_name,
    shape_pixels,
)
from fcnseg.data.errors import DataError
from fcnseg.data.folder import IMAGE_EXTENSIONS
from fcnseg.data.layout import read_utf8

#: Picture suffixes as CVAT saves them (``.PNG`` too, and ``.Png`` of the picture uploaded).
_SUFFIXES = [e for ext in IMAGE_EXTENSIONS for e in (ext, ext.upper(), ext[:2].upper() + ext[2:])]


def read_labelmap(path: Path) -> list[tuple[str, tuple[int, int, int]]]:
    """CVAT's labelmap.txt: (label, colour) in order."""
    out = []
    for n, line in enumerate(read_utf8(path, "label map").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        colour = rest.partition(":")[0].split(",")
        try:
            rgb = tuple(int(c) for c in colour)
        except ValueError:
            rgb = ()
        if not name or len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
            raise ValueError(f"{path}: line {n}: expected label:r,g,b::, got {line!r}")
        if (twin := next((n for n, c in out if c == rgb), None)) is not None:
            raise ValueError(f"{path}: labels {twin!r} and {name!r} share the colour "
                             f"{','.join(map(str, rgb))}: the masks cannot tell them apart")
        out.append((name, rgb))
    if not out:
        raise ValueError(f"{path}: no labels")
    return out


def _mask_rgb(png: Path) -> np.ndarray:
    """A mask's pixels as stored, upright; a palette PNG's (an image editor saved it so) the
    colours of its indices by its palette (past its end black, as Pillow reads them)."""
    from fcnseg.data.io import read_raw

    rgb = read_raw(png, "mask")
    if rgb.ndim == 2:
        with Image.open(png) as img:  # the header alone: the pixels are decoded once
            palette = img.getpalette() if img.mode == "P" else None
        if palette is not None:
            return np.pad(np.uint8(palette), (0, 768 - len(palette))).reshape(256, 3)[rgb]
    return rgb


def _colour_mask(png: Path, colour: tuple[int, int, int], height: int, width: int) -> np.ndarray:
    rgb = _mask_rgb(png)
    if rgb.ndim == 2:
        raise DataError(png, "expected a colour (RGB) mask")
    r, g, b = colour
    return (rgb[..., 0] == r) & (rgb[..., 1] == g) & (rgb[..., 2] == b)


def read_cvat_mask(src: Path, images: Path | None = None) -> Annotations:
    """A "Segmentation mask 1.1" export folder (module docstring)."""
    src = Path(src)
    labelmap = src / "labelmap.txt"
    if not labelmap.is_file():
        raise FileNotFoundError(f"{src}: no labelmap.txt (not a CVAT Segmentation mask export)")
    names, colours = zip(*read_labelmap(labelmap), strict=True)
    mask_dir = src / "SegmentationClass"
    if not mask_dir.is_dir():
        raise FileNotFoundError(f"{src}: no SegmentationClass/ folder")
    image_dirs = [images] if images is not None else [src / "JPEGImages", src / "images", src]
    items = []
    code_of = {(r << 16) | (g << 8) | b: k for k, (r, g, b) in enumerate(colours)}
    for png in sorted(p for p in mask_dir.iterdir()  # not macOS's ._a.png beside a.png
                      if p.suffix.lower() == ".png" and not p.name.startswith(".")):
        # The picture in the first folder that has it, else where a JPEG is expected.
        item = AnnotatedImage(name=png.stem, source=png, image_path=find_picture(
            (d / f"{png.stem}{e}" for d in image_dirs for e in _SUFFIXES),
            image_dirs[0] / f"{png.stem}.jpg"))
        items.append(item)
        try:
            rgb = _mask_rgb(png)
        except ValueError as e:
            item.error = str(e)
            continue
        if rgb.ndim != 3 or rgb.shape[2] < 3:
            item.error = f"{printable(png)}: expected a colour (RGB) mask"
            continue
        item.size = rgb.shape[:2]
        code = ((rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8)
                | rgb[..., 2])
        present = np.unique(code)
        unknown = [int(c) for c in present if int(c) not in code_of]
        if unknown:
            shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in unknown[:4])
            item.error = (f"{printable(png)}: colours not in labelmap.txt: {shown} "
                          f"({int(np.isin(code, unknown).sum())} pixels)")
        for c in present:
            k = code_of.get(int(c))
            if k is not None:
                item.shapes.append(Shape(names[k], "mask", where=f"colour {colours[k]}",
                                         decode=partial(_colour_mask, png, colours[k])))
    return Annotations(items, classes=list(names), colours=dict(zip(names, colours, strict=True)))


def _points(text: str | None) -> list[tuple[float, float]]:
    out = []
    for pair in (text or "").split(";"):
        if pair.strip():
            try:
                x, y = pair.split(",")
                out.append((float(x), float(y)))
            except ValueError:
                raise ValueError(f"'points' holds {pair!r}, not an x,y pair of numbers") from None
    return out


def _number(el: ET.Element, key: str) -> float:
    """Attribute ``key`` of a shape element as a number (NaN when missing: refused later)."""
    value = el.get(key, "nan")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"'{key}' is {value!r}, not a number") from None


def _cvat_rle(element: ET.Element, height: int, width: int) -> np.ndarray:
    counts = [int(c) for c in element.get("rle", "").split(",") if c.strip()]
    left, top = int(element.get("left", 0)), int(element.get("top", 0))
    w, h = int(element.get("width", 0)), int(element.get("height", 0))
    if not (0 < w <= width and 0 < h <= height):  # never more memory than the image's
        raise ValueError(f"its {w}×{h} box does not fit the {width}×{height} image")
    if sum(counts) != w * h or any(c < 0 for c in counts):
        raise ValueError(f"run lengths add up to {sum(counts)}, not its box's {w}×{h} pixels")
    runs = np.repeat(np.arange(len(counts)) % 2 == 1, counts).reshape(h, w)  # odd runs: set
    return shape_pixels(Shape("", "box_mask", [(left, top)], mask=runs), height, width)


def _xml_shape(el: ET.Element, label: str, where: str) -> Shape:
    """One shape element of a CVAT XML file, of ``label`` (ValueError when malformed)."""
    tag = el.tag
    f = partial(_number, el)
    if tag == "polyline":
        pts = [(x - 0.5, y - 0.5) for x, y in _points(el.get("points"))]
        if len(pts) < 2:
            raise ValueError("a polyline needs at least 2 points")
        return Shape(label, "linestrip", pts, where)
    if tag == "points":
        return Shape(label, "point", _points(el.get("points")), where)
    if tag == "skeleton":  # keypoints joined by edges: points, which mark no region either
        return Shape(label, "point", [p for part in el.iterfind("points")
                                      for p in _points(part.get("points"))], where)
    if tag == "mask":
        return Shape(label, "mask", where=where, decode=partial(_cvat_rle, el))
    if tag == "polygon":
        ring = np.array(_points(el.get("points")))
        if len(ring) < 3:
            raise ValueError("a polygon needs at least 3 points")
    elif tag == "box":
        x0, y0, x1, y1 = f("xtl"), f("ytl"), f("xbr"), f("ybr")
        ring = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    elif tag == "ellipse":
        cx, cy, rx, ry = f("cx"), f("cy"), f("rx"), f("ry")
        t = np.linspace(0, 2 * math.pi, 73)[:-1]
        ring = np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)
    else:
        raise ValueError(f"unknown shape <{tag}>")
    if tag != "polygon" and el.get("rotation"):  # degrees, clockwise on screen, about the centre
        turn = math.radians(f("rotation"))
        centre = (ring.max(0) + ring.min(0)) / 2
        ring = centre + (ring - centre) @ np.array([[math.cos(turn), math.sin(turn)],
                                                    [-math.sin(turn), math.cos(turn)]])
    return Shape(label, "corner_polygon", where=where, rings=[ring])


def _hex_colour(text: str | None) -> tuple[int, ...] | None:
    """CVAT's ``#rrggbb`` label colour; None when absent or not one."""
    text = (text or "").strip()
    return tuple(bytes.fromhex(text[1:])) if re.fullmatch(r"#[0-9a-fA-F]{6}", text) else None


def _drawn_shapes(item: AnnotatedImage, shapes: Iterable[tuple[ET.Element, str, str]],
                  source: str) -> None:
    """``item``'s shapes from (element, label, where), in ``z_order`` then the order given."""
    drawn = []
    for k, (el, label, where) in enumerate(shapes):
        try:
            drawn.append((int(el.get("z_order", 0) or 0), k, _xml_shape(el, label, where)))
        except (ValueError, TypeError) as e:
            item.refuse_shape(f"{source}: {where}: {e}")
    item.shapes = [s for _, _, s in sorted(drawn, key=lambda t: t[:2])]


def _image_item(image: ET.Element, xml_path: Path, folders: list[Path],
                images: Path | None) -> AnnotatedImage:
    source, name = printable(xml_path), image.get("name") or ""
    # fcnseg predict writes the task's image name, and in 'path' where the picture lies.
    written = image.get("path") if images is None else None
    # A video task's frames are named without a suffix (frame_000012), saved as .PNG.
    suffixes = [""] if Path(name).suffix.lower() in IMAGE_EXTENSIONS else ["", *_SUFFIXES]
    path = find_picture([f / f"{name}{e}" for f in folders for e in suffixes],
                        xml_path.parent / written if written else folders[0] / name)
    # A task's export holds an <image> for each of its images, annotated or not: one
    # without shapes is "nothing here" only when someone tagged the frame.
    item = AnnotatedImage(name=sample_name(name), source=xml_path, image_path=path,
                          labelled=image.find("tag") is not None, listed=True,
                          where=f"image {name!r}", image_name=name)
    try:
        item.size = (int(image.get("height", "")), int(image.get("width", "")))
    except ValueError:
        item.error = f"{source}: image {name!r}: no integer 'width' and 'height'"
    _drawn_shapes(item, ((el, el.get("label") or "", f"image {name!r} {el.tag} {k} "
                          f"({el.get('label')!r})")
                         for k, el in enumerate(image) if el.tag != "tag"), source)
    return item


def _whole_number(text: str | None, what: str, source: str) -> int | None:
    """``text`` as a whole number >= 0; None when absent; ValueError naming ``what``."""
    if text is None or not text.strip():
        return None
    if not re.fullmatch(r"\s*\d{1,12}\s*", text):
        raise ValueError(f"{source}: {what} is {text!r}, not a whole number")
    return int(text)


def _video_task(root: ET.Element, source: str) -> tuple[range, tuple[int, int] | None, str]:
    """The task's frames (``start_frame`` to ``stop_frame``, else without end, every ``step``),
    their size (height, width) and the video the task was made of, as ``<meta>`` gives them (a
    task's or a job's export)."""
    meta = root.find("meta/task")
    meta = meta if meta is not None else root.find("meta/job")
    if meta is None:
        return range(sys.maxsize), None, ""

    def number(path: str) -> int | None:
        return _whole_number(meta.findtext(path), f"<{path}>", source)

    step = re.fullmatch(r"\s*step\s*=\s*(\d{1,9})\s*", meta.findtext("frame_filter") or "")
    start, stop, count = number("start_frame") or 0, number("stop_frame"), number("size")
    every = max(int(step.group(1)), 1) if step else 1
    if stop is None and count:
        stop = start + (count - 1) * every
    height, width = number("original_size/height"), number("original_size/width")
    size = (height, width) if height and width else None
    return (range(start, sys.maxsize if stop is None else stop + 1, every), size,
            root.findtext("meta/source") or "")


def _frame_pictures(folders: list[Path], frames: range) -> dict[int, Path]:
    """The task's frame pictures (``frame_000012.PNG``: frame 12), the first folder's first."""
    found: dict[int, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            number = re.fullmatch(r"frame_(\d{1,12})", path.stem)
            if (number and path.suffix.lower() in IMAGE_EXTENSIONS
                    and int(number.group(1)) in frames and path.is_file()):
                found.setdefault(int(number.group(1)), path)
    return found


def _track_shapes(root: ET.Element, source: str) -> dict[int, list[tuple[ET.Element, str, str]]]:
    """Each frame's shapes of the tracks (element, label, where), less those ``outside``."""
    frames: dict[int, list[tuple[ET.Element, str, str]]] = {}
    for k, track in enumerate(root.iterfind("track")):
        label = track.get("label") or ""
        named = f"track {track.get('id', k)} ({label!r})"
        for el in track:
            frame = _whole_number(el.get("frame", ""), f"{named} <{el.tag}> 'frame'", source)
            if frame is None:
                raise ValueError(f"{source}: {named} <{el.tag}>: no 'frame'")
            if el.get("outside", "0").strip() not in ("1", "true", "True"):
                frames.setdefault(frame, []).append(
                    (el, label, f"frame {frame} {named} {el.tag}"))
    return frames


def _video_frames(root: ET.Element, xml_path: Path, folders: list[Path]) -> list[AnnotatedImage]:
    """The frames of a CVAT for video export: each a listed image, its tracks' shapes."""
    source = printable(xml_path)
    if root.find("meta/project") is not None:
        raise ValueError(f"{source}: a CVAT project export of video tasks, whose frames of "
                         f"different videos share their pictures' names (frame_000000, ...): "
                         f"export each task as CVAT for video 1.1 and import each")
    frames, size, video = _video_task(root, source)
    shapes = _track_shapes(root, source)
    pictures = _frame_pictures(folders, frames)
    if shapes and not pictures.keys() & shapes.keys():
        raise FileNotFoundError(
            f"{source}: a CVAT for video export without its frames: no frame_NNNNNN picture of "
            f"its annotated frames in {', '.join(printable(f) for f in folders)}; export the "
            f"task again as CVAT for video 1.1 with 'Save images' ticked, or extract every "
            f"frame of the video under its number: mkdir -p {printable(folders[0])} && ffmpeg "
            f"-i {video or 'VIDEO'} -vsync passthrough -start_number 0 "
            f"{printable(folders[0] / 'frame_%06d.png')}")
    items = []
    for frame in sorted(shapes.keys() | pictures.keys()):
        name = f"frame_{frame:06d}"
        item = AnnotatedImage(name=name, source=xml_path, size=size, listed=True,
                              image_path=pictures.get(frame, folders[0] / f"{name}.png"),
                              where=f"frame {frame}", image_name=f"{name}.png")
        _drawn_shapes(item, shapes.get(frame, ()), source)
        items.append(item)
    return items


def read_cvat_xml(src: Path, images: Path | None = None) -> Annotations:
    """A "CVAT for images 1.1" or "CVAT for video 1.1" ``annotations.xml`` (or the folder
    holding it): the images, or the frames of the video, with their shapes."""
    src = Path(src)
    xml_path = src / "annotations.xml" if src.is_dir() else src
    source = printable(xml_path)
    if not xml_path.is_file():
        raise FileNotFoundError(f"{source}: no such file (CVAT for images or video 1.1 "
                                f"annotations.xml)")
    try:
        root = ET.fromstring(xml_path.read_bytes())
    except ET.ParseError as e:
        raise ValueError(f"{source}: not valid XML ({e})") from None
    if root.tag != "annotations":
        raise ValueError(f"{source}: not a CVAT for images or video file (root <{root.tag}>)")
    labels = [el for path in ("meta/*/labels", "meta/*/*/labels")
              for el in root.iterfind(f"{path}/label")]
    classes = [el.findtext("name") or "" for el in labels]
    colours = {name: rgb for el, name in zip(labels, classes, strict=True)
               if name and (rgb := _hex_colour(el.findtext("color"))) is not None}
    folders = [images] if images is not None else [xml_path.parent / "images", xml_path.parent]
    video = root.find("track") is not None or root.find("image") is None and (
        root.findtext("meta/task/mode") or root.findtext("meta/job/mode")) == "interpolation"
    items = (_video_frames(root, xml_path, folders) if video else
             [_image_item(image, xml_path, folders, images) for image in root.iter("image")])
    # A video task's frames (either format) are named after the video too, as the picture
    # street/frame_000012.png would be: several videos share a dataset, never replacing frames.
    if source_video := Path(root.findtext("meta/source") or "").name:
        for item in items:
            item.name = f"{sample_name(source_video)}__{item.name}"
    return Annotations.sorted_out(items, classes=list(dict.fromkeys(c for c in classes if c)),
                                  image_folders=folders, colours=colours)
