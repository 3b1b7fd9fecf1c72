"""Execution environments as Lambda keeps them: one per concurrent request, reused warm, reaped when idle.

Lambda runs each concurrent invocation of a function in its own execution environment, so a quick request
never waits behind a slow one (and no queue time counts toward API Gateway's 29 s: a request either gets an
environment at once or is throttled). A finished environment stays warm for the next request; one left idle
for a while is shut down. Past the function's concurrency limit Lambda refuses the invocation with 429
TooManyRequestsException: the pool raises FunctionThrottled, which API Gateway answers with a 500.

A RunnerPool holds the environments (FunctionRunners, one worker process each) of one function version;
`deployer serve` has one, the local cloud one per version (local/functions.py). A Reaper thread closes
the environments idle for longer than the pool's idle time.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from deployer.gateway.integration import FunctionThrottled
from deployer.serve.runner import FunctionCrash, FunctionRunner, Outcome

DEFAULT_CONCURRENCY = 10  # environments per function version at once
IDLE_SECONDS = 300.0  # an environment idle this long is shut down (Lambda keeps them "a few minutes")
# Lambda's Reason for a throttle: no reserved concurrency (the account's pool, here the per-function default),
# or a function at its own reserved concurrency (PutFunctionConcurrency).
ACCOUNT_LIMIT = "ConcurrentInvocationLimitExceeded"
RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"


class RunnerPool:
    """Up to `limit` warm FunctionRunners of one function version, each running one invocation at a time."""

    def __init__(
        self,
        start: Callable[[], FunctionRunner],
        limit: int = DEFAULT_CONCURRENCY,
        idle_seconds: float = IDLE_SECONDS,
        reason: str = ACCOUNT_LIMIT,
        first: FunctionRunner | None = None,
    ) -> None:
        """`start` makes a new environment (its worker starts on its first invocation: a cold start); `first`,
        one already made (serve's, made up front so that a runtime it cannot run is refused at once)."""
        self._start = start
        self.limit = limit
        self.idle_seconds = idle_seconds
        self.reason = reason
        self._lock = threading.Lock()
        self._idle: list[tuple[float, FunctionRunner]] = []  # (idle since, runner): the newest is reused first
        self._all: set[FunctionRunner] = set()
        self._starting = 0  # slots taken by environments being made
        self._closed = False
        if first is not None:
            self._all.add(first)
            self._idle.append((time.monotonic(), first))

    @property
    def size(self) -> int:
        """The environments alive, busy or idle."""
        with self._lock:
            return len(self._all)

    @contextlib.contextmanager
    def environment(self) -> Iterator[FunctionRunner]:
        """A runner for one invocation, all to itself: an idle one, else a new one while under the limit.
        FunctionThrottled at the limit, at once: a request never waits for another's environment."""
        runner = self._acquire()
        try:
            yield runner
        finally:
            self._release(runner)

    def run(self, event: Any, invoked_arn: str | None = None, request_id: str | None = None) -> Outcome:
        with self.environment() as runner:
            return runner.run(event, invoked_arn, request_id)

    def _acquire(self) -> FunctionRunner:
        with self._lock:
            if self._closed:
                raise FunctionCrash("Runtime.Closed", "the function's environments are shut down")
            if self._idle:
                return self._idle.pop()[1]
            if len(self._all) + self._starting >= self.limit:
                raise FunctionThrottled(self.reason, self.limit)
            self._starting += 1
        try:
            runner = self._start()
        except BaseException:
            with self._lock:
                self._starting -= 1
            raise
        with self._lock:
            self._starting -= 1
            self._all.add(runner)
        return runner

    def _release(self, runner: FunctionRunner) -> None:
        with self._lock:
            if not self._closed and runner in self._all and not runner.closed:
                self._idle.append((time.monotonic(), runner))
                return
            self._all.discard(runner)
        runner.close()

    def reap(self, now: float | None = None) -> int:
        """Shut down the environments idle for longer than the idle time; how many."""
        cutoff = (time.monotonic() if now is None else now) - self.idle_seconds
        with self._lock:
            stale = [runner for since, runner in self._idle if since <= cutoff]
            self._idle = [(since, runner) for since, runner in self._idle if since > cutoff]
            self._all.difference_update(stale)
        for runner in stale:
            runner.close()
        return len(stale)

    def close(self) -> None:
        """Shut down every environment, busy ones too (their invocations fail); refuse new invocations."""
        with self._lock:
            self._closed = True
            runners, self._all, self._idle = list(self._all), set(), []
        for runner in runners:
            runner.close()


class Reaper:
    """A daemon thread calling `reap` every `interval` seconds until stopped."""

    def __init__(self, reap: Callable[[], object], interval: float) -> None:
        self._reap = reap
        self._interval = max(interval, 0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reaper", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._reap()
            except Exception:  # one failed round must not end the reaping: the next one retries
                continue

    def stop(self) -> None:
        self._stop.set()


def reap_interval(idle_seconds: float) -> float:
    """How often to look for idle environments: often enough that one outlives its idle time by half at most."""
    return min(max(idle_seconds / 2, 0.05), 30.0)
