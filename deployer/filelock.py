"""A kernel lock on a file (`flock`), naming its holder: the build lock and the local state's lock.

The kernel drops the lock when its holder ends, however it ends (SIGKILL included), so it is never left
stale on this host; the file only says who holds it (pid, host, command, since), for the message of the
one who has to wait.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.1


def holder_of(lock: Path) -> dict[str, Any]:
    """What the lock file says of its holder; {} when it says nothing readable."""
    try:
        holder = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return holder if isinstance(holder, dict) else {}


def describe(holder: dict[str, Any]) -> str:
    """`command` (pid P on HOST, since WHEN), with "?" for what the file does not say."""
    return (
        f"`{holder.get('command', '?')}` (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
        f"since {holder.get('since', '?')})"
    )


def take(
    lock: Path,
    command: str,
    *,
    refused: Callable[[dict[str, Any]], Exception],
    wait_seconds: float = 0.0,
    waiting: Callable[[dict[str, Any]], None] = lambda _: None,
) -> int:
    """The exclusive kernel lock on `lock` (created if missing), its descriptor; the file then names this holder.

    While another holder has it, waits up to `wait_seconds` (telling `waiting` once), then raises what
    `refused(holder)` makes."""
    descriptor = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        told = False
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise refused(holder_of(lock)) from None
                if not told:
                    waiting(holder_of(lock))
                    told = True
                time.sleep(POLL_SECONDS)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(holder).encode(), 0)
        return descriptor
    except BaseException:
        os.close(descriptor)  # releases the lock if it was taken
        raise


def release(descriptor: int) -> None:
    """Empty the file (nobody holds it any more), then close it, which releases the kernel lock."""
    try:
        os.ftruncate(descriptor, 0)
    finally:
        os.close(descriptor)


@contextmanager
def held(lock: Path, command: str, *, refused: Callable[[dict[str, Any]], Exception]) -> Iterator[None]:
    """The lock for the block, refused at once (with `refused(holder)`) when someone else holds it."""
    descriptor = take(lock, command, refused=refused)
    try:
        yield
    finally:
        release(descriptor)
