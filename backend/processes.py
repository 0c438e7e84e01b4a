"""Is a process still the one we started? pid reuse and zombies say a bare `kill -0` is not enough."""

from __future__ import annotations

import os
from pathlib import Path


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or None when unknown or gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # the command name may hold spaces and parentheses
    return int(fields[19]) if len(fields) > 19 else None


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].startswith("Z")


def alive(pid: int | None, started: int | None = None) -> bool:
    """True while `pid` runs and, when `started` is given, is the process that started then."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if _zombie(pid):
        return False
    if started is not None:
        now = start_time(pid)
        return now is None or now == started
    return True
