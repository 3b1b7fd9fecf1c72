"""What is deployed, kept between runs: load, save (atomically) and lock, behind a small interface.

The local store keeps `.deployer/<stage>.json` beside deploy.toml. A remote store (S3, DynamoDB) can
implement the same three methods later. Only IDs, names and versions are stored: never credentials,
never environment values.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from deployer.errors import DeployerError
from deployer.process import alive

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
    history: list[dict[str, Any]] = field(default_factory=list)

    def record(self, action: str, version: str | None) -> None:
        """Append to the short history of what was deployed when (newest last)."""
        moment = datetime.now(UTC).isoformat(timespec="seconds")
        self.history = [*self.history, {"action": action, "version": version, "at": moment}][-HISTORY_LENGTH:]

    def forget_resources(self) -> None:
        """After `down`: nothing is deployed any more, the history stays."""
        keep = {"app", "stage", "region", "history", "unfinished_bucket"}  # down leaves the bucket
        for item in fields(self):
            if item.name not in keep:
                setattr(self, item.name, None)

    @property
    def deployed(self) -> bool:
        return any((self.role_name, self.function_name, self.rest_api_id))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        known = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


class StateStore(Protocol):
    def load(self) -> State: ...

    def save(self, state: State) -> None: ...

    def lock(self, command: str) -> Any: ...  # a context manager held for the whole command


class LocalStateStore:
    """`.deployer/<stage>.json` and `.deployer/<stage>.lock` in the project folder."""

    def __init__(self, folder: Path, stage: str) -> None:
        self.folder = folder
        self.path = folder / f"{stage}.json"
        self.lock_path = folder / f"{stage}.lock"

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
        self.folder.mkdir(parents=True, exist_ok=True)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        for _ in range(2):
            try:
                descriptor = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._clear_if_stale():
                    raise DeployerError(self._held_message()) from None
                continue
            with os.fdopen(descriptor, "w") as stream:
                json.dump(holder, stream)
            break
        try:
            yield
        finally:
            self.lock_path.unlink(missing_ok=True)

    def _read_holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.lock_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _clear_if_stale(self) -> bool:
        """A lock left by a process of this host that no longer runs (killed, crashed) is stale."""
        holder = self._read_holder()
        if not holder:
            # Being written this instant, or garbage: garbage older than a few seconds is stale.
            try:
                age = time.time() - self.lock_path.stat().st_mtime
            except FileNotFoundError:
                return True
            if age < 5:
                return False
        elif holder.get("host") != socket.gethostname() or alive(int(holder.get("pid", 0))):
            return False
        self.lock_path.unlink(missing_ok=True)
        return True

    def _held_message(self) -> str:
        holder = self._read_holder()
        return (
            f"another deployer is working on this stage: `{holder.get('command', '?')}` "
            f"(pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('since', '?')}); "
            f"wait for it, or if it is gone delete {self.lock_path}"
        )
