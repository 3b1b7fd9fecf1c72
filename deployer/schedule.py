"""Run the steps of a walk at once where their needs allow, and hand their results back in the walk's order.

A walk is an ordered sequence of steps (deploy.UP_ORDER). A step may declare, as a class attribute, the kinds of
earlier step it depends on: `reads` for its plan (the earlier changes it asks for) and `needs` for its apply (what
must be carried out before it). A step that declares nothing depends on every step before it, as when the walk ran
one step after another. What a step depends on is closed over: a step that needs the alias also has the version the
alias needed.

`walk` runs each step once everything it depends on is done, in a small thread pool (botocore's clients are thread
safe; deployer.aws makes one per service), giving it the results it depends on, in the walk's order. Results are
handed to `on_done` in the walk's order, each as soon as it and all before it are done, so what a command prints
does not depend on which answer came first. When a step fails, no other is started; those running are let finish
(they save what they made), then the first failure is raised.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

R = TypeVar("R")
A = TypeVar("A")
B = TypeVar("B")

WORKERS = 6  # AWS's control planes answer in 50-150 ms: a few requests in flight hide them; more only get throttled


def both(first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
    """Two reads that do not need each other's answer, in one round trip: (first(), second()). The first error is
    raised, once both are done."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="deployer-read") as pool:
        other = pool.submit(contextvars.copy_context().run, second)
        try:
            mine = first()
        finally:
            wait([other])
        return mine, other.result()


def dependencies(order: Sequence[object], attribute: str) -> tuple[frozenset[int], ...]:
    """For each step, the indices of the earlier steps it depends on by `attribute` ("reads" or "needs"), closed
    over: what it names, and what those depend on. A step without the attribute depends on every step before it."""
    closed: list[frozenset[int]] = []
    for index, step in enumerate(order):
        declared = getattr(step, attribute, None)
        if declared is None:
            direct = set(range(index))
        else:
            direct = {earlier for earlier in range(index) if isinstance(order[earlier], tuple(declared))}
            for kind in declared:  # a step never waits on a later one, nor on one the walk does not have
                if not any(isinstance(order[earlier], kind) for earlier in range(index)):
                    raise ValueError(f"{type(step).__name__}.{attribute}: {kind.__name__} is not earlier in the walk")
        for earlier in list(direct):
            direct |= closed[earlier]
        closed.append(frozenset(direct))
    return tuple(closed)


def walk(
    depends: Sequence[frozenset[int]],
    work: Callable[[int, list[R]], R],
    on_done: Callable[[int, R], None] = lambda index, result: None,
    workers: int | None = None,
) -> list[R]:
    """Call work(index, results of what it depends on, in order) for every step, each once all it depends on is
    done; on_done(index, result) in index order. With one worker, steps run one after another in index order."""
    workers = WORKERS if workers is None else workers
    count = len(depends)
    results: dict[int, R] = {}
    reported = 0

    def report() -> None:
        nonlocal reported
        while reported < count and reported in results:
            on_done(reported, results[reported])
            reported += 1

    def inputs(index: int) -> list[R]:
        return [results[earlier] for earlier in sorted(depends[index])]

    if workers <= 1:
        for index in range(count):
            results[index] = work(index, inputs(index))
            report()
        return [results[index] for index in range(count)]

    failure: BaseException | None = None
    running: dict[Future[R], int] = {}
    started: set[int] = set()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deployer") as pool:
        while True:
            if failure is None:
                ready = [index for index in range(count) if index not in started and depends[index] <= results.keys()]
                for index in ready[: workers - len(running)]:
                    started.add(index)
                    # Each task in a copy of this context: what the command set (the state's running command) holds.
                    context = contextvars.copy_context()
                    running[pool.submit(context.run, work, index, inputs(index))] = index
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=running.__getitem__):
                index = running.pop(future)
                error = future.exception()
                if error is not None:
                    failure = failure or error
                else:
                    results[index] = future.result()
            report()
    if failure is not None:
        raise failure
    return [results[index] for index in range(count)]
