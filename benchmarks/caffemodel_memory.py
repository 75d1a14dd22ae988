"""Peak memory of converting a reference-sized .caffemodel, as a multiple of the file size.

Writes an FCN-8s ``.caffemodel`` with the reference's layers and shapes (VGG16 trunk, fc6
4096×512×7×7, 21 classes: about 540 MB at ``--width 1``) filled with random values, then
converts it in a fresh process (read, build the model, save the checkpoint) and reports that
process's peak resident memory (VmHWM) above its memory after the imports, divided by the file
size. The target is at most 2. Run:

    .venv/bin/python benchmarks/caffemodel_memory.py               # full size, ~540 MB file
    .venv/bin/python benchmarks/caffemodel_memory.py --width 0.5   # a quicker, smaller file

``--crafted MB`` measures a hostile file instead: one layer of empty blobs, two bytes each, MB
megabytes in all (a 16 MB one once took 3.9 GB and two minutes). The reader must stop it in
one line, within memory and time bounded by the file's size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Converts argv[1] into argv[2], or with no argv[2] only reads argv[1] (a crafted file); prints
# the peak RSS above the RSS after the imports (bytes), the time, and the refusal if any.
CHILD = r"""
import json, sys, time
import torch  # noqa: F401  (imports first: the baseline includes them)
from fcnseg.bench.timing import peak_rss_mb, reset_peak_rss
from fcnseg.pretrained.convert import convert_caffemodel
from fcnseg.weightfiles.caffemodel import CaffeModelError, read_caffemodel

reset_peak_rss()
base = peak_rss_mb()
start = time.perf_counter()
message = None
if len(sys.argv) > 2:
    convert_caffemodel(sys.argv[1]).save(sys.argv[2])
else:
    try:
        read_caffemodel(sys.argv[1])
    except CaffeModelError as e:
        message = str(e)
print(json.dumps({"baseline": base * 2**20, "peak": peak_rss_mb() * 2**20, "message": message,
                  "seconds": time.perf_counter() - start}))
"""


def write_reference_sized(path: Path, width: float) -> int:
    """An fcn8s-heavy-pascal-shaped .caffemodel, written one layer at a time; its size."""
    import torch

    from fcnseg.models import build_model
    from fcnseg.weightfiles.caffemodel import write_caffemodel
    from fcnseg.weightfiles.reference import REFERENCE_MODELS

    ref = REFERENCE_MODELS["fcn8s-heavy-pascal"]
    with torch.device("meta"):  # shapes only
        model = build_model("fcn8s", num_classes=21, width=width)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    rng = np.random.default_rng(0)

    def layers():
        yield "data", "Input", []
        for name in ref.layers:
            blobs = [rng.standard_normal(shapes[k], dtype=np.float32)
                     for k in (f"{name}.weight", f"{name}.bias") if k in shapes]
            yield name, "Deconvolution" if name.startswith("upscore") else "Convolution", blobs

    write_caffemodel(path, layers())
    return path.stat().st_size


def write_crafted(path: Path, megabytes: float) -> int:
    """One layer of empty blobs (field 7, length 0: two bytes each) filling ``megabytes``."""
    blobs = int(megabytes * 1e6) // 2
    name = b"\x0a\x05conv1"  # name: "conv1"
    payload = name + b"\x3a\x00" * blobs
    length, header = len(payload), bytearray(b"\xa2\x06")  # field 100, length-delimited
    while True:
        header.append((length & 0x7F) | (0x80 if length > 0x7F else 0))
        length >>= 7
        if not length:
            break
    path.write_bytes(bytes(header) + payload)
    return path.stat().st_size


def crafted(megabytes: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "crafted.caffemodel"
        size = write_crafted(src, megabytes)
        out = subprocess.run([sys.executable, "-c", CHILD, str(src)], check=True,
                             capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
    above = r["peak"] - r["baseline"]
    print(f"crafted file of {size / 1e6:.1f} MB: {r['seconds']:.2f} s; peak RSS "
          f"{above / 1e6:.1f} MB above the {r['baseline'] / 1e6:.0f} MB after imports "
          f"({above / size:.2f} × the file)")
    print(f"refused: {r['message']}" if r["message"] else "NOT refused: read as a net")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0,
                        help="trunk width relative to VGG16 (1 = the reference's size)")
    parser.add_argument("--crafted", type=float, default=None, metavar="MB",
                        help="measure a hostile file of MB megabytes of empty blobs instead")
    args = parser.parse_args()
    if args.crafted is not None:
        crafted(args.crafted)
        return
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "fcn8s-heavy-pascal.caffemodel"
        start = time.perf_counter()
        size = write_reference_sized(src, args.width)
        print(f"wrote {src.name}: {size / 1e6:.0f} MB in {time.perf_counter() - start:.1f} s")
        out = subprocess.run([sys.executable, "-c", CHILD, str(src), str(Path(tmp) / "out.pt")],
                             check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
    above = r["peak"] - r["baseline"]
    print(f"convert + save: {r['seconds']:.1f} s; peak RSS {r['peak'] / 1e6:.0f} MB, "
          f"{above / 1e6:.0f} MB above the {r['baseline'] / 1e6:.0f} MB after imports")
    print(f"ratio (peak above baseline / file size): {above / size:.2f}  (target <= 2); "
          f"whole process peak / file size: {r['peak'] / size:.2f}")


if __name__ == "__main__":
    main()
