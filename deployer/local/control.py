"""Start, stop and look at the local cloud's background process (`deployer local start|stop|status`).

`start` spawns `python -m deployer.local --port N` in a session of its own (it outlives the command
and ignores the terminal's Ctrl-C), logging to `{temp dir}/deployer-local-{uid}/{port}.log`, and waits
until `/_deployer/health` answers. `stop` asks `/_deployer/shutdown` (with a token only the holder of
the emulator's credentials file can make, auth.py), waits for the process to exit and for the port to
be free, and falls back to SIGTERM, then SIGKILL. Standard library only: no moto, no boto3 in the
calling process. moto is an optional extra (`deployer[local]`): `start` checks
that it is installed before spawning anything, so every `--local` command says what to install.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployer.errors import DeployerError, UsageError
from deployer.local import HOST, SERVICE, credentials_path, endpoint, log_path, pid_path, worker_limits
from deployer.local.auth import read_credentials, shutdown_token
from deployer.process import alive

INSTALL_LOCAL = "pip install 'deployer[local]'"
# The emulator is moto's server: moto, and the web framework moto[server] brings.
SERVER_MODULES = ("flask", "flask_cors")
START_TIMEOUT = 60.0  # seconds: importing moto takes a few on a slow machine
STOP_TIMEOUT = 15.0
# Straight to 127.0.0.1, never through an HTTP proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

Log = Callable[[str], None]


@dataclass(frozen=True)
class EmulatorProcess:
    """A running local cloud, as its health endpoint describes it."""

    pid: int
    port: int
    started_at: str | None
    moto: str | None

    @property
    def url(self) -> str:
        return endpoint(self.port)

    @property
    def log(self) -> Path:
        return log_path(self.port)

    def as_dict(self) -> dict[str, Any]:
        return {
            "running": True,
            "url": self.url,
            "pid": self.pid,
            "port": self.port,
            "started_at": self.started_at,
            "moto": self.moto,
            "log": str(self.log),
        }


class PortTaken(DeployerError):
    """Something that is not our emulator answers (or listens) on the port."""


def _request(
    port: int, path: str, method: str = "GET", timeout: float = 2.0, headers: dict[str, str] | None = None
) -> dict[str, Any] | None:
    request = urllib.request.Request(f"{endpoint(port)}{path}", method=method, headers=headers or {}, data=None)
    try:
        with _opener.open(request, timeout=timeout) as answer:
            data = json.loads(answer.read() or b"null")
    except (OSError, ValueError):  # refused, reset, timed out, an HTTP error (URLError is an OSError), not JSON
        return None
    return data if isinstance(data, dict) else None


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((HOST, port)) == 0


def health(port: int, timeout: float = 2.0) -> EmulatorProcess | None:
    """The emulator on this port, or None when nothing of ours answers there."""
    data = _request(port, "/_deployer/health", timeout=timeout)
    if data is None or data.get("service") != SERVICE or not isinstance(data.get("pid"), int):
        return None
    return EmulatorProcess(pid=data["pid"], port=port, started_at=data.get("started_at"), moto=data.get("moto"))


def status(port: int) -> EmulatorProcess | None:
    """The running emulator, None if nothing listens on the port; PortTaken if something else does."""
    found = health(port)
    if found is None and _listening(port):
        found = health(port, timeout=10.0)  # busy (a long deploy): give it more time before judging
        if found is None:
            raise PortTaken(_taken_message(port))
    return found


def describe(port: int, strict: bool = False) -> dict[str, Any]:
    """What `status --json` shows: {"running": true, "url", "pid", ...} or {"running": false, "url", "port"}.

    strict: PortTaken when another program holds the port; else that counts as not running.
    """
    found = status(port) if strict else health(port)
    return found.as_dict() if found else {"running": False, "url": endpoint(port), "port": port}


def _taken_message(port: int) -> str:
    return (
        f"port {port} on {HOST} is used by another program (LocalStack? another emulator?); "
        "stop it, or choose another port with --port or DEPLOYER_LOCAL_PORT"
    )


def _is_emulator(pid: int) -> bool:
    """Whether pid runs `python -m deployer.local` (checked before any signal is sent to it)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"deployer.local" in command


def _last_logged(log_file: Path, offset: int) -> str:
    """The last non-blank line written to the log past `offset` (by this run), without its time of day."""
    try:
        with open(log_file, "rb") as log:
            log.seek(offset)
            lines = log.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    last = next((line.strip() for line in reversed(lines) if line.strip()), "")
    return re.sub(r"^\d\d:\d\d:\d\d ", "", last)


def require_emulator() -> None:
    """UsageError naming what to install when this installation cannot run the local cloud (no moto)."""
    if importlib.util.find_spec("moto") is None:
        raise UsageError(f"the local cloud needs moto, which is not installed: {INSTALL_LOCAL}")
    missing = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(
            f"the local cloud needs moto's server ({', '.join(missing)}), which is not installed: {INSTALL_LOCAL}"
        )


def start(port: int, log: Log = lambda _: None) -> tuple[EmulatorProcess, bool]:
    """The emulator on `port`, started if it was not running; (emulator, True if started now)."""
    require_emulator()  # first: without moto, a `--local` command must not probe, log or spawn anything
    worker_limits()  # a bad DEPLOYER_LOCAL_CONCURRENCY or DEPLOYER_LOCAL_IDLE_SECONDS is refused before anything starts
    found = status(port)
    if found is not None:
        return found, False
    log_file = log_path(port)
    log(f"starting the local cloud on {endpoint(port)} (log: {log_file})")
    environment = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true", "PYTHONUNBUFFERED": "1"}
    with open(log_file, "ab") as output:
        offset = output.tell()  # the log is appended to: what this run writes starts here
        process = subprocess.Popen(
            [sys.executable, "-m", "deployer.local", "--host", HOST, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=log_file.parent,  # not the project folder: it may be deleted while the emulator runs
            env=environment,
            start_new_session=True,  # outlives this command; the terminal's Ctrl-C is not for it
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = health(port, timeout=1.0)
        if found is not None:  # ours, or one a concurrent `start` won the port with
            return found, found.pid == process.pid
        if process.poll() is not None:
            found = health(port, timeout=1.0)
            if found is not None:
                return found, False
            # One line: the reason, then the log to read (it holds the whole story, a traceback say).
            reason = _describe(process.returncode)
            last = _last_logged(log_file, offset)
            reason = f"{last} ({reason})" if last else reason
            raise DeployerError(f"the local cloud did not start: {reason}; see {log_file}")
        time.sleep(0.1)
    _terminate(process.pid)
    raise DeployerError(f"the local cloud did not answer within {START_TIMEOUT:.0f} s; see {log_file}")


def _describe(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


def _wait_gone(pid: int, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid) and not _listening(port):
            return True
        time.sleep(0.05)
    return not alive(pid) and not _listening(port)


def _terminate(pid: int, port: int | None = None) -> bool:
    """SIGTERM, then SIGKILL to its process group; True once it is gone."""
    for signum, seconds in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if signum == signal.SIGKILL:
                os.killpg(pid, signum)  # the emulator leads its own session: its group is its own
            else:
                os.kill(pid, signum)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.05)
        if not alive(pid):
            return True
    return False


def stop(port: int, log: Log = lambda _: None) -> EmulatorProcess | None:
    """Stop the emulator on `port`; what was stopped, or None when none was running."""
    found = status(port)
    if found is None:
        pid = _pid_from_file(port)
        if pid is None:
            return None
        # Started but not answering (hung, or still importing moto): end it by its pid file.
        log(f"the local cloud (pid {pid}) does not answer; sending SIGTERM")
        if not _terminate(pid):
            raise DeployerError(f"could not stop the local cloud (pid {pid}); kill it with: kill -9 {pid}")
        pid_path(port).unlink(missing_ok=True)
        credentials_path(port).unlink(missing_ok=True)
        return EmulatorProcess(pid=pid, port=port, started_at=None, moto=None)
    credentials = read_credentials(port)
    if credentials is not None and credentials.pid == found.pid:
        headers = {"X-Deployer-Shutdown": shutdown_token(credentials)}
        _request(port, "/_deployer/shutdown", method="POST", timeout=5.0, headers=headers)
        if _wait_gone(found.pid, port, STOP_TIMEOUT):
            return found
        log(f"the local cloud (pid {found.pid}) is still running after {STOP_TIMEOUT:.0f} s; sending SIGTERM")
    elif _is_emulator(found.pid):  # an older emulator, which wrote none: it stops on SIGTERM just as well
        log(f"the local cloud (pid {found.pid}) left no credentials file; sending SIGTERM")
    else:
        raise DeployerError(f"the local cloud on port {port} (pid {found.pid}) is not yours: it wrote no credentials")
    if not _terminate(found.pid) and _is_emulator(found.pid):
        raise DeployerError(f"could not stop the local cloud (pid {found.pid}); kill it with: kill -9 {found.pid}")
    _wait_gone(found.pid, port, 5.0)
    return found


def _pid_from_file(port: int) -> int | None:
    try:
        pid = int(pid_path(port).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    if alive(pid) and _is_emulator(pid):
        return pid
    pid_path(port).unlink(missing_ok=True)  # left by an emulator that was killed
    return None
