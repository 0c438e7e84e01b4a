"""The run's status.json while training: throttled writes with an ETA from this process's own pace."""

from __future__ import annotations

import os
import time

from part.runs import RunDir


class Status:
    def __init__(self, run: RunDir, epochs: int, start_epoch: int, *, enabled: bool = True):
        self.run, self.epochs, self.start_epoch = run, epochs, start_epoch
        self.enabled = enabled  # under DDP only rank 0 writes the run folder
        self.t0, self.last = time.time(), 0.0

    def update(self, epoch: int, batch: int, batches: int, phase: str, force: bool = False) -> None:
        now = time.time()
        if not self.enabled or (not force and now - self.last < 1.0):
            return
        self.last = now
        done = (epoch - 1 + batch / max(batches, 1)) / self.epochs
        here = done - self.start_epoch / self.epochs
        eta = (now - self.t0) / here * (1 - done) if here > 0 else None
        self.run.write_status(state="running", phase=phase, epoch=epoch, epochs=self.epochs, batch=batch,
                              batches=batches, progress=round(done, 4), eta_s=eta, pid=os.getpid())
