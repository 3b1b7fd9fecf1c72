"""The state's writes, one after another in a thread of their own, while the steps go on.

A step that made a resource records it and saves the state at once, so that a run killed later never loses track
of what exists. Waiting for that write (a PutObject to S3, 30-80 ms) before the step's next request made every
resource one more round trip long: five in a row after the function (its version, the check, the alias, the grant,
the deployment). Here the write is handed over and the step goes on: the writes still happen in the order they were
asked for, each with everything recorded before it, and `flush` waits for all of them (the run's last save, and
any end of the walk, does so before the lock is released).

What a kill can lose is one write more than before: a resource made while the write recording the one before it was
on its way. The next run finds both as it finds any resource a killed run made but did not record: by name and tags
(the crash tests kill the deploy at every request). A write that fails is raised by the next save or the flush.
"""

from __future__ import annotations

import copy
import threading
from concurrent.futures import ThreadPoolExecutor

from deployer.state import State, StateStore


class WriteBehind:
    """The writes of one run's state, in order."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._pool: ThreadPoolExecutor | None = None
        self._failure: BaseException | None = None
        self._lock = threading.Lock()

    def save(self, state: State) -> None:
        """Write a copy of the state as it is now, after the writes asked for before; raise a write that failed."""
        snapshot = copy.deepcopy(state)  # the steps go on changing the state while it is written
        with self._lock:
            self._raise_failure()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deployer-state")
            self._pool.submit(self._write, snapshot)

    def flush(self) -> None:
        """Wait until every write asked for is done; raise the first that failed."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)  # its one thread writes in order: done when the last write is
        with self._lock:
            self._raise_failure()

    def _write(self, snapshot: State) -> None:
        if self._failure is not None:
            return  # refused alike (the store's ETag is the one before the failure): the first failure is the story
        try:
            self._store.save(snapshot)
        except BaseException as error:  # raised to the run at its next save or flush, in its own thread
            self._failure = error

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
