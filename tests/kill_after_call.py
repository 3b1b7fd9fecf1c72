"""Run the deployer CLI, and signal ourselves right after its Nth AWS call: a crash (or a pause) between two calls.

    DEPLOYER_TEST_AFTER_CALL=N [DEPLOYER_TEST_SIGNAL=KILL|STOP] python tests/kill_after_call.py up --version 1.0.0
    DEPLOYER_TEST_AFTER_OPERATION=PublishVersion python tests/kill_after_call.py up --version 1.0.1

The hook goes into botocore's built-in handlers before any session exists, so every client of the run
has it; it fires after each call's answer is parsed (refusals included), before the deployer sees it.
With N unset or 0 nothing is signalled and the number of calls is printed on stderr at exit as
`aws calls: N`.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from typing import Any

from botocore.handlers import BUILTIN_HANDLERS

AFTER_CALL = int(os.environ.get("DEPLOYER_TEST_AFTER_CALL", "0"))
AFTER_OPERATION = os.environ.get("DEPLOYER_TEST_AFTER_OPERATION")  # the first call of this operation
SIGNAL = getattr(signal, "SIG" + os.environ.get("DEPLOYER_TEST_SIGNAL", "KILL"))
calls = 0
counting = threading.Lock()


def after_call(model: Any, http_response: Any, **_: Any) -> None:
    """Counted across the run's threads (steps run at once): the Nth call of the whole run, whichever step made it.
    A plan's call answered by a read sent ahead (deployer.read_ahead: no URL, nothing sent) is not one: its read
    was, in the thread that sent it."""
    global calls
    if http_response.url is None:
        return
    with counting:
        calls += 1
        if calls == AFTER_CALL or model.name == AFTER_OPERATION:
            os.kill(os.getpid(), SIGNAL)


def report() -> None:
    print(f"aws calls: {calls}", file=sys.stderr)


BUILTIN_HANDLERS.append(("after-call.*.*", after_call))
if not AFTER_CALL and not AFTER_OPERATION:
    atexit.register(report)

if __name__ == "__main__":
    from deployer.cli import main

    sys.argv[0] = "deployer"
    main()
