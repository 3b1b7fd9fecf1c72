"""Real AWS's misbehaviour (docs/ARCHITECTURE.md, "What real AWS does"), injected in front of moto with
botocore event hooks.

A handler registered first on `before-send.<service>.<Operation>` runs ahead of moto's own before-send
stub; when it returns an AWSResponse, botocore takes it as the HTTP answer: it parses the protocol's
error body, and its retry logic (standard mode, as deployer.aws configures it) applies for real.
Register on the `boto3.Session` before any client is made: clients copy the session's hooks.

botocore calls every before-send handler, not only up to the first answer, so in-process moto would
still carry out a request we refuse: `refuse()` points the refused request at an address moto does not
serve first. (botocore makes a new request for each retry; against moto_server nothing is sent at all.)

`after-call` hooks rewrite what a call parsed (a function still Pending, an update InProgress).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from tests.support import Waiting

# The service part of botocore's event names (the service id, hyphenised) and each service's protocol.
EVENT_SERVICE = {
    "lambda": "lambda", "apigateway": "api-gateway", "iam": "iam", "s3": "s3", "logs": "cloudwatch-logs",
    "acm": "acm", "route53": "route-53", "ssm": "ssm", "secretsmanager": "secrets-manager", "sts": "sts",
}  # fmt: skip
SERVICE_OF_EVENT = {value: key for key, value in EVENT_SERVICE.items()}
PROTOCOL = {
    "lambda": "rest-json", "apigateway": "rest-json", "iam": "query", "s3": "rest-xml", "logs": "json", "acm": "json",
    "route53": "rest-xml", "ssm": "json", "secretsmanager": "json", "sts": "query",
}  # fmt: skip

# What each service answers when it throttles: (code, message, HTTP status).
THROTTLES = {
    "lambda": ("TooManyRequestsException", "Rate exceeded", 429),
    "apigateway": ("TooManyRequestsException", "Too Many Requests", 429),
    "iam": ("Throttling", "Rate exceeded", 400),
    "s3": ("SlowDown", "Please reduce your request rate.", 503),
    "logs": ("ThrottlingException", "Rate exceeded", 400),
    "acm": ("ThrottlingException", "Rate exceeded", 400),
    "route53": ("Throttling", "Rate exceeded", 400),
}

ROLE_NOT_ASSUMABLE = "The role defined for the function cannot be assumed by Lambda."
PENDING_REFUSAL = (
    "The operation cannot be performed at this time. The function is currently in the following state: Pending"
)
UPDATE_IN_PROGRESS = "The operation cannot be performed at this time. An update is in progress for resource: {arn}"
CONCURRENT_MODIFICATION = "Unable to complete operation due to concurrent modification. Please try again later."
STATEMENT_EXISTS = (
    "The statement id ({sid}) provided already exists. Please provide a new statement id, or remove the existing "
    "statement."
)
RUNTIME_RETIRED = (
    "The runtime parameter of nodejs6.10 is no longer supported for creating or updating AWS Lambda functions. "
    "We recommend you use a supported runtime while creating or updating functions."
)


class RawBody:
    """What AWSResponse reads the body from."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


NOWHERE = "https://fault-injected.invalid/"


def refuse(request: AWSPreparedRequest, service: str, code: str, message: str, status: int) -> AWSResponse:
    """Answer the request with this error; moto's stub, called after us, finds nothing to serve."""
    url, request.url = request.url, NOWHERE
    return error_response(service, url, code, message, status)


def error_response(service: str, url: str, code: str, message: str, status: int) -> AWSResponse:
    """An error answer in the service's own protocol, as botocore's parsers expect it."""
    protocol = PROTOCOL[service]
    headers = {"x-amzn-RequestId": "fault-injected"}
    if protocol in ("rest-json", "json"):
        headers |= {"x-amzn-ErrorType": code, "Content-Type": "application/x-amz-json-1.1"}
        body = json.dumps({"__type": code, "message": message, "Message": message, "Type": "User"}).encode()
    elif protocol == "query":
        headers["Content-Type"] = "text/xml"
        body = (
            '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>1</RequestId></ErrorResponse>"
        ).encode()
    else:
        headers["Content-Type"] = "application/xml"
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            "<RequestId>1</RequestId></Error>"
        ).encode()
    headers["Content-Length"] = str(len(body))
    return AWSResponse(url, status, headers, RawBody(body))  # type: ignore[arg-type]


@dataclass
class Fault:
    """One injected failure: how many requests for the operation it saw, and how many it failed."""

    service: str
    operation: str
    code: str
    times: int
    seen: int = 0  # every attempt, botocore's retries included
    injected: int = 0


def fail(
    session: boto3.Session,
    service: str,
    operation: str,
    code: str,
    message: str,
    status: int = 400,
    times: int = 1,
    after: int = 0,
    before: Callable[[AWSPreparedRequest], None] | None = None,
) -> Fault:
    """The first `times` requests for service.Operation (after letting `after` through) answer this error.

    `before(request)` runs just before each injected error, e.g. to do what a concurrent run did.
    """
    fault = Fault(service, operation, code, times)

    def handler(request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        fault.seen += 1
        if fault.seen <= after or fault.injected >= times:
            return None
        if before is not None:
            before(request)
        fault.injected += 1
        return refuse(request, service, code, message, status)

    session.events.register_first(f"before-send.{EVENT_SERVICE[service]}.{operation}", handler)
    return fault


def throttle(session: boto3.Session, service: str, operation: str, times: int = 3) -> Fault:
    """The service's own throttling answer, `times` times in a row."""
    code, message, status = THROTTLES[service]
    return fail(session, service, operation, code, message, status, times=times)


@dataclass
class RandomThrottling:
    injected: Counter[str] = field(default_factory=Counter)  # "service.Operation" -> throttled attempts
    requests: int = 0


def throttle_randomly(session: boto3.Session, rate: float = 0.25, seed: int = 0) -> RandomThrottling:
    """Every request of every service is throttled with probability `rate`, with that service's own error."""
    record = RandomThrottling()
    tries: Counter[str] = Counter()

    def handler(request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse | None:
        _, event_service, operation = event_name.split(".")
        service = SERVICE_OF_EVENT[event_service]
        record.requests += 1
        # Drawn per operation and try, not per request in turn: steps run at once, so requests come in any order.
        tries[operation] += 1
        if random.Random(f"{seed} {operation} {tries[operation]}").random() >= rate:
            return None
        record.injected[f"{service}.{operation}"] += 1
        code, message, status = THROTTLES[service]
        return refuse(request, service, code, message, status)

    session.events.register_first("before-send", handler)
    return record


def rewrite(session: boto3.Session, service: str, operation: str, change: Callable[[dict[str, Any]], None]) -> None:
    """`change(parsed)` edits each successful answer to service.Operation, as AWS would have answered it: once per
    answer, where botocore parses it (a read sent ahead and served to the plan is one answer, edited once)."""

    def handler(response_dict: dict[str, Any] | None, parsed_response: dict[str, Any] | None, **_: Any) -> None:
        if response_dict is not None and parsed_response is not None and response_dict["status_code"] < 300:
            change(parsed_response)

    session.events.register(f"response-received.{EVENT_SERVICE[service]}.{operation}", handler)


def retry_attempts(session: boto3.Session, service: str, operation: str) -> list[int]:
    """botocore's RetryAttempts of each call of service.Operation, as they complete."""
    attempts: list[int] = []

    def handler(parsed: dict[str, Any], **_: Any) -> None:
        attempts.append(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0))

    session.events.register(f"after-call.{EVENT_SERVICE[service]}.{operation}", handler)
    return attempts


@dataclass
class Sleeps:
    """What botocore slept for instead of sleeping: its retry backoffs and its waiters' delays."""

    retries: list[float] = field(default_factory=list)
    waiter: list[float] = field(default_factory=list)


def no_botocore_sleep(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    """botocore sleeps through `time.sleep` in botocore.endpoint (retries) and botocore.waiter: record instead."""
    sleeps = Sleeps()
    monkeypatch.setattr("botocore.endpoint.time", SimpleNamespace(sleep=sleeps.retries.append))
    monkeypatch.setattr("botocore.waiter.time", SimpleNamespace(sleep=sleeps.waiter.append))
    return sleeps


def give_up_at_once(monkeypatch: pytest.MonkeyPatch, waiting: Waiting) -> None:
    """deployer.retry's deadline passes at once: the first refusal is final, as if nothing retried it."""
    ticks = iter(range(0, 10**9, 10**6))
    monkeypatch.setattr(waiting, "clock", lambda: float(next(ticks)))


def without_botocore_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients made from now on try each request once (botocore's `max_attempts` counts retries only)."""
    monkeypatch.setattr("deployer.aws.RETRY_POLICY", {"mode": "standard", "total_max_attempts": 1})
