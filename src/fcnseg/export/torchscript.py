"""TorchScript export by tracing, verified on a second input size.

Tracing records the crops' sizes as shape computations on the input (not constants), so one
trace serves every input size; :func:`export_torchscript` checks that on a sample of another
size and batch before writing. The model description travels inside the archive as the extra
file ``fcnseg.json`` (``torch.jit.load(path, _extra_files={"fcnseg.json": ""})``).
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fcnseg.conventions import CAFFE_BGR
from fcnseg.export.common import (
    DEFAULT_ATOL,
    ExportError,
    SampleCheck,
    check_samples,
    logits_model,
    metadata_strings,
    sample_batches,
)
from fcnseg.models.fastpath import plain_copy
from fcnseg.utils.files import atomic_write_bytes
from fcnseg.utils.typing import PathLike

__all__ = ["METADATA_FILE", "TorchScriptExport", "export_torchscript", "read_torchscript_metadata"]

METADATA_FILE = "fcnseg.json"


@dataclass(frozen=True)
class TorchScriptExport:
    """Result of :func:`export_torchscript`."""

    path: str
    checks: list[SampleCheck]
    size_bytes: int


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence tracing's shape-check warnings and TorchScript's deprecation notice (TorchScript
    is still what most deployment tools load; ``torch.export`` is the successor)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def export_torchscript(
    model: nn.Module,
    path: PathLike,
    *,
    description: Mapping[str, Any],
    sample_size: tuple[int, int] = (224, 224),
    atol: float = DEFAULT_ATOL,
) -> TorchScriptExport:
    """Trace ``model`` on the CPU and save it at ``path`` after checking two sample sizes.

    Raises:
        ExportError: tracing failed or the saved module differs from PyTorch by ``atol`` or
            more on either sample; ``path`` is then left as it was.
    """
    model = plain_copy(model).to("cpu").float().eval()  # plain layers for the tracer
    samples = sample_batches(sample_size, getattr(model, "input_convention", CAFFE_BGR))
    model = logits_model(model)  # one output: the logits
    meta = {k: json.loads(v) for k, v in metadata_strings(description).items()}
    try:
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(model, samples[0], check_trace=False)
            buf = io.BytesIO()
            torch.jit.save(traced, buf, _extra_files={METADATA_FILE: json.dumps(meta)})
    except Exception as e:
        raise ExportError(f"TorchScript tracing failed: {type(e).__name__}: {e}") from e
    data = buf.getvalue()
    # Verify the saved bytes, not the in-memory trace: that is what users will load.
    with _quiet():
        loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")

    def run(x: torch.Tensor) -> Any:
        with torch.no_grad():
            return loaded(x).numpy()

    checks = check_samples(model, run, samples, atol)
    atomic_write_bytes(path, data)
    return TorchScriptExport(str(path), checks, len(data))


def read_torchscript_metadata(path: PathLike) -> dict[str, Any]:
    """The description saved by :func:`export_torchscript` in a TorchScript file."""
    extra = {METADATA_FILE: ""}
    with _quiet():
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return json.loads(extra[METADATA_FILE]) if extra[METADATA_FILE] else {}
