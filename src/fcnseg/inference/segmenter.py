"""``Segmenter``: a trained model with everything needed to segment an image.

The model carries its geometry and its preprocessing (it takes raw pixels); the checkpoint adds
the class names, palette and ignore value. ``predict`` takes an image in any common form and
returns a :class:`Prediction` at the image's own size.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fcnseg.checkpoint import build_model_from_checkpoint, load_checkpoint
from fcnseg.conventions import InputConvention, get_convention
from fcnseg.data.bit_depth import dim_sixteen_bit_warning
from fcnseg.data.images import ImageError, read_samples
from fcnseg.data.modalities import modality_problem
from fcnseg.data.rasters import display_rgb, fill_nodata
from fcnseg.dataset_paths import training_folders
from fcnseg.inference.calibration import check_temperature
from fcnseg.inference.images import DEFAULT_MAX_PIXELS, predict_limit, to_rgb_uint8
from fcnseg.inference.rasters import (
    NODATA_LABEL,
    TileSettings,
    held_raster,
    picture_bands,
    read_colour_raster,
    read_model_bands,
    segment_tiles,
    segmenter_tile_fn,
)
from fcnseg.inference.runner import InferenceRunner
from fcnseg.inference.runner import resolve_device as resolve_device  # re-exported
from fcnseg.inference.sliding import TTA, PredictFn, SlidingWindow, forward_logits
from fcnseg.inference.visualize import normalize_palette
from fcnseg.models.geometry import output_stride
from fcnseg.models.preprocess import Preprocess, with_preprocess
from fcnseg.utils.batches import same_size_batches
from fcnseg.utils.files import FileSignature, file_signature
from fcnseg.utils.keyed import keyed, unkeyed
from fcnseg.utils.predict_manifest import content_digest
from fcnseg.utils.validate import fields_of
from fcnseg.weightfiles.artifacts import labels_only_error

#: Colour images of more pixels than this (4096×4096, 16.8 million) are segmented by blended
#: tiles (:data:`PHOTO_TILE` unless a ``tile`` is given): a VGG16 FCN's one pass over a whole
#: photo takes about 200 bytes a pixel (activations and full-size float logits), 3.4 GB at this
#: size and 16 GB at 81 million.
WHOLE_IMAGE_MAX_PIXELS = 4096 * 4096
#: The tile and overlap of such photos when no ``tile`` is given: tiles start on the model's
#: output stride (:func:`fcnseg.models.geometry.output_stride`) and reach 512 pixels past what
#: they keep, so that they give a whole-image pass's labels (all of a 24 MP photo's in fp32 for
#: a trained FCN-8s; docs/inference.md); one tile, 4.2 million pixels, runs at a time.
#: Rasters keep :class:`TileSettings`' 512 and 128.
PHOTO_TILE, PHOTO_OVERLAP = 2048, 512
#: ``tile="auto"``: rasters by :class:`TileSettings`' tiles, large photos by :data:`PHOTO_TILE`.
AUTO_TILE = "auto"


#: ``return_probs``: none, every class's, or those of these class indices at least.
ProbsWanted = bool | tuple[int, ...]


@dataclass
class Prediction:
    """The segmentation of one image: H×W class indices ``label`` (uint8 up to 256 classes, else
    int64) of the upright H×W×3 uint8 RGB ``image`` fed to the model, C×H×W float32 ``probs``
    when asked for (the planes of ``probs_of`` alone where those classes were asked for: see
    :meth:`class_probs`), the model's ``class_names``; ``heads``, each head's prediction of a model
    with several (the rest is the first head's); ``stretched_picture``: ``image`` is a
    multi-band input's bands stretched (overlays go over its lightness)."""

    label: np.ndarray
    image: np.ndarray
    probs: np.ndarray | None = None
    class_names: tuple[str, ...] = field(default=())
    heads: dict[str, Prediction] = field(default_factory=dict)
    stretched_picture: bool = False
    probs_of: tuple[int, ...] | None = None

    def class_probs(self, c: int) -> np.ndarray:
        """The H×W probabilities of class ``c``."""
        return self.probs[c if self.probs_of is None else self.probs_of.index(c)]

    def class_pixel_counts(self) -> dict[str, int]:
        """Pixels predicted for each class, by class name (every class, zero included)."""
        counts = np.bincount(self.label.reshape(-1).astype(np.int64),
                             minlength=len(self.class_names))
        return {name: int(counts[i]) for i, name in enumerate(self.class_names)}

    def present_classes(self) -> list[int]:
        """Indices of the classes that occur in the label map, in increasing order."""
        return [int(c) for c in np.unique(self.label)]


class IgnoreMaskSizeError(ValueError):
    """An ``ignore_mask`` of another size than the image it is to leave pixels out of."""


@dataclass(frozen=True)
class SegmenterOptions:
    """How a :class:`Segmenter` runs: the keyword options of :class:`Segmenter` and
    :meth:`Segmenter.from_checkpoint` (given one by one, or as this dataclass).

    Attributes:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
        sliding_window: None (whole image), a window size, ``{"window": ..., "stride": ...}``
            or a :class:`SlidingWindow`.
        tta: None, ``{"scales": [...], "flip": bool}`` or a :class:`TTA`.
        max_pixels: images with more pixels are refused before decoding.
        input_convention: the preprocessing put in front of a model without its own
            :class:`~fcnseg.models.preprocess.Preprocess` (one with neither is refused).
        temperature: divides the logits before the softmax (``fcnseg calibrate`` fits it).
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast); logits and
            probabilities are float32.
        channels_last: run channels-last; None decides by device and precision.
        compile: compile the model now (:meth:`Segmenter.compile`; a failure is a
            :class:`RuntimeWarning` and the model runs uncompiled).
        tile: inputs ``fcnseg predict`` tiles, and colour images of over
            :data:`WHOLE_IMAGE_MAX_PIXELS`, that are larger than this are segmented by blended
            tiles as it does (:func:`fcnseg.inference.rasters.segment_tiles`); such photos'
            tiles start on the model's output stride. ``"auto"``: rasters by tiles of 512,
            photos by tiles of :data:`PHOTO_TILE`. None: every input whole, as are those of
            a model with several heads or over 256 classes.
        overlap: pixels shared by neighbouring tiles; None: a quarter of the tile (photos'
            :data:`PHOTO_OVERLAP` with ``tile="auto"``).
        ignore_mask: a fixed camera's pixels to leave out (its hood, what lies outside the
            region of interest): an image file or H×W array of the images' size, non-zero
            where pixels are kept; where it is 0 every prediction is labelled 255, no data
            (out of overlays' colours and of :meth:`Prediction.class_pixel_counts`). An image
            of another size is refused in one line naming both sizes.
    """

    device: str | torch.device = "cpu"
    sliding_window: int | Mapping[str, Any] | SlidingWindow | None = None
    tta: Mapping[str, Any] | TTA | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    input_convention: InputConvention | str | None = None
    temperature: float = 1.0
    precision: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    tile: int | str | None = AUTO_TILE
    overlap: int | None = None
    ignore_mask: str | os.PathLike[str] | np.ndarray | None = None


class Segmenter:
    """Segment images with a trained FCN.

    Args:
        model: a segmentation model (its ``input_convention``, ``geometry`` and ``arch`` read
            where present), prepared for inference in place (:func:`fcnseg.models.optimize`);
            parameters and state-dict keys stay, so training can go on after
            ``model.train()``; pass ``copy.deepcopy(model)`` to leave it untouched.
        class_names: one name per output channel.
        palette: colours for label values (n×3, padded to 256×3).
        ignore_index: the label value meaning "void" in the training data (never predicted).
        head_classes: ``{head: class names}`` of a model with several heads (SIFT Flow's);
            ``class_names`` are then the first head's, missing heads named ``class_i``.
        background: the class declared as background (a checkpoint's ``classes.background``).
        options: how it runs (:class:`SegmenterOptions`); ``option_fields`` are its fields
            as keywords (``device="cuda"``), which replace those of ``options``.
    """

    def __init__(self, model: nn.Module, *, class_names: Sequence[str],
                 palette: np.ndarray | Sequence[Sequence[int]], ignore_index: int = 255,
                 head_classes: Mapping[str, Sequence[str]] | None = None,
                 background: str | None = None, options: SegmenterOptions | None = None,
                 **option_fields: Any) -> None:
        opts = replace(options or SegmenterOptions(), **option_fields)
        model, convention = _with_preprocessing(model, opts.input_convention)
        if len(class_names) != (num_classes := getattr(model, "num_classes", len(class_names))):
            raise ValueError(f"{len(class_names)} class names for a model with {num_classes} "
                             f"classes")
        check_temperature(opts.temperature)
        #: How the model runs: device, precision, channels-last, fast paths.
        self.runner = InferenceRunner(model, device=opts.device, precision=opts.precision,
                                      channels_last=opts.channels_last)
        self.model = self.runner.model
        self.device = self.runner.device
        self.runtime: str | None = self.runner.runtime  # an export's, as the runner's
        self.precision: str = self.runner.precision
        self.channels_last = self.runner.channels_last
        self.class_names: list[str] = [str(n) for n in class_names]
        self.num_classes = len(self.class_names)
        self.palette = normalize_palette(palette)
        #: The class declared as background (the checkpoint's ``classes.background``), if any.
        self.background_class: str | None = background
        self.coco_categories: dict[str, Any] = {}  # classes.coco_categories: {class: {id, ...}}
        self.ignore_index = int(ignore_index)
        self.input_convention: InputConvention = get_convention(convention)
        self.geometry: str | None = getattr(model, "geometry", None)
        self.arch: str = str(getattr(model, "arch", type(model).__name__))
        #: How rasters larger than a tile are cut and blended (None: every input whole), and
        #: colour photos of over :data:`WHOLE_IMAGE_MAX_PIXELS` (their tiles start on multiples
        #: of :attr:`output_stride`).
        self.tiles, self.photo_tiles = _tile_settings(opts.tile, opts.overlap)
        self.output_stride = output_stride(model)
        self.sliding_window = SlidingWindow.coerce(opts.sliding_window)
        self.tta = TTA.coerce(opts.tta)
        #: ``{head: class names}`` of a model with several heads; empty for one head.
        self.heads = _head_names(model, self.class_names, head_classes)
        #: The model's input modalities; images alone suffice only for one (colour) input.
        self.input_names: tuple[str, ...] = tuple(getattr(model, "input_names", ("color",)))
        self.max_pixels = opts.max_pixels
        #: The pixels ``ignore_mask`` leaves out and how it is named, or None.
        self.ignored_pixels = read_ignore_mask(opts.ignore_mask)
        self.temperature = float(opts.temperature)
        self.checkpoint_path: str | None = None
        #: The checkpoint file as it was when its weights were read
        #: (:func:`fcnseg.utils.files.file_signature`), or None.
        self.checkpoint_signature: FileSignature | None = None
        #: The training dataset's name as the checkpoint's recipe records it (e.g. "synthetic").
        self.trained_on: str | None = None
        #: The validation set the recipe records (``recipe.data.val``; None without one) and
        #: where its relative paths are found (:func:`fcnseg.dataset_paths.training_folders`).
        self.validation_data: dict[str, Any] | None = None
        self.recipe_folders: list[Path] = []
        self.checkpoint_metrics: dict[str, Any] = {}  # the checkpoint's metrics, if any
        #: The compiled model the forward passes run through, once :meth:`compile` succeeded.
        self.compiled: nn.Module | None = None
        self.warned_dim_images = False  # once per Segmenter (:meth:`_warn_if_dim`)
        if opts.compile and (failure := self.compile()) is not None:
            warnings.warn(failure, RuntimeWarning, stacklevel=2)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu",
                        **options: Any) -> Segmenter:
        """Build a segmenter from a checkpoint (architecture, geometry, input convention, class
        names, palette, ignore value); ``options`` as the constructor's (``tta``, ...)."""
        before = file_signature(path)
        ckpt = load_checkpoint(path)
        # The file as read, where it did not change while it was read (see model_identity).
        loaded = before if before is not None and file_signature(path) == before else None
        model = build_model_from_checkpoint(ckpt)
        classes = ckpt["classes"]
        options.setdefault("temperature", float(ckpt.get("temperature", 1.0)))
        if classes.get("heads"):
            options.setdefault("head_classes", classes["heads"])
        if classes.get("background") is not None:
            options.setdefault("background", classes["background"])
        seg = cls(model, class_names=classes["names"], palette=classes["palette"],
                  ignore_index=classes["ignore_index"], device=device, **options)
        seg.checkpoint_path = str(path)
        seg.checkpoint_signature = loaded
        data = fields_of(fields_of(ckpt.get("recipe")).get("data"))
        train_spec = fields_of(data.get("train"))
        seg.trained_on = str(train_spec["name"]) if train_spec.get("name") else None
        seg.validation_data = dict(fields_of(data.get("val"))) or None
        seg.recipe_folders = training_folders(ckpt)
        seg.checkpoint_metrics = dict(fields_of(ckpt.get("metrics")))
        seg.coco_categories = dict(fields_of(classes.get("coco_categories")))
        return seg

    @property
    def labels_only(self) -> bool:
        """Whether the model answers labels only (an export with ``--labels-out``): its
        "probabilities" are then 0 and 1, so heatmaps and uncertainty mean nothing."""
        return bool(getattr(self.model, "labels_out", False))

    # -- description ---------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """A JSON-able description: architecture, geometry, classes, palette, convention (and
        ``heads``, the class names of each head, for a model with several; ``coco_categories``
        where the classes record them, which exports carry on)."""
        heads = {"heads": {h: list(n) for h, n in self.heads.items()}} if self.heads else {}
        return {
            **heads, "arch": self.arch, "geometry": self.geometry,
            "num_classes": self.num_classes, "class_names": list(self.class_names),
            "palette": self.palette[: self.num_classes].tolist(), "ignore_index": self.ignore_index,
            "ignore_color": self.palette[self.ignore_index].tolist()
            if 0 <= self.ignore_index < 256 else None,
            "input_convention": self.input_convention.to_dict(),
            **({"coco_categories": self.coco_categories} if self.coco_categories else {}),
            "temperature": self.temperature,
            "precision": self.runner.reported_precision,
            **({"runtime": self.runtime} if self.runtime else {}),
            "optimizations": self.runner.optimizations
            + (["torch.compile"] if self.compiled is not None else []),
            "sliding_window": None if self.sliding_window is None else asdict(self.sliding_window),
            "tta": None if self.tta is None else {**asdict(self.tta),
                                                  "scales": list(self.tta.scales)},
            **({"ignore_mask": content_digest(self.ignored_pixels[0].tobytes())}
               if self.ignored_pixels else {}),
        }

    # -- compilation ---------------------------------------------------------------------------
    def compile(self, size: tuple[int, int] = (256, 256), batch_size: int = 1, *,
                backend: str = "inductor") -> str | None:
        """Compile the model with ``torch.compile`` (``"inductor"`` needs a C compiler on CPUs)
        and warm it up on a ``batch_size``×3×``size`` batch. Returns None when compiled, else
        one line saying why not. A compiled pass that fails later runs uncompiled from then
        on, with a :class:`RuntimeWarning`."""
        if self.compiled is not None:
            return None
        if len(self.input_names) > 1:
            return f"torch.compile: not applied to {self.arch}, a model with several inputs"
        try:
            compiled = torch.compile(self.model, backend=backend)
            with self.runner.session():
                self.runner.forward(torch.zeros(batch_size, 3, *size), self.predict_fn(),
                                    model=compiled)
        except Exception as e:  # noqa: BLE001 - any failure of the toolchain: run uncompiled
            return _compile_failure(e)
        self.compiled = compiled
        return None

    # -- prediction ----------------------------------------------------------------------------
    def predict_fn(self) -> PredictFn:
        """``predict_fn(model, images) -> logits`` with this segmenter's sliding window and TTA."""
        inner: PredictFn = forward_logits
        if self.sliding_window is not None:
            inner = self.sliding_window.predict_fn()
        if self.tta is not None and not self.tta.is_identity:
            return self.tta.predict_fn(inner)
        return inner

    def to_rgb(self, image: Any) -> np.ndarray:
        """An input in any accepted form as an H×W×3 uint8 RGB array (see :meth:`predict`)."""
        return to_rgb_uint8(image, max_pixels=self.max_pixels)

    def preprocess(self, rgb: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """H×W×3 uint8 RGB image(s) (a multi-band model's H×W×N values) of one size, or an
        N×H×W×3 batch, as the model's N×C×H×W batch on the device (the model normalises it)."""
        if isinstance(rgb, np.ndarray) and rgb.ndim == 4:  # a batch already: not copied
            batch = rgb if rgb.flags.c_contiguous and rgb.flags.writeable else rgb.copy()
        else:
            batch = np.stack([rgb] if isinstance(rgb, np.ndarray) else list(rgb))
        return torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2)

    def logits(self, x: Any) -> torch.Tensor | dict[str, torch.Tensor]:
        """N×C×H×W float32 logits (``{head: logits}`` for several heads) of a batch of raw
        pixels (or ``{modality: pixels}``), sliding window and TTA applied, over temperature."""
        with self.runner.session():
            out = keyed(self._forward(x))
        heads = out if None in out else self.heads
        scale = self.temperature
        return unkeyed({h: out[h].float() if scale == 1.0 else out[h].float() / scale
                        for h in heads})

    def _forward(self, x: Any) -> Any:
        """The model's output for a batch, compiled unless that fails (then eager from now on)."""
        if self.compiled is not None:
            try:
                return self.runner.forward(x, self.predict_fn(), model=self.compiled)
            except Exception as e:  # noqa: BLE001 - a shape the compiler fails on: go eager
                self.compiled = None
                warnings.warn(_compile_failure(e), RuntimeWarning, stacklevel=3)
        return self.runner.forward(x, self.predict_fn())

    def predict(self, image: Any, *, return_probs: ProbsWanted = False) -> Prediction:
        """Segment one image.

        Args:
            image: a file path, encoded bytes, a PIL image, an H×W×3 (or H×W, H×W×4) array
                (uint8, uint16, or float 0-1), or a 3×H×W tensor (uint8 or float 0-1; floats
                above 1 are refused, as ``model(x)``'s float 0-255 is the other convention:
                pass 0-255 pixels as uint8). For a multi-band model: a raster file of its bands, a
                :class:`~fcnseg.data.rasters.RasterReader` or an H×W×N array of raw values
                (``image`` is then its red, green and blue bands, else the first, stretched
                2/98). Such an input, a raster ``fcnseg predict`` tiles, or an image of over
                :data:`WHOLE_IMAGE_MAX_PIXELS`, larger than the tile is segmented by blended
                tiles (memory bounded by the tile); pixels without data are labelled 255.
            return_probs: also return the C×H×W softmax probabilities; a tuple of class
                indices: at least those classes' (an image segmented by tiles keeps only
                their planes, :attr:`Prediction.probs_of`: a photo's C×H×W floats are GBs).
        """
        return self.predict_batch([image], return_probs=return_probs)[0]

    def predict_batch(self, images: Iterable[Any], *, return_probs: ProbsWanted = False,
                      batch_size: int = 4) -> list[Prediction]:
        """Segment several images, those of equal size together, ``batch_size`` at a time: one
        :class:`Prediction` per input, in order; :attr:`labels_only` refuses ``return_probs``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if return_probs and self.labels_only:  # its "probabilities" would be 0s and 1s
            raise ValueError(labels_only_error(self.checkpoint_path or "the model",
                                               "return_probs=True"))
        if isinstance(return_probs, tuple) and \
                (bad := [c for c in return_probs if not 0 <= c < len(self.class_names)]):
            raise ValueError(f"return_probs: class index {bad[0]} is not one of the model's "
                             f"{len(self.class_names)} classes (0-{len(self.class_names) - 1})")
        images = list(images)
        inputs = [self._model_input(im) for im in images]
        left_out = [self._left_out(array, missing) for array, missing, _ in inputs]
        self._warn_if_dim(images, [array for array, _, _ in inputs])
        results: dict[int, Prediction] = {}
        whole = []
        for i, (array, missing, raster) in enumerate(inputs):
            if self._by_tiles(array, raster):
                results[i] = self._predict_tiles(array, missing, return_probs, batch_size,
                                                 raster)
            else:
                whole.append(i)
        for chunk in same_size_batches([inputs[i][0].shape[:2] for i in whole], batch_size):
            indices = [whole[j] for j in chunk]
            preds = self._predict_same_size([inputs[i][:2] for i in indices],
                                            bool(return_probs))
            results.update(zip(indices, preds, strict=True))
        return [_without_data(results[i], left_out[i]) for i in range(len(inputs))]

    def dim_image_warning(self, path: Path, array: np.ndarray) -> str | None:
        """One line when a colour model's 8-bit RGB ``array`` of the 16-bit image file at
        ``path`` is nearly black (:func:`~fcnseg.data.bit_depth.dim_sixteen_bit_warning`)."""
        if self.input_convention.bands is not None or self.input_names != ("color",):
            return None
        return dim_sixteen_bit_warning(path, array)

    def _warn_if_dim(self, images: list[Any], arrays: list[np.ndarray]) -> None:
        """The first :meth:`dim_image_warning` of image files, once per Segmenter."""
        for image, array in zip(images, arrays, strict=True):
            if not self.warned_dim_images and isinstance(image, str | os.PathLike) \
                    and (line := self.dim_image_warning(Path(image), array)) is not None:
                warnings.warn(line, UserWarning, stacklevel=3)
                self.warned_dim_images = True

    def _by_tiles(self, array: np.ndarray, raster: bool) -> bool:
        """Whether an input is segmented by tiles: a raster (as ``fcnseg predict`` writes
        them) or a colour image of over :data:`WHOLE_IMAGE_MAX_PIXELS`, larger than the tile."""
        tiles = self.tiles if raster else self.photo_tiles
        if tiles is None or self.heads or self.num_classes > 256 \
                or max(array.shape[:2]) <= tiles.tile:
            return False
        return raster or (self.input_names == ("color",)
                          and array.shape[0] * array.shape[1] > WHOLE_IMAGE_MAX_PIXELS)

    def _predict_tiles(self, array: np.ndarray, missing: np.ndarray | None,
                       return_probs: ProbsWanted, batch_size: int, raster: bool) -> Prediction:
        """An input segmented by blended tiles, as ``fcnseg predict`` segments rasters; a
        photo's tiles start on the output stride, as few at a time as keep memory bounded."""
        tiles = self.tiles if raster else self.photo_tiles
        assert tiles is not None
        # Checked as read (8-bit RGB, the model's bands); run on the filled values.
        run = segmenter_tile_fn(self, held_raster(array).info)
        if not raster:  # no more pixels at once than one PHOTO_TILE
            batch_size = max(1, min(batch_size, PHOTO_TILE ** 2 // tiles.tile ** 2))
        settings = replace(tiles, batch_size=batch_size, probs=bool(return_probs))
        planes = return_probs if isinstance(return_probs, tuple) else None
        out = segment_tiles(run, held_raster(self._neutral(array, missing)), self.class_names,
                            settings, align=1 if raster else self.output_stride, planes=planes)
        picture, stretched = self._shown(array)
        return Prediction(label=out["label"], image=picture, probs=out.get("probs"),
                          class_names=tuple(self.class_names), stretched_picture=stretched,
                          probs_of=planes)

    def _shown(self, array: np.ndarray) -> tuple[np.ndarray, bool]:
        """An input's picture (a multi-band one's bands drawn) and whether it is stretched."""
        bands = self.input_convention.bands
        if bands is None:
            return array, False
        stretched = not (array.dtype == np.uint8 and array.shape[-1] in (3, 4))
        return display_rgb(array, bands, picture_bands(bands)), stretched

    def _model_input(self, image: Any) -> tuple[np.ndarray, np.ndarray | None, bool]:
        """An input as the model's H×W×C array, its mask of pixels without data, and whether it
        is a raster ``fcnseg predict`` tiles (every multi-band input, and read_colour_raster's)."""
        if self.input_convention.bands is not None:
            return *read_model_bands(self, image), True
        if self.input_names == ("hha",):  # HHA as stored, checked as training's data is
            return self._read_input("hha", image), None, False
        if isinstance(image, str | os.PathLike) and (
                raster := read_colour_raster(self, image)) is not None:
            return *raster, True
        return self.to_rgb(image), None, False

    def _left_out(self, array: np.ndarray, missing: np.ndarray | None) -> np.ndarray | None:
        """The pixels of ``array`` labelled no data: those ``missing`` and those the
        ``ignore_mask`` leaves out, which must be of its size."""
        if self.ignored_pixels is None:
            return missing
        ignored, source = self.ignored_pixels
        if ignored.shape != array.shape[:2]:
            raise IgnoreMaskSizeError(
                f"ignore mask {source} is {ignored.shape[1]}×{ignored.shape[0]} pixels, the "
                f"image {array.shape[1]}×{array.shape[0]}: give a mask of the images' size")
        return ignored if missing is None else missing | ignored

    def _neutral(self, array: np.ndarray, missing: np.ndarray | None) -> np.ndarray:
        """``array`` with its pixels without data at the model's mean pixel, as training has."""
        return fill_nodata(array, missing, self.input_convention.mean_pixel())

    def _predict_same_size(self, inputs: list[tuple[np.ndarray, np.ndarray | None]],
                           return_probs: bool) -> list[Prediction]:
        """Inputs of one size (array, mask of pixels without data) run together."""
        if len(self.input_names) > 1:
            example = ", ".join(f"{m!r}: ..." for m in self.input_names)
            raise ValueError(f"{self.arch} takes the inputs {list(self.input_names)}; predict "
                             f"reads one image: give each input to "
                             f"Segmenter.predict_inputs({{{example}}}) (a file, or an array)")
        shown = [self._shown(a) for a, _ in inputs]
        values = [self._neutral(a, missing) for a, missing in inputs]
        if self.input_convention.bands is not None:  # raw band values
            values = [v.astype(np.float32, copy=False) for v in values]
        preds = self._by_head(self.logits(self.preprocess(values)), [p for p, _ in shown],
                              return_probs)
        return [replace(p, stretched_picture=True) if stretched else p
                for p, (_, stretched) in zip(preds, shown, strict=True)]

    def _by_head(self, logits: Any, pictures: list[np.ndarray],
                 return_probs: bool) -> list[Prediction]:
        """The first head's prediction of each picture, with every head's as its ``heads``."""
        names = self.heads or {None: self.class_names}
        by_head = {h: _predictions(out, pictures, names[h], return_probs)
                   for h, out in keyed(logits).items()}
        first = next(iter(by_head.values()))
        if not self.heads:
            return first
        return [replace(p, heads={h: preds[j] for h, preds in by_head.items()})
                for j, p in enumerate(first)]

    def predict_inputs(self, inputs: Mapping[str, Any], *,
                       return_probs: bool = False) -> Prediction:
        """Segment one sample ``{modality: input}`` of a model with several inputs (NYUDv2 RGB-D,
        RGB-HHA): ``color`` as :meth:`predict` takes it; ``hha`` of 3 channels of 8 bits;
        ``depth`` a 16-bit PNG (or float TIFF) or H×W array of millimetres (metres,
        centimetres, an 8-bit depth picture or a grey HHA are refused in one line). The
        prediction's ``image`` is the colour input (else the first one, as a picture)."""
        missing = [m for m in self.input_names if m not in inputs]
        if missing:
            raise ValueError(f"{self.arch} takes the inputs {list(self.input_names)}; missing "
                             f"{missing}")
        arrays = {m: self._read_input(m, inputs[m]) for m in self.input_names}
        sizes = {m: a.shape[:2] for m, a in arrays.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"the inputs differ in size (H×W): {sizes}")
        left_out = self._left_out(next(iter(arrays.values())), None)
        logits = self.logits({m: _input_tensor(a)[None] for m, a in arrays.items()})
        return _without_data(self._by_head(logits, [_picture(arrays)], return_probs)[0], left_out)

    def _read_input(self, modality: str, source: Any) -> np.ndarray:
        """Colour as :meth:`predict` reads it; HHA and depth as stored, checked as training's
        data is (:func:`~fcnseg.data.modalities.modality_problem`)."""
        if modality == "color":
            return self.to_rgb(source)
        where, values = _stored_values(modality, source, self.max_pixels)
        problem = modality_problem(modality, values)
        if problem:
            raise ValueError(f"{where}: {problem}")
        return values.astype(np.float32) if modality == "depth" else values

    def __repr__(self) -> str:
        geometry = f", geometry={self.geometry!r}" if self.geometry else ""
        runtime = f", runtime={self.runtime!r}" if self.runtime else ""
        return (f"Segmenter(arch={self.arch!r}{geometry}, classes={self.num_classes}, "
                f"device={str(self.device)!r}, precision={self.runner.reported_precision!r}"
                f"{runtime})")


def _tile_settings(tile: int | str | None, overlap: int | None
                   ) -> tuple[TileSettings | None, TileSettings | None]:
    """The tiles of rasters and of large photos of :class:`SegmenterOptions`' ``tile`` and
    ``overlap`` (one tile for both where a tile is given)."""
    if tile is None:
        return None, None
    if tile != AUTO_TILE:
        if isinstance(tile, str):
            raise ValueError(f"tile must be a number of pixels, {AUTO_TILE!r} or None, got "
                             f"{tile!r}")
        settings = TileSettings(tile, overlap)
        return settings, settings
    return (TileSettings(overlap=overlap),
            TileSettings(PHOTO_TILE, PHOTO_OVERLAP if overlap is None else overlap))


def _stored_values(modality: str, source: Any, max_pixels: int | None
                   ) -> tuple[str, np.ndarray]:
    """``(name for messages, values as stored)`` of an HHA or depth input."""
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
        if source.ndim == 3:
            source = source[0] if source.shape[0] == 1 else np.moveaxis(source, 0, -1)
    if isinstance(source, np.ndarray):
        return f"<{modality} array>", source
    where = str(source) if isinstance(source, str | os.PathLike) else f"<{modality} input>"
    with predict_limit():
        return where, read_samples(source, name=where, max_pixels=max_pixels)


def read_ignore_mask(mask: Any) -> tuple[np.ndarray, str] | None:
    """The pixels an ``ignore_mask`` leaves out (where it is 0) and how to name it: what
    :attr:`Segmenter.ignored_pixels` holds (an :class:`ImageError` naming ``ignore_mask`` if
    unreadable)."""
    if isinstance(mask, np.ndarray) and mask.ndim == 2:
        return mask == 0, "<array>"
    try:
        return None if mask is None else (~to_rgb_uint8(mask).any(axis=-1), str(mask))
    except ImageError as e:  # one line naming the parameter
        raise ImageError(f"ignore_mask {e.source}", e.problem) from None


def _without_data(pred: Prediction, missing: np.ndarray | None) -> Prediction:
    """Pixels without data labelled :data:`NODATA_LABEL` in every head, as tiled rasters are."""
    if missing is None:
        return pred
    label = pred.label.copy()
    label[missing] = NODATA_LABEL
    heads = {h: _without_data(p, missing) for h, p in pred.heads.items()}
    return replace(pred, label=label, heads=heads)


def _input_tensor(array: np.ndarray) -> torch.Tensor:
    """An H×W×C image or an H×W map (depth) as a C×H×W tensor (a read-only array copied)."""
    array = np.ascontiguousarray(array) if array.flags.writeable else np.array(array)
    t = torch.from_numpy(array)
    return t[None] if t.dim() == 2 else t.permute(2, 0, 1)


def _compile_failure(e: BaseException) -> str:
    """One line saying that ``torch.compile`` failed, why, and what happens instead."""
    reason = " ".join(str(e).split())[:200] or type(e).__name__
    return f"torch.compile failed ({type(e).__name__}: {reason}); running the model uncompiled"


def _with_preprocessing(model: nn.Module, convention: InputConvention | str | None
                        ) -> tuple[nn.Module, InputConvention | str]:
    """``model`` with a :class:`Preprocess` in front (its own, else ``convention``'s), and its
    input convention."""
    convention = convention or getattr(model, "input_convention", None)
    if convention is None:
        raise ValueError(
            f"{type(model).__name__} has no input_convention: pass input_convention="
            f"'caffe_bgr' (BGR, 0-255, mean subtracted) or 'torchvision_rgb' (RGB, ImageNet "
            f"mean/std) to match the weights it was trained from"
        )
    if not isinstance(getattr(model, "preprocess", None), Preprocess):
        model = with_preprocess(model, convention)
    return model, convention


def _picture(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """A multi-input sample's picture: its colour input, else its first 3-channel one, else
    its depth scaled to grey."""
    for m in ("color", *arrays):
        if m in arrays and arrays[m].ndim == 3:
            return arrays[m]
    depth = next(iter(arrays.values()))
    span = float(depth.max() - depth.min()) or 1.0
    grey = ((depth - depth.min()) / span * 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _predictions(logits: torch.Tensor, rgbs: list[np.ndarray], class_names: Sequence[str],
                 return_probs: bool) -> list[Prediction]:
    """One :class:`Prediction` per image of an N×C×H×W batch of logits."""
    label_dtype = np.uint8 if len(class_names) <= 256 else np.int64
    labels = logits.argmax(1).cpu().numpy().astype(label_dtype)
    probs = logits.softmax(1).cpu().numpy().astype(np.float32) if return_probs else None
    names = tuple(class_names)
    return [Prediction(label=labels[j], image=rgbs[j],
                       probs=None if probs is None else probs[j], class_names=names)
            for j in range(len(rgbs))]


def _head_names(model: nn.Module, class_names: Sequence[str],
                given: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    """``{head: class names}`` of a model with several heads; empty for one."""
    counts = dict(getattr(model, "head_classes", {}) or {})
    if len(counts) < 2:
        return {}
    unknown = sorted(set(given or {}) - set(counts))
    if unknown:
        raise ValueError(f"head_classes names heads {unknown}; the model's heads are "
                         f"{list(counts)}")
    first = next(iter(counts))
    heads = {h: [str(n) for n in (given or {}).get(h, class_names if h == first else
                                                   [f"class_{i}" for i in range(c)])]
             for h, c in counts.items()}
    for h, c in counts.items():
        if len(heads[h]) != c:
            raise ValueError(f"{len(heads[h])} class names for head {h!r} with {c} classes")
    return heads
