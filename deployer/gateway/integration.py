"""API Gateway's Lambda proxy integration: how it names the function, who it invokes it as, what a failure gives.

The names are those a deployment writes and an emulation reads back: the integration URI
(`arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function arn}/invocations`), the
service principal a function's resource policy must let in, and the execute-api ARN a request is
made as (the policy's `AWS:SourceArn`). `answer_from_function` is the integration's end of a
request: the function's answer, or 502 when the function failed or answered something API Gateway
cannot map, or 504 when it is still running after the integration's timeout (29 s), the reason going to
the console as it would to CloudWatch.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from deployer.gateway.answers import (
    BAD_GATEWAY,
    ENDPOINT_TIMED_OUT,
    INTERNAL_SERVER_ERROR,
    REQUEST_TOO_LONG,
    Response,
)
from deployer.gateway.proxy import (
    DEFAULT_BINARY_MEDIA_TYPES,
    LAMBDA_PAYLOAD_LIMIT,
    TRACE_HEADER,
    BinaryConversionError,
    MalformedResponseError,
    extended_request_id,
    first_header,
    to_http_response,
    trace_id,
)

APIGATEWAY_PRINCIPAL = "apigateway.amazonaws.com"
# Seconds API Gateway waits for a Lambda integration (REST API's default and maximum) before it answers 504.
# Read at each request, so a test can lower it (monkeypatch this module's attribute) instead of waiting.
INTEGRATION_TIMEOUT = 29.0
INVOKE_ACTION = "lambda:InvokeFunction"

INTEGRATION_URI = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):apigateway:(?P<region>[a-z0-9-]+):lambda:path/2015-03-31/functions/"
    r"(?P<function>.+)/invocations$"
)
FUNCTION_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:"
    r"(?P<name>[A-Za-z0-9_-]+)(?::(?P<qualifier>[A-Za-z0-9$_-]+))?$"
)

# (reason, lines of detail such as a stack trace): where a failed request is told.
OnFailure = Callable[[str, Sequence[str]], None]


def lambda_integration_uri(partition: str, region: str, function_arn: str) -> str:
    """The integration URI that makes API Gateway invoke `function_arn` (INTEGRATION_URI reads it back)."""
    return f"arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"


def execute_api_arn(partition: str, region: str, account: str, api_id: str, request: str) -> str:
    """The ARN API Gateway invokes a function as; `request` is `{stage}/{METHOD}/{path}`, or a pattern (`*/*`)."""
    return f"arn:{partition}:execute-api:{region}:{account}:{api_id}/{request}"


class FunctionError(Exception):
    """The function failed: it raised, its module did not load, it crashed or it timed out."""

    def __init__(self, error_type: str, message: str, stack_trace: Sequence[str] = ()) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.stack_trace = list(stack_trace)

    def payload(self) -> dict[str, Any]:
        """The error as Lambda's Invoke API returns it."""
        return {"errorType": self.error_type, "errorMessage": self.message, "stackTrace": self.stack_trace}


class FunctionThrottled(Exception):
    """Lambda refused the invocation, nothing ran: the function is at its concurrency limit (Lambda's 429
    TooManyRequestsException, `reason` as its Reason field). API Gateway's REST proxy answers it with 500
    `{"message": "Internal server error"}`, never 429 (which is its own throttling's answer)."""

    def __init__(self, reason: str, limit: int) -> None:
        super().__init__(f"Rate Exceeded. ({reason}: {limit} concurrent executions)")
        self.reason = reason
        self.limit = limit


class IntegrationTimeout(Exception):
    """The function was still running when the integration's timeout ran out."""


def call_within(invoke: Callable[[dict[str, Any]], Any], event: dict[str, Any], seconds: float) -> Any:
    """`invoke(event)`, or IntegrationTimeout after `seconds`: the function goes on running (as Lambda's does,
    whatever API Gateway answered), in a thread of its own that nobody waits for."""
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["result"] = invoke(event)
        except BaseException as error:  # handed to the caller, whatever it is
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=run, name="integration", daemon=True).start()
    if not done.wait(seconds):
        raise IntegrationTimeout
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def payload_size(value: Any) -> int:
    """The bytes of `value` as JSON, as Lambda counts an event or an answer against LAMBDA_PAYLOAD_LIMIT."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace"))


def with_request_ids(response: Response, event: Mapping[str, Any] | None = None) -> Response:
    """`response` with the headers every API Gateway answer carries: x-amzn-RequestId, x-amz-apigw-id and
    X-Amzn-Trace-Id, the event's own when there is one (else fresh ones, for answers given before any event)."""
    status, headers, payload = response
    context = (event or {}).get("requestContext") or {}
    trace = first_header(event, TRACE_HEADER) if event else None
    ids = [
        ("x-amzn-RequestId", str(context.get("requestId") or uuid.uuid4())),
        ("x-amz-apigw-id", str(context.get("extendedRequestId") or extended_request_id())),
        (TRACE_HEADER, trace or trace_id(int(time.time() * 1000))),
    ]
    present = {name.lower() for name, _ in headers}
    return status, [*headers, *[(name, value) for name, value in ids if name.lower() not in present]], payload


def answer_from_function(
    invoke: Callable[[dict[str, Any]], Any],
    event: dict[str, Any],
    report: OnFailure,
    binary_media_types: Iterable[str] = DEFAULT_BINARY_MEDIA_TYPES,
    timeout: float | None = None,
) -> Response:
    """What API Gateway answers for `event` once `invoke` has run the function with it.

    The function's proxy response as HTTP (binary or not by the API's `binary_media_types` and the request's
    Accept header); 413 `Request Too Long` when the event is over Lambda's 6 MB (the function never runs);
    502 `Internal server error` when `invoke` raises FunctionError, the response is malformed or over 6 MB;
    500 `Internal server error` when Lambda throttles the invocation (FunctionThrottled) and when a base64 body
    that must be decoded is not base64; 504 `Endpoint request timed out` when it runs
    past `timeout` (INTEGRATION_TIMEOUT). The reason goes to `report`. Every answer carries the request's ids
    (x-amzn-RequestId, x-amz-apigw-id, X-Amzn-Trace-Id), as from API Gateway.
    """
    seconds = INTEGRATION_TIMEOUT if timeout is None else timeout
    size = payload_size(event)
    if size > LAMBDA_PAYLOAD_LIMIT:
        report(f"the event is {size} bytes, over Lambda's payload limit ({LAMBDA_PAYLOAD_LIMIT} bytes)", [])
        return with_request_ids(REQUEST_TOO_LONG.response(), event)
    try:
        result = call_within(invoke, event, seconds)
        size = payload_size(result)
        if size > LAMBDA_PAYLOAD_LIMIT:
            raise MalformedResponseError(
                f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
                f"({LAMBDA_PAYLOAD_LIMIT} bytes)"
            )
        status, headers, payload = to_http_response(result, binary_media_types, first_header(event, "Accept"))
    except IntegrationTimeout:
        report(f"the function was still running after API Gateway's integration timeout ({seconds:g} s)", [])
        status, headers, payload = ENDPOINT_TIMED_OUT.response()
    except FunctionError as error:
        # A stack entry may hold several lines (Python's do): the report gets one line each.
        lines = [line for entry in error.stack_trace for line in str(entry).rstrip("\n").split("\n")]
        report(f"the function failed: {error.error_type}: {error.message}", lines)
        status, headers, payload = BAD_GATEWAY.response()
    except FunctionThrottled as error:
        report(f"Lambda invocation failed with status: 429 TooManyRequestsException: {error}", [])
        status, headers, payload = INTERNAL_SERVER_ERROR.response()
    except BinaryConversionError as error:
        report(f"Execution failed due to configuration error: {error}", [])
        status, headers, payload = INTERNAL_SERVER_ERROR.response()
    except MalformedResponseError as error:
        report(f"malformed Lambda proxy response: {error}", [])
        status, headers, payload = BAD_GATEWAY.response()
    return with_request_ids((status, headers, payload), event)
