"""What is deployed, kept between runs: load, save (atomically) and lock, behind a small interface.

The local store keeps `.deployer/<app>.json` beside deploy.toml. A remote store (S3, DynamoDB) can
implement the same three methods later. Only IDs, names and versions are stored: never credentials,
never environment values.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from deployer.errors import DeployerError

if TYPE_CHECKING:
    from deployer.config import Config

HISTORY_LENGTH = 20


@dataclass
class State:
    app: str | None = None
    stage: str | None = None
    region: str | None = None
    version: str | None = None
    bucket: str | None = None
    key: str | None = None
    unfinished_bucket: str | None = None  # created, not yet made private and encrypted (a run died in between)
    artifact_sha256: str | None = None
    role_name: str | None = None
    role_arn: str | None = None
    function_name: str | None = None
    function_arn: str | None = None
    rest_api_id: str | None = None
    root_resource_id: str | None = None
    proxy_resource_id: str | None = None
    deployment_id: str | None = None
    permission_statement_id: str | None = None
    base_url: str | None = None
    alias: str | None = None  # the function's alias the API calls, named after the stage
    lambda_version: str | None = None  # the published version the alias points at
    canary: dict[str, Any] | None = None  # {"version", "lambda_version", "weight"}: the release getting a share
    # Each release's published version and configuration, by version name: what `rollback` needs to put it
    # back whole, even once its Lambda version is pruned. Environment variable names only, never values.
    releases: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def record(self, action: str, version: str | None) -> None:
        """Append to the short history of what was deployed when (newest last)."""
        moment = datetime.now(UTC).isoformat(timespec="seconds")
        self.history = [*self.history, {"action": action, "version": version, "at": moment}][-HISTORY_LENGTH:]

    def forget_resources(self) -> None:
        """After `down`: nothing is deployed any more, the history stays."""
        keep = {"app", "stage", "region", "history", "unfinished_bucket", "releases"}  # down leaves the artifacts
        for item in fields(self):
            if item.name not in keep:
                setattr(self, item.name, None)
        # The function and its versions are gone; a new one numbers its versions from 1 again.
        self.releases = {name: {**record, "lambda_version": None} for name, record in self.releases.items()}

    @property
    def deployed(self) -> bool:
        return any((self.role_name, self.function_name, self.rest_api_id))

    def copy(self) -> State:
        """A snapshot: what a plan reads, while the run changes the state itself."""
        return replace(self, history=list(self.history), releases=dict(self.releases))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        known = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


class StateStore(Protocol):
    def load(self) -> State: ...

    def save(self, state: State) -> None: ...

    def lock(self, command: str) -> Any: ...  # a context manager held for the whole command


class LocalStateStore:
    """`.deployer/<name>.json` and its lock `.deployer/<name>.lock` in the project folder."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.name = name
        self.path = folder / f"{name}.json"
        self.lock_path = folder / f"{name}.lock"

    def load(self) -> State:
        try:
            return State.from_dict(json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return State()
        except (json.JSONDecodeError, TypeError) as error:
            raise DeployerError(
                f"state file {self.path} is unreadable ({error}); move it aside and run again: "
                "deployer finds its resources by name and tags"
            ) from None

    def save(self, state: State) -> None:
        """Temp file, fsync, rename: a crash leaves the old file or the new one, never half of one."""
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".state-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(asdict(state), stream, indent=2, sort_keys=True)
                stream.write("\n")
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    @contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """Held for the whole command. The kernel drops it when its holder ends, however it ends
        (SIGKILL included), so a lock is never left stale on this host; the file only names the holder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DeployerError(self._held_message()) from None
            holder = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": command,
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, json.dumps(holder).encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(descriptor, 0)  # nobody holds it any more
        finally:
            os.close(descriptor)  # releases the lock

    def _held_message(self) -> str:
        try:
            holder = json.loads(self.lock_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            holder = {}
        return (
            f"another deployer is working on {self.name}: `{holder.get('command', '?')}` "
            f"(pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('since', '?')}); "
            "wait for it to finish, or stop that process: its lock goes with it"
        )


def store_for(config: Config, *, local: bool = False) -> LocalStateStore:
    """One state per stage of the app, named like the stage's function (the app's name on the default
    stage). A local-cloud deployment (`--local`) keeps its own, apart from the real one."""
    name = f"local-{config.function_name}" if local else config.function_name
    return LocalStateStore(config.root / ".deployer", name)
