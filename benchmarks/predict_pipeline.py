"""End-to-end ``fcnseg predict`` against the model alone, on a folder of 500×375 JPEGs.

Generates ``--images`` JPEGs, saves a randomly initialised FCN-8s (same geometry, 21 classes;
or uses ``--checkpoint``) and times, interleaved in one run (ratios of medians):

- **model only**: the same Segmenter (same precision and layout) on the same images, already
  decoded and normalised into tensors, ``--batch-size`` at a time (forward pass and argmax);
- **library**: :func:`fcnseg.inference.pipeline.predict_files` writing label PNGs and overlays
  (with legends) into a folder, reading ahead and writing behind the model (the default);
- **library, sequential**: the same with ``workers=0`` (read, segment, write, in turn), for
  reference;
- **CLI**: ``python -m fcnseg predict`` in a fresh process, and the same on the first batch
  alone, whose time stands for the start-up (imports, loading the checkpoint, the first forward
  pass of each shape), so that the CLI's throughput is also given without it: the images
  beyond the first batch over the time they add.

It also checks that the pipelined outputs are byte for byte those of the sequential path.
Ratios are given two ways: of the medians, and paired (the median over rounds of each round's
model time over the variant's, steadier when the machine's load drifts). ``--check`` makes the
exit status 1 when the library's or the CLI's paired ratio (start-up excluded) is below 0.90.

    python benchmarks/predict_pipeline.py                  # ~5 minutes on 2 busy cores
    python benchmarks/predict_pipeline.py --images 8 --repeats 2 --check
    python benchmarks/predict_pipeline.py --compile        # also torch.compile, model only
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see fcnseg demo)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from fcnseg.bench.suite import trained_looking  # noqa: E402
from fcnseg.bench.targets import print_target  # noqa: E402
from fcnseg.bench.timing import round_logger, time_interleaved  # noqa: E402
from fcnseg.checkpoint import save_checkpoint  # noqa: E402
from fcnseg.data.palette import voc_palette  # noqa: E402
from fcnseg.inference import Segmenter  # noqa: E402
from fcnseg.inference.files import MANIFEST_NAME, PictureStyle, collect_inputs  # noqa: E402
from fcnseg.inference.pipeline import OutputOptions, predict_files  # noqa: E402
from fcnseg.inference.visualize import background_classes  # noqa: E402
from fcnseg.models import fcn8s  # noqa: E402

#: Goal: end-to-end throughput as a fraction of the model's.
MIN_RATIO = 0.90

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


def make_jpegs(folder: Path, count: int, width: int, height: int) -> list[Path]:
    """``count`` smooth random colour JPEGs (quality 90), like photos to the codecs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        coarse = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
        picture = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
        noise = rng.normal(0, 6, size=(height, width, 3))
        pixels = np.clip(np.asarray(picture, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
        path = folder / f"img_{i:04d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def random_checkpoint(path: Path) -> Path:
    """FCN-8s (same geometry, VOC's 21 classes) with random score layers, saved to ``path``."""
    torch.manual_seed(0)
    model = trained_looking(fcn8s(num_classes=len(VOC_CLASSES), geometry="same"))
    save_checkpoint(path, model, class_names=VOC_CLASSES, palette=voc_palette())
    return path


def same_files(a: Path, b: Path) -> list[str]:
    """Relative paths that differ between folders ``a`` and ``b`` (missing on one side too).
    The manifests are left out: the CLI's also records which model and settings wrote each
    output (for ``--skip-complete``), which the library's run does not."""
    names_a = {p.relative_to(a).as_posix() for p in a.rglob("*")
               if p.is_file() and p.name != MANIFEST_NAME}
    names_b = {p.relative_to(b).as_posix() for p in b.rglob("*")
               if p.is_file() and p.name != MANIFEST_NAME}
    differ = sorted(names_a ^ names_b)
    differ += [n for n in sorted(names_a & names_b)
               if not filecmp.cmp(a / n, b / n, shallow=False)]
    return differ


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=16, help="JPEGs to segment per pass")
    p.add_argument("--size", default="500x375", help="WIDTHxHEIGHT of the JPEGs")
    p.add_argument("--checkpoint", help="a checkpoint (default: a random FCN-8s, 21 classes)")
    p.add_argument("--batch-size", type=int, default=4, help="as fcnseg predict's default")
    p.add_argument("--precision", default="auto")
    p.add_argument("--repeats", type=int, default=3, help="timed passes of each variant")
    p.add_argument("--compile", action="store_true",
                   help="also time the model only with torch.compile (its compile time too)")
    p.add_argument("--work", help="folder for images and outputs (default: a temporary one)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--check", action="store_true",
                   help=f"exit 1 when an end-to-end ratio is below {MIN_RATIO:.2f}")
    p.add_argument("--quick", action="store_true",
                   help="8 images, 2 repeats (for run_all --quick)")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.repeats = 8, 2
    width, height = (int(v) for v in args.size.lower().split("x"))

    work = Path(args.work or tempfile.mkdtemp(prefix="fcnseg-predict-bench-"))
    images = make_jpegs(work / "images", args.images, width, height)
    if args.images <= args.batch_size:
        p.error("--images must be more than --batch-size (the CLI's start-up is measured on one "
                "batch)")
    first = work / "first_batch"
    first.mkdir(exist_ok=True)
    for path in images[: args.batch_size]:
        shutil.copy(path, first / path.name)
    checkpoint = Path(args.checkpoint) if args.checkpoint else random_checkpoint(
        work / "fcn8s_random.pt")

    seg = Segmenter.from_checkpoint(checkpoint, precision=args.precision)
    print(f"{seg!r}, {torch.get_num_threads()} torch threads, {args.images} JPEGs of "
          f"{width}×{height}, batch {args.batch_size}")
    inputs, _ = collect_inputs([str(work / "images")])
    style = PictureStyle(unblended=tuple(background_classes(seg.class_names)))  # as the CLI's
    outputs = OutputOptions(style=style, protected=frozenset(p.resolve() for p, _ in inputs))
    arrays = [np.asarray(Image.open(path).convert("RGB")) for path in images]
    batches = [seg.preprocess(arrays[i : i + args.batch_size])
               for i in range(0, len(arrays), args.batch_size)]

    def model_only(segmenter: Segmenter = seg) -> None:
        for x in batches:
            segmenter.logits(x).argmax(1).cpu().numpy()

    def library(workers: int | None, out: Path) -> None:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        outcomes = list(predict_files(seg, inputs, out, outputs, batch_size=args.batch_size,
                                      workers=workers))
        problems = [o.problem for o in outcomes if o.problem]
        if problems:
            raise RuntimeError(problems[0])

    def cli(folder: Path, out: Path) -> None:
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "fcnseg", "predict", "--checkpoint",
                        str(checkpoint), str(folder), "--out", str(out), "--no-progress",
                        "--precision", seg.precision, "--batch-size", str(args.batch_size)],
                       check=True, stdout=subprocess.DEVNULL)

    variants = {
        "model only": model_only,
        "library": lambda: library(None, work / "out_pipelined"),
        "library, sequential": lambda: library(0, work / "out_sequential"),
        "CLI": lambda: cli(work / "images", work / "out_cli"),
        "CLI, first batch (start-up)": lambda: cli(first, work / "out_cli_first"),
    }
    compile_note = None
    if args.compile:
        compiled = Segmenter.from_checkpoint(checkpoint, precision=args.precision)
        start = time.perf_counter()
        failure = compiled.compile((height, width), batch_size=args.batch_size)
        compile_note = failure or f"compile and warm-up {time.perf_counter() - start:.1f} s"
        print(f"torch.compile: {compile_note}")
        if failure is None:
            variants["model only, torch.compile"] = lambda: model_only(compiled)

    times = time_interleaved(variants, warmup=1, repeats=args.repeats, progress=round_logger(
        lambda line: print(line, file=sys.stderr, flush=True), "interleaved rounds"))
    differ = same_files(work / "out_pipelined", work / "out_sequential")
    differ_cli = same_files(work / "out_pipelined", work / "out_cli")

    n = args.images
    model_rate = n / times["model only"].median
    # Each variant's seconds per round for the n images; for the CLI without start-up, the
    # seconds the images beyond the first batch added, scaled to n images.
    seconds = {name: list(t.samples) for name, t in times.items()
               if name not in ("model only", "CLI, first batch (start-up)")}
    b = args.batch_size
    seconds["CLI without start-up"] = [
        (full - start) * n / (n - b) for full, start in
        zip(times["CLI"].samples, times["CLI, first batch (start-up)"].samples, strict=True)]
    startup = times["CLI, first batch (start-up)"].median - b / model_rate
    # Ratios to the model in the same round: on a shared machine the load drifts between
    # rounds far more than within one, so the median of these paired ratios is steadier than
    # the ratio of the medians (both are printed).
    # A round where the first batch took about as long as the whole run (the load changed
    # between them) gives no start-up-free figure: it is left out.
    paired = {}
    for name, secs in seconds.items():
        ratios = [m / v for m, v in zip(times["model only"].samples, secs, strict=True)
                  if v > 0.25 * m]
        paired[name] = statistics.median(ratios) if ratios else float("nan")
    rows = {name: n / statistics.median(secs) if statistics.median(secs) > 0 else float("nan")
            for name, secs in seconds.items()}
    print(f"\n{'variant':28s} {'images/s':>9s} {'of model':>9s} {'paired':>7s}   "
          f"median s (spread)")
    print(f"{'model only':28s} {model_rate:9.3f} {1.0:9.3f} {1.0:7.3f}   "
          f"{times['model only'].median:.2f} ({times['model only'].spread:.0%})")
    for name, rate in rows.items():
        timing = times.get(name)
        detail = (f"{timing.median:.2f} ({timing.spread:.0%})" if timing
                  else f"start-up {startup:.1f} s taken off")
        print(f"{name:28s} {rate:9.3f} {rate / model_rate:9.3f} {paired[name]:7.3f}   {detail}")
    print(f"outputs of the pipelined and sequential paths: "
          f"{'byte-identical' if not differ else f'{len(differ)} files differ: {differ[:3]}'}; "
          f"CLI: {'byte-identical' if not differ_cli else f'{len(differ_cli)} differ'}")

    checked = {name: paired[name] for name in ("library", "CLI without start-up")
               if paired[name] == paired[name]}  # NaN: not measured
    failed = [f"{name} {ratio:.3f}" for name, ratio in checked.items() if ratio < MIN_RATIO]
    if args.json:
        Path(args.json).write_text(json.dumps({
            "segmenter": repr(seg), "images": n, "size": [width, height],
            "batch_size": args.batch_size, "threads": torch.get_num_threads(),
            "model_images_per_s": model_rate,
            "images_per_s": rows, "ratios": {k: v / model_rate for k, v in rows.items()},
            "paired_ratios": paired,
            "cli_startup_s": startup, "torch_compile": compile_note,
            "byte_identical": not differ and not differ_cli,
            "timings": {k: v.as_dict() for k, v in times.items()}}, indent=2))
    for name, target in (("library", "predict_over_model"),
                         ("CLI without start-up", "predict_cli_over_model")):
        if name in checked:
            print_target(target, checked[name], MIN_RATIO)
    print_target("predict_outputs_identical", float(not differ and not differ_cli), 1.0)
    if differ or differ_cli:
        print("FAIL: the pipelined outputs differ from the sequential ones")
        return 1
    if args.check and failed:
        print(f"FAIL: below {MIN_RATIO:.2f} of the model's throughput: {', '.join(failed)}")
        return 1
    print("end-to-end / model (paired): "
          + ", ".join(f"{k} {v:.3f}" for k, v in checked.items()) + f" (goal {MIN_RATIO:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
