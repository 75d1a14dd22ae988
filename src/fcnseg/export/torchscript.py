"""TorchScript export by tracing, verified on a second input size and batch.

The description travels in the archive as the extra file ``fcnseg.json``, read without loading
the code (:func:`fcnseg.export.read_torchscript_metadata`). A model of several inputs or heads
takes and returns ``Dict[str, Tensor]``, as the PyTorch models do.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fcnseg.export.common import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    ExportSubject,
    RunExport,
    SampleCheck,
    quiet_tracing,
    verified_export,
)
from fcnseg.utils.files import atomic_write_bytes
from fcnseg.utils.typing import PathLike
from fcnseg.weightfiles.artifacts import TORCHSCRIPT_METADATA


@dataclass(frozen=True)
class TorchScriptExport:
    """Result of :func:`export_torchscript`."""

    path: str
    checks: list[SampleCheck]
    size_bytes: int


def export_torchscript(model: nn.Module, path: PathLike, *, description: Mapping[str, Any],
                       sample_size: tuple[int, int] = (224, 224), atol: float = DEFAULT_ATOL,
                       rtol: float = DEFAULT_RTOL,
                       raw_pixels: bool | None = None) -> TorchScriptExport:
    """Trace ``model`` on the CPU and save it at ``path`` after checking two sample sizes;
    ``raw_pixels`` and ``description`` as for :func:`~fcnseg.export.onnx_export.export_onnx`.

    Raises:
        ExportError: a bad description, a failed trace, or the saved module differs from
            PyTorch by ``atol`` or more on either sample; ``path`` is then left as it was.
    """
    buf = io.BytesIO()

    def trace(subject: ExportSubject) -> RunExport:
        heads = subject.outputs
        meta = {k: json.loads(v) for k, v in subject.metadata(description).items()}
        with quiet_tracing(), torch.no_grad():
            # strict=False keeps a dict input or output (a fixed structure here).
            traced = torch.jit.trace(subject.model, (subject.samples[0],), check_trace=False,
                                     strict=not (subject.inputs or heads))
            torch.jit.save(traced, buf, _extra_files={TORCHSCRIPT_METADATA: json.dumps(meta)})
        # Verify the saved bytes, not the in-memory trace: that is what users will load.
        with quiet_tracing():
            loaded = torch.jit.load(io.BytesIO(buf.getvalue()), map_location="cpu")

        def run(x: Any) -> Any:
            with torch.no_grad():
                out = loaded(x)
            return {k: v.numpy() for k, v in out.items()} if heads else out.numpy()

        return run

    _, _, checks = verified_export(model, sample_size, trace, what="TorchScript tracing",
                                   description=description, raw_pixels=raw_pixels,
                                   atol=atol, rtol=rtol)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return TorchScriptExport(str(path), checks, len(data))
