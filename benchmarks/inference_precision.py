"""What reduced precision costs in accuracy and gains in speed, on the demo's validation set.

Runs a trained checkpoint (by default the demo's model, trained here for ``--iterations``
steps of the ``synthetic-fcn8s`` recipe) through :class:`fcnseg.inference.Segmenter` in each
precision and layout, and prints, against float32 NCHW:

- the fraction of pixels whose label agrees with float32 (goal: at least 99.5%);
- mean IU on the validation set and its difference from float32 (goal: within 0.1 points);
- the speed ratio, timed interleaved in one run (ratios of medians; absolute times on a shared
  machine mean little);
- what ``precision="auto"`` picks on this machine, and why.

``--check`` makes the exit status 1 when a precision that ``auto`` would pick misses a goal.

    python benchmarks/inference_precision.py                       # ~3-6 minutes on 2 cores
    python benchmarks/inference_precision.py --checkpoint runs/demo/best.pt --check
    python benchmarks/inference_precision.py --quick               # 200 steps, 2 passes

Last lines (see benchmarks/README.md), for the variant the defaults run (``auto`` precision,
channels-last): ``TARGET precision_auto_label_agreement`` (fraction, goal 0.995),
``TARGET precision_auto_mean_iu_delta`` (|Δ| in points, at most 0.1) and
``TARGET precision_auto_speedup`` (× float32 NCHW, at least 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see fcnseg demo)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fcnseg.bench.targets import print_target  # noqa: E402
from fcnseg.bench.timing import time_interleaved  # noqa: E402
from fcnseg.checkpoint import load_checkpoint  # noqa: E402
from fcnseg.data.build import build_dataset  # noqa: E402
from fcnseg.engine import load_config, train  # noqa: E402
from fcnseg.inference import Segmenter  # noqa: E402
from fcnseg.metrics import confusion_matrix, scores  # noqa: E402
from fcnseg.utils.hardware import auto_precision, cpu_info  # noqa: E402

#: Goals: label agreement with float32 (fraction of pixels) and mean IU difference (points).
MIN_AGREEMENT = 0.995
MAX_MEAN_IU_POINTS = 0.1


def train_demo_model(work: Path, iterations: int) -> Path:
    """The demo recipe, shortened to ``iterations`` steps; returns its best.pt."""
    config = load_config("synthetic-fcn8s", [
        f"train.iterations={iterations}", f"train.eval_every={iterations}",
        "train.tensorboard=false", "train.progress=false", "device=cpu"], out=str(work))
    start = time.perf_counter()
    train(config, resume=True)
    print(f"trained synthetic-fcn8s for {iterations} iterations in "
          f"{time.perf_counter() - start:.0f} s")
    return work / "best.pt"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", help="a trained checkpoint (default: train the demo model)")
    p.add_argument("--iterations", type=int, default=600,
                   help="training steps when no --checkpoint is given (the demo uses 1500)")
    p.add_argument("--work", help="folder for the trained model (default: a temporary one)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes over the set")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when the precision auto picks misses a goal")
    p.add_argument("--quick", action="store_true",
                   help="train 200 steps (when no --checkpoint) and time 2 passes")
    args = p.parse_args(argv)
    if args.quick:
        args.iterations, args.repeats = 200, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    work = Path(args.work or tempfile.mkdtemp(prefix="fcnseg-precision-"))
    checkpoint = Path(args.checkpoint) if args.checkpoint else train_demo_model(
        work, args.iterations)
    ckpt = load_checkpoint(checkpoint)
    val_spec = dict(((ckpt.get("recipe") or {}).get("data") or {}).get("val") or {
        "name": "synthetic", "num_images": 100, "size": 128, "seed": 0, "split": "val"})
    data = build_dataset(val_spec)
    images = [np.asarray(data[i][0]) for i in range(len(data))]
    truth = [np.asarray(data[i][1]) for i in range(len(data))]
    num_classes = len(ckpt["classes"]["names"])

    # (precision, channels_last); fp16 only where it is native (CUDA).
    variants = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]
    if device.type == "cuda":
        variants += [("fp16", False), ("fp16", True)]
    segmenters = {f"{prec} {'channels_last' if cl else 'NCHW'}": Segmenter.from_checkpoint(
        checkpoint, device=device, precision=prec, channels_last=cl) for prec, cl in variants}

    def run(seg: Segmenter) -> list[np.ndarray]:
        return [pr.label for pr in seg.predict_batch(images, batch_size=args.batch_size)]

    labels = {name: run(seg) for name, seg in segmenters.items()}
    timings = time_interleaved({name: (lambda s=seg: run(s)) for name, seg in segmenters.items()},
                               warmup=0, repeats=args.repeats, device=device)
    reference_name = "fp32 NCHW"
    reference = labels[reference_name]
    base_time = timings[reference_name].median
    auto = auto_precision(device)
    info = cpu_info()
    where = (f"{info.model or 'CPU'}; bf16 flags: {', '.join(info.bf16_flags) or 'none'}"
             if device.type == "cpu" else torch.cuda.get_device_name(device))
    print(f"\n{checkpoint} on {val_spec.get('name')} {val_spec.get('split', 'val')} "
          f"({len(images)} images), {device}, {torch.get_num_threads()} threads, batch "
          f"{args.batch_size}, {args.repeats} interleaved passes")
    print(f"hardware: {where}; precision=auto picks {auto}\n")
    header = (f"{'variant':<20} {'agree %':>8} {'mean IU %':>10} {'Δ points':>9} "
              f"{'median s':>9} {'speed ×':>8}")
    print(header)
    print("-" * len(header))
    rows, failed = [], []
    ref_miu = None
    for name in segmenters:
        agree = float(np.mean(np.concatenate(
            [(a == b).ravel() for a, b in zip(labels[name], reference, strict=True)])))
        matrix = sum(confusion_matrix(t, lb, num_classes, data.ignore_index)
                     for t, lb in zip(truth, labels[name], strict=True))
        miu = float(scores(matrix)["mean_iu"])
        ref_miu = miu if ref_miu is None else ref_miu
        delta = 100 * (miu - ref_miu)
        t = timings[name]
        speed = base_time / t.median
        print(f"{name:<20} {100 * agree:>8.3f} {100 * miu:>10.2f} {delta:>+9.3f} "
              f"{t.median:>9.3f} {speed:>8.2f}")
        rows.append({"variant": name, "agreement": agree, "mean_iu": miu,
                     "mean_iu_delta_points": delta, "timing": t.as_dict(), "speedup": speed})
        if name.startswith(auto) and (agree < MIN_AGREEMENT or abs(delta) > MAX_MEAN_IU_POINTS):
            failed.append(name)
    print(f"\ngoals: agreement ≥ {100 * MIN_AGREEMENT:.1f}%, |Δ mean IU| ≤ "
          f"{MAX_MEAN_IU_POINTS} points; auto ({auto}) "
          + ("MISSES them: " + ", ".join(failed) if failed else "meets them"))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "checkpoint": str(checkpoint), "device": str(device), "auto": auto,
            "hardware": where, "threads": torch.get_num_threads(), "rows": rows}, indent=2))
    default = next((r for r in rows if r["variant"] == f"{auto} channels_last"), rows[0])
    print_target("precision_auto_label_agreement", default["agreement"], MIN_AGREEMENT)
    delta = abs(default["mean_iu_delta_points"])
    print_target("precision_auto_mean_iu_delta", delta, MAX_MEAN_IU_POINTS,
                 ok=delta <= MAX_MEAN_IU_POINTS)
    print_target("precision_auto_speedup", default["speedup"], 1.0)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
