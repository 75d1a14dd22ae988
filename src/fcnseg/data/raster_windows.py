"""Training and evaluation on rasters too large to load: windows read from the files.

:class:`RasterWindows` turns a folder dataset of large rasters (bands declared) into samples of
``window``×``window`` pixels read by window (a 50,000² GeoTIFF never sits in memory):
``sampling="random"`` (training) gives ``windows`` samples in rasters chosen by area, at
positions seeded by ``seed`` and the index; ``sampling="grid"`` (evaluation) a grid covering
each raster, its last row and column moved back inside. Windows are checked, and their pixels
without data handled, as the folder dataset does whole files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fcnseg.conventions import InputConvention
from fcnseg.data.base import SegmentationDataset, Transform
from fcnseg.data.errors import DataError
from fcnseg.data.folder import FolderSegmentation
from fcnseg.data.images import ImageError
from fcnseg.data.io import check_label_values
from fcnseg.data.rasters import RasterInfo, fill_nodata, grid_problem, nodata_mask, open_raster
from fcnseg.utils.windows import window_starts

if TYPE_CHECKING:
    from fcnseg.data.band_stats import BandStats

SAMPLINGS = ("random", "grid")


class RasterWindows(SegmentationDataset):
    """Windows of ``window`` pixels a side (cut to smaller rasters) of ``rasters``, a folder
    dataset with ``bands``: ``windows`` random ones or a grid, by ``sampling`` (module doc).
    """

    def __init__(self, rasters: FolderSegmentation, window: int = 512, *,
                 sampling: str = "random", windows: int = 1000, seed: int = 0,
                 transform: Transform | None = None) -> None:
        super().__init__(transform)
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling: expected one of {', '.join(SAMPLINGS)}, got {sampling!r}")
        if window < 1 or windows < 1:
            raise ValueError(f"window and windows must be positive, got {window}, {windows}")
        self.rasters, self.window, self.sampling = rasters, int(window), sampling
        self.seed, self.count = int(seed), int(windows)
        self.classes, self.ignore_index = rasters.classes, rasters.ignore_index
        self.palette = rasters.palette
        self.bands, self.nodata = rasters.bands, rasters.nodata
        self.infos: list[RasterInfo] = []
        for i in range(len(rasters)):
            path = rasters.image_path(i)
            try:
                with open_raster(path, bands=self.bands) as r:
                    self.infos.append(r.info)
            except ImageError as e:
                raise DataError(path, e.problem) from None
        areas = np.array([info.pixels for info in self.infos], np.float64)
        self._weights = areas / areas.sum() if areas.sum() else areas
        side = self.window  # grid windows touch, the last one moved back inside the raster
        self._grid = [(i, y, x) for i, info in enumerate(self.infos)
                      for y in window_starts(info.height, side, side)
                      for x in window_starts(info.width, side, side)] if sampling == "grid" else []

    @property
    def pad_values(self) -> dict[str, float | tuple[float, ...]]:
        """Each band's mean over the whole rasters (what the model normalises to zero)."""
        return self.rasters.pad_values

    def band_convention(self) -> InputConvention:
        """The rasters' band convention (:meth:`FolderSegmentation.band_convention`)."""
        return self.rasters.band_convention()

    def use_band_convention(self, convention: InputConvention) -> None:
        """Pad and fill with ``convention``'s band means (the rasters')."""
        self.rasters.use_band_convention(convention)

    def band_statistics(self) -> BandStats:
        """The rasters' band statistics (:meth:`FolderSegmentation.band_statistics`)."""
        return self.rasters.band_statistics()

    def __len__(self) -> int:
        return len(self._grid) if self.sampling == "grid" else self.count

    def position(self, index: int) -> tuple[int, int, int]:
        """``(raster index, row, column)`` of sample ``index``'s window."""
        if self.sampling == "grid":
            return self._grid[index]
        rng = np.random.default_rng([self.seed, index])
        i = int(rng.choice(len(self.infos), p=self._weights))
        info = self.infos[i]
        y = int(rng.integers(0, max(1, info.height - self.window + 1)))
        x = int(rng.integers(0, max(1, info.width - self.window + 1)))
        return i, y, x

    def name(self, index: int) -> str:
        i, y, x = self.position(index)
        return f"{self.rasters.ids[i]}@{y},{x}"

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        i, y, x = self.position(index)
        info = self.infos[i]
        h, w = min(self.window, info.height), min(self.window, info.width)
        image_path, label_path = (Path(self.rasters.image_path(i)),
                                  Path(self.rasters.label_path(i)))
        try:
            with open_raster(image_path, bands=self.bands) as r:
                image = r.read(y, x, h, w)
            with open_raster(label_path) as r:
                problem = grid_problem(info, r.info)
                if problem is None and r.info.bands != 1:
                    problem = f"label raster has {r.info.bands} bands; expected 1"
                if problem is not None:
                    raise DataError(label_path, problem)
                label = r.read(y, x, h, w)[..., 0].astype(np.int64)
        except ImageError as e:  # naming the image or the label raster
            raise DataError(e.source, e.problem) from None
        check_label_values(label_path, label, self.num_classes, self.ignore_index)
        missing = nodata_mask(image, self.nodata)
        if missing is not None:
            label[missing] = self.ignore_index
        return image, label

    def fill_missing(self, image: Any) -> Any:
        """Pixels without data take each band's mean, as in the folder dataset (after the
        data cache, which keeps the window's own bit depth)."""
        missing = nodata_mask(image, self.nodata)
        return image if missing is None else fill_nodata(image, missing, self.pad_values["color"])

    def __repr__(self) -> str:
        return (f"RasterWindows({self.rasters.root}, {len(self)} {self.sampling} windows of "
                f"{self.window}²)")
