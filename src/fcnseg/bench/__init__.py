"""Benchmarks: timing tools and the ``fcnseg bench`` suite (see docs/performance.md)."""

from fcnseg.bench.suite import BenchConfig, format_report, run_suite, trained_looking
from fcnseg.bench.timing import Timing, agreement, time_interleaved

__all__ = ["BenchConfig", "Timing", "agreement", "format_report", "run_suite",
           "time_interleaved", "trained_looking"]
