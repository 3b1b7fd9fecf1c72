"""deployer.gateway: API Gateway's REST proxy contract (payload 1.0), its own answers and the Lambda integration."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from deployer.gateway.answers import (
    BAD_GATEWAY,
    ENDPOINT_TIMED_OUT,
    INTERNAL_SERVER_ERROR,
    MISSING_AUTHENTICATION_TOKEN,
    REQUEST_TOO_LONG,
)
from deployer.gateway.integration import (
    FUNCTION_ARN,
    INTEGRATION_URI,
    FunctionError,
    answer_from_function,
    execute_api_arn,
    lambda_integration_uri,
)
from deployer.gateway.proxy import MalformedResponseError, build_event, forwarded_headers, to_http_response

HEADERS = [("Host", "127.0.0.1:3000"), ("User-Agent", "pytest"), ("X-Multi", "one"), ("x-multi", "two")]


def event_for(
    path: str = "/",
    query: str = "",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    method: str = "GET",
    **options: Any,
) -> dict[str, Any]:
    return build_event(method, path, query, HEADERS if headers is None else headers, body, "test", **options)


def test_proxy_path_gives_the_proxy_resource_and_path_parameter_as_sent() -> None:
    event = event_for("/a/b%20c/")
    assert event["resource"] == "/{proxy+}"
    assert event["path"] == "/a/b%20c/"  # as sent, like API Gateway
    assert event["pathParameters"] == {"proxy": "a/b%20c"}  # not decoded, no trailing slash, like API Gateway
    assert event["requestContext"]["resourcePath"] == "/{proxy+}"
    assert event["requestContext"]["path"] == "/test/a/b%20c/"


def test_root_path_gives_the_root_resource_and_no_path_parameters() -> None:
    event = event_for("/")
    assert event["resource"] == "/"
    assert event["pathParameters"] is None
    assert event["requestContext"]["resourcePath"] == "/"
    assert event["requestContext"]["path"] == "/test/"


def test_an_explicit_resource_path_is_kept() -> None:
    event = event_for("/api/users/7", resource_path="/api/{proxy+}")
    assert event["resource"] == "/api/{proxy+}"
    assert event["pathParameters"] == {"proxy": "users/7"}
    assert event_for("/health", resource_path="/health")["pathParameters"] is None


def test_query_string_single_value_form_keeps_the_last_value() -> None:
    event = event_for("/q", "x=1&x=2&y=a+b%2Bc&empty=")
    assert event["queryStringParameters"] == {"x": "2", "y": "a b+c", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["a b+c"], "empty": [""]}


def test_empty_query_string_and_body_are_null_and_headers_have_api_gateways_own() -> None:
    event = event_for("/", headers=[])
    for key in ("queryStringParameters", "multiValueQueryStringParameters", "body"):
        assert event[key] is None, key
    assert list(event["headers"]) == ["X-Amzn-Trace-Id"]
    assert event["stageVariables"] is None
    assert event["isBase64Encoded"] is False


def test_repeated_headers_fold_case_insensitively_last_value_wins() -> None:
    event = event_for()
    assert event["headers"]["X-Multi"] == "two"
    assert event["multiValueHeaders"]["X-Multi"] == ["one", "two"]
    assert event["multiValueHeaders"]["Host"] == ["127.0.0.1:3000"]


def test_request_context_fields() -> None:
    event = event_for("/x", method="POST", source_ip="10.1.2.3", request_id="rid-1", now_ms=1_700_000_000_123)
    context = event["requestContext"]
    assert event["httpMethod"] == context["httpMethod"] == "POST"
    assert context["stage"] == "test"
    assert context["requestId"] == "rid-1"
    assert context["requestTimeEpoch"] == 1_700_000_000_123
    assert context["requestTime"] == "14/Nov/2023:22:13:20 +0000"
    assert context["identity"]["sourceIp"] == "10.1.2.3"
    assert context["identity"]["userAgent"] == "pytest"
    assert context["domainName"] == "127.0.0.1:3000"
    assert context["protocol"] == "HTTP/1.1"
    assert context["accountId"] and context["apiId"]


def test_request_id_is_fresh_for_each_request() -> None:
    assert event_for()["requestContext"]["requestId"] != event_for()["requestContext"]["requestId"]


@pytest.mark.parametrize(
    ("content_type", "body", "encoded"),
    [
        ("application/json", b'{"a": "\xc3\xa9"}', False),
        ("text/plain; charset=utf-8", b"hello", False),
        ("application/vnd.api+json", b"{}", False),
        ("", b"no content type", False),
        ("application/octet-stream", b"plain ascii but binary type", True),
        ("image/png", bytes(range(256)), True),
    ],
)
def test_binary_bodies_are_base64_and_text_bodies_are_not(content_type: str, body: bytes, encoded: bool) -> None:
    headers = [("Content-Type", content_type)] if content_type else []
    binary = ("application/octet-stream", "image/*")
    event = event_for("/upload", headers=headers, body=body, method="POST", binary_media_types=binary)
    assert event["isBase64Encoded"] is encoded
    assert (base64.b64decode(event["body"]) if encoded else event["body"].encode()) == body


def test_response_headers_merge_and_multi_value_wins() -> None:
    status, headers, body = to_http_response(
        {
            "statusCode": 201,
            "headers": {"X-Single": "s", "set-cookie": "lost=1", "Content-Type": "text/plain"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "X-Number": [7]},
            "body": "made",
        }
    )
    assert status == 201
    assert body == b"made"
    assert headers == [  # both forms are sent, multi-value first (issue 22)
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("X-Number", "7"),
        ("X-Single", "s"),
        ("set-cookie", "lost=1"),
        ("Content-Type", "text/plain"),
    ]


def test_response_defaults_to_json_content_type_and_empty_body() -> None:
    assert to_http_response({"statusCode": 204}) == (204, [("Content-Type", "application/json")], b"")


def test_response_body_is_base64_decoded_when_flagged_and_binary() -> None:
    payload = bytes(range(256))
    result = {"statusCode": 200, "body": base64.b64encode(payload).decode(), "isBase64Encoded": True}
    assert to_http_response(result)[2] == payload


def test_response_framing_headers_from_the_function_are_remapped() -> None:
    _, headers, _ = to_http_response({"statusCode": 200, "headers": {"Content-Length": "999", "Connection": "close"}})
    assert headers == [
        ("x-amzn-Remapped-Content-Length", "999"),
        ("x-amzn-Remapped-Connection", "close"),
        ("Content-Type", "application/json"),
    ]


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (None, "returned null"),
        ([200, "ok"], "returned list"),
        ("ok", "returned str"),
        ({"statusCode": "two hundred", "body": "x"}, "statusCode must be an integer"),
        ({"statusCode": True}, "statusCode must be an integer"),
        ({"statusCode": 1000}, "not an HTTP status"),
        ({"statusCode": 200, "body": {"a": 1}}, "body must be a string"),
        ({"statusCode": 200, "headers": ["a"]}, "headers must be an object"),
        ({"statusCode": 200, "headers": {"X": {"nested": 1}}}, "must have a string value"),
        ({"statusCode": 200, "headers": {"X": "a\r\nInjected: 1"}}, "line break"),
        ({"statusCode": 200, "headers": {"bad name": "x"}}, "invalid header name"),
        ({"statusCode": 200, "multiValueHeaders": {"X": "not a list"}}, "must be a list"),
        ({"statusCode": 200, "cookies": ["a=1"]}, "unexpected key 'cookies'"),
        ({"statusCode": 200, "body": "!!!", "isBase64Encoded": True}, "not valid base64"),
        ({"statusCode": 200, "body": "x", "isBase64Encoded": "yes"}, "isBase64Encoded must be true or false"),
    ],
)
def test_malformed_responses_are_refused_with_a_reason(result: Any, reason: str) -> None:
    with pytest.raises(MalformedResponseError, match=reason):
        to_http_response(result)


def test_api_gateways_own_answers_are_spelled_as_it_spells_them() -> None:
    assert BAD_GATEWAY.response() == (
        502,
        [("Content-Type", "application/json"), ("x-amzn-ErrorType", "InternalServerErrorException")],
        b'{"message": "Internal server error"}',
    )
    assert INTERNAL_SERVER_ERROR.response()[::2] == (500, b'{"message": "Internal server error"}')
    assert MISSING_AUTHENTICATION_TOKEN.response()[::2] == (403, b'{"message":"Missing Authentication Token"}')
    too_long = (413, [("Content-Type", "application/json")], b'{"message": "Request Too Long"}')
    assert REQUEST_TOO_LONG.response() == too_long
    assert ENDPOINT_TIMED_OUT.response()[::2] == (504, b'{"message": "Endpoint request timed out"}')


def test_forwarded_headers_extend_the_clients_x_forwarded_for_and_replace_the_others() -> None:
    sent = [("Host", "h"), ("X-Forwarded-For", "10.0.0.1"), ("x-forwarded-for", "10.0.0.2"), ("X-Forwarded-Port", "1")]
    assert forwarded_headers(sent, "127.0.0.1", 3000) == [
        ("Host", "h"),
        ("X-Forwarded-For", "10.0.0.1, 127.0.0.1"),
        ("X-Forwarded-Port", "3000"),
        ("X-Forwarded-Proto", "http"),
    ]


# --- the integration ---------------------------------------------------------------------------


def test_the_integration_uri_names_the_function_and_reads_back() -> None:
    function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:app:live"
    uri = lambda_integration_uri("aws", "eu-west-1", function_arn)
    found = INTEGRATION_URI.fullmatch(uri)
    assert found is not None and found["function"] == function_arn
    named = FUNCTION_ARN.fullmatch(found["function"])
    assert named is not None
    assert (named["account"], named["name"], named["qualifier"]) == ("123456789012", "app", "live")
    assert execute_api_arn("aws", "eu-west-1", "123456789012", "abc", "*/*") == (
        "arn:aws:execute-api:eu-west-1:123456789012:abc/*/*"
    )


class Reports:
    def __init__(self) -> None:
        self.lines: list[tuple[str, list[str]]] = []

    def __call__(self, reason: str, details: Any) -> None:
        self.lines.append((reason, list(details)))


def test_the_functions_answer_goes_out_with_the_request_id() -> None:
    report = Reports()
    event = event_for(request_id="req-1")
    status, headers, body = answer_from_function(lambda _: {"statusCode": 201, "body": "made"}, event, report)
    assert (status, body) == (201, b"made")
    assert headers[:2] == [("Content-Type", "application/json"), ("x-amzn-RequestId", "req-1")]
    assert report.lines == []


def test_a_failed_function_is_502_and_its_stack_trace_is_reported_line_by_line() -> None:
    def failing(event: Any) -> Any:
        raise FunctionError("ValueError", "boom", ["  File 'main.py', line 2, in handler\n    raise ValueError\n"])

    report = Reports()
    status, headers, body = answer_from_function(failing, event_for(request_id="req-2"), report)
    assert (status, headers, body) == (
        BAD_GATEWAY.status,
        [*BAD_GATEWAY.response()[1], ("x-amzn-RequestId", "req-2"), headers[-2], headers[-1]],
        BAD_GATEWAY.body,
    )
    assert report.lines == [
        ("the function failed: ValueError: boom", ["  File 'main.py', line 2, in handler", "    raise ValueError"])
    ]


def test_a_malformed_answer_is_502_with_the_reason_reported() -> None:
    report = Reports()
    status, _, body = answer_from_function(lambda _: {"statusCode": 200, "body": {}}, event_for(), report)
    assert (status, body) == (502, b'{"message": "Internal server error"}')
    assert report.lines == [
        ("malformed Lambda proxy response: body must be a string (serialise objects to JSON first), not dict", [])
    ]
