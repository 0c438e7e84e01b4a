"""Is a process still the one we started? pid reuse and zombies say a bare `kill -0` is not enough."""

from __future__ import annotations

import psutil

SLACK_MS = 10  # create times read twice can differ by rounding


def start_time(pid: int) -> int | None:
    """The process's start time in milliseconds since the epoch, or None when unknown or gone."""
    try:
        return round(psutil.Process(pid).create_time() * 1000)
    except (psutil.Error, ValueError, OverflowError):
        return None


def alive(pid: int | None, started: int | None = None) -> bool:
    """True while `pid` runs (zombies do not count) and, when `started` is given, is the process
    that started then."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = round(process.create_time() * 1000)
    except (psutil.NoSuchProcess, ValueError, OverflowError):
        return False
    except psutil.AccessDenied:
        return True  # exists, owned by someone else
    return started is None or abs(created - started) <= SLACK_MS


def is_writer(pid: int | None, written_at: float | None) -> bool:
    """Could process `pid` have written a file at `written_at` (seconds since the epoch)? Not if it
    is gone, or if it started after that: then the pid was reused by an unrelated process."""
    if not alive(pid):
        return False
    if written_at is None:
        return True
    created = start_time(pid)
    return created is None or created <= written_at * 1000 + 1000
