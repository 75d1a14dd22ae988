"""Checkpoints are written in a background thread while training goes on.
A copy of the payload (much quicker than writing it) lets the next steps change the weights.
One write is in flight at a time; the next save raises a failed one, ``finish`` returns it."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fcnseg.checkpoint import write_checkpoint


def snapshot(obj: Any) -> Any:
    """``obj`` with every tensor in it copied (dicts, lists and tuples rebuilt)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, Mapping):
        return {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(snapshot(v) for v in obj)
    return obj


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
        copied = snapshot(payload)
        self.thread = threading.Thread(target=self._write, args=(path, copied),
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
