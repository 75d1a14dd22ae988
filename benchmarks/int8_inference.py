"""int8 inference (``fcnseg quantize``) against the bf16 default path: speed and accuracy, one run.

Speed: FCN-8s in the same geometry (full width, trained-looking scorers) at ``--size`` (500)
batch 1, quantized as ``fcnseg quantize`` does (ONNX Runtime static QDQ, per-channel weights),
timed round-robin in one run with

- int8 matrix products (ONNX Runtime's MatMulInteger, u8×s8→s32 through the same MLAS kernels
  as the int8 convolutions: VNNI/AMX where the CPU has them) and bf16 ones (oneDNN),
  ``--peak-size``³, the reference rates of each kind;
- ``Segmenter.predict`` with its defaults (bf16 autocast, channels-last on this kind of CPU) and
  ``Segmenter.predict`` of the int8 file (the same call, ``--checkpoint model.int8.onnx``), all
  layers int8 and with the sensitive layers (first convolution, scores, upsampling) in float;
- the bare forwards of both (the bf16 model; the ONNX Runtime session).

Prints each model's rate (its FLOPs, counted on the float model, per second) as a multiple of
the fastest matrix product of its kind timed in the run, at that product's best round: a
reference measured here, not the hardware's peak (a model's convolution kernels can outrun it,
above 1×), and the int8/bf16 speed ratio, as the median of the per-round ratios (each round
times both back to back) and as the ratio of medians.

Accuracy: two trained models, each quantized as ``fcnseg quantize --keep-float auto`` does
(calibration on its training images), scored against float32 on its validation set: the demo
model (``synthetic-fcn8s``, or ``--checkpoint``) and a model of thin structures, trained on a
second generated dataset (2-4 pixel lines and arcs on noisy backgrounds, written as a folder
dataset). FCN-8s cannot draw a 2-4 pixel line between the points of its stride-8 grid, so the
thin model puts the same FCN skip head on a small trunk with features at strides 8, 4 and 2
(``thin_backbone.py``, through fcnseg's custom-backbone interface). For each: mean IU of both,
per-class IU, pixel agreement, and the same with 7-bit weights (``--reduce-range``: what CPUs
without VNNI compute exactly).

Trained models and the generated data are kept under ``--cache`` in folders named by a hash of
their recipe, so a re-run with the same recipe skips training (``--retrain`` ignores them).

    python benchmarks/int8_inference.py              # ~25 minutes on 2 busy cores (~8 training)
    python benchmarks/int8_inference.py --quick      # shorter training, fewer repeats
    python benchmarks/int8_inference.py --skip-accuracy
    python benchmarks/int8_inference.py --time best.pt model.int8.onnx --size 1280x720 640x480

``--time FILE ...`` times your own files instead: each as ``fcnseg predict --checkpoint FILE``
runs it (a ``.pt`` in the default precision, bf16 on CPUs with native bf16; an ONNX or int8 ONNX
file by ONNX Runtime), at each ``--size`` (N or WxH), round-robin in one run, each against the
first (median of per-round ratios).

TARGET lines: ``int8_speedup_over_bf16`` (≥ 1.4), ``int8_demo_mean_iu_drop`` and
``int8_thin_mean_iu_drop`` (≤ 0.5 points), ``int8_demo_pixel_agreement`` and
``int8_thin_pixel_agreement`` (≥ 0.99).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see fcnseg demo)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from fcnseg.bench.suite import trained_looking  # noqa: E402
from fcnseg.bench.targets import print_target  # noqa: E402
from fcnseg.bench.timing import OtherLoad, count_flops, matmul_variants, time_interleaved  # noqa: E402
from fcnseg.data import SyntheticSegmentation, build_dataset  # noqa: E402
from fcnseg.export import read_onnx_metadata  # noqa: E402
from fcnseg.export.quantize import QuantizeOptions, quantize_model  # noqa: E402
from fcnseg.inference import Segmenter  # noqa: E402
from fcnseg.models import fcn8s, optimize, plain_copy  # noqa: E402
from fcnseg.utils.hardware import cpu_info  # noqa: E402
from fcnseg.weightfiles.artifacts import onnx_session  # noqa: E402

MIN_SPEEDUP = 1.4
MAX_DROP_POINTS = 0.5
MIN_AGREEMENT = 0.99
THIN_CLASSES = ["background", "line", "arc"]
#: The thin-structures dataset: images (train, val), side, seed; and a version of the drawing
#: code, part of the cache key.
THIN_DATA = {"train": 400, "val": 50, "size": 128, "seed": 0, "drawing": 1}
#: The thin model: the skip head on thin_backbone.fine_trunk (features at strides 8, 4, 2),
#: the synthetic-fcn8s recipe's AdamW and poly schedule at a higher rate (batch norm allows
#: it), and median-frequency class weights: without them 1000 steps left lines and arcs at
#: 34 and 27 IU, with them and lr 0.005 1500 steps reach 62 and 62.
THIN_MODEL = ["model.arch=fcn_custom_backbone",
              "model.options={factory: 'thin_backbone:fine_trunk', variant: 8s, "
              "factory_kwargs: {channels: [16, 32, 64], dilations: [1, 2, 4, 8]}}",
              "optim.lr=0.005", "loss.class_weights=median_frequency"]
THIN_ITERATIONS = 1500
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fcnseg" \
    / "int8_inference"


def int8_matmul(n: int) -> dict[str, object]:
    """An n³ u8×s8→s32 product through ONNX Runtime's MatMulInteger (and torch._int_mm where
    this PyTorch has it on CPUs): callables doing 2·n³ integer operations each."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (n, n), dtype=np.uint8)
    b = rng.integers(-128, 128, (n, n), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "mm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.INT32, [n, n])],
        [onnx.numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = onnx_session(model.SerializeToString())
    variants: dict[str, object] = {"onnxruntime MatMulInteger": lambda: session.run(
        None, {"a": a})}
    try:
        ta = torch.from_numpy(a.astype(np.int8) // 2)
        tb = torch.from_numpy(b)
        torch._int_mm(ta, tb)
        variants["torch._int_mm"] = lambda: torch._int_mm(ta, tb)
    except Exception:  # noqa: BLE001 - not every build has a CPU kernel for it
        pass
    return variants


def product_references(times: dict[str, Any], ops: float) -> dict[str, float]:
    """The reference rate of each kind ("int8", "bf16"): its fastest matrix product timed in
    the run (``ops`` operations a call), at that product's best round, as the hardware lets a
    product run rather than as the other load of a shared machine slowed its median."""
    return {kind: max(ops / t.low for name, t in times.items()
                      if name.startswith(f"{kind} matmul"))
            for kind in ("int8", "bf16")}


def model_rate_line(flops: float, seconds: dict[str, float], references: dict[str, float],
                    size: int) -> str:
    """Each model's rate (``flops`` a forward in ``seconds[kind]``) against its kind's
    reference, as a multiple: the reference is a product timed here, not a peak, so a model
    above it is said to have outrun that product, not to be over 100% of a peak."""
    ratios = {kind: flops / seconds[kind] / references[kind] for kind in ("int8", "bf16")}
    line = "; ".join(f"{kind} model {flops / seconds[kind] / 1e9:.0f} G(FL)OP/s = "
                     f"{ratio:.2f}× the fastest {kind} {size}³ matrix product timed here"
                     for kind, ratio in ratios.items())
    if max(ratios.values()) > 1:
        line += (" (above 1×: the model's kernels outran that product, a reference timed in "
                 "this run, not the hardware's peak)")
    return line


def parse_size(text: str) -> tuple[int, int]:
    """A ``--size``: N (N×N) or WxH such as 1280x720, as (height, width)."""
    w, _, h = text.lower().partition("x")
    try:
        width, height = int(w), int(h or w)
    except ValueError:
        width = height = 0
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"expected N or WxH (such as 1280x720), got {text!r}")
    return height, width


def scene(height: int, width: int) -> np.ndarray:
    """A generated scene of ``height``×``width`` RGB pixels to time models on."""
    return SyntheticSegmentation(1, max(height, width), seed=9).load(0)[0][:height, :width]


def bench_files(args: argparse.Namespace) -> None:
    """``--time``: ``Segmenter.predict`` of each given file, at each ``--size``."""
    models = {str(f): Segmenter.from_checkpoint(f, device="cpu") for f in args.time}
    for height, width in args.size:
        image = scene(height, width)
        with OtherLoad() as load:
            times = time_interleaved({name: (lambda seg=seg, image=image: seg.predict(image))
                                      for name, seg in models.items()},
                                     warmup=1, repeats=args.repeats)
        first = times[str(args.time[0])]
        print(f"\n{width}x{height}, {torch.get_num_threads()} threads, {args.repeats} "
              f"interleaved rounds after 1 warm-up; {cpu_info().model}")
        for name, t in times.items():
            print(f"{name:<50} {models[name].describe()['precision']:<5}{t.median:>9.3f} s "
                  f"(spread {t.spread:.0%}) {t.paired_speedup(first):.2f}× the first's speed")
        if load.summary():
            print(load.summary())


def bench_speed(args: argparse.Namespace) -> None:
    height, width = args.size[0]
    torch.manual_seed(0)
    plain = trained_looking(fcn8s(geometry="same")).eval()
    classes = [f"class_{i}" for i in range(21)]
    from fcnseg.data.palette import voc_palette

    work = Path(tempfile.mkdtemp(prefix="fcnseg-int8-"))
    calib = SyntheticSegmentation(args.calib_images, 256, seed=5)
    bf16 = Segmenter(plain_copy(plain), class_names=classes, palette=voc_palette())
    for keep in ("none", "sensitive"):
        start = time.perf_counter()
        quantize_model(plain_copy(plain), work / f"{keep}.int8.onnx",
                       description=bf16.describe(),
                       calibration=lambda: (calib.load(i)[0] for i in range(len(calib))),
                       options=QuantizeOptions(keep_float=keep), log=lambda _: None)
        print(f"quantized FCN-8s (keep_float={keep}) in {time.perf_counter() - start:.0f} s "
              f"({args.calib_images} calibration images)")
    int8 = Segmenter.from_checkpoint(work / "none.int8.onnx")
    mixed = Segmenter.from_checkpoint(work / "sensitive.int8.onnx")
    session = onnx_session(str(work / "none.int8.onnx"))
    image = scene(height, width)
    pixels = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
    x = torch.randn(1, 3, height, width).contiguous(memory_format=torch.channels_last)
    fast = bf16.model

    def bf16_forward() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return fast(x)

    variants: dict[str, object] = {}
    for name, fn in int8_matmul(args.peak_size).items():
        variants[f"int8 matmul: {name}"] = fn
    for name, fn in matmul_variants(torch.bfloat16, "cpu", size=args.peak_size).items():
        variants[f"bf16 matmul: {name}"] = fn
    variants["bf16 Segmenter.predict (default)"] = lambda: bf16.predict(image)
    variants["int8 Segmenter.predict"] = lambda: int8.predict(image)
    variants["int8 sensitive in float .predict"] = lambda: mixed.predict(image)
    variants["bf16 model forward"] = bf16_forward
    variants["int8 onnxruntime session"] = lambda: session.run(None, {"input": pixels})
    with torch.inference_mode():
        flops = count_flops(optimize(plain_copy(plain), "inference"), x.contiguous())
    agree = float((bf16.predict(image).label == int8.predict(image).label).mean())
    with OtherLoad() as load:
        times = time_interleaved(variants, warmup=1, repeats=args.repeats)
    ops = 2 * args.peak_size ** 3
    peaks = product_references(times, ops)
    info = cpu_info()
    vnni = sorted({"avx512_vnni", "avx_vnni", "amx_int8"} & set(info.flags))
    print(f"\nFCN-8s same geometry, 1×3×{height}×{width}, {torch.get_num_threads()} "
          f"threads, {args.repeats} interleaved rounds after 1 warm-up; {flops / 1e9:.1f} GFLOP "
          f"per forward; {info.model}; int8 dot-product flags: {', '.join(vnni) or 'none'}")
    print(f"{'variant':<40}{'median s':>10}{'spread':>8}{'G(FL)OP/s':>11}{'× ref':>7}")
    for name, t in times.items():
        kind = "int8" if name.startswith("int8") else "bf16"
        work_done = ops if "matmul" in name else flops
        rate = work_done / t.median
        print(f"{name:<40}{t.median:>10.3f}{t.spread:>8.0%}{rate / 1e9:>11.0f}"
              f"{rate / peaks[kind]:>6.2f}×")
    b, q = times["bf16 Segmenter.predict (default)"], times["int8 Segmenter.predict"]
    paired = q.paired_speedup(b)
    fb, fq = times["bf16 model forward"], times["int8 onnxruntime session"]
    forward_paired = fq.paired_speedup(fb)
    mixed_paired = times["int8 sensitive in float .predict"].paired_speedup(b)
    print(f"× ref: a rate over the fastest {args.peak_size}³ matrix product of its kind "
          f"at its best round: int8 {peaks['int8'] / 1e9:.0f} GOP/s = "
          f"{peaks['int8'] / peaks['bf16']:.2f}× bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
    print(model_rate_line(flops, {"int8": fq.median, "bf16": fb.median}, peaks,
                          args.peak_size))
    print(f"int8 / bf16 default path: {paired:.2f}× faster (median of per-round ratios; ratio "
          f"of medians {b.median / q.median:.2f}×); bare forwards {forward_paired:.2f}×; "
          f"with the sensitive layers in float {mixed_paired:.2f}×")
    print(f"labels of this image: int8 and bf16 agree on {agree:.2%} of pixels (random trunk)")
    if load.summary():
        print(load.summary())
    print_target("int8_speedup_over_bf16", paired, MIN_SPEEDUP)


# -- accuracy ----------------------------------------------------------------------------------


def write_thin_structures(root: Path, train: int, val: int, size: int, seed: int = 0) -> Path:
    """A folder dataset of thin structures: 2-4 pixel straight lines ("line") and circular arcs
    ("arc") over a noisy, shaded background, both drawn alike so that shape decides."""
    from PIL import ImageDraw

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "dataset.yaml").write_text(f"classes: [{', '.join(THIN_CLASSES)}]\n"
                                       "ignore_index: 255\n", encoding="utf-8")
    ids = [f"{i:05d}" for i in range(train + val)]
    for i, name in enumerate(ids):
        rng = np.random.default_rng([seed, i])
        base = rng.integers(40, 200, 3)
        shade = np.linspace(0.7, 1.2, size)[None, :, None] * rng.uniform(0.8, 1.2)
        img = np.clip(base * shade + rng.normal(0, 18, (size, size, 3)), 0, 255)
        picture = Image.fromarray(img.astype(np.uint8))
        mask = Image.new("L", (size, size), 0)
        draw_p, draw_m = ImageDraw.Draw(picture), ImageDraw.Draw(mask)
        for _ in range(int(rng.integers(6, 13))):
            cls = int(rng.integers(1, 3))
            width = int(rng.integers(2, 5))
            # Lighter or darker than the background, any hue: contrast, not colour, shows it.
            sign = 1 if base.mean() < 120 else -1
            colour = tuple(int(np.clip(c + sign * rng.integers(60, 120), 0, 255)) for c in base)
            if cls == 1:
                pts = [tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(2)]
                draw_p.line(pts, fill=colour, width=width)
                draw_m.line(pts, fill=1, width=width)
            else:
                r = int(rng.integers(size // 10, size // 3))
                cx, cy = (int(v) for v in rng.integers(0, size, 2))
                start = int(rng.integers(0, 360))
                box = [cx - r, cy - r, cx + r, cy + r]
                end = start + int(rng.integers(90, 300))
                draw_p.arc(box, start, end, fill=colour, width=width)
                draw_m.arc(box, start, end, fill=2, width=width)
        picture.save(root / "images" / f"{name}.png")
        mask.save(root / "masks" / f"{name}.png")
    (root / "train.txt").write_text("".join(n + "\n" for n in ids[:train]), encoding="utf-8")
    (root / "val.txt").write_text("".join(n + "\n" for n in ids[train:]), encoding="utf-8")
    return root


def recipe_key(*parts: object) -> str:
    """A short hash of what makes a cached model or dataset: its recipe and data."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def train_model(cache: Path, name: str, iterations: int, overrides: list[str],
                retrain: bool = False) -> Path:
    """The best checkpoint of ``synthetic-fcn8s`` with ``overrides``, trained for
    ``iterations`` steps, or the one cached for the same recipe."""
    from fcnseg.engine import load_config, train

    overrides = [f"train.iterations={iterations}", f"train.eval_every={iterations}",
                 "train.tensorboard=false", "train.progress=false", "device=cpu", *overrides]
    out = cache / f"{name}-{recipe_key(overrides)}"
    done = out / "trained"
    if done.is_file() and (out / "best.pt").is_file() and not retrain:
        print(f"{name}: reusing {out / 'best.pt'} ({done.read_text(encoding='utf-8').strip()})")
        return out / "best.pt"
    config = load_config("synthetic-fcn8s", overrides, out=str(out))
    start = time.perf_counter()
    train(config, resume=not retrain)
    took = f"trained for {iterations} iterations in {time.perf_counter() - start:.0f} s"
    done.write_text(took + "\n", encoding="utf-8")
    print(f"{name}: {took}")
    return out / "best.pt"


def accuracy(name: str, checkpoint: Path, calib: dict, val: dict, out: Path,
             calib_images: int) -> None:
    seg = Segmenter.from_checkpoint(checkpoint, device="cpu")
    description = {k: v for k, v in seg.describe().items()
                   if k not in ("sliding_window", "tta", "precision", "optimizations")}
    calib_set, val_set = build_dataset(dict(calib)), build_dataset(dict(val))
    picks = np.linspace(0, len(calib_set) - 1, min(calib_images, len(calib_set))).astype(int)

    def quantize(options: QuantizeOptions, path: Path):  # noqa: ANN202
        return quantize_model(
            seg.model, path, description=description,
            calibration=lambda: (np.asarray(calib_set.load(int(i))[0]) for i in picks),
            validation=lambda: ((np.asarray(im), np.asarray(lb)) for im, lb in
                                (val_set.load(i) for i in range(len(val_set)))),
            options=options, log=lambda _: None)

    result = quantize(QuantizeOptions(max_drop=100.0), out)
    c = result.comparison
    assert c is not None
    kept = f"{len(result.keep_float)} layers in float" if result.keep_float else "all int8"
    record = read_onnx_metadata(out)["quantization"]
    weights = "7-bit" if record["reduce_range"] else "full-range"
    print(f"\n{name}: {checkpoint} ({kept}, {weights} weights; calibrated on "
          f"{result.calibration_images} training images, scored on {c.images} validation "
          f"images)")
    print(c.format(seg.class_names))
    for variant, comp in result.variants.items():
        print(f"  variant keep_float={variant}: mean IU {-comp.drop_points:+.2f} points, "
              f"agreement {comp.pixel_agreement:.2%}")
    other = quantize(QuantizeOptions(max_drop=100.0, reduce_range=not record["reduce_range"],
                                     keep_float="sensitive" if result.keep_float else "none"),
                     out.with_suffix(".other.onnx"))
    assert other.comparison is not None
    print(f"  {'full-range' if record['reduce_range'] else '7-bit (--reduce-range)'} weights, "
          f"same layers in float: mean IU {-other.comparison.drop_points:+.2f} points, "
          f"agreement {other.comparison.pixel_agreement:.2%}")
    print_target(f"int8_{name}_mean_iu_drop", c.drop_points, MAX_DROP_POINTS,
                 ok=c.drop_points <= MAX_DROP_POINTS)
    print_target(f"int8_{name}_pixel_agreement", c.pixel_agreement, MIN_AGREEMENT)


def bench_accuracy(args: argparse.Namespace) -> None:
    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="fcnseg-int8-acc-"))
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fcnseg-int8-out-"))
    if "demo" in args.models:
        demo = Path(args.checkpoint) if args.checkpoint else train_model(
            cache, "demo", args.iterations, [], args.retrain)
        accuracy("demo", demo, {"name": "synthetic", "num_images": 2000, "size": 96, "seed": 0},
                 {"name": "synthetic", "num_images": 100, "size": 128, "seed": 0,
                  "split": "val"}, work / "demo.int8.onnx", args.calib_images)
    if "thin" not in args.models:
        return
    import thin_backbone  # noqa: F401 - registers the trunk's factory for the checkpoints

    thin_root = cache / f"thin-data-{recipe_key(THIN_DATA)}"
    if not (thin_root / "val.txt").is_file():
        if thin_root.exists():
            import shutil

            shutil.rmtree(thin_root)  # an interrupted write
        write_thin_structures(thin_root, train=THIN_DATA["train"], val=THIN_DATA["val"],
                              size=THIN_DATA["size"], seed=THIN_DATA["seed"])
    spec = f"{{name: folder, root: {thin_root}, split: train}}"
    thin = train_model(cache, "thin", args.thin_iterations, [
        *THIN_MODEL, f"data.train={spec}", f"data.val={spec.replace('train}', 'val}')}",
        "data.val_batch_size=10"], args.retrain)
    accuracy("thin", thin, {"name": "folder", "root": str(thin_root), "split": "train"},
             {"name": "folder", "root": str(thin_root), "split": "val"},
             work / "thin.int8.onnx", args.calib_images)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=parse_size, nargs="+", default=[(500, 500)],
                   metavar="N|WxH", help="image sizes (the speed section: the first)")
    p.add_argument("--time", nargs="+", metavar="FILE",
                   help="time these model files (.pt, .onnx, int8 .onnx) at each --size, "
                        "instead of the sections below")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--peak-size", type=int, default=2048)
    p.add_argument("--calib-images", type=int, default=100,
                   help="calibration images (speed: 256 px synthetic scenes; accuracy: "
                        "training images)")
    p.add_argument("--checkpoint", help="the demo model (default: train it here)")
    p.add_argument("--iterations", type=int, default=600,
                   help="training steps of the demo model (its recipe uses 1500)")
    p.add_argument("--thin-iterations", type=int, default=THIN_ITERATIONS,
                   help="training steps of the thin-structures model")
    p.add_argument("--cache", default=str(DEFAULT_CACHE),
                   help="folder of trained models and generated data, reused by recipe "
                        "(empty: a temporary folder)")
    p.add_argument("--retrain", action="store_true",
                   help="train the models again even when the cache has them")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--models", default="demo,thin",
                   help="which models' accuracy to measure (comma-separated: demo, thin)")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-accuracy", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="3 repeats, 300 training steps (each model), 16 calibration images")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.iterations, args.calib_images = 3, 300, 16
        args.thin_iterations = 300
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.time:
        bench_files(args)
        return 0
    if not args.skip_speed:
        bench_speed(args)
    if not args.skip_accuracy:
        bench_accuracy(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
