"""HTTP plumbing shared by `deployer serve` (server.py) and the local cloud's data plane (deployer/local/emulator.py).

Both play API Gateway's front door: its payload limit, the X-Forwarded-* headers it adds, the
statuses that carry no body, and a console whose lines from concurrent requests do not interleave.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable

MAX_REQUEST_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
FORWARDED_HEADERS = frozenset({"x-forwarded-for", "x-forwarded-port", "x-forwarded-proto"})  # lower case

_console_lock = threading.Lock()


def console(line: str) -> None:
    """One line on stderr; lines from concurrent requests do not interleave."""
    with _console_lock:
        print(line, file=sys.stderr, flush=True)


def stamped_console(line: str) -> None:
    """console() with the time of day in front, for a log file."""
    console(f"{time.strftime('%H:%M:%S')} {line}")


def forwarded_headers(headers: Iterable[tuple[str, str]], client: str, port: int) -> list[tuple[str, str]]:
    """The request's headers plus what API Gateway adds: the client's address, the port and the scheme.

    The client's X-Forwarded-For (its first one) is extended with the client's address; its other
    X-Forwarded-* headers are replaced.
    """
    kept: list[tuple[str, str]] = []
    previous: str | None = None
    for name, value in headers:
        lowered = name.lower()
        if lowered not in FORWARDED_HEADERS:
            kept.append((name, value))
        elif lowered == "x-forwarded-for" and previous is None:
            previous = value
    return [
        *kept,
        ("X-Forwarded-For", f"{previous}, {client}" if previous else client),
        ("X-Forwarded-Port", str(port)),
        ("X-Forwarded-Proto", "http"),
    ]


def carries_body(status: int) -> bool:
    """False for the statuses whose response has no body (and no Content-Length): 1xx, 204 and 304."""
    return not (status < 200 or status in (204, 304))
