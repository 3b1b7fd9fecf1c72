"""The local cloud: an embedded AWS emulator (moto, in-process) whose URLs really serve the deployed API.

`deployer local start|stop|status` runs one background process on 127.0.0.1 (control.py) holding
moto's emulation of the account (emulator.py, with moto's differences from AWS mended in patches.py),
Lambda Invoke, which really runs the version asked for (invoke.py), and the data plane of every
deployed REST API at `http://127.0.0.1:{port}/restapis/{api id}/{stage}/_user_request_/{path}`
(dataplane.py), which follows the stage's alias to the version it runs. It answers its own user only:
requests signed with the credentials it writes at start, for 127.0.0.1 or localhost (auth.py).
`--local` on up/rollback/down/status/plan points a command at it (target.py).

This module is imported by the CLI at start-up for option parsing: it must stay light (no moto,
no boto3).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from deployer.errors import DeployerError, UsageError

HOST = "127.0.0.1"
DEFAULT_PORT = 4566  # LocalStack's port: tools that know it find the same endpoint here
PORT_VARIABLE = "DEPLOYER_LOCAL_PORT"
LOCAL_VARIABLE = "DEPLOYER_LOCAL"
# Read by the emulator when it starts: concurrent invocations per function version (the function's reserved
# concurrency wins), and the seconds an idle worker is kept warm.
CONCURRENCY_VARIABLE = "DEPLOYER_LOCAL_CONCURRENCY"
IDLE_VARIABLE = "DEPLOYER_LOCAL_IDLE_SECONDS"
DEFAULT_CONCURRENCY = 10  # as deployer.serve.pool's (not imported: this module stays light)
DEFAULT_IDLE_SECONDS = 300.0
SERVICE = "deployer-local"  # what /_deployer/health says, to tell our emulator from another program

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


def worker_limits() -> tuple[int, float]:
    """(concurrency, idle seconds) for the emulator's function workers: DEPLOYER_LOCAL_CONCURRENCY and
    DEPLOYER_LOCAL_IDLE_SECONDS, else 10 and 300."""
    concurrency_text = os.environ.get(CONCURRENCY_VARIABLE, "").strip()
    idle_text = os.environ.get(IDLE_VARIABLE, "").strip()
    concurrency, idle = DEFAULT_CONCURRENCY, DEFAULT_IDLE_SECONDS
    if concurrency_text:
        if not concurrency_text.isdigit() or int(concurrency_text) < 1:
            raise UsageError(f"{CONCURRENCY_VARIABLE}={concurrency_text!r} is not a count of workers; use e.g. 10")
        concurrency = int(concurrency_text)
    if idle_text:
        try:
            idle = float(idle_text)
        except ValueError:
            idle = -1.0
        if not 0 < idle < float("inf"):
            raise UsageError(f"{IDLE_VARIABLE}={idle_text!r} is not a number of seconds; use e.g. 300")
    return concurrency, idle


def resolve_port(option: int | None = None) -> int:
    """--port, else DEPLOYER_LOCAL_PORT, else 4566."""
    if option is not None:
        port, origin = option, "--port"
    else:
        text = os.environ.get(PORT_VARIABLE, "").strip()
        if not text:
            return DEFAULT_PORT
        if not text.isdigit():
            raise UsageError(f"{PORT_VARIABLE}={text!r} is not a port number; use 1-65535, e.g. {DEFAULT_PORT}")
        port, origin = int(text), PORT_VARIABLE
    if not 1 <= port <= 65535:
        raise UsageError(f"{origin} {port} is not a port number; use 1-65535, e.g. {DEFAULT_PORT}")
    return port


def wants_local(flag: bool | None, configured: bool) -> bool:
    """--local / --no-local, else DEPLOYER_LOCAL, else deploy.toml's [target] local."""
    if flag is not None:
        return flag
    text = os.environ.get(LOCAL_VARIABLE)
    if text is not None:
        word = text.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise UsageError(f"{LOCAL_VARIABLE}={text!r}: use 1 (the local cloud) or 0 (AWS)")
    return configured


def endpoint(port: int) -> str:
    return f"http://{HOST}:{port}"


def runtime_folder() -> Path:
    """Where the emulators of this user keep their log, pid file, credentials and unpacked code: the system temp dir.

    The temp dir is shared: a folder of that name made by another user (who could then swap its files) or
    a symlink is refused, and ours is made 0700 if it was not.
    """
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    folder = Path(tempfile.gettempdir()) / f"deployer-local-{uid}"
    refusal = f"{folder} is not a folder of yours; remove it: the local cloud keeps its credentials there"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:  # a file, or a dangling symlink
        raise DeployerError(refusal) from None
    if hasattr(os, "getuid"):
        found = folder.lstat()
        if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
            raise DeployerError(refusal)
        if stat.S_IMODE(found.st_mode) != 0o700:
            folder.chmod(0o700)
    return folder


def log_path(port: int) -> Path:
    return runtime_folder() / f"{port}.log"


def pid_path(port: int) -> Path:
    return runtime_folder() / f"{port}.pid"


def code_cache(port: int) -> Path:
    return runtime_folder() / f"code-{port}"


def credentials_path(port: int) -> Path:
    """The local cloud's key pair (auth.py): readable by its user only."""
    return runtime_folder() / f"{port}.credentials"
