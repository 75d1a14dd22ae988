"""Precision ``"auto"`` is what the hardware computes natively (:func:`auto_precision`).
That is ``"bf16"`` on a CPU with AVX512-BF16 or AMX-BF16 and on a CUDA GPU of compute capability
8.0 or newer, ``"fp16"`` on an older GPU, else ``"fp32"`` (emulated bfloat16 is slower than
float32)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

#: The precisions an inference entry point accepts.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

#: /proc/cpuinfo flags that mean bfloat16 dot products in hardware.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
#: /proc/cpuinfo flags of int8 dot products that sum u8·s8 products in 32 bits (without them,
#: x86 int8 kernels add each pair of products into a saturating int16 first).
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's model name and feature flags (as Linux spells them in /proc/cpuinfo)."""

    model: str
    flags: frozenset[str]

    @property
    def native_bf16(self) -> bool:
        """Whether the CPU has bfloat16 instructions (AVX512-BF16 or AMX-BF16)."""
        return bool(self.bf16_flags)

    @property
    def bf16_flags(self) -> list[str]:
        """The bfloat16 flags present, for reports."""
        return [flag for flag in BF16_CPU_FLAGS if flag in self.flags]


def parse_cpuinfo(text: str) -> CpuInfo:
    """The first processor's model name and flags from /proc/cpuinfo text (x86 ``flags``, ARM
    ``Features``)."""
    model, flags = "", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return CpuInfo(model=model, flags=flags)


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CPU (read once). Without /proc/cpuinfo (macOS, Windows) the flags are
    empty and torch's detected SIMD level stands in for the model name."""
    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return CpuInfo(model=f"cpu ({torch.backends.cpu.get_cpu_capability()})",
                       flags=frozenset())


def resolve_device(device: str | torch.device, local_rank: int | None = None) -> torch.device:
    """``"auto"``: CUDA when available, else CPU; ``"cuda"`` with a ``local_rank``: that
    process's GPU; anything else as ``torch.device`` (an unavailable CUDA device is one line)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and local_rank is not None:
        device = f"cuda:{local_rank}"
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        name = f"cuda:{device.index or 0}"  # the GPU that "cuda" would mean
        raise ValueError(f"device: {name!r} requested but CUDA is not available; use device=cpu")
    return device


def auto_precision(device: str | torch.device, *, cpu: CpuInfo | None = None,
                   capability: tuple[int, int] | None = None) -> str:
    """The fastest precision ``device`` runs natively (module docstring), for ``cpu`` (default:
    this machine's) or a CUDA device's ``capability`` (default: read from ``device``)."""
    device = torch.device(device)
    if device.type == "cpu":
        return "bf16" if (cpu or cpu_info()).native_bf16 else "fp32"
    if device.type == "cuda":
        if capability is None and torch.cuda.is_available():
            capability = torch.cuda.get_device_capability(device)
        return "bf16" if tuple(capability or (0, 0)) >= (8, 0) else "fp16"
    return "fp32"


def resolve_precision(precision: str | None, device: str | torch.device, **hardware) -> str:
    """``precision`` checked, ``"auto"`` (or None) replaced by :func:`auto_precision`."""
    name = "auto" if precision is None else str(precision).lower()
    if name not in PRECISIONS:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got "
                         f"{precision!r}")
    return auto_precision(device, **hardware) if name == "auto" else name


def default_channels_last(device: str | torch.device, precision: str) -> bool:
    """Whether inference should run channels-last: on the CPU (oneDNN's layout: 1.2-1.4× on
    FCN-8s), on CUDA with bf16/fp16 (tensor cores want NHWC), not fp32 on CUDA (as fast)."""
    device = torch.device(device)
    return device.type == "cpu" or (device.type == "cuda" and precision in ("bf16", "fp16"))
