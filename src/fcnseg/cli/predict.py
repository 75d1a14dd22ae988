"""The ``fcnseg predict`` command segments image files, folders, globs and rasters.
Its options become calls of :mod:`fcnseg.inference.pipeline`, which writes every output; exit
status 1 when any input failed (after all the others are written; with ``--skip-complete``, any
not failing as ``OUT/failed.txt`` lists), 2 for bad options."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import replace
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fcnseg.cli import options
from fcnseg.cli.progress import Progress, closing_text
from fcnseg.data.annotations.export import BRUSH, DEFAULT_TOLERANCE
from fcnseg.data.annotations.labelstudio import picture_urls
from fcnseg.data.images import ImageError
from fcnseg.data.rasters import raster_info
from fcnseg.engine.distributed import (
    DistInfo,
    all_gather_objects,
    setup_distributed,
    stop_board,
    teardown_distributed,
)
from fcnseg.engine.signals import StopRequest, until_signal
from fcnseg.inference import Segmenter
from fcnseg.inference.annotate import EXPORT_FORMATS, RANKING_NAME, UNCERTAIN_BELOW, PreAnnotations
from fcnseg.inference.calibration import UNCERTAINTY_KINDS
from fcnseg.inference.counts import ClassCounts
from fcnseg.inference.files import (
    BENCHMARK_LABEL_IDS,
    OutputOptions,
    PictureStyle,
    benchmark_label_ids,
    collect_inputs,
    input_folders,
    output_files,
    outputs_job,
    parse_classes,
)
from fcnseg.inference.pipeline import (
    FAILED_NAME,
    FailedList,
    Inputs,
    Plan,
    RasterRun,
    Tally,
    first_size,
    left_to_do,
    plan_inputs,
    predict_files,
    refuse_foreign_outputs,
    segment_rasters,
)
from fcnseg.inference.rasters import TILING_RULE, check_mask_size, model_identity
from fcnseg.inference.segmenter import Prediction, read_ignore_mask
from fcnseg.inference.visualize import COLORMAPS, background_classes, read_label_png
from fcnseg.utils.files import prepare_output_folder
from fcnseg.weightfiles.artifacts import labels_only_error

NAME = "predict"
HELP = "Segment images (files, folders, globs): label PNGs, overlays, heatmaps, probabilities."
EXAMPLE = "fcnseg predict --checkpoint best.pt photos/ one.jpg --out preds"

#: Printed when the checkpoint was trained on the built-in synthetic scenes (the demo's).
SYNTHETIC_NOTE = (
    "note: {checkpoint} was trained on fcnseg's synthetic shapes only (discs, rectangles, "
    "triangles, bars, rings, blobs on textured ground); on real photos it segments nothing "
    "useful. For photos, use a model trained on real data, such as the paper's FCN-8s for "
    "PASCAL VOC (see \"Pretrained models\" in the README)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_checkpoint(p)
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="image files, folders (searched recursively) or glob patterns")
    p.add_argument("--out", required=True, help="output folder")
    _add_outputs(p)
    p.add_argument("--input-dir", action="append", default=[], metavar="MODALITY=DIR",
                   help="for a model with several inputs (NYUDv2 RGB-HHA, RGB-D): the folder "
                        "holding each INPUT's file of this modality under the same file name, "
                        "e.g. hha=data/nyud/data/hha; INPUTs are then the colour images; "
                        "repeatable. Without it, each INPUT's file is found beside it: "
                        "NAME_hha.EXT, NAME.hha.EXT or ../hha/NAME.EXT")
    _add_annotations(p)
    options.add_batch_size(p, default=4)
    options.add_window_and_tta(p)
    options.add_tiles(p, f"{TILING_RULE[0].upper()}{TILING_RULE[1:]} is segmented by tiles "
                         f"of PIXELS×PIXELS into NAME.tif, a label GeoTIFF on the input's grid, "
                         f"with bounded memory and resumable; every other file (a photo, a "
                         f"TIFF without georeferencing within --max-pixels, of any bit depth "
                         f"and bands, such as a microscopy image) is segmented as an image: "
                         f"NAME_label.png, overlay, heatmaps, --format; one larger than PIXELS "
                         f"by blended tiles as well (a colour model's: one of over 4096×4096 "
                         f"pixels, by tiles of 2048 starting on the model's output stride "
                         f"without --tile) (default: 512)")
    _add_pictures(p)
    _add_reading(p)
    options.add_device(p)
    options.add_precision(p)
    options.add_compile(p)
    options.add_no_progress(p)


def _add_outputs(p: argparse.ArgumentParser) -> None:
    """What is written besides the label PNG: heatmaps, probabilities, uncertainty."""
    heat = p.add_mutually_exclusive_group()
    heat.add_argument("--heatmaps", action="append", metavar="CLASSES",
                      help="write probability heatmaps for these classes: names or indices, "
                           "comma-separated (cat,dog or 8,12), or all; repeatable")
    heat.add_argument("--heatmaps-present", action="store_true",
                      help="write heatmaps for the classes present in each prediction")
    p.add_argument("--probs", action="store_true", help="also write NAME_probs.npz")
    p.add_argument("--uncertainty", action="store_true",
                   help="write NAME_uncertainty_entropy.png, the entropy of each pixel's class "
                        "probabilities; with --probs the raw map goes into the npz too")
    p.add_argument("--uncertainty-kind", choices=(*UNCERTAINTY_KINDS, "both"), default=None,
                   help="which uncertainty map: entropy (the default), maxprob (1 - the largest "
                        "probability) or both; implies --uncertainty")


def _add_annotations(p: argparse.ArgumentParser) -> None:
    """Predictions as polygons for a labelling tool, and the images ranked for labelling."""
    p.add_argument("--format", choices=EXPORT_FORMATS, default=None,
                   help="also write the predictions as polygons to correct in a labelling tool: "
                        "labelme (NAME.json, its imagePath leading to the image: open with "
                        "`labelme IMAGES --output OUT`), coco (annotations.coco.json), cvat "
                        "(annotations.xml, CVAT for images 1.1) or labelstudio "
                        "(tasks.labelstudio.json, tasks with predictions to import into a "
                        "project whose labeling config is labelstudio-config.xml); a "
                        "background class is labelme's _background_ (in CVAT no label: "
                        "regions around it are masks), and `fcnseg import` reads them back")
    p.add_argument("--label-ids", choices=list(BENCHMARK_LABEL_IDS), default=None,
                   help="also write label_ids/NAME.png: the prediction in the benchmark's "
                        "label ids (cityscapes: road 7, car 26 ..., pixels in no class 0), one "
                        "file per image named as the benchmark's evaluation scripts and server "
                        "take them: give them label_ids/ (the model's classes must be the "
                        "benchmark's)")
    p.add_argument("--image-url", default=None, metavar="PREFIX",
                   help="with --format labelstudio: each task's image is PREFIX followed by the "
                        "picture's path below the folder given as INPUT (day1/DJI_0001.JPG; "
                        "for pictures given by name, below the folder they share), PREFIX "
                        "naming that folder as the Label Studio project reaches it (local storage: "
                        "/data/local-files/?d=FOLDER/, FOLDER relative to its document root; "
                        "or http://host/photos/); default: the picture's path relative to --out")
    p.add_argument("--image-urls-from", type=Path, default=None, metavar="EXPORT",
                   help="with --format labelstudio: name each picture as this Label Studio "
                        "JSON export names the picture of its file name, upload prefix aside "
                        "(/data/upload/3/1a2b3c4d-IMG_0042.jpg for IMG_0042.jpg), of several "
                        "the one in the folders most like its own; pictures it lacks, or has "
                        "several of as alike, as --image-url says")
    p.add_argument("--tolerance", type=_tolerance, default=DEFAULT_TOLERANCE,
                   metavar="PIXELS|mask",
                   help="with --format: how far simplified outlines may stray from the "
                        "predicted regions (0: every corner); mask, with --format labelstudio: "
                        "no outlines but each class's exact mask as a brush (brushlabels, "
                        "holes and one-pixel lines kept), the config's labels BrushLabels")
    p.add_argument("--min-area", type=options.non_negative_int, default=0, metavar="PIXELS",
                   help="with --format: no polygon of fewer pixels: predicted regions that "
                        "small (specks) are filled into the class around them, outline patches "
                        "that small left out (the label PNGs keep them; 0, the default: every "
                        "region and patch)")
    p.add_argument("--rank", choices=["uncertainty"], default=None,
                   help=f"write {RANKING_NAME}: the images ordered by how much a label would teach "
                        f"the model, most first (mean entropy of the class probabilities, "
                        f"calibrated when the checkpoint has a temperature, and the share of "
                        f"pixels whose top probability is below {UNCERTAIN_BELOW})")
    p.add_argument("--counts", type=Path, default=None, metavar="FILE.csv",
                   help="write FILE.csv: one row per image in input order (rasters segmented "
                        "by tiles first, counted from NAME.tif), its path then the pixels of "
                        "each class by name and those in no class, '(no data)' (--ignore-mask, "
                        "a raster's nodata); a run resumed with --skip-complete keeps the rows "
                        "written and adds the rest, never one twice")
    p.add_argument("--top", type=options.positive_int, default=None, metavar="K",
                   help="with --rank and --format: polygons for the K most uncertain images "
                        "only (the ones to correct first)")


def _add_pictures(p: argparse.ArgumentParser) -> None:
    """How overlays and heatmaps look."""
    p.add_argument("--alpha", type=float, default=0.5,
                   help="opacity of the label colours in overlays, and of heatmaps drawn over "
                        "the photo, 0 to 1")
    p.add_argument("--legend", action=argparse.BooleanOptionalAction, default=True,
                   help="a legend of the classes present beside each overlay, and a title and "
                        "colour bar on each heatmap (--no-legend: pictures at the image's size)")
    p.add_argument("--ignore-mask", type=Path, default=None, metavar="FILE",
                   help="a fixed camera's hood or region of interest: an image of the frames' "
                        "size, black (0) where pixels are left out, any other colour where they "
                        "are kept; pixels left out are labelled 255 (no data), keep the photo's "
                        "colours in overlays and count in no class (--counts); for rasters "
                        "segmented by tiles, a raster of their size, 0 in every band where "
                        "pixels are left out, read by windows (a tiled GeoTIFF for a large "
                        "one): those pixels are written as pixels without data are")
    p.add_argument("--outlines", action="store_true",
                   help="outline each class's regions in the overlay")
    p.add_argument("--overlay", action=argparse.BooleanOptionalAction, default=True,
                   help="write NAME_overlay.png beside each label PNG (--no-overlay: labels only)")
    p.add_argument("--blend-background", action="store_true",
                   help="tint background pixels too (by default the background class, the "
                        "one dataset.yaml declares with background: or else one named "
                        "background/void, keeps the photo's colours)")
    p.add_argument("--heatmap-over-photo", action="store_true",
                   help="draw heatmaps over the photo (at --alpha) instead of on their own")
    p.add_argument("--colormap", default="viridis", choices=COLORMAPS, help="heatmap colours")
    p.add_argument("--picture-max-side", type=int, default=None, metavar="PIXELS",
                   help="draw overlays, heatmaps and uncertainty pictures at most PIXELS on the "
                        "photo's longer side (default: the photo's size); label PNGs and "
                        "probabilities keep the photo's size")


def _add_reading(p: argparse.ArgumentParser) -> None:
    """Limits and threads of reading and writing, and resuming a stopped run."""
    p.add_argument("--max-pixels", type=options.positive_int, default=None,
                   help="refuse larger images (default: about 89 million pixels, Pillow's "
                        "decompression-bomb limit); raise it for huge images")
    p.add_argument("--io-workers", type=options.non_negative_int, default=None,
                   help="threads that read images ahead of the model and write outputs behind "
                        "it (default: one per two cores, 1 to 4; 0: one file after another in "
                        "the main thread)")
    p.add_argument("--skip-complete", action="store_true",
                   help="leave out inputs whose outputs are all written already by this same model "
                        "and settings (each checked: present, the label PNG of the input's size, "
                        "and recorded in --out's .fcnseg-outputs.txt as written by a model of the "
                        "same checkpoint (or weights) digest, precision, window/TTA, colours and "
                        "picture options): a run stopped half-way and started again writes only "
                        "the rest; outputs of another or retrained model, other settings or an "
                        "older fcnseg (no record) are predicted again. Label GeoTIFFs of rasters "
                        "always resume. Images that fail again as --out's failed.txt lists them "
                        "(a corrupt frame) leave the exit status 0; only new failures make it 1")


def run(args: argparse.Namespace) -> int:
    tiles = options.tiles_from_args(args)  # the one tile setting: rasters' and photos' tiles
    _check_options(args)
    args.image_urls = picture_urls(args.image_urls_from) if args.image_urls_from else {}
    running = {"sliding_window": options.sliding_window_from_args(args),
               "tta": options.tta_from_args(args), **tiles}
    tally = Tally()
    # A signal before the images' loop (model loading included) or after it stops at once;
    # under torchrun, loading goes on to the images' loop, where the processes agree to stop.
    with StopRequest(at_once=True) as stop:
        try:
            return _run(args, running, tally, stop)
        except KeyboardInterrupt:
            if stop.signum is None:
                raise
    return _stopped(stop.signum, tally, args.out, tally.written > 0)


def _run(args: argparse.Namespace, running: dict[str, Any], tally: Tally,
         stop: StopRequest) -> int:
    skipped: list[str] = []  # pictures never read: said, not counted as failed
    inputs, problems = collect_inputs(args.inputs, Path(args.out), notes=skipped)
    if not inputs:
        raise FileNotFoundError("nothing to segment: " + "; ".join(
            [f"{spec}: {problem}" for spec, problem in problems] + skipped))
    for line in skipped:
        _report(f"note: {line}")
    ranks = setup_distributed(args.device)  # torchrun: this process's share of the inputs
    stop.at_once = not ranks.distributed
    finished = False
    try:
        status = _predict(args, ranks, (inputs, problems), running, tally, stop)
        finished = True
        return status
    finally:
        teardown_distributed(ranks, finished=finished)


def _predict(args: argparse.Namespace, ranks: DistInfo,
             collected: tuple[list[tuple[Path, str]], list[tuple[str, str]]],
             running: dict[str, Any], tally: Tally, stop: StopRequest) -> int:
    """Segment this process's share (``collected``: inputs, failed specs; ``running``: the
    Segmenter's window, TTA and tiles) and count it in ``tally``, unless ``stop`` cuts it
    short; the exit status."""
    inputs, problems = collected
    if ranks.distributed and (args.format or args.rank or args.counts):
        raise ValueError("--format, --rank and --counts gather every image into one file: run "
                         "them in one process, not under torchrun")
    limits = {} if args.max_pixels is None else {"max_pixels": args.max_pixels}
    seg = Segmenter.from_checkpoint(args.checkpoint,
                                    device=ranks.device if ranks.distributed else args.device,
                                    **running, precision=args.precision, **limits)
    wanted = [name for name, given in (  # the options given that need probabilities
        ("--probs", args.probs), ("--uncertainty", args.uncertainty or args.uncertainty_kind),
        ("--heatmaps", args.heatmaps), ("--heatmaps-present", args.heatmaps_present),
        ("--rank uncertainty", args.rank)) if given]
    if seg.labels_only and wanted:
        raise ValueError(labels_only_error(args.checkpoint, " and ".join(wanted)))
    label_ids = (benchmark_label_ids(args.label_ids, seg.class_names, args.checkpoint)
                 if args.label_ids else ())
    counts = ClassCounts(args.counts, seg.class_names) if args.counts else None
    plan = plan_inputs(seg, inputs, max_pixels=args.max_pixels, input_dirs=args.input_dir,
                       rank=ranks.rank, world_size=ranks.world_size,
                       gather=partial(all_gather_objects, info=ranks))
    _take_ignore_mask(args.ignore_mask, seg, plan)
    # Created once the model is known to give what was asked: a refusal writes nothing.
    out_dir = prepare_output_folder(args.out)
    if plan.images and (out_dir / FAILED_NAME).is_dir():  # refused now, not after the images
        raise ValueError(f"--out {out_dir}: its {FAILED_NAME} is a folder; move it away")
    if args.compile and plan.images:
        failure = seg.compile(first_size(plan.images),
                              batch_size=min(args.batch_size, len(plan.images)))
        if failure is not None:
            print(f"fcnseg predict: warning: {failure}", file=sys.stderr)
    if seg.trained_on == "synthetic":
        print(SYNTHETIC_NOTE.format(checkpoint=args.checkpoint), file=sys.stderr)
    try:
        heat_classes = parse_classes(args.heatmaps or [], seg.class_names)
    except ValueError as e:
        raise ValueError(f"--heatmaps: {e}") from None
    for spec, problem in problems if plan.is_main else []:  # reported once
        tally.count(f"{spec}: {problem}", _report)
    return _write(args, seg, plan, (out_dir, heat_classes, label_ids, counts), tally, stop)


def _write(args: argparse.Namespace, seg: Segmenter, plan: Plan,
           where: tuple[Path, list[int], tuple[int, ...], ClassCounts | None],
           tally: Tally, stop: StopRequest) -> int:
    """Every output of the ``plan`` (``where``: folder, heatmaps' classes, each class's label
    id in --label-ids' benchmark, the --counts rows), counted in ``tally`` unless ``stop``
    cuts it short; the exit status."""
    out_dir, heat_classes, label_ids, counts = where
    kind = args.uncertainty_kind or ("entropy" if args.uncertainty else None)
    kinds = list(UNCERTAINTY_KINDS) if kind == "both" else [kind] if kind else []
    # The model by its weights and settings, not its path: a retrained model is another one.
    # Earlier versions recorded its weights' digest: hashed at most once, when a record needs.
    ids = (model_identity(seg, as_loaded=True) if plan.images or plan.rasters else "",
           cache(partial(model_identity, seg)))
    style = _picture_style(args, seg)
    job = outputs_job(ids[0], seg.palette, style) if plan.images else ""
    every = [path for path, _ in [*plan.rasters, *plan.images]]  # --counts rows in this order
    images = plan.images
    expected = partial(output_files, out_dir, class_names=seg.class_names,
                       heatmap_classes=heat_classes, probs=args.probs, uncertainty=kinds,
                       overlay=args.overlay, label_ids=bool(label_ids))
    every_class = range(len(seg.class_names)) if args.heatmaps_present else heat_classes
    refuse_foreign_outputs(plan, partial(expected, heatmap_classes=every_class), out_dir)
    if args.skip_complete:
        earlier = cache(lambda: outputs_job(ids[1](), seg.palette, style))
        plan.images, tally.skipped = left_to_do(plan, expected, out_dir, (job, earlier),
                                                _report)
    for path, _ in [*plan.rasters, *plan.images] if counts is not None else []:
        counts.rows.pop(str(path), None)  # its row once written now: none of an earlier run
    pre = _annotations(args, seg, out_dir, images)
    observers = [each.add for each in (pre, counts) if each is not None]
    left = set(plan.images)
    _add_complete([item for item in images if item not in left], out_dir, seg, pre, counts)
    outputs = OutputOptions(
        heatmap_classes=tuple(heat_classes), heatmaps_present=args.heatmaps_present,
        uncertainty=tuple(kinds), probs=args.probs, style=style, protected=plan.protected,
        observe=(lambda *row: [f(*row) for f in observers]) if observers else None,
        # Label Studio's score is given where probabilities are computed anyway: asking for
        # them for it alone would hold C×H×W floats of every photo (GBs for a large one).
        observe_needs_probs=args.rank is not None, job=job, label_ids=label_ids)
    _note_raster_options(args, plan)
    tiles = replace(seg.tiles, batch_size=args.batch_size, probs=args.probs,
                    uncertainty=bool(kinds))
    run = RasterRun(tiles, ids, style, _report,
                    partial(Progress, unit="tile", off=args.no_progress),
                    counted=counts.add_raster if counts is not None else None,
                    mask=args.ignore_mask)
    stopped = until_signal(partial(segment_rasters, seg, plan, out_dir, run, tally))[1]
    stopped = _segment_images(args, seg, plan, (out_dir, outputs), tally, stop, stopped)
    if counts is not None:
        counts.write(every)
    if stopped is not None:
        return _stopped(stopped, tally.gathered(plan), out_dir, bool(plan.images), plan.is_main)
    if pre is not None:
        _write_annotations(pre, out_dir, tally)
    return _finish(tally, out_dir, plan, precision_text(seg, args.precision))


def _annotations(args: argparse.Namespace, seg: Segmenter, out_dir: Path,
                 images: Inputs) -> PreAnnotations | None:
    """--format's and --rank's annotations of ``images``, in their order."""
    if not (args.format or args.rank):
        return None
    return PreAnnotations(out_dir, args.format, rank=args.rank is not None, top=args.top,
                          tolerance=args.tolerance, min_area=args.min_area,
                          class_names=tuple(seg.class_names), palette=seg.palette,
                          coco_categories=seg.coco_categories,
                          order=tuple(name for _, name in images),
                          image_url=args.image_url, image_urls=args.image_urls,
                          image_folders=input_folders(args.inputs),
                          model_version=f"fcnseg {args.checkpoint}")


def _add_complete(images: Inputs, out_dir: Path, seg: Segmenter, pre: PreAnnotations | None,
                  counts: ClassCounts | None) -> None:
    """``images`` complete already (--skip-complete) added to --format's annotations ``pre``
    (not --rank's, which needs probabilities: it ranks those predicted now) and to the --counts
    rows ``counts`` lacks, from their label PNGs, each read once."""
    for path, name in images:
        adds = [pre.add] if pre is not None and not pre.rank else []
        adds += [counts.add] if counts is not None and str(path) not in counts.rows else []
        if adds:
            label = read_label_png(output_files(out_dir, name, seg.class_names).label)
            pred = Prediction(label, np.zeros((0, 0, 3), np.uint8),
                              class_names=tuple(seg.class_names))
            for add in adds:
                add(path, name, pred)


def _stopped(signum: int, tally: Tally, out_dir: Path | str, images_left: bool,
             say: bool = True) -> int:
    """As train says it (when ``say``): what was written, how to go on; exit 128 + ``signum``."""
    if say:
        _report(f"stopped by signal {signum}; wrote the outputs of {tally.written} image(s) to "
                f"{out_dir}; run the same command{' with --skip-complete' * images_left} to "
                f"write the rest")
    return 128 + signum


def _take_ignore_mask(mask: Path | None, seg: Segmenter, plan: Plan) -> None:
    """--ignore-mask: read whole for the images (of their size), and checked against the size
    of the rasters, which read it by windows; a refusal names the option."""
    try:
        if mask is not None and plan.images:
            seg.ignored_pixels = read_ignore_mask(mask)
        if mask is not None and plan.rasters:  # of the size of each, before any is segmented
            info = raster_info(mask)
            for path, _ in plan.rasters:
                check_mask_size(info, plan.infos[path])
    except ImageError as e:
        raise ImageError(f"--ignore-mask {mask}", e.problem) from None


def _note_raster_options(args: argparse.Namespace, plan: Plan) -> None:
    """One line when options that only images take were given with rasters."""
    given = [f"--{name.replace('_', '-')}" for name in (
        "heatmaps", "heatmaps_present", "format", "rank", "label_ids")
        if getattr(args, name)]
    if given and plan.rasters and plan.is_main:
        none = "" if plan.images or not (args.format or args.rank) else \
            "; with no image to segment, no annotation or ranking file is written"
        _report(f"{' and '.join(given)} apply to images, not to the {len(plan.rasters)} "
                f"raster(s) segmented by tiles (e.g. {plan.rasters[0][0]}), as is {TILING_RULE}: "
                f"those get NAME.tif and NAME_overlay.png; their class probabilities come as "
                f"NAME_probs.tif with --probs (and NAME_uncertainty.tif with --uncertainty)"
                f"{none}")


def _check_options(args: argparse.Namespace) -> None:
    """The option values and combinations refused before anything is read."""
    if not args.inputs:
        raise ValueError(f"no INPUT given: name image files, folders or glob patterns, e.g. "
                         f"`{EXAMPLE}`")
    if not 0.0 <= args.alpha <= 1.0:
        raise ValueError(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.picture_max_side is not None and args.picture_max_side < 16:
        raise ValueError(f"--picture-max-side must be 16 pixels or more, got "
                         f"{args.picture_max_side}")
    if args.top is not None and (args.rank is None or args.format is None):
        raise ValueError("--top K picks the K most uncertain images to export: it needs "
                         "--rank uncertainty and --format")
    for name, value in (("--image-url", args.image_url),
                        ("--image-urls-from", args.image_urls_from)):
        if value is not None and args.format != "labelstudio":
            raise ValueError(f"{name} names the pictures of Label Studio tasks: it needs "
                             f"--format labelstudio")
    if args.tolerance == BRUSH and args.format != "labelstudio":
        raise ValueError("--tolerance mask writes Label Studio brush masks: it needs --format "
                         "labelstudio (the other formats take outlines, PIXELS)")
    if args.tolerance != BRUSH and args.tolerance < 0:
        raise ValueError(f"--tolerance must be 0 or more pixels, got {args.tolerance}")
    if args.min_area > 1 and importlib.util.find_spec("scipy") is None:
        raise ValueError("--min-area needs scipy: pip install 'fcnseg[data]'")


def _tolerance(text: str) -> float | str:
    """An argparse ``type``: PIXELS (a number) or :data:`BRUSH`."""
    try:
        return text if text == BRUSH else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PIXELS or {BRUSH}, got {text!r}") from None


def _report(message: str) -> None:
    tqdm.write(f"fcnseg predict: {message}", file=sys.stderr)


def _picture_style(args: argparse.Namespace, seg: Segmenter) -> PictureStyle:
    """How overlays and heatmaps look; the background untinted unless --blend-background."""
    unblended = () if args.blend_background else tuple(
        background_classes(seg.class_names, seg.background_class))
    return PictureStyle(
        alpha=args.alpha, colormap=args.colormap, legend=args.legend, outlines=args.outlines,
        unblended=unblended, heatmap_over_photo=args.heatmap_over_photo,
        max_side=args.picture_max_side, overlay=args.overlay)


def _segment_images(args: argparse.Namespace, seg: Segmenter, plan: Plan,
                    where: tuple[Path, OutputOptions], tally: Tally, stop: StopRequest,
                    stopped: int | None) -> int | None:
    """Each image (with its other modalities) into its outputs, behind a progress bar, unless
    the rasters were ``stopped`` (by that signal), those that failed listed in failed.txt; the
    signal (SIGINT, SIGTERM) that stopped it before an image, if one did (those begun written):
    under torchrun one process's signal (also while loading) stops all, which all return it."""
    out_dir, outputs = where
    failures = FailedList(out_dir, known=args.skip_complete)
    board = stop_board(plan.world_size > 1)
    # another process's rasters or loading may have been stopped
    stopped = board(stopped or stop.signum)
    desc = (f"predict (process {plan.rank + 1} of {plan.world_size})"
            if plan.world_size > 1 else "predict")
    with Progress(len(plan.images), unit="image", desc=desc, off=args.no_progress,
                  closing_line=plan.world_size == 1) as bar:
        stop.at_once = False  # asked before each image is taken: those begun are written
        asked = replace(outputs, stop=lambda: board(stop.signum) is not None)
        outcomes = predict_files(seg, plan.images, out_dir, asked, batch_size=args.batch_size,
                                 workers=args.io_workers, input_dirs=plan.input_dirs,
                                 warn=lambda line: _report(f"warning: {line}")
                                 ) if plan.images and stopped is None else ()
        for outcome in outcomes:
            bar.update(1, failed=outcome.problem is not None)
            tally.count(outcome.problem, _report, known=failures.note(outcome))
    if stopped is None and bar.done < len(plan.images):  # (one after the last: none is left)
        stopped = board(stop.signum)
    stop.at_once = plan.world_size == 1
    failures.write(plan)
    if plan.world_size == 1:
        return stopped
    shares = plan.gather((bar.done - bar.failed, bar.failed, bar.elapsed(), stopped))
    stopped = next((s[3] for s in shares if s[3] is not None), None)
    images, failed = sum(s[0] for s in shares), sum(s[1] for s in shares)
    if stopped is None and plan.is_main and bar.in_log and images + failed:
        seconds = max(s[2] for s in shares)  # the processes ran side by side: one line
        print(f"predict ({plan.world_size} processes): "
              f"{closing_text(images, failed, seconds, 'image')}", file=sys.stderr, flush=True)
    return stopped


def _write_annotations(pre: PreAnnotations, out_dir: Path, tally: Tally) -> None:
    """The polygons (``--format``) and the ranking (``--rank``) of every image at once."""
    extra, refused = pre.write()
    for line in [*pre.kept, *pre.notes, *refused, *filter(None, [pre.speck_line()])]:
        _report(line)
    tally.annotation_problems += len(refused)  # the inputs' own outputs are written
    if extra:
        shown = ", ".join(p.name for p in extra[:3]) + (" ..." if len(extra) > 3 else "")
        print(f"wrote {len(extra)} annotation file(s) to {out_dir}: {shown}")


def precision_text(seg: Segmenter, asked: str | None) -> str:
    """The precision the model ran at, as the summary line says it: an export's own (and its
    runtime), or what ``--precision`` asked, or what ``auto`` chose on this device (bf16 on
    CPUs with native bf16, whose results differ from float32 ones by bf16's rounding)."""
    if seg.runtime:  # as evaluate says it of an option the file's own precision overrides
        return f"{seg.runner.reported_precision} ({seg.runtime})" + (
            f"; --precision {asked} does not apply to it" if asked not in (None, "auto") else "")
    if asked not in (None, "auto"):
        return seg.precision
    device = "CPU" if seg.device.type == "cpu" else "GPU"
    return (f"{seg.precision}, chosen automatically on this {device}"
            + ("; --precision fp32 for float32" if seg.precision != "fp32" else ""))


def _finish(tally: Tally, out_dir: Path, plan: Plan, precision: str) -> int:
    """The summary line over every process."""
    total = tally.gathered(plan)
    annotating = total.annotation_problems
    if plan.is_main:
        given = total.written + total.failed + total.skipped  # each input is one of them
        print(f"wrote outputs for {total.written} of {given} input(s) to {out_dir}"
              + (f" ({plan.world_size} processes)" if plan.world_size > 1 else "")
              + f", precision {precision}"
              + (f"; {total.skipped} complete already, skipped" if total.skipped else "")
              + (f"; {total.failed} failed" if total.failed else "")
              + (f" ({total.known} as in an earlier run, listed in {out_dir / FAILED_NAME})"
                 if total.known else "")
              + (f"; {annotating} problem{'s' * (annotating > 1)} writing annotations"
                 if annotating else ""))
    return 1 if total.failed > total.known or annotating else 0
