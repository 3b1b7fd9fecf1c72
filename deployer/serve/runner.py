"""Run a Lambda handler in a warm child process, the way the Lambda service does.

One FunctionRunner owns one worker process: `python_worker.py` under a Python interpreter (isolated:
`-I -S`, so nothing from this tool's venv is importable) or `node_worker.js` under `node`. The worker
imports the handler once and keeps its module state between invocations, like a warm Lambda
sandbox. It is replaced when a file under the source folder changes, when it exits, or when an
invocation runs past the function's timeout (the process group is killed).

The protocol is one JSON object per line over two private pipes whose descriptor numbers are the
worker's two arguments, so the function's stdout and stderr stay free: both go to the server's
stderr. Worker -> runner: `{"type": "ready"}` once imported, then per request
`{"type": "result", "result": ...}` or `{"type": "error", "error": {errorType, errorMessage,
stackTrace}, "fatal": bool}`. Runner -> worker: `{"event", "requestId", "deadlineMs",
"invokedFunctionArn"}`. POSIX only (pass_fds, select on pipes, process groups).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from deployer.gateway.integration import FunctionError
from deployer.gateway.proxy import LOCAL_ACCOUNT_ID
from deployer.serve.sandbox import lambda_environment, worker_command

INIT_TIMEOUT = 10.0  # seconds: Lambda's limit for the init phase (importing the handler's module)
# Not watched: caches. Watched by their own mtime only (an install adds or removes entries): dependency trees.
IGNORED_FOLDERS = frozenset({"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
SHALLOW_FOLDERS = frozenset({"node_modules", ".venv"})

Console = Callable[[str], None]
Fingerprint = frozenset[tuple[str, int, int]]


class FunctionTimeout(FunctionError):
    """The invocation (or the init phase) ran out of time; the worker was killed."""


class FunctionCrash(FunctionError):
    """The worker process exited or broke the protocol."""


def _print_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def source_fingerprint(root: Path) -> Fingerprint:
    """(path, mtime, size) of every file under `root`: cheap to take, changes when code is edited."""
    entries: set[tuple[str, int, int]] = set()
    folders = [str(root)]
    while folders:
        try:
            listing = os.scandir(folders.pop())
        except OSError:
            continue
        with listing:
            for entry in listing:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name in SHALLOW_FOLDERS:
                            stat = entry.stat(follow_symlinks=False)
                            entries.add((entry.path, stat.st_mtime_ns, 0))
                        elif entry.name not in IGNORED_FOLDERS:
                            folders.append(entry.path)
                    elif not entry.name.endswith((".pyc", ".pyo")):
                        stat = entry.stat()
                        entries.add((entry.path, stat.st_mtime_ns, stat.st_size))
                except OSError:
                    continue
    return frozenset(entries)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"signal: {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


class _Worker:
    """One child process and its two protocol pipes."""

    def __init__(self, command: Sequence[str], environment: Mapping[str, str], cwd: Path) -> None:
        request_read, request_write = os.pipe()
        answer_read, answer_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [*command, str(request_read), str(answer_write)],
                stdin=subprocess.DEVNULL,
                stdout=2,  # the function's output is the server's console (stderr)
                cwd=cwd,
                env=dict(environment),
                pass_fds=(request_read, answer_write),
                start_new_session=True,  # Ctrl-C at the terminal is the server's to handle
            )
        except OSError:
            os.close(request_write)
            os.close(answer_read)
            raise
        finally:
            os.close(request_read)
            os.close(answer_write)
        self._to_worker = request_write
        self._from_worker = answer_read
        self._buffer = bytearray()
        self._closed = False

    def send(self, message: Mapping[str, Any]) -> None:
        data = memoryview(json.dumps(message).encode("utf-8") + b"\n")
        while data:
            data = data[os.write(self._to_worker, data) :]

    def receive(self, deadline: float) -> dict[str, Any] | None:
        """The next message; None when the worker closed its end (it exited). TimeoutError at the deadline."""
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self._from_worker], [], [], remaining)
            if ready:
                chunk = os.read(self._from_worker, 1 << 16)
                if not chunk:
                    return None
                self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            raise FunctionCrash("Runtime.InvalidResponse", f"the worker sent an unreadable message: {line[:200]!r}")
        return message

    def kill(self) -> None:
        """Kill the worker and anything it started; safe from any thread, more than once."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                self.process.kill()

    def close(self) -> int | None:
        self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        if not self._closed:
            self._closed = True
            os.close(self._to_worker)
            os.close(self._from_worker)
        return self.process.returncode


class FunctionRunner:
    """A warm worker process for one function; `invoke` runs one event through its handler."""

    def __init__(
        self,
        source: Path,
        handler: str,
        runtime: str,
        timeout: int,
        memory: int,
        function_name: str,
        code_dirs: Sequence[Path] = (),
        environment: Mapping[str, str] | None = None,
        region: str = "us-east-1",
        *,
        account_id: str = LOCAL_ACCOUNT_ID,
        console: Console | None = None,
    ) -> None:
        self.source = Path(source).resolve()
        self.handler = handler
        self.runtime = runtime
        self.timeout = timeout
        self.memory = memory
        self.function_name = function_name
        self.code_dirs = [Path(folder).resolve() for folder in code_dirs]
        self.environment = dict(environment or {})
        self.region = region
        self.account_id = account_id
        self.command = worker_command(runtime)
        self._console = console or _print_to_stderr
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._starting: _Worker | None = None  # during its init phase, so that close() can kill it
        self._fingerprint: Fingerprint = frozenset()
        self._closed = False

    @property
    def function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    def invoke(self, event: Any) -> Any:
        """The handler's result for `event` (any JSON value). Raises FunctionError when the function fails.

        One invocation at a time per runner, like one Lambda sandbox; callers in other threads wait.
        """
        with self._lock:
            if self._closed:
                raise FunctionCrash("Runtime.Closed", "the function runner is shut down")
            worker = self._current_worker()
            request_id = str(uuid.uuid4())
            deadline = time.monotonic() + self.timeout
            request = {
                "event": event,
                "requestId": request_id,
                "deadlineMs": int(time.time() * 1000) + self.timeout * 1000,
                "invokedFunctionArn": self.function_arn,
            }
            try:
                worker.send(request)
                message = worker.receive(deadline)
            except TimeoutError:
                self._discard()
                raise FunctionTimeout(
                    "Sandbox.Timedout",
                    f"RequestId: {request_id} Error: Task timed out after {self.timeout:.2f} seconds",
                ) from None
            except OSError:
                message = None
            except FunctionCrash:
                self._discard()
                raise
            if message is None:
                returncode = self._discard()
                raise FunctionCrash(
                    "Runtime.ExitError",
                    f"RequestId: {request_id} Error: Runtime exited with error: {describe_exit(returncode)}",
                )
            if message.get("fatal"):
                self._discard()
            if message.get("type") == "result":
                return message.get("result")
            raise self._error(message)

    def close(self) -> None:
        """Stop the worker (and anything it started). The runner refuses invocations afterwards."""
        self._closed = True
        for worker in (self._worker, self._starting):
            if worker is not None:
                worker.kill()  # wakes an invocation or init in progress, which then releases the lock
        with self._lock:
            self._discard()

    def _current_worker(self) -> _Worker:
        worker = self._worker
        if worker is not None:
            if worker.process.poll() is not None:
                self._console(
                    f"the function's process exited ({describe_exit(worker.process.returncode)}); starting a new one"
                )
                self._discard()
            elif source_fingerprint(self.source) != self._fingerprint:
                self._console(f"{self.source.name}/ changed: reloading the function")
                self._discard()
        return self._worker or self._start()

    def _start(self) -> _Worker:
        self._fingerprint = source_fingerprint(self.source)
        environment = lambda_environment(
            function_name=self.function_name,
            handler=self.handler,
            runtime=self.runtime,
            memory=self.memory,
            region=self.region,
            source=self.source,
            code_dirs=self.code_dirs,
            environment=self.environment,
        )
        try:
            worker = _Worker(self.command, environment, self.source)
        except OSError as error:
            raise FunctionCrash("Runtime.StartError", f"cannot start {self.command[0]}: {error}") from None
        self._starting = worker
        try:
            message = worker.receive(time.monotonic() + INIT_TIMEOUT)
        except TimeoutError:
            worker.close()
            raise FunctionTimeout(
                "Sandbox.Timedout", f"Init phase timed out after {INIT_TIMEOUT:.2f} seconds"
            ) from None
        except FunctionCrash:
            worker.close()
            raise
        finally:
            self._starting = None
        if message is not None and message.get("type") == "ready":
            self._worker = worker
            return worker
        returncode = worker.close()
        if message is None:
            raise FunctionCrash("Runtime.ExitError", f"Runtime exited during init: {describe_exit(returncode)}")
        raise self._error(message)

    def _discard(self) -> int | None:
        worker, self._worker = self._worker, None
        return worker.close() if worker is not None else None

    @staticmethod
    def _error(message: Mapping[str, Any]) -> FunctionError:
        error = message.get("error")
        if not isinstance(error, dict):
            return FunctionCrash("Runtime.InvalidResponse", f"the worker sent an unexpected message: {message!r}")
        trace = error.get("stackTrace")
        return FunctionError(
            str(error.get("errorType") or "Error"),
            str(error.get("errorMessage") or ""),
            [str(line) for line in trace] if isinstance(trace, list) else [],
        )
