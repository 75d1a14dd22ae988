"""``fcnseg quantize`` makes an int8 ONNX model of a checkpoint.
Calibration uses the user's images; accuracy is gated against the float model."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from fcnseg.cli import options
from fcnseg.data import build_dataset
from fcnseg.data.check import scan_dataset
from fcnseg.data.errors import DataError
from fcnseg.data.folder import IMAGE_EXTENSIONS
from fcnseg.data.images import ImageError
from fcnseg.data.io import read_image
from fcnseg.data.rasters import fill_nodata
from fcnseg.data.transforms import resize_input
from fcnseg.dataset_paths import recipe_paths_found
from fcnseg.export.common import checkpoint_record
from fcnseg.export.quantize import KEEP_FLOAT, QuantizeError, QuantizeOptions, quantize_model
from fcnseg.inference import Segmenter
from fcnseg.inference.calibration import TemperatureScaled
from fcnseg.inference.class_match import ClassMatch, match_classes
from fcnseg.inference.images import to_rgb_uint8
from fcnseg.inference.rasters import read_model_bands
from fcnseg.inference.visualize import picture_size
from fcnseg.utils.files import check_writable
from fcnseg.utils.validate import fields_of

NAME = "quantize"
HELP = ("Quantize a checkpoint to an int8 ONNX model (ONNX Runtime, per-channel weights) "
        "calibrated on your images; with --val, refuse it when mean IU drops more than --max-drop.")

DATA_HELP = ("a folder of images (or a folder dataset with dataset.yaml), or a dataset spec "
             "NAME[:KEY=VALUE,...] such as synthetic:num_images=64,split=train or "
             "voc:root=data/VOCdevkit,split=train")


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_checkpoint_or_path(p, help="the float checkpoint")
    p.add_argument("--calib", required=True, metavar="DATA",
                   help=f"calibration images: {DATA_HELP}")
    p.add_argument("--out", required=True, metavar="MODEL",
                   help="the int8 ONNX file to write (only if it passes the accuracy gate)")
    p.add_argument("--calib-images", type=options.positive_int, default=200, metavar="N",
                   help="calibrate on N images spread over the set (fewer if it has fewer)")
    p.add_argument("--calib-size", type=options.positive_int, default=512, metavar="PX",
                   help="images with a longer side are scaled down to it for calibration")
    p.add_argument("--val", metavar="DATA",
                   help="validation set with labels for the accuracy gate: a dataset spec "
                        "(as --calib), a folder dataset, or 'recipe' for the one the "
                        "checkpoint's recipe names")
    p.add_argument("--val-images", type=options.positive_int, metavar="N",
                   help="score only N validation images (default: all)")
    p.add_argument("--max-drop", type=float, default=1.0, metavar="POINTS",
                   help="refuse to write when mean IU drops by more than this many points")
    p.add_argument("--force", action="store_true",
                   help="write the model even when the accuracy gate fails")
    p.add_argument("--keep-float", choices=KEEP_FLOAT, default="auto",
                   help="the first convolution, score layers and upsampling in float: "
                        "'auto' when that measurably helps on --val (else all int8), 'none' "
                        "(all int8) or 'sensitive' (always)")
    p.add_argument("--labels-out", action="store_true",
                   help="end the graph in an argmax: N×H×W uint8 labels instead of logits")
    p.add_argument("--reduce-range", action=argparse.BooleanOptionalAction, default=None,
                   help="7-bit weights, for deployment on CPUs without VNNI (their int8 "
                        "kernels can saturate full-range weights, never 7-bit ones, so they "
                        "compute exactly what the gate measured); default: on only when "
                        "this CPU has no VNNI/AMX-INT8")
    options.add_threads(p, "ONNX Runtime's intra-op threads (default: all cores)")


def parse_data(text: str, *, recipe_val: dict[str, Any] | None = None,
               split: str = "train") -> dict[str, Any] | Path:
    """A ``--calib`` / ``--val`` value: a folder of images (a Path), or a dataset spec; a
    folder dataset (with dataset.yaml) is read at ``split`` (``--val``: ``"val"``); ``recipe``
    is ``recipe_val``, the validation set the checkpoint's recipe records."""
    path = Path(text)
    if path.is_dir():
        if (path / "dataset.yaml").is_file():
            return {"name": "folder", "root": str(path), "split": split}
        return path
    if text == "recipe":
        if not recipe_val:
            raise ValueError("--val recipe: the checkpoint's recipe names no validation set")
        return dict(recipe_val)
    name, _, rest = text.partition(":")
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"{text}: no such folder, and not a dataset spec NAME[:KEY=VALUE,...]")
    items = filter(None, map(str.strip, rest.split(",")))
    return {"name": name, **options.yaml_fields(
        items, f"{text}: expected KEY=VALUE after the dataset name")}


def _spread(count: int, limit: int) -> list[int]:
    """Up to ``limit`` indices spread evenly over ``range(count)``."""
    if count <= limit:
        return list(range(count))
    return sorted({int(i) for i in np.linspace(0, count - 1, limit)})


def _model_input(image: Any, where: str, seg: Segmenter | None) -> np.ndarray:
    """A sample's image as the model takes it: a multi-band model's raw band values (checked
    as ``fcnseg predict`` checks them, nodata at the band means) as H×W×N float32; else
    H×W×3 uint8 RGB (RGBA pictures composited, as everywhere in fcnseg)."""
    if seg is not None and seg.input_convention.bands is not None:
        try:
            values, missing = read_model_bands(seg, image)
        except ImageError as e:
            raise ValueError(f"{where}: {e.problem}") from None
        filled = fill_nodata(values, missing, seg.input_convention.mean_pixel())
        return np.asarray(filled, dtype=np.float32)
    a = np.asarray(image)
    bands = 1 if a.ndim == 2 else a.shape[-1] if a.ndim == 3 else None
    if bands not in (3, 4) or (bands == 4 and not where.lower().endswith((".png", ".webp"))):
        raise ValueError(f"{where}: {bands} bands of shape {a.shape}; the model takes RGB "
                         f"images (3 bands)")
    return to_rgb_uint8(a)


#: What to do about a bad sample of a dataset quantize reads (it has no data.skip_bad).
_BAD_DATASET_SAMPLE = ("run 'fcnseg check-data' to list every bad sample, and fix or remove "
                       "them from the dataset")


@contextlib.contextmanager
def _quantize_advice(hint: str) -> Iterator[None]:
    """A bad sample's :class:`DataError` with ``hint``, advice for quantize, not training's."""
    try:
        yield
    except DataError as e:
        raise DataError(e.path, e.problem, hint) from None


def calibration_images(source: dict[str, Any] | Path, limit: int, longest: int
                       ) -> Callable[..., Iterator[Any]]:
    """Up to ``limit`` calibration samples spread over a folder's images (its own, else those
    of its ``images`` subfolder) or a dataset's samples, listed once now; a ValueError naming
    the folder (or dataset) when it holds no image.

    Returns ``images(seg=None)``, a fresh iterator of the chosen images as the model of
    ``seg`` takes them (:func:`_model_input`), scaled to at most ``longest`` pixels a side,
    read as training reads them; a bad image is a DataError naming it, with advice that fits
    quantize."""
    dataset = None
    if isinstance(source, Path):
        files: list[Path] = []
        for folder in (source, source / "images"):
            if not files and folder.is_dir():
                files = sorted(f for f in folder.iterdir()
                               if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise ValueError(f"--calib {source}: the calibration set is empty: no images "
                             f"({', '.join(sorted(IMAGE_EXTENSIONS))}) in {source} or in "
                             f"{source / 'images'}")
        chosen: list[Any] = [files[i] for i in _spread(len(files), limit)]
        hint = f"remove it from {source}, or give --calib another folder"
    else:
        dataset = build_dataset(dict(source))
        if len(dataset) == 0:
            raise ValueError(f"--calib: the calibration set is empty: dataset {source} has no "
                             f"images")
        chosen, hint = _spread(len(dataset), limit), _BAD_DATASET_SAMPLE

    def load(item: Any, seg: Segmenter | None) -> tuple[Any, str]:
        if dataset is not None:
            name = fields_of(source).get("name")
            return dataset.sample(item)[0], f"{name} sample {dataset.name(item)}"
        if seg is not None and seg.input_convention.bands is not None:
            return item, str(item)  # read by the raster reader, as the model's bands
        return read_image(item, "calibration image"), str(item)  # grey, 16-bit ...

    flat: set[str] = set()  # noted once, however often the set is read

    def images(seg: Segmenter | None = None) -> Iterator[np.ndarray]:
        for item in chosen:
            with _quantize_advice(hint):
                image, where = load(item, seg)
            pixels = _model_input(image, where, seg)
            if where not in flat and (pixels == pixels[:1, :1]).all():
                flat.add(where)
                print(f"note: {where}: a flat calibration image (every pixel "
                      f"{pixels[0, 0].tolist()}), which widens no activation range; a photo "
                      f"like those the model will see calibrates it")
            size = picture_size(*pixels.shape[:2], longest)
            yield pixels if size == pixels.shape[:2] else resize_input(pixels, *size)

    return images


@dataclass(frozen=True)
class ValidationSet:
    """The accuracy gate's data: ``pairs()`` gives a fresh iterator of its ``count`` (image,
    label) pairs; ``note`` says when its classes were matched to the model's by name."""

    pairs: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]
    count: int
    note: str | None = None


def validation_pairs(spec: dict[str, Any], limit: int | None,
                     seg: Segmenter | None = None) -> ValidationSet:
    """The (image, label) pairs of a dataset, labels in the model's class indices (``seg``'s:
    the same names in another order are matched by name, other names refused, as ``fcnseg
    evaluate`` does).

    Every sample is read once now, so that a bad file, or classes that are not the model's,
    fail in one line before the slow calibration."""
    dataset = build_dataset(dict(spec))
    shown = str(spec.get("root") or spec.get("name"))
    match = ClassMatch() if seg is None else match_classes(
        list(getattr(dataset, "classes", ()) or ()), seg.class_names, dataset=shown,
        model=str(seg.checkpoint_path or "the model"))
    indices = list(range(len(dataset) if limit is None else min(limit, len(dataset))))
    if not indices:
        raise ValueError(f"--val: dataset {shown} ({_split_text(spec)}) has no images")
    problems = scan_dataset(dataset, indices).problems
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ValueError(f"--val: {problems[0]}{more}; {_BAD_DATASET_SAMPLE}")

    def pairs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in indices:
            with _quantize_advice(_BAD_DATASET_SAMPLE):
                image, label = dataset.sample(i)
            yield (_model_input(image, f"{spec.get('name')} sample {dataset.name(i)}", seg),
                   match.relabel(np.asarray(label)))

    return ValidationSet(pairs, len(indices), match.note)


def _split_text(spec: dict[str, Any]) -> str:
    return f"split {spec['split']}" if spec.get("split") else "its default split"


def _validation(args: argparse.Namespace, seg: Segmenter) -> Any:
    """The ``--val`` pairs (None without it); a folder dataset is scored on its val split."""
    if not args.val:
        return None
    val = parse_data(args.val, recipe_val=seg.validation_data, split="val")
    if isinstance(val, Path):
        raise ValueError(f"--val {args.val}: a folder of images has no labels; give a folder "
                         f"dataset (with dataset.yaml) or a dataset spec")
    if args.val == "recipe":
        val = recipe_paths_found(val, seg.recipe_folders, source=str(seg.checkpoint_path),
                                 option="--val {name}:{key}=DIR")
    chosen = validation_pairs(val, args.val_images, seg)
    print(f"accuracy gate: {chosen.count} images of {val.get('root') or val.get('name')} "
          f"({_split_text(val)})")
    if chosen.note:
        print(chosen.note)
    return chosen.pairs


def run(args: argparse.Namespace) -> int:
    path = options.checkpoint_or_path(
        args, "quantize", "fcnseg quantize CHECKPOINT --calib DATA --out MODEL")
    start = time.perf_counter()
    # The output and the calibration set are checked before the model is loaded.
    check_writable(args.out)
    images = calibration_images(parse_data(args.calib), args.calib_images, args.calib_size)
    seg = Segmenter.from_checkpoint(path, device="cpu")
    if seg.runtime is not None:
        raise ValueError(f"{path}: already an exported model; quantize its checkpoint (.pt)")
    # A model of bands reads them by the raster reader, raw band values; others as RGB.
    calibration = partial(images, seg)
    validation = _validation(args, seg)  # read and checked before the slow calibration
    settings = ("sliding_window", "tta", "precision", "optimizations")  # of this run only
    description = {k: v for k, v in seg.describe().items() if k not in settings}
    description.update(checkpoint_record(seg.validation_data, seg.checkpoint_metrics))
    model = seg.model
    if seg.temperature != 1.0:
        model = TemperatureScaled(model, seg.temperature)
    opts = QuantizeOptions(max_drop=args.max_drop, force=args.force,
                           keep_float=args.keep_float, labels_out=args.labels_out,
                           threads=args.threads, reduce_range=args.reduce_range)
    result = quantize_model(model, args.out, description=description, calibration=calibration,
                            validation=validation, options=opts)
    if result.refused:
        raise QuantizeError(f"refused: {result.refused}")
    kept = (f"{len(result.keep_float)} layers kept in float ({', '.join(result.keep_float)})"
            if result.keep_float else "every layer int8")
    print(f"wrote int8 ONNX {result.path} ({result.size_bytes / 1e6:.1f} MB, {kept}, calibrated on "
          f"{result.calibration_images} images) in {time.perf_counter() - start:.1f} s")
    if result.comparison is None:
        print("note: no --val given, so the accuracy was not measured; run fcnseg evaluate "
              f"--checkpoint {result.path} to score it")
    return 0
