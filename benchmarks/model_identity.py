"""What recording the model costs ``fcnseg predict``: its SHA-256 against loading it, one run.

``fcnseg predict`` names the model of every run by :func:`fcnseg.inference.rasters.model_identity`
(a SHA-256 of the weights it runs and of its settings), once per run: ``--skip-complete`` then
tells outputs of this model from those of another (or of this checkpoint trained again). This
saves a full-size FCN-8s (VGG16, 21 classes, about 513 MB) and times, in ``--repeats`` rounds,
:meth:`Segmenter.from_checkpoint` (what every run pays already) and ``model_identity`` on the
segmenter it returns as predict takes it (``as_loaded=True``: the checkpoint file read in one
pass), beside the digest of its weights in memory (channels-last, as predict runs them; what
predict took before, and takes where the file changed after it was read). Prints the medians
and the median over rounds of each round's identity time over its load time (paired, steadier
on a shared machine).

    python benchmarks/model_identity.py [--repeats 3] [--precision bf16] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fcnseg.bench.targets import print_target
from fcnseg.checkpoint import save_checkpoint
from fcnseg.data.palette import voc_palette
from fcnseg.inference import Segmenter
from fcnseg.inference.rasters import model_identity
from fcnseg.models import fcn8s

#: The identity may take at most this share of the time loading the checkpoint takes.
GOAL = 0.25


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    parser.add_argument("--quick", action="store_true", help="one round")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fcn8s.pt"
        save_checkpoint(path, fcn8s(num_classes=21), class_names=[f"c{i}" for i in range(21)],
                        palette=voc_palette())
        print(f"checkpoint: {path.stat().st_size / 2**20:.0f} MB, precision {args.precision}")
        loads, hashes, weights = [], [], []
        for _ in range(rounds):
            start = time.perf_counter()
            segmenter = Segmenter.from_checkpoint(path, precision=args.precision)
            loads.append(time.perf_counter() - start)
            start = time.perf_counter()
            model_identity(segmenter, as_loaded=True)
            hashes.append(time.perf_counter() - start)
            start = time.perf_counter()
            model_identity(segmenter)
            weights.append(time.perf_counter() - start)
            del segmenter
    ratio = statistics.median(h / load for h, load in zip(hashes, loads, strict=True))
    print(f"load {statistics.median(loads):.2f} s, model_identity as predict takes it "
          f"{statistics.median(hashes):.2f} s, of the weights in memory "
          f"{statistics.median(weights):.2f} s (medians of {rounds}); identity/load {ratio:.3f}")
    print_target("model_identity_over_load", ratio, GOAL, ok=ratio <= GOAL)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
