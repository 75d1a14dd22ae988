"""Checkpoints are written in a background thread while training goes on.
A copy of the payload (much quicker than writing it) lets the next steps change the weights.
One write is in flight at a time; the next save raises a failed one, ``finish`` returns it."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fcnseg.checkpoint import write_checkpoint


class CheckpointWriter:
    """Writes checkpoints one at a time, in the background when asked."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def write(self, path: Path, payload: Mapping[str, Any], *, background: bool) -> None:
        """Write ``payload`` to ``path``: now, or in a thread from a copy of it."""
        self.wait()
        if not background:
            write_checkpoint(path, payload)
            return
        self.thread = threading.Thread(target=self._write, args=(path, copy.deepcopy(payload)),
                                       name="fcnseg-checkpoint")
        self.thread.start()

    def _write(self, path: Path, payload: Mapping[str, Any]) -> None:
        try:
            write_checkpoint(path, payload)
        except BaseException as e:  # raised on the training thread by the next save/finish
            self.error = e

    def finish(self) -> BaseException | None:
        """Wait for the write in flight; the error it ended with, if any."""
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        error, self.error = self.error, None
        return error

    def wait(self) -> None:
        """Wait for the write in flight; raise its error, if any."""
        error = self.finish()
        if error is not None:
            raise error
