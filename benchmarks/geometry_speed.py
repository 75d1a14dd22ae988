"""Issue 2: FCN-8s in the same geometry against the Caffe geometry, float32, one interleaved run.

Prints each geometry's median time (and spread), its FLOPs (torch's FlopCounterMode), achieved
GFLOP/s, and the speed ratio. With ``--check`` it exits with status 1 when the ratio is below
the target (1.65 at 500×500 on the reference machine).

    python benchmarks/geometry_speed.py [--size 500] [--repeats 5] [--check]
"""

from __future__ import annotations

import argparse
import sys

import torch

from fcnseg.bench.timing import count_flops, time_interleaved
from fcnseg.models import fcn8s
from fcnseg.models.fastpath import fast_paths

TARGET = 1.65


def _trained_looking(model: torch.nn.Module) -> torch.nn.Module:
    """Random score layers instead of zeros, so the logits (and their cost) are not trivial."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("score"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.01)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=500, help="square input size (500)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or process CPU time (robust on a shared machine with "
                             "--threads 1)")
    parser.add_argument("--channels-last", action="store_true",
                        help="both models in channels_last memory format")
    parser.add_argument("--plain", action="store_true",
                        help="run every layer as its plain module (fast paths off)")
    parser.add_argument("--check", action="store_true",
                        help=f"exit with status 1 if same/caffe is below {TARGET}")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    caffe = _trained_looking(fcn8s(geometry="caffe")).eval()
    same = fcn8s(geometry="same").eval()
    same.load_state_dict(caffe.state_dict())  # one set of weights, two geometries
    x = torch.randn(args.batch, 3, args.size, args.size)
    if args.channels_last:
        caffe.to(memory_format=torch.channels_last)
        same.to(memory_format=torch.channels_last)

    with fast_paths(not args.plain), torch.inference_mode():
        flops = {"caffe": count_flops(caffe, x), "same": count_flops(same, x)}
        times = time_interleaved(
            {"caffe": lambda: caffe(x), "same": lambda: same(x)},
            warmup=args.warmup, repeats=args.repeats, clock=args.clock,
        )
    path = "plain modules" if args.plain else "default (fast paths on)"
    layout = ", channels_last" if args.channels_last else ""
    print(f"FCN-8s, {args.batch}×3×{args.size}×{args.size}, float32, inference_mode, "
          f"{torch.get_num_threads()} threads, {path}{layout}; {args.repeats} interleaved "
          f"repeats, {args.clock} clock")
    print(f"{'geometry':<9}{'median s':>10}{'spread':>9}{'GFLOP':>9}{'GFLOP/s':>9}")
    for name in ("caffe", "same"):
        t = times[name]
        print(f"{name:<9}{t.median:>10.3f}{t.spread:>8.0%}{flops[name] / 1e9:>9.2f}"
              f"{flops[name] / t.median / 1e9:>9.1f}")
    ratio = times["caffe"].median / times["same"].median
    print(f"speed ratio same/caffe: {ratio:.3f} (FLOP ratio {flops['caffe'] / flops['same']:.3f}, "
          f"target >= {TARGET})")
    if args.check and ratio < TARGET:
        print(f"FAIL: ratio {ratio:.3f} below {TARGET}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
