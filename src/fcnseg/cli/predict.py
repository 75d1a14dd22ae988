"""``fcnseg predict``: segment files, folders, globs and rasters into label PNGs, overlays,
heatmaps, uncertainty maps and probabilities (the work is :mod:`fcnseg.inference`'s); exit
status 1 when any input failed (after all the others are written), 2 for bad options."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache, partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fcnseg.cli import options
from fcnseg.cli.progress import Progress, closing_text
from fcnseg.data.annotations.export import DEFAULT_TOLERANCE
from fcnseg.data.annotations.labelstudio import picture_urls
from fcnseg.data.images import DEFAULT_MAX_PIXELS, ImageError, upright_size
from fcnseg.data.rasters import open_raster
from fcnseg.engine.distributed import (
    DistInfo,
    all_gather_objects,
    setup_distributed,
    teardown_distributed,
)
from fcnseg.inference import TTA, Segmenter, SlidingWindow
from fcnseg.inference.annotate import (
    EXPORT_FORMATS,
    RANKING_NAME,
    UNCERTAIN_BELOW,
    PreAnnotations,
)
from fcnseg.inference.calibration import UNCERTAINTY_KINDS
from fcnseg.inference.files import (
    OutputFiles,
    PictureStyle,
    collect_inputs,
    input_folders,
    output_files,
    outputs_complete,
    outputs_job,
    parse_classes,
    prepare_output_folder,
    written_by,
)
from fcnseg.inference.modalities import given_modality, is_companion_file, segment_modalities
from fcnseg.inference.pipeline import OutputOptions, predict_files, write_predictions
from fcnseg.inference.rasters import (
    TILING_RULE,
    RasterJob,
    TileSettings,
    merge_parts,
    model_bands,
    model_identity,
    needs_tiling,
    output_complete,
    part_path,
    predict_raster,
    recorded_model_id,
    rows_written,
    segmenter_tile_fn,
    write_raster_preview,
)
from fcnseg.inference.visualize import COLORMAPS, background_classes
from fcnseg.weightfiles.artifacts import (
    artifact_kind,
    labels_only,
    labels_only_error,
    read_artifact,
)

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
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, metavar="PIXELS",
                   help="with --format: how far simplified outlines may stray from the "
                        "predicted regions (0: every corner)")
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
    p.add_argument("--outlines", action="store_true",
                   help="outline each class's regions in the overlay")
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
                        "always resume")


def run(args: argparse.Namespace) -> int:
    args.segmenter_tiles = options.tiles_from_args(args)  # the one tile setting of the run
    _check_options(args)
    args.image_urls = picture_urls(args.image_urls_from) if args.image_urls_from else {}
    sliding, tta = options.sliding_window_from_args(args), options.tta_from_args(args)
    skipped: list[str] = []  # pictures never read: said, not counted as failed
    inputs, problems = collect_inputs(args.inputs, Path(args.out), notes=skipped)
    if not inputs:
        raise FileNotFoundError("nothing to segment: " + "; ".join(
            [f"{spec}: {problem}" for spec, problem in problems] + skipped))
    for line in skipped:
        _report(f"note: {line}")
    # An export answering labels only says so in its description: refused before any output.
    wanted = _probability_options(args)
    if wanted and artifact_kind(args.checkpoint) is not None \
            and labels_only(read_artifact(args.checkpoint)):
        raise ValueError(labels_only_error(args.checkpoint, " and ".join(wanted)))
    out_dir = prepare_output_folder(args.out)
    ranks = setup_distributed(args.device)  # torchrun: this process's share of the inputs
    finished = False
    try:
        status = _predict(args, ranks, out_dir, (inputs, problems), (sliding, tta))
        finished = True
        return status
    finally:
        teardown_distributed(ranks, finished=finished)


def _predict(args: argparse.Namespace, ranks: DistInfo, out_dir: Path,
             collected: tuple[list[tuple[Path, str]], list[tuple[str, str]]],
             window: tuple[SlidingWindow | None, TTA | None]) -> int:
    """Segment this process's share (``collected``: inputs, failed specs; ``window``: sliding
    window, TTA); the exit status."""
    (inputs, problems), (sliding, tta) = collected, window
    if ranks.distributed and (args.format or args.rank):
        raise ValueError("--format and --rank gather every image into one file: run them in "
                         "one process, not under torchrun")
    limits = {} if args.max_pixels is None else {"max_pixels": args.max_pixels}
    seg = Segmenter.from_checkpoint(args.checkpoint,
                                    device=ranks.device if ranks.distributed else args.device,
                                    sliding_window=sliding, tta=tta,
                                    **args.segmenter_tiles, precision=args.precision, **limits)
    if seg.labels_only and (wanted := _probability_options(args)):
        raise ValueError(labels_only_error(args.checkpoint, " and ".join(wanted)))
    work = _plan(args, seg, inputs, problems, ranks)
    _prepare(args, seg, work.images)
    try:
        heat_classes = parse_classes(args.heatmaps or [], seg.class_names)
    except ValueError as e:
        raise ValueError(f"--heatmaps: {e}") from None
    tally = _Tally()
    for spec, problem in work.problems:
        tally.count(f"{spec}: {problem}")
    kind = args.uncertainty_kind or ("entropy" if args.uncertainty else None)
    kinds = list(UNCERTAINTY_KINDS) if kind == "both" else [kind] if kind else []
    # The model by its weights and settings, not its path: a retrained model is another one.
    # Earlier versions recorded its weights' digest: hashed at most once, when a record needs.
    ids = (model_identity(seg, as_loaded=True) if work.images or work.rasters else "",
           cache(partial(model_identity, seg)))
    style = _picture_style(args, seg)
    job = outputs_job(ids[0], seg.palette, style) if work.images else ""
    if args.skip_complete:
        expected = partial(output_files, out_dir, class_names=seg.class_names,
                           heatmap_classes=heat_classes, probs=args.probs, uncertainty=kinds)
        earlier = cache(lambda: outputs_job(ids[1](), seg.palette, style))
        work.images = _left_to_do(work.images, expected, out_dir, (job, earlier), ranks, tally)
    pre = _pre_annotations(args, seg, out_dir, work) if args.format or args.rank else None
    outputs = OutputOptions(
        heatmap_classes=tuple(heat_classes), heatmaps_present=args.heatmaps_present,
        uncertainty=tuple(kinds), probs=args.probs, style=style, protected=work.protected,
        observe=pre.add if pre is not None else None,
        # Label Studio's score is given where probabilities are computed anyway: asking for
        # them for it alone would hold C×H×W floats of every photo (GBs for a large one).
        observe_needs_probs=args.rank is not None, job=job)
    _note_raster_options(args, work, ranks)
    _segment_rasters(args, seg, work, out_dir, bool(kinds), ids, ranks, tally)
    _segment_images(args, seg, work, (out_dir, outputs), tally, ranks)
    if pre is not None:
        _write_annotations(pre, out_dir, tally)
    return _finish(tally, work.given, out_dir, ranks, precision_text(seg, args.precision))


def _pre_annotations(args: argparse.Namespace, seg: Segmenter, out_dir: Path,
                     work: _Work) -> PreAnnotations:
    """What gathers the polygons of --format and the uncertainty of --rank."""
    return PreAnnotations(out_dir, args.format, rank=args.rank is not None, top=args.top,
                          tolerance=args.tolerance, min_area=args.min_area,
                          class_names=tuple(seg.class_names), palette=seg.palette,
                          coco_categories=seg.coco_categories,
                          order=tuple(name for _, name in work.images),
                          image_url=args.image_url, image_urls=args.image_urls,
                          image_folders=input_folders(args.inputs),
                          model_version=f"fcnseg {args.checkpoint}")


def _note_raster_options(args: argparse.Namespace, work: _Work, ranks: DistInfo) -> None:
    """One line when options that only images take were given with rasters."""
    given = [name for name, value in (("--heatmaps", args.heatmaps),
                                      ("--heatmaps-present", args.heatmaps_present),
                                      ("--format", args.format), ("--rank", args.rank))
             if value]
    if given and work.rasters and ranks.is_main:
        none = "" if work.images or not (args.format or args.rank) else \
            "; with no image to segment, no annotation or ranking file is written"
        _report(f"{' and '.join(given)} apply to images, not to the {len(work.rasters)} "
                f"raster(s) segmented by tiles (e.g. {work.rasters[0][0]}), as is {TILING_RULE}: "
                f"those get NAME.tif and NAME_overlay.png; their class probabilities come as "
                f"NAME_probs.tif with --probs (and NAME_uncertainty.tif with --uncertainty)"
                f"{none}")


def _probability_options(args: argparse.Namespace) -> list[str]:
    """The options given that need the model's probabilities."""
    return [name for name, given in (
        ("--probs", args.probs), ("--uncertainty", args.uncertainty or args.uncertainty_kind),
        ("--heatmaps", args.heatmaps), ("--heatmaps-present", args.heatmaps_present),
        ("--rank uncertainty", args.rank)) if given]


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
    if args.tolerance < 0:
        raise ValueError(f"--tolerance must be 0 or more pixels, got {args.tolerance}")
    if args.min_area > 1 and importlib.util.find_spec("scipy") is None:
        raise ValueError("--min-area needs scipy: pip install 'fcnseg[data]'")


def _report(message: str) -> None:
    tqdm.write(f"fcnseg predict: {message}", file=sys.stderr)


@dataclass
class _Tally:
    """Outputs written, inputs failed (each reported as it fails) and skipped as complete;
    the images predicted, failed and their seconds, and whether a speed line is due (progress
    to a log), for the closing line of a sharded run; annotation files or images' annotations
    not written (said as found), apart from the inputs, whose own outputs are written."""

    written: int = 0
    failed: int = 0
    skipped: int = 0
    images: int = 0
    images_failed: int = 0
    seconds: float = 0.0
    annotation_problems: int = 0
    speed_line: bool = False

    def count(self, problem: str | None) -> None:
        if problem is None:
            self.written += 1
        else:
            _report(problem)
            self.failed += 1


@dataclass
class _Work:
    """What this process segments; ``share``: (rank, world size) sharing each raster's rows."""

    images: list[tuple[Path, str]]
    rasters: list[tuple[Path, str]]
    problems: list[tuple[str, str]]
    input_dirs: dict[str, Path] | None
    protected: frozenset[Path]
    share: tuple[int, int] | None
    given: int


def _plan(args: argparse.Namespace, seg: Segmenter, inputs: list[tuple[Path, str]],
          problems: list[tuple[str, str]], ranks: DistInfo) -> _Work:
    """Sort the inputs into images and rasters; this process's share of them."""
    # One rule for every model (TILING_RULE); a multi-band model reads the bands of both.
    rasters = [(p, n) for p, n in inputs
               if needs_tiling(p, args.max_pixels or DEFAULT_MAX_PIXELS, seg.tiles.tile)]
    inputs = [item for item in inputs if item not in rasters]
    input_dirs, input_modality = _input_dirs(args.input_dir, seg.input_names, inputs)
    if input_dirs is not None:
        # a folder given as INPUT holds the companions (x_hha.png, hha/x.png) of its images
        beside = [m for m in seg.input_names if m != input_modality and m not in input_dirs]
        if beside:
            inputs = [(path, name) for path, name in inputs
                      if not is_companion_file(path, beside)]
        if not inputs:
            raise FileNotFoundError(f"nothing to segment: every INPUT is another image's "
                                    f"{'/'.join(seg.input_names)} companion file")
    # An output must never replace an input (--out is the input folder, which holds a
    # ground-truth "x_label.png" next to "x.png"): such an input is refused, not overwritten.
    protected = frozenset(path.resolve() for path, _ in [*inputs, *rasters])
    # Fewer rasters than processes: every process takes a share of each raster's tile rows.
    share = (ranks.rank, ranks.world_size) \
        if ranks.distributed and 0 < len(rasters) < ranks.world_size else None
    if ranks.distributed:
        inputs = inputs[ranks.rank::ranks.world_size]
        rasters = rasters if share else rasters[ranks.rank::ranks.world_size]
    given = len(inputs) + (len(problems) + len(rasters) if ranks.is_main
                           else 0 if share else len(rasters))
    return _Work(inputs, rasters, problems if ranks.is_main else [],  # reported once
                 input_dirs, protected, share, given)


def _prepare(args: argparse.Namespace, seg: Segmenter, images: list[tuple[Path, str]]) -> None:
    """``--compile``, and a note when the model knows synthetic shapes only."""
    if args.compile and images:
        failure = seg.compile(_first_size(images), batch_size=min(args.batch_size, len(images)))
        if failure is not None:
            print(f"fcnseg predict: warning: {failure}", file=sys.stderr)
    if seg.trained_on == "synthetic":
        print(SYNTHETIC_NOTE.format(checkpoint=args.checkpoint), file=sys.stderr)


def _picture_style(args: argparse.Namespace, seg: Segmenter) -> PictureStyle:
    """How overlays and heatmaps look; the background untinted unless --blend-background."""
    unblended = () if args.blend_background else tuple(
        background_classes(seg.class_names, seg.background_class))
    return PictureStyle(
        alpha=args.alpha, colormap=args.colormap, legend=args.legend, outlines=args.outlines,
        unblended=unblended, heatmap_over_photo=args.heatmap_over_photo,
        max_side=args.picture_max_side)


def _left_to_do(images: list[tuple[Path, str]], expected: Callable[..., OutputFiles],
                out_dir: Path, jobs_now: tuple[str, Callable[[], str]], ranks: DistInfo,
                tally: _Tally) -> list[tuple[Path, str]]:
    """``--skip-complete``: the images whose outputs are not all written by this same job
    (model and settings, as the manifest records), the others counted as skipped; one line
    for those predicted again as another job's or no recorded job's. ``jobs_now``: this job,
    and the same job as earlier versions named it (computed only when needed)."""
    job, earlier = jobs_now
    writers = written_by(out_dir)
    todo, other, unrecorded = [], 0, 0
    for path, name in images:
        files = expected(name=name)
        if not outputs_complete(path, files):
            todo.append((path, name))
            continue
        jobs = {writers.get(p) for p in files.all()}
        if jobs == {job} or (None not in jobs and jobs <= {job, earlier()}):
            tally.skipped += 1
            continue
        todo.append((path, name))
        if jobs - {job, None}:  # (not the earlier name of this job: that was skipped)
            other += 1
        else:
            unrecorded += 1
    other, unrecorded = (int(c) for c in
                         np.sum(all_gather_objects((other, unrecorded), ranks), axis=0))
    reasons = []
    if other:
        reasons.append(f"the outputs of {other} image(s) were written by another model or "
                       f"with other settings")
    if unrecorded:
        reasons.append(f"{'those' if other else 'the outputs'} of {unrecorded} image(s) have "
                       f"no record of the model that wrote them (an older fcnseg, or a run "
                       f"stopped while writing them)")
    if reasons and ranks.is_main:
        _report(f"{out_dir}: {' and '.join(reasons)}; predicted again")
    return todo


def _segment_rasters(args: argparse.Namespace, seg: Segmenter, work: _Work, out_dir: Path,
                     uncertainty: bool, ids: tuple[str, Callable[[], str]], ranks: DistInfo,
                     tally: _Tally) -> None:
    """Each raster by tiles into ``NAME.tif``, going on under an earlier version's record."""
    tiles = replace(seg.tiles, batch_size=args.batch_size, probs=args.probs,
                    uncertainty=uncertainty)
    current, earlier = ids
    for path, name in work.rasters:
        out = out_dir / f"{name}.tif"
        recorded = recorded_model_id(out)
        # a raster an earlier version began or finished for this model goes on under its id
        model_id = recorded if recorded not in (None, current) and recorded == earlier() \
            else current
        # from an earlier run of this same model and settings
        complete = output_complete(out, path, seg.class_names, tiles, model_id)
        problem = _predict_raster(seg, path, out, tiles, model_id, args, work, ranks)
        if work.share is None or ranks.is_main:  # rank 0 counts the raster it merged
            if problem is None:
                problem = _raster_preview(seg, path, out, args)
            if problem is None and complete:
                tally.skipped += 1
            else:
                tally.count(problem)


def _raster_preview(seg: Segmenter, path: Path, out: Path, args: argparse.Namespace) -> str | None:
    """``NAME_overlay.png`` beside a label raster (a problem as one line)."""
    preview = out.with_name(f"{out.stem}_overlay.png")
    if preview.is_file() and preview.stat().st_mtime >= out.stat().st_mtime:
        return None  # written with this label raster
    try:
        with open_raster(path) as reader:
            bands = model_bands(seg, reader.info)
        write_raster_preview(path, out, preview, seg.palette, seg.class_names, bands=bands,
                             band_names=seg.input_convention.bands,
                             style=_picture_style(args, seg))
    except ImageError as e:
        return str(e)
    return None


def _segment_images(args: argparse.Namespace, seg: Segmenter, work: _Work,
                    where: tuple[Path, OutputOptions], tally: _Tally, ranks: DistInfo) -> None:
    """Each image (with its other modalities) into its outputs, behind a progress bar."""
    out_dir, outputs = where
    desc = (f"predict (process {ranks.rank + 1} of {ranks.world_size})" if ranks.distributed
            else "predict")
    with Progress(len(work.images), unit="image", desc=desc, off=args.no_progress,
                  closing_line=not ranks.distributed) as bar:
        if not work.images:
            outcomes = iter(())
        elif work.input_dirs is None:
            outcomes = predict_files(seg, work.images, out_dir, outputs,
                                     batch_size=args.batch_size, workers=args.io_workers,
                                     warn=lambda line: _report(f"warning: {line}"))
        else:
            predictions = segment_modalities(seg, work.images, work.input_dirs,
                                             return_probs=outputs.needs_probs)
            outcomes = write_predictions(predictions, out_dir, seg.palette, outputs,
                                         workers=args.io_workers)
        for outcome in outcomes:
            bar.update(1, failed=outcome.problem is not None)
            tally.count(outcome.problem)
    tally.images, tally.images_failed = bar.done - bar.failed, bar.failed
    tally.seconds, tally.speed_line = bar.elapsed(), bar.in_log


def _write_annotations(pre: PreAnnotations, out_dir: Path, tally: _Tally) -> None:
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


def _finish(tally: _Tally, given: int, out_dir: Path, ranks: DistInfo,
            precision: str) -> int:
    """The summary line over every process (and under torchrun its closing progress line)."""
    shares = all_gather_objects((tally.written, tally.failed, tally.skipped, given,
                                 tally.images, tally.images_failed, tally.annotation_problems,
                                 tally.seconds), ranks)
    written, failed, skipped, total, images, images_failed, annotating = (
        int(c) for c in np.sum(shares, axis=0)[:7])
    if ranks.distributed and ranks.is_main and tally.speed_line and images + images_failed:
        seconds = max(share[7] for share in shares)  # the processes ran side by side
        print(f"predict ({ranks.world_size} processes): "
              f"{closing_text(images, images_failed, seconds, 'image')}",
              file=sys.stderr, flush=True)
    if ranks.is_main:
        print(f"wrote outputs for {written} of {total} input(s) to {out_dir}"
              + (f" ({ranks.world_size} processes)" if ranks.distributed else "")
              + f", precision {precision}"
              + (f"; {skipped} complete already, skipped" if skipped else "")
              + (f"; {failed} failed" if failed else "")
              + (f"; {annotating} problem{'s' * (annotating > 1)} writing annotations"
                 if annotating else ""))
    return 1 if failed or annotating else 0


def _predict_raster(seg: Segmenter, path: Path, out: Path, tiles: TileSettings, model_id: str,
                    args: argparse.Namespace, work: _Work, ranks: DistInfo) -> str | None:
    """One raster, or this process's share of its rows (rank 0 joins them); a problem line."""
    share = work.share
    job = RasterJob(model_id=model_id, model_name=str(args.checkpoint), palette=seg.palette)
    if share is None or output_complete(out, path, seg.class_names, tiles, model_id):
        return _predict_raster_part(seg, path, out, tiles, job, args, work.protected)
    problem = _predict_raster_part(seg, path, part_path(out, share[0]), tiles,
                                   replace(job, part=share), args, work.protected)
    problems = [p for p in all_gather_objects(problem, ranks) if p is not None]
    if problems:
        return problems[0]
    if ranks.is_main:
        merge_parts(path, out, seg.class_names, tiles, share[1], model_id=model_id,
                    model_name=str(args.checkpoint), palette=seg.palette)
    all_gather_objects(None, ranks)  # the others wait for the merged output
    return None


def _predict_raster_part(seg: Segmenter, path: Path, out: Path, tiles: TileSettings,
                         job: RasterJob, args: argparse.Namespace,
                         protected: frozenset[Path]) -> str | None:
    if out.resolve() in protected:
        return f"{path}: its output {out} would replace an input; not segmented"
    if importlib.util.find_spec("rasterio") is None:  # label GeoTIFFs are written with it
        return (f"{path}: segmenting a raster by tiles into a GeoTIFF needs rasterio "
                f"(pip install 'fcnseg[geo]')")
    bars: list[Progress] = []  # the tiles' bar, begun when predict_raster says how many

    def start(count: int, total: int, resumed_from_row: int) -> None:
        if resumed_from_row:
            _report(f"{out}: resuming at row {resumed_from_row:,} ({count:,} of {total:,} "
                    f"tiles left)")
        bars.append(stack.enter_context(
            Progress(count, unit="tile", desc=f"predict {path.name}", off=args.no_progress)))

    def advance(count: int) -> None:
        if bars:
            bars[0].update(count)

    try:
        with open_raster(path) as reader:
            info = reader.info
        job = replace(job, bands=model_bands(seg, info), progress=advance, started=start,
                      nodata=seg.input_convention.nodata)
        with contextlib.ExitStack() as stack:
            try:
                outcome = predict_raster(segmenter_tile_fn(seg, info), path, out,
                                         seg.class_names, tiles, job)
            except KeyboardInterrupt:
                rows = rows_written(out)
                _report(f"{out}: stopped before its first rows were written; run the same "
                        f"command again" if rows <= 0 else f"{out}: stopped with {rows:,} of "
                        f"{info.height:,} rows written, which are kept; run the same command "
                        f"again to continue from there")
                raise
    except ImageError as e:
        return str(e)
    if outcome.skipped:
        _report(f"{out} is complete already; skipped")
    elif outcome.replaced:
        _report(f"{out}: written by another model or with other settings; predicted again")
    if outcome.removed:
        _report(f"{out}: removed the earlier run's {' and '.join(p.name for p in outcome.removed)} "
                f"(not written with these settings)")
    return None


def _first_size(inputs: list[tuple[Path, str]]) -> tuple[int, int]:
    """(height, width) of the first readable input: compiled models warm up at that size."""
    for path, _ in inputs[:8]:
        try:
            width, height = upright_size(path)
            return height, width
        except (OSError, ValueError):
            continue
    return 256, 256


def _input_dirs(items: list[str], input_names: tuple[str, ...],
                inputs: list[tuple[Path, str]]) -> tuple[dict[str, Path] | None, str]:
    """``{modality: folder}`` from ``--input-dir`` (None for a model that takes colour images
    alone and no ``--input-dir``) and the modality of the INPUTs. A folder that is another's
    or the INPUTs' own is refused: every image would silently be its own other input."""
    dirs: dict[str, Path] = {}
    for item in items:
        modality, sep, folder = item.partition("=")
        if not sep or not modality or not folder:
            raise ValueError(f"--input-dir: expected MODALITY=DIR, got {item!r}")
        if modality not in input_names:
            raise ValueError(f"--input-dir: the model takes the inputs {list(input_names)}, not "
                             f"{modality!r}")
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"--input-dir {item}: {folder} is not a folder")
        dirs[modality] = Path(folder)
    if not dirs and input_names == ("color",):
        return None, "color"
    try:
        given = given_modality(input_names, dirs)
    except ValueError as e:
        raise ValueError(f"--input-dir: {e}") from None
    owner: dict[Path, str] = {}
    for modality, folder in dirs.items():
        real = folder.resolve()
        if real in owner:
            raise ValueError(f"--input-dir {modality}={folder}: the same folder as --input-dir "
                             f"{owner[real]}={dirs[owner[real]]}; each input needs its own")
        owner[real] = modality
    for path, _ in inputs:
        modality = owner.get(path.parent.resolve())
        if modality is not None:
            raise ValueError(f"--input-dir {modality}={dirs[modality]}: the same folder as the "
                             f"{given} images given ({path.name} is in it), so each image would be "
                             f"its own {modality} input; give the folder of the {modality} images")
    return dirs, given
