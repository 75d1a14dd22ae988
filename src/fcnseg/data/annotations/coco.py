"""COCO JSON is read here: instances and stuff, and panoptic (PNG segment maps).
``pycocotools`` (the ``annotations`` extra) decodes polygons and RLE.

Category ids become classes in id order after ``_background_`` (0); ``iscrowd`` regions are
shapes marked ``crowd``. Pictures are found by ``file_name`` under ``images`` or, by default,
beside the JSON file, in ``images/`` there, or in COCO's layout (``val2017/`` beside
``annotations/instances_val2017.json``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from fcnseg.data.annotations.shapes import (
    AnnotatedImage,
    Annotations,
    Shape,
    find_picture,
    load_json,
    positive_size,
    printable,
    quoted,
    sample_name,
)
from fcnseg.data.errors import DataError
from fcnseg.utils.quiet import ignoring
from fcnseg.utils.validate import fields_of

#: How many times the image's width + height one annotation's polygon edges may run in all:
#: pycocotools allocates memory in proportion, and coordinates far outside (1e9) crash it.
MAX_EDGE_FACTOR = 100


def _check_polygon_lengths(rings: list[list[float]], height: int, width: int) -> None:
    """ValueError for polygons pycocotools cannot draw in the memory they justify."""
    total = 0.0
    for ring in rings:
        xy = np.asarray(ring, np.float64).reshape(-1, 2)
        if not np.isfinite(xy).all():
            raise ValueError("'segmentation' polygon coordinates must be finite numbers")
        total += float(np.abs(xy - np.roll(xy, 1, axis=0)).max(axis=1).sum())
    limit = MAX_EDGE_FACTOR * (height + width)
    if total > limit:
        shown = f"{total:.0f}" if total < 1e15 else f"{total:.3g}"
        raise ValueError(f"'segmentation' polygon edges run {shown} pixels, more than "
                         f"{MAX_EDGE_FACTOR} times the image's {width}+{height} (coordinates "
                         f"far outside the image?)")


def compressed_rle_counts(counts: str) -> np.ndarray:
    """The run lengths (int64) of a COCO compressed RLE ``counts`` string as pycocotools
    decodes it (6 bits a character from '0': 5 of value, one "more"; sign-extended; from the
    third on, differences from the run two before; uint32); ValueError when malformed."""
    c = np.frombuffer(counts.encode("ascii", errors="replace"), np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros(0, np.int64)
    if c.min() < 0 or c.max() > 63:
        raise ValueError("RLE 'counts' holds characters outside COCO's compressed alphabet")
    ends = (c & 0x20) == 0
    if not ends[-1]:
        raise ValueError("RLE 'counts' ends inside a number")
    group = np.concatenate([[0], np.cumsum(ends)[:-1]])
    first = np.flatnonzero(np.concatenate([[True], ends[:-1]]))
    k = np.arange(c.size) - first[group]
    if k.max() > 12:
        raise ValueError("RLE 'counts' holds a number of more than 64 bits")
    x = np.zeros(len(first), np.int64)
    np.add.at(x, group, (c & 0x1F) << (5 * k))
    negative = (c[ends] & 0x10) != 0
    x[negative] |= np.left_shift(-1, 5 * (k[ends][negative] + 1))
    runs = x.copy()
    runs[3::2] = np.cumsum(x[1::2])[1:]  # runs[m] = x[m] + runs[m - 2] from m = 3 on
    runs[4::2] = np.cumsum(x[2::2])[1:]
    return runs % (1 << 32)


def decode_coco_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """A COCO ``segmentation`` (polygon list, uncompressed or compressed RLE) as an H×W bool
    array, exactly as pycocotools decodes it; ValueError when it is malformed."""
    try:
        from pycocotools import mask as mask_api
    except ImportError:
        raise RuntimeError("reading COCO polygons and RLE needs pycocotools: "
                           "pip install 'fcnseg[annotations]'") from None
    if segmentation in ([], {}, None, ""):  # a detection-only annotation: its bbox
        raise ValueError("empty 'segmentation' (a box only?)")
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if isinstance(p, list)]
        # A ring of one or two points encloses nothing (COCO 2017 holds a few beside real
        # rings): it is left out, and the annotation refused only where no ring is left.
        numbers = all(isinstance(v, int | float) for p in polygons for v in p)
        rings = [[float(v) for v in p] for p in polygons if len(p) >= 6] if numbers else []
        if (len(polygons) != len(segmentation) or not rings
                or any(len(p) % 2 for p in polygons)):
            raise ValueError("'segmentation' polygons must be lists of at least 3 x, y pairs")
        _check_polygon_lengths(rings, height, width)
        rle = mask_api.merge(mask_api.frPyObjects(rings, height, width))
    elif "counts" in fields_of(segmentation):
        size = segmentation.get("size")
        if list(size or []) != [height, width]:
            raise ValueError(f"RLE 'size' {size} is not the image's [{height}, {width}]")
        counts = segmentation["counts"]
        if isinstance(counts, list):
            if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != \
                    height * width:
                raise ValueError(f"RLE counts must be non-negative and add up to "
                                 f"{height}×{width} pixels")
            rle = mask_api.frPyObjects(segmentation, height, width)
        elif isinstance(counts, str):
            runs = compressed_rle_counts(counts)
            # pycocotools leaves the pixels after the last run as the allocator gave them (old
            # heap contents in the mask) and refuses runs past the end: both are refused here.
            if int(runs.sum()) != height * width:
                raise ValueError(f"RLE counts add up to {int(runs.sum())} pixels, not the "
                                 f"image's {height}×{width}")
            rle = {"size": [height, width], "counts": counts.encode("ascii")}
        else:
            raise ValueError("RLE 'counts' must be a list or a string")
    else:
        raise ValueError("'segmentation' must be a polygon list or an RLE dict")
    with ignoring(DeprecationWarning):  # pycocotools 2.0 on NumPy 2 warns about __array__
        return mask_api.decode(rle).astype(bool)


def _category_names(data: dict, source: str) -> dict[int, str]:
    """Category ids to names, in id order (the order of the classes after ``_background_``)."""
    names: dict[int, str] = {}
    categories = data.get("categories") or []
    for cat in categories:
        if type(fields_of(cat).get("id")) is not int:  # bool is no id
            raise ValueError(f"{source}: a category without an integer 'id': {cat!r}")
    for cat in sorted(categories, key=lambda c: c["id"]):
        names[cat["id"]] = str(cat.get("name") or cat["id"])  # one name, one class
    if not names:
        raise ValueError(f"{source}: no 'categories' (not a COCO annotation file?)")
    return names


def _image_items(listed: list, src: Path, images: Path | None, outcome: str
                 ) -> tuple[dict[Any, AnnotatedImage], dict[Any, str]]:
    """The images of a COCO file by id, their pictures looked for under ``images`` or in
    COCO's folders; and the ids two images share, with the line leaving both out (neither
    ``outcome``)."""
    source = printable(src)
    split = src.stem.rsplit("_", 1)[-1]  # instances_val2017 -> val2017
    folders = [images] if images is not None else [
        src.parent, src.parent / "images", src.parent.parent / split,
        src.parent.parent / "images", src.parent / split]
    # A picture not found is named in the images folder, if there is one (where it was expected).
    expected = next((f for f in folders[1:] if f.is_dir()), folders[0])
    items: dict[Any, AnnotatedImage] = {}
    index: dict[Any, int] = {}  # images[k] of each id
    twins: dict[Any, str] = {}  # ids of two images: why neither is imported
    for k, img in enumerate(listed):
        img = fields_of(img)
        if "id" not in img or not isinstance(img.get("file_name"), str):
            raise ValueError(f"{source}: images[{k}] needs an 'id' and a 'file_name'")
        file_name = img["file_name"]
        size = positive_size(img.get("height"), img.get("width"))
        if img["id"] in items:
            first = items[img["id"]]
            if (first.image_name, first.size) != (file_name, size):  # else one image twice
                twins[img["id"]] = (
                    f"{source}: images[{k}] ({quoted(file_name)}) has the id {img['id']!r} "
                    f"of images[{index[img['id']]}] ({quoted(str(first.image_name))}): "
                    f"annotations cannot tell them apart; neither {outcome} (give each image "
                    f"its own id)")
            continue
        # fcnseg predict writes the plain name, and in 'path' where the picture lies;
        # Windows tools separate folders with backslashes.
        written = img.get("path") if images is None else None
        posix = file_name.replace("\\", "/")
        path = find_picture([f / n for f in folders for n in (file_name, posix)],
                            src.parent / written if isinstance(written, str) else expected / posix)
        # Tools export every image of a project, annotated or not: one without annotations
        # is all background only when the import asks for that.
        item = AnnotatedImage(name=sample_name(file_name), source=src, image_path=path,
                              size=size, listed=True, where=f"image {quoted(file_name)}",
                              image_name=file_name)
        if item.size is None:
            item.error = f"{source}: image {quoted(file_name)}: no positive 'height' and 'width'"
        items[img["id"]], index[img["id"]] = item, k
    return items, twins


def read_coco(src: Path, images: Path | None = None, *, panoptic_dir: Path | None = None,
              outcome: str = "imported") -> Annotations:
    """The images of a COCO instances, stuff or panoptic JSON file with their regions, the
    images with no region, and the category names in id order (the classes after 0);
    ``outcome``: what its lines say becomes of them (``"read"``: read directly, not imported)."""
    src = Path(src)
    source = printable(src)
    if not src.is_file():
        raise FileNotFoundError(f"{source}: no such file (a COCO JSON file is expected)")
    data = load_json(src, "COCO JSON file")
    if not isinstance(fields_of(data).get("images"), list):
        raise ValueError(f"{source}: not a COCO JSON file (no 'images' list)")
    for key in ("annotations", "categories"):
        if data.get(key) is not None and not isinstance(data[key], list):
            raise ValueError(f"{source}: '{key}' must be a list, not {type(data[key]).__name__}")
    categories = _category_names(data, source)
    items, twins = _image_items(data["images"], src, images, outcome)
    by_name: dict[str, list[int]] = {}
    for cat_id, name in categories.items():
        by_name.setdefault(name, []).append(cat_id)
    problems = [f"{source}: categories {' and '.join(map(str, ids))} are "
                f"{'both' if len(ids) == 2 else 'all'} named {name!r}: {outcome} as one class "
                f"{name!r}" for name, ids in by_name.items() if len(ids) > 1]
    problems += _add_regions(data, src, items, categories, panoptic_dir)
    for image_id, line in twins.items():
        items[image_id].error = line
    supercategory = {c.get("id"): str(c.get("supercategory") or "")
                     for c in map(fields_of, data["categories"])}
    return Annotations.sorted_out(items.values(), classes=list(by_name), problems=problems,
                                  coco_categories={name: {"id": ids[0], "supercategory":
                                                          supercategory[ids[0]]}
                                                   for name, ids in by_name.items()})


def _vertices(annotation: dict) -> list[tuple[float, float]]:
    """The (x, y) vertices of a polygon annotation (none of RLE): whether it reaches outside
    its image is counted as the other readers' shapes are."""
    rings = annotation.get("segmentation")
    return [(x, y) for ring in (rings if isinstance(rings, list) else []) if isinstance(ring, list)
            for x, y in zip(ring[0::2], ring[1::2], strict=False)]


@functools.lru_cache(maxsize=2)  # the segments of one image are drawn one after another
def _panoptic_ids(png: Path) -> np.ndarray:
    """The segment ids of a panoptic PNG (R + 256 G + 256² B)."""
    from fcnseg.data.io import read_raw

    rgb = read_raw(png, "panoptic PNG").astype(np.int64)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise DataError(png, "a panoptic PNG must be RGB")
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def _panoptic_segment(png: Path, segment_id: int, height: int, width: int) -> np.ndarray:
    return _panoptic_ids(png) == segment_id  # a shape's decode(height, width)


def _add_regions(data: dict, src: Path, items: dict[Any, AnnotatedImage],
                 categories: dict[int, str], panoptic_dir: Path | None) -> list[str]:
    """Each annotation's regions as mask shapes of its image; one line per orphan."""
    source = printable(src)
    annotations = [fields_of(a) for a in data.get("annotations") or []]
    panoptic = any("segments_info" in a for a in annotations)
    folder = panoptic_dir or src.parent / src.stem
    problems = []
    for k, ann in enumerate(annotations):
        item = items.get(ann.get("image_id"))
        if item is None:
            if not panoptic:
                problems.append(f"{source}: annotations[{k}]: no image with id "
                                f"{ann.get('image_id')!r} (skipped)")
            continue
        png = folder / str(ann.get("file_name"))
        for region in (ann.get("segments_info") or []) if panoptic else [ann]:
            name = f"segment {region.get('id')}" if panoptic else f"annotation {ann.get('id', k)}"
            where = f"{item.where} {name} (category {region.get('category_id')!r})"
            if region.get("category_id") not in categories:
                item.refuse_shape(f"{source}: {where}: category_id not in 'categories'")
                continue
            crowd = bool(region.get("iscrowd"))
            if crowd:
                where = f"{where[:-1]}, iscrowd)"
            # Partials, not closures: datasets holding them can be pickled (DataLoader workers).
            decode = (functools.partial(_panoptic_segment, png, int(region.get("id", -1)))
                      if panoptic else
                      functools.partial(decode_coco_segmentation, ann.get("segmentation")))
            item.shapes.append(Shape(categories[region["category_id"]], "mask", where=where,
                                     decode=decode, crowd=crowd,
                                     points=[] if panoptic else _vertices(ann)))
    return problems
