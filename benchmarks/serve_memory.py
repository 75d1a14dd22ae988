"""Memory of ``fcnseg serve`` per pixel of a photo, and at its default ``--max-pixels``.

Each measurement runs in its own process: a model with random weights (its memory is that of a
trained one) wrapped in a Segmenter, then one JPEG photo through ``segment_upload`` (decode,
forward pass, label PNG), as the service runs a request. The memory measured is the process's
peak resident memory (VmHWM, reset after the model is loaded) above its memory before the
request. Two photo sizes give the bytes per added pixel; the memory at the default limit is
the larger photo's plus that many bytes for each pixel up to the limit.

The target: FCN-8s (VGG16, 21 classes) in bf16 at the default limit (24 million pixels) fits
in 10 GB, what docs/serve.md tells users to expect (about 8 GB).

    python benchmarks/serve_memory.py [--quick]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys

GOAL_GB = 10.0
#: (builder, precision) measured, the first the target's.
VARIANTS = (("fcn8s", "bf16"), ("fcn8s", "fp32"), ("fcn8s_resnet18", "bf16"),
            ("fcn8s_resnet18", "fp32"))


def measure_one(arch: str, precision: str, megapixels: float) -> float:
    """MiB the process grows by while serving one photo of ``megapixels``."""
    import numpy as np
    import torch
    from PIL import Image

    from fcnseg.bench.timing import peak_rss_mb, reset_peak_rss
    from fcnseg.data.palette import voc_palette
    from fcnseg.inference import Segmenter
    from fcnseg.models.builders import build_model
    from fcnseg.serve.segment import SegmentOptions, segment_upload

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = build_model(arch, num_classes=21)
    seg = Segmenter(model, class_names=[str(i) for i in range(21)], palette=voc_palette(),
                    precision=precision)
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = width * 3 // 4
    coarse = np.random.default_rng(0).integers(0, 256, (height // 16, width // 16, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(coarse).resize((width, height)).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    del coarse
    if not reset_peak_rss():
        raise SystemExit("cannot reset the peak-memory mark (/proc/self/clear_refs)")
    before = peak_rss_mb()
    segment_upload(seg, data, SegmentOptions(), max_pixels=10**9)
    return peak_rss_mb() - before


def grown_mib(arch: str, precision: str, megapixels: float) -> float:
    """:func:`measure_one` in a fresh process (nothing freed earlier is reused)."""
    done = subprocess.run([sys.executable, __file__, "--one", arch, precision, str(megapixels)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    from fcnseg.bench.targets import print_target
    from fcnseg.serve.limits import DEFAULT_MAX_PIXELS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="0.25 and 1 megapixel, the target only")
    p.add_argument("--one", nargs=3, metavar=("ARCH", "PRECISION", "MP"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(measure_one(args.one[0], args.one[1], float(args.one[2])))
        return 0
    small, large = (0.25, 1.0) if args.quick else (1.0, 4.0)
    at_limit = {}
    for arch, precision in VARIANTS[:1] if args.quick else VARIANTS:
        low, high = grown_mib(arch, precision, small), grown_mib(arch, precision, large)
        per_pixel = (high - low) * 2**20 / ((large - small) * 1e6)
        at_limit[arch, precision] = (high * 2**20 + per_pixel * (DEFAULT_MAX_PIXELS
                                                                  - large * 1e6)) / 1e9
        print(f"{arch} {precision}: +{low:.0f} MiB at {small} MP, +{high:.0f} MiB at {large} MP"
              f" ({high * 2**20 / (large * 1e6):.0f} bytes per pixel there, {per_pixel:.0f} per "
              f"added pixel); at the default limit of {DEFAULT_MAX_PIXELS} pixels about "
              f"{at_limit[arch, precision]:.1f} GB", flush=True)
    measured = at_limit[VARIANTS[0]]
    print_target("serve_fcn8s_bf16_gb_at_default_limit", measured, GOAL_GB, ok=measured <= GOAL_GB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
