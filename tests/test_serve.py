"""`deployer serve`: real HTTP requests to the local API Gateway emulation, for Python and Node.js functions.

Each test starts the server in-process on a free port (make_server + a thread) in front of a copy of
tests/apps/serve_python or tests/apps/serve_node, whose routes (first path segment) do what the tests
ask: echo the event, count, sleep, crash, raise, reply with the request body as their result...
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deployer.config import load_config
from deployer.errors import DeployerError, UsageError
from deployer.gateway.proxy import MAX_REQUEST_BODY
from deployer.process import alive
from deployer.serve import LocalApiServer, make_server
from tests.browser import chromium_page
from tests.support import APPS, Reply, http_call, running, serve_process

REPO = Path(__file__).resolve().parent.parent
ERROR_BODY = {"message": "Internal server error"}
# Not deploy.toml's default */* (every body binary, tests/test_gateway_fidelity.py): JSON and text stay text here.
BINARY_MEDIA_TYPES = '["application/octet-stream", "image/*"]'
# runtime fixture id -> (app folder, handler, runtime)
FUNCTIONS = {
    "python": ("serve_python", "main.handler", "python3.13"),
    "node": ("serve_node", "index.handler", "nodejs22.x"),
}


@dataclass
class Served:
    server: LocalApiServer
    source: Path

    @property
    def port(self) -> int:
        return self.server.port

    def request(
        self, target: str = "/", method: str = "GET", body: bytes | None = None, headers: Sequence[tuple[str, str]] = ()
    ) -> Reply:
        return http_call(self.port, target, method, body, headers)

    def json(self, target: str) -> Any:
        reply = self.request(target)
        assert reply.status == 200, (reply.status, reply.body)
        return reply.json()

    def reply_with(self, result: Any, accept: str | None = None) -> Reply:
        """Have the function return `result` (sent as the request body) as its answer."""
        headers = [("Content-Type", "application/json")] + ([("Accept", accept)] if accept else [])
        return self.request("/reply", "POST", json.dumps(result).encode(), headers)


def write_config(
    folder: Path,
    source: str,
    handler: str,
    runtime: str,
    timeout: int,
    environment: str,
    binary_media_types: str = BINARY_MEDIA_TYPES,
) -> Path:
    path = folder / "deploy.toml"
    path.write_text(
        f"""
[app]
name = "ServeTest"
region = "eu-west-1"

[artifact]
bucket = "serve-test-artifacts"

[function]
source = "{source}"
handler = "{handler}"
runtime = "{runtime}"
memory = 256
timeout = {timeout}
environment = {{ {environment} }}

[api]
stage = "test"
binary_media_types = {binary_media_types}
"""
    )
    return path


StartServer = Callable[..., Served]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[StartServer]:
    """Starts a server for a copy of a test app, configured through a deploy.toml in tmp_path."""

    def start_server(
        runtime: str = "python",
        handler: str | None = None,
        *,
        runtime_name: str | None = None,
        timeout: int = 3,
        environment: str = 'GREETING = "hi"',
        code_dirs: list[Path] | None = None,
        binary_media_types: str = BINARY_MEDIA_TYPES,
    ) -> Served:
        folder, default_handler, default_runtime = FUNCTIONS[runtime]
        source = tmp_path / folder
        if not source.exists():
            shutil.copytree(APPS / folder, source)
        config_path = write_config(
            tmp_path,
            folder,
            handler or default_handler,
            runtime_name or default_runtime,
            timeout,
            environment,
            binary_media_types,
        )
        server = servers.enter_context(running(make_server(load_config(config_path), "127.0.0.1", 0, code_dirs)))
        return Served(server, source)

    with ExitStack() as servers:
        yield start_server


@pytest.fixture(params=list(FUNCTIONS))
def runtime(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def app(start: StartServer, runtime: str) -> Served:
    return start(runtime)


def assert_internal_error(reply: Reply) -> None:
    assert reply.status == 502
    assert reply.json() == ERROR_BODY
    assert reply.header("Content-Type") == ["application/json"]


# --- the event ---------------------------------------------------------------------------------


def test_event_for_a_proxy_path_with_repeated_query_and_headers(app: Served) -> None:
    reply = app.request("/echo/a%20b/c?x=1&x=2&y=3", headers=[("X-Multi", "one"), ("X-Multi", "two")])
    assert reply.status == 200
    event = reply.json()["event"]
    assert event["resource"] == "/{proxy+}"
    assert event["path"] == "/echo/a%20b/c"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"proxy": "echo/a%20b/c"}  # as sent, like API Gateway
    assert event["queryStringParameters"] == {"x": "2", "y": "3"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["3"]}
    assert event["headers"]["X-Multi"] == "two"
    assert event["multiValueHeaders"]["X-Multi"] == ["one", "two"]
    assert event["headers"]["Host"] == f"127.0.0.1:{app.port}"
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["headers"]["X-Forwarded-Port"] == str(app.port)
    assert event["stageVariables"] is None
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "test"
    assert context["httpMethod"] == "GET"
    assert context["resourcePath"] == "/{proxy+}"
    assert context["path"] == "/test/echo/a%20b/c"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert abs(context["requestTimeEpoch"] - time.time() * 1000) < 60_000
    for key in ("accountId", "apiId", "protocol", "domainName", "requestId"):
        assert context[key], key


def test_event_for_the_root(app: Served) -> None:
    event = app.json("/")["event"]
    assert event["resource"] == "/"
    assert event["path"] == "/"
    assert event["pathParameters"] is None
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["requestContext"]["resourcePath"] == "/"
    assert event["requestContext"]["path"] == "/test/"


def test_each_request_gets_a_fresh_request_id(app: Served) -> None:
    first, second = app.request("/echo"), app.request("/echo")
    ids = [reply.json()["event"]["requestContext"]["requestId"] for reply in (first, second)]
    assert ids[0] != ids[1]
    assert [first.header("x-amzn-RequestId"), second.header("x-amzn-RequestId")] == [[ids[0]], [ids[1]]]


def test_text_body_arrives_as_text(app: Served) -> None:
    body = json.dumps({"name": "Zoë"}).encode()
    event = app.request("/echo", "POST", body, [("Content-Type", "application/json")]).json()["event"]
    assert event["httpMethod"] == "POST"
    assert event["isBase64Encoded"] is False
    assert event["body"] == body.decode()


def test_binary_body_arrives_base64_and_round_trips(app: Served) -> None:
    payload = bytes(range(256)) * 4
    headers = [("Content-Type", "application/octet-stream")]
    event = app.request("/echo", "PUT", payload, headers).json()["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload
    # the function hands the same base64 body back: the client gets the same bytes
    answer = {"body": event["body"], "isBase64Encoded": True}
    reply = app.reply_with(
        {"statusCode": 200, "headers": {"Content-Type": "application/octet-stream"}, **answer},
        accept="application/octet-stream",  # API Gateway decodes by the request's Accept (issue 22)
    )
    assert reply.status == 200
    assert reply.body == payload


def test_a_body_over_api_gateways_limit_is_413_request_too_long(start: StartServer) -> None:
    served = start("python")
    # Only the announced length: the server refuses it before reading a byte of the body.
    reply = served.request("/echo", "POST", headers=[("Content-Length", str(MAX_REQUEST_BODY + 1))])
    assert (reply.status, reply.body) == (413, b"HTTP content length exceeded 10485760 bytes.")
    assert served.request("/echo").status == 200


# --- the response ------------------------------------------------------------------------------


def test_headers_and_multi_value_headers_are_merged_with_two_set_cookies(app: Served) -> None:
    reply = app.reply_with(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain", "X-Only-Single": "single", "X-Both": "from headers"},
            "multiValueHeaders": {"Set-Cookie": ["a=1; Path=/", "b=2; HttpOnly"], "X-Both": ["from multi"]},
            "body": "created",
        }
    )
    assert reply.status == 201
    assert reply.body == b"created"
    assert reply.header("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert reply.header("X-Both") == ["from multi", "from headers"]  # both sent, as API Gateway does (issue 22)
    assert reply.header("X-Only-Single") == ["single"]
    assert reply.header("Content-Type") == ["text/plain"]


def test_base64_response_body_is_decoded(app: Served) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    reply = app.reply_with(
        {
            "statusCode": 200,
            "headers": {"Content-Type": "image/png"},
            "body": base64.b64encode(png).decode(),
            "isBase64Encoded": True,
        },
        accept="image/png",
    )
    assert reply.status == 200
    assert reply.body == png
    assert reply.header("Content-Type") == ["image/png"]
    assert reply.header("Content-Length") == [str(len(png))]


def test_a_response_without_content_type_is_json(app: Served) -> None:
    reply = app.reply_with({"statusCode": 200, "body": "{}"})
    assert reply.header("Content-Type") == ["application/json"]


def test_head_answers_headers_without_a_body(app: Served) -> None:
    reply = app.request("/echo", "HEAD")
    assert reply.status == 200
    assert reply.body == b""
    assert int(reply.header("Content-Length")[0]) > 0


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        ([1, 2], "returned list"),
        (None, "returned null"),
        ({"statusCode": "OK", "body": "x"}, "statusCode must be an integer"),
        ({"statusCode": 200, "body": {"not": "a string"}}, "body must be a string"),
        ({"statusCode": 200, "body": "x", "cookies": ["a=1"]}, "unexpected key 'cookies'"),
    ],
)
def test_a_malformed_response_is_502_and_the_server_keeps_serving(
    app: Served, capfd: pytest.CaptureFixture[str], result: Any, reason: str
) -> None:
    assert_internal_error(app.reply_with(result))
    assert reason in capfd.readouterr().err
    assert app.reply_with({"statusCode": 200, "body": "fine"}).body == b"fine"


# --- failures ----------------------------------------------------------------------------------


def test_a_raising_function_is_502_with_the_reason_on_the_console(
    app: Served, runtime: str, capfd: pytest.CaptureFixture[str]
) -> None:
    assert_internal_error(app.request("/raise"))
    console = capfd.readouterr().err
    assert {"python": "ValueError", "node": "TypeError"}[runtime] in console
    assert "boom from the function" in console
    assert app.request("/echo").status == 200


def test_a_timeout_is_502_and_the_next_request_gets_a_fresh_worker(
    start: StartServer, runtime: str, capfd: pytest.CaptureFixture[str]
) -> None:
    served = start(runtime, timeout=1)
    pid = served.json("/pid")["pid"]
    started = time.monotonic()
    assert_internal_error(served.request("/sleep/5"))
    assert time.monotonic() - started < 3
    assert "Task timed out after 1.00 seconds" in capfd.readouterr().err
    assert served.json("/pid")["pid"] != pid
    assert served.json("/count") == {"count": 2}  # state starts again in the new worker


def test_a_crashing_worker_is_502_and_the_next_request_works(app: Served, capfd: pytest.CaptureFixture[str]) -> None:
    pid = app.json("/pid")["pid"]
    assert_internal_error(app.request("/crash"))
    assert "Runtime exited with error: exit status 1" in capfd.readouterr().err
    assert app.json("/pid")["pid"] != pid


@pytest.mark.parametrize(
    ("runtime", "handler", "reason"),
    [
        ("python", "nomodule.handler", "Unable to import module 'nomodule'"),
        ("python", "main.nothere", "Handler 'nothere' missing on module 'main'"),
        ("node", "nomodule.handler", "Cannot find module 'nomodule'"),
        ("node", "index.nothere", "index.nothere is undefined or not exported"),
    ],
)
def test_a_missing_handler_still_starts_and_answers_502_with_the_reason(
    start: StartServer, capfd: pytest.CaptureFixture[str], runtime: str, handler: str, reason: str
) -> None:
    served = start(runtime, handler)
    assert_internal_error(served.request("/"))
    assert reason in capfd.readouterr().err
    assert_internal_error(served.request("/"))  # and again: the server is still there


# --- the warm worker ---------------------------------------------------------------------------


def test_module_state_is_kept_between_requests(app: Served) -> None:
    assert [app.json("/count")["count"] for _ in range(3)] == [1, 2, 3]


def test_editing_a_source_file_restarts_the_worker_with_the_new_code(
    app: Served, runtime: str, capfd: pytest.CaptureFixture[str]
) -> None:
    assert app.json("/version") == {"version": "v1"}
    assert app.json("/count") == {"count": 2}
    module = app.source / {"python": "main.py", "node": "index.js"}[runtime]
    quote = {"python": '"', "node": "'"}[runtime]
    module.write_text(module.read_text().replace(f"VERSION = {quote}v1{quote}", f"VERSION = {quote}v2-edited{quote}"))
    assert app.json("/version") == {"version": "v2-edited"}
    assert app.json("/count") == {"count": 2}  # a new process: state starts again
    assert "changed: reloading the function" in capfd.readouterr().err


# --- console, context, environment -------------------------------------------------------------


def test_function_output_and_one_line_per_request_reach_the_console(
    app: Served, capfd: pytest.CaptureFixture[str]
) -> None:
    app.json("/print")
    app.reply_with({"statusCode": 418, "body": "teapot"})
    console = capfd.readouterr().err
    assert "hello from the function" in console
    assert re.search(r"^GET /print 200 \d+ms$", console, re.MULTILINE), console
    assert re.search(r"^POST /reply 418 \d+ms$", console, re.MULTILINE), console


def test_the_handler_gets_a_lambda_context(app: Served, runtime: str) -> None:
    context = app.json("/context")
    assert context["functionName"] == "ServeTest"
    assert context["functionVersion"] == "$LATEST"
    assert str(context["memoryLimitInMB"]) == "256"
    assert re.fullmatch(r"[0-9a-f-]{36}", context["awsRequestId"])
    assert context["invokedFunctionArn"] == "arn:aws:lambda:eu-west-1:123456789012:function:ServeTest"
    assert context["logGroupName"] == "/aws/lambda/ServeTest"
    assert 0 < context["remainingTimeInMillis"] <= 3000
    if runtime == "node":
        assert context["callbackWaitsForEmptyEventLoop"] is True
    assert app.json("/context")["awsRequestId"] != context["awsRequestId"]


def test_environment_is_lambdas_plus_deploy_toml_without_the_callers_credentials(
    start: StartServer, runtime: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDCALLER")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "caller-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "caller-token")
    served = start(runtime, environment='GREETING = "hi", TABLE = "things"')
    answer = served.json("/env")
    environment = answer["env"]
    assert environment["GREETING"] == "hi"
    assert environment["TABLE"] == "things"
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == "ServeTest"
    assert environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert environment["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert environment["AWS_REGION"] == "eu-west-1"
    assert environment["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{FUNCTIONS[runtime][2]}"
    assert environment["LAMBDA_TASK_ROOT"] == str(served.source)
    assert answer["cwd"] == str(served.source)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        assert name not in environment
    assert "caller-secret" not in json.dumps(environment)


def test_a_python_function_cannot_import_the_tools_packages_but_sees_code_dirs(start: StartServer) -> None:
    served = start("python", code_dirs=[APPS / "serve_libs" / "python"])
    assert served.json("/imports") == {"boto3": False, "typer": False, "helperlib": True}


def test_a_node_function_finds_packages_in_code_dirs(start: StartServer) -> None:
    assert start("node").json("/imports") == {"helperlib": False}
    assert start("node", code_dirs=[APPS / "serve_libs" / "node"]).json("/imports") == {"helperlib": True}


# --- Node.js handler styles --------------------------------------------------------------------


def test_node_callback_style_handler(start: StartServer) -> None:
    served = start("node", "callback.handler")
    reply = served.request("/")
    assert (reply.status, reply.body) == (201, b"callback style for ServeTest")
    assert reply.header("Content-Type") == ["text/plain"]


@pytest.mark.parametrize(("path", "reason"), [("/raise", "boom from the callback"), ("/throw", "RangeError")])
def test_node_callback_error_or_throw_is_502(
    start: StartServer, capfd: pytest.CaptureFixture[str], path: str, reason: str
) -> None:
    served = start("node", "callback.handler")
    assert_internal_error(served.request(path))
    assert reason in capfd.readouterr().err
    assert served.request("/").status == 201


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/raise", "TypeError: boom from the function"),
        ("/reject", "Error: rejected by the function"),
        ("/unhandled", "Runtime.UnhandledPromiseRejection"),
    ],
)
def test_node_async_throw_or_rejection_is_502(
    start: StartServer, capfd: pytest.CaptureFixture[str], path: str, reason: str
) -> None:
    served = start("node")
    assert_internal_error(served.request(path))
    assert reason in capfd.readouterr().err
    assert served.request("/echo").status == 200


def test_nodejs24_refuses_a_callback_handler(start: StartServer, capfd: pytest.CaptureFixture[str]) -> None:
    served = start("node", "callback.handler", runtime_name="nodejs24.x")
    assert_internal_error(served.request("/"))
    assert "Runtime.CallbackHandlerDeprecated" in capfd.readouterr().err


# --- starting and stopping ---------------------------------------------------------------------


def test_serve_prints_the_url_and_stops_on_ctrl_c_killing_its_worker(tmp_path: Path) -> None:
    shutil.copytree(APPS / "serve_python", tmp_path / "serve_python")
    config = write_config(tmp_path, "serve_python", "main.handler", "python3.13", 3, "")
    script = (
        "import sys; from pathlib import Path; from deployer.config import load_config; "
        "from deployer.serve import serve; serve(load_config(Path(sys.argv[1])), port=0)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found, line
        pid = http_call(int(found.group(1)), "/pid").json()["pid"]
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert "GET /pid 200" in err
    assert not alive(pid)


@pytest.mark.network  # installs six from PyPI
def test_the_serve_command_runs_the_function_with_its_bundled_dependencies(tmp_path: Path) -> None:
    """`deployer serve` serves what would be deployed: the source plus requirements.txt, built for Lambda."""
    shutil.copy(REPO / "deploy.toml", tmp_path / "deploy.toml")
    (tmp_path / "function").mkdir()
    (tmp_path / "function" / "requirements.txt").write_text("six==1.17.0\n")
    (tmp_path / "function" / "main.py").write_text(
        "import six\n\ndef handler(event, context):\n"
        "    return {'statusCode': 200, 'body': 'six ' + six.__version__ + ' from ' + six.__file__}\n"
    )
    with serve_process(tmp_path) as port:
        body = http_call(port, "/").body.decode()
    assert body.startswith("six 1.17.0 from ") and "/.deployer/cache/dependencies/" in body, body


def test_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    shutil.copytree(APPS / "serve_python", tmp_path / "serve_python")
    config = load_config(write_config(tmp_path, "serve_python", "main.handler", "python3.13", 3, ""))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(DeployerError, match=rf"cannot listen on 127\.0\.0\.1:{port}"):
            make_server(config, "127.0.0.1", port)


def test_a_missing_source_folder_is_a_usage_error(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "nowhere", "main.handler", "python3.13", 3, ""))
    with pytest.raises(UsageError, match="is not a folder"):
        make_server(config, "127.0.0.1", 0)


def test_chromium_renders_the_example_app(tmp_path: Path) -> None:
    with running(make_server(load_config(REPO / "deploy.toml"), "127.0.0.1", 0)) as server:
        assert "Hello world!" in chromium_page(server.url, tmp_path / "chromium-profile")
