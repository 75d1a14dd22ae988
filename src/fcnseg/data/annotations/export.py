"""Label maps go back as polygons for correction in labelme, CVAT, Label Studio or COCO tools.

Each region of each class becomes one polygon (its outline, simplified within ``tolerance``
pixels). labelme, CVAT and Label Studio polygons have no holes: regions are listed largest
first, a region's holes filled by the smaller regions drawn over it (later on top; CVAT's
``z_order`` rising), background regions inside others included (as ``_background_`` when class
0 is named like background), but in CVAT, whose tasks have no background label: there a region
around background pixels is a mask. COCO annotations are unordered: a region with holes is
written as RLE.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fcnseg.data.annotations.contours import centre_chain, corners, region_polygons, simplify
from fcnseg.data.annotations.labelstudio import encode_brush_rle
from fcnseg.data.annotations.shapes import BACKGROUND_LABEL, Shape, shape_box, shape_pixels
from fcnseg.data.annotations.val_split import frame_of
from fcnseg.data.palette import background_indices

#: How far (pixels) a simplified outline may stray from the pixels' own; round trips through
#: labelme keep IoU ≥ 0.99 per class on regions a few pixels wide.
DEFAULT_TOLERANCE = 1.0
EXPORT_FORMATS = ("labelme", "coco", "cvat", "labelstudio")


def fill_small_regions(label: np.ndarray, min_area: int,
                       ignore_index: int | None = None) -> np.ndarray:
    """``label`` with each region (8-connected, as outlines follow them) of fewer than
    ``min_area`` pixels (a speck) given the class of the nearest pixel outside any speck, so
    that it leaves no polygon and no hole. Ignored pixels stay and give no class; a map of
    specks only is returned unchanged. Needs scipy (the ``data`` extra)."""
    from scipy import ndimage  # lazy: scipy is the optional 'data' extra

    label = np.asarray(label)
    if min_area <= 1:
        return label
    specks = np.zeros(label.shape, bool)
    for c in np.unique(label):
        if c != ignore_index:
            components, n = ndimage.label(label == c, structure=np.ones((3, 3), bool))
            too_small = np.bincount(components.reshape(-1), minlength=n + 1) < min_area
            too_small[0] = False  # the pixels of other classes
            specks |= too_small[components]
    ignored = label == ignore_index  # none for None
    if not specks.any() or (specks | ignored).all():
        return label
    # The index of the nearest pixel that is neither a speck nor ignored, for every pixel.
    nearest = ndimage.distance_transform_edt(specks | ignored, return_distances=False,
                                             return_indices=True)
    filled = label.copy()
    filled[specks] = label[nearest[0][specks], nearest[1][specks]]
    return filled


def implicit_background(class_names: Sequence[str]) -> int | None:
    """0 when class 0 is named like background (:func:`background_indices`), else None (every
    class is then written with its own name and drawn)."""
    return 0 if 0 in background_indices(class_names) else None


def labelme_label(class_names: Sequence[str], index: int) -> str:
    """The labelme label of class ``index``: its name, with a background class 0 as
    ``_background_`` (labelme's own name; ``fcnseg import`` maps it back to 0)."""
    if index == 0 and implicit_background(class_names) == 0:
        return BACKGROUND_LABEL
    return str(class_names[index])


def _ring_box(ring: np.ndarray, height: int, width: int) -> tuple[tuple[slice, slice], np.ndarray]:
    """The pixels inside a crack ring: (the slices of their box, the box's boolean pixels)."""
    y0, x0, box = shape_box(Shape("", "corner_polygon", rings=[ring[:, :2]]), height, width)
    return (slice(y0, y0 + box.shape[0]), slice(x0, x0 + box.shape[1])), box


def layered_regions(label: np.ndarray, *, background: int | None = 0,
                    ignore_index: int | None = None) -> list[tuple[int, np.ndarray]]:
    """(class, outer crack ring) of each region to draw, largest first, ``background`` regions
    only inside another (None: all drawn), ``ignore_index`` ones left out. Drawn in order they
    give ``label`` back exactly: where two classes cross at a pixel corner, the pixel the first
    drawn would cover gets a ring of its own on top."""
    label = np.asarray(label)
    height, width = label.shape
    regions = region_polygons(label)
    others = np.zeros(label.shape, bool)
    for c, ring, _ in regions:
        if c != background and c != ignore_index:
            where, box = _ring_box(ring, height, width)
            others[where] |= box
    out = []
    for c, ring, _ in regions:
        if c == ignore_index:
            continue
        if c == background:
            x, y = centre_chain(ring)[0]
            if not others[y, x]:
                continue
        out.append((c, ring))
    for _ in range(3):  # the patches are single pixels or small; one round usually suffices
        drawn = np.full(label.shape, -1 if background is None else background, np.int64)
        for c, ring in out:
            where, box = _ring_box(ring, height, width)
            drawn[where][box] = c
        wrong = (drawn != label) & (label != ignore_index)  # all pixels for None
        if not wrong.any():
            break
        out += _patches(label, wrong)
    return out


def _polygon_shape(points: Any, tool: str) -> Shape:
    """The shape ``tool`` (labelme or CVAT) draws for ``points``."""
    if tool == "labelme":
        return Shape("", "polygon", [tuple(p) for p in np.asarray(points, float).tolist()])
    return Shape("", "corner_polygon", rings=[np.asarray(points, float)])


def _simplified(points: np.ndarray, tolerance: float, tool: str) -> np.ndarray:
    """points simplified within tolerance, or less where that changes over 1 in 200 pixels."""
    lo = np.floor(points.min(0)) - 2  # drawn in the box around the points, a margin of 2
    width, height = (np.ceil(points.max(0)) + 3 - lo).astype(int).tolist()

    def render(pts: np.ndarray) -> np.ndarray:
        return shape_pixels(_polygon_shape(np.asarray(pts, float) - lo, tool), height, width)

    exact = render(points)
    budget = max(exact.sum() // 200, 0)
    t = tolerance
    while t > 0.05:
        pts = simplify(points, t)
        if (render(pts) != exact).sum() <= budget:
            return pts
        t /= 2
    return simplify(points, 0.01)  # straight runs only: the same pixels


def _patches(label: np.ndarray, wrong: np.ndarray,
             min_area: int = 0) -> list[tuple[int, np.ndarray]]:
    """(class, outer ring) of the regions of wrong pixels, of min_area pixels or more."""
    only = np.where(wrong, label.astype(np.int64), -1)
    return [(c, ring) for c, ring, area in region_polygons(only, np.unique(label[wrong]))
            if area >= min_area]


def _outline(ring: np.ndarray, tolerance: float, tool: str) -> Any:
    """The simplified outline tool draws a ring's region with (labelme: pixel centres)."""
    if tool != "labelme":
        return _simplified(corners(ring).astype(float), tolerance, tool)
    pts = _simplified(centre_chain(ring).astype(float), tolerance, tool)
    while len(pts) < 3:  # labelme needs three points; a repeated one draws the same pixels
        pts = np.concatenate([pts, pts[-1:]])
    return [[float(x), float(y)] for x, y in pts]


def _polygons(label: np.ndarray, class_names: Sequence[str], tolerance: float,
              ignore_index: int | None, tool: str, min_area: int = 0,
              masks: bool = False) -> list[tuple[int, Any]]:
    """(class, points) of each polygon for tool, in drawing order, gaps patched exactly; with
    ``masks``, no background polygon: a region around background pixels is (class, (top,
    left, its pixels in its box)) instead."""
    label = fill_small_regions(label, min_area, ignore_index)
    background = implicit_background(class_names)
    polygons: list[tuple[int, Any]] = []
    for c, ring in layered_regions(label, background=background, ignore_index=ignore_index):
        where, box = _ring_box(ring, *label.shape)
        if not masks or background is None or not (box & (label[where] == background)).any():
            polygons.append((c, _outline(ring, tolerance, tool)))
        elif c != background:
            polygons.append((c, (where[0].start, where[1].start, box & (label[where] == c))))
    empty = -1 if background is None else background
    drawn = np.full(label.shape, empty, np.int64)
    for c, pts in polygons:
        y0, x0, box = pts if isinstance(pts, tuple) else shape_box(_polygon_shape(pts, tool),
                                                                    *drawn.shape)
        drawn[y0:y0 + box.shape[0], x0:x0 + box.shape[1]][box] = c
    # Where two simplified outlines part, pixels a region holds are left out: exact patches.
    gaps = (drawn == empty) & (label != empty) & (label != ignore_index)
    return polygons + [(c, _outline(ring, 0.0, tool))
                       for c, ring in _patches(label, gaps, min_area)]


def labelme_document(label: np.ndarray, class_names: Sequence[str], image_path: str,
                     *, tolerance: float = DEFAULT_TOLERANCE,
                     ignore_index: int | None = 255, min_area: int = 0) -> dict[str, Any]:
    """A labelme JSON document (polygons, later on top) for ``label`` of the image at
    ``image_path`` (as labelme stores it: relative to the JSON file); regions under
    ``min_area`` pixels filled into the class around them (:func:`fill_small_regions`)."""
    height, width = np.shape(label)
    polygons = _polygons(label, class_names, tolerance, ignore_index, "labelme", min_area)
    shapes = [{"label": labelme_label(class_names, c), "points": pts, "group_id": None,
               "description": "", "shape_type": "polygon", "flags": {}, "mask": None}
              for c, pts in polygons]
    return {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_path,
            "imageData": None, "imageHeight": int(height), "imageWidth": int(width)}


def cvat_image_element(label: np.ndarray, class_names: Sequence[str], name: str, image_id: int,
                       *, tolerance: float = DEFAULT_TOLERANCE,
                       ignore_index: int | None = 255, path: str | None = None,
                       min_area: int = 0) -> ET.Element:
    """One ``<image>`` of "CVAT for images 1.1", a polygon per region, ``z_order`` rising, for
    the task's image ``name``; ``path`` (which CVAT does not read) where the picture lies
    relative to the XML file; ``min_area`` as :func:`labelme_document`. A background class 0
    is no shape (a CVAT task has no such label): a region around background pixels (a ring)
    is a ``<mask>`` of its pixels."""
    height, width = np.shape(label)
    image = ET.Element("image", id=str(image_id), name=name, width=str(width), height=str(height))
    if path is not None:
        image.set("path", path)
    polygons = _polygons(label, class_names, tolerance, ignore_index, "cvat", min_area, True)
    for z, (c, pts) in enumerate(polygons):
        shape = {"label": labelme_label(class_names, c), "source": "auto", "occluded": "0"}
        if isinstance(pts, tuple):  # CVAT's mask: runs in its box, row by row, unset first
            ys, xs = np.nonzero(pts[2])
            box = pts[2][ys.min():ys.max() + 1, xs.min():xs.max() + 1]
            ET.SubElement(image, "mask", shape, rle=", ".join(map(str, _coco_rle(box.T)[
                "counts"])), left=str(pts[1] + xs.min()), top=str(pts[0] + ys.min()),
                width=str(box.shape[1]), height=str(box.shape[0]), z_order=str(z))
        else:
            ET.SubElement(image, "polygon", shape, z_order=str(z),
                          points=";".join(f"{x:g},{y:g}" for x, y in pts))
    return image


def cvat_image_ids(names: Sequence[str]) -> list[int]:
    """The ``<image id>`` of each of ``names`` (in the file's order): a video's frame
    (``street__frame_000012.png``) its number, other images their place in the file, where
    the frames are of one video and the ids differ; else each its place. CVAT falls back to
    the id where no frame has the name, so predicted frames land on their own frames."""
    places = list(range(len(names)))
    frames = [frame_of(Path(n).stem) for n in names]
    if len({f[0] for f in frames if f is not None}) != 1:
        return places  # no frames, or frames of several videos: whose numbers would these be?
    ids = [places[k] if f is None else f[1] for k, f in enumerate(frames)]
    return ids if len(set(ids)) == len(ids) else places


def cvat_document(images: Sequence[ET.Element], class_names: Sequence[str], *,
                  colours: Sequence[Sequence[int]] | None = None) -> bytes:
    """A "CVAT for images 1.1" annotations.xml holding ``images`` (ids by
    :func:`cvat_image_ids`), each label with its colour of the palette ``colours`` as CVAT
    writes it (``#rrggbb``), which ``fcnseg import cvat`` gives the masks again; but a
    background class 0, which CVAT tasks do not have (``fcnseg import`` makes it class 0)."""
    for image, image_id in zip(images, cvat_image_ids([i.get("name", "") for i in images]),
                               strict=True):
        image.set("id", str(image_id))
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(ET.SubElement(root, "meta"), "task")
    labels = ET.SubElement(meta, "labels")
    for k in range(len(class_names)):
        if k == implicit_background(class_names):
            continue
        lab = ET.SubElement(labels, "label")
        ET.SubElement(lab, "name").text = labelme_label(class_names, k)
        if colours is not None and k < len(colours):
            ET.SubElement(lab, "color").text = "#" + bytes(
                int(v) for v in colours[k][:3]).hex()
        ET.SubElement(lab, "type").text = "polygon"
    root.extend(images)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _coco_rle(mask: np.ndarray) -> dict[str, Any]:
    """Uncompressed COCO RLE (column-major runs, starting with background)."""
    flat = np.asarray(mask, bool).reshape(-1, order="F")
    change = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1], True])
    counts = np.diff(change).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def coco_annotations(label: np.ndarray, image_id: int, first_id: int, *,
                     tolerance: float = DEFAULT_TOLERANCE, background: int | None = 0,
                     ignore_index: int | None = 255, min_area: int = 0
                     ) -> list[dict[str, Any]]:
    """COCO annotations of one label map: one per region of a class other than ``background``
    (category id = class index; None: every class); polygons, or RLE for regions with
    holes; ``min_area`` as :func:`labelme_document`."""
    label = fill_small_regions(np.asarray(label), min_area, ignore_index)
    height, width = label.shape
    out = []
    for c, ring, area in region_polygons(label):
        if c in (background, ignore_index):
            continue
        where, filled = _ring_box(ring, height, width)
        region = filled & (label[where] == c)
        if region.sum() == area:
            pts = _outline(ring, tolerance, "cvat")  # on pixel corners, as CVAT's
            segmentation: Any = [[float(v) for v in pts.reshape(-1)]]
        else:
            full = np.zeros(label.shape, bool)
            full[where] = region
            segmentation = _coco_rle(full)
        ys, xs = np.nonzero(region)
        bbox = [int(xs.min()) + where[1].start, int(ys.min()) + where[0].start,
                int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1]
        out.append({"id": first_id + len(out), "image_id": image_id, "category_id": c,
                    "segmentation": segmentation, "area": int(region.sum()), "bbox": bbox,
                    "iscrowd": 0})
    return out


def coco_document(images: Sequence[dict[str, Any]], annotations: Sequence[dict[str, Any]],
                  class_names: Sequence[str], background: int | None = 0,
                  sources: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """A COCO instances document (``annotations``' category ids: class indices); categories
    are the classes other than ``background``, with the ``id`` and ``supercategory`` of their
    COCO category in ``sources`` (by class name), the others numbered on after the largest
    such id (as is a class whose recorded id an earlier class holds); without ``sources``, a
    class's id is its index."""
    sources = sources or {}
    ids, free = {}, max((int(c["id"]) for c in sources.values()), default=0)
    taken = set()  # the ids of the classes before, but background
    for k, name in enumerate(class_names):
        if name in sources and int(sources[name]["id"]) not in taken:
            ids[k] = int(sources[name]["id"])
        else:
            free += bool(sources) and k != background
            ids[k] = free if sources else k
        if k != background:
            taken.add(ids[k])
    categories = [{"id": ids[k], "name": str(n),
                   "supercategory": str(sources.get(n, {}).get("supercategory", ""))}
                  for k, n in enumerate(class_names) if k != background]
    return {"images": list(images),
            "annotations": [{**a, "category_id": ids[a["category_id"]]} for a in annotations],
            "categories": categories}


def relative_path(target: Path, start: Path) -> str:
    """``target`` relative to the folder ``start`` (as labelme and COCO store image paths)."""
    return Path(os.path.relpath(Path(target).resolve(), Path(start).resolve())).as_posix()


#: The names a Label Studio labeling config gives its image and its polygon labels.
LABELSTUDIO_IMAGE, LABELSTUDIO_LABELS = "image", "label"
#: The ``tolerance`` (``--tolerance mask``) giving Label Studio exact masks, not polygons.
BRUSH = "mask"


def labelstudio_results(label: np.ndarray, class_names: Sequence[str], *,
                        tolerance: float | str = DEFAULT_TOLERANCE,
                        ignore_index: int | None = 255, min_area: int = 0) -> list[dict[str, Any]]:
    """The ``polygonlabels`` results of one label map as Label Studio imports them (points on
    pixel corners in percent of the upright image's width and height), drawn in order as
    CVAT's (:func:`layered_regions`: later on top); ``min_area`` as :func:`labelme_document`.
    With ``tolerance`` :data:`BRUSH`, one ``brushlabels`` result per class instead: its exact
    mask in Label Studio's brush code (holes and one-pixel lines kept; a background class 0,
    which pixels no brush covers are, and ``ignore_index`` none)."""
    height, width = np.shape(label)
    common = {"from_name": LABELSTUDIO_LABELS, "to_name": LABELSTUDIO_IMAGE,
              "original_width": int(width), "original_height": int(height), "image_rotation": 0}
    if tolerance == BRUSH:
        label = fill_small_regions(np.asarray(label), min_area, ignore_index)
        drawn = [c for c in np.unique(label).tolist()
                 if c not in (implicit_background(class_names), ignore_index)]
        return [{"id": f"r{k}", "type": "brushlabels", **common,
                 "value": {"format": "rle", "rle": encode_brush_rle(label == c),
                           "brushlabels": [labelme_label(class_names, c)]}}
                for k, c in enumerate(drawn)]
    polygons = _polygons(label, class_names, float(tolerance), ignore_index, "cvat", min_area)
    scale = np.array([100.0 / width, 100.0 / height])
    return [{"id": f"r{k}", "type": "polygonlabels", **common,
             "value": {"points": (np.asarray(pts, float) * scale).round(6).tolist(),
                       "closed": True, "polygonlabels": [labelme_label(class_names, c)]}}
            for k, (c, pts) in enumerate(polygons)]


def labelstudio_config(class_names: Sequence[str],
                       colours: Sequence[Sequence[int]] | None = None, brush: bool = False) -> str:
    """A Label Studio labeling config for :func:`labelstudio_results`: the image and one
    polygon label (``brush``: brush label) per class (a background class 0 as
    ``_background_``), each in its colour of the palette ``colours``."""
    view = ET.Element("View")
    ET.SubElement(view, "Image", name=LABELSTUDIO_IMAGE, value=f"${LABELSTUDIO_IMAGE}")
    labels = ET.SubElement(view, "BrushLabels" if brush else "PolygonLabels",
                           name=LABELSTUDIO_LABELS, toName=LABELSTUDIO_IMAGE)
    for k in range(len(class_names)):
        lab = ET.SubElement(labels, "Label", value=labelme_label(class_names, k))
        if colours is not None and k < len(colours):
            lab.set("background", "#" + bytes(int(v) for v in colours[k][:3]).hex())
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"
