"""``fcnseg import``: annotations of labelme, COCO, CVAT or Label Studio into a folder dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from fcnseg.cli.options import spelled_either_way
from fcnseg.data.annotations import (
    FORMATS,
    ImportOptions,
    ImportReport,
    RasterOptions,
    import_annotations,
)
from fcnseg.utils.files import check_output_folder

NAME = "import"
HELP = ("Import annotations (labelme, COCO, CVAT, Label Studio) as a folder dataset: images/, "
        "index PNG masks/, dataset.yaml, train.txt and val.txt.")

FORMAT_HELP = {
    "labelme": "a folder of labelme JSON files (searched recursively) or one file",
    "coco": "a COCO instances, stuff or panoptic JSON file",
    "cvat-mask": "a CVAT 'Segmentation mask 1.1' export folder (labelmap.txt, SegmentationClass/) "
                 "or its zip",
    "cvat": "a CVAT 'CVAT for images 1.1' or 'CVAT for video 1.1' annotations.xml (or its "
            "folder, or its zip, unpacked beside it; a video's frames as "
            "images/frame_000000.png, ...)",
    "labelstudio": "a Label Studio JSON export",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", choices=FORMATS, metavar="FORMAT",  # cvat_mask as check-data
                   type=spelled_either_way(FORMATS, "-"),
                   help="; ".join(f"{k}: {v}" for k, v in FORMAT_HELP.items()))
    p.add_argument("src", metavar="SRC", help="the annotations (see FORMAT)")
    p.add_argument("--out", required=True, help="the folder dataset to write")
    p.add_argument("--labels", metavar="FILE",
                   help="labelme's labels.txt: one label a line, __ignore__ the ignore value, "
                        "_background_ class 0, the others 1, 2, ... in order; shapes with other "
                        "labels are refused (default: the labels found, _background_ first)")
    p.add_argument("--rename", action="append", type=_rename_pair, default=[],
                   metavar="FROM=TO",
                   help="import the export's label FROM as TO (repeatable; spaces around FROM "
                        "do not count): merges two spellings of a class, or matches --labels "
                        "or the classes of the folder imported into (class names that differ "
                        "only in case or spaces are refused)")
    p.add_argument("--add-unknown-labels", action="store_true",
                   help="with --labels: add labels that are not listed after the listed ones "
                        "instead of refusing their images")
    p.add_argument("--images", metavar="DIR",
                   help="where the pictures are (default: where the format puts them)")
    p.add_argument("--overlap", choices=("top", "ignore"), default="top",
                   help="where shapes overlap: top (later shapes drawn over earlier ones, as "
                        "labelme and CVAT's z-order show them) or ignore (pixels covered by "
                        "shapes of different classes get the ignore value)")
    p.add_argument("--line-width", type=float, default=10.0, metavar="PIXELS",
                   help="width in pixels of line shapes (labelme's labelme2voc uses 10)")
    p.add_argument("--ignore-index", type=int, default=255, metavar="VALUE",
                   help="mask value of ignored pixels, 0-255 (the masks are 8-bit PNGs)")
    p.add_argument("--crowd-as-ignore", action="store_true",
                   help="coco: give iscrowd regions the ignore value, as detection does "
                        "(default: their class, as semantic segmentation reads them; CVAT's "
                        "COCO export marks every mask iscrowd)")
    p.add_argument("--empty-as-background", action="store_true",
                   help="cvat, coco: import the images the export lists without any shape as "
                        "all background (default: left to annotate, listed in unannotated.txt, "
                        "as these exports list every image of a task, labelled or not)")
    p.add_argument("--val-fraction", type=float, metavar="FRACTION",
                   help="share of the images (of the videos, for frames) listed in val.txt "
                        "(default: the one an earlier import into --out split with, else 0.2)")


def _rename_pair(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old.strip() or not new.strip():
        raise argparse.ArgumentTypeError(f"expected FROM=TO (two label names), got {text!r}")
    return old, new.strip()


def run(args: argparse.Namespace) -> int:
    if args.val_fraction is not None and not 0.0 <= args.val_fraction <= 1.0:
        raise ValueError(f"--val-fraction must be in [0, 1], got {args.val_fraction}")
    if not 0 <= args.ignore_index <= 255:
        raise ValueError(f"--ignore-index: {args.ignore_index} is no value of the 8-bit masks "
                         f"fcnseg import writes: expected 0-255")
    options = ImportOptions(
        labels=Path(args.labels) if args.labels else None,
        add_unknown=args.add_unknown_labels,
        raster=RasterOptions(overlap=args.overlap, line_width=args.line_width,
                             crowd_as_ignore=args.crowd_as_ignore),
        ignore_index=args.ignore_index, val_fraction=args.val_fraction,
        images=Path(args.images) if args.images else None,
        empty_as_background=args.empty_as_background, rename=_renames(args.rename))
    if args.add_unknown_labels and options.labels is None:
        raise ValueError("--add-unknown-labels needs --labels")
    for folder in ("", "images", "masks"):  # before anything is read or written
        check_output_folder(Path(args.out) / folder)
    report = import_annotations(args.format, Path(args.src), Path(args.out), options,
                                report=lambda line: print(f"fcnseg import: {line}"))
    left = _left_counts(report)
    if report.written:
        print(f"imported {len(report.written)} image(s) into {args.out} "
              f"({len(report.classes)} classes: {', '.join(report.classes)}){left}")
        return 1 if report.errors else 0
    # Nothing to train on: a script that goes on would train on no image.
    print(f"imported no image, so no dataset was written to {args.out}"
          + (left or f"; {args.src} holds no image")
          + (f" (listed in {Path(args.out) / 'unannotated.txt'})"
             if report.unannotated else ""))
    return 1


def _left_counts(report: ImportReport) -> str:
    """The images not imported, counted by why (``; 3 not imported; ...``)."""
    unreviewed, predicted = len(report.unreviewed), len(report.predicted_only)
    without = len(report.unannotated) - unreviewed - predicted
    return ((f"; {len(report.errors)} not imported" if report.errors else "")
            + (f"; {without} without annotations" if without else "")
            + (f"; {predicted} with predictions only" if predicted else "")
            + (f"; {unreviewed} not reviewed" if unreviewed else ""))


def _renames(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """--rename's pairs as a mapping; ValueError when one label is renamed twice."""
    renames: dict[str, str] = {}
    for old, new in pairs:
        if renames.get(old.strip(), new) != new:
            raise ValueError(f"--rename: {old.strip()!r} renamed twice "
                             f"({renames[old.strip()]!r} and {new!r})")
        renames[old.strip()] = new
    return renames
