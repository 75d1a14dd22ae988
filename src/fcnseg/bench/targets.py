"""Speed and accuracy targets as one machine-readable line each, and reading them back.

Every benchmark script under ``benchmarks/`` ends by printing one line per target it measures::

    TARGET <name> measured=<float> goal=<float> ok=<true|false>

``name`` has no spaces; ``ok`` is decided by the benchmark (whether higher or lower is better
is its business), so a reader never needs to know the direction. Further ``key=value`` fields
may follow ``ok`` and are kept. ``benchmarks/run_all.py`` (``make bench``) runs the scripts and
gathers these lines into one table.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_LINE = re.compile(r"^TARGET\s+(?P<name>\S+)\s+(?P<fields>.*)$")


@dataclass(frozen=True)
class Target:
    """One measured target: its value, its goal and whether the goal was met."""

    name: str
    measured: float
    goal: float
    ok: bool
    #: Further ``key=value`` fields of the line.
    extra: dict[str, str] = field(default_factory=dict)


def format_target(name: str, measured: float, goal: float, ok: bool | None = None) -> str:
    """The ``TARGET`` line for ``name``; ``ok`` defaults to ``measured >= goal``."""
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"target name must be one word without spaces, got {name!r}")
    if ok is None:
        ok = bool(math.isfinite(measured) and measured >= goal)
    return (f"TARGET {name} measured={float(measured):.6g} goal={float(goal):.6g} "
            f"ok={'true' if ok else 'false'}")


def print_target(name: str, measured: float, goal: float, ok: bool | None = None) -> None:
    """Print :func:`format_target`'s line (flushed, so that a reader of a pipe sees it)."""
    print(format_target(name, measured, goal, ok), flush=True)


def parse_targets(text: str) -> list[Target]:
    """Every well-formed ``TARGET`` line of ``text``, in order. A line that starts with
    ``TARGET`` but lacks ``measured``, ``goal`` or ``ok``, or whose numbers do not parse, raises
    ValueError naming the line: a benchmark that prints a broken line has a bug worth seeing."""
    targets = []
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        fields = dict(token.split("=", 1) for token in match["fields"].split() if "=" in token)
        try:
            measured, goal = float(fields.pop("measured")), float(fields.pop("goal"))
            ok = fields.pop("ok").lower()
        except (KeyError, ValueError) as e:
            raise ValueError(f"malformed TARGET line (needs measured=<float> goal=<float> "
                             f"ok=<true|false>): {line.strip()!r}") from e
        if ok not in ("true", "false"):
            raise ValueError(f"malformed TARGET line (ok must be true or false): "
                             f"{line.strip()!r}")
        targets.append(Target(match["name"], measured, goal, ok == "true", fields))
    return targets


@dataclass
class BenchmarkRun:
    """What one benchmark script gave: its targets, or why it measured nothing."""

    script: str
    #: Target names the script is expected to print: shown as "not measured" when it does
    #: not (a missing script, a crash, a timeout).
    expected: tuple[str, ...] = ()
    targets: list[Target] = field(default_factory=list)
    #: "ok", "missing", "failed (exit N)", "timed out after N s", "no TARGET lines" or
    #: "malformed TARGET line: ...".
    status: str = "ok"
    seconds: float = 0.0

    def rows(self) -> list[tuple[str, Target | None, str]]:
        """``(name, target or None, note)`` for every target measured and every expected one
        that was not (note: why not)."""
        rows: list[tuple[str, Target | None, str]] = [(t.name, t, "") for t in self.targets]
        measured = {t.name for t in self.targets}
        why = {"missing": "script missing",
               "ok": "not printed by the script"}.get(self.status, self.status)
        rows += [(name, None, why) for name in self.expected if name not in measured]
        if not rows:
            rows.append(("(any)", None, why))
        return rows


def run_benchmark(script: Path, args: Sequence[str] = (), *, expected: Sequence[str] = (),
                  timeout: float | None = None, echo: Callable[[str], None] | None = print,
                  python: str = sys.executable) -> BenchmarkRun:
    """Run ``python script args...`` and gather its ``TARGET`` lines.

    Its output is passed line by line to ``echo`` as it comes (None: kept quiet). A script
    that does not exist, fails, runs past ``timeout`` seconds or prints no ``TARGET`` line is
    reported as such; the targets it printed before failing are kept."""
    if not script.is_file():
        return BenchmarkRun(script=script.name, expected=tuple(expected), status="missing")
    return run_command(script.name, [python, str(script), *args], expected=expected,
                       timeout=timeout, echo=echo)


def run_command(name: str, command: Sequence[str], *, expected: Sequence[str] = (),
                timeout: float | None = None,
                echo: Callable[[str], None] | None = print) -> BenchmarkRun:
    """:func:`run_benchmark` for any command (e.g. ``python -m fcnseg bench``), reported
    under ``name``."""
    run = BenchmarkRun(script=name, expected=tuple(expected))
    start = time.perf_counter()
    proc = subprocess.Popen(list(command), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            start_new_session=True)  # its own group: a timeout ends it all
    lines: list[str] = []

    def read() -> None:  # in a thread, so that a silent, hung script still times out
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if echo is not None:
                echo(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the script and anything it started
        proc.wait()
        run.status = f"timed out after {timeout:.0f} s"
    except BaseException:  # Ctrl-C: the script is in its own group and would live on
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    reader.join()
    run.seconds = time.perf_counter() - start
    try:
        run.targets = parse_targets("".join(lines))
    except ValueError as e:
        run.status = str(e)
        return run
    if run.status == "ok" and proc.returncode != 0:
        run.status = f"failed (exit {proc.returncode})"
    if run.status == "ok" and not run.targets:
        run.status = "no TARGET lines"
    return run


def format_targets_table(runs: Sequence[BenchmarkRun]) -> str:
    """One Markdown table of every target of ``runs``: benchmark, target, measured, goal and
    whether it was met ("yes", "NO", or "not measured: <why>")."""
    header = ["benchmark", "target", "measured", "goal", "met"]
    body = []
    for run in runs:
        for name, target, note in run.rows():
            if target is None:
                body.append([run.script, name, "-", "-", f"not measured: {note}"])
            else:
                body.append([run.script, name, f"{target.measured:.4g}", f"{target.goal:.4g}",
                             "yes" if target.ok else "NO"])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])
