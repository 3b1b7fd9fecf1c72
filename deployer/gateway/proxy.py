"""HTTP <-> API Gateway REST proxy integration (payload 1.0): the request in, the event, the answer out.

Pure functions, no I/O: `forwarded_headers` adds what API Gateway's front door adds to a request;
`build_event` turns the request into the event a Lambda function receives behind an `ANY` method on
`/` and `/{proxy+}`; `to_http_response` turns the function's answer back into a status, headers and
body, or raises MalformedResponseError where API Gateway answers 502 (answers.BAD_GATEWAY).

Binary payloads follow the API's `binaryMediaTypes` (deploy.toml's `[api] binary_media_types`, `*/*` by
default), as API Gateway applies them (recorded against AWS in LocalStack's AWS-validated
`test_aws_proxy_binary_response`, tests/aws/services/apigateway/test_apigateway_lambda.py):

- a request body goes to the function base64-encoded (`isBase64Encoded: true`) exactly when the request's
  Content-Type matches one of them (so with `*/*`, every body), else as text;
- a response with `isBase64Encoded: true` is decoded to bytes only when the *first* media type of the
  request's Accept header matches one of them; the response's own Content-Type is never consulted. A type
  matches itself, `type/*` any subtype of its type, `*/*` anything; a wildcard on the left (`*/test`) matches
  nothing, and neither does a wildcard in Accept (`image/*` is not `image/png`). Otherwise the base64 text
  itself goes to the client. A body that is not base64 when it must be decoded is a 500.

Limits: the request body at most 10 MB (MAX_REQUEST_BODY), the request line and header values at most 10,240
bytes (MAX_REQUEST_HEADERS), the event and the function's answer each at most Lambda's 6 MB
(LAMBDA_PAYLOAD_LIMIT). Some request headers never reach the function (DROPPED_REQUEST_HEADERS) and some of
the function's response headers come back renamed `x-amzn-Remapped-*` (REMAPPED_RESPONSE_HEADERS), as the
API Gateway developer guide's table of HTTP headers for REST APIs lists them.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_API_ID = "local00000"
LOCAL_DEPLOYMENT_ID = "local0"
# deploy.toml's default `[api] binary_media_types`, which `up` gives the API: every payload is binary.
DEFAULT_BINARY_MEDIA_TYPES: tuple[str, ...] = ("*/*",)
# What API Gateway takes a request without a Content-Type to carry, when it matches binaryMediaTypes.
DEFAULT_CONTENT_TYPE = "application/json"
TRACE_HEADER = "X-Amzn-Trace-Id"
ROOT_RESOURCE = "/"
PROXY_RESOURCE = "/{proxy+}"

MAX_REQUEST_BODY = 10 * 1024 * 1024  # API Gateway's payload limit: a larger request is answered 413
MAX_REQUEST_HEADERS = 10240  # API Gateway's quota on the request line and header values together, in bytes
# Lambda's limit on a synchronous invocation's event and on its answer ("must be smaller than 6291556 bytes").
LAMBDA_PAYLOAD_LIMIT = 6291556
FORWARDED_HEADERS = frozenset({"x-forwarded-for", "x-forwarded-port", "x-forwarded-proto"})  # lower case

# A REST proxy response may hold these keys and no others ("cookies" is HTTP API only).
RESPONSE_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
# Request headers API Gateway does not pass to a Lambda proxy integration (lower case).
DROPPED_REQUEST_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "content-md5",
        "expect",
        "max-forwards",
        "proxy-authenticate",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "www-authenticate",
    }
)
# A function's response headers API Gateway renames `x-amzn-Remapped-<name>` (its own go out under the name),
# and those it drops; keep-alive is framing, the server's own business.
REMAPPED_RESPONSE_HEADERS = {
    name.lower(): name
    for name in ("Authorization", "Connection", "Content-Length", "Date", "Max-Forwards", "Server", "WWW-Authenticate")
}
DROPPED_RESPONSE_HEADERS = frozenset(
    {"expect", "host", "keep-alive", "proxy-authenticate", "te", "trailer", "transfer-encoding", "upgrade"}
)

HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
GREEDY_PARAMETER = re.compile(r"\{([A-Za-z0-9_]+)\+\}$")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class MalformedResponseError(ValueError):
    """The function answered something that is not a proxy response: API Gateway says 502."""


class BinaryConversionError(MalformedResponseError):
    """A body flagged base64 that is not, when API Gateway must decode it (the answer is binary): a 500, where
    API Gateway answers it (other readers of a proxy response may take it as any malformed one)."""


def request_headers_size(method: str, target: str, protocol: str, headers: Iterable[tuple[str, str]]) -> int:
    """What counts toward MAX_REQUEST_HEADERS: the request line (`target` as API Gateway sees it, stage
    included) and the header values, in bytes."""
    request_line = f"{method} {target} {protocol}".encode("utf-8", "replace")
    return len(request_line) + sum(len(value.encode("utf-8", "replace")) for _, value in headers)


def event_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The request's headers as the function gets them: without those API Gateway drops, and `Authorization`
    spelled so whatever the client's case (recorded: LocalStack's AWS-validated snapshot
    test_lambda_aws_proxy_integration sends `authorization` and `aUThorization`, the event says `Authorization`)."""
    kept = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in DROPPED_REQUEST_HEADERS:
            continue
        kept.append(("Authorization" if lowered == "authorization" else name, value))
    return kept


def _fold(pairs: Iterable[tuple[str, str]], ignore_case: bool) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Single-value (the last one wins, as in API Gateway) and multi-value forms of repeated keys."""
    spelling: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        name = spelling.setdefault(key.lower() if ignore_case else key, key)
        multi.setdefault(name, []).append(value)
    return {name: values[-1] for name, values in multi.items()}, multi


def media_type(value: str | None) -> str:
    """The first media type of a Content-Type or Accept value, lower case, without parameters."""
    return (value or "").split(",", 1)[0].split(";", 1)[0].strip().lower()


def is_binary(value: str | None, binary_media_types: Iterable[str]) -> bool:
    """Whether a Content-Type or Accept value (its first media type only) matches one of the API's binary media
    types, as API Gateway matches them: `*/*` matches anything (even no value), `type/*` any subtype of `type`,
    anything else itself only. A wildcard on the left of a type (`*/test`) matches nothing, and a wildcard in
    the value is taken literally (Accept `image/*` does not match `image/png`)."""
    kind, slash, subtype = media_type(value).partition("/")
    for pattern in binary_media_types:
        wanted_kind, _, wanted_subtype = pattern.split(";", 1)[0].strip().lower().partition("/")
        if (wanted_kind, wanted_subtype) == ("*", "*"):
            return True
        if not slash or wanted_kind == "*" or wanted_kind != kind:
            continue
        if wanted_subtype in ("*", subtype):
            return True
    return False


def encode_body(body: bytes, content_type: str | None, binary_media_types: Iterable[str]) -> tuple[str | None, bool]:
    """The event's `body` and `isBase64Encoded`: null when empty, base64 when the Content-Type is binary.

    A text body that is not UTF-8 is passed as text all the same (its bad bytes replaced), as API
    Gateway does: only binaryMediaTypes decides, never the bytes."""
    if not body:
        return None, False
    if is_binary(content_type or DEFAULT_CONTENT_TYPE, binary_media_types):
        return base64.b64encode(body).decode("ascii"), True
    return body.decode("utf-8", "replace"), False


def path_parameters(resource: str, path: str) -> dict[str, str] | None:
    """`{"proxy": "a/b"}` for `/{proxy+}`; null for a plain resource.

    As API Gateway passes it: percent-encoding kept (`%2B` stays `%2B`, as in `path`), and without the
    trailing slash (`/a/b/` gives `a/b`), while `path` keeps it."""
    greedy = GREEDY_PARAMETER.search(resource)
    if greedy is None:
        return None
    prefix = resource[: greedy.start()]
    value = path[len(prefix) :].rstrip("/")
    if not path.startswith(prefix) or not value:
        raise ValueError(f"path {path!r} does not match resource {resource!r}")
    return {greedy.group(1): value}


def trace_id(epoch_ms: int) -> str:
    """An X-Ray trace id, as API Gateway gives each request: `Root=1-<time, 8 hex>-<24 hex>`."""
    return f"Root=1-{epoch_ms // 1000:08x}-{os.urandom(12).hex()}"


def extended_request_id() -> str:
    """API Gateway's own id for a request (requestContext.extendedRequestId, the x-amz-apigw-id header):
    16 base64 characters, unlike the request's UUID."""
    return base64.b64encode(os.urandom(11)).decode("ascii")


def forwarded_headers(headers: Iterable[tuple[str, str]], client: str, port: int) -> list[tuple[str, str]]:
    """The request's headers plus what API Gateway adds: the client's address, the port and the scheme.

    The client's X-Forwarded-For (its first one) is extended with the client's address; its other
    X-Forwarded-* headers are replaced.
    """
    kept: list[tuple[str, str]] = []
    previous: str | None = None
    for name, value in headers:
        lowered = name.lower()
        if lowered not in FORWARDED_HEADERS:
            kept.append((name, value))
        elif lowered == "x-forwarded-for" and previous is None:
            previous = value
    return [
        *kept,
        ("X-Forwarded-For", f"{previous}, {client}" if previous else client),
        ("X-Forwarded-Port", str(port)),
        ("X-Forwarded-Proto", "http"),
    ]


def _request_time(epoch_ms: int) -> str:
    moment = time.gmtime(epoch_ms / 1000)
    return f"{moment.tm_mday:02d}/{MONTHS[moment.tm_mon - 1]}/{moment.tm_year}:" + time.strftime(
        "%H:%M:%S +0000", moment
    )


def build_event(
    method: str,
    path: str,
    query_string: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    stage: str,
    resource_path: str | None = None,
    source_ip: str = "127.0.0.1",
    *,
    request_id: str | None = None,
    now_ms: int | None = None,
    protocol: str = "HTTP/1.1",
    account_id: str = LOCAL_ACCOUNT_ID,
    api_id: str = LOCAL_API_ID,
    deployment_id: str = LOCAL_DEPLOYMENT_ID,
    binary_media_types: Iterable[str] = DEFAULT_BINARY_MEDIA_TYPES,
) -> dict[str, Any]:
    """The REST proxy event for one request.

    `path` is the request path as sent (percent-encoding kept, as API Gateway does), without the query
    string; `headers` are (name, value) pairs in arrival order, spelled as the client spelled them, repeats
    allowed. `resource_path` defaults to `/` for the root and `/{proxy+}` for everything else. A path sent with
    a leading `//` is `/...` in `path` and `pathParameters`, and kept as sent in `requestContext.path`.
    """
    sent_path, path = path, "/" + path.lstrip("/")
    headers = event_headers(headers)
    resource = resource_path or (ROOT_RESOURCE if path == "/" else PROXY_RESOURCE)
    epoch_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if not any(name.lower() == TRACE_HEADER.lower() for name, _ in headers):
        headers = [*headers, (TRACE_HEADER, trace_id(epoch_ms))]
    single_headers, multi_headers = _fold(headers, ignore_case=True)
    single_query, multi_query = _fold(parse_qsl(query_string, keep_blank_values=True), ignore_case=False)
    lowered = {name.lower(): value for name, value in single_headers.items()}
    text, is_base64 = encode_body(body, lowered.get("content-type"), binary_media_types)
    request_id = request_id or str(uuid.uuid4())
    domain_name = lowered.get("host") or "localhost"
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters(resource, path),
        "stageVariables": None,
        "requestContext": {
            "accountId": account_id,
            "apiId": api_id,
            "deploymentId": deployment_id,
            "resourceId": "local0",
            "resourcePath": resource,
            "stage": stage,
            "httpMethod": method,
            "path": f"/{stage}{sent_path}",
            "protocol": protocol,
            "requestId": request_id,
            "extendedRequestId": extended_request_id(),
            "requestTime": _request_time(epoch_ms),
            "requestTimeEpoch": epoch_ms,
            "domainName": domain_name,
            "domainPrefix": domain_name.split(".", 1)[0].split(":", 1)[0],
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": source_ip,
                "user": None,
                "userAgent": lowered.get("user-agent"),
                "userArn": None,
            },
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


def first_header(event: Mapping[str, Any], name: str) -> str | None:
    """The first value the client sent for header `name` (any case), from an event's multiValueHeaders."""
    for key, values in (event.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower() and values:
            return str(values[0])
    return None


def kind_of(value: Any) -> str:
    """How an answer's value is named in the 502's reason (payload 1.0 and 2.0 alike)."""
    return "null" if value is None else type(value).__name__


def header_value(name: str, value: Any) -> str:
    """An answer's header value as text; MalformedResponseError for one API Gateway would not send (any payload)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | int | float):
        text = str(value)
    else:
        raise MalformedResponseError(f"header {name!r} must have a string value, not {kind_of(value)}")
    if any(character in text for character in "\r\n\0"):
        raise MalformedResponseError(f"header {name!r} has a line break or NUL in its value")
    return text


def _header_name(name: Any) -> str:
    if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
        raise MalformedResponseError(f"invalid header name {name!r}")
    return name


def _headers(value: Any) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise MalformedResponseError(f"headers must be an object, not {kind_of(value)}")
    return [(_header_name(name), header_value(name, item)) for name, item in value.items()]


def _multi_value_headers(value: Any) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise MalformedResponseError(f"multiValueHeaders must be an object, not {kind_of(value)}")
    pairs: list[tuple[str, str]] = []
    for name, items in value.items():
        if not isinstance(items, list):
            raise MalformedResponseError(f"multiValueHeaders {name!r} must be a list, not {kind_of(items)}")
        pairs.extend((_header_name(name), header_value(name, item)) for item in items)
    return pairs


def _status(result: Mapping[str, Any]) -> int:
    """API Gateway's reading of statusCode: none is 200, and a string of digits is that number."""
    status = result.get("statusCode")
    if status is None:
        return 200
    if isinstance(status, str) and status.strip().isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool):
        raise MalformedResponseError(f"statusCode must be an integer, not {status!r}")
    if not 100 <= status <= 599:
        raise MalformedResponseError(f"statusCode {status} is not an HTTP status (100-599)")
    return status


def _body(result: Mapping[str, Any], decode: bool) -> bytes:
    """The body's bytes; base64 ones decoded when `decode` (the answer is binary), else sent as the text."""
    body = result.get("body")
    encoded = result.get("isBase64Encoded", False)
    if encoded is not None and not isinstance(encoded, bool):
        raise MalformedResponseError(f"isBase64Encoded must be true or false, not {encoded!r}")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise MalformedResponseError(f"body must be a string (serialise objects to JSON first), not {kind_of(body)}")
    if not (encoded and decode):
        return body.encode("utf-8", "replace")
    try:
        return base64.b64decode("".join(body.split()), validate=True)  # line breaks are tolerated
    except (binascii.Error, ValueError) as error:
        raise BinaryConversionError(f"isBase64Encoded is true but body is not valid base64: {error}") from None


def to_http_response(
    result: Any, binary_media_types: Iterable[str] = DEFAULT_BINARY_MEDIA_TYPES, accept: str | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers (in order; repeats are separate headers) and body bytes of a proxy response.

    `headers` and `multiValueHeaders` are both sent: for a name in both (any case), the multi-value ones,
    then the single value unless it is one of them (recorded: LocalStack's AWS-validated
    test_apigateway_common snapshot, `value-multi, value-solo`). The function's own Content-Length, Date,
    Server ... come back as `x-amzn-Remapped-*`; hop-by-hop ones are dropped. Without a Content-Type the answer
    is `application/json`, as from API Gateway. `accept` is the request's first Accept header: it alone decides
    whether a base64 body is decoded (see the module's docstring); BinaryConversionError when that body is not
    base64. As lenient as API Gateway: `{}` is 200 with an empty body.
    """
    if not isinstance(result, Mapping):
        raise MalformedResponseError(f"the function returned {kind_of(result)}, not an object with a statusCode")
    unknown = sorted(str(key) for key in result if key not in RESPONSE_KEYS)
    if unknown:
        raise MalformedResponseError(
            f"unexpected key {unknown[0]!r}; a proxy response has only {', '.join(sorted(RESPONSE_KEYS))}"
        )
    status = _status(result)
    multi = _multi_value_headers(result.get("multiValueHeaders"))
    sent = {(name.lower(), value) for name, value in multi}
    merged = multi + [
        (name, value) for name, value in _headers(result.get("headers")) if (name.lower(), value) not in sent
    ]
    answered = []
    for name, value in merged:
        lowered = name.lower()
        if lowered in DROPPED_RESPONSE_HEADERS:
            continue
        remapped = REMAPPED_RESPONSE_HEADERS.get(lowered)
        answered.append((f"x-amzn-Remapped-{remapped}" if remapped else name, value))
    if not any(name.lower() == "content-type" for name, _ in answered):
        answered.append(("Content-Type", "application/json"))
    return status, answered, _body(result, is_binary(accept, binary_media_types))
