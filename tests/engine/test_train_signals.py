"""DataLoader workers and stop signals: a SIGTERM sent to the whole process group is left to
the main process, while the main process can still end its workers."""

from __future__ import annotations

import multiprocessing
import subprocess
import time

from torch.utils.data import DataLoader

from fcnseg.engine.signals import ignore_stop_signals, start_batches


def test_a_worker_outlives_sigterm_from_another_process_and_ends_on_its_parents() -> None:
    before = {p.pid for p in multiprocessing.active_children()}
    loader = DataLoader(list(range(64)), batch_size=1, num_workers=1,
                        worker_init_fn=ignore_stop_signals)
    batches = start_batches(loader)
    next(batches)  # the worker has run its init function
    (worker,) = [p for p in multiprocessing.active_children() if p.pid not in before]
    try:
        # as `timeout` or Slurm would: the sender is not the worker's parent
        subprocess.run(["kill", "-TERM", str(worker.pid)], check=True)
        time.sleep(0.5)  # ample time for the signal to act
        assert worker.is_alive()
        # as DataLoader's shutdown and multiprocessing's exit do for a worker still running
        worker.terminate()
        worker.join(timeout=20)
        assert worker.exitcode == 0
    finally:
        if worker.is_alive():
            worker.kill()
        del batches
