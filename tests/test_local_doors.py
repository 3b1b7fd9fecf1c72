"""The local cloud answers an HTTP API at `http://{api id}.execute-api.localhost:{port}/{stage}/...` and a function
URL at `http://{url id}.lambda-url.localhost:{port}/...` (Host header routing: curl and browsers resolve every
`*.localhost` name to the loopback themselves, RFC 6761), and at the path forms `/_aws/execute-api/{api id}/...` and
`/_aws/lambda-url/{url id}/...` for clients that cannot resolve those names.

The HTTP API and the function URL are made here with boto3 against the local cloud, as `up --local` makes them for
`[api] type = "http"` / `"url"`: the emulator reads them back from moto, as it reads a REST API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deployer.local.target import local_credentials, session
from tests.support import REGION, Reply, http_call, make_function, make_http_api

ECHO = """
import json

def handler(event, context):
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(event)}
"""


def port_of(local_cloud: str) -> int:
    return int(local_cloud.rsplit(":", 1)[1])


def send(
    local_cloud: str, host: str, target: str, method: str = "GET", headers: Sequence[tuple[str, str]] = ()
) -> Reply:
    """`method target` to the local cloud (127.0.0.1) with this Host header: no DNS involved."""
    return http_call(port_of(local_cloud), target, method, headers=headers, host=host)


def deploy(local_cloud: str) -> tuple[dict[str, Any], str]:
    local = session(REGION)
    clients = {name: local.client(name, endpoint_url=local_cloud) for name in ("iam", "lambda", "apigatewayv2")}
    return clients, make_function(clients, ECHO, name="doors")


def test_an_http_api_answers_at_its_execute_api_localhost_name_and_its_path_form(local_cloud: str) -> None:
    clients, alias_arn = deploy(local_cloud)
    api_id = make_http_api(clients, alias_arn, "doors", stage="test")
    host = f"{api_id}.execute-api.localhost:{port_of(local_cloud)}"
    by_name = send(local_cloud, host, "/test/hello?a=1&a=2")
    assert by_name.status == 200, by_name.body
    event = by_name.json()
    assert (event["version"], event["rawPath"], event["queryStringParameters"]) == ("2.0", "/test/hello", {"a": "1,2"})
    assert event["requestContext"]["domainName"] == host and event["requestContext"]["stage"] == "test"
    by_path = send(local_cloud, f"127.0.0.1:{port_of(local_cloud)}", f"/_aws/execute-api/{api_id}/test/hello")
    assert (by_path.status, by_path.json()["rawPath"]) == (200, "/test/hello")
    # A name the account has no API for: the HTTP API's 404, and nothing else of the emulator is reachable.
    assert send(local_cloud, f"nosuch.execute-api.localhost:{port_of(local_cloud)}", "/_deployer/health").status == 404


def test_a_function_url_answers_at_its_lambda_url_localhost_name_and_iam_wants_a_signature(local_cloud: str) -> None:
    clients, _ = deploy(local_cloud)
    made = clients["lambda"].create_function_url_config(FunctionName="doors", Qualifier="test", AuthType="AWS_IAM")
    url_id = made["FunctionUrl"].split("://", 1)[1].split(".", 1)[0]
    host = f"{url_id}.lambda-url.localhost:{port_of(local_cloud)}"
    unsigned = send(local_cloud, host, "/hello")
    assert (unsigned.status, unsigned.body) == (403, b'{"Message":"Forbidden"}')
    signed = send(local_cloud, host, "/hello", headers=sigv4(local_cloud, f"http://{host}/hello"))
    assert signed.status == 200, signed.body
    assert signed.json()["requestContext"]["authorizer"]["iam"]["accountId"] == "123456789012"
    path_form = f"/_aws/lambda-url/{url_id}/hello"
    local_host = f"127.0.0.1:{port_of(local_cloud)}"
    by_path = send(local_cloud, local_host, path_form, headers=sigv4(local_cloud, f"http://{local_host}{path_form}"))
    assert (by_path.status, by_path.json()["rawPath"]) == (200, "/hello")
    # Signed with other credentials: refused as unsigned.
    forged = sigv4(local_cloud, f"http://{host}/hello", secret="not-the-secret")
    assert send(local_cloud, host, "/hello", headers=forged).status == 403


def sigv4(local_cloud: str, url: str, secret: str | None = None) -> list[tuple[str, str]]:
    """The headers of a GET of `url` signed for Lambda with the local cloud's credentials (or another secret)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    credentials = local_credentials(port_of(local_cloud))
    request = AWSRequest(method="GET", url=url)
    key = Credentials(credentials.access_key_id, secret or credentials.secret_access_key)
    SigV4Auth(key, "lambda", REGION).add_auth(request)
    return list(request.headers.items())
