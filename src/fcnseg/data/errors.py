"""The error raised for a bad sample on disk."""

from __future__ import annotations

import re

#: What a user can do about a bad sample; every :class:`DataError` ends with it by default.
BAD_SAMPLE_HINT = ("run 'fcnseg check-data' to list every bad sample, or skip them: "
                   "data.skip_bad: true in a recipe, fcnseg.data.SkipBad(dataset) in Python")

# The last line of a formatted traceback that ends in a DataError ("pkg.mod.DataError: ...").
_FINAL_LINE = re.compile(r"^[\w.]*DataError: (.*)$", re.MULTILINE)


class DataError(ValueError):
    """A sample on disk is bad: ``str(error)`` is one line of its ``path``, ``problem`` and
    ``hint``. From a DataLoader worker's traceback (one argument) it keeps the original line."""

    def __init__(self, path: object, problem: str | None = None,
                 hint: str | None = BAD_SAMPLE_HINT) -> None:
        if problem is None:  # one argument: a message, e.g. torch's text from a worker
            found = _FINAL_LINE.findall(str(path))
            message = found[-1].strip() if found else str(path).strip()
            self.path, _, self.problem = message.partition(": ")
            if not self.problem:
                self.path, self.problem = "", message
            self.hint = None
            if hint and self.problem.endswith(f"; {hint}"):
                self.problem, self.hint = self.problem[: -len(hint) - 2], hint
            super().__init__(message)
            return
        self.path, self.problem, self.hint = str(path), problem, hint
        super().__init__(f"{self.path}: {problem}" + (f"; {hint}" if hint else ""))

    def __reduce__(self) -> tuple:
        return type(self), (self.path, self.problem, self.hint)


def problem_line(error: Exception) -> str:
    """A bad sample's error as ``"file: what is wrong"``, without the advice a
    :class:`DataError` ends with (said once for all the problems listed)."""
    return f"{error.path}: {error.problem}" if isinstance(error, DataError) else str(error)
