"""Huge rasters: peak memory of ``fcnseg predict`` by raster size, and tiled throughput.

Writes georeferenced 3-band uint8 GeoTIFFs (tiled, deflate) of each ``--sizes`` side, then runs
``fcnseg predict`` on each in its own process and prints its peak resident memory (the
process's VmHWM). Memory must be set by the tile, batch and classes, not the image:
the target is the largest raster's peak over the smallest's, at most 1.2.

Throughput: on the smallest raster, the tiled prediction (reading windows, blending, writing
the label GeoTIFF) against the model alone on the same tiles already in memory, both in this
process, round-robin; the target is model time / tiled time of at least 0.85.

The memory runs use a narrow FCN-8s (``--width``) so that a 20,000² raster is minutes of model
work rather than hours: the memory measured is that of the tiling. The throughput run uses a
wider one (``--throughput-width``), still far cheaper than VGG16's FCN-8s, so that reading,
blending and writing weigh more here than they do with the full model.

    python benchmarks/raster_predict.py [--sizes 2000,8000,20000] [--tile 512] [--overlap 64]
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from fcnseg.bench.suite import trained_looking
from fcnseg.bench.targets import print_target
from fcnseg.bench.timing import time_interleaved

RSS_TARGET = 1.2
THROUGHPUT_TARGET = 0.85
CLASSES = ["background", "water", "field", "forest", "road", "building"]


def write_scene(path: Path, side: int) -> None:
    """A side×side 3-band uint8 GeoTIFF of smooth texture, written by windows."""
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    profile = {"driver": "GTiff", "height": side, "width": side, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": Affine(10.0, 0, 400000.0, 0, -10.0, 5000000.0),
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
               "BIGTIFF": "IF_SAFER"}
    step = 1024
    with rasterio.Env(GDAL_CACHEMAX=64), rasterio.open(path, "w", **profile) as ds:
        for r in range(0, side, step):
            h = min(step, side - r)
            yy = np.arange(r, r + h, dtype=np.float32)[:, None]
            xx = np.arange(side, dtype=np.float32)[None, :]
            bands = [(127 + 100 * np.sin(yy / (37.0 + 9 * b)) * np.cos(xx / (53.0 - 7 * b)))
                     .astype(np.uint8) for b in range(3)]
            ds.write(np.stack(bands), window=Window(0, r, side, h))


def make_checkpoint(path: Path, width: float) -> None:
    from fcnseg.checkpoint import save_checkpoint
    from fcnseg.data.palette import voc_palette
    from fcnseg.models import fcn8s

    torch.manual_seed(0)
    model = fcn8s(num_classes=len(CLASSES), geometry="same", width=width, fc_channels=64)
    trained_looking(model, std=0.05)
    save_checkpoint(path, model, class_names=CLASSES, palette=voc_palette())


_CHILD = ("import sys\n"
          "from fcnseg.bench.timing import peak_rss_mb\n"
          "from fcnseg.cli.main import main\n"
          "rc = main(sys.argv[1:])\n"
          "print('PEAK_RSS_MB', peak_rss_mb())\n"
          "sys.exit(rc)\n")


def peak_rss_mb(checkpoint: Path, raster: Path, out: Path, args: argparse.Namespace) -> float:
    cmd = [sys.executable, "-c", _CHILD, "predict", "--checkpoint", str(checkpoint),
           str(raster), "--out", str(out), "--tile", str(args.tile), "--overlap",
           str(args.overlap), "--batch-size", str(args.batch), "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"fcnseg predict failed on {raster}:\n{done.stderr}")
    line = next(l for l in done.stdout.splitlines() if l.startswith("PEAK_RSS_MB"))
    return float(line.split()[1])


def throughput(checkpoint: Path, raster: Path, folder: Path, args: argparse.Namespace,
               repeats: int) -> tuple[float, float]:
    """Median seconds of the tiled prediction and of the model alone on the same tiles."""
    from fcnseg.data.rasters import open_raster
    from fcnseg.inference import Segmenter
    from fcnseg.inference.rasters import (
        TileSettings,
        predict_raster,
        segmenter_tile_fn,
        tile_grid,
    )

    seg = Segmenter.from_checkpoint(checkpoint)
    settings = TileSettings(tile=args.tile, overlap=args.overlap, batch_size=args.batch)
    with open_raster(raster) as r:
        info = r.info
        ys, xs, th, tw = tile_grid(info.height, info.width, args.tile, args.overlap)
        tiles = [r.read(y, x, th, tw) for y in ys for x in xs]
    run = segmenter_tile_fn(seg, info)
    batches = [np.stack(tiles[i:i + args.batch]) for i in range(0, len(tiles), args.batch)]
    # A new output each time: predict_raster skips an output it has finished (resumption).
    outputs = (folder / f"t{k}.tif" for k in itertools.count())
    times = time_interleaved(
        {"tiled": lambda: predict_raster(run, raster, next(outputs), CLASSES, settings),
         "alone": lambda: [run(b) for b in batches]}, warmup=0, repeats=repeats)
    return times["tiled"].median, times["alone"].median


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,8000,20000")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--width", type=float, default=0.0625,
                        help="FCN-8s channel width multiplier [0.0625]")
    parser.add_argument("--throughput-width", type=float, default=0.25,
                        help="FCN-8s width multiplier of the throughput run [0.25]")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="sizes 2000,3000,4000; 1 repeat")
    args = parser.parse_args(argv)
    sizes = [2000, 3000, 4000] if args.quick else [int(s) for s in args.sizes.split(",")]
    repeats = 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory(prefix="fcnseg-raster-bench-") as tmp:
        folder = Path(tmp)
        checkpoint = folder / "model.pt"
        make_checkpoint(checkpoint, args.width)
        peaks = []
        for side in sizes:
            raster = folder / f"scene{side}.tif"
            write_scene(raster, side)
            peak = peak_rss_mb(checkpoint, raster, folder / f"out{side}", args)
            peaks.append(peak)
            print(f"{side}×{side}: peak RSS of fcnseg predict {peak:.0f} MB", flush=True)
            raster.unlink()
            for p in (folder / f"out{side}").glob("*"):
                p.unlink()
        raster = folder / "small.tif"
        write_scene(raster, sizes[0])
        wider = folder / "wider.pt"
        make_checkpoint(wider, args.throughput_width)
        tiled, alone = throughput(wider, raster, folder, args, repeats)
        print(f"{sizes[0]}×{sizes[0]}: tiled prediction {tiled:.2f} s, the model alone on the "
              f"same tiles {alone:.2f} s", flush=True)
    ratio = max(peaks) / peaks[0]
    print_target("raster_peak_rss_largest_over_smallest", ratio, RSS_TARGET,
                 ok=ratio <= RSS_TARGET)
    print_target("raster_tiled_over_model_throughput", alone / tiled, THROUGHPUT_TARGET)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
