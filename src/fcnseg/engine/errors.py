"""How a training run stops on bad numbers or bad data: the errors and their one-line texts."""

from __future__ import annotations

import re

from fcnseg.data import DataError

#: What to do about a sample that cannot be read (a recipe's field, in a file or given to
#: ``train`` from Python).
FIX_DATA = "find every bad sample with `fcnseg check-data`, or set data.skip_bad: true"
#: How to go on with a stopped run, from the command line and from Python.
CONTINUE_RUN = "continue it with --resume (train(..., resume=True) from Python)"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


class BadSampleError(ValueError):
    """A training or validation sample could not be read; the message names the file, says
    what was saved and how to go on."""


def data_error_message(error: BaseException) -> str | None:
    """``"<file>: <problem>"`` when ``error`` is a sample that could not be read, in this
    process or in a DataLoader worker (whose DataError arrives as a RuntimeError holding the
    worker's traceback as text); None for any other error."""
    if isinstance(error, DataError):
        return str(error)
    text = str(error)
    if isinstance(error, RuntimeError) and text.startswith("Caught DataError"):
        found = re.search(r"^\S*DataError: (.*)", text, re.MULTILINE | re.DOTALL)
        if found:
            return " ".join(found.group(1).split())
    return None


def bad_sample(message: str, when: str, saved: str) -> BadSampleError:
    """One line: the file and its problem, how to find and skip bad samples, when the run
    stopped and what it saved."""
    fix = "" if "check-data" in message else f"; {FIX_DATA}"
    return BadSampleError(f"{message.rstrip('.')}{fix}. {when}; {saved}")
