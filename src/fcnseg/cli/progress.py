"""Progress for long commands: a bar on a terminal, a plain line now and then in a log file."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from tqdm import tqdm

from fcnseg.engine.budget import format_duration

LINE_EVERY_S = 30.0


class Progress:
    """Counts done items of ``total``: a tqdm bar when ``file`` is a terminal; otherwise (a log
    file or a pipe, as under nohup or cron) a line with the count, speed and time left every
    ``every`` seconds (``LINE_EVERY_S``), and a last line with the time taken. ``off`` (as
    ``--no-progress``) shows neither. Updating costs one clock read."""

    def __init__(self, total: int, *, unit: str, desc: str, off: bool = False,
                 every: float | None = None, file: IO[str] | None = None,
                 closing_line: bool = True) -> None:
        self.file = file if file is not None else sys.stderr
        self.total, self.unit, self.desc = total, unit, desc
        self.every = LINE_EVERY_S if every is None else every
        #: Whether progress goes to a log as lines (not off, and no terminal).
        self.in_log = self.lines = not off and not _is_terminal(self.file)
        #: Whether the last line is this one's (off: a caller says it for several, e.g. the
        #: processes of a torchrun).
        self.closing_line = closing_line
        self.bar = tqdm(total=total, unit=unit, desc=desc, file=self.file,
                        disable=off or self.lines)
        self.done = self.failed = 0
        self.started = self.line_at = time.perf_counter()

    def update(self, n: int = 1, *, failed: bool = False) -> None:
        """``n`` more items done (``failed``: tried and skipped, counted apart in the last
        line)."""
        self.bar.update(n)
        self.done += n
        self.failed += n if failed else 0
        if not self.lines:
            return
        now = time.perf_counter()
        if now - self.line_at >= self.every and self.done < self.total:
            self.line_at = now
            speed = self.done / max(now - self.started, 1e-9)
            eta = format_duration((self.total - self.done) / max(speed, 1e-9))
            self._say(f"{self.done}/{self.total} {self.unit}s ({100 * self.done / self.total:.0f}%"
                      f"), {speed:.3g} {self.unit}s/s, ETA {eta}")

    def elapsed(self) -> float:
        """Seconds since the progress began."""
        return time.perf_counter() - self.started

    def close(self) -> None:
        """The bar closed; in a log, a last line when anything was done (unless
        ``closing_line`` is off)."""
        self.bar.close()
        if self.lines and self.closing_line and self.done:
            self._say(closing_text(self.done - self.failed, self.failed, self.elapsed(),
                                   self.unit))
        self.lines = False

    def _say(self, line: str) -> None:
        print(f"{self.desc}: {line}", file=self.file, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: Any) -> None:
        if kind is not None:  # stopped by an error: no line claiming it finished
            self.lines = False
        self.close()


def closing_text(done: int, failed: int, seconds: float, unit: str) -> str:
    """The last line's text: ``"2 images in 1s (2.1 images/s); 2 failed"``, the speed of the
    ``done`` items only."""
    return (f"{done} {unit}{'' if done == 1 else 's'} in {format_duration(seconds)} "
            f"({done / max(seconds, 1e-9):.3g} {unit}s/s)"
            + (f"; {failed} failed" if failed else ""))


def _is_terminal(file: IO[str]) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream: no terminal
        return False
