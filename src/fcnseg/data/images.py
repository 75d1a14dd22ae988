"""This is the one image reader, so that the same file gives the same pixels everywhere.
Training, ``check-data``, ``predict`` and ``serve`` all read through it:

- **Orientation.** The EXIF orientation tag turns the image upright, as viewers and annotation
  tools show it; masks too, which must have the upright image's size.
- **Transparency.** Transparent pixels are blended with white (:data:`ALPHA_BACKGROUND`, what
  a viewer shows behind them) by their alpha; premultiplied TIFF alpha as colour + white ×
  (1 - alpha).
- **Other modes.** Grey, palette and CMYK become RGB; 16-bit grey or colour is divided by 257
  (:func:`integers_to_rgb`, as ``predict``'s raster tiles); float grey is scaled by
  :func:`floats_to_rgb`.
- **Bands.** Grey or RGB, with or without a marked alpha band; 8-bit CMYK; one band of
  float32: others are refused in one line (:func:`colour_bands_problem`).
- **Size.** Pixel counts above a limit are refused before decoding (decompression bombs).
- **Formats.** Only :data:`IMAGE_FORMATS` are read, whatever the file's name: Pillow never
  tries its other plugins (EPS runs Ghostscript); anything else is refused in one line
  (a HEIC photo says so, and how to convert it).

:func:`load_image` is the reader; :func:`open_upright` gives the decoded, upright PIL image
(masks), :func:`read_samples` the values as stored (HHA, depth, a raster's bands).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, features

from fcnseg.utils.quiet import ignoring
from fcnseg.utils.typing import PathLike

#: Default pixel limit: Pillow's own decompression-bomb threshold (about 89 million pixels).
DEFAULT_MAX_PIXELS: int = int(Image.MAX_IMAGE_PIXELS or 89_478_485)

#: Whether this Pillow decodes AVIF (recent Pillow wheels, built with libavif).
AVIF_READ: bool = bool(features.check("avif"))

#: The image formats read: the only Pillow plugins tried ("JPEG" includes MPO, "GIF" its first
#: frame, "PPM" covers PBM and PGM; "AVIF" where this Pillow decodes it).
IMAGE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF", "PPM",
                                  *(("AVIF",) if AVIF_READ else ()))

#: ``(magic, GDAL driver, name)``: what the raster reader hands to GDAL by the first bytes
#: (never another driver: VRT files would read other files).
RASTER_FORMATS: tuple[tuple[bytes, str, str], ...] = (
    (b"II*\x00", "GTiff", "TIFF"), (b"MM\x00*", "GTiff", "TIFF"),
    (b"II+\x00", "GTiff", "BigTIFF"), (b"MM\x00+", "GTiff", "BigTIFF"),
    (b"\x00\x00\x00\x0cjP  ", "JP2OpenJPEG", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JP2OpenJPEG", "JPEG 2000"),
)

#: The first bytes of a TIFF (classic and BigTIFF, either byte order).
TIFF_MAGIC: tuple[bytes, ...] = tuple(magic for magic, driver, _ in RASTER_FORMATS
                                      if driver == "GTiff")

# The first bytes of formats that are refused by name (the message says what the file is).
_KNOWN_OTHERS: tuple[tuple[bytes, str], ...] = (
    (b"%!PS", "a PostScript/EPS file"),
    (b"\xc5\xd0\xd3\xc6", "an EPS file"),
    (b"%PDF", "a PDF file"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 file"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream"),
    (b"8BPS", "a Photoshop file"),
)

#: The first bytes of the accepted formats: such data that cannot be opened is corrupt.
_ACCEPTED_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
    *((b"P%d\n" % n, "PPM") for n in range(1, 7)), *((b"P%d " % n, "PPM") for n in range(1, 7)),
)


#: File suffixes of camera raw formats, never read as pictures: several are TIFFs inside, whose
#: first image is sensor data (or a small preview) that would be segmented as a photo.
CAMERA_RAW_SUFFIXES = frozenset({".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf",
                                 ".rw2", ".raw"})
#: The TIFF tag only a DNG carries (DNGVersion), whatever the file's name.
DNG_VERSION_TAG = 50706
#: What to do with a camera raw file.
CAMERA_RAW_ADVICE = ("export it as JPEG or TIFF from the raw converter (Lightroom, darktable, "
                     "RawTherapee, ...), or use the JPEG the camera saved beside it")


def _first_ifd_tags(source: Any, head: bytes) -> set[int]:
    """The tag numbers of a TIFF's first IFD, read from its entries alone (no tag value, no
    TIFF library: every TIFF read asks); empty where they cannot be read."""
    order = "little" if head[:2] == b"II" else "big"
    big = head[2:4] in (b"+\x00", b"\x00+")  # BigTIFF
    count_size, entry_size = (8, 20) if big else (2, 12)
    offset = int.from_bytes(head[8:16] if big else head[4:8], order)
    count = int.from_bytes(file_head(source, count_size, offset), order)
    # A file cut short reads fewer bytes: no whole entry past its end.
    entries = file_head(source, min(count, 4096) * entry_size, offset + count_size)
    return {int.from_bytes(entries[i:i + 2], order)
            for i in range(0, len(entries) - entry_size + 1, entry_size)}


def camera_raw_problem(source: Any) -> str | None:
    """The line refusing a camera raw file, a path or a seekable stream: a DNG or CR2 by its
    content, others (NEF, ...) by their suffix; None for any other file."""
    kind = None
    if isinstance(source, Path) and source.suffix.lower() in CAMERA_RAW_SUFFIXES:
        kind = source.suffix[1:].upper()
    elif (head := file_head(source, 16))[:4] in TIFF_MAGIC and head[8:10] == b"CR":
        kind = "CR2"  # Canon's: a TIFF with its own marker after the header
    elif head[:4] in TIFF_MAGIC and DNG_VERSION_TAG in _first_ifd_tags(source, head):
        kind = "DNG"
    if kind is None:
        return None
    return f"a camera raw file ({kind}), which fcnseg does not read: {CAMERA_RAW_ADVICE}"


#: The ISO base media file ``ftyp`` brands of AVIF and of HEIC/HEIF (the iPhone's default
#: photo format); ``mif1``/``msf1`` are either, told apart by the compatible brands after them.
_AVIF_BRANDS = (b"avif", b"avis")
_HEIC_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs")
_HEIF_BRANDS = (b"mif1", b"msf1", b"mif2")

#: What to do with a HEIC photo: fcnseg reads no HEIC (Pillow needs a plugin for it, whose
#: wheels bundle GPL code).
HEIC_ADVICE = ("convert it to JPEG (on the iPhone: Settings > Camera > Formats > Most "
               "Compatible, for later photos; on a computer e.g. heif-convert from libheif, "
               "macOS Preview's Export or sips -s format jpeg)")


def ftyp_format(head: bytes) -> str | None:
    """``"AVIF"`` or ``"HEIC"`` for data whose ISO ``ftyp`` box (in ``head``, its first 32 or
    more bytes) names that format's brand, else None."""
    if head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[:4], "big")
    major, compatible = head[8:12], head[16:max(16, min(size, len(head)))]
    brands = [major, *(compatible[k:k + 4] for k in range(0, len(compatible) - 3, 4))]
    if any(b in _AVIF_BRANDS for b in brands):
        return "AVIF"
    if any(b in _HEIC_BRANDS for b in brands) or major in _HEIF_BRANDS:
        return "HEIC"
    return None


def signature_format(head: bytes) -> str | None:
    """The accepted image format whose signature ``head`` starts with (``"PNG"`` ...), else
    None (BMP's two-letter signature is too weak to tell)."""
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WEBP"
    if AVIF_READ and ftyp_format(head) == "AVIF":
        return "AVIF"
    return next((name for magic, name in _ACCEPTED_SIGNATURES if head.startswith(magic)), None)


#: The colour transparent pixels are composited on, everywhere images are read.
ALPHA_BACKGROUND: tuple[int, int, int] = (255, 255, 255)

#: The EXIF orientation tag, and how each of its values turns the stored pixels upright.
EXIF_ORIENTATION_TAG = 0x0112
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

ImageSource = PathLike | bytes | bytearray | memoryview | Image.Image | IO[bytes]


class ImageError(ValueError):
    """An input cannot be used as an image; the message names the source and the problem."""

    def __init__(self, source: object, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class ImageTooLargeError(ImageError):
    """An image has more pixels than allowed (a decompression bomb?): ``width`` × ``height``
    over ``limit`` (None where not known), for callers naming their own option."""

    width: int | None = None
    height: int | None = None
    limit: int | None = None

    def raised_by(self, how: str) -> ImageTooLargeError:
        """This refusal saying ``how`` raises the limit (a caller's option: ``fcnseg predict
        --max-pixels``), where its size is known; else itself."""
        if self.width is None or self.height is None or self.limit is None:
            return self
        return too_large_error(self.source, self.width, self.height, self.limit,
                               f" against decompression bombs ({how})")


def too_large_error(where: str, width: int, height: int, limit: int,
                    ending: str) -> ImageTooLargeError:
    """The :class:`ImageTooLargeError` of a ``width``×``height`` image over ``limit`` pixels,
    its message ended by ``ending``."""
    error = ImageTooLargeError(where, f"{width}×{height} = {width * height} pixels is more "
                                      f"than the limit of {limit}{ending}")
    error.width, error.height, error.limit = width, height, limit
    return error


def _stream(source: Any) -> Any:
    """A path as a Path, encoded bytes as a stream, a stream (or PIL image) as it is."""
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source))
    return Path(source) if isinstance(source, str | os.PathLike) else source


def _source_name(source: Any, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, str | os.PathLike):
        return str(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return "<image bytes>"
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<PIL image>"
    return str(getattr(source, "name", "<image stream>"))


#: NewSubfileType bits of a TIFF page that is no image of its own: an overview or a mask.
_REDUCED_OR_MASK = 0b101


def tiff_images(tif: Any) -> int:
    """The full-resolution images of a parsed TIFF (:func:`parse_tiff`): not overviews, masks,
    or damaged directories without pixels; 1 for a header tifffile refused."""
    with contextlib.suppress(Exception):  # a bad header is for the decoder to report
        return sum(not int(p.subfiletype) & _REDUCED_OR_MASK and bool(np.prod(p.shape or (0,)))
                   for p in tif.pages[:])  # [:] keeps the pages before a damaged one
    return 1


def multi_image_problem(images: int, axes: str = "", shape: tuple[int, ...] = ()) -> str:
    """The line for a file of several images (readers would take the first), by its tifffile
    axes where known; channels (ImageJ's C), one a page, are one image's bands."""
    stack = [(a, n) for a, n in zip(axes, shape, strict=False) if a in _STACK_AXES and n > 1]
    if not stack or all(a in "QI" for a, _ in stack):
        return (f"holds {images} images (TIFF pages); only files of one image are read: "
                f"write each image to a file of its own")
    found = " of ".join(f"{n} {_STACK_AXES[a]}" for a, n in stack if a != "C")
    channels = next((n for a, n in stack if a == "C"), None)
    where = f"TIFF axes {axes}, shape {'×'.join(map(str, shape))}"
    if not found:  # channels alone: one image, which only a model of declared bands reads
        return (f"holds {channels} channels, one a page ({where}): the bands of one image, "
                f"read by a model of declared bands (dataset.yaml `bands:`); a colour model "
                f"reads the RGB or grey samples of one page")
    each = next(_STACK_AXES[a] for a, _ in stack if a != "C")
    return (f"holds {found}{f' of {channels} channels each' if channels else ''} ({where}); "
            f"only files of one image are read"
            f"{' (its channels, one a page, as its bands)' if channels else ''}: write each of "
            f"the {each} to a file of its own")


#: The stack axes of a TIFF (tifffile's letters) in the words messages use.
_STACK_AXES = {"T": "time points", "Z": "z-slices", "C": "channels", "Q": "images",
               "I": "images", "R": "angles", "H": "phases", "E": "lambdas", "V": "views",
               "L": "exposures", "P": "positions", "A": "angles", "M": "mosaic tiles"}


def parse_tiff(source: Any) -> Any:
    """tifffile's TiffFile of a path or a seekable stream (read from its start), or the error
    tifffile raised on its header: the one parse of a TIFF's header that each read makes, whose
    every question (samples, layout, pages, pixels) it answers. The caller closes a TiffFile."""
    import tifffile

    try:
        if not isinstance(source, str | os.PathLike):
            source.seek(0)
        return tifffile.TiffFile(source)
    except Exception as e:  # noqa: BLE001 - a bad header is for the decoder to report
        return e


@contextlib.contextmanager
def tiff_header(source: Any) -> Iterator[Any]:
    """:func:`parse_tiff` of ``source``, closed on leaving (a stream is left at its start)."""
    tif = parse_tiff(source)
    try:
        yield tif
    finally:
        if not isinstance(tif, Exception):
            tif.close()
        if not isinstance(source, str | os.PathLike):
            with contextlib.suppress(Exception):
                source.seek(0)


def _refuse_stack(tif: Any, where: str) -> None:
    """An ImageError where a parsed TIFF holds several images, its axes named where known."""
    if (images := tiff_images(tif)) > 1:
        stack: tuple[str, tuple[int, ...]] | tuple[()] = ()
        with contextlib.suppress(Exception):  # a bad series: the count of images alone
            stack = (str(tif.series[0].axes), tuple(int(n) for n in tif.series[0].shape))
        raise ImageError(where, multi_image_problem(images, *stack))


#: TIFF ExtraSamples values that mark a sample as alpha: associated (premultiplied) and
#: unassociated. Any other extra sample is a band of data.
ALPHA_EXTRA_SAMPLES: tuple[int, ...] = (1, 2)
#: TIFF Photometric "separated" (CMYK inks) and "palette" (indices into a colour map).
_SEPARATED, _PALETTE = 5, 3


def colour_bands_problem(bands: int, dtype: Any, alpha: bool = False,
                         cmyk: bool = False) -> str | None:
    """Why ``bands`` bands of ``dtype`` (the last alpha where ``alpha``; inks where ``cmyk``)
    are no colour image, one line after the file's name, or None: grey or RGB of 8 or 16
    bits, with or without marked alpha; grey of 16- or 32-bit integers; 8-bit CMYK; one band
    of float32. The one rule of the image reader, ``Segmenter``, ``serve`` and ``predict``:
    a band not marked alpha is data, which a colour model cannot take."""
    dtype = np.dtype(dtype)
    if cmyk:
        fits = bands == 4 and not alpha and dtype == np.uint8
    elif dtype.kind == "f":
        fits = bands == 1 and dtype == np.float32
    elif _grey_only(dtype):
        fits = bands == 1
    else:  # b: 1-bit
        fits = bands - alpha in (1, 3) and (dtype.kind == "b" or dtype in (np.uint8, np.uint16))
    if fits:
        return None
    # Where one band more than grey or RGB is there, the line says alpha is read when marked.
    unmarked = not alpha and not cmyk and bands - 1 in (1, 3)
    marked = " (the last one alpha)" if alpha else " (none marked alpha)" if unmarked else ""
    also = ", and a band the file marks as alpha" if unmarked else ""
    also += ("; or 4 bands of 8-bit CMYK" if cmyk else
             "; or 1 band of float32" if dtype.kind == "f" else
             "; or 1 band of 16- or 32-bit integers" if _grey_only(dtype) else "")
    return (f"{bands} band(s) of {dtype}{' as CMYK' if cmyk else ''}{marked}, but the model "
            f"takes RGB or grey (1 or 3 bands of 8 or 16 bits{also}): segment it with a model "
            f"trained on these bands")


def _grey_only(dtype: Any) -> bool:
    """Pillow's mode "I" (int16, int32, uint32): one band, scaled as 16-bit grey."""
    return np.dtype(dtype) in (np.int16, np.int32, np.uint32)


@dataclass(frozen=True)
class TiffSamples:
    """A TIFF's first image by its header: ``bands`` samples of ``dtype``, the last alpha
    (``premultiplied``) or CMYK inks; a palette's N×3 8-bit colour map; its orientation tag
    (1 to 8), stored size, and whether GeoTIFF tags put its pixels on a map grid."""

    bands: int
    dtype: np.dtype
    alpha: bool = False
    premultiplied: bool = False
    cmyk: bool = False
    palette: np.ndarray | None = field(default=None, compare=False, repr=False)
    orientation: int = 1
    width: int = 0
    height: int = 0
    geotiff: bool = False

    def bands_problem(self) -> str | None:
        """:func:`colour_bands_problem` of these samples."""
        return colour_bands_problem(self.bands, self.dtype, self.alpha, self.cmyk)

    @property
    def integer_grey(self) -> bool:
        """One band of 16- or 32-bit integers: read by tifffile (Pillow reads uint32 as signed,
        or not at all)."""
        return self.bands == 1 and _grey_only(self.dtype)


def tiff_samples(source: Any) -> TiffSamples | None:
    """The :class:`TiffSamples` of a TIFF (a path or a seekable stream); None for a header
    tifffile cannot read (the decoder says what is wrong)."""
    with tiff_header(source) as tif:
        return samples_of(tif)


def samples_of(tif: Any) -> TiffSamples | None:
    """:func:`tiff_samples` of a header :func:`parse_tiff` parsed."""
    with contextlib.suppress(Exception):  # a bad header is for the decoder to report
        page = tif.pages[0]
        extras = tuple(int(e) for e in page.extrasamples)
        alpha = bool(extras) and extras[-1] in ALPHA_EXTRA_SAMPLES
        if page.dtype is None:
            return None
        palette = None
        if int(page.photometric) == _PALETTE and page.colormap is not None:
            # 3 × N 16-bit values as N×3 8-bit RGB, their high bytes, as Pillow reads them
            table = np.asarray(page.colormap, dtype=np.uint16).reshape(3, -1)
            palette = np.ascontiguousarray((table >> 8).T, dtype=np.uint8)
        tag, orientation = page.tags.get(EXIF_ORIENTATION_TAG), 1
        with contextlib.suppress(TypeError, ValueError):
            orientation = int(tag.value) if tag is not None else 1
        return TiffSamples(int(page.samplesperpixel), np.dtype(page.dtype), alpha,
                           alpha and extras[-1] == 1,  # associated alpha: premultiplied
                           int(page.photometric) == _SEPARATED, palette,
                           orientation if orientation in _UPRIGHT else 1,
                           int(page.imagewidth), int(page.imagelength),
                           any(t in page.tags for t in _GEOTIFF_TAGS))
    return None


#: GeoTIFF's tags (ModelPixelScale, ModelTiepoint, ModelTransformation, GeoKeyDirectory).
_GEOTIFF_TAGS = (33550, 33922, 34264, 34735)


def upright_array(a: np.ndarray, orientation: int) -> np.ndarray:
    """A view of H×W(×N) stored pixels turned upright by an EXIF ``orientation`` (1 to 8), as
    Pillow's transposes turn an image."""
    rows, cols, transposed = orientation_flips(orientation)
    a = a[::-1 if rows else 1, ::-1 if cols else 1]
    return a.swapaxes(0, 1) if transposed else a


def orientation_flips(orientation: int) -> tuple[bool, bool, bool]:
    """Whether an ``orientation`` (1 to 8) reverses the stored rows, the stored columns, and
    swaps rows and columns."""
    return orientation in (3, 4, 6, 7), orientation in (2, 3, 7, 8), orientation >= 5


def check_pixels(where: str, width: int, height: int, max_pixels: int | None,
                 advice: str = "") -> None:
    """Raise :class:`ImageTooLargeError` naming ``where`` when an image of ``width``×``height``
    has more than ``max_pixels`` pixels (None: no limit); ``advice`` ends the message."""
    if max_pixels is not None and width * height > max_pixels:
        raise too_large_error(where, width, height, max_pixels,
                              f" (a decompression bomb?{advice})")


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation of a loaded image: 1 (as stored) to 8; 1 when absent or broken."""
    with contextlib.suppress(Exception):  # a broken EXIF block must not lose the pixels
        value = int(img.getexif().get(EXIF_ORIENTATION_TAG, 1))
        return value if value in _UPRIGHT else 1
    return 1


def file_orientation(path: PathLike) -> int:
    """The EXIF orientation of the image file at ``path`` (1 when absent or unreadable)."""
    with contextlib.suppress(Exception), Image.open(path, formats=IMAGE_FORMATS) as img:
        img.load()  # a PNG may keep its EXIF after the pixels
        return exif_orientation(img)
    return 1


#: The bytes a whole file of each format ends with: a PNG's IEND chunk, a JPEG's EOI marker.
_FILE_ENDINGS = {".png": b"IEND\xaeB`\x82", ".jpg": b"\xff\xd9", ".jpeg": b"\xff\xd9"}


def looks_cut_short(path: PathLike) -> bool:
    """Whether a PNG or JPEG file does not end as a whole one does, by its last bytes only (a
    hint: decode to be sure); False for other formats and unopenable files."""
    ending = _FILE_ENDINGS.get(Path(path).suffix.lower())
    if ending is None:
        return False
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - len(ending)))
            return f.read() != ending
    except OSError:
        return False


def upright_size(path: PathLike) -> tuple[int, int]:
    """``(width, height)`` of the image file at ``path`` as shown (EXIF orientation applied),
    from the header. Raises OSError (``UnidentifiedImageError``: no image of
    :data:`IMAGE_FORMATS`), or ImageTooLargeError where Pillow refuses a bomb."""
    with _open_header(path, path) as img:
        return header_upright_size(img)


def header_upright_size(img: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of an opened image as shown (EXIF orientation 6 turns 3000×4000
    into 4000×3000)."""
    w, h = img.size
    if img.format == "PNG" and "exif" not in img.info:
        return w, h  # Pillow would decode the whole PNG looking for a late EXIF block
    return (h, w) if exif_orientation(img) in (5, 6, 7, 8) else (w, h)


def _open_header(source: Any, where: Any, max_pixels: int | None = None) -> Image.Image:
    """``source`` opened by Pillow, not decoded; a size over Pillow's limit is an
    :class:`ImageTooLargeError` naming ``where`` and ``max_pixels``."""
    try:
        # Pillow only warns between its limit and twice it; the callers decide on size.
        with ignoring(Image.DecompressionBombWarning):
            # Only the allowed plugins are tried: no other decoder ever sees the data.
            return Image.open(source, formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as e:
        size = bomb_size(source)
        if size is not None:
            check_pixels(where, *size, max_pixels)
        raise ImageTooLargeError(where, f"refused as a decompression bomb ({e})") from None


def bomb_size(source: Any) -> tuple[int, int] | None:
    """``(width, height)`` of a file Pillow refuses as a bomb, read by its plugin without the
    size check; None when no plugin of :data:`IMAGE_FORMATS` reads the header."""
    Image.init()
    head = file_head(source)
    for name in IMAGE_FORMATS:
        factory, accept = Image.OPEN[name]
        taken = accept is None or accept(head)
        if not taken or isinstance(taken, str):  # a string: Pillow's reason not to read it
            continue
        with contextlib.ExitStack() as stack, contextlib.suppress(Exception):
            fp = stack.enter_context(open(source, "rb")) if isinstance(source, Path) else source
            fp.seek(0)
            img = stack.enter_context(factory(fp, ""))
            return int(img.size[0]), int(img.size[1])
    return None


def _upright(img: Image.Image) -> Image.Image:
    method = _UPRIGHT.get(exif_orientation(img))
    return img if method is None else img.transpose(method)


def image_format_problem(head: bytes) -> str:
    """Why data starting with ``head`` is refused: what it is, where its first bytes say so."""
    if not head:  # a download or copy cut short before its first byte
        return "an empty file (0 bytes): nothing to read"
    kind = next((what for magic, what in _KNOWN_OTHERS if head.startswith(magic)), None)
    accepted = ", ".join(IMAGE_FORMATS)
    photo = ftyp_format(head)
    if photo == "HEIC":
        return f"a HEIC/HEIF photo (the iPhone's default format), which is not read: {HEIC_ADVICE}"
    if photo == "AVIF" and not AVIF_READ:
        return ("an AVIF image, which this installation's Pillow does not decode: install a "
                "Pillow with AVIF support (pip install -U pillow), or convert it to JPEG")
    if photo == "AVIF":  # libavif refuses sizes over its limits before any pixel
        return ("an AVIF image that cannot be opened: corrupt, or larger than the AVIF "
                "decoder allows (libavif: 32768 pixels a side, 16384×16384 in all)")
    if kind is not None:
        return f"{kind}, not an image format that is read (accepted: {accepted})"
    return f"not an image in an accepted format ({accepted})"


def file_head(stream: Any, size: int = 16, offset: int = 0) -> bytes:
    """``size`` bytes at ``offset`` (default: the first bytes) of a file path or seekable
    stream, left where it was (b"" when they cannot be read)."""
    with contextlib.suppress(Exception):
        if isinstance(stream, str | os.PathLike):
            with open(stream, "rb") as f:
                f.seek(offset)
                return f.read(size)
        at = stream.tell()
        try:
            stream.seek(offset)
            return bytes(stream.read(size))
        finally:
            stream.seek(at)
    return b""


@contextlib.contextmanager
def _checked(source: ImageSource, where: str) -> Iterator[tuple[Any, Any, TiffSamples | None]]:
    """``source`` as a Path or stream, refused in one line when missing, a camera raw file or a
    TIFF of bands no colour model takes (as fcnseg predict refuses it); with a TIFF's header,
    parsed once (:func:`parse_tiff`), and its samples (both None for other files)."""
    stream = _stream(source)
    if isinstance(stream, Path) and not stream.is_file():
        raise ImageError(where, "no such file" if not stream.exists() else "not a file")
    if problem := camera_raw_problem(stream):
        raise ImageError(where, problem)
    if file_head(stream, 2) not in (b"II", b"MM"):  # Pillow reads TIFFs of either magic order
        yield stream, None, None
        return
    with tiff_header(stream) as tif:
        samples = samples_of(tif)
        if samples is not None and (problem := samples.bands_problem()):
            raise ImageError(where, problem)
        yield stream, tif, samples


@contextlib.contextmanager
def _opened(stream: Any, where: str, max_pixels: int | None, tif: Any) -> Any:
    """A :func:`_checked` source opened by Pillow, its pixels left to the caller; failures are
    ImageErrors (a TIFF's stack named by its header ``tif``)."""
    # Pillow refuses twice its limit outright: raised to a larger max_pixels, never lowered.
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels is not None \
            and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        img = _open_header(stream, where, max_pixels)
    except (ImageTooLargeError, MemoryError):
        raise
    except Image.UnidentifiedImageError:
        raise ImageError(where, image_format_problem(file_head(stream, 64))) from None
    except Exception as e:  # noqa: BLE001 - a corrupt header fails in format-specific ways
        raise ImageError(where, f"cannot be opened, corrupt header "
                                f"({type(e).__name__}: {e})") from None
    with img:
        check_pixels(where, *header_upright_size(img), max_pixels)  # sized as it is shown
        if img.format == "TIFF":
            _refuse_stack(tif, where)
        yield img


def decoded(decode: Callable[[], Any], where: str) -> Any:
    """``decode()``, any failure but running out of memory an :class:`ImageError`."""
    try:
        return decode()
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - codecs raise many kinds (struct.error, ...)
        raise ImageError(where, f"cannot be decoded, truncated or corrupt "
                                f"({type(e).__name__}: {e})") from None


#: The first bytes of every PNG, and its IHDR colour types of grey and alpha, RGB and RGBA.
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = (2, 4, 6)
#: Pillow's raw mode for 16-bit colour PNGs (high bytes) and the one keeping the low bytes.
_PNG_LOW_BYTES = {"RGB;16B": "RGB;16L", "RGBA;16B": "RGBA;16L"}


def png_depth_and_colour_type(head: bytes) -> tuple[int, int] | None:
    """The bit depth and colour type in a PNG's first 26 bytes (IHDR); None for others."""
    if len(head) == 26 and head.startswith(PNG_MAGIC) and head[12:16] == b"IHDR":
        return head[24], head[25]
    return None


def sixteen_bit_colour_png(source: Any) -> bool:
    """Whether ``source`` is a PNG of 16-bit grey and alpha or RGB(A) samples, whose high
    bytes alone Pillow decodes (:func:`read_samples` reads them whole)."""
    if isinstance(source, Image.Image):
        return False
    if isinstance(source, bytes | bytearray | memoryview):
        head = bytes(source[:26])
    else:
        head = file_head(_stream(source), 26)
    ihdr = png_depth_and_colour_type(head)
    return ihdr is not None and ihdr[0] == 16 and ihdr[1] in _PNG_COLOUR_TYPES


def _png_samples(img: Image.Image, source: Any, where: str, max_pixels: int | None
                 ) -> np.ndarray:
    """The uint16 samples of an opened 16-bit colour PNG: Pillow's decoder run twice, for
    the high bytes, then the low bytes; grey and alpha in one run, as raw bytes."""
    tile = img.tile[0] if len(img.tile) == 1 else None
    if tile is not None and tile[3] == "LA;16B" and img.mode == "RGBA":
        # No low-byte reading of these: each pixel's 4 bytes as 8-bit RGBA are its 2 samples.
        img.tile = [_with_rawmode(tile, "RGBA")]
        decoded(img.load, where)
        return np.asarray(img).view(">u2").astype(np.uint16)
    low_mode = _PNG_LOW_BYTES.get(tile[3]) if tile is not None else None
    if tile is None or low_mode is None or img.mode not in ("RGB", "RGBA"):
        raise ImageError(where, "a PNG of 16 bits per colour sample, which this Pillow does not "
                                "decode at full depth: save it as a 16-bit TIFF")
    decoded(img.load, where)
    # Each decode goes straight into its half of the samples: no uint16 temporary (a bomb at
    # the pixel limit would take several times its samples' size).
    samples = np.empty((img.height, img.width, len(img.getbands())), np.uint16)
    halves = samples.view(np.uint8).reshape(*samples.shape, 2)
    high_byte = 1 if sys.byteorder == "little" else 0  # of each native uint16
    halves[..., high_byte] = np.asarray(img)
    with _open_header(_stream(source), where, max_pixels) as low_img:
        low_img.tile = [_with_rawmode(tile, low_mode)]
        decoded(low_img.load, where)
        if low_img.size != img.size or low_img.mode != img.mode:
            raise ImageError(where, "cannot be decoded: its two reads disagree")
        halves[..., 1 - high_byte] = np.asarray(low_img)
    return samples


def _with_rawmode(tile: Any, rawmode: str) -> Any:
    return (tile._replace(args=rawmode) if hasattr(tile, "_replace")
            else (tile[0], tile[1], tile[2], rawmode))


def read_samples(source: ImageSource, *, name: str | None = None,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An image's values as stored (16-bit stays 16-bit), upright: for data (HHA, depth, a
    raster's bands). Raises :class:`ImageError` (or its ImageTooLargeError) naming it."""
    if not sixteen_bit_colour_png(source):
        return np.asarray(open_upright(source, name=name, max_pixels=max_pixels))
    where = _source_name(source, name)
    with _checked(source, where) as (stream, tif, _), \
            _opened(stream, where, max_pixels, tif) as img:
        samples = _png_samples(img, source, where, max_pixels)
        return np.ascontiguousarray(upright_array(samples, exif_orientation(img)))


def open_upright(source: ImageSource, *, name: str | None = None,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image file (or bytes, a stream), upright and detached from the file. Raises
    :class:`ImageError` (or its ImageTooLargeError) naming the source."""
    where = _source_name(source, name)
    with _checked(source, where) as (stream, tif, _), \
            _opened(stream, where, max_pixels, tif) as img:
        upright = _decoded_upright(img, tif, where)
        # A copy keeps the decoded pixels once the file (and so ``img``) is closed.
        return img.copy() if upright is img else upright


def load_image(source: ImageSource, *, name: str | None = None,
               max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image as an upright H×W×3 uint8 RGB array (the rules are in the module doc).

    Args:
        source: a file path, the encoded bytes of an image, a binary file object or a PIL image.
        name: how to name the source in error messages (default: the path, or a placeholder).
        max_pixels: refuse images with more pixels than this before decoding them
            (``None``: no limit beyond Pillow's own).

    Raises:
        ImageError: the source is missing, not an image, truncated or corrupt.
        ImageTooLargeError: the image has more than ``max_pixels`` pixels.
    """
    where = _source_name(source, name)
    if isinstance(source, Image.Image):
        check_pixels(where, *source.size, max_pixels)
        return pil_to_rgb(_upright(source), where)
    if sixteen_bit_colour_png(source):  # divided by 257, as a 16-bit TIFF's samples
        samples = read_samples(source, name=where, max_pixels=max_pixels)
        return integers_to_rgb(samples, alpha=samples.shape[-1] in (2, 4))
    with _checked(source, where) as (stream, tif, samples):
        if samples is not None and _read_by_tifffile(samples):
            return _tiff_rgb(tif, samples, where, max_pixels)
        with _opened(stream, where, max_pixels, tif) as img:
            return pil_to_rgb(_decoded_upright(img, tif, where), where)


#: Pillow modes of one band whose turned TIFFs :func:`_decoded_upright` reads by tifffile.
_GREY_MODES = ("L", "I;16", "I;16B", "I;16L", "I", "F")


def _decoded_upright(img: Image.Image, tif: Any, where: str) -> Image.Image:
    """``img`` decoded and upright; a one-band TIFF whose orientation swaps rows and columns
    through tifffile, from its header ``tif`` (Pillow scrambles an uncompressed one)."""
    if img.format == "TIFF" and img.mode in _GREY_MODES and \
            (orientation := exif_orientation(img)) >= 5:
        pixels = decoded(lambda: _first_tiff_page(tif), where)
        if pixels.ndim == 3 and pixels.shape[2] == 1:
            pixels = pixels[..., 0]
        if pixels.ndim == 2:
            return Image.fromarray(np.ascontiguousarray(upright_array(pixels, orientation)))
    decoded(img.load, where)
    return _upright(img)


def _read_by_tifffile(samples: TiffSamples) -> bool:
    """Whether a TIFF is read by tifffile, as predict's tiles: grey of 16- or 32-bit integers
    (Pillow reads uint32 as signed, or not at all), colour wider than 8 bits (Pillow keeps the
    high byte), alpha, CMYK."""
    if samples.dtype.kind not in "ui" or samples.palette is not None:
        return False
    wide_colour = samples.bands - samples.alpha == 3 and samples.dtype.itemsize > 1
    return samples.integer_grey or samples.alpha or samples.cmyk or wide_colour


def _tiff_rgb(tif: Any, samples: TiffSamples, where: str, max_pixels: int | None) -> np.ndarray:
    """:func:`load_image` of a TIFF :func:`_read_by_tifffile` (Pillow opens none of it)."""
    check_pixels(where, samples.width, samples.height, max_pixels)
    _refuse_stack(tif, where)
    pixels = decoded(lambda: _first_tiff_page(tif), where)
    rgb = integers_to_rgb(pixels, samples.alpha, premultiplied=samples.premultiplied,
                          cmyk=samples.cmyk)
    return np.ascontiguousarray(upright_array(rgb, samples.orientation))


def _first_tiff_page(tif: Any) -> np.ndarray:
    """A parsed TIFF's first page as H×W×S, decoded by tifffile (or its header's error)."""
    if isinstance(tif, Exception):
        raise tif
    page = tif.pages[0]
    pixels = page.asarray()
    separate = int(page.planarconfig) == 2  # PLANARCONFIG_SEPARATE: S×H×W
    return np.moveaxis(pixels, 0, -1) if separate else pixels


def pil_to_rgb(img: Image.Image, where: str = "<PIL image>") -> np.ndarray:
    """A decoded PIL image as an H×W×3 uint8 RGB array, transparency composited on white."""
    mode = img.mode
    if mode == "RGB":
        return np.array(img, dtype=np.uint8)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return integers_to_rgb(np.asarray(img))
    if mode == "F":  # floats in [0, 1] scaled to 0-255
        a = np.asarray(img, dtype=np.float64)
        return floats_to_rgb(a, float_scale(float(np.nanmax(a, initial=0.0))))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
            mode in ("P", "L", "RGB") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        return np.array(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8)
    try:
        return np.array(img.convert("RGB"), dtype=np.uint8)
    except (ValueError, OSError) as e:
        raise ImageError(where, f"image mode {mode!r} cannot be converted to RGB ({e})") from None


#: What a 16-bit value is divided by to become 8 bits: 65535 / 257 = 255.
SIXTEEN_TO_EIGHT_BITS = 257.0


def integers_to_rgb(values: np.ndarray, alpha: bool = False, *, premultiplied: bool = False,
                    cmyk: bool = False) -> np.ndarray:
    """Integer pixels (H×W or ...×1 grey, ×3 RGB, ×4 CMYK) as the 8-bit RGB a colour model
    takes: 8 bits as they are, wider divided by 257 and rounded, grey repeated; the one rule
    of the image reader and predict's tiles, so training and prediction see the same input.

    ``alpha``: the last band is composited on :data:`ALPHA_BACKGROUND` (colour × alpha +
    background × (1 - alpha); ``premultiplied``: colour + ...); ``cmyk``: 8-bit inks, made
    RGB as Pillow does. In integers: no quotient is halfway (257 and alpha maxima are odd)."""
    if alpha:
        return _composited(values, premultiplied)
    if cmyk:
        return cmyk_to_rgb(values)
    if values.ndim == 2:
        values = values[..., None]
    if values.dtype != np.uint8:
        values = _eight_bits(values)
    if values.shape[-1] == 1:
        values = np.repeat(values, 3, axis=-1)
    return np.ascontiguousarray(values)


def _eight_bits(values: np.ndarray) -> np.ndarray:
    """Integer samples divided by 257, rounded and clipped to 0-255, as uint8."""
    if values.dtype.kind not in "ui":  # booleans: as float64 arithmetic gives them
        return np.zeros(values.shape, np.uint8)
    limits = np.iinfo(values.dtype)
    if limits.min < 0 or limits.max > 65535:
        values = np.clip(values, max(limits.min, 0), min(limits.max, 65535))
    wide = values.astype(np.uint32)
    wide += 128
    wide //= 257
    return wide.astype(np.uint8)


def _composited(values: np.ndarray, premultiplied: bool) -> np.ndarray:
    """round((colour × alpha + background × (M - alpha)) / M), M the largest alpha, to uint8."""
    top = int(np.iinfo(values.dtype).max)
    # 510 × M + M fits uint32 for alphas of up to 16 bits.
    wide = np.uint32 if top <= 65535 else np.uint64
    opacity = values[..., -1:].astype(wide)
    colour = integers_to_rgb(values[..., :-1]).astype(wide)
    colour *= wide(top) if premultiplied else opacity
    colour += (top - opacity) * np.asarray(ALPHA_BACKGROUND, wide)
    colour *= 2  # round(n / M) = (2n + M) // 2M, no n / M being halfway
    colour += wide(top)
    colour //= wide(2 * top)
    return np.minimum(colour, 255).astype(np.uint8)


def cmyk_to_rgb(inks: np.ndarray) -> np.ndarray:
    """8-bit CMYK inks (...×4) as 8-bit RGB, by Pillow's formula (its ``convert("RGB")``):
    each colour is (255 - K) - round(ink × (255 - K) / 255)."""
    paper = 255 - inks[..., 3:].astype(np.int32)
    t = inks[..., :3].astype(np.int32) * paper + 128
    return np.ascontiguousarray(paper - (((t >> 8) + t) >> 8), dtype=np.uint8)


def float_scale(peak: float) -> float:
    """What float pixels are multiplied by for 0-255, by the whole image's largest value (so
    its tiles scale alike): 255 where it is at most 1, else 1."""
    return 255.0 if peak <= 1.0 else 1.0


def floats_to_rgb(values: np.ndarray, scale: float) -> np.ndarray:
    """Float grey pixels (H×W or ...×1) as 8-bit RGB: times ``scale`` (:func:`float_scale`),
    rounded, NaN as 0, clipped to 0-255."""
    a = values.astype(np.float64) * scale
    gray = np.clip(np.round(np.nan_to_num(a)), 0, 255).astype(np.uint8)
    if gray.ndim == 2 or gray.shape[-1] != 1:
        gray = gray[..., None]
    return np.repeat(gray, 3, axis=-1)


def composite_rgba_array(values: np.ndarray) -> np.ndarray:
    """H×W×4 RGBA floats in [0, 1] composited on :data:`ALPHA_BACKGROUND`, as H×W×3."""
    alpha = values[..., 3:4]
    background = np.asarray(ALPHA_BACKGROUND, dtype=np.float64) / 255.0
    return values[..., :3] * alpha + background * (1.0 - alpha)
