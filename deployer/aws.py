"""One place that makes boto3 clients: the region, the endpoint, and the retry policy, on purpose.

Throttling (API Gateway's TooManyRequestsException, IAM's Throttling, S3's SlowDown) and 5xx answers
are retried by botocore's "standard" mode with exponential backoff and jitter. The default "legacy"
mode gives up after 5 attempts, too few for API Gateway's one CreateDeployment per 5 s, so we ask for
more. The errors botocore never retries (IAM propagation, function updates in progress, API Gateway
concurrent modification) are handled where they happen, with deployer.retry.

An endpoint that does not answer must not hang a run (holding its lock): connections time out after
CONNECT_TIMEOUT, answers after READ_TIMEOUT (Invoke waits for the function's own timeout), and a connection
that fails is tried CONNECTION_ATTEMPTS times only, not the ten a throttled call gets: a dead or silent
endpoint costs at most about two minutes, a refused connection a few seconds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from deployer import retry
from deployer.errors import UsageError
from deployer.output import without_userinfo
from deployer.retry import error_code

T = TypeVar("T")

RETRY_POLICY = {"mode": "standard", "max_attempts": 10}
CONNECT_TIMEOUT = 5  # seconds to open a connection
READ_TIMEOUT = 30  # seconds to wait for an answer (AWS's control planes answer in well under that)
CONNECTION_ATTEMPTS = 3  # tries of a call whose connection fails or times out
REGION_PATTERN = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
READ_PREFIXES = ("Get", "List", "Head", "Describe", "Filter")  # FilterLogEvents: `deployer logs`
CHANGES_NOTHING = frozenset({"Invoke"})  # the check before traffic calls the function: no change to the account


# How each service says "there is no such thing": IAM, Lambda, API Gateway, S3 (a HEAD has no body: "404").
NOT_FOUND_CODES = frozenset(
    {"NoSuchEntity", "ResourceNotFoundException", "NotFoundException", "NoSuchKey", "NoSuchBucket", "NotFound", "404"}
)


def is_mutating(operation: str) -> bool:
    return not operation.startswith(READ_PREFIXES) and operation not in CHANGES_NOTHING


def is_not_found(error: ClientError) -> bool:
    return error_code(error) in NOT_FOUND_CODES


def read_or_none(call: Callable[[], T]) -> T | None:
    """call()'s answer, or None when AWS says the thing it reads is not there."""
    try:
        return call()
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


def delete_if_present(call: Callable[[], Any], still_there: Callable[[], Any] | None = None) -> bool:
    """Make the delete call; False when the thing was already gone (gone is gone: that is done too).

    A delete that keeps failing with a server error (an emulator answers 500 for what an interrupted run
    already deleted) is checked with `still_there`, a read: when the thing is gone, that is done too."""
    try:
        return read_or_none(lambda: call() or True) is not None
    except ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if status < 500 or still_there is None or read_or_none(still_there) is not None:
            raise
        return False


class Aws:
    """Lazily made clients for one region and endpoint, and a log of every API call they made."""

    def __init__(self, region: str | None, endpoint_url: str | None = None, session: Any = None) -> None:
        self.session = session or boto3.Session()
        resolved = region or self.session.region_name
        if not resolved:
            raise UsageError("no AWS region: set [app] region in deploy.toml, or AWS_REGION")
        if not REGION_PATTERN.fullmatch(resolved):
            raise UsageError(
                f"{resolved!r} is not an AWS region such as us-east-1: fix [app] region in deploy.toml, "
                "AWS_REGION or AWS_DEFAULT_REGION"
            )
        self.region: str = resolved
        if os.environ.get("AWS_ENDPOINT_URL"):  # botocore reads it itself: check it the same way
            check_endpoint_url(os.environ["AWS_ENDPOINT_URL"])
        self.endpoint_url = check_endpoint_url(endpoint_url) if endpoint_url else None
        self.calls: list[str] = []  # operation names, in order; read by `--json` output and the tests
        self._clients: dict[str, Any] = {}
        self._config = BotoConfig(
            retries=RETRY_POLICY,
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            user_agent_extra="deployer",
        )

    @property
    def is_emulator(self) -> bool:
        """Whether the clients talk to something other than AWS (an endpoint override: moto, the local cloud)."""
        host = urlsplit(self.lambda_.meta.endpoint_url).hostname or ""
        return not host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))

    def check_credentials(self) -> None:
        """Fail before any call (and before any change) when there is nothing to sign with."""
        if self.session.get_credentials() is None:
            raise UsageError(
                "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or run `aws configure`"
            )

    def client(self, service: str, read_timeout: int | None = None) -> Any:
        """The service's client; one that waits longer for its answers (Invoke waits for the function) apart."""
        key = f"{service}:{read_timeout}" if read_timeout else service
        if key not in self._clients:
            config = self._config.merge(BotoConfig(read_timeout=read_timeout)) if read_timeout else self._config
            client = self.session.client(
                service, region_name=self.region, endpoint_url=self.endpoint_url, config=config
            )
            client.meta.events.register("before-call", self._count)
            client.meta.events.register_first("needs-retry", _give_up_on_a_dead_connection)
            client.meta.events.register_first("needs-retry", _say_throttling)
            self._clients[key] = client
        return self._clients[key]

    def _count(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def invoker(self, function_timeout: int) -> Any:
        """A Lambda client for Invoke: it waits for the function's whole run, and a little more."""
        return self.client("lambda", read_timeout=max(READ_TIMEOUT, function_timeout + 10))

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def iam(self) -> Any:
        return self.client("iam")

    @property
    def lambda_(self) -> Any:
        return self.client("lambda")

    @property
    def apigateway(self) -> Any:
        return self.client("apigateway")


def check_endpoint_url(url: str) -> str:
    """An endpoint override is an http(s) URL with a host (and a port that exists): else one line, no call."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port out of range or not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"endpoint URL {without_userinfo(url)!r} is not an http:// or https:// URL with a host, such as "
            "http://127.0.0.1:4566: fix --endpoint-url or AWS_ENDPOINT_URL"
        )
    return url


THROTTLED = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "SlowDown", "RequestLimitExceeded"}
)
_throttled_since: dict[int, float] = {}  # a request botocore is retrying for throttling -> when it was first refused


def _say_throttling(response: Any, attempts: int, operation: Any, request_dict: dict[str, Any], **_: Any) -> None:
    """botocore backs off a throttled call by itself (API Gateway allows one CreateDeployment per 5 s, one
    DeleteRestApi per 30 s per account): say so when that wait gets long, as deployer.retry says its own."""
    key = id(request_dict)
    code = (response[1].get("Error", {}).get("Code") if response else None) or ""
    if code not in THROTTLED:
        _throttled_since.pop(key, None)
        return
    started = _throttled_since.setdefault(key, retry.clock())
    waited = retry.clock() - started
    if waited >= retry.SPEAK_AFTER:
        service = operation.service_model.service_id if operation is not None else "AWS"
        retry.on_wait(f"{service} to accept more requests ({operation.name} is throttled)", waited)


def _give_up_on_a_dead_connection(attempts: int, caught_exception: Exception | None = None, **_: Any) -> None:
    """Botocore retries a failed connection as often as a throttled call; a dead endpoint does not get better
    with ten tries of half a minute each. Raising here ends the retries with the connection's own error."""
    if isinstance(caught_exception, (ConnectionError, HTTPClientError)) and attempts >= CONNECTION_ATTEMPTS:
        raise caught_exception
