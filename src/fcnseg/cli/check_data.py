"""``fcnseg check-data``: scan a dataset before training and report every bad sample."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fcnseg.cli import options
from fcnseg.data import VOCSegmentation
from fcnseg.data.ade20k import find_ade20k_dir
from fcnseg.data.annotations.importer import MISSING
from fcnseg.data.band_stats import band_statistics, format_band_table
from fcnseg.data.bit_depth import narrow_range_warning
from fcnseg.data.build import build_dataset
from fcnseg.data.check import (
    NEAR_DUPLICATE_BITS,
    SAME_PICTURE_BITS,
    Problem,
    ScanReport,
    near_duplicates,
    scan_dataset,
)
from fcnseg.data.cityscapes import checked_labels, find_cityscapes_dir
from fcnseg.data.class_names import class_spelling_problem
from fcnseg.data.nyud import NYUD_MODALITIES, find_nyud_dir
from fcnseg.data.pascal_context import find_voc2010_dir
from fcnseg.data.sbd import find_sbd_dir
from fcnseg.data.siftflow import find_siftflow_dir
from fcnseg.data.voc import find_voc_dir
from fcnseg.engine.preflight import large_images_warning, sample_image_sizes

NAME = "check-data"
#: The labelling tools' formats read directly (fcnseg.data.annotations).
ANNOTATION_FORMATS = ("labelme", "coco", "cvat", "cvat_mask", "labelstudio")
HELP = "Scan a dataset: images per split, pixels per class, and every bad file (exit 1 if any)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, choices=options.DATASETS,
                   type=options.dataset_name,
                   help="kind of dataset")
    p.add_argument("--root", help="dataset folder (voc, sbd, folder, pascal_context, nyud, "
                                  "siftflow, cityscapes, ade20k, labelme, cvat_mask), or "
                                  "annotation file (coco, cvat, labelstudio)")
    p.add_argument("--year", default="2012", help="VOC year")
    p.add_argument("--split", action="append",
                   help="split to check (repeatable; default: every split found)")
    p.add_argument("--voc-root", help="VOC2011 folder (seg11valid)")
    p.add_argument("--sbd-root", help="SBD folder (seg11valid)")
    p.add_argument("--config", help="folder: its dataset.yaml (default: ROOT/dataset.yaml)")
    p.add_argument("--context-dir", help="pascal_context: the annotations' folder "
                                         "(default: ROOT/pascal-context)")
    p.add_argument("--modality", action="append", choices=["color", "hha", "depth"],
                   help="nyud: input to check (repeatable; default: every one on disk)")
    p.add_argument("--labels", metavar="LABELS",
                   help=f"cityscapes: label_ids (default: the *_gtFine_labelIds.png masks) or "
                        f"train_ids (the *_gtFine_labelTrainIds.png masks), as the recipe's data "
                        f"section says it; {', '.join(ANNOTATION_FORMATS)}: the labels.txt that "
                        f"fcnseg import --labels takes (one label a line, __ignore__ the ignore "
                        f"value, _background_ class 0, the others 1, 2, ... in order; shapes with "
                        f"other labels are bad), so that the classes are checked in the order the "
                        f"import gives them (default: the labels found, _background_ first)")
    options.add_data_fields(p)
    p.add_argument("--num-images", type=int, default=200, help="synthetic: how many images")
    p.add_argument("--size", type=int, default=128, help="synthetic: image size")
    p.add_argument("--seed", type=int, default=0, help="synthetic: seed")
    options.add_num_workers(p, help="processes reading the images (0: read in this process)",
                            dest="workers")


#: The datasets whose splits are found on disk: (name shown, folder finder, {split: the file
#: or folder in that folder that says the split is there}).
_SPLITS = {
    "sbd": ("SBD", find_sbd_dir, {"train": "train.txt", "val": "val.txt"}),
    "pascal_context": ("PascalContext", find_voc2010_dir,
                       {s: f"ImageSets/Main/{s}.txt" for s in ("train", "val")}),
    "nyud": ("NYUDv2", find_nyud_dir, {s: f"{s}.txt" for s in ("train", "val", "test")}),
    "cityscapes": ("Cityscapes", find_cityscapes_dir,
                   {s: f"leftImg8bit/{s}" for s in ("train", "val", "test")}),
    "ade20k": ("ADE20K", find_ade20k_dir,
               {"train": "images/training", "val": "images/validation"}),
    "siftflow": ("SIFTFlow", find_siftflow_dir, {s: f"{s}.txt" for s in ("trainval", "test")}),
}


def _union(lists: list[list[str]]) -> list[str]:
    return list(dict.fromkeys(i for ids in lists for i in ids))


def _open(args: argparse.Namespace):  # -> (dataset to scan, {split: names}, description)
    if args.labels is not None and args.dataset not in (*ANNOTATION_FORMATS, "cityscapes"):
        raise ValueError(f"--labels: only for cityscapes and the annotation datasets "
                         f"({', '.join(ANNOTATION_FORMATS)}), not --dataset {args.dataset}")
    data = options.data_fields(args)[1]
    if (split := data.pop("split", None)) is not None:  # one more --split
        args.split = [*(args.split or []), str(split)]
    if args.dataset == "synthetic":
        ds = build_dataset({"name": "synthetic", "num_images": args.num_images,
                            "size": args.size, "seed": args.seed, **data})
        names = [ds.name(i) for i in range(len(ds))]
        return ds, {"all": names}, f"synthetic ({args.num_images} images, seed {args.seed})"
    required = ("voc_root", "sbd_root") if args.dataset == "seg11valid" else ("root",)
    for name in required:
        if getattr(args, name) is None:
            raise ValueError(f"--{name.replace('_', '-')} is required for --dataset {args.dataset}")
    if args.dataset == "seg11valid":
        ds = build_dataset({"name": "seg11valid", "voc_root": args.voc_root,
                            "sbd_root": args.sbd_root, **data})
        return ds, {"seg11valid": list(ds.ids)}, f"seg11valid over {ds.dir}"
    if args.dataset in _SPLITS:
        return _open_splits(args, data)
    if args.dataset in ANNOTATION_FORMATS:
        splits = args.split or ["train", "val"]
        spec = {"name": args.dataset, "root": args.root, "labels": args.labels, **data}
        parts = {s: build_dataset({**spec, "split": s}).ids for s in splits}
        base = build_dataset({**spec, "split": splits[0] if len(splits) == 1 else None})
        return base, parts, f"{args.dataset} annotations at {args.root}"
    if args.dataset == "voc":
        return _open_voc(args, data)
    return _open_folder(args, data)


def _open_voc(args: argparse.Namespace, data: dict[str, Any]):  # -> as _open
    voc_dir = find_voc_dir(args.root, args.year)
    lists = voc_dir / "ImageSets" / "Segmentation"
    splits = args.split or sorted(p.stem for p in lists.glob("*.txt"))
    if not splits and lists.is_dir():
        raise ValueError(f"{lists}: no split lists in it (train.txt, val.txt): add them, or "
                         f"remove the empty folder to check every annotated image")
    spec = {"name": "voc", "root": args.root, "year": args.year, **data}
    if splits:
        parts = {s: build_dataset(spec, split=s).ids for s in splits}
    else:  # no split lists (labelme's VOC-style export): every annotated image
        parts = {"all images": VOCSegmentation(args.root, str(spec["year"])).ids}
    if not any(parts.values()):
        empty = ", ".join(str(lists / f"{s}.txt") for s in parts)
        raise ValueError(f"{empty} list{'s' if len(parts) == 1 else ''} no images: "
                         f"nothing to check")
    base = VOCSegmentation(args.root, str(spec["year"]), ids=_union(list(parts.values())))
    return base, parts, f"VOC{args.year} at {voc_dir}"


def _open_splits(args: argparse.Namespace, data: dict[str, Any]):  # the datasets of _SPLITS
    label, find, markers = _SPLITS[args.dataset]
    folder = find(args.root)
    splits = args.split or [s for s, marker in markers.items() if (folder / marker).exists()]
    if not splits:
        raise ValueError(f"{folder} has neither train.txt nor val.txt" if args.dataset == "sbd" else
                         f"no split lists found for --dataset {args.dataset} under {args.root}")
    spec = {"name": args.dataset, "root": args.root}
    if args.dataset == "pascal_context":
        spec["context_dir"] = args.context_dir
    if args.dataset == "cityscapes":
        spec["labels"] = checked_labels(args.labels or "label_ids", "--labels")
    if args.dataset == "nyud":
        spec["modalities"] = args.modality or [m for m, sub in NYUD_MODALITIES.items()
                                               if (folder / "data" / sub).is_dir()] or ["color"]
    spec.update(data)
    parts = {s: list(build_dataset(spec, split=s).ids) for s in splits}
    base = build_dataset(spec, split=splits[0])
    base.ids = _union(list(parts.values()))
    return base, parts, f"{label} at {folder}"


def _open_folder(args: argparse.Namespace, data: dict[str, Any]):  # a folder dataset
    root = Path(args.root)
    spec = {"name": "folder", "root": args.root, "config": args.config, **data}
    base = build_dataset(spec)
    splits = args.split or base.split_names()
    built = {s: build_dataset(spec, split=s) for s in splits}
    parts = {s: list(d.ids) for s, d in built.items()}
    base.training_split = built.get("train")  # whose band statistics training normalises by
    every = list(base.ids)
    base.ids = _union(list(parts.values()) if args.split else [every, *parts.values()])
    return base, {"all images": every, **parts}, f"folder dataset at {root}"


def _print_counts(counts, ignore_index: int) -> None:  # a ScanReport or HeadCounts
    rows = [*enumerate(counts.classes), (ignore_index, "(ignored)")]
    pixels = [*map(int, counts.class_pixels), int(counts.ignore_pixels)]
    total = max(sum(pixels), 1)  # one base for every share, the ignored pixels' too
    print(f"\n{'id':>3}  {'class':<16} {'pixels':>14} {'share of all pixels':>20}")
    for (k, name), n in zip(rows, pixels, strict=True):
        flag = "  <- never occurs" if n == 0 and name != "(ignored)" else ""
        print(f"{k:>3}  {name:<16} {n:>14} {100 * n / total:>19.2f}%{flag}")


def _problems(args: argparse.Namespace, dataset, report) -> list[str]:
    """Class spelling clashes, one line per label a labels file lacks, then bad samples."""
    lines = []
    if args.dataset == "folder":
        config = Path(args.config) if args.config else Path(args.root) / "dataset.yaml"
        clash = class_spelling_problem(dataset.classes, config)
        lines += [clash] if clash else []
    refused, label_lines = getattr(dataset, "refused_labels", lambda: ({}, []))()
    samples = [p for p in report.problems if p.name not in refused]
    return [*lines, *label_lines, *_missing_pictures_grouped(samples)]


def _missing_pictures_grouped(problems: list[Problem]) -> list[str]:
    """One line per problem, but pictures missing from one folder are one line for them all,
    naming the option that says where they are (an export whose photos are elsewhere)."""
    marker = f"{MISSING} "

    def missing(p: Problem) -> Path | None:
        return Path(p.problem[len(marker):]) if p.problem.startswith(marker) else None

    by_folder: dict[Path, list[Problem]] = {}
    for p in problems:
        if (picture := missing(p)) is not None:
            by_folder.setdefault(picture.parent, []).append(p)
    lines = []
    for p in problems:
        picture = missing(p)
        group = by_folder[picture.parent] if picture is not None else [p]
        if len(group) < 2:
            lines.append(str(p))
        elif group[0] is p:
            lines.append(f"{p.path}: {len(group)} image files missing from {picture.parent} "
                         f"(the first: {picture.name}); if the pictures are in another folder, "
                         f"name it with --data images=DIR (fcnseg import: --images DIR)")
    return lines


def _band_lines(dataset) -> list[str]:  # a dataset of bands
    """The band statistics: the train split's, which training normalises by, where checked."""
    train = getattr(dataset, "training_split", None)
    which = (f"over the train split ({len(train)} images): what training normalises by"
             if train is not None and len(train) else
             f"over the {len(dataset)} images checked; training normalises by its own split's")
    stats = band_statistics(train if train is not None and len(train) else dataset)
    return [f"\nbands: {', '.join(stats.bands)} ({stats.pixels} pixels with data, {which})",
            *format_band_table(stats)]


#: The splits whose pictures should not be in another: (those trained or validated on, that one).
_COMPARED = ((("train",), "val"), (("train", "val", "trainval"), "test"))


def _compared_splits(parts: dict[str, list[str]]) -> list[tuple[list[str], str]]:
    """The splits checked that :data:`_COMPARED` compares: (those present, that one)."""
    return [(seen, split) for splits, split in _COMPARED
            if split in parts and (seen := [s for s in splits if s in parts])]


def _duplicate_lines(report: ScanReport, parts: dict[str, list[str]]) -> list[str]:
    """For each pair of splits compared, one line for the images that look the same as one of
    the splits trained on, one for those that look nearly the same (:func:`near_duplicates`),
    naming a few pairs."""
    lines, hashes = [], report.hashes
    for seen, split in _compared_splits(parts):
        found = near_duplicates({n: hashes[n] for s in seen for n in parts[s] if n in hashes},
                                {n: hashes[n] for n in parts[split] if n in hashes})
        for same, look, why in (
                (True, "the same as", f"hashes within {SAME_PICTURE_BITS} of 256 bits: a copy, "
                                      f"or the picture re-saved or resized"),
                (False, "nearly like", f"hashes {SAME_PICTURE_BITS + 1} to {NEAR_DUPLICATE_BITS} "
                                       f"of 256 bits apart: video frames a few apart, an edited "
                                       f"or shifted picture")):
            pairs = [f"{v} ~ {t}" for v, t, bits in found if (bits <= SAME_PICTURE_BITS) == same]
            more = f" and {len(pairs) - 3} more" if len(pairs) > 3 else ""
            lines += [f"{len(pairs)} {split} image(s) look {look} a {' or '.join(seen)} image "
                      f"({why}): {', '.join(pairs[:3])}{more}; "
                      f"{'validation' if split == 'val' else split} scores on them overstate "
                      f"those on new pictures: keep such pictures in one split"] if pairs else []
    return lines


def _warnings(dataset, report: ScanReport, parts: dict[str, list[str]]) -> list[str]:
    """What check-data warns of, besides empty splits and bad samples."""
    void = report.void
    lines = [*getattr(dataset, "warnings", ()), narrow_range_warning(dataset),
             large_images_warning(sample_image_sizes(dataset, limit=len(dataset)),
                                  images="images checked"),
             dataset.remap_warning(report.unlisted_values) if report.unlisted_values else None,
             *(f"{path}: mask without an image (not used)"
               for path in getattr(dataset, "unmatched_masks", lambda: [])()),
             f"{len(void)} mask(s) ignore every pixel (value {dataset.ignore_index}), so training "
             f"learns nothing from them ({', '.join(void[:3])}{' ...' * (len(void) > 3)}): "
             f"left out of the pixel counts above" if void else None,
             *_duplicate_lines(report, parts)]
    return [line for line in lines if line]


def run(args: argparse.Namespace) -> int:
    dataset, parts, description = _open(args)
    if len(dataset) == 0:  # an empty scan is no success
        raise ValueError(f"{description}: no images to check")
    report = scan_dataset(dataset, workers=args.workers, progress=True,
                          hashes=bool(_compared_splits(parts)))

    print(f"dataset: {description}")
    print(f"classes: {dataset.num_classes}, ignore value: {dataset.ignore_index}")
    print(f"\n{'split':<14} {'images':>6}")
    for split, names in parts.items():
        print(f"{split:<14} {len(names):>6}")
    print(f"{'checked':<14} {report.images:>6} distinct images")
    rule = getattr(dataset, "split_rule", None)  # how an export read directly splits
    for split in (s for s, names in parts.items() if not names):
        print(f"warning: split {split!r} holds no images: a run that trains or validates on it "
              f"stops before its first step" + (f"; {rule}" if rule else ""))
    if excluded := tuple(getattr(dataset, "excluded_ids", ())):
        print(f"left out of every split: {', '.join(excluded)}")

    for head, counts in (report.heads or {None: report}).items():
        if head is not None:
            print(f"\nlabel map {head!r} ({len(counts.classes)} classes)")
        _print_counts(counts, dataset.ignore_index)

    if getattr(dataset, "bands", None):
        print("\n".join(_band_lines(dataset)))

    for warning in _warnings(dataset, report, parts):
        print(f"warning: {warning}")
    problems = _problems(args, dataset, report)
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print("\nno problems found")
    return 0
