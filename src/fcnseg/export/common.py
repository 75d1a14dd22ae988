"""What both exporters share: model metadata, verification samples and the comparison."""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fcnseg import __version__
from fcnseg.checkpoint import palette_rows
from fcnseg.conventions import get_convention, input_text
from fcnseg.inference.sliding import forward_logits
from fcnseg.models.fastpath import is_plain, plain_copy
from fcnseg.models.preprocess import Preprocess, raw_pixel_model
from fcnseg.utils.keyed import first_of, keyed
from fcnseg.utils.validate import expect_mapping
from fcnseg.weightfiles.artifacts import (  # what readers of the graph look for
    RAW_PIXELS,
    REQUIRED_DESCRIPTION,
)

#: Largest absolute difference to PyTorch accepted when verifying an export (float32).
DEFAULT_ATOL = 1e-4
#: ... or up to this fraction of the largest logit: float32 rounding scales with the logits,
#: which reach the thousands in the reference FCN-8s.
DEFAULT_RTOL = 1e-4

#: Description keys of how the PyTorch model ran, left out of an export's metadata.
PYTORCH_ONLY = ("optimizations",)

#: Channels of each input modality a model may take by name.
MODALITY_CHANNELS = {"color": 3, "hha": 3, "depth": 1}

#: A verification sample: one tensor, or a dict of tensors keyed by modality.
Sample = torch.Tensor | dict[str, torch.Tensor]
#: Runs a written export on one sample: an array, or ``{head: array}`` for several heads.
RunExport = Callable[[Sample], Any]


class ExportError(RuntimeError):
    """An export failed or did not reproduce the PyTorch model's outputs."""


@dataclass(frozen=True)
class SampleCheck:
    """One verification run: the input shape and how far the export is from PyTorch."""

    shape: tuple[int, ...]
    max_abs_diff: float
    max_abs_logit: float
    #: The difference accepted: atol, or rtol times the largest logit where that is more.
    tolerance: float = DEFAULT_ATOL

    def __str__(self) -> str:
        return (f"input {'×'.join(map(str, self.shape))}: max |export − PyTorch| = "
                f"{self.max_abs_diff:.3g} (logits up to {self.max_abs_logit:.3g})")


@contextlib.contextmanager
def quiet_tracing(*also: type[Warning], logger: str | None = None) -> Iterator[None]:
    """Silence tracing's warnings, TorchScript's deprecation notice, the categories ``also``,
    and where given the records below ERROR of ``logger`` (``""``: the root logger)."""
    quieted = None if logger is None else logging.getLogger(logger)
    level = quieted.level if quieted else logging.NOTSET
    with warnings.catch_warnings():
        for category in (torch.jit.TracerWarning, DeprecationWarning, *also):
            warnings.simplefilter("ignore", category)
        try:
            if quieted:
                quieted.setLevel(logging.ERROR)
            yield
        finally:
            if quieted:
                quieted.setLevel(level)


class LogitsOnly(nn.Module):
    """A model answering torchvision-style ``{"out": logits, ...}``, returning the logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward_logits(self.model, x)


def _input_text(raw_pixels: bool, convention: Mapping[str, Any] | None, several: bool) -> str:
    """What the graph takes, in words, for the ``input`` metadata."""
    if several:
        if raw_pixels:
            return ("one N×C×H×W float32 raw input per modality, all of one size: color RGB "
                    "0-255; hha as stored, 0-255 (3 channels); depth in millimetres, 0 where "
                    "unknown (1 channel); the graph normalises each")
        return ("one N×C×H×W float32 input per modality, all of one size: color normalised per "
                "input_convention; hha minus the HHA mean (3 channels); depth log depth minus "
                "its mean (1 channel)")
    if not convention:  # a description without one: the input in general terms
        return ("N×3×H×W float32 RGB pixel values 0-255 (normalisation inside the graph)"
                if raw_pixels else "N×3×H×W float32, normalised per input_convention")
    return input_text(convention, raw_pixels=raw_pixels)


def check_description(description: Any, error: type[Exception] = ExportError,
                      num_classes: int | None = None) -> None:
    """Refuse in one line an export ``description`` without what fcnseg reads the file back
    by: ``class_names`` (``num_classes`` of them where given), ``palette``, ``input_convention``."""
    expect_mapping(description, "description", "a dict (Segmenter.describe() gives one)",
                   error=error)
    missing = [k for k in REQUIRED_DESCRIPTION if k not in description]
    if missing:
        raise error(f"description lacks {missing}, without which fcnseg cannot load the "
                    f"export: pass Segmenter(...).describe() (or a dict with class_names, "
                    f"palette and input_convention, e.g. model.input_convention.to_dict())")
    if not isinstance(description["class_names"], list | tuple):
        raise error(f"description: class_names: expected a list of names, got "
                    f"{type(description['class_names']).__name__}")
    names = description["class_names"]
    if isinstance(num_classes, int) and len(names) != num_classes:
        raise error(f"description: class_names: {len(names)} names for a model with "
                    f"{num_classes} classes")
    palette = description["palette"]
    if not isinstance(palette, list | tuple):
        raise error(f"description: palette: expected a list of [r, g, b] colours, got "
                    f"{type(palette).__name__}")
    try:
        palette_rows(palette, len(palette), error)
    except error as e:
        raise error(f"description: {e}") from None


#: How fcnseg reads an image file into the pixels a colour graph takes (``image_reading``).
IMAGE_READING = ("as fcnseg predict reads an image file: turned upright by its EXIF "
                 "orientation tag; transparent pixels blended with white (255, 255, 255) by "
                 "their alpha; grey repeated into RGB; 16-bit samples divided by 257")


def metadata_strings(description: Mapping[str, Any], *,
                     inputs: Sequence[str] | None = None,
                     outputs: Sequence[str] | None = None,
                     raw_pixels: bool = True) -> dict[str, str]:
    """A model description as string metadata, each value JSON-encoded, with ``input_names`` /
    ``output_names`` (``inputs`` / ``outputs`` of a model with several) and ``input_pixels``."""
    convention = description.get("input_convention")
    meta = {str(k): v for k, v in description.items() if k not in PYTORCH_ONLY}
    meta.update({
        "fcnseg_version": __version__,
        # The graph's own precision, whatever the model ran in before.
        "precision": "fp32",
        "input_pixels": RAW_PIXELS if raw_pixels else "normalized",
        "outputs": "logits",
        "input": _input_text(raw_pixels, convention, bool(inputs)),
        "output": "N×C×H×W float32 logits at the input's size; argmax over C is the label",
    })
    if raw_pixels and not inputs and (convention is None
                                      or get_convention(convention).bands is None):
        meta["image_reading"] = IMAGE_READING
    if inputs:
        meta["input_names"] = list(inputs)
    if outputs:
        meta["output_names"] = list(outputs)
        meta["output"] = ("one N×C×H×W float32 logits map per head, at the input's size; argmax "
                          "over C is the head's label")
    return {k: json.dumps(v) for k, v in meta.items()}


def checkpoint_record(validation_data: Mapping[str, Any] | None,
                      metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """What an export keeps of its checkpoint, as JSON values: ``validation_data`` (what
    ``fcnseg evaluate`` scores the export on by default) and ``metrics``; absent ones left out."""
    given = {"validation_data": validation_data, "metrics": metrics}
    return {k: json.loads(json.dumps(dict(v), default=str)) for k, v in given.items() if v}


def sample_batches(size: tuple[int, int], *, modalities: Sequence[str] | None = None,
                   channels: int = 3) -> list[Sample]:
    """Two batches of random raw images (float32 0-255): 1×C×H×W at ``size`` and 2×C×H'×W' at
    an odd other size, to prove dynamic axes. With ``modalities``, ``{modality: batch}`` each
    (depth in millimetres, 0.5 to 10 m, a few pixels unknown)."""
    h, w = size
    if h < 1 or w < 1:
        raise ValueError(f"sample size must be positive, got {size}")
    unknown = [m for m in modalities or () if m not in MODALITY_CHANNELS]
    if unknown:
        raise ExportError(f"no sample inputs for modality {unknown[0]!r}; known: "
                          f"{sorted(MODALITY_CHANNELS)}")
    second = (h + 37, max(1, w - 19) if w > 40 else w + 23)
    gen = torch.Generator().manual_seed(0)

    def image(n: int, hh: int, ww: int) -> torch.Tensor:
        return torch.randint(0, 256, (n, channels, hh, ww), generator=gen).float()

    def depth(n: int, hh: int, ww: int) -> torch.Tensor:
        mm = torch.randint(500, 10_000, (n, 1, hh, ww), generator=gen).float()
        return mm * (torch.rand(n, 1, hh, ww, generator=gen) > 0.05)

    sizes = ((1, (h, w)), (2, second))
    if not modalities:
        return [image(n, hh, ww) for n, (hh, ww) in sizes]
    return [{m: (depth if m == "depth" else image)(n, hh, ww) for m in modalities}
            for n, (hh, ww) in sizes]


@dataclass(frozen=True)
class ExportSubject:
    """What an exporter works on: a plain float32 CPU model in eval mode answering logits, its
    two verification samples, and its inputs and outputs where it has several (else None)."""

    model: nn.Module
    samples: list[Sample]
    inputs: tuple[str, ...] | None
    outputs: tuple[str, ...] | None
    raw_pixels: bool = True

    def metadata(self, description: Mapping[str, Any]) -> dict[str, str]:
        """:func:`metadata_strings` of ``description`` with this model's inputs and outputs."""
        return metadata_strings(description, inputs=self.inputs, outputs=self.outputs,
                                raw_pixels=self.raw_pixels)


def is_bare(model: nn.Module) -> bool:
    """Whether ``model`` is a bare network (``preprocess=False``), taking normalised input."""
    return isinstance(getattr(model, "preprocess", None), nn.Identity)


def export_subject(model: nn.Module, sample_size: tuple[int, int], *,
                   raw_pixels: bool | None = None) -> ExportSubject:
    """``model`` prepared for export, with samples of ``sample_size``; ``raw_pixels`` as
    :class:`~fcnseg.export.onnx_export.OnnxOptions` has it."""
    if raw_pixels is None:
        raw_pixels = not is_bare(model)
    elif raw_pixels and is_bare(model):
        raise ExportError("the model has no preprocessing (built with preprocess=False), so its "
                          "graph takes input normalised per its input convention, not raw "
                          "pixels: export it with raw_pixels=False (recorded as normalised "
                          "input), or export the model built with its preprocessing")
    # A plain float32 CPU copy for the tracer, unless the model is one already (a VGG16 FCN is
    # over 500 MB) and keeps its preprocessing.
    ready = raw_pixels and (is_plain(model) and not model.training and all(
        t.device.type == "cpu" and t.dtype == torch.float32
        for t in itertools.chain(model.parameters(), model.buffers()) if t.is_floating_point()))
    if not ready:
        model = plain_copy(model).to("cpu").float().eval()
    inputs = _several(getattr(model, "input_names", ()))  # modalities
    outputs = _several(getattr(model, "head_classes", {}))  # heads
    convention = getattr(model, "input_convention", None)
    channels = getattr(convention, "channels", 3)  # a multi-band model's band count
    samples = sample_batches(sample_size, modalities=inputs, channels=channels)  # raw pixels
    preprocess = getattr(model, "preprocess", None)
    if not raw_pixels and preprocess is not None:
        # The bare network, verified on what its preprocessing makes of the raw samples.
        normalise = preprocess if isinstance(preprocess, Preprocess) else \
            raw_pixel_model(model).preprocess
        with torch.no_grad():
            samples = [normalise(x) for x in samples]
        model.preprocess = nn.Identity()
    if getattr(model, "output", "tensor") == "dict":  # one output: the logits
        model = LogitsOnly(model).eval()
    return ExportSubject(model, samples, inputs, outputs, raw_pixels)


def verified_export(model: nn.Module, sample_size: tuple[int, int],
                    export: Callable[[ExportSubject], RunExport], *, what: str, description: Any,
                    raw_pixels: bool | None = None, atol: float = DEFAULT_ATOL,
                    rtol: float = DEFAULT_RTOL
                    ) -> tuple[ExportSubject, RunExport, list[SampleCheck]]:
    """What every exporter does around its format: check ``description``, prepare ``model``,
    let ``export(subject)`` write the file and answer a function running it as written, then
    compare it with PyTorch. A failure of ``export`` is one line ``"<what> failed: ..."``."""
    check_description(description, num_classes=getattr(model, "num_classes", None))
    subject = export_subject(model, sample_size, raw_pixels=raw_pixels)
    try:
        run = export(subject)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"{what} failed: {type(e).__name__}: {e}") from e
    return subject, run, check_samples(subject.model, run, subject.samples, atol, rtol)


def _several(names: Any) -> tuple[str, ...] | None:
    """The names of a model's inputs or heads where it has several; None for one."""
    names = tuple(names or ())
    return names if len(names) > 1 else None


def _arrays(value: Any) -> dict[str, np.ndarray]:
    """Outputs as ``{head: array}``; a single one as ``"logits"``."""
    return {"logits" if k is None else str(k):
            v.float().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
            for k, v in keyed(value).items()}


def _shape(x: Sample) -> tuple[int, ...]:
    """A sample's shape: its tensor's, or the first modality's with the channels of all."""
    first, inputs = first_of(x), keyed(x).values()
    return (first.shape[0], sum(t.shape[1] for t in inputs), *first.shape[2:])


def check_samples(model: nn.Module, run_export: Callable[[Any], Any], samples: Sequence[Sample],
                  atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL) -> list[SampleCheck]:
    """Run each sample through PyTorch and the export (every head of each); ExportError if a
    shape differs or the largest difference reaches ``atol``, or ``rtol`` times the largest
    logit where that is more."""
    checks = []
    for x in samples:
        with torch.inference_mode():
            refs = _arrays(model(x))
        gots = _arrays(run_export(x))
        if list(gots) != list(refs):
            raise ExportError(f"input {_shape(x)}: the export returned outputs {list(gots)}, "
                              f"PyTorch {list(refs)}")
        diff, largest = 0.0, 0.0
        for name, ref in refs.items():
            got = gots[name]
            if got.shape != ref.shape:
                where = "" if name == "logits" else f" for {name!r}"
                raise ExportError(f"input {_shape(x)}: the export returned shape {got.shape}"
                                  f"{where}, PyTorch {ref.shape} (sizes did not stay dynamic)")
            diff = max(diff, float(np.abs(got.astype(np.float64) - ref).max()))
            largest = max(largest, float(np.abs(ref).max()))
        check = SampleCheck(_shape(x), diff, largest, max(atol, rtol * largest))
        checks.append(check)
        if not diff < check.tolerance:
            noise = _float32_noise(model, x, refs["logits"]) if "logits" in refs else ""
            raise ExportError(f"{check}: not below the tolerance {check.tolerance:.3g} (--atol "
                              f"{atol:g}, or --rtol {rtol:g} of the largest logit){noise}")
    return checks


def _float32_noise(model: nn.Module, x: Sample, ref: np.ndarray) -> str:
    """Explain a failed check: how far PyTorch's own float32 result is from float64."""
    if not isinstance(x, torch.Tensor):
        return ""
    try:
        with torch.inference_mode():
            exact = copy.deepcopy(model).double()(x.double()).numpy()
    except Exception:  # noqa: BLE001 - only a hint; never hide the real failure
        return ""
    noise = float(np.abs(ref.astype(np.float64) - exact).max())
    return (f"; PyTorch's own float32 result differs from float64 by {noise:.3g} here, so with "
            f"logits this large the tolerance may need raising (--rtol)")
