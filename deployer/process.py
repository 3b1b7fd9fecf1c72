"""Is a process still running? Asked by the state lock (is its holder gone?) and the local cloud."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """Whether the process runs: an exited process waiting to be reaped (a zombie) does not."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        pass  # no /proc (macOS): ask the kernel instead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
