"""``fcnseg info`` describes the data files fcnseg reads and writes:
label maps and images (PNG, JPEG ...), rasters (TIFF, GeoTIFF, JPEG 2000), CSV tables
(``ranking.csv``) and annotation files (labelme, COCO, Label Studio JSON; CVAT XML)."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from fcnseg.data.band_stats import BandStats, format_band_table, image_statistics
from fcnseg.data.images import RASTER_FORMATS, file_head, open_upright, signature_format
from fcnseg.data.rasters import open_raster, raster_info
from fcnseg.utils.validate import fields_of

#: What ``fcnseg info`` describes, for the message about a file it does not.
DESCRIBED = ("checkpoints, exported models, weights, Caffe .caffemodel files, run files "
             "(metrics.jsonl, report.json, recipe.yaml), label maps and images, rasters, CSV "
             "tables and annotation files (labelme, COCO, Label Studio, CVAT), predicted "
             "probabilities (.npz), raster resume records, dataset.yaml, bench reports, "
             "predict's output list and TensorBoard event files")

_RASTER_MAGIC = tuple(magic for magic, _, _ in RASTER_FORMATS)
# Netpbm's P1-P6, whatever whitespace follows (a CR, a tab: the image reader takes them all).
_NETPBM_MAGIC = tuple(b"P%d" % k for k in range(1, 7))
# The whitespace that ends a Netpbm magic number (any other byte: a text that starts with P1).
_NETPBM_WHITESPACE = b" \t\n\v\f\r"
#: Most distinct values listed (more than any label map's classes: ADE20K's full set has
#: 3,688); a raster of more (a DEM, a 16-bit photo) is said to have more, read no further.
MAX_LISTED_VALUES = 4096
#: Most distinct values one label map shows: no image holds more classes than an 8-bit label
#: map's 256 values; a one-band image of more holds intensities, not class indices.
MAX_LABEL_VALUES = 256
# Pixels of a raster read at a time while its values are counted (memory: this × 4 bytes).
_VALUES_ROWS_PIXELS = 1 << 22
#: The kinds of :func:`data_file_record`'s records.
DATA_KINDS = ("image", "label_map", "raster", "table", "annotations")


def looks_like_torch_file(path: Path) -> bool:
    """Whether the file starts as ``torch.save`` writes (a zip archive, or a pickle): a file
    that fails to load then is a damaged checkpoint, not a file of another kind."""
    head = file_head(path)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _is_netpbm(head: bytes) -> bool:
    """Whether ``head`` starts as a Netpbm image: P1-P6, then whitespace (a CSV table whose
    first column is P1 is none)."""
    return head.startswith(_NETPBM_MAGIC) and head[2:3] != b"" and head[2] in _NETPBM_WHITESPACE


def data_file_record(file: Path, base: dict[str, Any]) -> dict[str, Any] | None:
    """The ``info`` record (``base`` and more) of a data file (kind ``label_map``, ``image``,
    ``raster``, ``table`` or ``annotations``); None when it is none of them. A file that
    starts as an image or raster but cannot be decoded raises its one-line ImageError."""
    head = file_head(file)
    if head.startswith(_RASTER_MAGIC):
        return {**base, **_raster_record(file)}
    image_format = signature_format(head) or ("BMP" if head.startswith(b"BM") else
                                              "PPM" if _is_netpbm(head) else None)
    if image_format is not None:
        return {**base, **_image_record(file, image_format)}
    suffix = file.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _table_record(file, base)
    if suffix == ".xml":
        return _cvat_record(file, base)
    return None


def _counted_values(pieces: Iterable[np.ndarray], total: int) -> dict[str, Any]:
    """``{"values", "shares"}``, or ``{"more_values_than": N}`` as soon as that is known."""
    counts: Counter[int] = Counter()
    for piece in pieces:
        values, found = _piece_counts(piece)
        counts.update(dict(zip((int(v) for v in values), (int(c) for c in found),
                               strict=True)))
        if len(counts) > MAX_LISTED_VALUES:
            return {"more_values_than": MAX_LISTED_VALUES}
    values = sorted(counts)
    return {"values": values, "shares": [counts[v] / total for v in values]}


def _piece_counts(piece: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and counts: 8/16-bit ones by bincount, many times faster than sorting."""
    if piece.dtype in (np.uint8, np.uint16):
        flat = piece.reshape(-1)  # counted by chunks: bincount copies them as int64
        found = np.zeros(1 << (8 * piece.dtype.itemsize), np.int64)
        for start in range(0, flat.size, _VALUES_ROWS_PIXELS):
            found += np.bincount(flat[start:start + _VALUES_ROWS_PIXELS],
                                 minlength=found.size)
        values = np.flatnonzero(found)
        return values, found[values]
    return np.unique(piece, return_counts=True)


def _raster_strips(reader: Any) -> tuple[Iterator[np.ndarray], int]:
    """Lazy strips of whole block rows (each block decoded once: GDAL's cache is bounded)."""
    h, w = reader.info.height, reader.info.width
    block_rows = (reader.block_shape() or (1, 1))[0]
    rows = max(1, _VALUES_ROWS_PIXELS // max(w, 1))
    rows = max(1, rows // block_rows) * block_rows
    return (reader.read(y, 0, min(rows, h - y), w) for y in range(0, h, rows)), -(-h // rows)


def _is_intensity(rec: dict[str, Any], dtype: np.dtype) -> bool:
    """Intensities (a microscope's, a DEM's), not classes: floats, signed or too many values."""
    return dtype.kind in "fi" or "more_values_than" in rec \
        or len(rec.get("values", ())) > MAX_LABEL_VALUES


def _statistics(stats: BandStats) -> dict[str, Any]:
    """``{"statistics": ...}`` of an image's values; nothing when no pixel has data."""
    return {"statistics": asdict(stats)} if stats.pixels else {}


def _image_record(file: Path, image_format: str) -> dict[str, Any]:
    img = open_upright(file)
    rec: dict[str, Any] = {"format": image_format,
                           "width": img.width, "height": img.height, "mode": img.mode}
    # Predicted label maps are palette PNGs (16-bit grey above 256 classes); grey images
    # may be label maps too: their values are the class indices.
    if img.mode in ("P", "L", "I", "I;16", "I;16B"):
        label = np.asarray(img)
        counted = _counted_values([label], label.size)
        if img.mode != "P" and _is_intensity(counted, label.dtype):  # e.g. 16-bit microscopy
            return {**rec, "kind": "image", **counted,
                    **_statistics(image_statistics([label[..., None]], ["value"], 1))}
        return {**rec, "kind": "label_map" if img.mode != "L" else "image", **counted}
    return {**rec, "kind": "image"}


def _raster_record(file: Path) -> dict[str, Any]:
    info = raster_info(file)
    rec: dict[str, Any] = {"kind": "raster", "width": info.width, "height": info.height,
                           "bands": info.bands, "dtype": str(info.dtype),
                           "band_names": list(info.band_names) if info.band_names else None,
                           "crs": str(info.crs) if info.crs is not None else None,
                           # rasterio's six coefficients; none for the identity (pixel units)
                           "transform": None if getattr(info.transform, "is_identity", True)
                           else [float(v) for v in tuple(info.transform)[:6]],
                           # NaN (float outputs' nodata) as text: JSON has no NaN
                           "nodata": "nan" if info.nodata is not None and np.isnan(info.nodata)
                           else info.nodata}
    # One-band rasters are read by strips (any size), each value as stored (a uint32
    # raster's above 2**24 are not rounded as float32 would).
    if info.bands == 1 and info.dtype.kind == "u":
        with open_raster(file, exact=True) as reader:
            strips, _ = _raster_strips(reader)
            rec.update(_counted_values((strip[..., 0] for strip in strips),
                                       info.height * info.width))
    if info.bands == 1 and _is_intensity(rec, info.dtype):  # pixels without data left out
        band = info.band_names[0] if info.band_names and info.band_names[0] else "value"
        with open_raster(file, exact=True) as reader:
            strips, count = _raster_strips(reader)
            rec.update(_statistics(image_statistics(strips, [band], count, info.nodata)))
    return rec


def _georef_text(rec: dict[str, Any]) -> str:
    """What a raster has of a CRS and a geotransform (either makes predict tile it)."""
    transform, crs = rec.get("transform"), rec.get("crs")
    if transform is None and crs is None:
        return "none (no CRS, no geotransform)"
    grid = "no geotransform (pixel coordinates)" if transform is None else (
        f"origin ({transform[2]:.15g}, {transform[5]:.15g}), pixel {transform[0]:.15g} × "
        f"{transform[4]:.15g}")
    if crs is None:
        return (f"geotransform present, CRS missing: {grid} in unnamed map units; fcnseg "
                f"predict keeps the geotransform, without a CRS, in its label raster")
    grid = grid if transform is None else f"geotransform: {grid}"
    return f"CRS {crs}; {grid}"


def _table_record(file: Path, base: dict[str, Any]) -> dict[str, Any] | None:
    try:
        text = file.read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO(text),
                               delimiter="\t" if file.suffix.lower() == ".tsv" else ","))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    rows = [r for r in rows if r]
    header = rows[0] if rows else []
    return {**base, "kind": "table", "columns": header, "rows": max(len(rows) - 1, 0)}


def annotation_record(doc: Any, base: dict[str, Any]) -> dict[str, Any] | None:
    """The record (``base`` and more) of a labelme, COCO or Label Studio JSON document; None
    for another document."""
    fields = fields_of(doc)
    if isinstance(fields.get("shapes"), list) and ("imagePath" in doc or "imageHeight" in doc):
        labels = Counter(str(s.get("label")) for s in map(fields_of, doc["shapes"]) if s)
        return {**base, "kind": "annotations", "format": "labelme", "images": 1,
                "shapes": len(doc["shapes"]), "labels": dict(labels),
                "image": doc.get("imagePath"),
                "size": [doc.get("imageWidth"), doc.get("imageHeight")]}
    if isinstance(fields.get("images"), list) and isinstance(fields.get("annotations"), list):
        categories = [c.get("name") for c in map(fields_of, doc.get("categories") or []) if c]
        return {**base, "kind": "annotations", "format": "COCO", "images": len(doc["images"]),
                "shapes": len(doc["annotations"]), "categories": categories}
    tasks = doc if isinstance(doc, list) else None
    if tasks and all("data" in fields_of(t) for t in tasks):
        results = _label_studio_results(tasks, "annotations")
        # fcnseg predict --format labelstudio writes predictions, not annotations.
        predicted = _label_studio_results(tasks, "predictions")
        return {**base, "kind": "annotations", "format": "Label Studio", "images": len(tasks),
                "shapes": len(results), "labels": dict(_label_studio_labels(results)),
                "predicted_shapes": len(predicted),
                "predicted_labels": dict(_label_studio_labels(predicted))}
    return None


def _label_studio_results(tasks: list[Any], key: str) -> list[dict[str, Any]]:
    """The results of each task's first entry of ``key`` (annotations or predictions), the
    one Label Studio shows."""
    firsts = [(fields_of(t).get(key) or [{}])[0] for t in tasks]
    return [fields_of(r) for a in firsts for r in fields_of(a).get("result") or []]


def _label_studio_labels(results: list[dict[str, Any]]) -> Counter:
    """The names in each result value's ``polygonlabels``, ``brushlabels``, ... lists."""
    counts: Counter = Counter()
    for result in results:
        for key, names in fields_of(result.get("value")).items():
            if str(key).endswith("labels") and isinstance(names, list):
                counts.update(str(n) for n in names)
    return counts


def _cvat_record(file: Path, base: dict[str, Any]) -> dict[str, Any] | None:
    try:
        root = ET.fromstring(file.read_bytes())
    except OSError:
        return None
    except ET.ParseError as e:
        raise ValueError(f"{file}: not valid XML ({e})") from None
    if root.tag != "annotations":
        return None
    images = list(root.iter("image"))
    shapes = sum(1 for image in images for el in image if el.tag != "tag")
    labels = [name.text or "" for label in root.iter("label") for name in label.iterfind("name")]
    return {**base, "kind": "annotations", "format": "CVAT for images", "images": len(images),
            "shapes": shapes, "categories": labels}


def first_few(items: list[Any], count: int) -> str:
    """The first ``count`` items, comma-separated, then how many more there are."""
    more = f", … ({len(items) - count} more)" if len(items) > count else ""
    return ", ".join(map(str, items[:count])) + more


def _values_text(rec: dict[str, Any]) -> str:
    if "more_values_than" in rec:
        return f"more than {rec['more_values_than']} distinct values"
    values = rec["values"]
    shown = [f"{v} ({100 * s:.1f}%)" for v, s in zip(values, rec["shares"], strict=True)]
    ignore = "; 255 is the ignore value" if 255 in values else ""
    return f"{len(values)}: {first_few(shown, 12)}{ignore}"


def _annotations_summary(rec: dict[str, Any]) -> list[str]:
    """The ``contents`` and ``labels`` lines of an annotation file, its predictions (Label
    Studio tasks) counted apart from its annotations."""
    labels = rec.get("labels") or {}
    names = (", ".join(f"{k} ×{v}" for k, v in labels.items()) if labels
             else ", ".join(map(str, rec.get("categories") or [])) or "none")
    contents = f"{rec['format']} annotations: {rec['images']} image(s), {rec['shapes']} shape(s)"
    if rec.get("predicted_shapes"):
        contents += f", {rec['predicted_shapes']} predicted shape(s)"
        predicted = ", ".join(f"{k} ×{v}" for k, v in rec["predicted_labels"].items())
        names = f"{names}; predicted: {predicted or 'none'}" if labels else \
            f"predicted: {predicted or 'none'}"
    return [f"contents:    {contents}", f"labels:      {names}"]


def data_file_summary(rec: dict[str, Any]) -> list[str]:
    """The ``contents`` lines of :func:`data_file_record`'s record (no file or size line)."""
    kind = rec["kind"]
    if kind == "label_map":
        return [f"contents:    label map ({rec['format']} {rec['mode']}, pixel values are class "
                f"indices), {rec['width']}×{rec['height']}",
                f"classes:     {_values_text(rec)}"]
    if kind == "table":
        return [f"contents:    CSV table, {rec['rows']} rows; columns: "
                f"{', '.join(rec['columns']) or 'none'}"]
    if kind == "annotations":
        return _annotations_summary(rec)
    if kind == "image":
        lines = [f"contents:    {rec['format']} image, {rec['width']}×{rec['height']}, "
                 f"mode {rec['mode']}"]
    else:  # a raster
        bands = f"{rec['bands']} band(s) of {rec['dtype']}"
        if rec["band_names"]:
            bands += f" ({', '.join(rec['band_names'])})"
        lines = [f"contents:    raster, {rec['width']}×{rec['height']}, {bands}",
                 f"georef:      {_georef_text(rec)}"]
        if rec["nodata"] is not None:
            nodata = rec["nodata"]
            lines.append(f"nodata:      {nodata if isinstance(nodata, str) else f'{nodata:g}'}")
    if "statistics" in rec:  # intensities: their range and spread, not a class histogram
        distinct = (f"more than {rec['more_values_than']}" if "more_values_than" in rec
                    else len(rec.get("values") or ()) or "")
        lines.append(f"values:      {f'{distinct} distinct values: ' if distinct else ''}"
                     f"intensities, not a label map of classes")
        stats = BandStats(**{**rec["statistics"], "problems": []})
        lines += [f"             {line}" for line in format_band_table(stats)]
    elif "more_values_than" in rec:
        lines.append(f"values:      {_values_text(rec)} (not a label map of classes)")
    elif "values" in rec:
        lines.append(f"values:      {_values_text(rec)} (class indices, if a label map)")
    return lines
