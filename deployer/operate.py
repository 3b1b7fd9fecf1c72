"""Operate what is deployed: call a stage's function as its API would (`deployer invoke`), read its logs
(`deployer logs`).

`invoke` sends the function, through its stage's alias, the very event API Gateway would send for the request
(deployer/gateway's `build_event`, the builder `serve`, the local cloud and the check use), and turns the answer
into HTTP with deployer/gateway's `to_http_response`, so a malformed answer is the 502 API Gateway would give.

`logs` reads the function's CloudWatch Logs group, `/aws/lambda/<function name>`, with FilterLogEvents: one line
per event, its time, the request it belongs to and its message. Lambda writes each execution environment's log to
a stream of its own and runs one request at a time there, so a line without a request id (a print()) belongs to
the request its stream started last.

boto3 is imported inside the functions that call AWS: importing this module costs nothing at start-up.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from deployer import output
from deployer.errors import DeployerError, UsageError
from deployer.gateway import http_api
from deployer.gateway.answers import BAD_GATEWAY
from deployer.gateway.proxy import (
    HEADER_NAME,
    LOCAL_ACCOUNT_ID,
    LOCAL_API_ID,
    LOCAL_DEPLOYMENT_ID,
    MalformedResponseError,
    build_event,
    forwarded_headers,
    to_http_response,
)

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.context import Connection
    from deployer.state import State

TAIL_LINES = 20  # of the log tail shown when the function fails
FOLLOW_INTERVAL = 1.5  # seconds between two polls of `logs --follow`
SINCE = re.compile(r"(\d{1,15})([smhd])")  # 15 digits: int() of the digits stays cheap
SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# START / END / REPORT, and the runtime's own `RequestId: <id> Error: ...` lines
LAMBDA_LINE = re.compile(rf"\bRequestId: ({UUID})")
# The runtimes' default log lines: Python's `[INFO]\t<time>\t<id>\t...`, Node's `<time>\t<id>\tINFO\t...`
RUNTIME_LINE = re.compile(rf"^[^\t\n]*\t(?:[^\t\n]*\t)?({UUID})\t")
# Lambda refuses a synchronous Invoke whose request is larger (RequestEntityTooLargeException): a bigger file is
# refused before it is read, and a file without a size (/dev/zero, a pipe) is read no further than this.
MAX_INVOKE_PAYLOAD = 6 * 1024 * 1024


# invoke: the request, from the command's options


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not HEADER_NAME.fullmatch(name.strip()):
        raise UsageError(f"-H {text!r} is not a header: write it as 'Name: value'")
    return name.strip(), value.strip()


def read_bounded(path: Path, option: str) -> bytes:
    """The file's bytes, at most MAX_INVOKE_PAYLOAD of them: a larger file is refused (by its size before reading
    it when it has one), never read whole into memory. OSError when it cannot be read."""
    too_large = UsageError(
        f"{option}: {path} is larger than {MAX_INVOKE_PAYLOAD // (1024 * 1024)} MB, Lambda's limit for an "
        "invocation's event; send a smaller one"
    )
    with path.open("rb") as stream:
        if os.fstat(stream.fileno()).st_size > MAX_INVOKE_PAYLOAD:
            raise too_large
        payload = stream.read(MAX_INVOKE_PAYLOAD + 1)
    if len(payload) > MAX_INVOKE_PAYLOAD:
        raise too_large
    return payload


def _data(data: str) -> bytes:
    """--data's bytes: the text itself, or the content of the file after `@`, as curl reads it."""
    if not data.startswith("@"):
        return data.encode("utf-8")
    path = Path(data[1:]).expanduser()
    try:
        return read_bounded(path, f"--data {data}")
    except OSError as error:
        raise UsageError(f"--data {data}: cannot read {path}: {error.strerror or error}") from None


def http_request(method: str, path: str, headers: Sequence[str], data: str | None) -> HttpRequest:
    """The request `invoke` plays, checked: one line (UsageError) for what cannot be sent."""
    if not HEADER_NAME.fullmatch(method):
        raise UsageError(f"--method {method!r} is not an HTTP method such as GET or POST")
    if not path.startswith("/"):
        raise UsageError(f"--path {path!r} must start with /, e.g. /items?page=2")
    path, _, query = path.partition("?")
    body = b"" if data is None else _data(data)
    return HttpRequest(method.upper(), path, query, [_header(text) for text in headers], body)


def read_event(path: Path) -> bytes:
    """--event's file: a JSON document, sent as it is."""
    try:
        payload = read_bounded(path.expanduser(), f"--event {path}")
    except OSError as error:
        raise UsageError(f"--event {path}: cannot read it: {error.strerror or error}") from None
    try:
        json.loads(payload)
    except ValueError as error:
        raise UsageError(f"--event {path} is not JSON: {error}") from None
    return payload


def proxy_event(request: HttpRequest, config: Config, state: State) -> dict[str, Any]:
    """The event the stage's front door sends its function for `request`: as `serve` builds it (payload 1.0 for the
    REST API, 2.0 for an HTTP API or a function URL), with this deployment's API id, account and host where the
    state knows them."""
    site = urlsplit(state.base_url or "")
    host = site.netloc or "deployer-invoke"
    port = site.port or (80 if site.scheme == "http" else 443)
    given = {name.lower() for name, _ in request.headers}
    defaults = [("Host", host), ("User-Agent", "deployer-invoke"), ("Accept", "*/*")]
    headers = [*[(name, value) for name, value in defaults if name.lower() not in given], *request.headers]
    arn = (state.function_arn or "").split(":")
    account = arn[4] if len(arn) > 5 and arn[4] else LOCAL_ACCOUNT_ID
    if config.api_type != "rest":
        door_id = state.http_api_id if config.api_type == "http" else http_api.function_url_id(state.base_url)
        anonymous = config.api_type == "url" and config.url_auth == "NONE"  # an open URL names no caller's account
        return http_api.build_event(
            request.method,
            request.path,
            request.query,
            forwarded_headers(headers, "127.0.0.1", port),
            request.body,
            api_id=door_id or LOCAL_API_ID,
            account_id=http_api.ANONYMOUS if anonymous else account,
        )
    return build_event(
        request.method,
        request.path,
        request.query,
        forwarded_headers(headers, "127.0.0.1", port),
        request.body,
        config.stage,
        account_id=account,
        api_id=state.rest_api_id or LOCAL_API_ID,
        deployment_id=state.deployment_id or LOCAL_DEPLOYMENT_ID,
        binary_media_types=config.binary_media_types,
    )


# invoke: the call and its answer


def call_function(connection: Connection, payload: bytes) -> tuple[bytes, dict[str, Any]]:
    """Invoke the stage's alias with `payload`; its answer's payload and the answer. A function error is
    reported (its type, message and log tail) as a DeployerError."""
    from botocore.exceptions import ClientError

    from deployer.aws import is_not_found

    config = connection.config
    try:
        answer = connection.aws.invoker(config.timeout).invoke(
            FunctionName=config.function_name, Qualifier=config.alias, Payload=payload, LogType="Tail"
        )
    except ClientError as error:
        if is_not_found(error):
            raise DeployerError(f"nothing deployed on stage {config.stage}: run deployer up first") from None
        raise
    result = answer["Payload"].read()
    if answer.get("FunctionError"):
        _report_function_error(config, answer, result)
    return result, answer


def _report_function_error(config: Config, answer: dict[str, Any], payload: bytes) -> None:
    from deployer.check import NO_INVOKE_HERE

    if payload.startswith(NO_INVOKE_HERE):
        raise DeployerError("this endpoint cannot run functions (Lambda Invoke needs Docker in moto)")
    tail = base64.b64decode(answer.get("LogResult") or "").decode("utf-8", "replace").splitlines()
    for line in tail[-TAIL_LINES:]:
        output.plain(f"  {line}")
    try:
        error = json.loads(payload)
    except ValueError:
        error = None
    if isinstance(error, dict):
        kind, message = str(error.get("errorType") or "Error"), str(error.get("errorMessage") or "")
    else:
        kind, message = "Error", payload.decode("utf-8", "replace")
    version = answer.get("ExecutedVersion") or "?"
    raise DeployerError(
        f"{config.function_name} (alias {config.alias}, version {version}) failed: {kind}: {_first_line(message)}; "
        "API Gateway would answer 502"
    )


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:300] if lines else ""


def write_body(body: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(body)
    sys.stdout.buffer.flush()


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def invoke(connection: Connection, request: HttpRequest) -> int:
    """Call the stage's function with `request` as API Gateway would; print the answer: the body on stdout, the
    status line and headers on stderr. 0 for a status below 500; a failure is a DeployerError."""
    config = connection.config
    event = proxy_event(request, config, connection.store.load())
    payload, answer = call_function(connection, json.dumps(event).encode())
    problem = None
    try:
        accept = next((value for name, value in request.headers if name.lower() == "accept"), "*/*")
        answer_json = json.loads(payload or b"null")
        if config.api_type == "rest":
            status, headers, body = to_http_response(answer_json, config.binary_media_types, accept)
        else:  # payload 2.0: a value without statusCode is a 200 with that JSON
            status, headers, body = http_api.to_http_response(answer_json)
    except (ValueError, MalformedResponseError) as error:  # not JSON (ValueError) is malformed too
        door = "API Gateway" if config.api_type != "url" else "the function URL"
        problem = f"malformed Lambda proxy response: {_first_line(str(error))}; {door} answers 502"
        status, headers, body = BAD_GATEWAY.response()
    output.plain(_status_line(status))
    for name, value in headers:
        output.plain(f"{name}: {value}")
    write_body(body)
    if problem is None and status >= 500:
        version = answer.get("ExecutedVersion") or "?"
        problem = f"{config.function_name} (alias {config.alias}, version {version}) answered {status}"
    if problem:
        raise DeployerError(problem)
    return 0


def invoke_raw(connection: Connection, payload: bytes) -> int:
    """Send `payload` as the event, as it is; print the function's answer as it is on stdout."""
    result, answer = call_function(connection, payload)
    output.plain(f"version {answer.get('ExecutedVersion') or '?'} of {connection.config.function_name} answered")
    write_body(result + b"\n" if result and not result.endswith(b"\n") else result)
    return 0


# logs


def parse_since(text: str, now: float | None = None) -> int:
    """--since as epoch milliseconds: a duration back from now (30s, 10m, 2h, 1d) or an ISO time (UTC unless
    it says otherwise)."""
    moment = time.time() if now is None else now
    shown = repr(text if len(text) <= 40 else text[:40] + "…")
    duration = SINCE.fullmatch(text.strip())
    if duration:
        seconds = int(duration[1]) * SECONDS_PER_UNIT[duration[2]]
        if seconds > moment:  # CloudWatch Logs takes no time before 1970 (and a float takes no 10**400)
            raise UsageError(f"--since {shown} reaches back before 1970, where no log can be; use e.g. 30d")
        return int((moment - seconds) * 1000)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {shown} is neither a duration such as 30s, 10m, 2h or 1d nor an ISO time such as "
            "2025-05-01T12:00:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when.timestamp() < 0:
        raise UsageError(f"--since {shown} is before 1970, where no log can be; use a later time")
    return int(when.timestamp() * 1000)


def request_id_in(message: str) -> str | None:
    found = LAMBDA_LINE.search(message) or RUNTIME_LINE.match(message)
    return found[1] if found else None


class LogLines:
    """Log events as lines: `<time> <request id> <message>`, remembering which request each stream runs."""

    def __init__(self) -> None:
        self.running: dict[str, str] = {}  # stream -> the request it started last (START ... REPORT)

    def line(self, event: dict[str, Any]) -> str:
        message = str(event.get("message", "")).rstrip("\r\n")
        stream = str(event.get("logStreamName", ""))
        request_id = request_id_in(message)
        if message.startswith("START RequestId:") and request_id:
            self.running[stream] = request_id
        shown = request_id or self.running.get(stream) or stream
        if message.startswith("REPORT RequestId:"):
            self.running.pop(stream, None)
        when = datetime.fromtimestamp(int(event.get("timestamp", 0)) / 1000, UTC)
        # What the function printed (and the stream's name) may carry terminal escapes: shown, never obeyed.
        return f"{when.strftime('%Y-%m-%dT%H:%M:%SZ')} {output.untrusted(shown)} {output.untrusted(message)}"


def fetch(client: Any, group: str, start_ms: int, pattern: str | None) -> Iterator[dict[str, Any]]:
    """Every event of the group since `start_ms` matching `pattern`, in time order page by page."""
    arguments: dict[str, Any] = {"logGroupName": group, "startTime": start_ms}
    if pattern:
        arguments["filterPattern"] = pattern
    for page in client.get_paginator("filter_log_events").paginate(**arguments):
        yield from sorted(page.get("events", []), key=lambda event: event.get("timestamp", 0))


def _no_logs_yet(config: Config) -> str:
    why = "" if config.logs else " ([function] logs = false: the function may not write any)"
    return f"no logs yet for {config.function_name}{why}"


def _is_not_found(error: Exception) -> bool:
    from botocore.exceptions import ClientError

    from deployer.aws import is_not_found

    return isinstance(error, ClientError) and is_not_found(error)


def show_logs(connection: Connection, since: str, pattern: str | None, write: Callable[[str], None]) -> None:
    """Print the stage's function's log events since `since`; 'no logs yet' when the function never logged."""
    config = connection.config
    start = parse_since(since)
    lines = LogLines()
    try:
        for event in fetch(connection.aws.client("logs"), config.log_group, start, pattern):
            write(lines.line(event))
    except Exception as error:
        if not _is_not_found(error):
            raise
        output.info(_no_logs_yet(config))


def follow_logs(
    connection: Connection,
    since: str,
    pattern: str | None,
    write: Callable[[str], None],
    interval: float = FOLLOW_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
    polls: Iterable[int] | None = None,
) -> None:
    """Print the log events since `since`, then the new ones as they come, until Ctrl-C (a quiet end).

    Each poll asks from the last event's timestamp on, and skips the events of that millisecond already
    printed (by their ids): nothing twice, nothing lost that arrives in time order. `sleep` waits between
    polls and `polls` bounds them (tests)."""
    config = connection.config
    client = connection.aws.client("logs")
    last, printed = parse_since(since), set[str]()  # printed: the ids of the events at `last`
    lines = LogLines()
    said_waiting = False
    try:
        for _ in polls if polls is not None else iter(int, 1):
            try:
                events = sorted(fetch(client, config.log_group, last, pattern), key=lambda item: item["timestamp"])
            except Exception as error:
                if not _is_not_found(error):
                    raise
                if not said_waiting:
                    output.info(f"{_no_logs_yet(config)}; waiting for them (Ctrl-C to stop)")
                    said_waiting = True
                events = []
            for event in events:
                stamp, event_id = int(event["timestamp"]), str(event.get("eventId", ""))
                if stamp < last or (stamp == last and event_id in printed):
                    continue
                if stamp > last:
                    last, printed = stamp, set()
                printed.add(event_id)
                write(lines.line(event))
            sleep(interval)
    except KeyboardInterrupt:
        return
