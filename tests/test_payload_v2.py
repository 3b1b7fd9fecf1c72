"""Payload format 2.0 (issue 26, the data plane): the event an HTTP API or a function URL gives the function, the
answer it makes of the function's result, each door's limits, under `deployer serve` and the local cloud.

Sources of the fields, named at each test: AWS's "Working with AWS Lambda proxy integrations for HTTP APIs"
(https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html, HTTP-DOC
below), "Lambda function URLs: invoking" (https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html, URL-DOC),
and LocalStack's function URL router (localstack-core/localstack/services/lambda_/urlrouter.py, LS-URL).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from deployer.cli import app
from deployer.config import load_config
from deployer.gateway import http_api
from deployer.gateway.proxy import forwarded_headers
from deployer.local.doors import DoorRequest, Doors, door_host
from deployer.local.functions import Functions
from deployer.local.patches import install_function_url_qualifier, install_lambda_fixes
from deployer.serve import make_server
from tests.support import ACCOUNT, REGION, Reply, http_call, make_function, make_http_api, running, serve_process

# Answers with the event it got; /reply/... answers the request body's JSON as its result; /sleep/N sleeps.
FUNCTION = """
import base64, json, time

def handler(event, context):
    route = event["rawPath"].strip("/").split("/")
    if "reply" in route:
        body = event["body"]
        return json.loads(base64.b64decode(body) if event["isBase64Encoded"] else body)
    if "sleep" in route:
        time.sleep(float(route[-1]))
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(event)}
"""


# --- the event --------------------------------------------------------------------------------------------------


def test_the_event_is_aws_documented_payload_2_0() -> None:
    """HTTP-DOC's example event ("Payload format version 2.0"), made from the request it describes: every field
    as documented. Two differences are the request's own: its Content-Type (text/plain: a body without one is
    base64-encoded, LS-URL) and the trace id API Gateway adds to the headers."""
    headers = [
        ("Header1", "value1"),
        ("Header2", "value1"),
        ("Header2", "value2"),  # HTTP-DOC: "header2": "value1,value2"
        ("Cookie", "cookie1; cookie2"),  # HTTP-DOC: "cookies": ["cookie1", "cookie2"], no cookie header left
        ("Host", "id.execute-api.us-east-1.amazonaws.com"),
        ("User-Agent", "agent"),
        ("Content-Type", "text/plain"),
        ("X-Amzn-Trace-Id", "Root=1-5e6722a7-cc56xmpl46db7ae02d4da47e"),
    ]
    event = http_api.build_event(
        "POST",
        "/my/path",
        "parameter1=value1&parameter1=value2&parameter2=value",
        headers,
        b"Hello from Lambda",
        api_id="api-id",
        account_id="123456789012",
        source_ip="192.0.2.1",
        request_id="id",
        now_ms=1583348638390,
        path_parameters={"parameter1": "value1"},
        stage_variables={"stageVariable1": "value1", "stageVariable2": "value2"},
    )
    assert event == {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/my/path",
        "rawQueryString": "parameter1=value1&parameter1=value2&parameter2=value",
        "cookies": ["cookie1", "cookie2"],
        "headers": {
            "header1": "value1",
            "header2": "value1,value2",
            "host": "id.execute-api.us-east-1.amazonaws.com",
            "user-agent": "agent",
            "content-type": "text/plain",
            "x-amzn-trace-id": "Root=1-5e6722a7-cc56xmpl46db7ae02d4da47e",
        },
        "queryStringParameters": {"parameter1": "value1,value2", "parameter2": "value"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api-id",
            "domainName": "id.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "id",
            "http": {
                "method": "POST",
                "path": "/my/path",
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "agent",
            },
            "requestId": "id",
            "routeKey": "$default",
            "stage": "$default",
            "time": "04/Mar/2020:19:03:58 +0000",  # HTTP-DOC's example says 12/Mar for this very timeEpoch
            "timeEpoch": 1583348638390,
        },
        "body": "Hello from Lambda",
        "pathParameters": {"parameter1": "value1"},
        "isBase64Encoded": False,
        "stageVariables": {"stageVariable1": "value1", "stageVariable2": "value2"},
    }


def test_a_function_url_event_is_anonymous_and_leaves_out_what_the_request_lacks() -> None:
    """URL-DOC's request payload: accountId "anonymous" without IAM auth, routeKey and stage "$default"; no
    cookies, query parameters or body keys when the request has none (LS-URL pops `body` likewise)."""
    event = http_api.build_event(
        "GET", "/", "", [("Host", "abc.lambda-url.us-east-1.on.aws")], b"", api_id="abc", account_id="anonymous"
    )
    assert event["requestContext"]["accountId"] == "anonymous"
    assert (event["routeKey"], event["requestContext"]["stage"]) == ("$default", "$default")
    assert event["requestContext"]["domainPrefix"] == "abc"
    for absent in ("cookies", "queryStringParameters", "body", "pathParameters", "stageVariables"):
        assert absent not in event
    assert event["isBase64Encoded"] is False


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/json", b'{"a": 1}', ('{"a": 1}', False)),
        ("text/html; charset=utf-8", "café".encode(), ("café", False)),
        ("application/xml", b"<a/>", ("<a/>", False)),
        # HTTP APIs pass a form post base64-encoded (HTTP-DOC: isBase64Encoded for non-text bodies)
        ("application/x-www-form-urlencoded", b"a=1", ("YT0x", True)),
        ("image/png", b"\x89PNG", ("iVBORw==", True)),
        (None, b"raw", ("cmF3", True)),  # LS-URL: no text Content-Type, base64
        ("application/json", b"\xff\xfe", ("//4=", True)),  # not UTF-8 whatever the header says: nothing lost
    ],
)
def test_a_body_is_text_or_base64_by_its_content_type(
    content_type: str | None, body: bytes, expected: tuple[str, bool]
) -> None:
    headers = [("Content-Type", content_type)] if content_type else []
    event = http_api.build_event("POST", "/", "", headers, body, api_id="x")
    assert (event["body"], event["isBase64Encoded"]) == expected


# --- the answer ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "status", "content_type", "body"),
    [
        # HTTP-DOC "Lambda function response for format 2.0": valid JSON without statusCode is a 200, that JSON
        # the body, content-type application/json.
        ({"hello": "world"}, 200, "application/json", b'{"hello": "world"}'),
        ([1, 2], 200, "application/json", b"[1, 2]"),
        ("plain words", 200, "application/json", b"plain words"),  # a string is the body as it is (LS-URL)
        ({"statusCode": 201, "body": "made"}, 201, "application/json", b"made"),
        ({"statusCode": "204"}, 204, "application/json", b""),
        (
            {"statusCode": 200, "headers": {"Content-Type": "image/png"}, "isBase64Encoded": True, "body": "iVBORw=="},
            200,
            "image/png",
            b"\x89PNG",
        ),
    ],
)
def test_the_answer_is_inferred_as_aws_infers_it(result: Any, status: int, content_type: str, body: bytes) -> None:
    answered_status, headers, payload = http_api.to_http_response(result)
    assert (answered_status, payload) == (status, body)
    assert [value for name, value in headers if name.lower() == "content-type"] == [content_type]


def test_cookies_in_the_answer_become_set_cookie_headers() -> None:
    """HTTP-DOC: "cookies" in a 2.0 response are sent as Set-Cookie headers, one each."""
    _, headers, _ = http_api.to_http_response(
        {"statusCode": 200, "cookies": ["a=1; Path=/", "b=2; HttpOnly"], "body": ""}
    )
    assert [value for name, value in headers if name == "Set-Cookie"] == ["a=1; Path=/", "b=2; HttpOnly"]


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": "two hundred"},
        {"statusCode": 200, "headers": ["x"]},
        {"statusCode": 200, "cookies": "a=1"},
        {"statusCode": 200, "isBase64Encoded": True, "body": "not base64!"},
    ],
)
def test_a_malformed_answer_is_the_doors_502(result: Any) -> None:
    """HTTP API: 502 {"message":"Internal Server Error"}; function URL: a plain-text 502 (LS-URL)."""
    for door, body in ((http_api.HTTP_API, b'{"message":"Internal Server Error"}'), (http_api.FUNCTION_URL, None)):
        reasons: list[str] = []

        def report(reason: str, details: Any, told: list[str] = reasons) -> None:
            told.append(reason)

        status, _, payload = http_api.answer_from_function(lambda event: result, {}, report, door, 3)
        assert status == 502 and reasons
        assert payload == (body or b"Internal Server Error")


def test_each_doors_limits_are_awss() -> None:
    """HTTP API quotas: 30 s integration timeout, 10 MB payload; function URLs: 6 MB request and response, the
    function's own timeout (urls-invocation)."""
    assert (http_api.HTTP_API.timeout, http_api.HTTP_API.max_request_body) == (30.0, 10 * 1024 * 1024)
    assert http_api.FUNCTION_URL.timeout is None
    assert http_api.FUNCTION_URL.max_request_body == http_api.FUNCTION_URL.max_payload == 6 * 1024 * 1024


# --- deployer serve ----------------------------------------------------------------------------------------------


@pytest.fixture
def serve_door(tmp_path: Path) -> Iterator[Any]:
    """`deployer serve` of FUNCTION as the door asked for (stage "test", function timeout `timeout`)."""
    contexts: list[Any] = []

    def start(door: http_api.FrontDoor, timeout: int = 5, stage: str = "test") -> int:
        source = tmp_path / f"function{len(contexts)}"
        source.mkdir()
        (source / "main.py").write_text(FUNCTION)
        config = tmp_path / f"deploy{len(contexts)}.toml"
        config.write_text(
            f'[app]\nname = "Doors"\nregion = "eu-west-1"\n[artifact]\nbucket = "doors-artifacts"\n'
            f'[function]\nsource = "{source.name}"\nhandler = "main.handler"\nruntime = "python3.13"\n'
            f'timeout = {timeout}\n[api]\nstage = "test"\n'
        )
        loaded = dataclasses.replace(load_config(config), stage=stage)
        context = running(make_server(loaded, "127.0.0.1", 0, front_door=door))
        contexts.append(context)
        return context.__enter__().port  # type: ignore[no-any-return]

    yield start
    for context in reversed(contexts):
        context.__exit__(None, None, None)


def test_serve_as_an_http_api_gives_the_function_a_2_0_event_with_the_stage_in_its_path(serve_door: Any) -> None:
    port = serve_door("http")
    reply = http_call(port, "/test/items/7?tag=a&tag=b", headers=[("Cookie", "s=1; t=2"), ("X-Twice", "1")])
    event = reply.json()
    assert (reply.status, event["version"], event["rawPath"]) == (200, "2.0", "/test/items/7")
    assert event["requestContext"]["stage"] == "test" and event["requestContext"]["http"]["method"] == "GET"
    assert event["queryStringParameters"] == {"tag": "a,b"} and event["cookies"] == ["s=1", "t=2"]
    assert event["headers"]["x-forwarded-port"] == str(port) and reply.header("apigw-requestid")
    # Outside the stage, nothing is routed: the HTTP API's own 404.
    missing = http_call(port, "/items/7")
    assert (missing.status, missing.body) == (404, b'{"message":"Not Found"}')


def test_serve_as_a_default_stage_http_api_or_a_function_url_has_no_stage_in_the_path(serve_door: Any) -> None:
    for door, stage in (("http", "$default"), ("url", "test")):
        event = http_call(serve_door(door, stage=stage), "/items/7").json()
        assert (event["rawPath"], event["requestContext"]["stage"]) == ("/items/7", "$default")
    url_event = http_call(serve_door("url"), "/").json()
    assert url_event["requestContext"]["accountId"] == "anonymous"


def test_serve_infers_the_answer_and_sends_cookies_as_set_cookie(serve_door: Any) -> None:
    port = serve_door("url")
    bare = http_call(port, "/reply", "POST", b'{"made": true}', [("Content-Type", "application/json")])
    assert (bare.status, bare.json(), bare.header("Content-Type")) == (200, {"made": True}, ["application/json"])
    answer = {"statusCode": 200, "cookies": ["a=1", "b=2"], "body": "ok"}
    with_cookies = http_call(port, "/reply", "POST", json.dumps(answer).encode(), [("Content-Type", "text/plain")])
    assert with_cookies.header("Set-Cookie") == ["a=1", "b=2"] and with_cookies.body == b"ok"
    broken = http_call(port, "/reply", "POST", b'{"statusCode": "x"}', [("Content-Type", "application/json")])
    assert (broken.status, broken.body) == (502, b"Internal Server Error")


def test_serve_enforces_each_doors_request_size(serve_door: Any) -> None:
    """Over 10 MB for an HTTP API, over 6 MB for a function URL: 413 before the function runs. Between 6 and 10 MB,
    an HTTP API takes the body but Lambda refuses the event: 413 all the same."""
    http_port, url_port = serve_door("http"), serve_door("url")
    # Only the announced length: the server refuses it before reading a byte of the body.
    over_ten = [("Content-Length", str(10 * 1024 * 1024 + 1))]
    refused = http_call(http_port, "/test/", "POST", headers=over_ten)
    assert (refused.status, refused.body) == (413, b'{"message":"Request Entity Too Large"}')
    seven = b"x" * (7 * 1024 * 1024)
    assert http_call(http_port, "/test/", "POST", seven, [("Content-Type", "text/plain")]).status == 413
    refused = http_call(url_port, "/", "POST", headers=[("Content-Length", str(len(seven)))])
    assert (refused.status, refused.body) == (413, b'{"Message":"Request Entity Too Large"}')
    five = b"x" * (5 * 1024 * 1024)
    assert http_call(url_port, "/", "POST", five, [("Content-Type", "text/plain")]).status == 200


def test_serve_times_out_as_each_door_does(serve_door: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An HTTP API answers 503 Service Unavailable when its integration's 30 s are up (scaled down here); a
    function URL waits for the function, whose own timeout (1 s) makes it fail: a 502."""
    monkeypatch.setitem(http_api.DOORS, "http", dataclasses.replace(http_api.HTTP_API, timeout=0.5))
    late = http_call(serve_door("http"), "/test/sleep/3")
    assert (late.status, late.body) == (503, b'{"message":"Service Unavailable"}')
    failed = http_call(serve_door("url", timeout=1), "/sleep/3")
    assert (failed.status, failed.body) == (502, b"Internal Server Error")


# --- the local cloud's doors, over in-process moto ----------------------------------------------------------------


@dataclasses.dataclass
class Deployed:
    clients: dict[str, Any]
    doors: Doors
    alias_arn: str


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Deployed]:
    """FUNCTION behind its alias `test` in in-process moto, and the local cloud's doors over it."""
    install_lambda_fixes()
    install_function_url_qualifier()
    functions = Functions(tmp_path / "code", lambda _: None)
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        clients = {name: session.client(name) for name in ("iam", "lambda", "apigatewayv2")}
        yield Deployed(clients, Doors(functions, lambda _: None), make_function(clients, FUNCTION, name="doors"))
    functions.close()


def make_function_url(deployed: Deployed, auth: str = "NONE", grant: bool = True) -> str:
    """A function URL on the alias, as `up` makes one for `[api] type = "url"`, and (NONE) the statement AWS
    documents for it: everyone may lambda:InvokeFunctionUrl when lambda:FunctionUrlAuthType is NONE."""
    made = deployed.clients["lambda"].create_function_url_config(FunctionName="doors", Qualifier="test", AuthType=auth)
    assert made["FunctionArn"].endswith(":doors:test")  # the alias's, as Lambda names it
    if auth == "NONE" and grant:
        deployed.clients["lambda"].add_permission(
            FunctionName="doors",
            Qualifier="test",
            StatementId="FunctionURLAllowPublicAccess",
            Action="lambda:InvokeFunctionUrl",
            Principal="*",
            FunctionUrlAuthType="NONE",
        )
    return made["FunctionUrl"].split("://", 1)[1].split(".", 1)[0]  # type: ignore[no-any-return]


def ask(deployed: Deployed, kind: http_api.FrontDoor, door_id: str, target: str, **options: Any) -> Reply:
    path, _, query = target.partition("?")
    host = f"{door_id}.{'execute-api' if kind == 'http' else 'lambda-url'}.localhost:4566"
    request = DoorRequest(
        kind=kind,
        id=door_id,
        method=options.get("method", "GET"),
        path=path,
        query=query,
        headers=forwarded_headers([("Host", host), *options.get("headers", [])], "127.0.0.1", 4566),
        body=options.get("body", b""),
        source_ip="127.0.0.1",
        signed_by=options.get("signed_by"),
    )
    return Reply(*deployed.doors.answer(request))


def test_the_local_http_api_runs_the_alias_behind_its_stage(deployed: Deployed) -> None:
    api_id = make_http_api(deployed.clients, deployed.alias_arn, "doors", "test")
    reply = ask(deployed, "http", api_id, "/test/a/b?x=1")
    event = reply.json()
    assert reply.status == 200
    assert (event["rawPath"], event["requestContext"]["stage"], event["requestContext"]["apiId"]) == (
        "/test/a/b",
        "test",
        api_id,
    )
    assert event["requestContext"]["accountId"] == ACCOUNT and event["queryStringParameters"] == {"x": "1"}
    assert ask(deployed, "http", api_id, "/prod/a").status == 404  # no such stage
    assert ask(deployed, "http", "nosuchapi", "/test/a").status == 404


def test_the_local_http_api_needs_the_functions_permission(deployed: Deployed) -> None:
    api_id = make_http_api(deployed.clients, deployed.alias_arn, "doors", "test", grant=False)
    refused = ask(deployed, "http", api_id, "/test/")
    assert (refused.status, refused.body) == (500, b'{"message":"Internal Server Error"}')


def test_a_default_stage_http_api_routes_by_method_and_path(deployed: Deployed) -> None:
    api_id = make_http_api(deployed.clients, deployed.alias_arn, "doors")
    gateway = deployed.clients["apigatewayv2"]
    integration = gateway.get_integrations(ApiId=api_id)["Items"][0]["IntegrationId"]
    gateway.create_route(ApiId=api_id, RouteKey="GET /items/{id}", Target=f"integrations/{integration}")
    event = ask(deployed, "http", api_id, "/items/42").json()
    assert (event["rawPath"], event["routeKey"], event["pathParameters"]) == (
        "/items/42",
        "GET /items/{id}",
        {"id": "42"},
    )
    assert ask(deployed, "http", api_id, "/other").json()["routeKey"] == "$default"


def test_a_function_url_open_to_all_runs_the_alias(deployed: Deployed) -> None:
    url_id = make_function_url(deployed)
    event = ask(deployed, "url", url_id, "/hello?a=1").json()
    assert (event["rawPath"], event["requestContext"]["accountId"]) == ("/hello", "anonymous")
    assert ask(deployed, "url", "0" * 32, "/").body == b'{"Message":null}'


def test_a_function_url_without_the_public_statement_is_forbidden(deployed: Deployed) -> None:
    url_id = make_function_url(deployed, grant=False)
    refused = ask(deployed, "url", url_id, "/")
    assert (refused.status, refused.body) == (403, b'{"Message":"Forbidden"}')


def test_an_iam_function_url_wants_a_signed_request(deployed: Deployed) -> None:
    url_id = make_function_url(deployed, auth="AWS_IAM")
    assert ask(deployed, "url", url_id, "/").status == 403
    signed = ask(deployed, "url", url_id, "/", signed_by="LOCLEXAMPLE")
    assert signed.status == 200
    assert signed.json()["requestContext"]["authorizer"]["iam"]["accessKey"] == "LOCLEXAMPLE"


def test_door_hosts_are_recognised_on_this_port_only() -> None:
    assert door_host("abc123.execute-api.localhost:4566", 4566) == ("http", "abc123")
    assert door_host("ABC.lambda-url.localhost", 4566) == ("url", "abc")
    assert door_host("abc123.execute-api.localhost:9999", 4566) is None
    assert door_host("api.example.com.localhost:4566", 4566) is None  # a custom domain's, not a door's


def test_base64_bodies_reach_a_local_function_url_and_come_back(deployed: Deployed) -> None:
    url_id = make_function_url(deployed)
    answer = {"statusCode": 200, "headers": {"content-type": "image/png"}, "isBase64Encoded": True, "body": "iVBORw=="}
    body = json.dumps(answer).encode()
    reply = ask(deployed, "url", url_id, "/reply", method="POST", body=body, headers=[("Content-Type", "app/x")])
    assert (reply.status, reply.body) == (200, base64.b64decode("iVBORw=="))


# --- the command ---------------------------------------------------------------------------------------------------


def test_serve_type_flag_plays_the_door_it_names(tmp_path: Path) -> None:
    """`deployer serve --type http` serves as the deployed HTTP API does, from its `$default` stage: at the root
    (no stage in the URL or in rawPath), with a 2.0 event."""
    (tmp_path / "function").mkdir()
    (tmp_path / "function" / "main.py").write_text(FUNCTION)
    (tmp_path / "deploy.toml").write_text(
        '[app]\nname = "Doors"\nregion = "us-east-1"\n[artifact]\nbucket = "doors-artifacts"\n'
        '[function]\nsource = "function"\nhandler = "main.handler"\nruntime = "python3.13"\n'
    )
    with serve_process(tmp_path, "--type", "http", listening=r"on http://127\.0\.0\.1:(\d+)/ as an HTTP API") as port:
        event = http_call(port, "/hi").json()
    assert (event["version"], event["rawPath"], event["requestContext"]["stage"]) == ("2.0", "/hi", "$default")


def test_serve_refuses_a_type_that_is_no_front_door(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--type", "soap", "--config", str(tmp_path / "deploy.toml")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: --type 'soap' is not a front door; use one of rest, http, url"
    ]


# --- CORS (the data plane of `[api] cors`) ------------------------------------------------------------------------

CORS = {
    "AllowOrigins": ["https://app.example"],
    "AllowMethods": ["GET", "POST"],
    "AllowHeaders": ["content-type"],
    "ExposeHeaders": ["x-total"],
    "MaxAge": 300,
}


def test_a_function_urls_cors_answers_the_preflight_and_marks_the_answer(deployed: Deployed) -> None:
    """urls-configuration "CORS": the URL answers a preflight itself and adds its CORS headers to the function's
    answers, for an allowed origin only."""
    url_id = make_function_url(deployed)
    deployed.clients["lambda"].update_function_url_config(FunctionName="doors", Cors=CORS)
    asking = [("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST")]
    preflight = ask(deployed, "url", url_id, "/", method="OPTIONS", headers=asking)
    assert preflight.status == 204 and preflight.body == b""
    assert preflight.header("Access-Control-Allow-Origin") == ["https://app.example"]
    assert preflight.header("Access-Control-Allow-Methods") == ["GET,POST"]
    assert preflight.header("Access-Control-Max-Age") == ["300"]
    answer = ask(deployed, "url", url_id, "/", headers=[("Origin", "https://app.example")])
    assert answer.status == 200 and answer.json()["rawPath"] == "/"
    assert answer.header("Access-Control-Allow-Origin") == ["https://app.example"]
    assert answer.header("Access-Control-Expose-Headers") == ["x-total"]
    other = ask(deployed, "url", url_id, "/", headers=[("Origin", "https://evil.example")])
    assert other.status == 200 and other.header("Access-Control-Allow-Origin") == []


def test_an_http_apis_cors_configuration_answers_the_preflight(deployed: Deployed) -> None:
    """http-api-cors: with a CORS configuration, API Gateway answers preflight requests itself."""
    api_id = make_http_api(deployed.clients, deployed.alias_arn, "doors", "test")
    deployed.clients["apigatewayv2"].update_api(ApiId=api_id, CorsConfiguration={**CORS, "AllowOrigins": ["*"]})
    asking = [("Origin", "https://any.example"), ("Access-Control-Request-Method", "GET")]
    preflight = ask(deployed, "http", api_id, "/test/x", method="OPTIONS", headers=asking)
    assert (preflight.status, preflight.header("Access-Control-Allow-Origin")) == (204, ["*"])
    answer = ask(deployed, "http", api_id, "/test/x", headers=[("Origin", "https://any.example")])
    assert (answer.status, answer.header("Access-Control-Allow-Origin")) == (200, ["*"])
