"""Retry the AWS errors botocore does not: bounded by time, with exponential backoff.

Real AWS answers some calls "not yet" (docs/ARCHITECTURE.md, "What real AWS does"): a new role
Lambda cannot assume for a few seconds, a function update still in progress. botocore treats them as
final; we wait and try again, for minutes rather than seconds, then give up with the last error. (Which
answers they are is deployer.aws's: `role_not_assumable`, `function_busy`. API Gateway's concurrent
modification is retried under botocore itself, by deployer.aws's needs-retry handler, with the same Waits.)

The grain is a second after a short first wait, counted from the start of one try to the start of the next (a
try's round trip is part of it): what is waited for becomes ready at a moment of its own, and a doubling backoff
would overshoot it by seconds. A new role is tried every half second (function.NEW_ROLE_GRAIN):
every fresh deploy waits 5-10 s for one, and a half-second grain halves the overshoot (0.25 s on average, not
0.5 s) for about ten more refused calls, each a small request well inside Lambda's control-plane quota. A wait
longer than SPEAK_AFTER seconds is said (Waits.on_wait): what it waits for and for how long, never a silent pause.

How to sleep, what time it is and what to say are given, never set as module globals: a `Waits` is made by
the caller (the CLI says long waits and shows a large upload's progress; tests never sleep) and handed to
`Aws`, whose clients and whose callers (`run.aws.waits`) wait with it. Its defaults are silent (library use).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from botocore.exceptions import ClientError

T = TypeVar("T")

SPEAK_AFTER = 2.0  # seconds of waiting before it is said


def _silent(what: str, seconds: float) -> None:
    return None


def _no_progress(sent: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class Waits:
    """How a run waits, and what it says while the user waits."""

    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    on_wait: Callable[[str, float], None] = _silent  # (what is waited for, seconds waited so far)
    on_upload_progress: Callable[[int, int], None] = _no_progress  # a large artifact's (bytes sent, total)


def retrying(
    call: Callable[[], T],
    *,
    waits: Waits,
    when: Callable[[ClientError], bool],
    before_retry: Callable[[], None] = lambda: None,
    limit_seconds: float = 300,
    first_delay: float = 0.5,
    max_delay: float = 1.0,
    waiting_for: str = "AWS",
) -> T:
    """Run call(); while it fails with an error `when` accepts and time remains, wait and retry."""
    clock = waits.clock
    started = clock()
    deadline = started + limit_seconds
    delay = first_delay
    spoken = 0.0
    while True:
        tried = clock()
        try:
            return call()
        except ClientError as error:
            if not when(error) or tried + delay > deadline:
                raise
        pause = max(0.0, tried + delay - clock())  # the grain runs from each try's start: its round trip is in it
        waited = clock() - started + pause
        if waited >= SPEAK_AFTER and (spoken == 0 or waited - spoken >= 5):  # then every 5 s at most
            waits.on_wait(waiting_for, waited)
            spoken = waited
        waits.sleep(pause)
        before_retry()
        delay = min(delay * 2, max_delay)


def wait_for(
    ready: Callable[[], bool], *, waits: Waits, waiting_for: str, limit_seconds: float = 600, delay: float = 5.0
) -> bool:
    """Poll ready() every `delay` seconds, saying the wait once it is long, for at most `limit_seconds` (counted
    in polls, so a test's instant sleep ends it too): whether it became ready. For what AWS finishes on its own
    time, such as ACM validating a certificate once its DNS record exists."""
    waited, spoken = 0.0, 0.0
    while not ready():
        waited += delay
        if waited > limit_seconds:
            return False
        if waited >= SPEAK_AFTER and (spoken == 0 or waited - spoken >= 5):
            waits.on_wait(waiting_for, waited)
            spoken = waited
        waits.sleep(delay)
    return True
