"""One place that makes boto3 clients: the region, the endpoint, and the retry policy, on purpose.

Throttling (API Gateway's TooManyRequestsException, IAM's Throttling, S3's SlowDown) and 5xx answers
are retried by botocore's "standard" mode with exponential backoff and jitter. The default "legacy"
mode gives up after 5 attempts, too few for API Gateway's one CreateDeployment per 5 s, so we ask for
more. The errors botocore never retries (IAM propagation, function updates in progress, API Gateway
concurrent modification) are handled where they happen, with deployer.retry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from deployer.errors import UsageError
from deployer.retry import error_code

T = TypeVar("T")

RETRY_POLICY = {"mode": "standard", "max_attempts": 10}
READ_PREFIXES = ("Get", "List", "Head", "Describe")
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


def delete_if_present(call: Callable[[], Any]) -> bool:
    """Make the delete call; False when the thing was already gone (gone is gone: that is done too)."""
    return read_or_none(lambda: call() or True) is not None


class Aws:
    """Lazily made clients for one region and endpoint, and a log of every API call they made."""

    def __init__(self, region: str | None, endpoint_url: str | None = None, session: Any = None) -> None:
        self.session = session or boto3.Session()
        resolved = region or self.session.region_name
        if not resolved:
            raise UsageError("no AWS region: set [app] region in deploy.toml, or AWS_REGION")
        self.region: str = resolved
        self.endpoint_url = endpoint_url or None
        self.calls: list[str] = []  # operation names, in order; read by `--json` output and the tests
        self._clients: dict[str, Any] = {}
        self._config = BotoConfig(retries=RETRY_POLICY, user_agent_extra="deployer")

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

    def client(self, service: str) -> Any:
        if service not in self._clients:
            client = self.session.client(
                service, region_name=self.region, endpoint_url=self.endpoint_url, config=self._config
            )
            client.meta.events.register("before-call", self._count)
            self._clients[service] = client
        return self._clients[service]

    def _count(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

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
