"""The shared state: `s3://<bucket>/<prefix><app>/<stage>/state.json` and its lock, `lock.json` beside it.

Terraform's S3 backend is the model, with conditional writes instead of a lock table:

- the state is written only if it is still the version this run read (If-Match on its ETag; If-None-Match
  when there was none): a write based on a stale read is refused and reported, never silently overwrites;
- the lock is an object created only if there is none (If-None-Match: *), holding who holds it; a second
  run, from any machine, is refused at once naming the holder; the lock is released at the end, on errors
  and on Ctrl-C, and removed only if it is still the one taken (If-Match);
- a run killed with SIGKILL leaves its lock: the next run names it and the way out, `deployer unlock`,
  which removes that very lock (If-Match on the ETag it showed), never one taken since.

Objects are written with SSE-S3 encryption, in the bucket deployer makes private (deployer/bucket.py: the lock
is the first write of an app's first deploy, so the bucket is made here when S3 says it is missing). An existing
`.deployer/<name>.json` (the local store) is read when the bucket holds no state yet, and moved into S3 by the
first write, under the lock.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from deployer.aws import (
    Aws,
    is_access_denied,
    is_mutating,
    is_no_such_bucket,
    is_no_such_key,
    is_s3_absent,
    is_s3_condition_failed,
    what_was_denied,
)
from deployer.bucket import finish_if_unfinished, make_bucket
from deployer.errors import DeployerError, UsageError
from deployer.output import FIELD_LIMIT, untrusted
from deployer.state import MOVE_ASIDE, LocalStateStore, State, StateInvalid, current_user, running_command


class S3StateStore:
    def __init__(
        self,
        aws: Aws,
        bucket: str,
        prefix: str,
        app: str,
        legacy: LocalStateStore | None = None,
        bucket_note: Path | None = None,
    ) -> None:
        self.aws = aws
        self.bucket = bucket
        self.name = f"{prefix}state.json"
        self.lock_key = f"{prefix}lock.json"
        self.app = app
        self.legacy = legacy
        self.where = f"s3://{bucket}/{self.name}"
        self._etag: str | None = None  # the version read last (None: there was none)
        self._body: bytes | None = None  # what it held, to skip writing the very same bytes
        self._moving_legacy = False
        # The state's and lock's own writes by operation, counted: they are in aws.calls, but not the run's changes
        # (counted, not placed: the steps' calls interleave with them when steps run at once).
        self._own_writes: Counter[str] = Counter()
        self._bucket_note = bucket_note  # deployer/bucket.py's note of a bucket being made

    # ---- the state ----------------------------------------------------------------------------------------

    def load(self) -> State:
        """The shared state (one GET), or the local file not yet moved into S3, or an empty state."""
        try:
            answer = self.aws.s3.get_object(Bucket=self.bucket, Key=self.name)
        except ClientError as error:
            if is_access_denied(error):
                raise self._forbidden("s3:GetObject", error) from None
            if not is_s3_absent(error):
                raise self._not_s3(error) from None
            self._etag, self._body = None, None
            legacy = self.legacy.load() if self.legacy is not None and self.legacy.path.exists() else None
            self._moving_legacy = legacy is not None
            return legacy or State()
        body = answer["Body"].read()
        self._etag, self._body, self._moving_legacy = answer["ETag"], body, False
        try:
            state = State.from_dict(json.loads(body), where=f"the state {self.where}")
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise StateInvalid(f"the state {self.where} is not JSON ({error}); {MOVE_ASIDE}") from None
        except RecursionError:
            raise StateInvalid(
                f"the state {self.where} nests too deeply to be a deployer state; {MOVE_ASIDE}"
            ) from None
        except StateInvalid as error:
            raise StateInvalid(f"{error}; {MOVE_ASIDE}") from None
        state.check_identity(self.app, f"the state {self.where}")
        return state

    def save(self, state: State) -> None:
        """Write it if it is still the version read (else refuse: another run wrote it since)."""
        body = (json.dumps(asdict(state), indent=2, sort_keys=True) + "\n").encode()
        if body == self._body:
            return  # nothing new: no write at all
        condition = {"IfMatch": self._etag} if self._etag else {"IfNoneMatch": "*"}
        try:
            answer = self._put(self.name, body, **condition)
        except ClientError as error:
            if is_s3_condition_failed(error):
                raise DeployerError(self._stale_message()) from None
            if is_access_denied(error):
                raise self._forbidden("s3:PutObject", error) from None
            raise
        self._etag, self._body = answer["ETag"], body
        if self._moving_legacy and self.legacy is not None:
            self.legacy.path.rename(self.legacy.path.with_suffix(".json.moved-to-s3"))
            self._moving_legacy = False

    @property
    def own_writes(self) -> int:
        return self._own_writes.total()

    def _put(self, key: str, body: bytes, **condition: str) -> dict[str, Any]:
        """A JSON object, encrypted, written only if `condition` (If-Match / If-None-Match) holds."""
        self._own_writes["PutObject"] += 1
        return self.aws.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            ServerSideEncryption="AES256",
            **condition,
        )

    def _stale_message(self) -> str:
        """A refused write of the state: what this run had changed in AWS by then, which the state now misses."""
        changed = list((Counter(call for call in self.aws.calls if is_mutating(call)) - self._own_writes).elements())
        what = f"the state {self.where} changed since this run read it (another run wrote it): it was not overwritten"
        if not changed:
            return f"{what}; this run changed nothing in AWS: run the command again to start from what is there now"
        return (
            f"{what}; but this run had already changed AWS ({', '.join(dict.fromkeys(changed))}), which the state does "
            "not record: run the command again once the other run is done; it finds what exists by name and tags"
        )

    def _not_s3(self, error: ClientError) -> Exception:
        """A bare 404 to a GetObject: the endpoint is not S3; any other refusal is reported as it is."""
        if not is_no_such_key(error):
            return error
        parts = urlsplit(self.aws.s3.meta.endpoint_url)
        site = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return DeployerError(
            f"{site} answered s3:GetObject with a bare 404, not S3's NoSuchKey: it is not answering as AWS, so "
            "whether anything is deployed is unknown; check --endpoint-url and AWS_ENDPOINT_URL"
        )

    def _forbidden(self, permission: str, error: ClientError) -> DeployerError:
        needs = what_was_denied(error) or f"{permission} on arn:aws:s3:::{self.bucket}/{self.name}"
        return DeployerError(
            f"you may not use the shared state s3://{self.bucket}/{self.name.rsplit('/', 1)[0]}/: needs {needs}; "
            "your credentials need s3:GetObject, s3:PutObject and s3:DeleteObject on that prefix, or set [state] "
            'backend = "local" to keep the state on this machine'
        )

    # ---- the lock ----------------------------------------------------------------------------------------

    @contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """Held for the whole command; released at the end, on errors and on Ctrl-C."""
        holder = {
            "user": current_user(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "command": command,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
            "id": uuid.uuid4().hex,
        }
        etag = self._take(holder)
        token = running_command.set(command)
        try:
            yield
        finally:
            running_command.reset(token)
            self._release(etag)

    def _take(self, holder: dict[str, Any]) -> str:
        body = json.dumps(holder).encode()
        finish_if_unfinished(self.aws, self.bucket, self._bucket_note)  # a run died before the bucket's settings
        for _ in range(2):  # a second time only after creating a bucket that was missing
            try:
                return str(self._put(self.lock_key, body, IfNoneMatch="*")["ETag"])
            except ClientError as error:
                if is_s3_condition_failed(error):
                    raise DeployerError(self._held_message()) from None
                if is_access_denied(error):
                    raise self._forbidden("s3:PutObject", error) from None
                if not is_no_such_bucket(error):
                    raise
                make_bucket(self.aws, self.bucket, self._bucket_note)  # the first deploy of the app: the bucket first
        raise DeployerError(f"bucket {self.bucket} is still missing after creating it; run the command again")

    def _release(self, etag: str) -> None:
        self._own_writes["DeleteObject"] += 1
        try:
            self.aws.s3.delete_object(Bucket=self.bucket, Key=self.lock_key, IfMatch=etag)
        except ClientError as error:
            # Removed by `unlock`, or replaced since: not ours now.
            if not (is_s3_condition_failed(error) or is_no_such_key(error)):
                raise

    def _read_lock(self) -> tuple[bytes, str] | None:
        """The lock object's bytes and ETag, or None when nobody holds it."""
        try:
            answer = self.aws.s3.get_object(Bucket=self.bucket, Key=self.lock_key)
        except ClientError as error:
            if is_s3_absent(error):
                return None
            raise self._not_s3(error) from None
        return answer["Body"].read(), answer["ETag"]

    def _holder(self) -> tuple[dict[str, Any], str] | None:
        """The lock's holder and the lock's ETag, or None when nobody holds it."""
        found = self._read_lock()
        if found is None:
            return None
        holder = _parsed(found[0])
        if holder is None:
            raise UsageError(
                f"s3://{self.bucket}/{self.lock_key} is not a deployer lock (not a JSON object); if no deployer runs "
                "on this stage, `deployer unlock` removes it"
            )
        return holder, found[1]

    def _describe(self, holder: dict[str, Any]) -> str:
        # Whoever can write the bucket wrote these fields: shown cut, their control characters escaped.
        field = {
            name: untrusted(holder.get(name, "?"), FIELD_LIMIT) for name in ("command", "pid", "host", "user", "since")
        }
        return (
            f"`{field['command']}` (pid {field['pid']} on {field['host']}, user {field['user']}, "
            f"since {field['since']})"
        )

    def _held_message(self) -> str:
        found = self._holder()
        holder = found[0] if found else {}
        where = f"another deployer is working on {self.name.rsplit('/', 1)[0]}: {self._describe(holder)}"
        if _running_here(holder) is False:
            return (
                f"{where}, but pid {holder.get('pid')} is no longer running on this host: that run is gone, so "
                "unlocking is safe: `deployer unlock` removes its lock"
            )
        return f"{where}; wait for it to finish; if that run is gone (killed), `deployer unlock` removes its lock"

    def unlock(self, confirm: Callable[[str], bool]) -> str | None:
        """Remove the lock as it is now, if `confirm(description)` agrees: only that very lock (If-Match). A lock
        held by a run still alive on this machine is never removed; an object that is not a lock is shown as it is."""
        found = self._read_lock()
        if found is None:
            return None
        body, etag = found
        holder = _parsed(body)
        if holder is None:
            description = f"an object that is not a deployer lock: {_shown(body)}"
        else:
            description = self._describe(holder)
            running = _running_here(holder)
            if running:
                raise DeployerError(
                    f"the lock is held by {description}, which is still running on this host: nothing removed; "
                    f"wait for it to finish, or stop it (Ctrl-C, or kill {holder['pid']}: it releases its lock)"
                )
            if running is False:
                description += ", no longer running on this host"
        if not confirm(description):
            raise DeployerError("nothing removed")
        try:
            self.aws.s3.delete_object(Bucket=self.bucket, Key=self.lock_key, IfMatch=etag)
        except ClientError as error:
            if is_s3_condition_failed(error):
                raise DeployerError(
                    "the lock changed since it was read (a new run holds it now): nothing removed"
                ) from None
            raise
        return description


LOCK_SHOWN = 200  # characters of an object that is not a lock, shown to whoever removes it


def _parsed(body: bytes) -> dict[str, Any] | None:
    """The lock's holder, or None when the object is not a JSON object (`garbage`, `null`, `[1]`)."""
    try:
        holder = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return holder if isinstance(holder, dict) else None


def _shown(body: bytes) -> str:
    """Bytes someone else wrote, as one printable line: control characters escaped, cut at LOCK_SHOWN."""
    text = body.decode("utf-8", "replace")
    escaped = "".join(char if char.isprintable() else repr(char)[1:-1] for char in text[: LOCK_SHOWN + 1])
    return f"'{escaped[:LOCK_SHOWN]}…'" if len(escaped) > LOCK_SHOWN else f"'{escaped}'"


def _running_here(holder: dict[str, Any]) -> bool | None:
    """Whether the holder's process runs: None when it is not on this host (or names no pid), else True/False."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    except OverflowError:
        return None
    return True
