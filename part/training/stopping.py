"""Stopping at an epoch's end when asked, so a scheduler's time limit costs no finished epoch.

Slurm warns a job before its time limit (`--signal=USR1@120`): SIGUSR1 to this process, or the run's
stop file (RUN/stop_requested, written by the batch script; seen by every rank on every node of a shared
disk, and by a trainer still starting, before it could catch a signal). After the epoch's checkpoint the trainer stops with StoppedForLimit, and `part` exits with
STOPPED_FOR_LIMIT, so the scheduler's side knows the run can be resumed from that epoch.
"""

from __future__ import annotations

import signal
import threading

from part.runs import RunDir
from part.training import distributed as dist

STOPPED_FOR_LIMIT = 75  # EX_TEMPFAIL: "try again later", which is what `part resume` does


class StoppedForLimit(Exception):
    exit_code = STOPPED_FOR_LIMIT


class StopWatch:
    """Catches SIGUSR1 (in the main thread) while training; `due()` agrees over all ranks."""

    def __init__(self, run: RunDir):
        self.run, self.asked, self._previous = run, False, None
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGUSR1"):
            self._previous = signal.signal(signal.SIGUSR1, self._ask)

    def _ask(self, signum, frame) -> None:
        self.asked = True

    def due(self) -> bool:
        local = self.asked or self.run.stop_request() is not None
        return dist.all_reduce_sum([float(local)])[0] > 0  # every rank stops after the same epoch

    def honoured(self) -> None:
        """The stop is done: its request must not stop the resumed run too."""
        dist.barrier()  # every rank has read the request
        if dist.is_main():
            self.run.clear_stop()

    def close(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGUSR1, self._previous)
            self._previous = None
