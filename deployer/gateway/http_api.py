"""HTTP APIs and Lambda function URLs: payload format 2.0, the event in and the answer out, and each door's limits.

The REST proxy (payload 1.0) is proxy.py; this is its sibling for the two other front doors a stage can have
(`[api] type = "http" | "url"`), as AWS documents them ("Working with AWS Lambda proxy integrations for HTTP
APIs", https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html;
"Lambda function URLs: request and response payloads",
https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html):

- the event: `version` "2.0", `routeKey`, `rawPath` and `rawQueryString` as sent, `cookies` out of the Cookie
  header, headers lower-cased with repeats joined by commas, query values joined by commas, `requestContext.http`,
  the body base64-encoded (`isBase64Encoded`) unless its Content-Type is text;
- the answer: an object with `statusCode` is read as a response (`cookies` become Set-Cookie headers, a base64
  body is decoded); anything else that is JSON is a 200 with that JSON as an application/json body, a string
  as is. What cannot be read is a 502 in the door's own words.

Behind an HTTP API stage that is not `$default`, the stage is part of the path the function sees (`rawPath`
`/test/items`, recorded on AWS: routeKey `ANY /{proxy+}` with rawPath `/test/api/...`), as on AWS.

Pure functions and constants, standard library only.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl, urlsplit

from deployer.gateway.answers import CannedAnswer, Response
from deployer.gateway.integration import (
    FunctionError,
    FunctionThrottled,
    IntegrationTimeout,
    OnFailure,
    call_within,
    payload_size,
)
from deployer.gateway.proxy import (
    HEADER_NAME,
    LAMBDA_PAYLOAD_LIMIT,
    LOCAL_ACCOUNT_ID,
    MAX_REQUEST_BODY,
    MONTHS,
    MalformedResponseError,
    header_value,
    kind_of,
    media_type,
    trace_id,
)

FrontDoor = Literal["rest", "http", "url"]
FRONT_DOORS: tuple[FrontDoor, ...] = get_args(FrontDoor)
DEFAULT_ROUTE = "$default"  # the route key of an HTTP API's catch-all route, and of every function URL request
DEFAULT_STAGE = "$default"  # an HTTP API stage served at the API's root (no stage in the path), and a URL's stage
# requestContext.accountId of a function URL request without IAM auth (AWS's example payload, urls-invocation).
ANONYMOUS = "anonymous"

# The HTTP API quotas (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html):
# an integration waits at most 30 s, a payload is at most 10 MB.
HTTP_API_TIMEOUT = 30.0
HTTP_API_MAX_BODY = MAX_REQUEST_BODY
# Function URLs: the request and the response are each at most 6 MB (urls-invocation: "Request and response
# payloads"), and the function runs for its own timeout (a timeout is the function's error: a 502).
FUNCTION_URL_MAX_PAYLOAD = 6 * 1024 * 1024

# Headers that never reach the function (the connection's own), lower case. Unlike the REST proxy, an HTTP API
# passes content-length on (AWS's example events carry it).
DROPPED_REQUEST_HEADERS = frozenset(
    {"connection", "expect", "keep-alive", "proxy-authenticate", "te", "trailer", "transfer-encoding", "upgrade"}
)
DROPPED_RESPONSE_HEADERS = frozenset(
    {"connection", "content-length", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}
)
# A body with one of these media types goes to the function as text; any other body is base64 (as HTTP APIs and
# function URLs do: a form post or an image arrives base64-encoded).
TEXT_MEDIA_PARTS = ("json", "xml", "javascript")


@dataclass(frozen=True)
class Door:
    """What one front door (an HTTP API, or a function URL) allows and answers by itself."""

    kind: FrontDoor
    max_request_body: int  # bytes; a larger request is refused before the function runs
    max_payload: int  # the event and the function's answer, each, in bytes
    timeout: float | None  # seconds the integration waits; None: the function's own timeout decides
    not_found: CannedAnswer  # nothing is routed there
    forbidden: CannedAnswer  # IAM auth refused the request
    too_large: CannedAnswer  # the request is over max_request_body, or the event over max_payload
    server_error: CannedAnswer  # the function cannot be invoked (no such function, its policy shuts us out)
    bad_gateway: CannedAnswer  # the function failed or its answer cannot be read
    timed_out: CannedAnswer  # still running at `timeout`
    request_id_header: str


_HTTP_INTERNAL = b'{"message":"Internal Server Error"}'
HTTP_API = Door(
    kind="http",
    max_request_body=HTTP_API_MAX_BODY,
    max_payload=LAMBDA_PAYLOAD_LIMIT,  # Lambda's own limit on a synchronous invocation holds behind any door
    timeout=HTTP_API_TIMEOUT,
    not_found=CannedAnswer(404, b'{"message":"Not Found"}'),
    forbidden=CannedAnswer(403, b'{"message":"Forbidden"}'),
    too_large=CannedAnswer(413, b'{"message":"Request Entity Too Large"}'),
    server_error=CannedAnswer(500, _HTTP_INTERNAL),
    bad_gateway=CannedAnswer(502, _HTTP_INTERNAL),
    timed_out=CannedAnswer(503, b'{"message":"Service Unavailable"}'),
    request_id_header="apigw-requestid",
)
# A function URL's own answers: a URL nobody has, or an unsigned request to an AWS_IAM one, is 403 with Lambda's
# AccessDeniedException body; a failed function is a plain-text 502 (LocalStack's recorded router,
# localstack/services/lambda_/urlrouter.py: `{"Message":null}` / "Internal Server Error").
FUNCTION_URL = Door(
    kind="url",
    max_request_body=FUNCTION_URL_MAX_PAYLOAD,
    max_payload=FUNCTION_URL_MAX_PAYLOAD,
    timeout=None,
    not_found=CannedAnswer(403, b'{"Message":null}', "AccessDeniedException"),
    forbidden=CannedAnswer(403, b'{"Message":"Forbidden"}', "AccessDeniedException"),
    too_large=CannedAnswer(413, b'{"Message":"Request Entity Too Large"}', "RequestTooLargeException"),
    server_error=CannedAnswer(500, b'{"Message":"Internal Server Error"}', "ServiceException"),
    bad_gateway=CannedAnswer(502, b"Internal Server Error", content_type="text/plain; charset=utf-8"),
    timed_out=CannedAnswer(502, b"Internal Server Error", content_type="text/plain; charset=utf-8"),
    request_id_header="x-amzn-RequestId",
)
DOORS: dict[str, Door] = {"http": HTTP_API, "url": FUNCTION_URL}


def is_text(content_type: str | None) -> bool:
    """Whether a body of this Content-Type reaches the function as text (else base64)."""
    kind = media_type(content_type)
    return kind.startswith("text/") or any(part in kind for part in TEXT_MEDIA_PARTS)


def encode_body(body: bytes, content_type: str | None) -> tuple[str | None, bool]:
    """The event's `body` (None: no body, the key is left out) and `isBase64Encoded`."""
    if not body:
        return None, False
    if is_text(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass  # bytes that are not text whatever the header says: base64, so nothing is lost
    return base64.b64encode(body).decode("ascii"), True


def request_time(epoch_ms: int) -> str:
    """requestContext.time: `12/Mar/2020:19:03:58 +0000`."""
    moment = time.gmtime(epoch_ms / 1000)
    return f"{moment.tm_mday:02d}/{MONTHS[moment.tm_mon - 1]}/{moment.tm_year}:" + time.strftime(
        "%H:%M:%S +0000", moment
    )


def fold_headers(headers: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """Headers lower-cased, repeated ones joined with commas; the Cookie header(s) split on "; " into `cookies`
    (which the headers then lack, as in AWS's example events)."""
    folded: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in DROPPED_REQUEST_HEADERS:
            continue
        if lowered == "cookie":
            cookies.extend(part for part in value.split("; ") if part)
            continue
        folded[lowered] = f"{folded[lowered]},{value}" if lowered in folded else value
    return folded, cookies


def fold_query(query_string: str) -> dict[str, str]:
    """queryStringParameters: decoded, repeated values joined with commas."""
    folded: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        folded[key] = f"{folded[key]},{value}" if key in folded else value
    return folded


def function_url_id(url: str | None) -> str:
    """A function URL's id: the first label of its host (`https://{id}.lambda-url.{region}.on.aws/`, or the local
    cloud's `http://{id}.lambda-url.localhost:{port}/`), lower case; "" for no function URL."""
    host = urlsplit(url or "").hostname or ""  # urlsplit lower-cases it
    return host.split(".", 1)[0] if ".lambda-url." in host else ""


def build_event(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    api_id: str,
    stage: str = DEFAULT_STAGE,
    route_key: str = DEFAULT_ROUTE,
    account_id: str = LOCAL_ACCOUNT_ID,
    source_ip: str = "127.0.0.1",
    protocol: str = "HTTP/1.1",
    request_id: str | None = None,
    now_ms: int | None = None,
    path_parameters: Mapping[str, str] | None = None,
    stage_variables: Mapping[str, str] | None = None,
    authorizer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The payload format 2.0 event for one request; `raw_path` is the path as sent (stage included, behind a
    named HTTP API stage), without the query string. Keys AWS leaves out when empty are left out."""
    folded, cookies = fold_headers(headers)
    epoch_ms = int(time.time() * 1000) if now_ms is None else now_ms
    folded.setdefault("x-amzn-trace-id", trace_id(epoch_ms))  # as API Gateway and Lambda add to each request
    domain_name = folded.get("host") or "localhost"
    context: dict[str, Any] = {
        "accountId": account_id,
        "apiId": api_id,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0].split(":", 1)[0],
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": protocol,
            "sourceIp": source_ip,
            "userAgent": folded.get("user-agent", ""),
        },
        "requestId": request_id or str(uuid.uuid4()),
        "routeKey": route_key,
        "stage": stage,
        "time": request_time(epoch_ms),
        "timeEpoch": epoch_ms,
    }
    if authorizer:
        context["authorizer"] = dict(authorizer)
    event: dict[str, Any] = {"version": "2.0", "routeKey": route_key, "rawPath": raw_path}
    event["rawQueryString"] = query_string
    if cookies:
        event["cookies"] = cookies
    event["headers"] = folded
    query = fold_query(query_string)
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = context
    text, is_base64 = encode_body(body, folded.get("content-type"))
    if text is not None:
        event["body"] = text
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    event["isBase64Encoded"] = is_base64
    if stage_variables:
        event["stageVariables"] = dict(stage_variables)
    return event


def _status(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 100 <= value <= 599:
        raise MalformedResponseError(f"statusCode must be an HTTP status (100-599), not {value!r}")
    return value


def to_http_response(result: Any) -> Response:
    """Status, headers and body of a payload 2.0 answer, inferred as AWS infers it; MalformedResponseError when
    it cannot be read (the door's 502)."""
    if not (isinstance(result, Mapping) and "statusCode" in result):
        # Not a response object: the JSON value itself is the body of a 200 (a string as it is).
        text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
        return 200, [("Content-Type", "application/json")], text.encode("utf-8", "replace")
    status = _status(result["statusCode"])
    raw_headers = result.get("headers") or {}
    if not isinstance(raw_headers, Mapping):
        raise MalformedResponseError(f"headers must be an object, not {kind_of(raw_headers)}")
    headers: list[tuple[str, str]] = []
    for name, value in raw_headers.items():
        if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
            raise MalformedResponseError(f"invalid header name {name!r}")
        if name.lower() not in DROPPED_RESPONSE_HEADERS:
            headers.append((name, header_value(name, value)))
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list):
        raise MalformedResponseError(f"cookies must be a list, not {kind_of(cookies)}")
    headers.extend(("Set-Cookie", header_value("Set-Cookie", cookie)) for cookie in cookies)
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    body = result.get("body")
    encoded = result.get("isBase64Encoded", False)
    if encoded is not None and not isinstance(encoded, bool):
        raise MalformedResponseError(f"isBase64Encoded must be true or false, not {encoded!r}")
    if body is None:
        return status, headers, b""
    if not isinstance(body, str):
        raise MalformedResponseError(f"body must be a string (serialise objects to JSON first), not {kind_of(body)}")
    if not encoded:
        return status, headers, body.encode("utf-8", "replace")
    try:
        return status, headers, base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise MalformedResponseError(f"isBase64Encoded is true but body is not valid base64: {error}") from None


def with_request_id(response: Response, door: Door, event: Mapping[str, Any] | None = None) -> Response:
    """`response` with the door's request id header: the event's requestId, else a fresh one."""
    status, headers, payload = response
    context = (event or {}).get("requestContext") or {}
    if any(name.lower() == door.request_id_header.lower() for name, _ in headers):
        return response
    return status, [*headers, (door.request_id_header, str(context.get("requestId") or uuid.uuid4()))], payload


def answer_from_function(
    invoke: Callable[[dict[str, Any]], Any],
    event: dict[str, Any],
    report: OnFailure,
    door: Door,
    function_timeout: float,
) -> Response:
    """What the door answers for `event` once `invoke` has run the function with it: the function's answer,
    or the door's 413 (event over its payload limit: the function never runs), 502 (the function failed, its
    answer is malformed or too large), 500 (Lambda throttled it), or timeout answer (HTTP API: 503 at 30 s; a
    function URL waits as long as the function may run). The reason goes to `report`."""
    size = payload_size(event)
    if size > door.max_payload:
        report(f"the event is {size} bytes, over the payload limit ({door.max_payload} bytes)", [])
        return with_request_id(door.too_large.response(), door, event)
    # A function URL waits for the function's own timeout, which the runner enforces (a Task timed out error);
    # the margin only keeps this wait from racing it.
    seconds = door.timeout if door.timeout is not None else function_timeout + 5.0
    try:
        result = call_within(invoke, event, seconds)
        size = payload_size(result)
        if size > door.max_payload:
            raise MalformedResponseError(
                f"Response payload size ({size} bytes) exceeded maximum allowed payload size ({door.max_payload} bytes)"
            )
        response = to_http_response(result)
    except IntegrationTimeout:
        report(f"the function was still running after the integration's timeout ({seconds:g} s)", [])
        response = door.timed_out.response()
    except FunctionError as error:
        lines = [line for entry in error.stack_trace for line in str(entry).rstrip("\n").split("\n")]
        report(f"the function failed: {error.error_type}: {error.message}", lines)
        response = door.bad_gateway.response()
    except FunctionThrottled as error:
        report(f"Lambda invocation failed with status: 429 TooManyRequestsException: {error}", [])
        response = door.server_error.response()
    except MalformedResponseError as error:
        report(f"malformed Lambda response (payload format 2.0): {error}", [])
        response = door.bad_gateway.response()
    return with_request_id(response, door, event)


# --- CORS, as HTTP APIs and function URLs apply their CORS configuration -------------------------------------------
# (HTTP API: https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-cors.html; function URLs:
# https://docs.aws.amazon.com/lambda/latest/dg/urls-configuration.html#urls-cors). The door answers a preflight
# itself, and its CORS headers replace any of the same name the function sent.

CORS_RESPONSE_HEADERS = frozenset(
    {
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-expose-headers",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-max-age",
    }
)


def cors_settings(configuration: Mapping[str, Any] | None) -> dict[str, Any]:
    """A CORS configuration with its keys as `AllowOrigins` ... whichever spelling it came in (Lambda's
    `AllowOrigins`, API Gateway v2's REST body `allowOrigins`)."""
    return {str(key)[:1].upper() + str(key)[1:]: value for key, value in (configuration or {}).items()}


def _listed(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list | tuple) else []


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name), None)


def _allowed_origin(settings: Mapping[str, Any], origin: str) -> str | None:
    origins = [item.lower() for item in _listed(settings.get("AllowOrigins"))]
    if "*" in origins:
        return origin if settings.get("AllowCredentials") else "*"
    return origin if origin.lower() in origins else None


def cors_preflight(
    configuration: Mapping[str, Any] | None, method: str, headers: Sequence[tuple[str, str]]
) -> Response | None:
    """The door's own answer to a CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) when it
    has a CORS configuration; None when the request is not one (it goes to the function)."""
    origin = _header(headers, "origin")
    if not configuration or method.upper() != "OPTIONS" or origin is None:
        return None
    if _header(headers, "access-control-request-method") is None:
        return None
    settings = cors_settings(configuration)
    allowed = _allowed_origin(settings, origin)
    answered: list[tuple[str, str]] = []
    if allowed is not None:
        answered.append(("Access-Control-Allow-Origin", allowed))
        methods = _listed(settings.get("AllowMethods"))
        if methods:
            answered.append(("Access-Control-Allow-Methods", ",".join(methods)))
        allow_headers = _listed(settings.get("AllowHeaders"))
        if allow_headers:
            requested = _header(headers, "access-control-request-headers")
            shown = requested if allow_headers == ["*"] and requested else ",".join(allow_headers)
            answered.append(("Access-Control-Allow-Headers", shown))
        if settings.get("MaxAge") is not None:
            answered.append(("Access-Control-Max-Age", str(settings["MaxAge"])))
        if settings.get("AllowCredentials"):
            answered.append(("Access-Control-Allow-Credentials", "true"))
    return 204, answered, b""


def with_cors(
    response: Response, configuration: Mapping[str, Any] | None, headers: Sequence[tuple[str, str]]
) -> Response:
    """The function's answer with the door's CORS headers for the request's Origin (those the function set of the
    same names dropped); unchanged without a configuration or an Origin."""
    origin = _header(headers, "origin")
    if not configuration or origin is None:
        return response
    settings = cors_settings(configuration)
    status, answered, payload = response
    kept = [(name, value) for name, value in answered if name.lower() not in CORS_RESPONSE_HEADERS]
    allowed = _allowed_origin(settings, origin)
    if allowed is None:
        return status, kept, payload
    kept.append(("Access-Control-Allow-Origin", allowed))
    exposed = _listed(settings.get("ExposeHeaders"))
    if exposed:
        kept.append(("Access-Control-Expose-Headers", ",".join(exposed)))
    if settings.get("AllowCredentials"):
        kept.append(("Access-Control-Allow-Credentials", "true"))
    return status, kept, payload
