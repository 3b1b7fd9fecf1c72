"""What is deployed, kept between runs: load, save (atomically) and lock, behind a small interface.

By default the state is shared, in S3 (S3StateStore): one object per stage of the app, written only
if it is still the version this run read (If-Match on its ETag), and a lock object created only if
there is none (If-None-Match), naming its holder, so that CI and teammates deploy the same app safely.
`[state] backend = "local"` keeps one file per stage in `.deployer/` beside deploy.toml instead,
with a kernel lock (LocalStateStore), for a single user. deployer/stores.py picks the store for a stage.

A state is checked when it is read: its shape (every field the type it must be) and the app it names
(a state copied from another app is refused, never used; deploy.py checks its region). Only IDs,
names and versions are stored: never credentials, never environment values.
"""

from __future__ import annotations

import contextvars
import getpass
import hashlib
import json
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from deployer import filelock
from deployer.errors import DeployerError, UsageError

if TYPE_CHECKING:
    from deployer.plan import Learned

HISTORY_LENGTH = 20
# The command holding the lock, for the history's entries (set by each store's lock()).
running_command: contextvars.ContextVar[str | None] = contextvars.ContextVar("command", default=None)


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return str(os.getuid())


MOVE_ASIDE = "move it aside and run again: deployer finds its resources by their names and tags"


@dataclass(slots=True)  # a field it does not have is an error, never an attribute that is not saved
class State:
    app: str | None = None
    stage: str | None = None
    region: str | None = None
    version: str | None = None
    bucket: str | None = None
    key: str | None = None
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
    log_group: str | None = None  # the function's CloudWatch Logs group, made (or adopted) before the function
    domain: str | None = None  # the stage's custom domain name
    domain_url: str | None = None  # https://<domain>/<base path>
    domain_status: str | None = None  # "ready", "waiting for DNS" or "validating" (the certificate)
    domain_target: dict[str, Any] | None = None  # API Gateway's {"name", "zone"} the domain's records point at
    certificate_arn: str | None = None  # the certificate the domain uses
    requested_certificate_arn: str | None = None  # one deployer requested: down deletes it when nothing uses it
    dns_records: list[dict[str, Any]] | None = (
        None  # Route 53 records deployer wrote: {"zone", "name", "type", "value"}
    )
    dns_pending: list[dict[str, Any]] | None = None  # records to create by hand (no zone): {"name", "type", "value"}
    # The front door (issue 26): which type serves the stage (None: a state from before, the REST API), and the IDs
    # of an HTTP API's parts or the function URL. base_url is the stage's URL whatever the type.
    api_type: str | None = None
    http_api_id: str | None = None
    http_integration_id: str | None = None
    http_route_id: str | None = None
    function_url: str | None = None

    def learn(self, learned: Learned) -> None:
        """Take in what a plan found in the account, or what a step made: each key is one of the State's fields
        (Learned's type says which; one it does not have raises here, as State has slots)."""
        for name, value in learned.items():
            setattr(self, name, value)

    def record(self, action: str, version: str | None) -> None:
        """Append to the short history of what was deployed when, by whom and how (newest last)."""
        entry = {
            "action": action,
            "version": version,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "by": f"{current_user()}@{socket.gethostname()}",
            "command": running_command.get(),
        }
        self.history = [*self.history, entry][-HISTORY_LENGTH:]

    def forget_resources(self) -> None:
        """After `down`: nothing is deployed any more, the history stays."""
        keep = {"app", "stage", "region", "history", "releases"}  # down leaves the artifacts
        for item in fields(self):
            if item.name not in keep:
                setattr(self, item.name, None)
        # The function and its versions are gone; a new one numbers its versions from 1 again.
        self.releases = {name: {**record, "lambda_version": None} for name, record in self.releases.items()}

    @property
    def deployed(self) -> bool:
        return any((self.role_name, self.function_name, self.rest_api_id, self.http_api_id, self.function_url))

    def copy(self) -> State:
        """A snapshot: what a plan reads, while the run changes the state itself."""
        return replace(self, history=list(self.history), releases=dict(self.releases))

    @classmethod
    def from_dict(cls, data: Any, where: str = "the state") -> State:
        """The state a decoded JSON document holds; StateInvalid naming the field that is not what it must be."""
        if not isinstance(data, dict):
            raise StateInvalid(f"{where} holds {type(data).__name__}, not a deployer state")
        values: dict[str, Any] = {}
        for item in fields(cls):
            if item.name not in data:
                continue
            value, kind = data[item.name], FIELD_TYPES.get(item.name, str)
            if value is not None and not isinstance(value, kind):
                raise StateInvalid(f"{where}: {item.name} is {type(value).__name__}, not {kind.__name__}")
            values[item.name] = value
        for name, record in (values.get("releases") or {}).items():
            if not isinstance(record, dict) or any(
                key in record and not isinstance(record[key], kind) for key, kind in RELEASE_FIELDS.items()
            ):
                raise StateInvalid(f"{where}: release {name} is not a release record")
        canary = values.get("canary")
        if canary is not None and not _is_share(canary.get("weight")):
            raise StateInvalid(f"{where}: the canary's weight is {canary.get('weight')!r}, not a share between 0 and 1")
        if not all(isinstance(entry, dict) for entry in values.get("history") or []):
            raise StateInvalid(f"{where}: history holds something other than entries")
        return cls(**values)

    def check_identity(self, app: str, where: str) -> None:
        """A state names the app it describes: another app's is refused, so that its resources are never
        changed or deleted in this app's name. (Its stage may differ: the default stage renamed.)"""
        if self.app is not None and self.app != app:
            raise UsageError(
                f"{where} describes app {self.app}, not {app}: it belongs to another deployment; move it "
                "aside (deployer finds this app's own resources by their tags)"
            )


class StateInvalid(UsageError):
    """A state whose shape is not a deployer state: refused before anything is done with it."""


# The fields that are not strings (None is always allowed: not known yet).
FIELD_TYPES: dict[str, type] = {
    "history": list, "releases": dict, "canary": dict, "domain_target": dict, "dns_records": list, "dns_pending": list,
}  # fmt: skip
# A release record's fields (rollback rebuilds the release from them) and their types.
RELEASE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "code_sha256": str,
    "runtime": str,
    "handler": str,
    "memory": int,
    "timeout": int,
    "architecture": str,
    "environment": list,
    "lambda_version": (str, type(None)),
}


def _is_share(weight: Any) -> bool:
    return isinstance(weight, (int, float)) and not isinstance(weight, bool) and 0 < weight < 1


class StateStore(Protocol):
    def load(self) -> State: ...

    def save(self, state: State) -> None: ...

    def lock(self, command: str) -> Any: ...  # a context manager held for the whole command

    def unlock(self, confirm: Callable[[str], bool]) -> str | None: ...  # the holder removed, or None

    @property
    def own_writes(self) -> int: ...  # the AWS writes of the state and its lock (in S3): not changes to the stack


def file_stem(name: str) -> str:
    """A file name for `name` that no other name shares, even where the file system ignores case: names with
    capitals get a digest of their exact spelling ("Demo" and "demo" keep two files)."""
    if name == name.lower():
        return name
    return f"{name}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


class LocalStateStore:
    """`.deployer/<name>.json` and its lock `.deployer/<name>.lock` in the project folder."""

    own_writes = 0  # a file on this machine: no AWS call

    def __init__(self, folder: Path, name: str, app: str | None = None) -> None:
        self.folder = folder
        self.name = name
        self.app = app
        self.path = folder / f"{file_stem(name)}.json"
        self.lock_path = folder / f"{file_stem(name)}.lock"
        # Before names with capitals got their digest, the file was `<name>.json`: still read, once.
        self.legacy_path = folder / f"{name}.json" if file_stem(name) != name else None

    def load(self) -> State:
        state = self._read(self.path)
        if state is None and self.legacy_path is not None:
            state = self._read(self.legacy_path)
            if state is not None and state.app != self.app and (state.app or "").lower() == (self.app or "").lower():
                return State()  # a case-insensitive file system showed another app's file ("demo" for "Demo")
        if state is not None and self.app is not None:
            state.check_identity(self.app, f"state file {self.path}")
        return state or State()

    def _read(self, path: Path) -> State | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            raise self._folder_is_a_file() from None
        except (OSError, UnicodeDecodeError) as error:
            raise StateInvalid(f"state file {path} cannot be read ({error}); {MOVE_ASIDE}") from None
        try:
            return State.from_dict(json.loads(text), where=f"state file {path}")
        except json.JSONDecodeError as error:
            raise StateInvalid(f"state file {path} is not JSON ({error}); {MOVE_ASIDE}") from None
        except RecursionError:
            raise StateInvalid(f"state file {path} nests too deeply to be a deployer state; {MOVE_ASIDE}") from None
        except StateInvalid as error:
            raise StateInvalid(f"{error}; {MOVE_ASIDE}") from None

    def _folder_is_a_file(self) -> UsageError:
        return UsageError(f"{self.folder} is a file, but deployer keeps its state in that folder: move the file aside")

    def _make_folder(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise self._folder_is_a_file() from None

    def save(self, state: State) -> None:
        """Temp file, fsync, rename: a crash leaves the old file or the new one, never half of one."""
        self._make_folder()
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
        self._forget_legacy()

    def _forget_legacy(self) -> None:
        """Once saved under the new name, the old file of this very app goes (another app's stays)."""
        if self.legacy_path is None:
            return
        try:
            legacy = self._read(self.legacy_path)
        except UsageError:
            return
        if legacy is not None and legacy.app == self.app:
            self.legacy_path.unlink(missing_ok=True)

    @contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """Held for the whole command. The kernel drops it when its holder ends, however it ends
        (SIGKILL included), so a lock is never left stale on this host; the file only names the holder."""
        self._make_folder()
        with filelock.held(self.lock_path, command, refused=self._held):
            token = running_command.set(command)
            try:
                yield
            finally:
                running_command.reset(token)

    def _held(self, holder: dict[str, Any]) -> DeployerError:
        return DeployerError(
            f"another deployer is working on {self.name}: {filelock.describe(holder)}; "
            "wait for it to finish, or stop that process: its lock goes with it"
        )

    def unlock(self, confirm: Callable[[str], bool]) -> str | None:
        """Nothing to remove: the kernel lock goes with its holder, however it ends."""
        return None
