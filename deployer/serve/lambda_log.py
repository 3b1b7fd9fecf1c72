"""The lines Lambda writes to an invocation's log: START, what the function printed, the error, END, REPORT.

One wording for `deployer serve`'s console, the local cloud's CloudWatch Logs and Lambda Invoke's log tail,
spelled as Lambda spells them, so that `deployer logs` reads an emulated log exactly as it reads AWS's:

    START RequestId: <id> Version: <version>
    END RequestId: <id>
    REPORT RequestId: <id>\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 40 MB

Each message ends with a newline, as Lambda's do. A log stream is one execution environment (a warm
worker here): `YYYY/MM/DD/[<version>]<32 hex>`.
"""

from __future__ import annotations

import math
import time
import uuid

from deployer.serve.runner import Outcome

# (epoch milliseconds, message): one CloudWatch Logs event
LogEvent = tuple[int, str]


def start_line(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}\n"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}\n"


def report_line(request_id: str, seconds: float, memory_size: int, max_memory_mb: int) -> str:
    milliseconds = seconds * 1000
    return (
        f"REPORT RequestId: {request_id}\tDuration: {milliseconds:.2f} ms\t"
        f"Billed Duration: {max(1, math.ceil(milliseconds))} ms\tMemory Size: {memory_size} MB\t"
        f"Max Memory Used: {max_memory_mb} MB\n"
    )


def error_message(outcome: Outcome) -> str | None:
    """The runtime's own log line for a failed invocation (`[ERROR] Type: message` and the traceback)."""
    error = outcome.error
    if error is None:
        return None
    trace = "".join(str(entry) for entry in error.stack_trace)
    trace = f"Traceback (most recent call last):\n{trace}" if trace else ""
    return f"[ERROR] {error.error_type}: {error.message}\n{trace}".rstrip("\n") + "\n"


def invocation_log(outcome: Outcome, version: str, memory_size: int) -> list[LogEvent]:
    """The invocation's log events, in order: one per line the function printed, the error as one event."""
    started = int(outcome.started * 1000)
    ended = started + int(outcome.seconds * 1000)
    printed = outcome.output.decode("utf-8", "replace").splitlines()
    events = [(started, start_line(outcome.request_id, version))]
    events += [(started, f"{line}\n") for line in printed]
    error = error_message(outcome)
    if error is not None:
        events.append((ended, error))
    events.append((ended, end_line(outcome.request_id)))
    events.append((ended, report_line(outcome.request_id, outcome.seconds, memory_size, outcome.max_memory_mb)))
    return events


def stream_name(version: str, now: float | None = None) -> str:
    """A new log stream's name, as Lambda names the stream of an execution environment."""
    day = time.strftime("%Y/%m/%d", time.gmtime(time.time() if now is None else now))
    return f"{day}/[{version}]{uuid.uuid4().hex}"
