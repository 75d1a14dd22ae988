"""A run stops cleanly on SIGINT/SIGTERM and saves ``last.pt``.
The main process turns the signal into a flag that the loop checks between iterations. `timeout`,
Slurm and Kubernetes signal the whole process group, so the loader's workers must survive it; a
SIGTERM from the main process itself (how DataLoader ends a stuck worker) still ends one."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from torch.utils.data import DataLoader

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
T = TypeVar("T")


class StopRequest:
    """SIGINT/SIGTERM set :attr:`signum`, which the loop checks between iterations; a second
    SIGINT interrupts at once; with ``at_once``, the first signal of either does (a
    KeyboardInterrupt, :attr:`signum` set), for work that no loop here checks between steps;
    ``at_once`` may be turned off once such work is done (a flag from then on).
    The previous handlers come back on exit, except after an error for which
    ``ignore_after(error)`` is true: both signals are then ignored so that the process can
    report it (torchrun sends SIGTERM to the others when one fails)."""

    def __init__(self, ignore_after: Callable[[BaseException], bool] | None = None,
                 at_once: bool = False) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._ignore_after, self.at_once = ignore_after, at_once

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.at_once or self.signum is not None and signum == signal.SIGINT:
            self.signum = self.signum or signum
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, exc_type: Any, error: BaseException | None, traceback: Any) -> None:
        ignore = error is not None and self._ignore_after is not None \
            and self._ignore_after(error)
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_IGN if ignore else handler)


def until_signal(work: Callable[[], T]) -> tuple[T | None, int | None]:
    """``work()``, which SIGINT or SIGTERM stops at once: its result and None, or None and the
    signal that stopped it."""
    with StopRequest(at_once=True) as stop:
        try:
            return work(), None
        except KeyboardInterrupt:
            if stop.signum is None:
                raise
    return None, stop.signum


def stop_handlers() -> dict[int, Any]:
    """The current SIGINT and SIGTERM handlers (none outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}


def restore_handlers(handlers: dict[int, Any]) -> None:
    """Put back what :func:`stop_handlers` returned."""
    for sig, handler in handlers.items():
        if handler is not None:  # None: a handler not set from Python, left as it is
            signal.signal(sig, handler)


# Telling who sent a signal needs sigwaitinfo (Linux and most Unixes; not macOS or Windows).
_KNOWS_SENDER = hasattr(signal, "sigwaitinfo") and hasattr(signal, "pthread_sigmask")


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: leave SIGINT and SIGTERM to the main process, which saves
    and then shuts the workers down; its own SIGTERM still ends the worker (where the sender
    can be told; elsewhere SIGTERM is ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not _KNOWS_SENDER:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return
    # SIGTERM stays blocked (start_batches blocked it across the fork) and a thread takes each
    # one, with its sender; SIGINT, now ignored, is unblocked (one pending is discarded).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    threading.Thread(target=_exit_on_sigterm_from, args=(os.getppid(),), daemon=True,
                     name="fcnseg-sigterm").start()


def _exit_on_sigterm_from(parent: int) -> None:
    while True:
        if signal.sigwaitinfo({signal.SIGTERM}).si_pid == parent:
            os._exit(0)  # as torch's own worker handler does for its parent's SIGTERM


def start_batches(loader: DataLoader) -> Iterator[Any]:
    """``iter(loader)``, which forks the workers, with SIGINT/SIGTERM blocked: a signal to the
    group before a worker's :func:`ignore_stop_signals` stays pending there (then discarded)
    instead of killing it; the main process receives its copy once the fork is done."""
    if loader.num_workers == 0 or not hasattr(signal, "pthread_sigmask"):
        return iter(loader)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        return iter(loader)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
