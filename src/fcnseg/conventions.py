"""Input conventions: how a set of weights expects its pixels.

Caffe-converted VGG16 weights take BGR 0-255 minus the mean; torchvision's RGB in [0, 1]
normalised by the ImageNet mean and std. The wrong one costs points of mean IU silently, so the
convention travels with the model (``model.input_convention``) and its checkpoints; the model's
:class:`~fcnseg.models.preprocess.Preprocess` applies it (models take raw pixels).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class InputConvention:
    """Pixel preprocessing that a set of weights was trained with: RGB 0-255 reordered to
    ``channel_order``, times ``scale``, minus ``mean``, over ``std`` (both in the network's
    channel order and scaled units); see :class:`fcnseg.models.preprocess.ChannelNormalize`.
    """

    name: str
    #: "RGB" or "BGR": the order the network's first layer expects. A multi-band convention
    #: keeps its ``bands``' order ("RGB" by rule, the default, left out of its repr).
    channel_order: str = "RGB"
    scale: float = 1.0  # multiplies 0-255 pixel values before the mean is subtracted
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    #: A multi-band model's input bands, in input order (None: three colour channels). Its
    #: ``mean`` and ``std`` then have one entry per band, in raw pixel units (``scale`` 1).
    bands: tuple[str, ...] | None = None
    #: A multi-band model's no-data value (raw, every band at it), which prediction leaves
    #: unlabelled where a file sets none of its own. None: none declared.
    nodata: float | None = None
    #: A multi-band model's training images' sample types (``("uint16",)``); None where not
    #: recorded (earlier checkpoints). Inputs of another integer depth are refused
    #: (:func:`fcnseg.inference.rasters.sample_type_problem`).
    sample_types: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {self.channel_order!r}")
        count = self.channels
        if count < 1 or len(self.mean) != count or len(self.std) != count:
            raise ValueError(f"mean and std must have {count} entries (one per input channel)")
        if self.bands is not None and self.channel_order != "RGB":
            raise ValueError("a multi-band convention keeps its bands' order: channel_order "
                             "must be 'RGB'")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std entries must be positive, got {self.std}")

    def __repr__(self) -> str:
        shown = [f for f in fields(self) if self.bands is None or f.name != "channel_order"]
        return f"InputConvention({', '.join(f'{f.name}={getattr(self, f.name)!r}' for f in shown)})"

    @property
    def channels(self) -> int:
        """Input channels: 3, or the number of ``bands``."""
        return 3 if self.bands is None else len(self.bands)

    def mean_pixel(self) -> tuple[float, ...]:
        """The raw pixel (RGB order, or one value a band) this convention maps to zero: what
        crops and batches pad images with."""
        mean = [m / self.scale for m in self.mean]
        if self.channel_order == "BGR":
            mean = mean[::-1]
        return tuple(mean)

    def to_dict(self) -> dict[str, Any]:
        # Only the multi-band fields can be None: colour conventions keep their recorded form.
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputConvention:
        try:
            return cls(name=str(d["name"]), channel_order=str(d["channel_order"]),
                       scale=float(d["scale"]), mean=tuple(float(v) for v in d["mean"]),
                       std=tuple(float(v) for v in d["std"]),
                       bands=None if d.get("bands") is None else tuple(map(str, d["bands"])),
                       nodata=None if d.get("nodata") is None else float(d["nodata"]),
                       # single letters: a type name split by an earlier band_convention
                       sample_types=None if d.get("sample_types") is None
                       or {len(str(t)) for t in d["sample_types"]} == {1}
                       else tuple(map(str, d["sample_types"])))
        except KeyError as e:
            raise ValueError(f"input convention is missing field {e.args[0]!r}: {d!r}") from None


def _minus_mean(name: str, mean: tuple[float, float, float],
                channel_order: str = "BGR") -> InputConvention:
    """A Caffe-style convention: 0-255, minus a per-channel mean, no std scaling."""
    return InputConvention(name=name, channel_order=channel_order, scale=1.0, mean=mean,
                           std=(1.0, 1.0, 1.0))


#: Caffe VGG16 (and the FCN Caffe release): BGR, 0-255, mean subtracted, no std scaling.
CAFFE_BGR = _minus_mean("caffe_bgr", (104.00698793, 116.66876762, 122.67891434))
#: torchvision ImageNet weights: RGB in [0, 1], ImageNet mean and std.
TORCHVISION_RGB = InputConvention(name="torchvision_rgb", channel_order="RGB", scale=1.0 / 255.0,
                                  mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
#: The reference's SIFT Flow nets: BGR, 0-255, minus the SIFT Flow mean.
SIFTFLOW_BGR = _minus_mean("siftflow_bgr", (114.578, 115.294, 108.353))
#: The reference's NYUDv2 colour nets: BGR, 0-255, minus the NYUDv2 colour mean.
NYUD_BGR = _minus_mean("nyud_bgr", (116.190, 97.203, 92.318))
#: Mean HHA pixel of NYUDv2 (in the PNGs' channel order).
HHA_MEAN: tuple[float, float, float] = (132.431, 94.076, 118.477)
#: Mean log depth of NYUDv2 (depth in the PNGs' units, millimetres).
LOG_DEPTH_MEAN: float = 7.844
#: The reference's NYUDv2 HHA net: the HHA image in its stored channel order (not reversed),
#: 0-255, minus the HHA mean.
NYUD_HHA = _minus_mean("nyud_hha", HHA_MEAN, channel_order="RGB")
#: The reference's PASCAL-Context nets: BGR, 0-255, minus the mean of its VGG16 base.
PASCAL_CONTEXT_BGR = _minus_mean("pascal_context_bgr", (104.007, 116.669, 122.679))

_BY_NAME = {c.name: c for c in (CAFFE_BGR, TORCHVISION_RGB, SIFTFLOW_BGR, NYUD_BGR, NYUD_HHA,
                                 PASCAL_CONTEXT_BGR)}


def get_convention(spec: str | Mapping[str, Any] | InputConvention) -> InputConvention:
    """Resolve a convention from its name ("caffe_bgr", "torchvision_rgb", "nyud_bgr",
    "nyud_hha", "siftflow_bgr", "pascal_context_bgr"), a dict or itself."""
    if isinstance(spec, InputConvention):
        return spec
    if isinstance(spec, Mapping):
        return InputConvention.from_dict(dict(spec))
    try:
        return _BY_NAME[spec]
    except KeyError:
        raise ValueError(f"unknown input convention {spec!r}; known: {sorted(_BY_NAME)}") from None


def band_convention(bands: Sequence[str], mean: Sequence[float], std: Sequence[float],
                    nodata: float | None = None,
                    sample_types: str | Sequence[str] | None = None) -> InputConvention:
    """The convention of a model on multi-band images: each band (raw values) minus its
    dataset mean, over its dataset std (1 for a band without variance); ``nodata`` and
    ``sample_types`` the dataset's, where known: the set of its images' sample types (one
    type of every band, ``"uint16"``, or a sequence of those its files hold, not one per band)."""
    types = [sample_types] if isinstance(sample_types, str) else sample_types
    return InputConvention(name="bands", channel_order="RGB", scale=1.0,
                           mean=tuple(float(m) for m in mean),
                           std=tuple(float(s) if s > 0 else 1.0 for s in std),
                           bands=tuple(str(b) for b in bands),
                           nodata=None if nodata is None else float(nodata),
                           sample_types=None if types is None
                           else tuple(sorted({str(t) for t in types})))


def bands_count(count: int) -> str:
    """``"1 band"``, ``"5 bands"``: a band count in words, singular where it is one."""
    return f"{count} band{'' if count == 1 else 's'}"


def _bands_text(bands: Sequence[str] | None) -> str:
    if bands is None:
        return "RGB colour (3 channels: red, green, blue)"
    return f"{bands_count(len(bands))} ({', '.join(bands)})"


def refuse_other_bands(convention: str | Mapping[str, Any] | InputConvention,
                       dataset_bands: Sequence[str] | None, dataset: str, checkpoint: str,
                       declare: Callable[[Sequence[str]], tuple[str, str]] | None = None,
                       ) -> None:
    """Refuse, in one line naming both, a dataset whose images carry another number of bands
    than the model takes (``dataset_bands`` None: RGB). One that declares none is told to
    declare the model's where and how ``declare(names)`` says (None: which kinds can)."""
    model_bands = get_convention(convention).bands
    have = 3 if dataset_bands is None else len(dataset_bands)
    want = 3 if model_bands is None else len(model_bands)
    if have != want and dataset_bands is None and model_bands is not None:
        where, how = declare(model_bands) if declare is not None else (
            "a dataset that takes them (a folder dataset's dataset.yaml, or the spec of a "
            "labelling tool's export read directly)", f"`bands: [{', '.join(model_bands)}]`")
        raise ValueError(
            f"dataset {dataset} declares no bands, so its images are read as "
            f"{_bands_text(None)}, but checkpoint {checkpoint} takes "
            f"{_bands_text(model_bands)}; declare the checkpoint's bands in {where}: {how}")
    if have != want:
        raise ValueError(
            f"dataset {dataset} declares {_bands_text(dataset_bands)} but checkpoint "
            f"{checkpoint} takes {_bands_text(model_bands)}; use a dataset of the model's bands")


def _numbers(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.8g}" for v in values) + ")"


def normalisation_text(convention: str | Mapping[str, Any] | InputConvention) -> str:
    """The steps from raw pixels to the network's input under ``convention``: what a caller
    of a bare network (``preprocess=False``) must do itself."""
    c = get_convention(convention)
    if c.bands is not None:
        steps = [f"the raw values of the bands {', '.join(c.bands)}, in that order"]
    else:
        steps = ["RGB pixel values 0-255"]
        if c.channel_order == "BGR":
            steps.append("reordered to BGR")
    if c.scale != 1:
        steps.append("divided by 255" if abs(c.scale * 255 - 1) < 1e-9
                     else f"times {c.scale:.8g}")
    order = " in B, G, R order" if c.channel_order == "BGR" else ""
    steps.append(f"{'each ' if c.bands else ''}minus the mean {_numbers(c.mean)}{order}")
    if any(s != 1 for s in c.std):
        steps.append(f"over the std {_numbers(c.std)}")
    return ", ".join(steps)


def input_text(convention: str | Mapping[str, Any] | InputConvention, *, raw_pixels: bool,
               inside: str = "the graph", dtype: str = "float32") -> str:
    """What a model or exported graph of one input takes, in words: raw pixels that ``inside``
    normalises (``raw_pixels``), else input the caller normalises (:func:`normalisation_text`)."""
    c = get_convention(convention)
    shape = f"N×{c.channels}×H×W {dtype}"
    if not raw_pixels:
        return (f"{shape} normalised by the caller: {normalisation_text(c)}"
                f"{nodata_text(c.nodata, None)}")
    if c.bands is None:
        return (f"{shape} RGB pixel values 0-255 (normalisation inside {inside}, per "
                f"{c.name}: do not normalise them)")
    return (f"{shape} raw values of the bands {', '.join(c.bands)}, in that order "
            f"(normalisation inside {inside}, each band minus its mean, over its std: do not "
            f"normalise them){nodata_text(c.nodata, inside)}")


def nodata_text(nodata: float | None, inside: str | None) -> str:
    """What becomes of pixels without data (``inside``: what takes them for the band means;
    None: the caller normalises, so sets them to 0), or "" without a ``nodata``."""
    if nodata is None:
        return ""
    if inside is None:
        return (f"; nodata {nodata:g}: set pixels whose every band is {nodata:g}, or any band "
                f"NaN, to 0 after normalising")
    return (f"; nodata {nodata:g}: pixels whose every band is {nodata:g}, or any band NaN, are "
            f"taken for the band means inside {inside} (do not fill them)")
