"""The build lock: one build or upload of a project's dist/ at a time, across processes and threads."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from deployer import filelock
from deployer.config import Config
from deployer.dependencies import make_folder
from deployer.errors import DeployerError

BUILD_LOCK_WAIT = 60.0  # seconds a build waits for another build or upload of the same project

Log = Callable[[str], None]


@dataclass
class _Hold:
    """This process's hold on one project's build lock: a thread lock (flock would not stop another thread of
    this process), the kernel lock's descriptor, and how many nested `build_lock` blocks hold it."""

    threads: threading.RLock = field(default_factory=threading.RLock)
    descriptor: int = -1
    depth: int = 0


_holds: dict[Path, _Hold] = {}
_holds_guard = threading.Lock()


def _refused(holder: dict[str, object]) -> DeployerError:
    return DeployerError(
        f"another deployer run is building or uploading this project: {filelock.describe(holder)}, still after "
        f"{BUILD_LOCK_WAIT:.0f} s; wait for it to finish, or stop that process (its lock goes with it)"
    )


@contextmanager
def build_lock(config: Config, *, command: str | None = None, log: Log = lambda _: None) -> Iterator[None]:
    """Hold the project's build lock: one build or upload of dist/ at a time, across processes.

    An exclusive kernel lock (`flock`) on <project>/.deployer/build.lock, so it goes with its holder however
    that ends (SIGKILL included). It waits up to BUILD_LOCK_WAIT seconds for another holder, then fails
    naming it. Re-entrant within a process: `up` holds it around `build()`, which takes it again."""
    lock = config.root / ".deployer" / "build.lock"
    with _holds_guard:
        hold = _holds.setdefault(lock, _Hold())
    if not hold.threads.acquire(timeout=BUILD_LOCK_WAIT):
        raise DeployerError(
            f"another thread of this process is building or uploading this project, still after "
            f"{BUILD_LOCK_WAIT:.0f} s; wait for it to finish"
        )
    try:
        if hold.depth == 0:
            make_folder(lock.parent, "its state, locks and caches")
            hold.descriptor = filelock.take(
                lock,
                command or " ".join(["deployer", *sys.argv[1:]]),
                refused=_refused,
                wait_seconds=BUILD_LOCK_WAIT,
                waiting=lambda holder: log(f"waiting for {filelock.describe(holder)} to finish with dist/"),
            )
        hold.depth += 1
        try:
            yield
        finally:
            hold.depth -= 1
            if hold.depth == 0:
                descriptor, hold.descriptor = hold.descriptor, -1
                filelock.release(descriptor)
    finally:
        hold.threads.release()
