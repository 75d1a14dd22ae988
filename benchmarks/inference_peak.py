"""FCN-8s inference against this machine's matrix-multiply peak, float32 and bfloat16, one run.

Times, round-robin in one run: a large matrix product in float32 and in bfloat16 through each
GEMM library PyTorch reaches (torch.mm; oneDNN directly on CPUs), and FCN-8s in the same
geometry on the default inference path of each precision (``fcnseg.models.optimize`` with
channels_last, inference_mode; bfloat16 under autocast, as ``Segmenter(precision="bf16")``
runs it). ``--plain`` adds the plain modules in float32 for comparison, ``--layer`` one
convolution layer alone (what the kernel reaches without the rest of the network). The peak of a
precision is its fastest matrix product (by median time, over the libraries and
``--peak-sizes``); the model's FLOPs are those it executes, counted by torch's FlopCounterMode
on the optimized model itself. Prints each one's median time and spread, GFLOP/s and the
fraction of the peak of its precision, the bfloat16 argmax agreement with float32, and how
busy the machine was with other work meanwhile.

    python benchmarks/inference_peak.py [--size 500] [--repeats 7] [--threads 2] [--check]

On a machine shared with other jobs, ``--threads 1 --clock cpu`` counts only this process's
work (see docs/performance.md).

``--check`` exits with status 1 when a precision's fraction of its peak is below 0.85.
"""

from __future__ import annotations

import argparse
import sys

import torch

from fcnseg.bench.suite import trained_looking
from fcnseg.bench.targets import print_target
from fcnseg.bench.timing import OtherLoad, agreement, count_flops, matmul_variants, time_interleaved
from fcnseg.models import fcn8s, optimize, plain_copy

TARGET = 0.85
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=500, help="square input size [500]")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--peak-sizes", default="2048,4096",
                        help="sides of the square matrices timed for the peak [2048,4096]")
    parser.add_argument("--threads", type=int, default=None, help="torch threads [all cores]")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or process CPU time (with --threads 1: robust on a "
                             "shared machine)")
    parser.add_argument("--plain", action="store_true",
                        help="also time the plain modules in float32 (NCHW, no_grad)")
    parser.add_argument("--layer", action="store_true",
                        help="also time FCN-8s' conv3_2 alone (256→256, 3×3, at 1/4 of the "
                             "input size): what the convolution kernel itself reaches")
    parser.add_argument("--check", action="store_true",
                        help=f"exit with status 1 if a fraction of the peak is below {TARGET}")
    parser.add_argument("--quick", action="store_true",
                        help="3 repeats, one warm-up and a 2048 peak only (for run_all --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup, args.peak_sizes = 3, 1, "2048"
    try:
        peak_sizes = [int(v) for v in args.peak_sizes.split(",") if v.strip()]
    except ValueError:
        parser.error(f"--peak-sizes must be comma-separated integers, got {args.peak_sizes!r}")
    if not peak_sizes or min(peak_sizes) < 1:
        parser.error(f"--peak-sizes must name positive sizes, got {args.peak_sizes!r}")
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    plain = trained_looking(fcn8s(geometry="same")).eval()
    fast = optimize(plain_copy(plain), "inference", channels_last=True)
    x = torch.randn(args.batch, 3, args.size, args.size)
    x_cl = x.contiguous(memory_format=torch.channels_last)  # as the Segmenter passes it
    side = -(-args.size // 4)  # conv3_2's input: after two ceil-mode pools
    conv_in = torch.randn(args.batch, 256, side, side).contiguous(
        memory_format=torch.channels_last)

    def model_call(model: torch.nn.Module, inp: torch.Tensor, dtype: torch.dtype):  # type: ignore[no-untyped-def]
        def call() -> torch.Tensor:
            with torch.inference_mode(), torch.autocast(
                    "cpu", dtype=dtype, enabled=dtype != torch.float32):
                return model(inp)
        return call

    variants = {}
    for name, dtype in PRECISIONS.items():
        for n in peak_sizes:
            for library, fn in matmul_variants(dtype, "cpu", size=n).items():
                variants[("peak", name, f"{library} {n}³")] = fn
        variants[("fcn8s", name, "optimize, channels_last")] = model_call(fast, x_cl, dtype)
        if args.layer:
            conv3_2 = fast.trunk.conv3_2
            variants[("conv", name, "conv3_2 alone")] = model_call(conv3_2, conv_in, dtype)
    if args.plain:
        def plain_call() -> torch.Tensor:
            with torch.no_grad():
                return plain(x)
        variants[("fcn8s", "fp32", "plain modules")] = plain_call

    with torch.inference_mode():
        flops = count_flops(fast, x_cl)
        conv_flops = count_flops(fast.trunk.conv3_2, conv_in)
        plain_flops = count_flops(plain, x)
        reference = plain(x)
        low = variants[("fcn8s", "bf16", "optimize, channels_last")]().float()
    same_labels = agreement(reference, low)["argmax_agreement_pct"] / 100
    with OtherLoad() as load:
        times = time_interleaved(variants, warmup=args.warmup, repeats=args.repeats,
                                 clock=args.clock)

    def work(kind: str, path: str) -> int:
        if kind == "peak":
            return 2 * int(path.split()[-1].rstrip("³")) ** 3
        if kind == "conv":
            return conv_flops
        return plain_flops if "plain" in path else flops

    peaks = {name: max(work(kind, path) / t.median for (kind, p, path), t in times.items()
                       if kind == "peak" and p == name) for name in PRECISIONS}
    print(f"FCN-8s same geometry, {args.batch}×3×{args.size}×{args.size}, "
          f"{torch.get_num_threads()} threads; {args.repeats} interleaved repeats after "
          f"{args.warmup} warm-up, {args.clock} clock, medians")
    print(f"executed GFLOP per call: {flops / 1e9:.1f} optimized, {plain_flops / 1e9:.1f} "
          f"plain (FlopCounterMode)")
    print(f"{'what':<7}{'precision':<11}{'path':<25}{'median s':>9}{'spread':>8}"
          f"{'GFLOP/s':>9}{'of peak':>9}")
    fractions = {}
    for (kind, name, path), t in times.items():
        rate = work(kind, path) / t.median
        fraction = rate / peaks[name]
        if kind == "fcn8s" and "plain" not in path:
            fractions[name] = fraction
        print(f"{kind:<7}{name:<11}{path:<25}{t.median:>9.3f}{t.spread:>8.0%}"
              f"{rate / 1e9:>9.0f}{fraction:>9.0%}")
    print(f"bf16 argmax agreement with plain fp32: {same_labels:.2%} (random trunk, "
          f"trained_looking scorers)")
    if load.summary(args.clock):
        print(load.summary(args.clock))
    failed = [name for name, f in fractions.items() if f < TARGET]
    for name, f in fractions.items():
        print(f"{name}: FCN-8s at {f:.1%} of the {name} matmul peak "
              f"({peaks[name] / 1e9:.0f} GFLOP/s; target >= {TARGET:.0%})")
        print_target(f"inference_{name}_peak_fraction", f, TARGET)
    if args.check and failed:
        print(f"FAIL: below {TARGET:.0%} of the peak: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
