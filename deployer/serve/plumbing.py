"""HTTP and console plumbing shared by `deployer serve` (server.py) and the local cloud (deployer/local/emulator.py).

Not API Gateway's behaviour (that is deployer/gateway/), only what any HTTP server in front of a
function needs: the statuses that carry no body, and a console whose lines from concurrent requests
do not interleave.
"""

from __future__ import annotations

import sys
import threading
import time

from deployer.output import untrusted

_console_lock = threading.Lock()


def console(line: str) -> None:
    """One line on stderr; lines from concurrent requests do not interleave. What it shows comes from others
    (a request path any client sent, what the function printed): control characters are escaped, never obeyed,
    except the line breaks of our own indented details."""
    shown = "\n".join(untrusted(part) for part in line.split("\n"))
    with _console_lock:
        print(shown, file=sys.stderr, flush=True)


def stamped_console(line: str) -> None:
    """console() with the time of day in front, for a log file."""
    console(f"{time.strftime('%H:%M:%S')} {line}")


def carries_body(status: int) -> bool:
    """False for the statuses whose response has no body (and no Content-Length): 1xx, 204 and 304."""
    return not (status < 200 or status in (204, 304))
