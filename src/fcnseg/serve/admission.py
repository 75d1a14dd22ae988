"""Bounded concurrency with a bounded queue: how many requests the service holds at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio

from fcnseg.serve.errors import RequestError


class Admission:
    """At most ``max_concurrency`` requests running (``limiter`` caps the worker threads) and
    ``max_queue`` more admitted. ``admitted`` changes only on the event loop, so that
    :meth:`try_admit`'s check and increment cannot interleave with another's."""

    def __init__(self, max_concurrency: int, max_queue: int) -> None:
        self.limiter = anyio.CapacityLimiter(max_concurrency)
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.admitted = 0

    def load(self) -> dict[str, int]:
        """How busy the service is, as ``GET /healthz`` reports it (``waiting``: admitted,
        not holding a worker thread)."""
        running = int(self.limiter.borrowed_tokens)
        return {"running": running, "waiting": self.admitted - running,
                "max_concurrency": self.max_concurrency, "max_queue": self.max_queue}

    def busy_detail(self) -> str:
        """The 503 text: every place taken, and the numbers of :meth:`load` (``waiting`` counts
        those whose image header is being checked: a full service may have 0 running)."""
        load = self.load()
        return (f"server busy: all {self.admitted} places taken (max_concurrency "
                f"{load['max_concurrency']} + max_queue {load['max_queue']}): "
                f"{load['running']} running, {load['waiting']} waiting for a worker or having "
                f"their image checked; retry shortly")

    def try_admit(self) -> bool:
        """Take a place if one is free."""
        if self.admitted >= self.max_concurrency + self.max_queue:
            return False
        self.admitted += 1
        return True

    def release(self) -> None:
        """Give back a place taken by :meth:`try_admit`."""
        self.admitted -= 1

    @contextmanager
    def place(self) -> Iterator[None]:
        """Hold a place for the block; 503 (with ``Retry-After: 1``) when none is free."""
        if not self.try_admit():
            raise RequestError(503, self.busy_detail(), headers={"Retry-After": "1"})
        try:
            yield
        finally:
            self.release()
