"""Rasters of any number of bands and any bit depth: satellite scenes, microscopy, depth.

:func:`read_raster` reads a file as an H×W×N array: ``uint8`` and ``uint16`` stay, other
samples become ``float32`` (what a model takes); ``exact=True`` keeps integers and float64
(float32 is exact only up to 2**24) for statistics. TIFF goes through ``tifffile`` (or
``rasterio``, which adds the georeferencing), JPEG 2000 through ``rasterio`` (``fcnseg[geo]``;
GDAL only gets the driver the first bytes name, :data:`~fcnseg.data.images.RASTER_FORMATS`),
other image formats through the one image reader, bands kept. :func:`open_raster` reads
windows of rasters too large to hold in memory.

Bands are selected by name (``bands=("red", "nir")``) from the band descriptions, else the
raster must have as many bands as are named. Every problem is one-line
:class:`~fcnseg.data.images.ImageError` naming the file.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fcnseg.data.images import (
    DEFAULT_MAX_PIXELS,
    RASTER_FORMATS,
    ImageError,
    ImageTooLargeError,
    TiffSamples,
    camera_raw_problem,
    check_pixels,
    decoded,
    file_head,
    multi_image_problem,
    open_upright,
    orientation_flips,
    parse_tiff,
    pil_to_rgb,
    read_samples,
    samples_of,
    sixteen_bit_colour_png,
    tiff_images,
    upright_array,
)
from fcnseg.utils.nodata import without_data
from fcnseg.utils.quiet import ignoring
from fcnseg.utils.typing import PathLike

#: What the size limit's message advises for a raster too large to read whole (predict tiles it).
BY_WINDOWS = " read it by windows: fcnseg predict does"


@dataclass(frozen=True)
class RasterInfo:
    """What a raster's header says: size, bands, sample type and georeferencing.

    ``dtype`` is the file's sample type (booleans as uint8); ``crs`` and ``transform``
    rasterio's (None without georeferencing); ``band_names``, ``nodata`` None when absent;
    ``alpha``: the last band is transparency, ``premultiplied`` (associated); ``cmyk``: CMYK
    inks, read as stored; ``palette``: a palette TIFF's N×3 colour map (the band: indices);
    ``geotiff``: a TIFF whose GeoTIFF tags put it on a map grid (even without a CRS).
    """

    path: str
    height: int
    width: int
    bands: int
    dtype: np.dtype
    band_names: tuple[str, ...] | None = None
    crs: Any = None
    transform: Any = None
    nodata: float | None = None
    alpha: bool = False
    premultiplied: bool = False
    cmyk: bool = False
    palette: np.ndarray | None = field(default=None, compare=False, repr=False)
    geotiff: bool = field(default=False, repr=False)

    @property
    def pixels(self) -> int:
        return self.height * self.width


def sample_dtype(dtype: np.dtype, exact: bool = False) -> np.dtype:
    """The type samples ``dtype`` are returned in: uint8 (booleans too), uint16, else float32;
    ``exact``: integers and float64 as stored (native byte order)."""
    dtype = np.dtype(dtype)
    if exact and (dtype.kind in "iu" or dtype == np.float64):
        return dtype.newbyteorder("=")
    if dtype == np.bool_:
        return np.dtype(np.uint8)
    return dtype if dtype in (np.uint8, np.uint16, np.float32) else np.dtype(np.float32)


def _stored_dtype(dtype: np.dtype) -> np.dtype:
    """The file's sample type (``uint32`` though read as float32), booleans as uint8."""
    dtype = np.dtype(dtype)
    return dtype if dtype.kind in "iuf" else sample_dtype(dtype)


def _rasterio() -> Any:
    try:
        import rasterio
    except ImportError:
        return None
    return rasterio


def rasterio_open(path: PathLike, mode: str = "r", **kwargs: Any) -> Any:
    """``rasterio.open`` without the NotGeoreferencedWarning of a plain TIFF (a valid input),
    hidden under :func:`fcnseg.utils.quiet.ignoring`'s lock (serve's threads)."""
    import rasterio

    with ignoring(rasterio.errors.NotGeoreferencedWarning):
        return rasterio.open(path, mode, **kwargs)


#: GDAL's block cache while fcnseg reads a raster, in bytes, rather than GDAL's 5% of the memory;
#: a caller's own (in a rasterio.Env: ``fcnseg predict``'s, next to none) is kept.
GDAL_CACHE_BYTES = 64 << 20


def _quiet_gdal(rasterio: Any) -> Any:
    """A rasterio Env without GDAL's own messages (ours name the problem), its block cache
    at most :data:`GDAL_CACHE_BYTES`."""
    logger = logging.getLogger("rasterio._env")
    silent = logging.CRITICAL + 1
    if logger.level != silent:  # once: each setLevel clears the cache of every logger
        logger.setLevel(silent)
    if rasterio.env.hasenv() and "GDAL_CACHEMAX" in rasterio.env.getenv():
        return rasterio.Env()  # the enclosing one's
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES)


class RasterReader:
    """Windows of one raster file, decoded on demand (use :func:`open_raster`).

    ``read(row, col, height, width)`` returns that window as an h×w×N array of the selected
    bands in :func:`sample_dtype` of the file's samples; ``info`` describes the whole raster.
    """

    #: Windows keep integer and float64 samples (``open_raster(exact=True)``).
    exact: bool = False

    def __init__(self, info: RasterInfo, band_index: Sequence[int]) -> None:
        self.info = info
        self.band_index = tuple(band_index)  # 0-based indices of the bands returned

    def sample_type(self, stored: np.dtype) -> np.dtype:
        return sample_dtype(stored, self.exact)

    def _returned(self, a: np.ndarray) -> np.ndarray:
        a = a if a.ndim == 3 else a[..., None]
        return np.ascontiguousarray(a, dtype=self.sample_type(a.dtype))

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        try:
            return self._read(row, col, height, width)
        except MemoryError:
            raise
        except Exception as e:  # noqa: BLE001 - GDAL's and tifffile's codecs raise many kinds
            cause = e.__cause__ or e.__context__  # GDAL's error ("See previous exception")
            raise ImageError(self.info.path, f"cannot be decoded at window (row {row}, column "
                                             f"{col}): truncated or corrupt ({type(e).__name__}: "
                                             f"{cause if cause is not None else e})") from None

    def _read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        raise NotImplementedError

    def read_all(self) -> np.ndarray:
        return self.read(0, 0, self.info.height, self.info.width)

    def block_shape(self) -> tuple[int, int] | None:
        """Rows and columns of the blocks (tiles, strips) a window decodes whole; None for an
        array in memory or a file not read by blocks."""
        return None

    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> RasterReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _RasterioReader(RasterReader):
    def __init__(self, dataset: Any, info: RasterInfo, band_index: Sequence[int]) -> None:
        super().__init__(info, band_index)
        self._ds = dataset
        self._indexes = [i + 1 for i in self.band_index]
        types = {np.dtype(dataset.dtypes[i]) for i in self.band_index}
        self._one_type = next(iter(types)) if len(types) == 1 else None

    def _read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        from rasterio.windows import Window

        window = Window(col, row, width, height)
        # Bands of one type returned as is: GDAL reads straight into an H×W×N array.
        direct = self._one_type is not None and \
            self.sample_type(self._one_type) == self._one_type
        with _quiet_gdal(_rasterio()):
            if direct:
                out = np.empty((height, width, len(self._indexes)), self._one_type)
                self._ds.read(self._indexes, window=window, out=out.transpose(2, 0, 1))
                return out
            a = self._ds.read(self._indexes, window=window)
        return self._returned(np.moveaxis(a, 0, -1))

    def block_shape(self) -> tuple[int, int] | None:
        # GeoTIFF blocks decode alone; other drivers (JPEG 2000) may draw a window as a whole.
        if self._ds.driver != "GTiff":
            return None
        rows, cols = self._ds.block_shapes[0]
        return int(rows), int(cols)

    def close(self) -> None:
        self._ds.close()


class _ArrayReader(RasterReader):
    """A raster decoded whole (PNG/JPEG) or memory-mapped (an uncompressed TIFF)."""

    def __init__(self, array: np.ndarray, where: str, bands: Sequence[str] | None) -> None:
        h, w, n = array.shape
        info = RasterInfo(path=where, height=h, width=w, bands=n,
                          dtype=_stored_dtype(array.dtype))
        super().__init__(info, _select_bands(where, n, None, bands))
        self._array = array  # H×W×N_file

    def _read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        window = self._array[row:row + height, col:col + width]
        return self._returned(window[..., list(self.band_index)])


#: What :func:`cached_blocks` holds of a raster's decoded blocks at most (bytes).
BLOCK_CACHE_BYTES = 16 << 20


def _blocks_under(row: int, col: int, height: int, width: int,
                  block: tuple[int, int]) -> Iterator[tuple[int, int]]:
    """``(block row, block column)`` of every block of ``block`` shape under a window."""
    (bh, bw), bottom, right = block, row + height - 1, col + width - 1
    return itertools.product(range(row // bh, bottom // bh + 1), range(col // bw, right // bw + 1))


def _paste(out: np.ndarray, row: int, col: int, block: np.ndarray, y0: int, x0: int) -> None:
    """Copy what of ``block`` (its corner at y0, x0) lies under ``out`` (at row, col) into it."""
    ya, yb = max(row, y0), min(row + out.shape[0], y0 + block.shape[0])
    xa, xb = max(col, x0), min(col + out.shape[1], x0 + block.shape[1])
    out[ya - row:yb - row, xa - col:xb - col] = block[ya - y0:yb - y0, xa - x0:xb - x0]


class _CachedBlocks(RasterReader):
    """Windows put together from a reader's blocks, each decoded once while held."""

    def __init__(self, reader: RasterReader, block: tuple[int, int], budget: int) -> None:
        super().__init__(reader.info, reader.band_index)
        self._reader, self._block, self._budget = reader, block, budget
        self._held: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._held_bytes = 0

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        # The reader's own read names a block that cannot be decoded, in one line.
        if height <= 0 or width <= 0:
            return self._reader.read(row, col, height, width)
        out: np.ndarray | None = None
        for by, bx in _blocks_under(row, col, height, width, self._block):
            block = self._get(by, bx)
            if out is None:
                out = np.empty((height, width, block.shape[2]), block.dtype)
            _paste(out, row, col, block, by * self._block[0], bx * self._block[1])
        assert out is not None
        return out

    def _get(self, by: int, bx: int) -> np.ndarray:
        """Block (by, bx), decoded unless held; the least recently used go beyond the budget."""
        block = self._held.get((by, bx))
        if block is not None:
            self._held.move_to_end((by, bx))
            return block
        bh, bw = self._block
        y, x = by * bh, bx * bw
        block = self._reader.read(y, x, min(bh, self.info.height - y),
                                  min(bw, self.info.width - x))
        self._held[(by, bx)] = block
        self._held_bytes += block.nbytes
        while self._held_bytes > self._budget and len(self._held) > 1:
            self._held_bytes -= self._held.popitem(last=False)[1].nbytes
        return block


def cached_blocks(reader: RasterReader, budget: int = BLOCK_CACHE_BYTES, *,
                  window_rows: int | None = None) -> RasterReader:
    """``reader`` whose windows are put together from the file's blocks, each decoded once and
    held (up to ``budget`` bytes, least recently used dropped first): overlapping tiles read
    in raster order decode each block about once instead of up to four times; same pixels.

    ``window_rows``: the height of windows read in raster order (predict's tiles); the budget
    then holds at least one strip of them across the raster, so the next strip finds its
    shared blocks. ``reader`` itself where caching gains nothing (an array in memory, blocks
    too large to hold several, or taller than the windows)."""
    block = reader.block_shape()
    if block is None:
        return reader
    info = reader.info
    block_bytes = (min(block[0], info.height) * min(block[1], info.width)  # tiles may overhang
                   * len(reader.band_index) * reader.sample_type(info.dtype).itemsize)
    if window_rows is not None and block[0] <= window_rows:
        # A window spans R = ceil(rows / block rows) + 1 block rows at most; between a shared
        # block's uses by two strips come at most R × (columns + 1) blocks.
        rows = -(-window_rows // block[0]) + 1
        columns = -(-info.width // block[1]) + 1
        return _CachedBlocks(reader, block, max(budget, rows * columns * block_bytes))
    return reader if block_bytes * 8 > budget else _CachedBlocks(reader, block, budget)


def _select_bands(where: str, have: int, names: tuple[str, ...] | None,
                  wanted: Sequence[str] | None) -> list[int]:
    if wanted is None:
        return list(range(have))
    wanted = [str(b) for b in wanted]
    if names is not None and all(names):
        lower = [n.lower() for n in names]
        missing = [b for b in wanted if b.lower() not in lower]
        if missing:
            raise ImageError(where, f"has no band named {missing[0]!r} (its bands: "
                                    f"{', '.join(names)}; declared: {', '.join(wanted)})")
        return [lower.index(b.lower()) for b in wanted]
    if have != len(wanted):
        raise ImageError(where, f"has {have} band(s) but {len(wanted)} are declared "
                                f"({', '.join(wanted)})")
    return list(range(have))


def _rasterio_reader(rasterio: Any, path: Path, where: str, driver: str,
                     bands: Sequence[str] | None, max_pixels: int | None) -> RasterReader:
    """A reader through GDAL with the ``driver`` the first bytes name: GDAL never guesses
    (some of its formats read other files)."""
    try:
        with _quiet_gdal(rasterio):  # a plain TIFF is read as pixels, without a warning
            ds = rasterio_open(path, driver=driver)
    except Exception as e:  # noqa: BLE001 - RasterioIOError and GDAL's others
        raise ImageError(where, f"cannot be opened as a raster ({e})") from None
    try:
        names = tuple(d or "" for d in ds.descriptions)
        info = RasterInfo(
            path=where, height=ds.height, width=ds.width, bands=ds.count,
            dtype=np.dtype(ds.dtypes[0]), band_names=names if any(names) else None,
            **_georeferencing(ds),
            alpha=ds.count > 1 and ds.colorinterp[-1] == rasterio.enums.ColorInterp.alpha)
        check_pixels(where, info.width, info.height, max_pixels, BY_WINDOWS)
        index = _select_bands(where, info.bands, info.band_names, bands)
    except BaseException:
        ds.close()
        raise
    return _RasterioReader(ds, info, index)


def _georeferencing(ds: Any) -> dict[str, Any]:
    """The ``crs``, ``transform`` and ``nodata`` of a rasterio dataset: georeferenced when it
    has a CRS or a non-identity geotransform (kept without a CRS)."""
    georeferenced = ds.crs is not None or not ds.transform.is_identity
    return {"crs": ds.crs if georeferenced else None,
            "transform": ds.transform if georeferenced else None,
            "nodata": None if ds.nodata is None else float(ds.nodata)}


def _with_georeferencing(reader: RasterReader, rasterio: Any, path: Path) -> RasterReader:
    """``reader`` (tifffile's, blind to GeoTIFF tags) with GDAL's CRS, geotransform, nodata."""
    try:
        with _quiet_gdal(rasterio), rasterio_open(path, driver="GTiff") as ds:
            found = _georeferencing(ds)
    except Exception:  # noqa: BLE001 - GDAL refusing the header leaves the pixels as read
        return reader
    reader.info = replace(reader.info, **found)
    return reader


#: The TIFF tag in which GDAL writes a raster's no-data value, as text ("-9999", "nan").
GDAL_NODATA_TAG = 42113


def gdal_nodata(page: Any) -> float | None:
    """A tifffile page's GDAL_NODATA value, as GDAL reads it (None: absent or no number)."""
    tag = page.tags.get(GDAL_NODATA_TAG)
    try:
        return None if tag is None else float(str(tag.value).strip().strip("\x00"))
    except ValueError:
        return None


class _TiffReader(RasterReader):
    """Windows of a tiled or striped TIFF through tifffile: only the tiles under one decoded."""

    def __init__(self, tif: Any, where: str, bands: Sequence[str] | None) -> None:
        p, samples = tif.pages[0], samples_of(tif)
        info = RasterInfo(path=where, height=int(p.imagelength), width=int(p.imagewidth),
                          bands=int(p.samplesperpixel), dtype=_stored_dtype(p.dtype),
                          nodata=gdal_nodata(p), alpha=samples is not None and samples.alpha)
        super().__init__(info, _select_bands(where, info.bands, None, bands))
        self._tif, self._page = tif, p
        self._seg = (int(p.tilelength), int(p.tilewidth)) if p.is_tiled else \
            (min(int(p.rowsperstrip or info.height), info.height), info.width)
        self._planes = int(p.samplesperpixel) if p.planarconfig == 2 else 1

    def _segment(self, i: int) -> np.ndarray | None:
        p = self._page
        if i >= len(p.dataoffsets) or not p.databytecounts[i]:
            return None  # a sparse file's missing tile: zeros
        fh = self._tif.filehandle
        fh.seek(p.dataoffsets[i])
        data = fh.read(p.databytecounts[i])
        seg = p.decode(data, i, jpegtables=p.jpegtables)[0]
        return None if seg is None else seg.reshape(seg.shape[-3:])  # rows × cols × samples

    def _read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        info, (sh, sw) = self.info, self._seg
        out = np.zeros((height, width, int(self._page.samplesperpixel)), self._page.dtype)
        across, down = -(-info.width // sw), -(-info.height // sh)
        for ty, tx in _blocks_under(row, col, height, width, self._seg):
            for plane in range(self._planes):  # separate planes: one segment a band
                seg = self._segment((plane * down + ty) * across + tx)
                if seg is not None:
                    target, seg = (out[..., plane:plane + 1], seg[..., :1]) \
                        if self._planes > 1 else (out, seg)
                    _paste(target, row, col, seg, ty * sh, tx * sw)
        return self._returned(out[..., list(self.band_index)])

    def block_shape(self) -> tuple[int, int] | None:
        return self._seg

    def close(self) -> None:
        self._tif.close()


def _tifffile_reader(tif: Any, path: Path, where: str, bands: Sequence[str] | None,
                     max_pixels: int | None) -> RasterReader:
    """A reader of a TIFF's first image, its size checked first: by tiles or strips for one
    page of H×W×bands (through ``tif``), else its pages memory-mapped or decoded whole."""
    if isinstance(tif, Exception):  # tifffile raises many kinds on a bad header
        raise ImageError(where, f"cannot be opened as a TIFF, corrupt header "
                                f"({type(tif).__name__}: {tif})")
    if not tif.series:  # a header whose directories lead to no image
        raise ImageError(where, "cannot be opened as a TIFF, corrupt header (no image in it)")
    series = tif.series[0]
    shape, axes = series.shape, series.axes
    page = tif.pages[0]
    if len(shape) not in (2, 3) or (len(shape) == 3 and axes[0] not in "SCQI"
                                    and axes[-1] not in "SCQI"):
        raise ImageError(where, f"a TIFF of axes {axes} and shape {shape}: expected one "
                                f"image of H×W, H×W×bands or bands×H×W")
    check_pixels(where, int(page.imagewidth), int(page.imagelength), max_pixels, BY_WINDOWS)
    if len(tif.pages) == 1 or len(shape) == 2:
        return _TiffReader(tif, where, bands)
    reader = _ArrayReader(_tifffile_array(tif, path, where, axes), where, bands)  # bands: pages
    reader.info = replace(reader.info, nodata=gdal_nodata(page))
    return reader


class TiffLayout(NamedTuple):
    """A TIFF's first image as its header says, and its count of full-resolution images (not
    overviews, masks, or damaged directories without pixels)."""

    shape: tuple[int, ...]
    axes: str
    pages: int
    samples: int
    images: int

    @property
    def pages_are_bands(self) -> bool:
        """Pages, one per band (``tifffile.imwrite``'s bands×H×W, a Fiji hyperstack's
        channels), not one page of H×W×bands (what GDAL reads)."""
        return len(self.shape) == 3 and self.axes[0] in "QIC" and self.pages > 1 \
            and self.samples == 1

    def problem(self) -> str | None:
        """One line when the file is no raster GDAL and tifffile read right: an H×W×B array
        ``tifffile.imwrite`` stored as H pages of W×B pixels, or several images."""
        h, w, b = self.shape if len(self.shape) == 3 else (0, 0, 0)
        if self.pages_are_bands and self.pages == h and b <= _MAX_STRAY_BANDS and b < min(h, w):
            return (f"holds {h} pages of {w}×{b} pixels, as tifffile.imwrite stores an H×W×{b} "
                    f"array by default, not a {h}×{w} raster of {b} bands; write it as one page "
                    f"with tifffile.imwrite(path, a, photometric='minisblack', "
                    f"planarconfig='contig'), or bands first: tifffile.imwrite(path, "
                    f"a.transpose(2, 0, 1))")
        if self.images <= 1 or self.pages_are_bands:
            return None
        return multi_image_problem(self.images, self.axes, self.shape)


#: Most bands a TIFF page of W×B pixels may have to be taken for an H×W×B array that
#: ``tifffile.imwrite`` stored as H pages (it keeps a last axis other than 3 or 4 as pixels).
_MAX_STRAY_BANDS = 16


def layout_of(tif: Any) -> TiffLayout | None:
    """The layout of a TIFF's first image from its header (parsed by
    :func:`~fcnseg.data.images.parse_tiff`); None for a bad one (the reader reports it)."""
    with contextlib.suppress(Exception):  # a bad header is for the reader to report
        series = tif.series[0]
        return TiffLayout(tuple(series.shape), series.axes, len(tif.pages),
                          int(tif.pages[0].samplesperpixel), tiff_images(tif))
    return None


def _tifffile_array(tif: Any, path: Path, where: str, axes: str) -> np.ndarray:
    """A TIFF whose bands are pages as H×W×N: memory-mapped where it can be, else decoded."""
    series = tif.series[0]

    def mapped_or_decoded() -> np.ndarray:
        with contextlib.suppress(ValueError):  # compressed or not contiguous: decoded below
            if series.dataoffset is not None:
                return np.memmap(path, np.dtype(tif.byteorder + series.dtype.char), "r",
                                 series.dataoffset, series.shape, "C")
        return tif.asarray()  # every page: a band

    a = decoded(mapped_or_decoded, where)  # H×W×N or N×H×W (_tifffile_reader's check)
    return np.moveaxis(a, 0, -1) if axes[0] in "SCQI" and axes[-1] not in "SCQI" else a


def _pillow_array(path: Path, where: str, max_pixels: int | None) -> np.ndarray:
    if sixteen_bit_colour_png(path):  # Pillow alone keeps only the high bytes
        return read_samples(path, name=where, max_pixels=max_pixels)
    img = open_upright(path, name=where, max_pixels=max_pixels)
    if img.mode in ("L", "I;16", "I;16B", "I;16L", "I;16N", "F", "I", "1"):
        a = np.asarray(img)
        if img.mode.startswith("I;16"):
            a = a.astype(np.uint16)
        return a[..., None]
    return pil_to_rgb(img, where)  # colour (palette, alpha, CMYK) as the image reader reads it


def open_raster(path: PathLike, *, bands: Sequence[str] | None = None,
                max_pixels: int | None = None, exact: bool = False) -> RasterReader:
    """A window reader of the raster at ``path`` (see the module doc).

    Args:
        path: the raster file.
        bands: band names to select (None: every band in file order).
        max_pixels: refuse rasters with more pixels than this (None: any size; windows are
            read one at a time). PNG/JPEG are decoded whole, so their limit is the image
            reader's default when None.
        exact: windows keep integer and float64 samples (a ``uint32`` raster as ``uint32``,
            not as float32, what a model takes; :func:`sample_dtype`).

    Raises:
        ImageError: missing, unreadable or corrupt, or without the bands asked for.
    """
    reader = _open_raster(path, bands, max_pixels)
    reader.exact = exact
    info, bands_read = reader.info, len(reader.band_index)
    values = info.width * info.height * bands_read
    decoded = values * info.dtype.itemsize
    # More values than max_pixels colour pixels must be what the file could decode to: a sparse
    # TIFF of a few KB declaring hundreds of bands would otherwise be read as gigabytes.
    if max_pixels is not None and values > max_pixels * COLOUR_SAMPLES \
            and decoded > (file_bytes := Path(path).stat().st_size) * MAX_EXPANSION:
        reader.close()
        raise ImageTooLargeError(str(path), f"{info.width}×{info.height} pixels of {bands_read} "
                                            f"bands = {values} values ({decoded} bytes) from a "
                                            f"file of {file_bytes} bytes (a decompression bomb?)")
    return reader


#: The most samples a pixel of a colour image has (RGBA): a raster of no more samples than
#: ``max_pixels`` such pixels is read whatever its file's size.
COLOUR_SAMPLES = 4
#: The most bytes one byte of a file decodes to (deflate's limit is about 1032).
MAX_EXPANSION = 1032


def _open_raster(path: PathLike, bands: Sequence[str] | None,
                 max_pixels: int | None) -> RasterReader:
    p = Path(path)
    where = str(path)
    head = file_head(p)  # none from a missing file, which the image reader refuses
    driver, name = next(((d, n) for magic, d, n in RASTER_FORMATS if head.startswith(magic)),
                        (None, None))
    if driver is not None and (problem := camera_raw_problem(p)):
        raise ImageError(where, problem)  # others are the image reader's to refuse
    if driver == "GTiff":
        return _tiff_raster(p, where, bands, max_pixels)
    rasterio = _rasterio()
    if rasterio is not None and driver is not None:
        return _rasterio_reader(rasterio, p, where, driver, bands, max_pixels)
    if driver is not None:
        raise ImageError(where, f"a {name} file: reading it needs rasterio "
                                f"(pip install 'fcnseg[geo]')")
    # The formats of the one allow-list, decoded whole: the image reader checks the size.
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    return _ArrayReader(_pillow_array(p, where, limit), where, bands)


def _tiff_raster(p: Path, where: str, bands: Sequence[str] | None,
                 max_pixels: int | None) -> RasterReader:
    """A TIFF's reader, its header parsed once for its layout, samples and tifffile's reader.
    GDAL reads it where installed, but for pages that are bands (GDAL would read the first
    alone) and CMYK inks (GDAL makes them RGB by its own rounding; tifffile keeps them)."""
    with contextlib.ExitStack() as owned:
        tif = parse_tiff(p)
        if not isinstance(tif, Exception):
            owned.callback(tif.close)
        layout, samples = layout_of(tif), samples_of(tif)
        if layout is not None and (problem := layout.problem()) is not None:
            raise ImageError(where, problem)
        rasterio = _rasterio()
        if rasterio is not None and not (samples is not None and samples.cmyk) and not (
                layout is not None and layout.pages_are_bands):
            reader = _rasterio_reader(rasterio, p, where, "GTiff", bands, max_pixels)
            return _as_header_says(reader, samples)
        reader = _tifffile_reader(tif, p, where, bands, max_pixels)
        if isinstance(reader, _TiffReader):
            owned.pop_all()  # its windows are read through ``tif``: closed with the reader
        if rasterio is not None:
            reader = _with_georeferencing(reader, rasterio, p)
        return _as_header_says(reader, samples)


class _UprightReader(RasterReader):
    """A raster read upright by its orientation tag, as the image reader reads it: each window
    is the stored window under it, turned."""

    def __init__(self, stored: RasterReader, orientation: int) -> None:
        info = stored.info
        self._flips = orientation_flips(orientation)
        turned = self._flips[2]
        super().__init__(replace(info, height=info.width if turned else info.height,
                                 width=info.height if turned else info.width),
                         stored.band_index)
        self._stored, self._orientation = stored, orientation

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        self._stored.exact = self.exact
        stored = self._stored.info
        flip_rows, flip_cols, turned = self._flips
        (r0, rows), (c0, cols) = ((col, width), (row, height)) if turned else \
            ((row, height), (col, width))
        r0 = stored.height - r0 - rows if flip_rows else r0
        c0 = stored.width - c0 - cols if flip_cols else c0
        window = self._stored.read(r0, c0, rows, cols)  # errors name the stored window
        return np.ascontiguousarray(upright_array(window, self._orientation))

    def close(self) -> None:
        self._stored.close()


def _as_header_says(reader: RasterReader, samples: TiffSamples | None) -> RasterReader:
    """``reader`` with the TIFF header's premultiplied alpha, CMYK and palette in its info,
    read upright by its orientation tag (unless georeferenced: its grid is its geotransform)."""
    if samples is None:
        return reader
    reader.info = replace(reader.info, alpha=reader.info.alpha and not samples.cmyk,
                          premultiplied=samples.premultiplied, cmyk=samples.cmyk,
                          palette=samples.palette, geotiff=samples.geotiff)
    if samples.orientation == 1 or samples.geotiff or reader.info.transform is not None:
        return reader
    return _UprightReader(reader, samples.orientation)


def raster_info(path: PathLike) -> RasterInfo:
    """The header of the raster at ``path`` (nothing decoded for TIFF and GDAL formats)."""
    with open_raster(path) as r:
        return r.info


def read_raster(path: PathLike, *, bands: Sequence[str] | None = None,
                max_pixels: int | None = DEFAULT_MAX_PIXELS, exact: bool = False) -> np.ndarray:
    """Read a whole raster as an H×W×N array in uint8, uint16 or float32 (the module doc), or,
    ``exact``, every value as stored (:func:`sample_dtype`).

    Raises:
        ImageError: missing, unreadable, corrupt, without the bands asked for, or (an
            :class:`~fcnseg.data.images.ImageTooLargeError`) above ``max_pixels``.
    """
    with open_raster(path, bands=bands, max_pixels=max_pixels, exact=exact) as r:
        return r.read_all()


def grid_problem(image: RasterInfo, label: RasterInfo) -> str | None:
    """Why a label raster does not lie on its image's pixel grid (None when it does): another
    size, or, where both are georeferenced, another CRS or geotransform."""
    if (image.height, image.width) != (label.height, label.width):
        return (f"label raster is {label.width}×{label.height} but its image "
                f"{Path(image.path).name} is {image.width}×{image.height} (W×H)")
    if image.transform is None or label.transform is None:
        return None
    if image.crs != label.crs:  # "none" for a missing CRS, as fcnseg info says it
        return (f"label raster's CRS {label.crs or 'none'} differs from its image's "
                f"{image.crs or 'none'}")
    if not image.transform.almost_equals(label.transform):
        return (f"label raster's geotransform {tuple(label.transform)[:6]} differs from its "
                f"image's {tuple(image.transform)[:6]}: they are not on one pixel grid")
    return None


def nodata_mask(image: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """H×W bool of the pixels without data: every band ``nodata``, or any band NaN (None when
    there are none; :func:`fcnseg.utils.nodata.without_data`'s rule)."""
    missing = without_data(image, nodata, -1)
    return missing if missing is not None and missing.any() else None


def fill_nodata(image: np.ndarray, missing: np.ndarray | None,
                values: Sequence[float]) -> np.ndarray:
    """``image`` (H×W×N, or B×H×W×N with a B×H×W ``missing``) with its pixels without data set
    to ``values``, one per band (the band means, zero to the model, so raw zeros do not leak
    into neighbours' predictions): a float32 copy, or ``image`` where none is missing."""
    if missing is None:
        return image
    out = image.astype(np.float32)
    out[missing] = np.asarray(values, np.float32)
    return out


#: The colour channels (red 0, green 1, blue 2) each band of a picture without ``rgb`` bands
#: is added into, clipped at white: one band grey; two magenta and green, as microscopes show
#: two channels (told apart by colour-blind eyes too, white where both are bright); more as
#: ImageJ composites channels: red, green, blue, grey, cyan, magenta, yellow (no more drawn).
BAND_COLOURS = {1: ((0, 1, 2),), 2: ((0, 2), (1,))}
COMPOSITE_COLOURS = ((0,), (1,), (2,), (0, 1, 2), (1, 2), (0, 2), (0, 1))


def display_rgb(image: np.ndarray, bands: Sequence[str] | None = None,
                rgb: Sequence[str] | None = None) -> np.ndarray:
    """An H×W×N raster as an H×W×3 uint8 picture. 8-bit RGB(A) shows its ``rgb`` bands (names
    among ``bands``; else its first three) as they are. Other data shows its ``rgb`` bands,
    else every band in its :data:`BAND_COLOURS`, each stretched from its 2nd to its 98th
    percentile."""
    image = image if image.ndim == 3 else image[..., None]
    named = rgb is not None and bands is not None
    if named:
        lower = [b.lower() for b in bands]
        index = [lower.index(b.lower()) for b in rgb]
    if image.dtype == np.uint8 and image.shape[2] in (3, 4):
        if not named and image.shape[2] == 3:
            return image
        return np.ascontiguousarray(image[..., index if named else [0, 1, 2]])
    n = image.shape[2]
    drawn = [(i, (k,)) for k, i in enumerate(index)] if named else list(enumerate(
        BAND_COLOURS.get(n) or COMPOSITE_COLOURS[:n]))
    picture = np.zeros((*image.shape[:2], 3), np.uint8)
    for i, channels in drawn:
        band = _stretched(image[..., i])
        for c in channels:
            picture[..., c] += np.minimum(band, 255 - picture[..., c])
    return picture


def _stretched(band: np.ndarray) -> np.ndarray:
    """One band from its 2nd to its 98th percentile to 0-255 (NaN as the 2nd) as uint8, in
    place to keep the memory a few bytes a pixel."""
    plane = band.astype(np.float32)
    finite = plane[np.isfinite(plane)] if band.dtype.kind == "f" else plane
    low, high = np.percentile(finite, (2, 98)) if finite.size else (0.0, 0.0)
    del finite
    scale = 255.0 / (high - low) if high > low else 0.0
    work = plane.astype(np.result_type(plane, low, scale))
    del plane
    np.nan_to_num(work, copy=False, nan=low)
    work -= low
    work *= scale
    np.clip(work, 0, 255, out=work)
    return np.round(work, out=work).astype(np.uint8)
