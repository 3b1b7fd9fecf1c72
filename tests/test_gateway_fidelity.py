"""Issue 14: `deployer serve` and the local cloud answer exactly as the deployed API (REST API, Lambda proxy,
payload 1.0) would. Each behaviour is checked on both emulations, through the same function code, against
the AWS-shaped expectations in tests/fixtures/gateway/*.json (placeholders such as `<uuid>` stand for
values that differ per request; see SHAPES).

The local cloud is its data plane over in-process moto (what the emulator's WSGI layer calls), given the
headers as the client sent them.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from deployer.errors import DeployerError
from deployer.gateway import integration
from deployer.gateway.integration import answer_from_function
from deployer.gateway.proxy import build_event, to_http_response
from deployer.local.dataplane import RAW_HEADERS_KEY, client_headers
from deployer.local.patches import (
    install_binary_media_types,
    install_http_fixes,
)
from deployer.serve.sandbox import check_runtime, find_interpreter
from tests.emulations import STAGE, Start
from tests.support import REGION, http_call

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "gateway"
SHAPES: dict[str, str] = {
    "<uuid>": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "<trace-id>": r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}",
    "<extended-request-id>": r"[A-Za-z0-9+/]{15}=",
    "<request-time>": r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000",
    "<host>": r"[\w.-]+(:\d+)?",
    "<ip>": r"[0-9a-f.:]+",
    "<port>": r"\d+",
    "<account>": r"\d{12}",
    "<id>": r"[A-Za-z0-9]+",
    "<any>": r".*",
}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def assert_shaped(actual: Any, expected: Any, where: str = "event") -> None:
    """`actual` is `expected`, placeholders standing for any value of their shape; `_`-keys are not compared."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        wanted = {key for key in expected if not key.startswith("_")}
        assert set(actual) == wanted, f"{where}: keys {sorted(set(actual) ^ wanted)} differ"
        for key in wanted:
            assert_shaped(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r} != {expected!r}"
        for index, (item, wanted_item) in enumerate(zip(actual, expected, strict=True)):
            assert_shaped(item, wanted_item, f"{where}[{index}]")
    elif expected == "<epoch-ms>":
        assert isinstance(actual, int) and abs(actual - time.time() * 1000) < 60_000, f"{where}: {actual!r}"
    elif isinstance(expected, str) and expected in SHAPES:
        assert isinstance(actual, str) and re.fullmatch(SHAPES[expected], actual), f"{where}: {actual!r}"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def assert_subset(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        if not key.startswith("_"):
            assert_shaped(actual[key], value, f"event.{key}")


# --- 1. binary payloads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", fixture("binary_rule.json")["requests"], ids=str)
def test_a_request_body_is_base64_exactly_when_its_content_type_is_binary(case: dict[str, Any]) -> None:
    headers = [("Content-Type", case["contentType"])] if case["contentType"] else []
    event = build_event(
        "POST", "/up", "", headers, b"\x00\x01 some bytes", STAGE, binary_media_types=case["binaryMediaTypes"]
    )
    assert event["isBase64Encoded"] is case["base64"]
    assert event["body"] == (
        base64.b64encode(b"\x00\x01 some bytes").decode() if case["base64"] else "\x00\x01 some bytes"
    )


@pytest.mark.parametrize("case", fixture("binary_rule.json")["responses"], ids=str)
def test_a_base64_answer_is_decoded_only_when_the_first_accept_type_is_binary(case: dict[str, Any]) -> None:
    """The response's Content-Type plays no part (issue 22): the cases with `_source` are AWS's answers as
    LocalStack's AWS-validated test_aws_proxy_binary_response recorded them."""
    payload = b"\x89PNG\r\n\x1a\n"
    result = {
        "statusCode": 200,
        "headers": {"Content-Type": case["contentType"]} if case["contentType"] else {},
        "body": base64.b64encode(payload).decode(),
        "isBase64Encoded": True,
    }
    body = to_http_response(result, case["binaryMediaTypes"], case["accept"])[2]
    assert body == (payload if case["decoded"] else base64.b64encode(payload))


def test_both_emulations_apply_the_apis_binary_media_types(emulation: Start) -> None:
    every = emulation()  # deploy.toml's default, */*: every body is binary, even JSON
    event = every.event("/echo", "POST", headers=[("Content-Type", "application/json")], body=b'{"a": 1}')
    assert (event["isBase64Encoded"], base64.b64decode(event["body"])) == (True, b'{"a": 1}')

    pictures = emulation(["image/png"])
    event = pictures.event("/echo", "POST", headers=[("Content-Type", "application/json")], body=b'{"a": 1}')
    assert (event["isBase64Encoded"], event["body"]) == (False, '{"a": 1}')
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
    answer = {"statusCode": 200, "headers": {"Content-Type": "text/html"}, "isBase64Encoded": True}
    answer["body"] = base64.b64encode(png).decode()
    assert pictures.reply_with(answer, accept="image/png").body == png
    # What a browser gets: its Accept starts with text/html, the answer says text/html: the base64 text.
    assert pictures.reply_with(answer, accept="text/html,image/png;q=0.9").body == base64.b64encode(png)


def test_moto_keeps_binary_media_types_and_patches_them_by_path() -> None:
    install_binary_media_types()
    with mock_aws():
        gateway = boto3.client("apigateway", region_name=REGION)
        api_id = gateway.create_rest_api(name="types", binaryMediaTypes=["*/*"])["id"]
        assert gateway.get_rest_api(restApiId=api_id)["binaryMediaTypes"] == ["*/*"]
        changed = gateway.update_rest_api(
            restApiId=api_id,
            patchOperations=[
                {"op": "add", "path": "/binaryMediaTypes/image~1png"},
                {"op": "add", "path": "/binaryMediaTypes/application~1pdf"},
                {"op": "remove", "path": "/binaryMediaTypes/*~1*"},
            ],
        )
        assert changed["binaryMediaTypes"] == ["image/png", "application/pdf"]
        assert gateway.get_rest_api(restApiId=api_id)["binaryMediaTypes"] == ["image/png", "application/pdf"]
        assert gateway.create_rest_api(name="none").get("binaryMediaTypes", []) == []


# --- 2. the 29-second integration timeout ---------------------------------------------------------------------


def test_a_function_past_the_integration_timeout_gets_504(emulation: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    assert integration.INTEGRATION_TIMEOUT == 29.0
    monkeypatch.setattr(integration, "INTEGRATION_TIMEOUT", 0.5)  # 29 s, scaled down
    api = emulation(timeout=10)
    api.request("/warm")  # the cold start is not what is timed
    started = time.monotonic()
    reply = api.request("/sleep/3")
    assert time.monotonic() - started < 2.5
    assert (reply.status, reply.body) == (504, b'{"message": "Endpoint request timed out"}')
    assert reply.header("x-amzn-RequestId")


# --- 3. as lenient as API Gateway -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", fixture("lenient_responses.json")["cases"], ids=lambda case: json.dumps(case["result"])
)
def test_what_api_gateway_accepts_from_a_function_the_gateway_accepts(case: dict[str, Any]) -> None:
    event = build_event("GET", "/", "", [], b"", STAGE)
    status, _, body = answer_from_function(lambda _: case["result"], event, lambda reason, details: None)
    assert status == case["status"]
    if status != 502:
        assert body == case["body"].encode()


def test_both_emulations_take_a_string_status_and_an_empty_answer(emulation: Start) -> None:
    api = emulation(["image/png"])
    created = api.reply_with({"statusCode": "201", "body": "made"})
    assert (created.status, created.body) == (201, b"made")
    empty = api.reply_with({})
    assert (empty.status, empty.body, empty.header("Content-Type")) == (200, b"", ["application/json"])
    assert api.reply_with({"statusCode": 200, "body": {"an": "object"}}).status == 502


# --- 4, 5, 6. the event: headers as sent, paths as API Gateway gives them, the fields it adds ------------------


def test_the_event_is_api_gateways(emulation: Start) -> None:
    expected = fixture("event_trailing_slash.json")
    sent = expected["_request"]
    reply = emulation().request(sent["target"], sent["method"], [tuple(pair) for pair in sent["headers"]])
    assert reply.status == 200, reply.body
    event = json.loads(reply.body)
    assert_shaped(event, expected)
    context = event["requestContext"]
    assert context["extendedRequestId"] != context["requestId"]
    assert reply.header("x-amzn-RequestId") == [context["requestId"]]
    assert reply.header("x-amz-apigw-id") == [context["extendedRequestId"]]


def test_a_percent_encoded_path_stays_encoded(emulation: Start) -> None:
    expected = fixture("event_encoded_path.json")
    sent = expected["_request"]
    api = emulation(expected["_binary_media_types"])
    headers = [tuple(pair) for pair in sent["headers"]]
    reply = api.request(sent["target"], sent["method"], headers, sent["body"].encode())
    assert reply.status == 200, reply.body
    assert_subset(json.loads(reply.body), expected)


def test_a_client_trace_id_is_kept_and_a_deployment_is_named() -> None:
    event = build_event("GET", "/", "", [("x-amzn-trace-id", "Root=1-00000000-000000000000000000000000")], b"", STAGE)
    assert event["multiValueHeaders"]["x-amzn-trace-id"] == ["Root=1-00000000-000000000000000000000000"]
    assert (
        build_event("GET", "/", "", [], b"", STAGE, deployment_id="abc123")["requestContext"]["deploymentId"]
        == "abc123"
    )


def test_the_local_clouds_server_hands_over_the_headers_as_sent() -> None:
    """werkzeug (moto's server) folds header names to WSGI keys and joins repeats with commas; the raw ones are
    kept in the environ for the data plane (the emulator reads them with client_headers)."""
    from werkzeug.serving import make_server as make_wsgi_server

    install_http_fixes()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = json.dumps(client_headers(environ)).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    server = make_wsgi_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        headers = [("tEsT-HEADeR", "aValUE"), ("Cookie", "a=1"), ("Cookie", "b=2, c=3")]
        received = json.loads(http_call(server.port, "/", headers=headers).body)
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert [pair for pair in received if pair[0] in ("tEsT-HEADeR", "Cookie")] == [list(pair) for pair in headers]
    assert client_headers({}) is None and RAW_HEADERS_KEY


# --- 7. keep-alive --------------------------------------------------------------------------------------------


def test_serve_answers_many_requests_over_one_kept_alive_connection(serve_emulation: Start) -> None:
    api = serve_emulation(["image/png"])
    port = int(json.loads(api.request("/echo").body)["headers"]["Host"].rsplit(":", 1)[1])
    accepted: list[Any] = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.connect()
    assert connection.sock is not None
    accepted.append(connection.sock.getsockname())
    for index in range(20):
        connection.request("POST", "/reply", json.dumps({"statusCode": 200, "body": str(index)}))
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, str(index).encode())
        assert response.getheader("Connection") != "close"
        assert connection.sock is not None, "the server closed the connection"
        accepted.append(connection.sock.getsockname())
    connection.close()
    assert len(set(accepted)) == 1  # 21 requests, one TCP connection


def test_the_local_clouds_server_keeps_a_connection_alive_and_skips_an_unread_body() -> None:
    """werkzeug (the emulator's server) closed every connection; patched, one connection serves them all, even
    when the app leaves a request's body unread (the next request must still start where it should)."""
    from werkzeug.serving import make_server as make_wsgi_server

    install_http_fixes()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = environ["wsgi.input"].read() if environ["PATH_INFO"] == "/read" else b"left unread"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["REQUEST_METHOD"].encode() + b" " + body]

    server = make_wsgi_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.connect()
        assert connection.sock is not None
        local = connection.sock.getsockname()
        for index in range(10):
            path = "/read" if index % 2 else "/skip"
            connection.request("POST", path, body=b"x" * 5000)
            expected = b"POST " + (b"x" * 5000 if index % 2 else b"left unread")
            assert connection.getresponse().read() == expected
        connection.request("HEAD", "/skip")
        head = connection.getresponse()
        assert (head.status, head.read()) == (200, b"")
        assert connection.sock is not None and connection.sock.getsockname() == local  # 11 requests, 1 connection
    finally:
        connection.close()
        server.shutdown()
        thread.join(timeout=10)


# --- 8. the runtime's own language version --------------------------------------------------------------------


@pytest.fixture
def fresh_interpreters() -> Iterator[None]:
    find_interpreter.cache_clear()
    yield
    find_interpreter.cache_clear()


def test_a_runtime_runs_under_its_own_version_when_this_machine_has_it(fresh_interpreters: None) -> None:
    for minor in (12, 13):
        executable, version = find_interpreter(f"python3.{minor}")
        if not version.startswith(f"3.{minor}."):
            pytest.skip(f"no Python 3.{minor} here (PATH, pyenv, uv)")
        assert f"3.{minor}" in Path(executable).name or f"3.{minor}" in executable
    assert check_runtime("python3.13", []) is None


def test_compiled_code_for_a_missing_version_is_refused_pure_code_warned(
    tmp_path: Path, fresh_interpreters: None
) -> None:
    pure = tmp_path / "pure"
    (pure / "pkg").mkdir(parents=True)
    (pure / "pkg" / "__init__.py").write_text("")
    note = check_runtime("python3.99", [pure])
    assert note is not None and note.startswith("note: python3.99 runs here under Python")

    extension = tmp_path / "extension" / "fast"
    extension.mkdir(parents=True)
    (extension / "_speedups.cpython-399-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    with pytest.raises(
        DeployerError, match=r"compiled code \(3\.99\).*install Python 3\.99 \(e\.g\. `pyenv install 3\.99`\)$"
    ):
        check_runtime("python3.99", [pure, tmp_path / "extension"])

    wheel = tmp_path / "wheel" / "fast-1.0.dist-info"
    wheel.mkdir(parents=True)
    (wheel / "WHEEL").write_text("Wheel-Version: 1.0\nTag: cp399-cp399-manylinux_2_17_x86_64\n")
    with pytest.raises(DeployerError, match=r"WHEEL is compiled code \(3\.99\)"):
        check_runtime("python3.99", [tmp_path / "wheel"])


def test_a_node_addon_for_another_major_is_refused(tmp_path: Path, fresh_interpreters: None) -> None:
    if shutil.which("node") is None:
        pytest.skip("no node here")
    addon = tmp_path / "node_modules" / "fast" / "build"
    addon.mkdir(parents=True)
    assert (check_runtime("nodejs99.x", [tmp_path]) or "").startswith("note: nodejs99.x runs here under Node.js")
    (addon / "fast.node").write_bytes(b"\x7fELF")
    with pytest.raises(DeployerError, match=r"fast\.node is compiled code .*install Node\.js 99$"):
        check_runtime("nodejs99.x", [tmp_path])
