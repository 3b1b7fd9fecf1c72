"""Read ahead: the reads a plan will make, sent all at once before it asks, when the state predicts them.

A plan's reads go in waves: the REST API's resources after the API, the function's versions after the artifact's
digest, the stage's deployment after the stage. But once a stack is deployed its state names every ID those reads
take, so they need not wait for each other. Each step that can may declare `ahead(target)`: the reads its plan will
make, as `Read`s (client, operation, parameters), predicted from the configuration and the recorded state.

`reading_ahead(aws, reads)` sends them together (one thread each) and, while the plan runs, answers a call of the
plan that matches one (same service, operation and parameters) with that read's answer, once: its data, or its
error, raised as botocore raises it. So an unchanged `up` reads in one round trip where it took four.

What it does not change: a read the plan makes that was not predicted goes to AWS as before; a prediction the plan
does not ask for costs one read and is dropped (`unused`); nothing read ahead is served once the plan is done (an
apply's read-back always asks AWS). The answers are from within the same locked command, a few milliseconds
earlier than the plan would have read them.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore import xform_name
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from deployer.aws import Aws

_fetching = threading.local()  # set in the threads sending the reads ahead: their own calls go to AWS


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
    """The reads sent ahead, by key: each answers the first call of the plan that matches it."""

    pending: dict[str, Future[tuple[int, dict[str, Any]] | None]] = field(default_factory=dict)
    served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def unused(self) -> int:
        """Predictions the plan did not ask for (each cost a read)."""
        return len(self.pending)

    def answer(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        """botocore's before-call: (response, parsed) for a call a read ahead answers, which botocore then returns
        or raises as it would AWS's; None lets the call go to AWS (registered first, so it is then counted)."""
        if getattr(_fetching, "active", False):
            return None
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


def _keep_as_parsed(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
    """botocore's after-call: in a thread sending a read ahead, a copy of the answer as botocore parsed it, before
    the after-call handlers change it in place (IAM's policy documents are decoded there): served, it goes through
    them as AWS's answer would."""
    if getattr(_fetching, "active", False):
        _fetching.answer = http_response.status_code, copy.deepcopy(parsed)


def _send(client: Any, read: Read) -> tuple[int, dict[str, Any]] | None:
    """The read's HTTP status and parsed answer, an error's included; None when it got no answer (the plan's own
    call then tries, and fails or succeeds, as it would have)."""
    _fetching.active, _fetching.answer = True, None
    try:
        getattr(client, xform_name(read.operation))(**read.params)
    except ClientError:
        pass  # kept as it came: the plan's call raises it
    except Exception:  # a connection that failed: the plan's call meets it again, and reports it
        _fetching.answer = None
    finally:
        _fetching.active = False
    answer: tuple[int, dict[str, Any]] | None = _fetching.answer
    return answer


def _after_call_of(client: Any, operation: str) -> str:
    return f"after-call.{client.meta.service_model.service_id.hyphenize()}.{operation}"


@contextmanager
def reading_ahead(aws: Aws, reads: Sequence[Read]) -> Iterator[Answers]:
    """Send `reads` at once; until the block ends, the plan's matching calls get their answers."""
    answers = Answers()
    if not reads:
        yield answers
        return
    reads = list({read.key: read for read in reads}.values())  # one read for two steps that predict it
    clients = {read.service: aws.client(read.service) for read in reads}
    # botocore runs an event's most specific handlers first: the answer is copied at the operation's own event,
    # before the service's handlers (IAM's decoding of policy documents) change it.
    hooks: dict[tuple[str, str], Callable[..., Any]] = {
        **{(read.service, "before-call"): answers.answer for read in reads},
        **{(read.service, _after_call_of(clients[read.service], read.operation)): _keep_as_parsed for read in reads},
    }
    unique = f"deployer-read-ahead-{id(answers)}"  # botocore keeps one handler per unique_id, whatever the event
    for (service, event), handler in hooks.items():
        clients[service].meta.events.register_first(event, handler, unique_id=f"{unique} {event}")
    pool = ThreadPoolExecutor(max_workers=len(reads), thread_name_prefix="deployer-ahead")
    try:
        for read in reads:
            answers.pending[read.key] = pool.submit(_send, clients[read.service], read)
        yield answers
    finally:
        for service, event in hooks:
            clients[service].meta.events.unregister(event, unique_id=f"{unique} {event}")
        pool.shutdown(wait=True)  # a read still in flight is let finish; its answer is dropped
