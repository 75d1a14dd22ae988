"""Tiled raster prediction equals whole-image prediction, and shows no seam, at 1,500².

Writes a georeferenced 3-band uint16 GeoTIFF (``--side``, 2,000² by default) and predicts it
by tiles (``--tile`` 512, ``--overlap`` 64: the settings of ``fcnseg predict``), blending the
overlapping logits, with the probabilities written too. Then a ``--crop`` (1,500²) window away
from the raster's borders is predicted whole, in one forward pass, and compared:

- **Equal to whole-image prediction**: with a model whose output pixel sees a few pixels each
  way (six 3×3 convolutions: 6), fewer than the blending's zero margin at a tile's inner edge
  (a quarter of the overlap), tiling changes nothing but float rounding of the blended logits.
  Target: the largest difference of the class probabilities over the crop's interior (its own
  6-pixel border sees less) at most 1e-5.
- **No seam**: the largest jump of a class probability between neighbouring pixels across a
  tile edge, over the largest jump elsewhere in the crop. Target: at most 1, for that model
  and for an FCN-8s (narrow, random weights: its receptive field spans tiles, so its tiles do
  differ from the whole image; the blending must hide where). The FCN-8s's agreement of labels
  with its whole-crop prediction is printed too.

    python benchmarks/raster_seams.py [--quick] [--side 2000] [--crop 1500] [--tile 512]
        [--overlap 64]
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fcnseg.bench.suite import trained_looking
from fcnseg.bench.targets import print_target

EQUAL_TARGET = 1e-5
SEAM_TARGET = 1.0
CLASSES = ["ground", "water", "trees"]
#: How far each output pixel of the local model sees: one pixel per 3×3 convolution.
LOCAL_REACH = 6


def write_scene(path: Path, side: int) -> np.ndarray:
    """A side×side 3-band uint16 GeoTIFF of smooth texture with some noise; returns it."""
    import rasterio
    from rasterio.transform import Affine

    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    rng = np.random.default_rng(0)
    bands = [np.sin(yy / (29.0 + 7 * b) + b) * np.cos(xx / (41.0 - 5 * b) - b)
             + 0.1 * rng.standard_normal((side, side), dtype=np.float32) for b in range(3)]
    array = (np.stack(bands, -1) * 15000 + 30000).astype(np.uint16)
    with rasterio.open(path, "w", driver="GTiff", height=side, width=side, count=3,
                       dtype="uint16", crs="EPSG:32633", tiled=True, blockxsize=256,
                       blockysize=256, compress="deflate",
                       transform=Affine(10.0, 0, 400000.0, 0, -10.0, 5000000.0)) as ds:
        ds.write(np.moveaxis(array, -1, 0))
    return array


def local_model() -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    channels = 3
    for _ in range(LOCAL_REACH - 1):
        layers += [nn.Conv2d(channels, 8, 3, padding=1), nn.Tanh()]
        channels = 8
    layers.append(nn.Conv2d(channels, len(CLASSES), 3, padding=1))
    return nn.Sequential(*layers).eval()


def local_tile_fn(model: nn.Module) -> Callable[[np.ndarray], torch.Tensor]:
    @torch.inference_mode()
    def run(batch: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(batch.astype(np.float32) / 30000.0 - 1.0).permute(0, 3, 1, 2)
        return model(x)
    return run


def fcn8s_segmenter(folder: Path) -> object:
    from fcnseg.checkpoint import save_checkpoint
    from fcnseg.data.palette import voc_palette
    from fcnseg.inference import Segmenter
    from fcnseg.models import fcn8s

    torch.manual_seed(0)
    model = fcn8s(num_classes=len(CLASSES), geometry="same", width=0.0625, fc_channels=64)
    trained_looking(model, std=0.05)
    path = save_checkpoint(folder / "fcn8s.pt", model, class_names=CLASSES,
                           palette=voc_palette())
    return Segmenter.from_checkpoint(path, precision="fp32")


def tile_edges(side: int, tile: int, overlap: int) -> list[int]:
    """Pixel offsets where one tile ends or the next begins (the jump between pixel x-1 and
    x), inside the raster."""
    from fcnseg.inference.rasters import tile_grid

    starts, _, size, _ = tile_grid(side, side, tile, overlap)
    return sorted({e for s in starts for e in (s, s + size) if 0 < e < side})


def seam_ratio(probs: np.ndarray, origin: int, edges: list[int]) -> float:
    """Largest jump of a class probability across a tile edge (either axis) within the crop
    starting at ``origin``, over the largest jump elsewhere."""
    size = probs.shape[1]
    inside = [e - origin for e in edges if 0 < e - origin < size]
    at, elsewhere = 0.0, 0.0
    for axis in (1, 2):
        jumps = np.abs(np.diff(probs.astype(np.float64), axis=axis)).max(axis=0)
        jumps = jumps if axis == 2 else jumps.T  # columns index the jump across the axis
        across = jumps[:, [x - 1 for x in inside]]
        at = max(at, float(across.max()))
        elsewhere = max(elsewhere, float(np.delete(jumps, [x - 1 for x in inside], 1).max()))
    return at / elsewhere


def read_probs(path: Path, origin: int, size: int) -> np.ndarray:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(path) as ds:
        return ds.read(window=Window(origin, origin, size, size))


def main(argv: list[str] | None = None) -> int:
    from fcnseg.data.rasters import raster_info
    from fcnseg.inference.rasters import TileSettings, predict_raster, segmenter_tile_fn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=2000)
    parser.add_argument("--crop", type=int, default=1500)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--quick", action="store_true",
                        help="a 1,700² raster (4×4 tiles), the crop still 1,500²")
    args = parser.parse_args(argv)
    if args.quick:
        args.side = min(args.side, 1700)
    if args.overlap // 4 < LOCAL_REACH:
        raise SystemExit(f"--overlap {args.overlap}: the blending's zero margin "
                         f"({args.overlap // 4}) must cover the local model's reach "
                         f"({LOCAL_REACH})")
    origin = (args.side - args.crop) // 2
    settings = TileSettings(tile=args.tile, overlap=args.overlap, batch_size=2, probs=True)
    edges = tile_edges(args.side, args.tile, args.overlap)
    with tempfile.TemporaryDirectory(prefix="fcnseg-seams-") as tmp:
        folder = Path(tmp)
        raster = folder / "scene.tif"
        array = write_scene(raster, args.side)
        crop = array[origin:origin + args.crop, origin:origin + args.crop]

        model = local_model()
        predict_raster(local_tile_fn(model), raster, folder / "local.tif", CLASSES, settings)
        tiled = read_probs(folder / "local_probs.tif", origin, args.crop)
        whole = torch.softmax(local_tile_fn(model)(crop[None])[0], 0).numpy()
        r = LOCAL_REACH
        error = float(np.abs(tiled[:, r:-r, r:-r] - whole[:, r:-r, r:-r]).max())
        local_seam = seam_ratio(tiled, origin, edges)

        seg = fcn8s_segmenter(folder)
        run = segmenter_tile_fn(seg, raster_info(raster))
        predict_raster(run, raster, folder / "fcn.tif", CLASSES, settings)
        fcn_tiled = read_probs(folder / "fcn_probs.tif", origin, args.crop)
        fcn_whole = run(crop[None])[0].argmax(0).numpy()
        agreement = float((fcn_tiled.argmax(0) == fcn_whole).mean())
        fcn_seam = seam_ratio(fcn_tiled, origin, edges)
    print(f"{args.side}² uint16 GeoTIFF, tiles of {args.tile} overlapping by {args.overlap}; "
          f"crop of {args.crop}² at ({origin}, {origin}):")
    print(f"  local model (reach {LOCAL_REACH}): largest probability difference tiled vs whole "
          f"{error:.2e}; largest jump across tile edges / elsewhere {local_seam:.3f}")
    print(f"  FCN-8s (width 0.0625): labels equal to the whole crop's at {agreement:.2%} of "
          f"pixels; largest jump across tile edges / elsewhere {fcn_seam:.3f}")
    print_target("raster_tiled_vs_whole_max_prob_error", error, EQUAL_TARGET,
                 ok=error <= EQUAL_TARGET)
    print_target("raster_seam_jump_over_elsewhere", local_seam, SEAM_TARGET,
                 ok=local_seam <= SEAM_TARGET)
    print_target("raster_fcn8s_seam_jump_over_elsewhere", fcn_seam, SEAM_TARGET,
                 ok=fcn_seam <= SEAM_TARGET)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
