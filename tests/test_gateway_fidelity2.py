"""Issue 22: `deployer serve` and the local cloud answer as API Gateway answers, round two; and issue 20's bounds
on what the local cloud reads (items 13, 14).

Each behaviour runs on both emulations (the `emulation` fixture of tests/test_gateway_fidelity.py: serve over
HTTP, the local cloud's data plane over in-process moto), and names where AWS's answer was recorded:

- LocalStack's AWS-validated tests (recorded against real AWS, then replayed as snapshots), in
  localstack/localstack tests/aws/services/apigateway/: `test_apigateway_lambda.py::test_aws_proxy_binary_response`,
  `test_apigateway_lambda.snapshot.json` (test_lambda_aws_proxy_integration), `test_apigateway_common.snapshot.json`;
- the API Gateway developer guide ("Amazon API Gateway important notes": the HTTP headers table; quotas);
- the answers quoted in issue 22, captured from AWS.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from deployer.local import patches
from deployer.local.auth import new_credentials
from deployer.local.dataplane import DataPlane
from deployer.local.emulator import Emulator
from deployer.serve import server as serve_server
from tests.emulations import Emulation, Start

# AWS's numbers, not imported from the code under test: Lambda's payload limit ("must be smaller than 6291556
# bytes"), API Gateway's 10 MB body and 10,240 bytes of request line and header values.
LAMBDA_PAYLOAD_LIMIT = 6291556
MAX_REQUEST_BODY = 10485760
MAX_REQUEST_HEADERS = 10240
MAX_API_BODY = 64 * 1024 * 1024  # the local cloud's bound on a signed API call's body (deployer sends <= 16 MB)
PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mP8/wIAAgkBAyMAlYwAAAAASUVORK5CYII="
REQUEST_TOO_LONG = b'{"message": "Request Too Long"}'


def port_of(api: Emulation) -> int:
    """The port a serve emulation listens on (its Host header, echoed by the function)."""
    return int(api.event("/echo")["headers"]["Host"].rsplit(":", 1)[1])


# --- item 1: binary answers by the first Accept type only ------------------------------------------------------


# Recorded by LocalStack's AWS-validated test_aws_proxy_binary_response (test_apigateway_lambda.py), with
# binaryMediaTypes ["image/png", "*/test"] and the function answering a base64 PNG as image/png.
RECORDED_ACCEPTS = [
    ("image/png", True),
    ("image/png,image/*,*/*;q=0.8", True),
    ("image/jpg", False),
    ("image/*", False),
    ("*/test", False),
    ("random/test", False),
    ("*/*", False),
    ("image/webp,image/png,*/*;q=0.8", False),
]


def test_a_base64_answer_is_bytes_only_when_the_first_accept_type_is_binary(emulation: Start) -> None:
    api = emulation(["image/png", "*/test"])
    answer = {"statusCode": 200, "headers": {"Content-Type": "image/png"}, "isBase64Encoded": True, "body": PNG_BASE64}
    for accept, binary in RECORDED_ACCEPTS:
        reply = api.reply_with(answer, accept=accept)
        assert reply.status == 200
        assert reply.body == (base64.b64decode(PNG_BASE64) if binary else PNG_BASE64.encode()), accept


def test_a_base64_flag_on_a_body_that_is_not_base64_is_500_when_converted(emulation: Start) -> None:
    """test_aws_proxy_binary_response: body "èé+à)(" flagged base64, Accept image/png -> 500."""
    api = emulation(["image/png"])
    bad = {"statusCode": 200, "headers": {"Content-Type": "image/png"}, "isBase64Encoded": True, "body": "èé+à)("}
    reply = api.reply_with(bad, accept="image/png")
    assert (reply.status, reply.body) == (500, b'{"message": "Internal server error"}')
    assert api.reply_with(bad, accept="text/html").status == 200  # not converted: sent as it is


# --- item 2: Lambda's 6 MB, API Gateway's 10 MB ---------------------------------------------------------------


def test_an_event_over_lambdas_6_mb_is_413_request_too_long(emulation: Start) -> None:
    """Issue 22 (captured from AWS): a 7 MB text body, and a 5 MB binary one once base64-encoded, are 413."""
    text = emulation(["image/png"])
    reply = text.request("/echo", "POST", [("Content-Type", "text/plain")], b"t" * (7 * 1024 * 1024))
    assert (reply.status, reply.body) == (413, REQUEST_TOO_LONG)
    assert reply.header("x-amzn-RequestId")
    binary = emulation(["application/octet-stream"])
    reply = binary.request("/echo", "POST", [("Content-Type", "application/octet-stream")], b"\0" * (5 * 1024 * 1024))
    assert (reply.status, reply.body) == (413, REQUEST_TOO_LONG)
    assert binary.request("/echo", "POST", [("Content-Type", "text/plain")], b"small").status == 200


def test_an_answer_over_lambdas_6_mb_is_502(emulation: Start) -> None:
    api = emulation(["image/png"])
    reply = api.request(f"/big/{LAMBDA_PAYLOAD_LIMIT + 1}")
    assert (reply.status, reply.body) == (502, b'{"message": "Internal server error"}')
    assert api.request("/big/1000").body == b"x" * 1000


def test_a_body_over_10_mb_gets_api_gateways_own_text(emulation: Start) -> None:
    """Issue 22 (captured from AWS): 413, `HTTP content length exceeded 10485760 bytes.`, `text; charset=utf-8`."""
    api = emulation(["image/png"])
    if api.name == "serve":  # the announced length alone: serve refuses it before reading the body
        reply = api.request("/echo", "POST", [("Content-Length", str(MAX_REQUEST_BODY + 1))])
    else:
        reply = api.request("/echo", "POST", [("Content-Type", "text/plain")], b"b" * (MAX_REQUEST_BODY + 1))
    assert (reply.status, reply.body) == (413, b"HTTP content length exceeded 10485760 bytes.")
    assert reply.header("Content-Type") == ["text; charset=utf-8"]


# --- items 5, 9: the response's headers ------------------------------------------------------------------------


def test_headers_and_multi_value_headers_of_one_name_are_both_sent(emulation: Start) -> None:
    """test_apigateway_common.snapshot.json (AWS-validated): multiValueHeaders test-multi ["value-multi"] and headers
    test-multi "value-solo" reach the client as `value-multi, value-solo`; the same value in both, once."""
    api = emulation(["image/png"])
    both = api.reply_with(
        {"multiValueHeaders": {"test-multi": ["value-multi"]}, "headers": {"Test-Multi": "value-solo"}}
    )
    assert ", ".join(both.header("test-multi")) == "value-multi, value-solo"
    same = api.reply_with({"multiValueHeaders": {"x-same": ["one"]}, "headers": {"X-Same": "one"}})
    assert same.header("x-same") == ["one"]


def test_every_answer_carries_the_trace_and_request_ids_and_no_server_of_ours(emulation: Start) -> None:
    """API Gateway's answers carry X-Amzn-Trace-Id and x-amzn-RequestId, its own and the function's alike."""
    api = emulation(["image/png"])
    for reply in (
        api.request("/echo"),
        api.reply_with({"statusCode": "nonsense"}),  # 502
        api.request("/echo", "GET", [("X-Big", "h" * (MAX_REQUEST_HEADERS + 1))]),  # 431
    ):
        assert len(reply.header("x-amzn-RequestId")) == 1, reply.status
        assert len(reply.header("X-Amzn-Trace-Id")) == 1, reply.status
        assert reply.header("Server") == []


def test_the_functions_own_content_length_date_and_server_come_back_remapped(emulation: Start) -> None:
    """API Gateway developer guide, HTTP headers table (REST, Lambda proxy responses): Authorization, Connection,
    Content-Length, Date, Max-Forwards, Server and WWW-Authenticate are remapped to x-amzn-Remapped-<name>."""
    api = emulation(["image/png"])
    headers = {"Content-Length": "999", "Date": "Thu, 01 Jan 1970 00:00:00 GMT", "Server": "app/1.0", "X-Own": "kept"}
    reply = api.reply_with({"statusCode": 200, "headers": headers, "body": "hello"})
    assert (reply.status, reply.body) == (200, b"hello")
    assert reply.header("x-amzn-Remapped-Content-Length") == ["999"]
    assert reply.header("x-amzn-Remapped-Date") == ["Thu, 01 Jan 1970 00:00:00 GMT"]
    assert reply.header("x-amzn-Remapped-Server") == ["app/1.0"]
    assert reply.header("X-Own") == ["kept"]
    assert reply.header("Server") == []
    assert "Thu, 01 Jan 1970 00:00:00 GMT" not in reply.header("Date")  # never twice, never the function's
    assert len(reply.header("Content-Length")) <= 1 and reply.header("Content-Length") in ([], ["5"])


# --- items 6, 7, 8: the event ---------------------------------------------------------------------------------

DROPPED = [
    ("Max-Forwards", "5"),
    ("TE", "trailers"),
    ("Trailer", "X-Later"),
    ("Upgrade", "h2c"),
    ("Proxy-Authenticate", "Basic"),
    ("Server", "client"),
    ("WWW-Authenticate", "Basic"),
    ("Content-MD5", "Q2hlY2sgSW50ZWdyaXR5IQ=="),
]


def test_request_headers_api_gateway_drops_never_reach_the_function(emulation: Start) -> None:
    """API Gateway developer guide, HTTP headers table: dropped for Lambda proxy requests (issue 22's list)."""
    api = emulation(["image/png"])
    event = api.event("/echo", "POST", headers=[*DROPPED, ("Content-Type", "text/plain")], body=b"the body")
    names = {name.lower() for name in event["headers"]} | {name.lower() for name in event["multiValueHeaders"]}
    for gone in [*(name.lower() for name, _ in DROPPED), "content-length", "connection", "transfer-encoding"]:
        assert gone not in names
    assert event["body"] == "the body"


def test_a_chunked_upload_reaches_the_function_without_transfer_encoding(emulation: Start) -> None:
    """apig-wsgi reads an empty body when Transfer-Encoding is in the event (it leaks into the WSGI environ)."""
    api = emulation(["image/png"])
    if api.name == "serve":
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", port_of(api), timeout=20)
        connection.request("POST", "/echo", iter([b"chunk one, ", b"chunk two"]), {"Content-Type": "text/plain"})
        response = connection.getresponse()
        event = json.loads(response.read())
        connection.close()
    else:
        event = api.event(
            "/echo",
            "POST",
            headers=[("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain")],
            body=b"chunk one, chunk two",
        )
    assert event["body"] == "chunk one, chunk two"
    assert not any(name.lower() == "transfer-encoding" for name in event["headers"])


def test_authorization_is_spelled_authorization_whatever_the_client_sent(emulation: Start) -> None:
    """test_apigateway_lambda.snapshot.json, test_lambda_aws_proxy_integration (AWS-validated): `authorization` and
    `aUThorization` reach the event as `Authorization`."""
    api = emulation(["image/png"])
    event = api.event("/echo", headers=[("aUThorization", "Bearer token123;API key456")])
    assert event["headers"]["Authorization"] == "Bearer token123;API key456"
    assert event["multiValueHeaders"]["Authorization"] == ["Bearer token123;API key456"]
    assert "aUThorization" not in event["headers"]


def test_a_leading_double_slash_is_folded_in_path_and_kept_in_the_request_context(emulation: Start) -> None:
    """Issue 22 (recorded from AWS): GET //proxy-value gives path /proxy-value, proxy proxy-value, and
    requestContext.path /{stage}//proxy-value."""
    api = emulation(["image/png"])
    event = api.event("//proxy-value")
    assert event["path"] == "/proxy-value"
    assert event["pathParameters"] == {"proxy": "proxy-value"}
    assert event["requestContext"]["path"] == "/fidelity//proxy-value"
    assert event["resource"] == "/{proxy+}"


# --- item 10: header size -------------------------------------------------------------------------------------


def test_request_headers_over_10240_bytes_are_refused(emulation: Start) -> None:
    """API Gateway quota: the request line and header values, 10,240 bytes at most; clients report AWS's answer as
    `HTTP header is larger than 10240 bytes.`"""
    api = emulation(["image/png"])
    refused = api.request("/echo", "GET", [("Cookie", "c=" + "x" * MAX_REQUEST_HEADERS)])
    assert (refused.status, refused.body) == (431, b"HTTP header is larger than 10240 bytes.")
    assert api.request("/echo", "GET", [("Cookie", "c=" + "x" * 9000)]).status == 200


# --- item 9 on the wire: 100 Continue, Server --------------------------------------------------------------------


def raw_exchange(port: int, request: bytes) -> bytes:
    """What the server sends back for `request` until it has answered (or closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
        connection.sendall(request)
        received = b""
        while b"\r\n\r\nok" not in received and b"\r\n\r\n{" not in received:
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


EXPECTING = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi"


@pytest.fixture
def werkzeug_server() -> Iterator[int]:
    """werkzeug's server, as the local cloud runs it (patches.install_http_fixes), answering `ok`."""
    from werkzeug.serving import make_server as make_wsgi_server

    patches.install_http_fixes()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    server = make_wsgi_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.port
    server.shutdown()
    thread.join(timeout=10)


def test_the_local_clouds_server_sends_one_100_continue_and_no_server_header(werkzeug_server: int) -> None:
    received = raw_exchange(werkzeug_server, EXPECTING)
    assert received.count(b"100 Continue") == 1
    assert b"\r\nServer:" not in received and received.endswith(b"ok")


def test_serve_sends_one_100_continue(serve_emulation: Start) -> None:
    received = raw_exchange(port_of(serve_emulation(["image/png"])), EXPECTING)
    assert received.count(b"100 Continue") == 1
    assert b"\r\nServer:" not in received


# --- issue 20, item 14: connections time out; serve's backlog ---------------------------------------------------


def closed_by_server(port: int) -> bool:
    """Connect, send half a request, wait: True when the server closes the connection (generous bound: 20 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        try:
            return connection.recv(65536) == b""
        except TimeoutError:
            return False


def test_a_half_open_connection_to_the_local_cloud_is_closed(
    werkzeug_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from werkzeug.serving import WSGIRequestHandler

    assert WSGIRequestHandler.timeout == patches.CONNECTION_TIMEOUT == 60.0
    monkeypatch.setattr(WSGIRequestHandler, "timeout", 0.3)  # 60 s, scaled down
    assert closed_by_server(werkzeug_server)


def test_a_half_open_connection_to_serve_is_closed_and_the_backlog_is_128(
    serve_emulation: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert serve_server.ProxyRequestHandler.timeout == serve_server.CONNECTION_TIMEOUT == 60.0
    assert serve_server.LocalApiServer.request_queue_size >= 128  # socketserver's default of 5 made clients wait
    monkeypatch.setattr(serve_server.ProxyRequestHandler, "timeout", 0.3)  # 60 s, scaled down
    assert closed_by_server(port_of(serve_emulation(["image/png"])))


# --- issue 20, item 13: the local cloud refuses by Content-Length before reading -------------------------------


class Unreadable(io.RawIOBase):
    """A request body nobody may read: 1.5 GB announced, as in issue 20."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")

    readline = read  # type: ignore[assignment]


class Endless(io.RawIOBase):
    """A chunked body that never ends (read as werkzeug's DechunkedInput reads: as much as asked); counts what was
    read. Reading it all would never return."""

    def __init__(self) -> None:
        self.given = 0

    def read(self, size: int = -1) -> bytes:
        assert size is not None and size >= 0, "an endless body read to its end"
        self.given += size
        return b"e" * size


HUGE = str(1536 * 1024 * 1024)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    def moto(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise AssertionError("the request must not reach moto")

    plane = DataPlane(tmp_path / "code", console=lambda _: None)
    yield Emulator(moto, plane, port=4566, credentials=new_credentials())
    plane.close()


def run(emulator: Emulator, **environ: Any) -> tuple[str, bytes]:
    answered: list[str] = []
    base = {"HTTP_HOST": "127.0.0.1:4566", "REQUEST_METHOD": "POST", "QUERY_STRING": ""}
    body = emulator({**base, **environ}, lambda status, headers: answered.append(status))
    return answered[0], b"".join(body)


def signed_headers(emulator: Emulator) -> dict[str, str]:
    """An Authorization naming the local cloud's key and a fresh date (the signature itself needs the body)."""
    assert emulator.credentials is not None
    now = datetime.now(UTC)
    credential = f"{emulator.credentials.access_key_id}/{now:%Y%m%d}/us-east-1/lambda/aws4_request"
    return {
        "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host;x-amz-date, "
        f"Signature={'0' * 64}",
        "HTTP_X_AMZ_DATE": f"{now:%Y%m%dT%H%M%SZ}",
    }


def test_an_unsigned_api_call_is_refused_before_its_body_is_read(emulator: Emulator) -> None:
    status, _ = run(emulator, PATH_INFO="/2015-03-31/functions", CONTENT_LENGTH=HUGE, **{"wsgi.input": Unreadable()})
    assert status.startswith("403 ")


def test_a_signed_api_call_over_the_bound_is_413_before_its_body_is_read(emulator: Emulator) -> None:
    environ = {"PATH_INFO": "/2015-03-31/functions", "CONTENT_LENGTH": HUGE, "wsgi.input": Unreadable()}
    status, _ = run(emulator, **environ, **signed_headers(emulator))
    assert status.startswith("413 ")
    endless = Endless()
    chunked = {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True, "wsgi.input": endless}
    status, _ = run(emulator, PATH_INFO="/2015-03-31/functions", **chunked, **signed_headers(emulator))
    assert status.startswith("413 ") and endless.given <= MAX_API_BODY + 1


def test_health_and_the_data_plane_refuse_a_huge_body_unread(emulator: Emulator) -> None:
    status, _ = run(emulator, PATH_INFO="/_deployer/health", CONTENT_LENGTH=HUGE, **{"wsgi.input": Unreadable()})
    assert status.startswith("413 ")
    path = "/restapis/abc123/test/_user_request_/upload"
    status, body = run(emulator, PATH_INFO=path, RAW_URI=path, CONTENT_LENGTH=HUGE, **{"wsgi.input": Unreadable()})
    assert (status[:4], body) == ("413 ", b"HTTP content length exceeded 10485760 bytes.")
    endless = Endless()
    chunked = {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True, "wsgi.input": endless}
    status, _ = run(emulator, PATH_INFO=path, RAW_URI=path, **chunked)
    assert status.startswith("413 ") and endless.given <= MAX_REQUEST_BODY + 1
