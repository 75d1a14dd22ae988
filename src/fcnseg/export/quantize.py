"""Trained models are quantized to static int8 with ONNX Runtime.
Calibration uses the user's images, with an accuracy gate against the float model.

The float model is exported to ONNX taking raw pixels (verified), activation ranges calibrated
(min/max), weights quantized per output channel (int8, symmetric) and activations per tensor
(uint8), in the QDQ format (docs/performance.md). The layers that lose most to int8 (the first
convolution, the score layers, the upsampling) can stay in float: with ``keep_float="auto"`` and
a validation set, they are only when that measurably raises mean IU.
"""

from __future__ import annotations

import inspect
import json
import math
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from fcnseg.export.common import ExportError, check_description, is_bare, quiet_tracing
from fcnseg.export.onnx_export import append_argmax, export_onnx, set_metadata
from fcnseg.metrics import confusion_matrix, scores
from fcnseg.models.exported import int8_dot_products
from fcnseg.utils.files import atomic_write_bytes
from fcnseg.utils.hardware import cpu_info
from fcnseg.utils.typing import PathLike
from fcnseg.weightfiles.artifacts import onnx_session

ENGINE = "onnxruntime"
#: ``keep_float`` choices: decide by measurement, all layers int8, or the sensitive ones float.
KEEP_FLOAT = ("auto", "none", "sensitive")
#: The float export's check: it guards against a wrong graph here (int8 differs far more),
#: and raw-pixel inputs make float32 rounding larger than on normalised ones.
EXPORT_ATOL = 1e-2
#: Mean IU points by which keeping the sensitive layers in float must win to be chosen.
MEASURABLE_GAIN = 0.1
#: Calibration images below which a note says so: min/max ranges are advised from "a few
#: hundred" pictures (TensorFlow Lite's representative dataset; the default takes 200).
FEW_CALIBRATION_IMAGES = 100


class QuantizeError(RuntimeError):
    """Quantization cannot run (engine missing, bad calibration set) or was refused."""


@dataclass(frozen=True)
class QuantizeOptions:
    """How :func:`quantize_model` works.

    Attributes:
        max_drop: largest mean IU drop (points, 0-100 scale) accepted by the gate.
        force: write the model even when the gate fails.
        keep_float: ``"auto"``, ``"none"`` or ``"sensitive"`` (see the module docstring).
        labels_out: the written graph ends in an argmax (uint8 labels).
        threads: ONNX Runtime threads for calibration and evaluation (None: torch's count).
        reduce_range: 7-bit weights (within ±64), which the 16-bit pair sums of CPUs without
            int8 dot products (VNNI) cannot saturate (2·255·64 < 2¹⁵), so that such a CPU
            computes what the gate measured. None: on when this CPU has no VNNI/AMX-INT8.
    """

    max_drop: float = 1.0
    force: bool = False
    keep_float: str = "auto"
    labels_out: bool = False
    threads: int | None = None
    reduce_range: bool | None = None


@dataclass
class Comparison:
    """The int8 model against the float one on a validation set (IU as fractions)."""

    images: int
    float_mean_iu: float
    int8_mean_iu: float
    float_iu: list[float]
    int8_iu: list[float]
    pixel_agreement: float

    @property
    def drop_points(self) -> float:
        """Mean IU lost, in points (0-100 scale); negative when int8 scores higher."""
        return 100.0 * (self.float_mean_iu - self.int8_mean_iu)

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "float_mean_iu": self.float_mean_iu,
                "int8_mean_iu": self.int8_mean_iu, "mean_iu_drop_points": self.drop_points,
                "float_iu": self.float_iu, "int8_iu": self.int8_iu,
                "pixel_agreement": self.pixel_agreement}

    def format(self, class_names: Sequence[str]) -> str:
        """Mean IU of both, per-class IU and its change, pixel agreement: the printed table."""
        lines = [f"mean IU: float {100 * self.float_mean_iu:.2f}, int8 "
                 f"{100 * self.int8_mean_iu:.2f} ({-self.drop_points:+.2f} points); pixel "
                 f"agreement {100 * self.pixel_agreement:.2f}% ({self.images} images)",
                 f"{'class':<20}{'float IU':>10}{'int8 IU':>10}{'delta':>8}"]
        for name, f, q in zip(class_names, self.float_iu, self.int8_iu, strict=False):
            delta = "-" if math.isnan(f) or math.isnan(q) else f"{100 * (q - f):+.2f}"
            lines.append(f"{name[:19]:<20}{_pct(f):>10}{_pct(q):>10}{delta:>8}")
        return "\n".join(lines)


def _pct(v: float) -> str:
    return "-" if math.isnan(v) else f"{100 * v:.2f}"


@dataclass
class QuantizeResult:
    """What :func:`quantize_model` did: the file (None when refused), the layers kept in float,
    the chosen variant's comparison (None without a validation set), every variant's."""

    path: str | None
    keep_float: list[str]
    comparison: Comparison | None
    variants: dict[str, Comparison] = field(default_factory=dict)
    calibration_images: int = 0
    size_bytes: int = 0
    refused: str | None = None


def _require_engine() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime.quantization as quantization
    except ImportError as e:
        raise QuantizeError(f"int8 quantization needs onnx and onnxruntime ({e.name} is not "
                            f"installed); install them with: pip install 'fcnseg[int8]'") \
            from None
    return onnx, quantization


def sensitive_nodes(proto: Any, num_classes: int) -> list[str]:
    """The nodes of an exported FCN that int8 hurts most: its first convolution, the score
    convolutions (``score*`` layers, or convolutions with ``num_classes`` outputs) and every
    transposed convolution (upsampling)."""
    weights = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    names = [convs[0].name] if convs else []
    for node in proto.graph.node:
        if node.op_type == "ConvTranspose":
            names.append(node.name)
        elif node.op_type == "Conv" and node.name not in names:
            dims = weights.get(node.input[1], ())
            if "score" in node.name.lower() or (dims and dims[0] == num_classes):
                names.append(node.name)
    return names


class _Reader:
    """ONNX Runtime's calibration data reader: each image as a 1×C×H×W float32 pixel batch."""

    def __init__(self, name: str, images: Iterator[np.ndarray]) -> None:
        self.batches = ({name: to_pixels(rgb)} for rgb in images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def to_pixels(rgb: np.ndarray) -> np.ndarray:
    """An H×W×C image (RGB, or raw band values) as the 1×C×H×W float32 batch exports take."""
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)


def quantize_model(model: nn.Module, out: PathLike, *, description: dict[str, Any],
                   calibration: Callable[[], Iterator[np.ndarray]],
                   validation: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]] | None = None,
                   options: QuantizeOptions = QuantizeOptions(),
                   log: Callable[[str], None] = print) -> QuantizeResult:
    """Quantize ``model`` (one input, one N×C×H×W logits output) to an int8 ONNX file at
    ``out``, gated on accuracy. ``description``: as :meth:`fcnseg.inference.Segmenter.describe`
    gives it; ``calibration`` and ``validation`` (or None): functions returning a fresh iterator
    of images as the model takes them, of (image, label) pairs. The result's ``path`` is None
    when the gate refused (``refused``: why); :class:`QuantizeError` (one line) for a bad
    description, no engine or calibration image, or a failure."""
    _check_quantizable(model, options, description)
    onnx, quantization = _require_engine()
    num_classes = len(description["class_names"])
    reduce_range = _reduce_range(options, log)
    count = sum(1 for _ in calibration())  # every image read once: bad ones fail now
    if count == 0:
        raise QuantizeError("the calibration set is empty: give a folder of images or a "
                            "dataset with at least one image")
    if count < FEW_CALIBRATION_IMAGES:
        log(f"note: calibrating on {count} images; min/max activation ranges want a few "
            f"hundred pictures like those the model will see ({FEW_CALIBRATION_IMAGES} at "
            f"least): give more, and measure the cost with a validation set (--val)")
    with tempfile.TemporaryDirectory(prefix="fcnseg-quantize-") as tmp:
        tmp_dir = Path(tmp)
        float_path, prepared = _float_onnx(quantization, model, description, tmp_dir, log)
        proto = onnx.load(str(prepared))
        variants = _variants(proto, num_classes, options.keep_float, validation is not None)
        log(f"calibrating activation ranges on {count} images")
        files = {name: _quantize_static(quantization, prepared, tmp_dir / f"int8-{name}.onnx",
                                        _Reader(proto.graph.input[0].name, calibration()),
                                        exclude, tmp_dir / "ranges.json", reduce_range)
                 for name, exclude in variants.items()}
        comparisons = _compare_variants(float_path, files, variants, validation, description,
                                        options.threads, log)
        chosen = _choose(comparisons, list(files), log)
        result = QuantizeResult(None, list(variants[chosen]), comparisons.get(chosen),
                                comparisons, count)
        forced = _accuracy_gate(result, description["class_names"], options, log)
        if result.refused:
            return result
        final = onnx.load(str(files[chosen]))
        record = _record(options, result, forced, reduce_range, pre_vnni_exact(final))
        _write_metadata(final, onnx.load(str(float_path), load_external_data=False), record)
        if options.labels_out:
            append_argmax(final, wide=num_classes > 256)
    data = final.SerializeToString()
    atomic_write_bytes(out, data)
    result.path, result.size_bytes = str(out), len(data)
    return result


def _check_quantizable(model: nn.Module, options: QuantizeOptions,
                       description: Mapping[str, Any]) -> None:
    check_description(description, QuantizeError, getattr(model, "num_classes", None))
    if options.keep_float not in KEEP_FLOAT:
        raise ValueError(f"keep_float must be one of {KEEP_FLOAT}, got {options.keep_float!r}")
    arch = getattr(model, "arch", type(model).__name__)
    if getattr(model, "input_names", ("color",)) not in (("color",), ["color"]) \
            or len(getattr(model, "head_classes", {}) or {}) > 1:
        raise QuantizeError(f"{arch}: int8 quantization takes models of one colour input and "
                            f"one output")
    if is_bare(model):  # calibration feeds raw pixels; the int8 graph takes them
        raise QuantizeError(f"{arch}: int8 quantization takes a model with its preprocessing "
                            f"(raw pixels in), not a bare network built with preprocess=False")


def _reduce_range(options: QuantizeOptions, log: Callable[[str], None]) -> bool:
    """Whether the weights are 7-bit: as asked, else where this CPU lacks int8 dot products."""
    if options.reduce_range is not None:
        return options.reduce_range
    reduce_range = not int8_dot_products()
    if reduce_range:
        log("this CPU has no int8 dot products (VNNI): weights in 7 bits (reduce_range), "
            "which its int8 kernels compute without saturating")
    return reduce_range


def _variants(proto: Any, num_classes: int, keep_float: str,
              validated: bool) -> dict[str, list[str]]:
    """``{variant: nodes kept in float}``; ``auto`` makes both only when it can compare them."""
    if keep_float == "auto" and not validated:
        return {"none": []}
    variants = {"none": [], "sensitive": sensitive_nodes(proto, num_classes)}
    return variants if keep_float == "auto" else {keep_float: variants[keep_float]}


def _compare_variants(float_path: Path, files: dict[str, Path],
                      variants: dict[str, list[str]],
                      validation: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]] | None,
                      description: dict[str, Any], threads: int | None,
                      log: Callable[[str], None]) -> dict[str, Comparison]:
    if validation is None:
        return {}
    num_classes = len(description["class_names"])
    ignore_index = int(description.get("ignore_index", 255))
    float_session = onnx_session(str(float_path), threads)
    comparisons: dict[str, Comparison] = {}
    for name, path in files.items():
        layers = ("every layer" if name == "none" else
                  f"{len(variants[name])} sensitive layers in float")
        log(f"evaluating int8 ({layers}) against float")
        comparisons[name] = compare_models(float_session, onnx_session(str(path), threads),
                                           validation, num_classes, ignore_index)
    return comparisons


def _accuracy_gate(result: QuantizeResult, class_names: list[str], options: QuantizeOptions,
                   log: Callable[[str], None]) -> bool:
    """``--max-drop``: sets ``result.refused`` (unless ``--force``); True when forced."""
    comparison = result.comparison
    if comparison is None:
        return False
    log(comparison.format(class_names))
    if comparison.drop_points <= options.max_drop:
        return False
    reason = (f"mean IU drops by {comparison.drop_points:.2f} points, more than "
              f"--max-drop {options.max_drop:g}")
    if not options.force:
        result.refused = reason + "; nothing written (--force writes it anyway)"
        return False
    log(f"warning: {reason}; writing it anyway (--force)")
    return True


def _float_onnx(quantization: Any, model: nn.Module, description: dict[str, Any],
                tmp_dir: Path, log: Callable[[str], None]) -> tuple[Path, Path]:
    """The verified raw-pixel float ONNX, and its copy prepared for quantization (or itself)."""
    log("exporting the float model to ONNX (raw pixels in, verified against PyTorch)")
    float_path, prepared = tmp_dir / "float.onnx", tmp_dir / "prepared.onnx"
    try:
        export_onnx(model, float_path, description=description, sample_size=(96, 96),
                    raw_pixels=True, atol=EXPORT_ATOL)
    except ExportError as e:
        raise QuantizeError(f"{ENGINE} cannot quantize this model: its ONNX export failed "
                            f"({str(e).splitlines()[0][:200]})") from None
    try:
        with quiet_tracing(Warning, logger=""):
            quantization.shape_inference.quant_pre_process(
                str(float_path), str(prepared), skip_symbolic_shape=True)
    except Exception:  # noqa: BLE001 - pre-processing is an optimisation, not required
        prepared = float_path
    return float_path, prepared


def _record(options: QuantizeOptions, result: QuantizeResult, forced: bool,
            reduce_range: bool, exact_without_vnni: bool) -> dict[str, Any]:
    """The ``quantization`` metadata of the written model."""
    comparison, cpu = result.comparison, cpu_info()
    return {
        "engine": ENGINE, "format": "QDQ",
        "weights": ("int7 (reduce_range)" if reduce_range else "int8")
        + ", per output channel, symmetric",
        "reduce_range": reduce_range,
        # True: a CPU without VNNI computes the same integers as the one the gate ran on.
        "exact_without_vnni": exact_without_vnni,
        "activations": "uint8, per tensor, min/max calibration",
        "calibration_images": result.calibration_images, "keep_float": result.keep_float,
        "max_drop_points": options.max_drop, "forced": forced,
        "validation": None if comparison is None else comparison.to_dict(),
        "variants": {k: v.to_dict() for k, v in result.variants.items()},
        # The CPU the gate measured on: its int8 dot products decide the kernels' sums.
        "measured_on": {"cpu": cpu.model,
                        "vnni": bool({"avx512_vnni", "avx_vnni"} & set(cpu.flags)),
                        "amx_int8": "amx_int8" in cpu.flags},
    }


def _choose(comparisons: dict[str, Comparison], names: list[str],
            log: Callable[[str], None]) -> str:
    """The all-int8 variant unless keeping the sensitive layers in float measurably helps."""
    if len(names) == 1:
        return names[0]
    full, mixed = comparisons["none"], comparisons["sensitive"]
    gain = full.drop_points - mixed.drop_points
    effect = (f"keeping the sensitive layers in float {'raises' if gain >= 0 else 'lowers'} "
              f"mean IU on --val by {abs(gain):.2f} points against all-int8 (needed: a gain "
              f"of at least {MEASURABLE_GAIN} points)")
    if gain >= MEASURABLE_GAIN:
        log(f"{effect}: sensitive layers in float")
        return "sensitive"
    log(f"{effect}: all layers int8")
    return "none"


def _quantize_static(quantization: Any, source: Path, target: Path, reader: _Reader,
                     exclude: Sequence[str], cache: Path, reduce_range: bool) -> Path:
    """ONNX Runtime's static QDQ quantization, reusing the calibration ranges where it can."""
    kwargs: dict[str, Any] = {}
    if "calibration_cache_path" in inspect.signature(quantization.quantize_static).parameters:
        kwargs["calibration_cache_path"] = str(cache)
    try:
        # The root logger at ERROR: the quantizer warns of every shape tensor left in float.
        with quiet_tracing(Warning, logger=""):
            quantization.quantize_static(
                str(source), str(target), reader,
                quant_format=quantization.QuantFormat.QDQ, per_channel=True,
                activation_type=quantization.QuantType.QUInt8,
                weight_type=quantization.QuantType.QInt8,
                calibrate_method=quantization.CalibrationMethod.MinMax,
                nodes_to_exclude=list(exclude), reduce_range=reduce_range, **kwargs)
    except QuantizeError:
        raise
    except Exception as e:  # noqa: BLE001 - the engine's errors are long and varied
        first = " ".join(str(e).split())[:200] or type(e).__name__
        raise QuantizeError(f"{ENGINE} cannot quantize this model: {first}") from None
    return target


def compare_models(reference: Any, int8: Any,
                   validation: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]],
                   num_classes: int, ignore_index: int) -> Comparison:
    """Score two ONNX sessions that take raw pixels on (image, label) pairs: mean and
    per-class IU of each and the fraction of (non-void) pixels where their labels agree."""
    confusions = [np.zeros((num_classes, num_classes), np.int64) for _ in range(2)]
    agree = total = images = 0
    for rgb, label in validation():
        x = to_pixels(rgb)
        preds = []
        for session, conf in zip((reference, int8), confusions, strict=True):
            out = session.run(None, {session.get_inputs()[0].name: x})[0]
            pred = out[0].argmax(0) if out.ndim == 4 else out[0]
            conf += confusion_matrix(label, pred, num_classes, ignore_index)
            preds.append(pred)
        valid = label != ignore_index
        agree += int((preds[0] == preds[1])[valid].sum())
        total += int(valid.sum())
        images += 1
    if images == 0:
        raise QuantizeError("the validation set is empty")
    ref, q = scores(confusions[0]), scores(confusions[1])
    return Comparison(images, float(ref["mean_iu"]), float(q["mean_iu"]),
                      [float(v) for v in ref["iu"]], [float(v) for v in q["iu"]],
                      agree / max(total, 1))


def pre_vnni_exact(proto: Any) -> bool:
    """Whether x86 CPUs without VNNI compute this QDQ model exactly: their ``vpmaddubsw`` sums
    pairs of u8 × s8 products in a saturating int16, so 2·255·|w| ≤ 32767 for every weight."""
    from onnx import TensorProto, numpy_helper

    weights = {t.name: t for t in proto.graph.initializer if t.data_type == TensorProto.INT8}
    largest = 0
    for node in proto.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in weights:
            w = numpy_helper.to_array(weights[node.input[0]]).astype(np.int32)
            largest = max(largest, int(np.abs(w).max(initial=0)))
    return 2 * 255 * largest <= 32767


def _write_metadata(proto: Any, float_proto: Any, record: dict[str, Any]) -> None:
    """The float export's metadata (description, raw pixels) plus ``quantization``."""
    meta = {e.key: e.value for e in float_proto.metadata_props}
    meta["quantization"] = json.dumps(record, allow_nan=True)
    # The int8 model's own figures when measured, the checkpoint's (float) ones beside them.
    float_metrics = json.loads(meta.pop("metrics", "{}") or "{}")
    metrics: dict[str, Any] = {}
    if record.get("validation"):
        metrics = {"mean_iu": record["validation"]["int8_mean_iu"],
                   "pixel_agreement_with_float": record["validation"]["pixel_agreement"]}
    if float_metrics:
        metrics["checkpoint"] = float_metrics
    if metrics:
        meta["metrics"] = json.dumps(metrics, allow_nan=True)
    set_metadata(proto, meta)

