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

Memory size is enforced as Lambda enforces it: a worker whose resident memory (its peak, Linux's VmHWM,
polled a few times a second while it runs and checked once more when it answers) goes past the function's
`memory` is killed, and the invocation fails as Lambda's does: `Runtime exited with error: signal: killed`,
with the memory size as its `Max Memory Used`. Polling RSS rather than RLIMIT_AS, which breaks node (V8
reserves far more address space than it uses); the worker process's own RSS is what counts, the runtime's
baseline (15-20 MB for Python, ~45 MB for node) included, as Lambda counts its whole environment.

With `capture_output` (the local cloud, whose Lambda Invoke returns what one invocation printed), the
function's stdout and stderr go through a third pipe instead, which the runner reads while it waits
for the answer and drains once the answer is in: the worker prints before it answers, so all of an
invocation's output is in the pipe by then.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployer.gateway.integration import FunctionError
from deployer.gateway.proxy import LOCAL_ACCOUNT_ID
from deployer.serve.sandbox import check_runtime, lambda_environment, worker_command

MEMORY_POLL_SECONDS = 0.05  # how often a running worker's memory is read against its limit
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


class FunctionOutOfMemory(FunctionCrash):
    """The worker went past the function's memory size and was killed, as Lambda kills it."""


class _MemoryExceeded(Exception):
    """Raised by _Worker.receive: the worker's resident memory went past its limit (it is killed by then)."""


@dataclass
class Outcome:
    """One invocation: its request id, the handler's result or the function's error, and what it printed."""

    request_id: str
    result: Any = None
    error: FunctionError | None = None
    output: bytes = b""  # stdout and stderr during the invocation (and the init phase, if it started cold)
    started: float = 0.0  # epoch seconds when it began
    seconds: float = 0.0  # how long it ran
    max_memory_mb: int = 0  # the worker's peak resident memory, as Lambda's REPORT line gives it
    log_stream: str = ""  # the runner's (its execution environment's) log stream, when it was given one
    log: list[tuple[int, str]] = field(default_factory=list)  # (epoch ms, message): written by the local cloud


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


# Lambda's runtime interface (written in Go) names a signal as Go does: `signal: killed`, not SIGKILL.
SIGNAL_WORDS = {
    signal.SIGKILL: "killed",
    signal.SIGTERM: "terminated",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGINT: "interrupt",
    signal.SIGBUS: "bus error",
}


def describe_exit(returncode: int | None) -> str:
    """A worker's end as Lambda's log says it: `exit status 1`, `signal: killed`."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            number = signal.Signals(-returncode)
        except ValueError:
            return f"signal {-returncode}"
        return f"signal: {SIGNAL_WORDS.get(number, number.name)}"
    return f"exit status {returncode}"


def peak_memory_kb(pid: int) -> int:
    """A process's peak resident memory in KB (Linux's VmHWM); 0 when it cannot be read."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class _Worker:
    """One child process, its two protocol pipes and, when capturing, the pipe of its stdout and stderr."""

    def __init__(
        self, command: Sequence[str], environment: Mapping[str, str], cwd: Path, sink: bytearray | None = None
    ) -> None:
        request_read, request_write = os.pipe()
        answer_read, answer_write = os.pipe()
        output_read, output_write = os.pipe() if sink is not None else (None, 2)
        try:
            self.process = subprocess.Popen(
                [*command, str(request_read), str(answer_write)],
                stdin=subprocess.DEVNULL,
                stdout=output_write,  # the function's output: the server's console (stderr), or the sink's pipe
                stderr=output_write if sink is not None else None,
                cwd=cwd,
                env=dict(environment),
                pass_fds=(request_read, answer_write),
                start_new_session=True,  # Ctrl-C at the terminal is the server's to handle
            )
        except OSError:
            for descriptor in (request_write, answer_read, output_read):
                if descriptor is not None:
                    os.close(descriptor)
            raise
        finally:
            os.close(request_read)
            os.close(answer_write)
            if output_read is not None:
                os.close(output_write)
        self._to_worker = request_write
        self._from_worker = answer_read
        self._output = output_read  # None: not capturing, or the worker closed it
        self._sink = sink
        self._buffer = bytearray()
        self._closed = False

    def send(self, message: Mapping[str, Any]) -> None:
        data = memoryview(json.dumps(message).encode("utf-8") + b"\n")
        while data:
            data = data[os.write(self._to_worker, data) :]

    def receive(self, deadline: float, memory_limit_kb: int | None = None) -> dict[str, Any] | None:
        """The next message; None when the worker closed its end (it exited). TimeoutError at the deadline;
        _MemoryExceeded (the worker killed) when its peak resident memory goes past `memory_limit_kb`.

        While it waits, what the worker prints goes to the sink; once the message is in, what it printed
        before sending it (already in the pipe) is read too."""
        while b"\n" not in self._buffer:
            self._check_memory(memory_limit_kb)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            watched = [self._from_worker] if self._output is None else [self._from_worker, self._output]
            wait = remaining if memory_limit_kb is None else min(remaining, MEMORY_POLL_SECONDS)
            ready, _, _ = select.select(watched, [], [], wait)
            if self._output is not None and self._output in ready:
                self._read_output()
            if self._from_worker in ready:
                chunk = os.read(self._from_worker, 1 << 16)
                if not chunk:
                    self.drain()
                    return None
                self._buffer += chunk
        self._check_memory(memory_limit_kb)  # a spike between two polls still counts: VmHWM is the peak
        self.drain()
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            raise FunctionCrash("Runtime.InvalidResponse", f"the worker sent an unreadable message: {line[:200]!r}")
        return message

    def _check_memory(self, limit_kb: int | None) -> None:
        if limit_kb is not None and peak_memory_kb(self.process.pid) > limit_kb:
            self.kill()
            raise _MemoryExceeded

    def _read_output(self) -> bool:
        """Move what is in the output pipe to the sink; False when there was nothing (or the pipe closed)."""
        assert self._output is not None and self._sink is not None
        chunk = os.read(self._output, 1 << 16)
        if not chunk:
            os.close(self._output)
            self._output = None
            return False
        self._sink += chunk
        return True

    def drain(self) -> None:
        """Read what the worker has printed so far, without waiting for more."""
        while self._output is not None and select.select([self._output], [], [], 0)[0] and self._read_output():
            pass

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
            self.drain()  # its last words: what it printed before it timed out or crashed
            os.close(self._to_worker)
            os.close(self._from_worker)
            if self._output is not None:
                os.close(self._output)
                self._output = None
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
        version: str = "$LATEST",
        capture_output: bool = False,
        log_stream: str = "",
    ) -> None:
        """`version`: the published version this runner runs (what the function's context and environment say).
        `capture_output`: each Outcome carries what the function printed, which also goes to `console`, line by
        line, instead of straight to this process's stderr. `log_stream`: the stream of this runner's execution
        environment, handed on in each Outcome."""
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
        self.version = version
        self.log_stream = log_stream
        self.command = worker_command(runtime)
        # Refuses (DeployerError) compiled code the local interpreter cannot load; else a warning or None.
        self.note = check_runtime(runtime, [self.source, *self.code_dirs])
        self._console = console or _print_to_stderr
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._starting: _Worker | None = None  # during its init phase, so that close() can kill it
        self._fingerprint: Fingerprint = frozenset()
        self._closed = False
        self._output: bytearray | None = bytearray() if capture_output else None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def memory_limit_kb(self) -> int | None:
        return self.memory * 1024 if self.memory > 0 else None

    @property
    def function_arn(self) -> str:
        """The version's ARN: unqualified for $LATEST."""
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"
        return arn if self.version == "$LATEST" else f"{arn}:{self.version}"

    def invoke(self, event: Any) -> Any:
        """The handler's result for `event` (any JSON value). Raises FunctionError when the function fails."""
        outcome = self.run(event)
        if outcome.error is not None:
            raise outcome.error
        return outcome.result

    def run(self, event: Any, invoked_arn: str | None = None, request_id: str | None = None) -> Outcome:
        """One invocation of the handler with `event`, as it ended: a result or the function's error.

        `invoked_arn` is the ARN the caller named (an alias's, say): the context's invoked_function_arn;
        `request_id` the context's aws_request_id (a new one by default).
        One invocation at a time per runner, like one Lambda sandbox; callers in other threads wait.
        """
        request_id = request_id or str(uuid.uuid4())
        with self._lock:
            self._take_output()  # printed between invocations (a thread of the function's): not this one's
            started, clock = time.time(), time.monotonic()
            outcome = Outcome(request_id, started=started, log_stream=self.log_stream)
            try:
                outcome.result = self._invoke(event, request_id, invoked_arn or self.function_arn)
            except FunctionError as error:
                outcome.error = error
            outcome.seconds = time.monotonic() - clock
            # Killed for its memory: Lambda's REPORT line gives the memory size as the memory used.
            killed = isinstance(outcome.error, FunctionOutOfMemory)
            outcome.max_memory_mb = self.memory if killed else self._max_memory_mb()
            outcome.output = self._take_output()
            return outcome

    def _max_memory_mb(self) -> int:
        """The worker's peak resident memory in MB (Linux's VmHWM); 0 when there is no worker to ask."""
        worker = self._worker
        return 0 if worker is None else math.ceil(peak_memory_kb(worker.process.pid) / 1024)

    def _take_output(self) -> bytes:
        """What the worker printed since the last call, given to the console too; b"" when not capturing."""
        if self._output is None:
            return b""
        if self._worker is not None:
            self._worker.drain()
        output, self._output[:] = bytes(self._output), b""
        for line in output.decode("utf-8", "replace").splitlines():
            self._console(line)
        return output

    def _invoke(self, event: Any, request_id: str, invoked_arn: str) -> Any:
        if self._closed:
            raise FunctionCrash("Runtime.Closed", "the function runner is shut down")
        worker = self._current_worker()
        deadline = time.monotonic() + self.timeout
        request = {
            "event": event,
            "requestId": request_id,
            "deadlineMs": int(time.time() * 1000) + self.timeout * 1000,
            "invokedFunctionArn": invoked_arn,
        }
        try:
            worker.send(request)
            message = worker.receive(deadline, self.memory_limit_kb)
        except _MemoryExceeded:
            self._discard()
            raise FunctionOutOfMemory(
                "Runtime.ExitError",
                f"RequestId: {request_id} Error: Runtime exited with error: {describe_exit(-signal.SIGKILL)}",
            ) from None
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
            version=self.version,
        )
        try:
            worker = _Worker(self.command, environment, self.source, self._output)
        except OSError as error:
            raise FunctionCrash("Runtime.StartError", f"cannot start {self.command[0]}: {error}") from None
        self._starting = worker
        try:
            message = worker.receive(time.monotonic() + INIT_TIMEOUT, self.memory_limit_kb)
        except _MemoryExceeded:
            worker.close()
            raise FunctionOutOfMemory(
                "Runtime.ExitError", f"Runtime exited during init: {describe_exit(-signal.SIGKILL)}"
            ) from None
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
