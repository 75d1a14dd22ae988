"""Benchmarks: timing tools and the ``fcnseg bench`` suite (see docs/performance.md)."""

from fcnseg.bench.folder import write_synthetic_folder
from fcnseg.bench.suite import BenchConfig, format_report, run_suite, trained_looking
from fcnseg.bench.timing import (
    Timing,
    agreement,
    count_flops,
    matmul_peak,
    peak_rss_mb,
    time_interleaved,
)

__all__ = [
    "BenchConfig",
    "Timing",
    "agreement",
    "count_flops",
    "format_report",
    "matmul_peak",
    "peak_rss_mb",
    "run_suite",
    "time_interleaved",
    "trained_looking",
    "write_synthetic_folder",
]
