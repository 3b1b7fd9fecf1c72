"""One place that makes boto3 clients: the region, the endpoint, and the retry policy, on purpose.

Throttling (API Gateway's TooManyRequestsException, IAM's Throttling, S3's SlowDown) and 5xx answers
are retried by botocore's "standard" mode with exponential backoff and jitter. The default "legacy"
mode gives up after 5 attempts, too few for API Gateway's one CreateDeployment per 5 s, so we ask for
more, unless the user chose their own (AWS_RETRY_MODE / AWS_MAX_ATTEMPTS, or retry_mode / max_attempts in
the profile): theirs win. API Gateway's concurrent modification (409 ConflictException) is classified
here once, for every API Gateway call, and retried by botocore for up to two minutes. The other errors
botocore never retries (IAM propagation, function updates in progress) are handled where they happen,
with deployer.retry.

AWS's error codes are named here, once (the sets and predicates below): the rest of deployer asks
`is_not_found(error)`, `is_access_denied(error)`, ..., never compares a code's text.

An endpoint that does not answer must not hang a run (holding its lock): connections time out after
CONNECT_TIMEOUT, answers after READ_TIMEOUT (Invoke waits for the function's own timeout), and a connection
that fails is tried CONNECTION_ATTEMPTS times only, not the ten a throttled call gets: a dead or silent
endpoint costs at most about two minutes, a refused connection a few seconds.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from deployer import retry
from deployer.errors import UsageError
from deployer.output import without_userinfo
from deployer.read_ahead import Listener, listen

T = TypeVar("T")

RETRY_POLICY = {"mode": "standard", "max_attempts": 10}  # botocore's max_attempts counts retries: 11 tries
CONCURRENT_MODIFICATION_LIMIT = 120.0  # seconds API Gateway gets to finish another change to the API
CONCURRENT_MODIFICATION_DELAYS = (0.5, 1.0)  # the first wait, then a second's grain (as deployer.retry's)
CONNECT_TIMEOUT = 5  # seconds to open a connection
READ_TIMEOUT = 30  # seconds to wait for an answer (AWS's control planes answer in well under that)
CONNECTION_ATTEMPTS = 3  # tries of a call whose connection fails or times out
REGION_PATTERN = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
READ_PREFIXES = ("Get", "List", "Head", "Describe", "Filter")  # FilterLogEvents: `deployer logs`
CHANGES_NOTHING = frozenset({"Invoke"})  # the check before traffic calls the function: no change to the account


# ---- AWS's error codes, named once ---------------------------------------------------------------------------

# How each service says "there is no such thing": IAM, Lambda, API Gateway, S3 (a HEAD has no body: "404").
NOT_FOUND_CODES = frozenset(
    {"NoSuchEntity", "ResourceNotFoundException", "NotFoundException", "NoSuchKey", "NoSuchBucket", "NotFound", "404"}
    | {"ParameterNotFound", "ParameterVersionNotFound"}  # SSM's
)
# "You may not": Lambda's and IAM's codes, S3's (a HEAD has no body: "403"; a disabled account or bucket).
ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "403", "Forbidden", "AllAccessDisabled"}
    | {
        "KMSAccessDeniedException",
        "DecryptionFailure",
    }  # a secret's KMS key refused to this caller (SSM, Secrets Manager)
)
# Credentials AWS does not take: unknown, invalid or expired keys.
CREDENTIALS_REFUSED_CODES = frozenset({"UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken"})
THROTTLED = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "SlowDown", "RequestLimitExceeded"}
)
# S3: a conditional write (If-Match / If-None-Match) lost to someone else's.
S3_CONDITION_FAILED_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
S3_NO_SUCH_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})  # a HEAD's "404" too
S3_NO_SUCH_BUCKET = "NoSuchBucket"
S3_BUCKET_TAKEN = "BucketAlreadyExists"  # by another account
S3_BUCKET_OURS_ALREADY = "BucketAlreadyOwnedByYou"
IAM_DELETE_CONFLICT = "DeleteConflict"  # a role with policies still attached
LAMBDA_CONFLICT = "ResourceConflictException"
LAMBDA_PRECONDITION_FAILED = "PreconditionFailedException"  # PublishVersion's CodeSha256 no longer matches
LAMBDA_INVALID_PARAMETER = "InvalidParameterValueException"
API_GATEWAY_CONFLICT = "ConflictException"


NEEDS = "DeployerNeeds"  # in an AccessDenied error's details: "<action> on <resource>" (set by Aws's clients)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def is_not_found(error: ClientError) -> bool:
    return error_code(error) in NOT_FOUND_CODES


def is_access_denied(error: ClientError) -> bool:
    return error_code(error) in ACCESS_DENIED_CODES


def what_was_denied(error: ClientError) -> str | None:
    """The phrase "<action> on <resource>" for an AccessDenied answer to one of Aws's clients, else None."""
    needs = error.response.get("Error", {}).get(NEEDS)
    return str(needs) if needs else None


def is_s3_condition_failed(error: ClientError) -> bool:
    """A conditional S3 write (If-Match / If-None-Match) refused: someone else wrote it first."""
    return error_code(error) in S3_CONDITION_FAILED_CODES


def is_no_such_bucket(error: ClientError) -> bool:
    return error_code(error) == S3_NO_SUCH_BUCKET


def is_no_such_key(error: ClientError) -> bool:
    return error_code(error) in S3_NO_SUCH_KEY_CODES


def is_s3_absent(error: ClientError) -> bool:
    """S3 answers a GetObject of a missing key with NoSuchKey in an XML body (NoSuchBucket for a missing bucket);
    a bare 404 without either is a web server that is not S3 (a wrong --endpoint-url): never "no such object"."""
    return error_code(error) in (S3_NO_SUCH_KEY_CODES - {"404", "NotFound"}) | {S3_NO_SUCH_BUCKET}


def role_not_assumable(error: ClientError) -> bool:
    """IAM propagation: the role exists but Lambda cannot see it yet."""
    return error_code(error) == LAMBDA_INVALID_PARAMETER and "cannot be assumed" in error_message(error)


def function_busy(error: ClientError) -> bool:
    """Lambda refuses changes while the function is Pending ("currently in the following state: Pending")
    or an update is InProgress ("An update is in progress for resource: ...")."""
    message = error_message(error)
    return error_code(error) == LAMBDA_CONFLICT and (
        "in progress" in message or "currently in the following state" in message
    )


def statement_exists(error: ClientError) -> bool:
    """AddPermission for a statement id the function's policy already holds."""
    return error_code(error) == LAMBDA_CONFLICT and "already exists" in str(error)


def _concurrent_modification(details: dict[str, Any]) -> bool:
    """API Gateway's "Unable to complete operation due to concurrent modification. Please try again later."
    (`details`: the answer's parsed Error)."""
    return details.get("Code") == API_GATEWAY_CONFLICT and "try again" in str(details.get("Message", "")).lower()


def is_mutating(operation: str) -> bool:
    return not operation.startswith(READ_PREFIXES) and operation not in CHANGES_NOTHING


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

    def __init__(
        self, region: str | None, endpoint_url: str | None = None, session: Any = None, waits: retry.Waits | None = None
    ) -> None:
        self.session = session or boto3.Session()
        self.waits = waits or retry.Waits()  # how its calls, and the steps using them, wait and say they wait
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
        self._making = threading.Lock()  # a client is used by several threads at once, a session by one only
        self.reads_ahead = Listener()  # answers a plan's calls with reads sent ahead (deployer.read_ahead)
        self._config = BotoConfig(
            retries=retry_policy(self.session),
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

    def account_id(self) -> str:
        """The account these credentials are in: one STS GetCallerIdentity (which every caller may make)."""
        return str(self.client("sts").get_caller_identity()["Account"])

    def warm(self, *services: str, then: Callable[[], object] = lambda: None) -> threading.Thread:
        """Make these clients, in this order, in a thread of their own while the command waits for its first answers
        (the lock's, the state's): each costs tens of milliseconds of loading its service's model, which the plan
        would otherwise pay before its first read; then run `then` (what else the command will need: its modules).
        A client that cannot be made is left to its first caller, who then meets the error."""

        def make() -> None:
            for service in services:
                with contextlib.suppress(Exception):
                    client = self.client(service)
                    # Its paginators' model too: a session's first paginator scans every service's folder (~10 ms),
                    # and the plan's steps, asking for theirs at once, would each make that scan.
                    client.can_paginate(next(iter(client.meta.method_to_api_mapping)))
            with contextlib.suppress(Exception):
                then()

        thread = threading.Thread(target=make, name="deployer-clients", daemon=True)
        thread.start()
        return thread

    def client(self, service: str, read_timeout: int | None = None, region: str | None = None) -> Any:
        """The service's client; one that waits longer for its answers (Invoke waits for the function) apart, and
        one of another region (an EDGE domain's certificate is in us-east-1) apart, with the same policy and log."""
        region = region or self.region
        key = ":".join(str(part) for part in (service, read_timeout, region) if part)
        made = self._clients.get(key)  # without the lock: the thread warming the next client holds it
        if made is not None:
            return made
        with self._making:
            if key not in self._clients:
                self._clients[key] = self._make(service, read_timeout, region)
            return self._clients[key]

    def _make(self, service: str, read_timeout: int | None, region: str) -> Any:
        """A client with the policy, the request log and the retry handlers (under the lock: a session is not
        thread safe; each client made is, and is shared by the steps running at once)."""
        config = self._config.merge(BotoConfig(read_timeout=read_timeout)) if read_timeout else self._config
        client = self.session.client(service, region_name=region, endpoint_url=self.endpoint_url, config=config)
        listen(client, self.reads_ahead)  # before the count: a call answered by a read ahead is not counted again
        client.meta.events.register("before-call", self._count)
        client.meta.events.register("before-parameter-build", _keep_params)
        client.meta.events.register("after-call", _name_what_was_denied)
        client.meta.events.register_first("needs-retry", _give_up_on_a_dead_connection)
        client.meta.events.register_first("needs-retry", self._say_throttling)
        if service in ("apigateway", "apigatewayv2"):  # an HTTP API's changes conflict alike
            client.meta.events.register_first("needs-retry", self._retry_concurrent_modification)
        return client

    def _count(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def _say_throttling(self, response: Any, operation: Any, request_dict: dict[str, Any], **_: Any) -> None:
        """botocore backs off a throttled call by itself (API Gateway allows one CreateDeployment per 5 s, one
        DeleteRestApi per 30 s per account): say so when that wait gets long, as deployer.retry says its own.
        When it was first refused is kept on the request's context, the same dict for every try of one call."""
        context = request_dict["context"]
        code = (response[1].get("Error", {}).get("Code") if response else None) or ""
        if code not in THROTTLED:
            context.pop("deployer_throttled_since", None)
            return
        now = self.waits.clock()
        waited = now - context.setdefault("deployer_throttled_since", now)
        if waited >= retry.SPEAK_AFTER:
            service = operation.service_model.service_id if operation is not None else "AWS"
            self.waits.on_wait(f"{service} to accept more requests ({operation.name} is throttled)", waited)

    def _retry_concurrent_modification(
        self, response: Any, attempts: int, request_dict: dict[str, Any], **_: Any
    ) -> float | None:
        """API Gateway answers 409 ConflictException ("concurrent modification ... try again later") while another
        change to the API settles; botocore takes it as final. Every API Gateway call is retried here: the delay
        to wait before the next try, for up to CONCURRENT_MODIFICATION_LIMIT seconds from the first refusal, then
        None (the refusal stands). botocore sleeps the delay and counts the try in RetryAttempts."""
        if response is None or not _concurrent_modification(response[1].get("Error", {})):
            return None
        context = request_dict["context"]  # the same dict for every try of one call
        now = self.waits.clock()
        started = context.setdefault("deployer_conflict_since", now)
        first, grain = CONCURRENT_MODIFICATION_DELAYS
        delay = first if attempts == 1 else grain
        if now + delay > started + CONCURRENT_MODIFICATION_LIMIT:
            return None
        waited = now - started + delay
        said = context.get("deployer_conflict_said")
        if waited >= retry.SPEAK_AFTER and (said is None or waited - said >= 5):  # then every 5 s at most
            self.waits.on_wait("API Gateway to finish another change to the API", waited)
            context["deployer_conflict_said"] = waited
        return delay

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

    @property
    def apigatewayv2(self) -> Any:
        """HTTP APIs (and their API mappings to a custom domain)."""
        return self.client("apigatewayv2")

    @property
    def logs(self) -> Any:
        return self.client("logs")

    @property
    def acm(self) -> Any:
        return self.client("acm")  # the API's region: a REGIONAL domain name takes its certificate there

    def acm_in(self, region: str) -> Any:
        """ACM of a region: an EDGE domain name takes its certificate from us-east-1, whatever the API's region."""
        return self.client("acm", region=region)

    @property
    def route53(self) -> Any:
        return self.client("route53")


def retry_policy(session: Any) -> dict[str, Any]:
    """RETRY_POLICY, less what the user set themselves: AWS_RETRY_MODE / AWS_MAX_ATTEMPTS, or retry_mode /
    max_attempts in the profile. A client's own retry config overrides both in botocore, so what they set is
    left out of ours for botocore to read."""
    policy = dict(RETRY_POLICY)
    core = getattr(session, "_session", session)  # boto3's Session wraps botocore's
    if core.get_config_variable("max_attempts") is not None:  # no default: set only by the user
        policy.pop("max_attempts", None)
        policy.pop("total_max_attempts", None)
    # retry_mode has a default ("standard" or "legacy", by botocore's version): look where a user sets it.
    if os.environ.get("AWS_RETRY_MODE") or core.get_scoped_config().get("retry_mode"):
        policy.pop("mode", None)
    return policy


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


def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """Keep the call's parameters on its context: a refusal names the resource it was about (below)."""
    context["deployer_params"] = params


def _name_what_was_denied(parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    """An AccessDenied answer gets what the caller needs, as one phrase: "<action> on <resource>" (the action from
    the operation, the resource from AWS's message when it names one, else from the call's parameters). It goes
    into the error's own Error details (`NEEDS`), where the CLI's one line for the error finds it."""
    from deployer.permissions import needed

    details = parsed.get("Error") if isinstance(parsed, dict) else None
    if not isinstance(details, dict) or str(details.get("Code", "")) not in ACCESS_DENIED_CODES:
        return
    if str(details.get("Code")) == "403" and str(details.get("Message", "")) not in ("", "Forbidden"):
        return  # a bare 403 with words of its own is a proxy's page, not AWS's refusal (an S3 HEAD has no words)
    params = context.get("deployer_params") or {}
    region = str(context.get("client_region") or "")
    action, resource = needed(
        model.service_model.service_name, model.name, str(details.get("Message", "")), params, region
    )
    details[NEEDS] = f"{action} on {resource}"


def _give_up_on_a_dead_connection(attempts: int, caught_exception: Exception | None = None, **_: Any) -> None:
    """Botocore retries a failed connection as often as a throttled call; a dead endpoint does not get better
    with ten tries of half a minute each. Raising here ends the retries with the connection's own error."""
    if isinstance(caught_exception, (ConnectionError, HTTPClientError)) and attempts >= CONNECTION_ATTEMPTS:
        raise caught_exception
