"""FCN-8s in the same geometry against the Caffe geometry, float32, one interleaved run.

Both geometries share one set of weights and run with the fast layers of
``fcnseg.models.optimize`` (``--plain``: the plain modules), in the default (NCHW) memory format
and in channels_last; all four are timed round-robin. Prints
each one's median time (and spread), its FLOPs (torch's FlopCounterMode), achieved GFLOP/s, and
the same/caffe speed ratio per layout. ``--check`` exits with status 1 when any measured ratio
is below the target (1.65 at 500×500 on the reference machine).

    python benchmarks/geometry_speed.py [--size 500] [--repeats 7] [--check]
    python benchmarks/geometry_speed.py --quick       # 3 repeats

Last lines (see benchmarks/README.md): ``TARGET geometry_same_over_caffe_<layout> ...``, one per
layout.

On a machine shared with other jobs, ``--threads 1 --clock cpu`` counts only this process's
work (see docs/performance.md).
"""

from __future__ import annotations

import argparse
import sys

import torch

from fcnseg.bench.suite import trained_looking
from fcnseg.bench.targets import print_target
from fcnseg.bench.timing import OtherLoad, count_flops, time_interleaved
from fcnseg.models import fcn8s, optimize, plain_copy

TARGET = 1.65
LAYOUTS = ("nchw", "channels_last")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=500, help="square input size [500]")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads [all cores]")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or process CPU time (with --threads 1: robust on a "
                             "shared machine)")
    parser.add_argument("--layouts", default=",".join(LAYOUTS),
                        help=f"comma-separated subset of {','.join(LAYOUTS)}")
    parser.add_argument("--plain", action="store_true",
                        help="run every layer as its plain module (fast paths off)")
    parser.add_argument("--check", action="store_true",
                        help=f"exit with status 1 if a same/caffe ratio is below {TARGET}")
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 3
    layouts = [s.strip() for s in args.layouts.split(",") if s.strip()]
    if not layouts or set(layouts) - set(LAYOUTS):
        parser.error(f"--layouts must name some of {LAYOUTS}, got {args.layouts!r}")
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    caffe = trained_looking(fcn8s(geometry="caffe")).eval()
    same = fcn8s(geometry="same").eval()
    same.load_state_dict(caffe.state_dict())  # one set of weights, two geometries
    models = {}
    for layout in layouts:
        for name, model in (("caffe", caffe), ("same", same)):
            model = plain_copy(model)
            if layout == "channels_last":
                model.to(memory_format=torch.channels_last)
            models[(name, layout)] = model if args.plain else optimize(model)
    x = torch.randn(args.batch, 3, args.size, args.size)

    with torch.inference_mode():
        flops = {"caffe": count_flops(caffe, x), "same": count_flops(same, x)}
        with OtherLoad() as load:
            times = time_interleaved(
                {key: (lambda m=m: m(x)) for key, m in models.items()},
                warmup=args.warmup, repeats=args.repeats, clock=args.clock,
            )
    path = "plain modules" if args.plain else "fcnseg.models.optimize (fast layers)"
    print(f"FCN-8s, {args.batch}×3×{args.size}×{args.size}, float32, inference_mode, "
          f"{torch.get_num_threads()} threads, {path}; {args.repeats} interleaved repeats, "
          f"{args.clock} clock")
    print(f"{'geometry':<9}{'layout':<15}{'median s':>9}{'min s':>8}{'spread':>8}"
          f"{'GFLOP':>8}{'GFLOP/s':>9}")
    for (name, layout), t in times.items():
        print(f"{name:<9}{layout:<15}{t.median:>9.3f}{t.low:>8.3f}{t.spread:>8.0%}"
              f"{flops[name] / 1e9:>8.1f}{flops[name] / t.median / 1e9:>9.1f}")
    if load.summary(args.clock):
        print(load.summary(args.clock))
    failed = False
    ratios = {}
    for layout in layouts:
        ratio = times[("caffe", layout)].median / times[("same", layout)].median
        print(f"speed ratio same/caffe ({layout}): {ratio:.3f}  (FLOP ratio "
              f"{flops['caffe'] / flops['same']:.3f}, target >= {TARGET})")
        failed |= ratio < TARGET
        ratios[layout] = ratio
    for layout, ratio in ratios.items():
        print_target(f"geometry_same_over_caffe_{layout}", ratio, TARGET)
    if args.check and failed:
        print(f"FAIL: a same/caffe ratio is below {TARGET}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
