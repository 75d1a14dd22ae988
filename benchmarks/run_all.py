"""The full benchmark suite (what ``make bench`` runs): ``fcnseg bench`` with its defaults.

Extra arguments go to ``fcnseg bench`` (e.g. ``--quick``, ``--compile``, ``--out FILE``); the
JSON lands in benchmarks/results/bench.json unless ``--out`` is given.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fcnseg.cli.main import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--out" not in argv:
        argv += ["--out", str(Path(__file__).parent / "results" / "bench.json")]
    sys.exit(main(["bench", *argv]))
