"""Timing, FLOP counting, peak throughput and memory: the measuring tools of ``fcnseg bench``.
Variants are timed interleaved (A, B, A, B, …), so that other work slows every one alike."""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fcnseg.utils.files import proc_value


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one variant: every sample, and their median, extremes and spread."""

    samples: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("a Timing needs at least one sample")

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    @property
    def spread(self) -> float:
        """(max − min) / median: how much the samples disagree."""
        return (self.high - self.low) / self.median if self.median > 0 else 0.0

    def paired_speedup(self, base: Timing) -> float:
        """How many times faster than ``base`` (timed in the same rounds): the median of the
        per-round ratios, steadier on a shared machine than the ratio of the medians."""
        return statistics.median(b / s for s, b in zip(self.samples, base.samples, strict=True))

    def as_dict(self) -> dict:
        """JSON-ready form: median, low, high, the samples and the spread."""
        return {"median": self.median, "low": self.low, "high": self.high,
                "samples": list(self.samples), "spread": self.spread}


def synchronize(device: torch.device | str) -> None:
    """Wait for queued work on ``device`` (CUDA kernels run asynchronously)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(variants: Mapping[str, Callable[[], object]], *, warmup: int = 1,
                     repeats: int = 5, device: torch.device | str = "cpu", clock: str = "wall",
                     progress: Callable[[int, int], None] | None = None) -> dict[str, Timing]:
    """Time each callable ``repeats`` times, round-robin, after ``warmup`` rounds: one
    :class:`Timing` per variant name. ``clock="cpu"`` measures this process's CPU time, which
    with one torch thread counts only the work done however loaded the cores (more threads add
    their spin-waiting). ``progress(done, total)`` is called after each round, warm-ups too.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}")
    now = time.perf_counter if clock == "wall" else time.process_time
    rounds = warmup + repeats
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for done in range(1, rounds + 1):
        for name, fn in variants.items():
            gc.collect()
            synchronize(device)
            start = now()
            fn()
            synchronize(device)
            if done > warmup:
                samples[name].append(now() - start)
        if progress is not None:
            progress(done, rounds)
    return {name: Timing(tuple(s)) for name, s in samples.items()}


def round_logger(log: Callable[[str], None], what: str, every: int = 1
                 ) -> Callable[[int, int], None]:
    """A ``progress`` callback for :func:`time_interleaved` that logs every ``every``-th round
    of ``what``, and the last, with the seconds since it was made."""
    start = time.perf_counter()

    def report(done: int, total: int) -> None:
        if done % every == 0 or done == total:
            log(f"  {what}: round {done}/{total} ({time.perf_counter() - start:.0f} s)")

    return report


def count_flops(model: nn.Module, *inputs: torch.Tensor, backward: bool = False) -> int:
    """FLOPs of one call of ``model`` (and its backward) counted by torch's FlopCounterMode: a
    multiply-add 2, element-wise work 0, as in the usual GFLOP figures."""
    counter = FlopCounterMode(display=False)
    with counter:
        if backward:
            out = model(*inputs)
            out.float().sum().backward()
        else:
            with torch.no_grad():
                model(*inputs)
    return int(counter.get_total_flops())


def matmul_variants(dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu", *,
                    size: int = 4096, seed: int = 0) -> dict[str, Callable[[], torch.Tensor]]:
    """A ``size``³ matrix product (``2·size³`` FLOPs) through each GEMM library on ``device``:
    ``"torch.mm"``, and on a CPU with oneDNN ``"oneDNN"`` as :func:`fcnseg.models.optimize`'s
    layers call it (MKL's float32 sgemm reaches about half of it on AMD CPUs)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    a = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
    variants: dict[str, Callable[[], torch.Tensor]] = {"torch.mm": lambda: torch.mm(a, b)}
    onednn_dtypes = (torch.float32,) + (
        (torch.bfloat16,) if torch.ops.mkldnn._is_mkldnn_bf16_supported() else ())
    if (torch.device(device).type == "cpu" and torch.backends.mkldnn.is_available()
            and dtype in onednn_dtypes):
        # oneDNN's linear computes a·wᵀ: b.t() as w makes it a·b.
        w = b.t().contiguous()
        variants["oneDNN"] = lambda: torch.ops.mkldnn._linear_pointwise(a, w, None, "none", [], "")
    return variants


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB), from /proc/self/status (VmHWM)."""
    if (peak := proc_value("/proc/self/status", "VmHWM")) is not None:
        return int(peak) / 1024
    import resource  # POSIX only, and only needed where /proc is missing

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset the peak-RSS mark (Linux ≥ 4.0, writing 5 to clear_refs); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine from /proc/stat; None where unavailable."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


class OtherLoad:
    """How busy the machine was with *other* processes during a ``with`` block: ``fraction`` of
    all cores' time (on 2 cores, 0.5 = one core's worth of other work)."""

    fraction: float | None = None

    def __enter__(self) -> OtherLoad:
        self._machine = _cpu_ticks()
        self._own = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        end = _cpu_ticks()
        if self._machine is None or end is None:
            return
        tick = os.sysconf("SC_CLK_TCK")
        busy = (end[0] - self._machine[0]) / tick
        total = (end[1] - self._machine[1]) / tick
        own = time.process_time() - self._own
        if total > 0:
            self.fraction = max(0.0, min(1.0, (busy - own) / total))

    def summary(self, clock: str = "wall") -> str | None:
        """One line on the other processes' share, with a warning where it spoils wall-clock
        ratios; None where it was not measured."""
        if self.fraction is None:
            return None
        return (f"other processes used {self.fraction:.0%} of the machine's CPU time meanwhile"
                + (" - wall-clock ratios are unreliable; see docs/performance.md"
                   if self.fraction > 0.1 and clock == "wall" else ""))


def agreement(reference: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    """How far ``other`` logits are from ``reference``: max |Δ| and argmax agreement (%)."""
    reference, other = reference.float(), other.float()
    same_label = (reference.argmax(1) == other.argmax(1)).float().mean().item()
    return {"max_abs_diff": (reference - other).abs().max().item(),
            "argmax_agreement_pct": 100.0 * same_label}
