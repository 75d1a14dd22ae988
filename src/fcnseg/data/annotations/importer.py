"""``fcnseg import`` makes a folder dataset of a labelling tool's annotations:
``images/``, ``masks/``, ``dataset.yaml``, ``train.txt`` and ``val.txt``, which ``fcnseg train``
and ``check-data`` read."""

from __future__ import annotations

import ast
import contextlib
import difflib
import glob
import io
import json
import os
import shlex
import shutil
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from fcnseg.data import io as mask_io
from fcnseg.data.annotations.coco import read_coco
from fcnseg.data.annotations.cvat import read_cvat_mask, read_cvat_xml
from fcnseg.data.annotations.labelme import read_labelme
from fcnseg.data.annotations.labelstudio import read_labelstudio, without_upload_prefix
from fcnseg.data.annotations.reviewed import left_out_unreviewed
from fcnseg.data.annotations.shapes import (
    BACKGROUND_LABEL,
    IGNORE_LABEL,
    IGNORED_CROWD,
    IGNORED_LABEL,
    IGNORED_OVERLAP,
    AnnotatedImage,
    Annotations,
    LabelSet,
    RasterOptions,
    partly_outside,
    printable,
    quoted,
    rasterise,
)
from fcnseg.data.annotations.val_split import (
    ValSplit,
    fraction_splitting,
    split_names,
    video_of,
    video_split_line,
)
from fcnseg.data.bit_depth import deep_one_band_types
from fcnseg.data.class_names import spelling_groups
from fcnseg.data.folder import load_folder_config
from fcnseg.data.images import (
    IMAGE_FORMATS,
    TIFF_MAGIC,
    ImageError,
    check_pixels,
    file_head,
    file_orientation,
    open_upright,
    samples_of,
    tiff_header,
)
from fcnseg.data.layout import read_split_list
from fcnseg.data.palette import background_indices, palette_for
from fcnseg.data.rasters import layout_of, raster_info
from fcnseg.utils.download import DownloadError, extract_archive, zip_member_name
from fcnseg.utils.file_kinds import zip_expansion_problem
from fcnseg.utils.files import FileSignature, digest_if_unchanged, file_signature

#: The readers of ``fcnseg import``'s formats, each given the source, the images folder and
#: what its lines say becomes of the annotations (``outcome``, as :func:`read_annotations`).
_READERS: dict[str, Callable[[Path, Path | None, str], Annotations]] = {
    "labelme": lambda src, images, outcome: read_labelme(src, images),
    "coco": lambda src, images, outcome: read_coco(src, images, outcome=outcome),
    "cvat-mask": lambda src, images, outcome: read_cvat_mask(src, images),
    "cvat": lambda src, images, outcome: read_cvat_xml(src, images),
    "labelstudio": lambda src, images, outcome: read_labelstudio(src, images),
}
#: ``fcnseg import`` formats.
FORMATS = tuple(_READERS)


def read_annotations(fmt: str, src: Path, images: Path | None = None, *,
                     empty_as_background: bool = False, outcome: str = "imported") -> Annotations:
    """The annotations of ``src`` in format ``fmt`` (one of :data:`FORMATS`), less those of
    files ``fcnseg predict`` wrote that nobody saved since (:func:`left_out_unreviewed`); with
    ``empty_as_background``, :meth:`Annotations.with_empty_as_background`; ``outcome`` as
    :func:`background_aliases` takes it."""
    if fmt not in _READERS:
        raise ValueError(f"format: unknown {fmt!r}; known: {', '.join(FORMATS)}")
    src, line = unpacked(Path(src), fmt)
    found = left_out_unreviewed(_READERS[fmt](src, images, outcome), fmt, src)
    found.problems[:0] = [line] if line else []
    return found.with_empty_as_background() if empty_as_background else found


#: How many times its size a zip archive of an export may unpack to: pictures do not deflate,
#: an XML or JSON file some 10 times; far more is a decompression bomb.
ARCHIVE_EXPANSION = 100
#: The formats read from a folder, and so from a zip archive unpacked into one.
FOLDER_FORMATS = ("labelme", "cvat-mask", "cvat")


def unpacked(src: Path, fmt: str = "cvat") -> tuple[Path, str | None]:
    """A zip archive (what CVAT's "Export task dataset" downloads) as the folder beside it
    that holds its members (below their one top folder, when they share one), unpacked now (as
    ``unzip`` would: member paths leaving it, links and a decompression bomb refused in one
    line) or before (its files the archive's, else refused in one line), and a line saying
    which; any other ``src`` as it is. The folder appears whole or not at all (an unpacking
    that fails or is interrupted leaves nothing read later as unpacked). A format read from
    one file (COCO, Label Studio) takes no archive: one line, nothing written."""
    if not (src.is_file() and zipfile.is_zipfile(src)):
        return src, None
    if fmt not in FOLDER_FORMATS:
        raise ValueError(f"{printable(src)}: a zip archive, not a JSON file: unpack it and "
                         f"give the JSON file it holds")
    folder = src.with_suffix("") if src.suffix else src.with_name(f"{src.name}_unpacked")
    if not folder.exists():
        _unpack(src, folder)
        line = f"{printable(src)}: unpacked into {printable(folder)}"
    elif (other := _member_differing(src, folder)) is not None:
        raise ValueError(f"{printable(src)}: {printable(folder)} beside it holds another "
                         f"{other!r} than the archive (unpacked from another archive, or "
                         f"changed since): remove it to unpack the archive again, or give "
                         f"the folder to read it")
    else:
        line = (f"{printable(src)}: read from {printable(folder)}, unpacked before "
                f"(remove it to unpack the archive again)")
    return folder / _top_folder(src), line


def _unpack(src: Path, folder: Path) -> None:
    """Unpacks the zip archive ``src`` into ``folder``, which appears once whole."""
    if (problem := zip_expansion_problem(src, ARCHIVE_EXPANSION)) is not None:
        raise ValueError(f"{printable(src)}: {problem}")
    partial = folder.with_name(f".{folder.name}.unpacking-{os.getpid()}")
    try:
        extract_archive(src, partial)
        partial.rename(folder)
    except DownloadError as e:
        raise ValueError(str(e)) from None
    except OSError as e:
        if folder.is_dir() and _member_differing(src, folder) is None:
            return  # unpacked meanwhile by another process (the ranks of one training)
        raise ValueError(f"{printable(src)}: cannot unpack it into {printable(folder)} "
                         f"({e.strerror or e}): unpack it where files can be written and give "
                         f"that folder") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _crc32(path: Path) -> int:
    """The CRC-32 of a file, read a MiB at a time (an archive's images may be large)."""
    crc = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc


def _member_differing(src: Path, folder: Path) -> str | None:
    """The first file of the zip archive ``src`` that ``folder`` lacks or holds other bytes
    of (by size, then CRC-32), or None."""
    with zipfile.ZipFile(src) as z:
        for info in (i for i in z.infolist() if not i.is_dir()):
            path = folder / zip_member_name(info)
            try:  # the size first: a file of another size is not read
                same = (path.stat().st_size == info.file_size
                        and _crc32(path) == info.CRC)
            except OSError:
                same = False
            if not same:
                return zip_member_name(info)
    return None


def _top_folder(src: Path) -> str:
    """The one folder a zip archive's members all lie in (a folder zipped whole, macOS's
    ``__MACOSX/`` aside), else ''."""
    with zipfile.ZipFile(src) as z:
        names = [n for n in map(zip_member_name, z.infolist())
                 if not n.startswith("__MACOSX/")]
    tops = {n.split("/", 1)[0] for n in names}
    return tops.pop() if len(tops) == 1 and all("/" in n for n in names) else ""


@dataclass(frozen=True)
class ImportOptions:
    """How annotations become a dataset. ``val_fraction``: the share of images in val.txt, by
    a hash of the name (of the video, for the frames of several videos: :mod:`.val_split`;
    None: the one an earlier import into the folder recorded, else 0.2);
    ``empty_as_background``: import the images a CVAT or COCO export lists without a shape as
    all background (else they are left to annotate)."""

    labels: Path | None = None  # labelme's labels.txt; None: the labels found, background first
    add_unknown: bool = False  # with labels: add those not in it instead of refusing images
    raster: RasterOptions = field(default_factory=RasterOptions)
    ignore_index: int = 255  # the mask value of ignored pixels
    val_fraction: float | None = None
    images: Path | None = None  # where the pictures are when not where the format says
    empty_as_background: bool = False
    rename: Mapping[str, str] = field(default_factory=dict)  # export's label -> imported name


@dataclass
class ImportReport:
    """What an import did: names written, and one line per problem."""

    written: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unannotated: list[Path] = field(default_factory=list)
    # Those of unannotated whose annotation is a prediction nobody reviewed.
    unreviewed: list[Path] = field(default_factory=list)
    # Those of unannotated whose Label Studio tasks hold predictions and no annotation.
    predicted_only: list[Path] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    background: list[str] = field(default_factory=list)  # written all background, no shape
    missing: list[AnnotatedImage] = field(default_factory=list)  # picture not found (errors too)
    clipped: list[str] = field(default_factory=list)  # shapes drawn clipped to their image
    ignored: dict[str, int] = field(default_factory=dict)  # pixels, by why (rasterise)
    crowd: Counter[str] = field(default_factory=Counter)  # iscrowd regions written, by class
    points: dict[str, list[str]] = field(default_factory=dict)  # point shapes, by image name
    replaced: list[str] = field(default_factory=list)  # written over an earlier import's mask
    stale: list[str] = field(default_factory=list)  # not imported, an earlier mask set aside
    renamed: list[str] = field(default_factory=list)  # earlier names of pictures named apart


def _region_labels(found: Annotations) -> set[str]:
    """The labels of ``found``'s region shapes: points mark no region, so a label only points
    use is no class."""
    return {s.label for item in found.items for s in item.shapes if s.kind != "point"}


def label_set_for(found: Annotations, options: ImportOptions,
                  existing: list[str] | None = None) -> LabelSet:
    """The labels file's classes, or those found (the tool's order, else sorted); after the
    ``existing`` classes of a dataset imported into before, which keep their indices."""
    if options.labels is not None:
        labels = LabelSet.from_file(options.labels, ignore_index=options.ignore_index,
                                    fixed=not options.add_unknown)
        if existing and labels.classes[:len(existing)] != existing:
            raise ValueError(f"{options.labels}: its classes {labels.classes} do not start "
                             f"with the classes {existing} of the dataset imported into before")
        return labels
    labels = _region_labels(found)
    names = [*found.classes, *sorted(labels - set(found.classes))]
    if not existing:  # class 0: the tool's first class if named like background
        first = [c for c in found.classes if c not in (BACKGROUND_LABEL, IGNORE_LABEL)]
        existing = [first[0] if first and background_indices(first[:1]) == [0]
                    and BACKGROUND_LABEL not in found.classes else BACKGROUND_LABEL]
    # Listed, the dataset's classes keep their indices; the others added: background, however
    # spelled, is class 0 (LabelSet.add).
    out = LabelSet([IGNORE_LABEL, *existing], ignore_index=options.ignore_index)
    for name in names:
        out.add(name)
    return out


#: How a picture that is not where its annotation says is reported.
MISSING = "missing image file"


def resolve_image(item: AnnotatedImage) -> tuple[bytes | Path, tuple[int, int]] | str:
    """The picture (its file, or its embedded bytes) and its upright (height, width), or one
    line saying why there is none."""
    source = printable(item.source)
    have_file = item.image_path is not None and item.image_path.is_file()
    if not have_file and item.image_bytes is None:
        missing = printable(item.image_path) if item.image_path is not None else "none named"
        return f"{source}: {MISSING} {missing}"
    picture: bytes | Path = item.image_path if have_file else item.image_bytes  # type: ignore
    try:
        size = picture_size(picture)
    except (ImageError, OSError) as e:
        return f"{source}: unreadable image {_shown(picture)} ({e})"
    if item.size is not None and tuple(item.size) != size:
        source = f"{source}: {item.where}" if item.where else source
        return (f"{source}: the annotation is for a {item.size[1]}×{item.size[0]} image, but "
                f"the image is {size[1]}×{size[0]} (W×H){_turned_hint(picture, item.size, size)}")
    return picture, size


def _turned_hint(picture: bytes | Path, annotated: tuple[int, int],
                 upright: tuple[int, int]) -> str:
    """Where an annotation has the stored size of a photo its EXIF orientation turns (5 to 8),
    what that means and what to do; else nothing."""
    if tuple(annotated) != upright[::-1]:
        return ""
    orientation = file_orientation(picture if isinstance(picture, Path) else io.BytesIO(picture))
    if orientation not in (5, 6, 7, 8):
        return ""
    h, w = upright
    return (f" upright: its EXIF orientation tag ({orientation}) turns the stored {h}×{w} "
            f"pixels upright, and the annotation has the stored (sideways) size, not the "
            f"upright one: if the tool showed the photo upright, set the annotation's image "
            f"size to {w}×{h}; if the shapes were drawn on the sideways picture, remove the "
            f"tag so that it is read as stored (e.g. exiftool -Orientation= FILE)")


def _shown(picture: bytes | Path) -> str:
    return printable(picture) if isinstance(picture, Path) else "its embedded image"


def _stream(picture: bytes | Path) -> Any:
    return open(picture, "rb") if isinstance(picture, Path) else io.BytesIO(picture)


def band_raster(picture: bytes | Path) -> bool:
    """Whether ``picture`` (a file, or embedded bytes) is a TIFF of bands no colour image holds
    (4 bands of uint16), or of bands one a page (a Fiji hyperstack): never made RGB."""
    with _stream(picture) as f:
        if file_head(f, 4) not in TIFF_MAGIC:
            return False
        with tiff_header(f) as tif:
            samples = samples_of(tif)
            if samples is not None and samples.bands_problem() is not None:
                return True
            layout = layout_of(tif)
            return layout is not None and layout.pages_are_bands


def picture_size(picture: bytes | Path) -> tuple[int, int]:
    """The upright (height, width) of a picture (file or bytes): a band raster's from its
    header, any other decoded as the image reader does (a corrupt one is refused now); both
    held to :data:`fcnseg.data.io.MAX_PIXELS`. Raises :class:`ImageError` or OSError."""
    limit = mask_io.MAX_PIXELS
    if not band_raster(picture):
        with open_upright(picture if isinstance(picture, Path) else io.BytesIO(picture),
                          max_pixels=limit) as img:
            return img.height, img.width
    # Sized from the header alone: the pixel limit keeps a header claiming a huge size from
    # allocating masks the file's few bytes do not justify.
    if isinstance(picture, Path):
        info = raster_info(picture)
        height, width, turned = info.height, info.width, False
    else:
        with _stream(picture) as f, tiff_header(f) as tif:
            header, layout = samples_of(tif), layout_of(tif)
        if header is None:
            raise ImageError(_shown(picture), "unreadable TIFF header")
        if layout is not None and (problem := layout.problem()) is not None:
            raise ImageError(_shown(picture), problem)  # as the raster reader refuses a file
        height, width = header.height, header.width
        turned = header.orientation in (5, 6, 7, 8) and not header.geotiff
    check_pixels(_shown(picture), width, height, limit, advice=f"; {mask_io.RAISE_LIMIT}")
    return (width, height) if turned else (height, width)


def _write_image(picture: bytes | Path, out_dir: Path, name: str) -> None:
    if isinstance(picture, Path):
        shutil.copyfile(picture, out_dir / f"{name}{picture.suffix.lower()}")
    elif band_raster(picture):  # bands Pillow does not open: the TIFF as it is
        (out_dir / f"{name}.tif").write_bytes(picture)
    else:
        with Image.open(io.BytesIO(picture), formats=IMAGE_FORMATS) as img:  # the allow-list
            suffix = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tif",
                      "WEBP": ".webp"}.get(img.format or "")
            if suffix is None:
                img.convert("RGB").save(out_dir / f"{name}.png")
        if suffix is not None:
            (out_dir / f"{name}{suffix}").write_bytes(picture)


def import_annotations(fmt: str, src: Path, out: Path, options: ImportOptions = ImportOptions(),
                       report: Callable[[str], None] | None = None) -> ImportReport:
    """Read ``src`` (format ``fmt``) and write the folder dataset ``out``.

    Importing into an earlier import adds (or replaces, by name, counted in a line) images and
    masks; the mask of an image not imported now moves to ``stale_masks/`` (a line); its
    classes keep their indices and dataset.yaml its other fields. Class names that differ only
    in case or surrounding spaces are refused (ValueError, nothing written; ``options.rename``
    merges them). An image that cannot be imported is left out with one line in ``errors``, a shape
    outside its image skipped with one in ``warnings``; ``report`` receives the lines. When no
    image is imported nothing is written. Band rasters (4-band uint16 GeoTIFFs) are copied as
    they are, and a new dataset.yaml declares their bands."""
    say = report or (lambda line: None)
    found = read_annotations(fmt, Path(src), options.images,
                             empty_as_background=options.empty_as_background)
    if options.rename:
        found, unused = found.renamed(options.rename)
        if unused:
            say(f"warning: --rename: no label {', '.join(repr(n) for n in unused)} in "
                f"{printable(src)} (nothing renamed from it)")
    out = Path(out)
    earlier, options = _earlier_import(out, options, say)
    labels = _labels_for_import(found, options, earlier, say, Path(src), out)
    result, absent = _new_report(found)

    def warn(line: str) -> None:
        result.warnings.append(line)
        say(f"warning: {line}")

    for line in [*found.problems, *unlisted_labels(found, labels, options, earlier),
                 *absent]:
        warn(line)
    created = [d for d in (out, out / "images", out / "masks") if not d.exists()]
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    # The mask colours: an earlier import's, the tool's, else VOC's.
    palette = palette_for(256, options.ignore_index).copy()
    for k, name in enumerate(labels.classes):
        palette[k] = found.colours.get(name, palette[k])
    if earlier.get("palette") is not None:
        palette[:len(earlier["palette"])] = np.asarray(earlier["palette"])[:256]
    refused, refused_lines = refused_labels(found.items, labels, options)
    failed = _import_items(found, (labels, palette, refused), options, out, result, warn)
    for line in [*_grouped_errors(failed), *refused_lines]:
        say(f"error: {line}")
    _say_counts(result, found, options, out, (say, warn))
    result.classes = list(labels.classes)  # grown while drawing when labels are not fixed
    if not result.written:  # no dataset of no image: what this import made goes again
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if result.unannotated:  # still the list of what is left to annotate
            out.mkdir(parents=True, exist_ok=True)
            _write_unannotated(out, result.unannotated, [])
        return result
    _set_aside_stale(out, result, warn)
    _write_lists(out, found, options, result, (say, warn))
    _write_config(out, labels, palette, say, found.coco_categories, options.val_fraction)
    return result


def _earlier_import(out: Path, options: ImportOptions, say: Callable[[str], None]
                    ) -> tuple[dict[str, Any], ImportOptions]:
    """The dataset.yaml of an earlier import into ``out`` ({} if none), whose classes keep their
    indices; and ``options`` with its val_fraction where they give none (where it records none,
    the one that splits train.txt and val.txt as they are, said when not 0.2): names keep their
    split."""
    earlier = load_folder_config(out / "dataset.yaml") if (out / "dataset.yaml").is_file() else {}
    if options.val_fraction is None:
        fraction = earlier.get("val_fraction")
        if fraction is None and (listed := _listed_splits(out)):
            fraction = fraction_splitting(listed)
            if fraction != 0.2:
                say(f"{printable(out / 'dataset.yaml')} records no val_fraction, and " + (
                    "no --val-fraction splits train.txt and val.txt as they are: split at 0.2"
                    if fraction is None else f"--val-fraction {fraction:g} splits train.txt "
                    f"and val.txt as they are: new images are split at {fraction:g} too"))
        options = replace(options, val_fraction=0.2 if fraction is None else fraction)
    return earlier, options


def _listed_splits(out: Path) -> dict[str, str]:
    """Each name train.txt and val.txt in ``out`` list, read as training reads them: its split."""
    was = {}
    for name in ("train", "val"):
        if (out / f"{name}.txt").is_file():
            was.update(dict.fromkeys(read_split_list(out / f"{name}.txt"), name))
    return was


def _import_items(found: Annotations, drawn: tuple[LabelSet, np.ndarray, dict[str, str]],
                  options: ImportOptions, out: Path, result: ImportReport,
                  warn: Callable[[str], None]) -> list[tuple[AnnotatedImage, str]]:
    """Write each image and its mask; those that failed alone with the line saying why."""
    labels, palette, refused = drawn
    seen: dict[str, str] = {}
    failed = []
    for item in found.items:
        for line in item.problems:
            warn(line)
        problem = (refused.get(item.name) or item.error or _name_problem(item, seen)
                   or resolve_image(item))
        if not isinstance(problem, str):
            picture, (height, width) = problem
            # Counted only when the map is drawn, and an image whose map is drawn is written.
            label, lines = rasterise(item, labels, height, width, options.raster, result.ignored)
            problem = "; ".join(lines) if label is None else ""
        if problem:
            result.errors.append(problem)
            if item.name not in seen and (out / "masks" / f"{item.name}.png").is_file():
                result.stale.append(item.name)
            if not item.error and f": {MISSING} " in problem and item.name not in refused:
                result.missing.append(item)
            elif item.name not in refused:
                failed.append((item, problem))
            continue
        for line in lines:
            warn(line)
        source = printable(item.source)
        seen[item.name] = source
        result.clipped += [f"{source}: {s.where}" for s in item.shapes
                           if partly_outside(s, height, width)]
        if points := [f"{source}: {s.where}" for s in item.shapes if s.kind == "point"]:
            result.points[item.name] = points
        for old in (out / "images").glob(f"{glob.escape(item.name)}.*"):
            if old.stem == item.name:  # not a.b.png of the image a.b when writing a
                old.unlink()
        _write_image(picture, out / "images", item.name)
        if _other_pixels(out / "masks" / f"{item.name}.png", label):
            result.replaced.append(item.name)
        mask = Image.fromarray(label, mode="P")
        mask.putpalette(palette.reshape(-1).tolist())
        mask.save(out / "masks" / f"{item.name}.png")
        result.written.append(item.name)
        if item.former_name and (out / "masks" / f"{item.former_name}.png").is_file():
            result.renamed.append(item.former_name)
        result.crowd.update(s.label for s in item.shapes if s.crowd)
        if not any(s.kind != "point" for s in item.shapes):
            result.background.append(item.name)
    return failed


def _other_pixels(mask: Path, label: np.ndarray) -> bool:
    """Whether the mask file ``mask`` exists and holds other pixels than ``label`` (an
    unreadable one counts as other)."""
    if not mask.is_file():
        return False
    try:
        with Image.open(mask) as earlier:
            pixels = np.asarray(earlier)
    except (OSError, ValueError):
        return True
    return pixels.shape != label.shape or not np.array_equal(pixels, label)


def _set_aside_stale(out: Path, result: ImportReport, warn: Callable[[str], None]) -> None:
    """Moves the masks earlier imports wrote of images not imported now to ``stale_masks/``
    (their annotations changed since: training must not use the old labels); counts those
    replaced and those moved in a line each."""
    masks = out / "masks"
    if result.replaced:
        warn(f"{len(result.replaced)} image(s) imported replaced another mask of that name in "
             f"{printable(masks)} (the first: {result.replaced[0]})")
    renamed = _moved_aside(out, result.renamed, result.written)
    if renamed:
        warn(f"{len(renamed)} mask(s) of an earlier import named a picture now imported under "
             f"the name that tells it apart from another of its name (the first: "
             f"{renamed[0]}), moved to {printable(out / 'stale_masks')} (its picture to "
             f"stale_images) so that training does not use that picture twice")
    stale = _moved_aside(out, result.stale, [*result.written, *renamed])
    if stale:
        warn(f"{len(stale)} image(s) not imported had a mask from an earlier import, moved to "
             f"{printable(out / 'stale_masks')} and its picture to stale_images so that "
             f"training does not use it (the first: {stale[0]}): fix the annotations and "
             f"import again, or move a mask back to masks/ and its picture to images/ to train "
             f"on it")


def _moved_aside(out: Path, names: list[str], kept: list[str]) -> list[str]:
    """The masks of ``names`` not in ``kept`` moved from ``masks/`` to ``stale_masks/``, their
    pictures from ``images/`` to ``stale_images/`` (``images/`` holds only pictures with a
    mask, as an import writes it: a picture left there would be a missing mask)."""
    keep = set(kept)
    moved = list(dict.fromkeys(n for n in names if n not in keep))
    if not moved:
        return moved
    (out / "stale_masks").mkdir(exist_ok=True)
    stems = set(moved)
    pictures = [p for p in (out / "images").iterdir() if p.stem in stems]
    for name in moved:
        os.replace(out / "masks" / f"{name}.png", out / "stale_masks" / f"{name}.png")
    if pictures:
        (out / "stale_images").mkdir(exist_ok=True)
    for picture in pictures:
        os.replace(picture, out / "stale_images" / picture.name)
    return moved


def _grouped_errors(failed: list[tuple[AnnotatedImage, str]]) -> list[str]:
    """One line per reason images were not imported."""
    groups: dict[str, list[str]] = {}
    for item, problem in failed:
        # The problem less what names the image: the same for images failed alike.
        names = {printable(item.source), item.name, item.image_name or "",
                 printable(item.image_path) if item.image_path is not None else ""}
        reason = problem
        for name in sorted(names - {""}, key=len, reverse=True):
            reason = reason.replace(name, "\0")
        groups.setdefault(reason, []).append(problem)
    return [lines[0] if len(lines) == 1 else
            f"{len(lines)} images not imported, all for one reason; the first: {lines[0]}"
            for lines in groups.values()]


def _say_counts(result: ImportReport, found: Annotations, options: ImportOptions, out: Path,
                tell: tuple[Callable[[str], None], Callable[[str], None]]) -> None:
    """One line each for what the import did with some of the images; ``tell`` says and warns."""
    say, warn = tell
    if result.missing:
        first = result.missing[0]
        shown = first.image_name or printable(first.image_path or "none named")
        places = ", ".join(printable(f) for f in found.image_folders) or printable(
            first.image_path.parent if first.image_path is not None else first.source.parent)
        hint = ("; if they are in another folder, name it with --images DIR"
                if options.images is None else "")
        say(f"error: {len(result.missing)} picture(s) not found, the first {quoted(shown)} of "
            f"{printable(first.source)}, looked for in {places}{hint}")
    if result.clipped:
        say(f"{len(result.clipped)} shape(s) partly outside their image were clipped to it "
            f"(the first: {result.clipped[0]})")
    if result.points:
        first_point = next(iter(result.points.values()))[0]
        warn(f"{sum(map(len, result.points.values()))} point shape(s) in {len(result.points)} "
             f"image(s) not drawn: points mark no region, so the masks leave them out (the "
             f"first: {first_point})")
    if result.background:
        say(f"{len(result.background)} image(s) listed in the export without any shape "
            f"imported as all background (the first: {result.background[0]})")
    for line in _ignore_lines(result, options):
        say(line)
    # Said in one line already, with the reason: a video's thousands of empty frames too.
    counted = {*result.unreviewed, *result.predicted_only,
               *(i.image_path for i in found.listed_empty)}
    for path in result.unannotated:
        if path not in counted:
            say(f"warning: {printable(path)}: no annotations (not imported; listed in "
                f"{out / 'unannotated.txt'})")
    if found.listed_empty:
        say(f"{len(found.listed_empty)} image(s) the export lists without any shape left out "
            f"as not yet annotated (the first: {found.listed_empty[0].name}): if they hold "
            f"nothing to label, import with --empty-as-background")


def _labels_for_import(found: Annotations, options: ImportOptions, earlier: dict[str, Any],
                       say: Callable[[str], None], src: Path, out: Path) -> LabelSet:
    """The classes (after an earlier import's); ValueError on a spelling clash."""
    existing = list(earlier.get("classes", ())) or None
    labels = label_set_for(found, options, existing)
    refuse_spelling_clash(found, options, labels, src, (existing or [], out / "dataset.yaml"))
    of = f" of {printable(out / 'dataset.yaml')}" if existing else ""
    for line in background_aliases(found, labels, src, of):
        say(line)
    _say_empty_classes(found, labels, len(existing or [BACKGROUND_LABEL]), options, say, src)
    found_labels = len(labels.classes) - (labels.classes[:1] == [BACKGROUND_LABEL])
    if options.labels is None and not found.classes and not existing and found_labels:
        # labelme and Label Studio files name no class list: the classes are those used.
        say(f"classes: {BACKGROUND_LABEL}, then the {found_labels} labels found, sorted (a "
            f"label no image uses is no class): to keep a model's classes and their order, "
            f"import with --labels labels.txt")
    if len(labels.classes) > min(options.ignore_index, 256):
        raise ValueError(f"{len(labels.classes)} classes ({', '.join(labels.classes[:5])}, ...): "
                         f"masks hold at most {min(options.ignore_index, 256)} classes below the "
                         f"ignore value {options.ignore_index}")
    return labels


def background_aliases(found: Annotations, labels: LabelSet, src: Path, of: str = "",
                       outcome: str = "imported") -> list[str]:
    """One line per label named like background that is class 0 (``of``: the dataset's file),
    and one for class 0 itself where shapes draw it (not labelme's ``_background_``);
    ``outcome``: what becomes of the labels (``"read"`` for annotations read directly)."""
    # Those the labels grew by (labels.ids) or, with --labels, those drawn that it lacks.
    used, zero = [*labels.ids, *sorted(_region_labels(found))], labels.classes[0]
    # A CVAT mask export (PNG) paints its background colour where no shape is: not drawn.
    drawn = sum(s.label == zero and s.kind != "point" for i in found.items for s in i.shapes
                if not (s.kind == "mask" and i.source.suffix.lower() == ".png"))
    lines = [f"{printable(src)}: label {name!r} {outcome} as class 0 {zero!r}{of}: "
             f"a label named like background is class 0, whatever its spelling"
             for name in dict.fromkeys(used) if name != zero
             and (labels.ids.get(name) == 0 or labels.background_alias(name))]
    if drawn and zero != BACKGROUND_LABEL and background_indices([zero]) == [0]:
        lines.append(f"{printable(src)}: label {zero!r}, class 0{of}, is drawn by {drawn} "
                     f"shape(s): its pixels join class 0 with the pixels no shape draws; to "
                     f"keep them apart, give it another name ({_renaming(zero, outcome)})")
    return lines


def _renaming(label: str, outcome: str) -> str:
    """How a user names ``label`` NAME: the import's ``--rename``, or the ``rename`` field of the
    spec of a dataset read directly (check-data's ``--data``)."""
    if outcome == "imported":
        return f"import with --rename {shlex.quote(f'{label}=NAME')}"
    field = f"{{{json.dumps(label, ensure_ascii=False)}: NAME}}"  # YAML, whatever the label
    return f"rename: {field} in the dataset's spec; check-data: --data " \
           f"{shlex.quote(f'rename={field}')}"


def _say_empty_classes(found: Annotations, labels: LabelSet, first: int, options: ImportOptions,
                       say: Callable[[str], None], src: Path) -> None:
    """One line naming the new classes (from the ``first`` on) no region shape draws."""
    drawn = _region_labels(found)
    points = {s.label for item in found.items for s in item.shapes if s.kind == "point"}
    empty = [f"{n!r}" + " (points only)" * (n in points)
             for n in labels.classes[first:] if n not in drawn]
    if empty and options.labels is None:
        say(f"{printable(src)}: {len(empty)} class(es) that no shape of the import draws: "
            f"{', '.join(empty)}: a model trained on them learns outputs that never occur "
            f"(evaluation leaves them out); to leave them out, import with --labels "
            f"LABELS.txt listing the classes to keep")


def refuse_spelling_clash(found: Annotations, options: ImportOptions, labels: LabelSet,
                          src: Path, earlier: tuple[list[str], Path] = ([], Path())) -> None:
    """A ValueError, in one line, naming the class names that differ only in case or
    surrounding spaces, each with its file (``earlier`` dataset.yaml, labels file, export
    ``src``), and the ``--rename`` that names each class one way; nothing when there are none."""
    existing, config = earlier
    source = printable(src)
    # The export's label list, then the other labels its region shapes use.
    used = (s.label for item in found.items for s in item.shapes if s.kind != "point")
    clashes = spelling_groups([
        *((c, printable(config)) for c in existing),
        *((c, printable(options.labels)) for c in labels.classes if options.labels),
        *((c, source) for c in dict.fromkeys([*found.classes, *used]))])
    if not clashes:
        return
    shown = "; ".join(" and ".join(f"{n!r} ({w})" for n, w in g.items()) for g in clashes)
    fixes = [f"--rename {shlex.quote(f'{n}={next(iter(g))}')}"
             for g in clashes for n, w in list(g.items())[1:] if w == source]
    files = dict.fromkeys(w for g in clashes for w in g.values() if w != source)
    fix = (f"import with {' '.join(fixes)}" if fixes else
           f"spell each class one way in {' and '.join(files)}")
    raise ValueError(f"class names that differ only in case or surrounding spaces would be "
                     f"separate classes: {shown}: {fix} (nothing imported)")


def refused_labels(items: Iterable[AnnotatedImage], labels: LabelSet, options: ImportOptions,
                   outcome: str = "those images not imported"
                   ) -> tuple[dict[str, str], list[str]]:
    """With a fixed labels file: the error of each image using a label it lacks (by image
    name), and one line per such label: how many shapes and images, ``outcome``, and the
    closest class (``fcnseg import`` and ``fcnseg check-data`` print these lines)."""
    if not labels.fixed:
        return {}, []
    shapes: Counter[str] = Counter()
    images: dict[str, set[str]] = {}
    errors: dict[str, str] = {}
    for item in items:
        unknown = [s for s in item.shapes if s.kind != "point" and labels.index(s.label) is None
                   and not (s.crowd and options.raster.crowd_as_ignore)]
        for shape in unknown:
            shapes[shape.label] += 1
            images.setdefault(shape.label, set()).add(item.name)
        if unknown:
            more = f"; and {len(unknown) - 1} more shape(s)" if len(unknown) > 1 else ""
            errors[item.name] = (f"{printable(item.source)}: {unknown[0].where}: label "
                                 f"{unknown[0].label!r} is not in the label list (add it to "
                                 f"the labels file, or import without --labels){more}")
    lines = [f"label {name!r} is not in {printable(options.labels)}: {n} shape(s) in "
             f"{len(images[name])} image(s) refused, {outcome}"
             f"{_closest_hint(name, labels.classes)}" for name, n in shapes.items()]
    return errors, lines


def _closest_hint(name: str, classes: list[str]) -> str:
    """How to import a label the labels file lacks: as its closest class, else added."""
    folded = {c.casefold(): c for c in classes}
    close = difflib.get_close_matches(name.strip().casefold(), list(folded), n=1, cutoff=0.6)
    if close:
        closest = folded[close[0]]
        return (f" (did you mean {closest!r}? import with "
                f"--rename {shlex.quote(f'{name}={closest}')})")
    return " (add it to the labels file, or import with --add-unknown-labels)"


def _ignore_lines(result: ImportReport, options: ImportOptions) -> list[str]:
    """How the ``iscrowd`` regions were imported, and how many pixels were ignored and why."""
    lines = []
    crowd = sum(result.crowd.values())
    by_class = ", ".join(f"{n} {name}" for name, n in result.crowd.most_common())
    if crowd and not options.raster.crowd_as_ignore:
        lines.append(f"{crowd} iscrowd region(s) imported as their class ({by_class}), as "
                     f"semantic segmentation reads them (CVAT's COCO export marks every mask "
                     f"iscrowd); --crowd-as-ignore ignores them instead")
    if result.ignored:
        why = {IGNORED_CROWD: f"in {crowd} iscrowd region(s) ({by_class}), as "
                              f"--crowd-as-ignore asks",
               IGNORED_LABEL: f"in shapes labelled {IGNORE_LABEL}",
               IGNORED_OVERLAP: "where shapes of different classes overlap, as --overlap "
                                "ignore asks"}
        parts = "; ".join(f"{n} {why[k]}" for k, n in result.ignored.items())
        lines.append(f"{sum(result.ignored.values())} pixel(s) of the masks written are ignored "
                     f"(value {options.ignore_index}): {parts}")
    return lines


def unlisted_labels(found: Annotations, labels: LabelSet, options: ImportOptions,
                    earlier: dict[str, Any], outcome: str = "imported") -> list[str]:
    """One warning per label that shapes use but the export's label list lacks; ``outcome``
    as :func:`background_aliases` takes it."""
    if options.labels is not None or not found.classes:
        return []
    listed = {*found.classes, *earlier.get("classes", ()), BACKGROUND_LABEL, IGNORE_LABEL}
    first: dict[str, str] = {}
    for item in found.items:
        for shape in item.shapes:
            if shape.kind != "point" and shape.label not in listed:
                first.setdefault(shape.label, f"{printable(item.source)}: {shape.where}")
    return [f"{where}: label {name!r} is not in the export's label list: {outcome} as "
            f"class {labels.ids[name]}" for name, where in first.items()]


def _name_problem(item: AnnotatedImage, seen: dict[str, str]) -> str | None:
    """Why ``item``'s name cannot be that of an image of the dataset, if it cannot."""
    try:
        item.name.encode("utf-8")
    except UnicodeEncodeError:
        return f"{printable(item.source)}: file name is not UTF-8: rename it"
    if item.name != item.name.strip() or any(c in item.name for c in "\n\r"):
        # A split list holds one name a line, less the spaces around it.
        return (f"{printable(item.source)}: the name {item.name!r} starts or ends with a space "
                f"or holds a line break, which a split list cannot hold: rename the image")
    if item.name in seen:
        return (f"{printable(item.source)}: the name {item.name!r} is already taken by "
                f"{seen[item.name]}")
    return None


def _write_lists(out: Path, found: Annotations, options: ImportOptions, result: ImportReport,
                 tell: tuple[Callable[[str], None], Callable[[str], None]]) -> None:
    """Writes train.txt, val.txt and unannotated.txt; ``tell`` says and warns."""
    say, warn = tell
    # Every mask in the folder, those of earlier imports included: a name stays in its split,
    # but a video's frames, split with those of every video (val_split), may move: warned of.
    names = sorted(p.stem for p in (out / "masks").glob("*.png"))
    by_video = split_names(names, options.val_fraction)
    if (moved := _moved_line(out, by_video, options.val_fraction)) is not None:
        warn(moved)
    if (line := video_split_line(by_video, options.val_fraction)) is not None:
        if line.startswith("warning: "):
            warn(line.removeprefix("warning: "))
        else:
            say(line)
    for name in ("train", "val"):
        chosen = "".join(f"{n}\n" for n in names if by_video.of[n] == name)
        (out / f"{name}.txt").write_text(chosen, encoding="utf-8")
    written = set(result.written)
    _write_unannotated(out, result.unannotated, [
        item.image_path for item in found.items
        if item.name in written and item.image_path is not None])
    # The split is by a hash of each name: a few images can all fall on one side.
    for side, called, goes, then, fraction in (
            ("val", "validation", "there", "training with data.val on this folder would have "
             "nothing to validate on", "larger"),
            ("train", "training", "to val.txt", "training on this folder would have nothing to "
             "train on", "smaller")):
        if side not in by_video.of.values() and (side == "train" or options.val_fraction > 0):
            warn(f"{out / f'{side}.txt'}: no image fell into the {called} split (about "
                 f"{options.val_fraction:g} of the names go {goes}, chosen by a hash of the "
                 f"name, or of the video for its frames): {then}; import again with a "
                 f"{fraction} --val-fraction")


def _moved_line(out: Path, by_video: ValSplit, val_fraction: float) -> str | None:
    """One line when names an earlier import's train.txt and val.txt listed change split now
    (a video's frames, once several videos are split whole; another --val-fraction)."""
    split, whole = by_video.of, {*by_video.val_videos, *by_video.train_videos}
    was = {n: s for n, s in _listed_splits(out).items() if n in split}
    moved = [n for n, s in was.items() if split[n] != s]
    if not moved:
        return None
    why = ("the frames of several videos are split by whole video"
           if any(video_of(n) in whole for n in moved)
           else f"--val-fraction {val_fraction:g} chose them")
    first = moved[0]
    return (f"{out / 'val.txt'}: {len(moved)} image(s) an earlier import listed changed split "
            f"(the first: {first}, {was[first]} -> {split[first]}), as {why}: a model trained "
            f"on the earlier train.txt may have trained on images val.txt now holds; train "
            f"again on these lists before validating on them")


def _new_report(found: Annotations) -> tuple[ImportReport, list[str]]:
    """The report of an import of ``found``, listing the pictures left to annotate that exist
    (each once, by its resolved path); and the line on those not found, if any."""
    todo: dict[Path, Path] = {}
    absent = []
    for path in found.unannotated:
        if path.is_file():
            todo.setdefault(_resolved(path), path)
        else:
            absent.append(path)
    report = ImportReport(
        unannotated=list(todo.values()),
        unreviewed=[p for p in found.unreviewed if _resolved(p) in todo],
        predicted_only=[p for p in found.predicted_only if _resolved(p) in todo])
    if len(absent) > 1:
        return report, [f"{len(absent)} pictures without annotations not found (the first: "
                        f"{printable(absent[0])}): not listed in unannotated.txt"]
    return report, [f"{printable(p)}: no annotations, and no such picture (not listed in "
                    f"unannotated.txt)" for p in absent]


def _write_unannotated(out: Path, unannotated_now: list[Path], imported: list[Path]) -> None:
    """Writes unannotated.txt: the images still to annotate, earlier ones kept, each existing
    picture once (:func:`_pictures_once`); a list written before is left empty, not removed,
    when none is left."""
    unannotated = out / "unannotated.txt"
    listed = (unannotated.read_text(encoding="utf-8", errors="replace")
              if unannotated.is_file() else "")
    earlier = [_listed_path(line) for line in listed.splitlines() if line]
    # Absolute: `fcnseg predict $(cat unannotated.txt)` works from any folder.
    now = [Path(os.path.abspath(p)) for p in unannotated_now]
    lines = [printable(p) for p in _pictures_once([*earlier, *now], imported)]
    # A list written before stays, empty once all is annotated: a labelling loop reads it again.
    if lines or unannotated.is_file():
        unannotated.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _listed_path(line: str) -> Path:
    """A path as :func:`printable` wrote it (a name that is not UTF-8 as its bytes)."""
    if line.startswith(("b'", 'b"')):
        with contextlib.suppress(ValueError, SyntaxError):
            raw = ast.literal_eval(line)
            if isinstance(raw, bytes):
                return Path(os.fsdecode(raw))
    return Path(line)


def _pictures_once(paths: list[Path], imported: list[Path]) -> list[Path]:
    """``paths`` that lead to a file, less the ``imported`` ones, each picture once, as first
    listed: a file of the same name (Label Studio's upload prefix aside) and the same bytes
    under another path (a photo a re-import found in Label Studio's media folder) is the same
    picture."""
    done = {_resolved(p) for p in imported}
    files: dict[Path, tuple[Path, FileSignature]] = {}
    for path in paths:
        key = _resolved(path)
        if key not in done and key not in files and (sig := file_signature(path)) is not None:
            files[key] = (path, sig)
    groups = Counter(_same_if(path, sig) for path, sig in files.values())
    done_files = [(p, sig) for p in imported
                  if (sig := file_signature(p)) and _same_if(p, sig) in groups]
    groups.update(_same_if(p, sig) for p, sig in done_files)
    seen = {(_same_if(p, sig), digest_if_unchanged(p, sig)) for p, sig in done_files}
    seen = {key for key in seen if key[1] is not None}
    kept = []
    for path, sig in files.values():
        if groups[_same_if(path, sig)] > 1:  # only files that may be one picture are read
            content = (_same_if(path, sig), digest_if_unchanged(path, sig))
            if content in seen:
                continue
            if content[1] is not None:
                seen.add(content)
        kept.append(path)
    return kept


def _same_if(path: Path, sig: FileSignature) -> tuple[str, int]:
    """What two files that are one picture share: the name and the size."""
    return without_upload_prefix(path.name), sig[2]


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


#: The fields of dataset.yaml an import writes; it keeps the others as they are.
_IMPORT_FIELDS = ("classes", "ignore_index", "palette", "background", "coco_categories",
                  "val_fraction")


def _write_config(out: Path, labels: LabelSet, palette: np.ndarray,
                  say: Callable[[str], None], coco: Mapping[str, Any], val_fraction: float) -> None:
    """Writes dataset.yaml, keeping the other fields of the one there; ``coco``: the COCO
    categories of classes, added to those the file records (which keep theirs)."""
    path = out / "dataset.yaml"
    earlier: dict[str, Any] = {}
    if path.is_file():  # read and checked before importing
        earlier = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    config: dict[str, Any] = {**earlier, "val_fraction": val_fraction}
    if val_fraction == 0.2:  # the default, as a missing field reads (and earlier fcnseg reads)
        del config["val_fraction"]
    config.update({"classes": list(labels.classes), "ignore_index": labels.ignore_index,
                   "palette": palette[:len(labels.classes)].tolist()})
    if labels.classes and labels.classes[0] == BACKGROUND_LABEL:
        config.setdefault("background", BACKGROUND_LABEL)  # overlays leave it unblended
    config.update(_coco_categories(coco, labels, earlier, say, path))
    _declare_bands(out, config, not path.is_file(), say)
    if earlier.get("ignore_index") not in (None, config["ignore_index"]):
        kept = [k for k in earlier if k not in _IMPORT_FIELDS]
        say(f"warning: {printable(path)}: changed ignore_index {earlier['ignore_index']!r} -> "
            f"{config['ignore_index']!r} (the masks imported before hold the earlier value)"
            + (f"; kept {', '.join(kept)}" if kept else ""))
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True,
                                   default_flow_style=None), encoding="utf-8")


def _coco_categories(coco: Mapping[str, Any], labels: LabelSet, earlier: Mapping[str, Any],
                     say: Callable[[str], None], path: Path) -> dict[str, Any]:
    """dataset.yaml's ``coco_categories``: those recorded, then the new classes' (``coco``);
    one warning when the export gives a recorded class another id, one when it gives a new
    class the id of another (left unrecorded: predictions number it after the largest)."""
    recorded = dict(earlier.get("coco_categories", {}))
    holder = {c["id"]: n for n, c in recorded.items()}
    coco = {n: c for n, c in coco.items() if n in labels.classes}
    if shared := [f"{n!r} {c['id']} (that of {holder[c['id']]!r})" for n, c in coco.items()
                  if n not in recorded and c["id"] in holder]:
        say(f"warning: {printable(path)}: new classes whose COCO category id a recorded class "
            f"holds are numbered after the largest id in predictions: {', '.join(shared)}")
        coco = {n: c for n, c in coco.items() if n in recorded or c["id"] not in holder}
    if moved := [f"{n!r} {recorded[n]['id']} (here {c['id']})" for n, c in coco.items()
                 if n in recorded and recorded[n]["id"] != c["id"]]:
        say(f"warning: {printable(path)}: classes keep the COCO category ids recorded first, "
            f"which predictions write: {', '.join(moved)}")
    return {"coco_categories": {**coco, **recorded}} if coco or recorded else {}


#: How messages speak of images a new dataset.yaml declares the bands of: how they read
#: without the fields (after "without it", after "are"), and what the fields keep.
_UNDECLARED = {
    "grey": ("as 8-bit RGB, value / 257", "read as 8-bit RGB (value / 257)", "their depth"),
    "raster": ("as RGB or grey, which they are not: none could be read",
               "read as RGB or grey, which they are not (none can be read)", "their bands"),
}


def _declare_bands(out: Path, config: dict[str, Any], new: bool,
                   say: Callable[[str], None]) -> None:
    """Declares a folder's deep grey or band-raster images in a new dataset.yaml."""
    if "bands" in config:
        return
    masks = {p.stem for p in (out / "masks").glob("*.png")}
    images = sorted(p for p in (out / "images").iterdir() if p.stem in masks and p.is_file())
    if (types := deep_one_band_types(images)) is not None:
        fields: dict[str, Any] = {"bands": ["intensity"]}
        kind, words = f"one channel of {' and '.join(types)} samples", _UNDECLARED["grey"]
    elif (declared := _raster_bands(images)) is not None:
        (fields, kind), words = declared, _UNDECLARED["raster"]
    else:
        return
    without, read_as, keep = words
    path = printable(out / "dataset.yaml")
    # Each value as dataset.yaml's flow style writes it: ``[blue, green]``, ``0``.
    lines = "; ".join(
        f"{k}: {yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
        for k, v in fields.items())
    if new:
        config.update(fields)
        say(f"{path}: wrote {lines}: the {len(images)} image(s) are {kind}, which "
            f"training then reads as they are (without it, {without})")
    else:
        say(f"warning: {path}: declares no bands, so its {len(images)} image(s) of "
            f"{kind} are {read_as}; to keep {keep} add `{lines}`")


def _raster_bands(images: list[Path]) -> tuple[dict[str, Any], str] | None:
    """The fields (bands, rgb, nodata) of images all band rasters of one layout named alike,
    and what the images are."""
    infos = []
    for path in images:
        try:
            if not band_raster(path):
                return None
            infos.append(raster_info(path))
        except (ImageError, OSError, ValueError):
            return None  # the data checks report it
    counts = {i.bands for i in infos}
    names = {tuple(n.lower() for n in i.band_names) if i.band_names and all(i.band_names)
             else None for i in infos}
    if len(counts) != 1 or len(names) != 1:
        return None  # named unlike each other: only the user can say which band is which
    count, named = counts.pop(), names.pop()
    if named is not None and len(set(named)) != count:
        return None
    bands = list(named) if named is not None else [f"band{k + 1}" for k in range(count)]
    fields: dict[str, Any] = {"bands": bands}
    if {"red", "green", "blue"} <= set(bands):
        fields["rgb"] = ["red", "green", "blue"]
    nodata = {i.nodata for i in infos}
    if len(nodata) == 1 and (value := nodata.pop()) is not None and value == value:
        fields["nodata"] = int(value) if float(value).is_integer() else float(value)
    return fields, f"{count} band(s) of {' and '.join(sorted({i.dtype.name for i in infos}))}"
