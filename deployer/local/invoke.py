"""Lambda's Invoke API for the local cloud: the version asked for really runs (local/functions.py's workers).

moto runs functions only in Docker, which the local cloud does without, so `up --local` could not check a
release before traffic. The emulator answers `POST /2015-03-31/functions/{function}/invocations` with
`answer_invoke` before moto sees it; the tests do the same for in-process moto through a botocore hook
(tests/lambda_invoke.py), so both run this code. What Lambda answers, and so this:

- the function is a name, `name:qualifier`, a partial ARN (`123456789012:function:name`) or a full ARN,
  qualified or not; the `Qualifier` parameter (a version, an alias or $LATEST) qualifies it too;
- 200 and the handler's result as JSON, `X-Amz-Executed-Version` naming the version that ran (for an
  alias, the one its routing weights picked for this call);
- the function failed: 200 still, `X-Amz-Function-Error: Unhandled`, body `{"errorType", "errorMessage",
  "stackTrace"}`;
- `X-Amz-Log-Type: Tail`: `X-Amz-Log-Result`, base64 of the last 4 KB of the invocation's log: START,
  what the function printed (stdout and stderr, read from its worker's own pipe), the error if any, END
  and REPORT; the same log goes to CloudWatch Logs (`/aws/lambda/<name>`), as for a data-plane request;
- `X-Amz-Invocation-Type: DryRun` 204; `Event` 202 at once, the function run in the background;
- no such function, version or alias: 404 ResourceNotFoundException `Function not found: arn:...`;
- the version at its concurrency limit (every environment busy): 429 TooManyRequestsException, `Rate Exceeded.`,
  Reason `ReservedFunctionConcurrentInvocationLimitExceeded` when the function has reserved concurrency, else
  `ConcurrentInvocationLimitExceeded`; nothing runs, nothing is logged. An `Event` invocation throttled in the
  background is dropped with a line in the emulator's log (Lambda would queue and retry it).
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from deployer.gateway.answers import Response
from deployer.gateway.integration import FunctionThrottled
from deployer.local.functions import Functions, Target, resolve_target
from deployer.serve.runner import Outcome

INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<function>[^/]+)/invocations/?$")
FUNCTION_REFERENCE = re.compile(
    r"^(?:arn:(?P<partition>aws[a-z-]*):lambda:(?P<region>[a-z0-9-]+):)?(?:(?P<account>\d{12}):function:)?"
    r"(?P<name>[A-Za-z0-9_-]{1,140})(?::(?P<qualifier>\$LATEST|[A-Za-z0-9_-]{1,128}))?$"
)
CREDENTIAL_SCOPE = re.compile(r"Credential=(?P<key>[^/,\s]+)/\d{8}/(?P<region>[a-z0-9-]+)/")
HOST_REGION = re.compile(r"^lambda\.(?P<region>[a-z0-9-]+)\.amazonaws\.com")
MAX_PAYLOAD = 6 * 1024 * 1024  # Lambda's limit for a synchronous invocation's request
TAIL_BYTES = 4096  # LogType Tail returns the last 4 KB of the invocation's log
DEFAULT_REGION = "us-east-1"

Console = Callable[[str], None]


@dataclass(frozen=True)
class InvokeRequest:
    """One Invoke call, as Lambda reads it."""

    account: str
    region: str
    name: str
    qualifier: str | None
    invocation_type: str  # RequestResponse, Event or DryRun
    tail: bool  # X-Amz-Log-Type: Tail
    payload: bytes


class InvokeError(Exception):
    """Lambda refuses the call itself (nothing runs): an error in its rest-json shape."""

    def __init__(self, status: int, error_type: str, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message, self.reason = status, error_type, message, reason

    def response(self, request_id: str) -> Response:
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-ErrorType", self.error_type),
            ("x-amzn-RequestId", request_id),
        ]
        body: dict[str, str] = {"Type": "User", "Message": self.message}
        if self.reason is not None:  # TooManyRequestsException's Reason
            body["Reason"] = self.reason
        return self.status, headers, json.dumps(body).encode()


def caller(headers: Mapping[str, str]) -> tuple[str, str]:
    """(account, region) of the signed request, as moto's server tells them: the region from the signature's
    credential scope (or the host name), the account from MOTO_ACCOUNT_ID, x-moto-account-id or the access key."""
    authorization = headers.get("authorization", "")
    scope = CREDENTIAL_SCOPE.search(authorization)
    host = HOST_REGION.match(headers.get("host", ""))
    region = scope["region"] if scope else host["region"] if host else DEFAULT_REGION
    account = os.environ.get("MOTO_ACCOUNT_ID") or headers.get("x-moto-account-id")
    if not account:
        from moto.iam.models import get_account_id_from

        account = get_account_id_from(scope["key"] if scope else "")
    return account, region


def parse_invoke(path: str, query: str, headers: Mapping[str, str], body: bytes | None) -> InvokeRequest | None:
    """The Invoke call that `POST path?query` is (headers lower-cased, body None when it was too large to read);
    None when the path is not Invoke's."""
    found = INVOKE_PATH.match(path)
    if found is None:
        return None
    account, region = caller(headers)
    reference = FUNCTION_REFERENCE.match(unquote(found["function"]))
    asked = parse_qs(query).get("Qualifier", [None])[0]
    if reference is None:
        raise InvokeError(
            400, "ValidationException", f"Value '{unquote(found['function'])}' at 'functionName' is not a function name"
        )
    if asked and reference["qualifier"] and asked != reference["qualifier"]:
        raise InvokeError(
            400,
            "InvalidParameterValueException",
            "The derived qualifier from the function name does not match the specified qualifier.",
        )
    if body is None or len(body) > MAX_PAYLOAD:
        raise InvokeError(
            413,
            "RequestTooLargeException",
            f"Request must be smaller than {MAX_PAYLOAD} bytes for the InvokeFunction operation",
        )
    return InvokeRequest(
        account=reference["account"] or account,
        region=reference["region"] or region,
        name=reference["name"],
        qualifier=reference["qualifier"] or asked,
        invocation_type=headers.get("x-amz-invocation-type") or "RequestResponse",
        tail=headers.get("x-amz-log-type", "").lower() == "tail",
        payload=body,
    )


def answer_invoke(
    functions: Functions, path: str, query: str, headers: Mapping[str, str], body: bytes | None, console: Console
) -> Response | None:
    """Lambda's answer to `POST path?query` (headers lower-cased, body None when too large to read), or None
    when it is not an Invoke call."""
    request_id = str(uuid.uuid4())
    try:
        request = parse_invoke(path, query, headers, body)
        if request is None:
            return None
        return _invoke(functions, request, request_id, console)
    except InvokeError as error:
        console(f"Invoke {path}: {error.status} {error.error_type}: {error.message}")
        return error.response(request_id)


def _invoke(functions: Functions, request: InvokeRequest, request_id: str, console: Console) -> Response:
    target = resolve_target(request.account, request.region, request.name, request.qualifier)
    if target is None:
        qualified = f"{request.name}:{request.qualifier}" if request.qualifier else request.name
        arn = f"arn:aws:lambda:{request.region}:{request.account}:function:{qualified}"
        raise InvokeError(404, "ResourceNotFoundException", f"Function not found: {arn}")
    if request.invocation_type not in ("RequestResponse", "Event", "DryRun"):
        raise InvokeError(
            400,
            "InvalidParameterValueException",
            f"Invalid invocation type {request.invocation_type}: use RequestResponse, Event or DryRun",
        )
    headers = [("x-amzn-RequestId", request_id)]
    if request.invocation_type == "DryRun":
        return 204, headers, b""
    try:
        event = json.loads(request.payload) if request.payload.strip() else {}
    except ValueError as error:
        raise InvokeError(
            400, "InvalidRequestContentException", f"Could not parse request body into json: {error}"
        ) from None
    if request.invocation_type == "Event":  # accepted now, run later: the caller never sees the outcome
        thread = threading.Thread(
            target=_run_later, args=(functions, target, event, request_id, console), name="invoke"
        )
        thread.daemon = True
        thread.start()
        return 202, headers, b""
    try:
        outcome, log = _run(functions, target, event, request_id, console)
    except FunctionThrottled as throttled:
        raise InvokeError(429, "TooManyRequestsException", "Rate Exceeded.", throttled.reason) from None
    headers += [("Content-Type", "application/json"), ("X-Amz-Executed-Version", target.version)]
    if request.tail:
        headers.append(("X-Amz-Log-Result", base64.b64encode(log[-TAIL_BYTES:]).decode("ascii")))
    if outcome.error is not None:
        headers.append(("X-Amz-Function-Error", "Unhandled"))
        return 200, headers, json.dumps(outcome.error.payload()).encode()
    return 200, headers, json.dumps(outcome.result).encode()


def _run_later(functions: Functions, target: Target, event: Any, request_id: str, console: Console) -> None:
    """An `Event` invocation, in the background."""
    try:
        _run(functions, target, event, request_id, console)
    except FunctionThrottled as throttled:
        console(f"Invoke {target.invoked_arn} (Event): throttled, dropped: {throttled}")


def _run(functions: Functions, target: Target, event: Any, request_id: str, console: Console) -> tuple[Outcome, bytes]:
    """Run the version once; its outcome and its log (which Functions.run wrote to CloudWatch Logs too).
    FunctionThrottled when the version is at its concurrency limit."""
    outcome = functions.run(target.function, event, target.invoked_arn, request_id)
    failed = f": {outcome.error.error_type}" if outcome.error is not None else ""
    console(f"Invoke {target.invoked_arn}: version {target.version} ran{failed}")
    return outcome, "".join(message for _, message in outcome.log).encode()
