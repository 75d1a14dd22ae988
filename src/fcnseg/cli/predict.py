"""``fcnseg predict``: segment files, folders and globs; write label PNGs, overlays, heatmaps.

For each input ``<name>`` it writes ``<name>_label.png`` (class indices with the model's palette),
``<name>_overlay.png`` (with a legend beside it), ``<name>_heatmap_<class>.png`` for the classes
asked for (titled, with a colour bar), with ``--uncertainty`` ``<name>_uncertainty_<kind>.png``,
and with ``--probs`` ``<name>_probs.npz``. Inputs found inside a folder keep their subfolders under
``--out``. An input that cannot be read is reported by name and skipped; the exit status is 1
when any input failed, after all the others are written.
"""

from __future__ import annotations

import argparse
import glob
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

NAME = "predict"
HELP = "Segment images (files, folders, globs): label PNGs, overlays, heatmaps, probabilities."

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                              ".ppm", ".pgm", ".pbm", ".pnm"})


#: Printed when the checkpoint was trained on the built-in synthetic scenes (the demo's).
SYNTHETIC_NOTE = (
    "note: {checkpoint} was trained on fcnseg's synthetic shapes only (discs, rectangles, "
    "triangles, bars, rings, blobs on textured ground); on real photos it segments nothing "
    "useful. For photos, use a model trained on real data, such as the paper's FCN-8s for "
    "PASCAL VOC (see \"Pretrained models for real photos\" in the README)."
)


#: --uncertainty choices: one map, or both.
UNCERTAINTY_CHOICES = ("entropy", "maxprob", "both")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint file")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files, folders (searched recursively) or glob patterns")
    p.add_argument("--out", required=True, help="output folder")
    heat = p.add_mutually_exclusive_group()
    heat.add_argument("--heatmaps", nargs="+", metavar="CLASS", default=None,
                      help="write probability heatmaps for these classes (names or indices; "
                           "give it after the inputs)")
    heat.add_argument("--heatmaps-present", action="store_true",
                      help="write heatmaps for the classes present in each prediction")
    p.add_argument("--probs", action="store_true", help="also write <name>_probs.npz")
    p.add_argument("--uncertainty", action="store_true",
                   help="write <name>_uncertainty_entropy.png, the entropy of each pixel's class "
                        "probabilities; with --probs the raw map goes into the npz too")
    p.add_argument("--uncertainty-kind", choices=UNCERTAINTY_CHOICES, default=None,
                   help="which uncertainty map: entropy (default), maxprob (1 - the largest "
                        "probability) or both; implies --uncertainty")
    p.add_argument("--batch-size", type=int, default=4, help="images per forward pass")
    p.add_argument("--sliding-window", type=int, default=None, metavar="W",
                   help="run W×W windows instead of whole images (for large images)")
    p.add_argument("--stride", type=int, default=None,
                   help="sliding-window stride (default: 2/3 of the window)")
    p.add_argument("--tta-flip", action="store_true", help="average with the mirrored image")
    p.add_argument("--tta-scales", nargs="+", default=None, metavar="S",
                   help="average over these input scales (e.g. 0.75 1 1.25 or 0.75,1,1.25)")
    p.add_argument("--alpha", type=float, default=0.5,
                   help="opacity of the label colours in overlays, and of heatmaps drawn over "
                        "the photo (default 0.5)")
    p.add_argument("--legend", action=argparse.BooleanOptionalAction, default=True,
                   help="a legend of the classes present beside each overlay, and a title and "
                        "colour bar on each heatmap (default: on; --no-legend writes pictures "
                        "at the image's size)")
    p.add_argument("--outlines", action="store_true",
                   help="outline each class's regions in the overlay")
    p.add_argument("--blend-background", action="store_true",
                   help="tint background pixels too (default: the background class, named "
                        "background/void or else class 0, keeps the photo's colours)")
    p.add_argument("--heatmap-over-photo", action="store_true",
                   help="draw heatmaps over the photo (at --alpha) instead of on their own")
    p.add_argument("--colormap", default="viridis", choices=("viridis", "jet", "gray"),
                   help="heatmap colours (default viridis)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="refuse larger images (default: about 89 million pixels, Pillow's "
                        "decompression-bomb limit); raise it for huge images")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _has_magic(s: str) -> bool:
    return glob.has_magic(s)


def collect_inputs(
    specs: Sequence[str], out_dir: Path | None = None
) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Expand files, folders and globs into (file, output name) pairs, and (spec, problem)
    pairs for specs that match nothing.

    A folder that contains ``out_dir`` below it is scanned without ``out_dir``, so that a second
    run does not segment the first run's outputs.

    Output names are the file stem, or the path relative to the folder given (without its
    suffix) for files found in a folder; colliding names are made unique (see
    :func:`_unique_names`), so no two inputs write the same outputs.
    """
    found: list[tuple[Path, str]] = []
    problems: list[tuple[str, str]] = []
    seen: set[Path] = set()

    def add(path: Path, name: str) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append((path, name))

    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            skip = _strictly_inside(out_dir, path)
            files = sorted(f for f in path.rglob("*")
                           if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
                           and not (skip and out_dir.resolve() in f.resolve().parents))
            if not files:
                problems.append((spec, "folder holds no images"))
            for f in files:
                add(f, f.relative_to(path).with_suffix("").as_posix())
        elif path.is_file():
            add(path, path.stem)
        elif _has_magic(spec):
            matches = sorted(Path(m) for m in glob.glob(spec, recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                problems.append((spec, "pattern matches no files"))
            for f in files:
                add(f, f.stem)
        else:
            problems.append((spec, "no such file or folder"))
    return _unique_names(found), problems


def _strictly_inside(inner: Path | None, folder: Path) -> bool:
    """Whether ``inner`` is a folder below ``folder`` (not ``folder`` itself)."""
    return inner is not None and folder.resolve() in inner.resolve().parents


def _unique_names(found: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """Disambiguate colliding output names: add the extension (``x_png``, ``x_jpg``), then the
    parent folder (``in/x_png``, ``sub/x_png``), then a counter."""

    def qualify(name: str, path: Path, level: int) -> str:
        if level >= 1 and path.suffix:
            name = f"{name}_{path.suffix.lstrip('.').lower()}"
        # The resolved parent: "../x.png" must not give "../x", which would write outside --out.
        parent = path.resolve().parent.name
        if level >= 2 and parent:
            name = f"{parent}/{name}"
        return name

    names = [name for _, name in found]
    for level in (1, 2):
        counts: dict[str, int] = {}
        for name in names:
            counts[name] = counts.get(name, 0) + 1
        names = [qualify(base, path, level) if counts[name] > 1 else name
                 for (path, base), name in zip(found, names, strict=True)]
    used: set[str] = set()
    out = []
    for (path, _), name in zip(found, names, strict=True):
        base, k = name, 2
        while name in used:
            name = f"{base}_{k}"
            k += 1
        used.add(name)
        out.append((path, name))
    return out


def parse_scales(items: Sequence[str]) -> tuple[float, ...]:
    """``--tta-scales`` values (space- or comma-separated) as positive floats."""
    try:
        scales = tuple(float(v) for item in items for v in item.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--tta-scales: expected numbers like 0.75 1 1.25, got {items}") from None
    if not scales or min(scales) <= 0:
        raise ValueError(f"--tta-scales: scales must be positive, got {items}")
    return scales


#: Names of the raw uncertainty maps in ``<name>_probs.npz``.
_NPZ_NAMES = {"entropy": "entropy", "maxprob": "maxprob_uncertainty"}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "class"


def _resolve_classes(requested: Iterable[str], names: Sequence[str]) -> list[int]:
    """Class indices for ``--heatmaps`` items (names or indices, also comma-separated)."""
    out: list[int] = []
    for item in requested:
        for r in (v.strip() for v in item.split(",")):
            if r in names:
                index = names.index(r)
            elif r.isdigit() and int(r) < len(names):
                index = int(r)
            else:
                raise ValueError(
                    f"--heatmaps: unknown class {r!r}; the model's classes are {list(names)} "
                    f"(give --heatmaps after the inputs, as it takes several values)")
            if index not in out:
                out.append(index)
    return out


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from fcnseg.inference import ImageError, Segmenter, load_image
    from fcnseg.inference.calibration import uncertainty_maps
    from fcnseg.inference.visualize import (
        add_legend,
        background_classes,
        heatmap_picture,
        legend_entries,
        overlay,
        save_label_png,
        save_png,
    )
    from fcnseg.utils.files import atomic_write

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not 0.0 <= args.alpha <= 1.0:
        raise ValueError(f"--alpha must be in [0, 1], got {args.alpha}")
    sliding = None
    if args.sliding_window is not None:
        sliding = {"window": args.sliding_window, "stride": args.stride}
    if args.stride is not None and args.sliding_window is None:
        raise ValueError("--stride: only meaningful with --sliding-window")
    tta = None
    if args.tta_flip or args.tta_scales:
        tta = {"scales": parse_scales(args.tta_scales or ["1"]), "flip": args.tta_flip}
    limits = {} if args.max_pixels is None else {"max_pixels": args.max_pixels}
    seg = Segmenter.from_checkpoint(args.checkpoint, device=args.device,
                                    sliding_window=sliding, tta=tta, **limits)
    if seg.trained_on == "synthetic":
        print(SYNTHETIC_NOTE.format(checkpoint=args.checkpoint), file=sys.stderr)
    heat_classes = _resolve_classes(args.heatmaps, seg.class_names) if args.heatmaps else []
    kind = args.uncertainty_kind or ("entropy" if args.uncertainty else None)
    kinds = ["entropy", "maxprob"] if kind == "both" else [kind] if kind else []
    want_probs = bool(args.probs or heat_classes or args.heatmaps_present or kinds)

    inputs, problems = collect_inputs(args.inputs, Path(args.out))
    failed = 0
    for spec, problem in problems:
        print(f"fcnseg predict: {spec}: {problem}", file=sys.stderr)
        failed += 1
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)

    def report(msg: str) -> None:
        tqdm.write(f"fcnseg predict: {msg}", file=sys.stderr)

    # An output must never replace an input (e.g. --out is the input folder, which holds a
    # ground-truth "x_label.png" next to "x.png"): such an input is refused, not overwritten.
    input_files = {path.resolve() for path, _ in inputs}

    unblended = [] if args.blend_background else background_classes(seg.class_names)

    def overlay_picture(pred) -> np.ndarray:
        picture = overlay(pred.image, pred.label, seg.palette, args.alpha, exclude=unblended,
                          outlines=args.outlines)
        if not args.legend:
            return picture
        entries = legend_entries(pred.label, seg.palette, seg.class_names, exclude=unblended)
        return add_legend(picture, entries, empty_text="background only")

    def write_outputs(name: str, pred) -> None:
        stem = out_dir / name
        classes = pred.present_classes() if args.heatmaps_present else heat_classes
        heat_paths = {c: Path(f"{stem}_heatmap_{_safe(seg.class_names[c])}.png") for c in classes}
        doubt_paths = {k: Path(f"{stem}_uncertainty_{k}.png") for k in kinds}
        targets = [Path(f"{stem}_label.png"), Path(f"{stem}_overlay.png"), *heat_paths.values(),
                   *doubt_paths.values()]
        if args.probs:
            targets.append(Path(f"{stem}_probs.npz"))
        clash = [str(t) for t in targets if t.resolve() in input_files]
        if clash:
            raise FileExistsError(f"its output would overwrite the input {clash[0]}; "
                                  f"choose another --out")
        stem.parent.mkdir(parents=True, exist_ok=True)
        save_label_png(targets[0], pred.label, seg.palette)
        save_png(targets[1], overlay_picture(pred))
        photo = pred.image if args.heatmap_over_photo else None
        doubt = uncertainty_maps(pred.probs, kinds) if kinds else {}
        maps = [(path, pred.probs[c], 1.0, f"P({seg.class_names[c]})")
                for c, path in heat_paths.items()]
        maps += [(path, *doubt[kind]) for kind, path in doubt_paths.items()]
        for path, values, top, title in maps:
            save_png(path, heatmap_picture(values, title=title, colormap=args.colormap, vmin=0.0,
                                           vmax=top, image=photo, alpha=args.alpha,
                                           annotate=args.legend))
        if args.probs:
            raw = {_NPZ_NAMES[k]: v for k, (v, _, _) in doubt.items()}
            with atomic_write(targets[-1]) as f:
                np.savez_compressed(f, probs=pred.probs.astype(np.float32),
                                    label=pred.label,
                                    class_names=np.array(seg.class_names), **raw)

    written = 0
    bar = tqdm(total=len(inputs), unit="img", disable=args.no_progress or None,
               file=sys.stderr, desc="predict")
    for start in range(0, len(inputs), args.batch_size):
        chunk = inputs[start : start + args.batch_size]
        loaded = []
        for path, name in chunk:
            try:
                loaded.append((name, path, load_image(path, max_pixels=seg.max_pixels)))
            except ImageError as e:
                report(f"skipped {e}")
                failed += 1
        images = [im for _, _, im in loaded]
        try:
            preds = seg.predict_batch(images, return_probs=want_probs, batch_size=args.batch_size)
            done = [(name, path, pred) for (name, path, _), pred in zip(loaded, preds, strict=True)]
        except Exception:  # noqa: BLE001 - find out below which image fails (e.g. out of memory)
            done = []
            for name, path, im in loaded:
                try:
                    done.append((name, path, seg.predict(im, return_probs=want_probs)))
                except Exception as e:  # noqa: BLE001
                    report(f"skipped {path}: prediction failed ({type(e).__name__}: {e})")
                    failed += 1
        for name, path, pred in done:
            try:
                write_outputs(name, pred)
                written += 1
            except (OSError, ValueError) as e:
                report(f"{path}: cannot write outputs ({e})")
                failed += 1
        bar.update(len(chunk))
    bar.close()
    print(f"wrote outputs for {written} of {len(inputs)} image(s) to {out_dir}"
          + (f"; {failed} input(s) failed" if failed else ""))
    return 1 if failed else 0
