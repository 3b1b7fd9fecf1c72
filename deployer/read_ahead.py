"""Read ahead: the reads a plan will make, sent all at once before it asks.

A plan's reads go in waves: the REST API's resources after the API, the function's versions after the artifact's
digest, the stage's deployment after the stage. But once a stack is deployed its state names every ID those reads
take, so they need not wait for each other. Each step that can may declare `ahead(target)`: the reads its plan will
make, as `Read`s (client, operation, parameters), predicted from the configuration and the recorded state.

`reading_ahead(aws, reads)` sends them together (one thread each) and, while the plan runs, answers a call of the
plan that matches one (same service, operation and parameters) with that read's answer, once: its data, or its
error, raised as botocore raises it. So an unchanged `up` reads in one round trip where it took four.

Earlier still: the state must be read before it predicts anything, a round trip of its own. So `up` and `promote`
keep the reads the state predicts for the next plan in a hint file (.deployer/cache/reads-ahead-<function>.json),
and the next command sends those (a `ReadsAhead`) as soon as it holds the lock, with the state's own read: an
unchanged `up` is the lock, the state and its reads, the release. The hint only chooses what is read early: reads
go out only under the lock, only reads (Get, List, Head, Describe), and answer only the calls that match them.

What it does not change: a read the plan makes that was not predicted goes to AWS as before; a prediction the plan
does not ask for costs one read and is dropped (`unused`); nothing read ahead is served once the plan is done (an
apply's read-back always asks AWS). The answers are from within the same locked command, a few milliseconds
earlier than the plan would have read them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore import xform_name
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from deployer.aws import Aws

_fetching = threading.local()  # set in the threads sending the reads ahead: their own calls go to AWS
# What a hint file may name: reads, never a change. Stricter than deployer.aws's READ_PREFIXES, which counts the
# check's Invoke and `logs`' FilterLogEvents as no change: neither is a plan's read.
HINTED_OPERATIONS = ("Get", "List", "Head", "Describe")
MAX_READS = 32  # reads sent ahead at once, a thread each (an unchanged up makes 14)


@dataclass(frozen=True)
class Read:
    """One read a plan will make: `service` as deployer.aws names its client ("lambda"), `operation` as botocore
    names it ("GetFunction"), and its parameters exactly as the plan passes them (a paginator's first page too)."""

    service: str
    operation: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return _key(self.service, self.operation, self.params)


def _key(service: str, operation: str, params: Mapping[str, Any]) -> str:
    return f"{service} {operation} {json.dumps(params, sort_keys=True, default=str)}"


@dataclass
class Answers:
    """The reads sent ahead, by key: while a Listener holds them, each answers the first call of the plan that
    matches it."""

    pending: dict[str, Future[tuple[int, dict[str, Any]] | None]] = field(default_factory=dict)
    served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def unused(self) -> int:
        """Predictions the plan did not ask for (each cost a read)."""
        return len(self.pending)

    def answer(self, model: Any, context: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]] | None:
        """(response, parsed) for a call a read ahead answers, which botocore then returns or raises as it would
        AWS's; None lets the call go to AWS."""
        params = context.get("deployer_params")  # deployer.aws keeps every call's parameters on its context
        if params is None:
            return None
        key = _key(model.service_model.service_name, model.name, params)
        with self.lock:
            future = self.pending.pop(key, None)
        answered = future.result() if future is not None else None
        if answered is None:
            return None
        status, parsed = answered
        with self.lock:
            self.served += 1
        headers = parsed.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return AWSResponse(None, status, headers, None), parsed


class Listener:
    """Where a client's calls meet the reads ahead: set on every client of an Aws as it is made (`listen`), so no
    handler is ever registered on a client while another thread calls it. Idle (None) outside a plan."""

    def __init__(self) -> None:
        self.answers: Answers | None = None

    def before_call(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        """botocore's before-call (registered first, so a call it lets through is then counted)."""
        answers = self.answers
        if answers is None or getattr(_fetching, "active", False):
            return None
        return answers.answer(model, context)


def listen(client: Any, listener: Listener) -> None:
    """Give a new client's calls to `listener`, and keep a copy of a read ahead's answer as botocore parsed it.
    botocore runs an event's most specific handlers first: the copy is taken at the operation's level (the `*`),
    before the service's handlers (IAM's decoding of policy documents) change the answer in place."""
    events = client.meta.events
    events.register_first("before-call", listener.before_call, unique_id="deployer-read-ahead-answer")
    service = client.meta.service_model.service_id.hyphenize()
    events.register_first(f"after-call.{service}.*", _keep_as_parsed, unique_id="deployer-read-ahead-keep")


def _keep_as_parsed(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
    """botocore's after-call: in a thread sending a read ahead, a copy of the answer as botocore parsed it, before
    the after-call handlers change it in place (IAM's policy documents are decoded there): served, it goes through
    them as AWS's answer would."""
    if getattr(_fetching, "active", False):
        _fetching.answer = http_response.status_code, copy.deepcopy(parsed)


def _send(aws: Aws, read: Read) -> tuple[int, dict[str, Any]] | None:
    """The read's HTTP status and parsed answer, an error's included; None when it got no answer (the plan's own
    call then tries, and fails or succeeds, as it would have). The client is made here if it is not yet: the
    thread that sent the read waits for nothing."""
    _fetching.active, _fetching.answer = True, None
    try:
        client = aws.client(read.service)
        if client.meta.service_model.operation_model(read.operation).has_streaming_output:
            return None  # a body to read (S3's GetObject): never a plan's read, and never held here
        getattr(client, xform_name(read.operation))(**read.params)
    except ClientError:
        pass  # kept as it came: the plan's call raises it
    except Exception:  # a connection that failed, a client that cannot be made: the plan's call meets it again
        _fetching.answer = None
    finally:
        _fetching.active = False
    answer: tuple[int, dict[str, Any]] | None = _fetching.answer
    return answer


class ReadsAhead:
    """The reads sent ahead of one plan: `send` them as early as they are known (the ones the last plan of this
    stage made, as soon as the lock is held: deployer.cli), then, while the plan runs, `serving()` answers its calls
    with them. Used once: what is read ahead is never served after the plan."""

    def __init__(self, aws: Aws) -> None:
        self._aws = aws
        self.answers = Answers()
        self._pool: ThreadPoolExecutor | None = None
        self.finished = False

    def send(self, reads: Sequence[Read]) -> None:
        """Send each read not sent yet, at once (a thread each)."""
        if self.finished:
            return
        for read in reads:
            if read.key in self.answers.pending:
                continue
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=MAX_READS, thread_name_prefix="deployer-ahead")
            self.answers.pending[read.key] = self._pool.submit(_send, self._aws, read)

    @contextmanager
    def serving(self) -> Iterator[Answers]:
        """Until the block ends, the plan's calls that match a read sent get its answer, once."""
        listener = self._aws.reads_ahead
        listener.answers = self.answers
        try:
            yield self.answers
        finally:
            listener.answers = None
            self.close()

    def close(self) -> None:
        """No more reads or answers; a read still in flight is let finish, its answer dropped."""
        self.finished = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)


@contextmanager
def reading_ahead(aws: Aws, reads: Sequence[Read], early: ReadsAhead | None = None) -> Iterator[Answers]:
    """Send `reads` at once (besides those `early` sent already); until the block ends, the plan's matching calls
    get their answers."""
    ahead = early if early is not None and not early.finished else ReadsAhead(aws)
    ahead.send(reads)
    with ahead.serving() as answers:
        yield answers


# ---- the hint: the reads the last plan of a stage made, sent before its state is read ---------------------------

HINT_LIMIT = 64 * 1024  # bytes read of a hint file: a few dozen reads take a few kilobytes


def load_hint(path: Path, services: Collection[str]) -> list[Read]:
    """The reads a hint file names; none when it is missing, too large or not one, or names anything but a read
    (Get, List, Head, Describe) of one of `services` (the command's own clients). It is only a hint: a read it names
    that the plan does not make costs one read."""
    try:
        with path.open("rb") as stream:
            data = stream.read(HINT_LIMIT + 1)
        listed = json.loads(data) if len(data) <= HINT_LIMIT else None
    except (OSError, ValueError, RecursionError):
        return []
    if not isinstance(listed, list) or len(listed) > MAX_READS:
        return []
    reads = []
    for item in listed:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[2], dict)):
            return []
        service, operation, params = item
        if not (service in services and isinstance(operation, str) and operation.startswith(HINTED_OPERATIONS)):
            return []
        reads.append(Read(service, operation, params))
    return reads


def save_hint(path: Path, reads: Sequence[Read]) -> None:
    """Keep the reads the next plan will make, for the next command to send early; a hint that cannot be written
    is no error (the plan then reads them itself)."""
    listed = [[read.service, read.operation, dict(read.params)] for read in reads][:MAX_READS]
    with contextlib.suppress(OSError, TypeError, ValueError):
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(listed, default=str))
        os.replace(temporary, path)
