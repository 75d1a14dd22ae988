"""Label Studio's JSON export: a list of tasks, each with its image and annotations.

Read from each task's first annotation not cancelled: ``polygonlabels`` (points in percent),
``rectanglelabels`` (in percent, turned ``rotation`` degrees about the top-left corner),
``brushlabels`` (run-length coded RGBA, alpha marking the stroke) and ``keypointlabels``
(counted, not drawn). Pictures are found by the longest end of their path that no other
picture's shares (``site_a/IMG_0001.jpg`` of ``?d=data/site_a/IMG_0001.jpg``), else by file
name (also without the upload prefix ``1a2b3c4d-``) where no other picture has that name,
under ``images`` (default: beside the JSON file, in ``images/`` or ``upload/`` there, or at
the task's path in the media folder, or at a relative path from the JSON file); pictures of
one name are named by the shortest end that tells them apart (``site_a__IMG_0001``).
Predictions (``predictions``) are the model's guess, not labels: they are read only from the
tasks file ``fcnseg predict --format labelstudio`` wrote, for its tasks (which have no
``annotations`` field, as every task of a Label Studio export has), where
:func:`~fcnseg.data.annotations.reviewed.left_out_unreviewed` leaves them out until someone
saves the file. Tasks of another file holding predictions and no annotation (predict's
tasks file saved under another name, an export nobody annotated) are left to annotate, in
one line for the file that says what to do.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from functools import cache, partial
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np

from fcnseg.data.annotations.reviewed import predict_outputs
from fcnseg.data.annotations.shapes import (
    AnnotatedImage,
    Annotations,
    Shape,
    load_json,
    printable,
    sample_name,
)
from fcnseg.utils.validate import expect_mapping, fields_of

_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")


def without_upload_prefix(name: str) -> str:
    """A file name without the ``<8 hex digits>-`` prefix Label Studio gives uploads."""
    return _UPLOAD_PREFIX.sub("", name)


def upload_name(name: str) -> str:
    """The file name Label Studio stores an upload of ``name`` under, its prefix aside: as
    Django's storage cleans it, spaces become ``_`` and characters other than letters,
    digits, ``-``, ``_`` and ``.`` are dropped (``My photo (1).jpg``: ``My_photo_1.jpg``)."""
    return re.sub(r"[^-\w.]", "", name.strip().replace(" ", "_"))


def _upload_names(folder: Path) -> dict[str, Path]:
    """The pictures of ``folder`` by the names Label Studio gives their uploads (an upload of
    ``my photo.jpg`` is ``1a2b3c4d-my_photo.jpg`` in an export), the first of each name."""
    names: dict[str, Path] = {}
    for f in sorted(folder.iterdir()) if folder.is_dir() else []:
        names.setdefault(upload_name(f.name), f)
    return names


def decode_brush_rle(rle: list[int], height: int, width: int) -> np.ndarray:
    """Label Studio's brush run lengths (``value.rle``) as an H×W bool mask (alpha > 0)."""
    if not isinstance(rle, list) or not all(isinstance(v, int) and 0 <= v < 256 for v in rle):
        raise ValueError("'rle' must be a list of byte values")
    bits, pos = "".join(f"{byte:08b}" for byte in rle), 0

    def read(n: int) -> int:  # the next n bits, big-endian
        nonlocal pos
        if pos + n > len(bits):
            raise ValueError("brush run lengths end early")
        pos += n
        return int(bits[pos - n:pos], 2)

    num = read(32)
    if num != height * width * 4:
        raise ValueError(f"brush holds {num} values, not the image's {width}×{height}×4")
    word = read(5) + 1
    sizes = [read(4) + 1 for _ in range(4)]
    out = np.zeros(num, bool)  # each value above 0 (words of up to 32 bits)
    i = 0
    while i < num:
        repeated = read(1)
        j = min(i + 1 + read(sizes[read(2)]), num)
        if repeated:
            out[i:j] = read(word) > 0
        else:
            for k in range(i, j):
                out[k] = read(word) > 0
        i = j
    return out.reshape(height, width, 4)[..., 3]


#: The bits a brush code's run lengths take, as Label Studio's converter sizes them.
_RUNS = (3, 4, 8, 16)


def encode_brush_rle(mask: np.ndarray) -> list[int]:
    """An H×W mask in Label Studio's brush code (RGBA, alpha 255 on the stroke), as its
    converter writes it: each run of one value as a repeat block, its length in the fewest of
    3, 4, 8 or 16 bits (the decoder's inverse)."""
    flat = np.asarray(mask, bool).reshape(-1)
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    runs = 4 * np.diff(np.r_[starts, flat.size])  # values: each pixel's four alike
    blocks = -(-runs // (1 << 16))  # a block holds at most 2**16 values
    n = np.full(int(blocks.sum()), 1 << 16, np.int64)
    n[np.cumsum(blocks) - 1] = runs - ((blocks - 1) << 16)
    k = np.searchsorted(1 << np.array(_RUNS), n)  # the fewest bits that hold n - 1
    width = 11 + np.array(_RUNS)[k]  # bits: repeated, size index, length, value
    codes = (1 << (width - 1)) | (k << (width - 3)) | ((n - 1) << 8) | np.repeat(
        np.where(flat[starts], 255, 0), blocks)
    # The header: the values (32 bits), the word size less one (5), each run size less one (4)
    codes = np.r_[4 * flat.size, 7, np.array(_RUNS) - 1, codes]
    width = np.r_[32, 5, 4, 4, 4, 4, width]
    bits = np.unpackbits(codes.astype(">u4").view(np.uint8).reshape(-1, 4), axis=1)
    return np.packbits(bits[np.arange(32) >= 32 - width[:, None]]).tolist()


def _image_url(task: dict) -> str | None:
    """The task's picture as its data names it (a local-files URL: the path it names)."""
    data = fields_of(task.get("data"))
    value = data.get("image")
    if not isinstance(value, str):
        value = next((v for v in data.values() if isinstance(v, str)), None)
    if value is None:
        return None
    url = urlparse(value)
    if url.path.rstrip("/").endswith("/data/local-files"):  # local storage: ?d=photos/x.jpg
        named = parse_qs(url.query).get("d")
        if named:
            return named[0]
    return unquote(url.path or value)


def _path_parts(url: str) -> tuple[str, ...]:
    """The folders and file name of a task's picture path, below any root or ``..``."""
    parts = PurePosixPath(url).parts  # without "." parts
    return parts[max((k + 1 for k, p in enumerate(parts) if p in ("/", "..")), default=0):]


class _PathEnds:
    """The ends of the pictures' paths in an export (``site_a/IMG_0001.jpg``,
    ``IMG_0001.jpg``), each picture's once: an end no other picture shares tells it apart,
    an end whose sample name no other end has names it apart."""

    def __init__(self, urls: Iterable[str]) -> None:
        paths = {_path_parts(url) for url in urls}
        self.count = Counter(p[k:] for p in paths for k in range(len(p)))
        # a/IMG.jpg and b/IMG.png, site_a/IMG_0001.jpg and site_a__IMG_0001.jpg: one name each
        self.named = Counter(n for p in paths for n in _end_names(p))
        self.stems = Counter(Path(without_upload_prefix(p[-1])).stem for p in paths if p)

    def name_shared(self, url: str) -> bool:
        """Whether another picture has the name of ``url``'s, upload prefix aside."""
        parts = _path_parts(url)
        return bool(parts) and self.stems[Path(without_upload_prefix(parts[-1])).stem] > 1

    def unique(self, url: str) -> list[tuple[str, ...]]:
        """``url``'s whole path and the ends of it no other picture shares, longest first."""
        parts = _path_parts(url)
        return [parts[k:] for k in range(len(parts)) if k == 0 or self.count[parts[k:]] == 1]

    def apart(self, url: str) -> str:
        """Where another picture has ``url``'s name, the shortest end of its path whose name
        no other end has (``site_a/IMG_0001.jpg``); else, or where none does, ''."""
        if not self.name_shared(url):
            return ""
        parts = _path_parts(url)
        told = [parts[k:] for k, name in enumerate(_end_names(parts)) if self.named[name] == 1]
        return "/".join(told[-1]) if told else ""


def _end_names(parts: tuple[str, ...]) -> list[str]:
    """The sample names of a path's ends, longest first (``a__b``, ``b`` of ``a/b.jpg``)."""
    stemmed = [*parts[:-1], Path(parts[-1]).stem] if parts else []
    return ["__".join(stemmed[k:]) for k in range(len(stemmed))]


def _media_path(url: str) -> Path | None:
    """url's path in Label Studio's media folder; None for a URL outside it."""
    media = Path(url.removeprefix("/data/"))
    inside = not media.is_absolute() and ".." not in media.parts  # "/data//etc/x": outside
    return media if url.startswith("/data/") and inside else None


def _kind_and_label(result: object) -> tuple[Any, Mapping[str, Any], Any]:
    """A result's ``type``, its ``value`` and the first label of that type (None: none)."""
    result = fields_of(result)
    value = fields_of(result.get("value"))
    kind = result.get("type")
    labels = value.get(kind)
    return kind, value, labels[0] if isinstance(labels, list) and labels else None


def _result_shape(result: Mapping[str, Any], where: str) -> Shape | None:
    kind, value, label = _kind_and_label(result)
    if not isinstance(label, str):
        raise ValueError(f"no {kind} label")
    w, h = result.get("original_width"), result.get("original_height")
    if not isinstance(w, int) or not isinstance(h, int):
        raise ValueError("no original_width and original_height")
    if kind == "polygonlabels":
        pts = np.asarray(value.get("points"), float).reshape(-1, 2) * [w / 100, h / 100]
        if len(pts) < 3:
            raise ValueError("a polygon needs at least 3 points")
        return Shape(label, "corner_polygon", where=where, rings=[pts])
    if kind == "rectanglelabels":
        x, y = value["x"] * w / 100, value["y"] * h / 100
        bw, bh = value["width"] * w / 100, value["height"] * h / 100
        a = math.radians(float(value.get("rotation", 0) or 0))
        corners = np.array([(0, 0), (bw, 0), (bw, bh), (0, bh)], float)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        return Shape(label, "corner_polygon", where=where, rings=[corners @ rot.T + (x, y)])
    if kind == "brushlabels":
        if value.get("format", "rle") != "rle":
            raise ValueError(f"brush format {value.get('format')!r} (only rle is read)")
        return Shape(label, "mask", where=where, decode=partial(decode_brush_rle, value.get("rle")))
    if kind == "keypointlabels":
        return Shape(label, "point", [(value.get("x", 0), value.get("y", 0))], where)
    return None


def picture_urls(src: Path) -> dict[str, str]:
    """The picture of each task of the Label Studio JSON export ``src`` as its ``data`` names
    it (``/data/upload/3/1a2b3c4d-IMG_0042.jpg``), by the picture's path (a local-files URL:
    the path it names, ``photos/day1/IMG_0042.jpg``; the first task of each picture)."""
    urls: dict[str, str] = {}
    for task in _tasks(Path(src)):
        data, url = fields_of(task.get("data")), _image_url(task)
        value = data.get("image")
        if url is not None and isinstance(value, str):
            urls.setdefault(url, value)
    return urls


def _task_picture(src: Path, url: str, folders: list[Path], searched: list[Path],
                  found: tuple[Callable[[Path], dict[str, Path]], _PathEnds],
                  images: Path | None) -> Path:
    """The picture the task names by ``url``: at the longest end of its path under a folder
    that no other picture's path ends with, by its file name (also without the upload prefix)
    only where no other picture has that name, else at its media path; a folder looked in is
    added to ``searched``."""
    uploads, ends = found
    name = Path(url).name or url
    plain = without_upload_prefix(name)
    by_name = not ends.name_shared(url)
    candidates = [folder.joinpath(*end) for end in ends.unique(url) for folder in folders]
    candidates += [folder / c for c in (name, plain) for folder in folders if by_name]
    media = _media_path(url) if images is None else None
    if images is None and media is None and not urlparse(url).scheme and \
            not Path(url).is_absolute():
        candidates.append(src.parent / url)  # as fcnseg predict names them
    if media is not None:
        candidates.append(src.parent / media)
        if src.parent / media.parent not in searched:
            searched.append(src.parent / media.parent)  # named where pictures are missing
    picture = next((c for c in candidates if c.is_file()), None)
    if not by_name:  # else expected where the end that tells it apart says
        return picture or folders[0] / (ends.apart(url) or "/".join(_path_parts(url)))
    uploaded = (p for f in folders if (p := uploads(f).get(plain)) is not None and p.is_file())
    return picture or next(uploaded, None) or folders[0] / plain


def _add_shapes(item: AnnotatedImage, results: list, source: str, task_name: object) -> None:
    """The shapes of an annotation's ``results`` into ``item``, those refused as its
    problems."""
    for k, result in enumerate(results):
        kind, value, label = _kind_and_label(result)
        described = f" ({kind} {label!r})" if value else ""
        where = f"task {task_name} result {k}{described}"
        try:
            shape = _result_shape(fields_of(result), where)
        except (ValueError, TypeError, KeyError) as e:
            item.refuse_shape(f"{source}: {where}: {e}")
            continue
        if shape is not None:
            item.shapes.append(shape)
            item.size = item.size or (result["original_height"], result["original_width"])


#: What to do with tasks holding the model's predictions and no annotation.
_PREDICTIONS_ONLY = ("accept or correct them in Label Studio and import its export, or edit "
                     "the tasks file fcnseg predict wrote in place (its predictions are read "
                     "from that file, once saved)")


def _with_predictions_only(found: Annotations, source: str,
                           predicted: list[AnnotatedImage]) -> Annotations:
    """``found`` with the pictures left to annotate whose tasks hold predictions only as
    ``predicted_only``, and one problem saying so and what to do."""
    left = {p.resolve() for p in found.unannotated if p is not None}
    pictures = list({p.resolve(): p for i in predicted
                     if (p := i.image_path) is not None and p.resolve() in left}.values())
    if not pictures:
        return found
    first = next(i.image_name for i in predicted if i.image_path in pictures)
    line = (f"{source}: {first}: predictions only (pre-annotations are not labels): "
            if len(pictures) == 1 else
            f"{source}: {len(pictures)} task(s) with predictions only (pre-annotations are "
            f"not labels; the first: {first}): ")
    return replace(found, predicted_only=pictures,
                   problems=[*found.problems, line + _PREDICTIONS_ONLY])


def _tasks(src: Path) -> list[dict[str, Any]]:
    try:
        tasks = load_json(src, "Label Studio JSON export")
    except FileNotFoundError:
        raise FileNotFoundError(f"{printable(src)}: no such file (Label Studio JSON export)"
                                ) from None
    if not isinstance(tasks, list):  # the export of a single task is that task
        tasks = [expect_mapping(tasks, printable(src),
                                "a Label Studio JSON export (a list of tasks)")]
    return list(map(fields_of, tasks))


def read_labelstudio(src: Path, images: Path | None = None) -> Annotations:
    """A Label Studio JSON export (module docstring)."""
    src = Path(src)
    source = printable(src)
    tasks = _tasks(src)
    folders = ([images] if images is not None
               else [src.parent, src.parent / "images", src.parent / "upload"])
    items, problems, predicted = [], [], []
    searched = list(folders)
    own = src.resolve() in predict_outputs(src.parent.resolve())
    ends = _PathEnds(u for u in map(_image_url, tasks) if u is not None)
    found = (cache(_upload_names), ends)  # each folder listed once
    for t, task in enumerate(tasks):
        url = _image_url(task)
        if url is None:
            problems.append(f"{source}: task {t}: no image in 'data' (skipped)")
            continue
        path = _task_picture(src, url, folders, searched, found, images)
        name = Path(url).name or url
        told = ends.apart(url)  # pictures of one name: by the end of path that tells apart
        own_name = Path(without_upload_prefix(name)).stem
        item = AnnotatedImage(name=sample_name(told) if told else own_name, source=src,
                              image_path=path, where=f"task {task.get('id', t)}",
                              image_name=told or name, former_name=own_name if told else "")
        annotations = [a for a in map(fields_of, task.get("annotations") or [])
                       if a and not a.get("was_cancelled")]
        predictions = [p for p in map(fields_of, task.get("predictions") or []) if p]
        # fcnseg predict's tasks carry no "annotations"; a Label Studio export always does
        # (empty where nobody annotated), even one saved over predict's file: no labels there.
        if own and "annotations" not in task:  # fcnseg predict's tasks: its prediction
            annotations = predictions[:1]
        elif predictions and not annotations:
            predicted.append(item)
        # A submitted annotation without results is "nothing here"; a task nobody annotated,
        # or skipped (cancelled), is left to annotate.
        item.labelled = bool(annotations)
        _add_shapes(item, annotations[0].get("result") or [] if annotations else [], source,
                    task.get("id", t))
        items.append(item)
    found = Annotations.sorted_out(items, problems=problems, image_folders=searched)
    return _with_predictions_only(found, source, predicted)
