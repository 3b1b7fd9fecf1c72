"""The local cloud's data plane, in-process: API Gateway's routing, refusals and permission check over moto,
and the alias it calls: the version the alias (or its canary weight) picks runs with its own code and configuration."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from deployer.gateway.proxy import MAX_REQUEST_BODY
from deployer.gateway.routing import ResourceSpec, match_resource
from deployer.local.dataplane import DataPlane, Refusal, Request
from deployer.local.emulator import Emulator
from deployer.local.functions import routed_version
from deployer.local.patches import install_lambda_fixes, install_snapshots
from deployer.local.policy import arn_like, policy_allows
from tests.support import ACCOUNT, REGION, allow, make_function, put_lambda_proxy, zipped


def resources(*paths: str) -> list[ResourceSpec]:
    return [ResourceSpec(id=f"r{index}", path=path, methods={}) for index, path in enumerate(paths)]


@pytest.mark.parametrize(
    ("path", "expected", "parameters"),
    [
        ("/", "/", {}),
        ("/pets", "/pets", {}),
        ("/pets/", "/pets", {}),
        ("/pets/7", "/pets/{id}", {"id": "7"}),
        ("/pets/7/toys", "/{proxy+}", {"proxy": "pets/7/toys"}),
        ("/some/deep/path", "/{proxy+}", {"proxy": "some/deep/path"}),
        ("/caf%C3%A9/", "/{proxy+}", {"proxy": "caf%C3%A9"}),  # as sent, without the trailing slash
    ],
)
def test_a_path_goes_to_the_exact_resource_then_a_parameter_then_the_greedy_one(
    path: str, expected: str, parameters: dict[str, str]
) -> None:
    found = match_resource(resources("/", "/pets", "/pets/{id}", "/{proxy+}"), path)
    assert found is not None
    assert (found[0].path, found[1]) == (expected, parameters)


def test_the_root_is_served_by_the_root_resource_only_and_greedy_needs_a_segment() -> None:
    assert match_resource(resources("/{proxy+}"), "/") is None
    assert match_resource(resources("/"), "/anything") is None
    assert match_resource(resources("/", "/api/{proxy+}"), "/api") is None
    assert match_resource(resources("/", "/api/{proxy+}"), "/api/x")[1] == {"proxy": "x"}  # type: ignore[index]


def grant(source_arn: str | None, effect: str = "Allow", sid: str = "s") -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": effect,
        "Principal": {"Service": "apigateway.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f",
    }
    if source_arn:
        statement["Condition"] = {"ArnLike": {"AWS:SourceArn": source_arn}}
    return statement


REQUEST_ARN = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/test/GET/some/deep/path"


@pytest.mark.parametrize(
    ("pattern", "allowed"),
    [
        (f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/*/*", True),  # what `up` grants: any stage, method, path
        (f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/test/GET/*", True),
        (f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/prod/*/*", False),
        (f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/*/POST/*", False),
        (f"arn:aws:execute-api:{REGION}:{ACCOUNT}:other99/*/*", False),
        (f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:abc123/*/*", False),
        (None, True),  # no condition: any API may invoke it
    ],
)
def test_the_policy_is_matched_against_the_requests_execute_api_arn(pattern: str | None, allowed: bool) -> None:
    assert policy_allows([grant(pattern)], REQUEST_ARN, ACCOUNT)[0] is allowed


def test_a_deny_wins_and_no_policy_allows_nothing() -> None:
    everything = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/*/*"
    allowed, reason = policy_allows([grant(everything), grant(everything, "Deny", "no")], REQUEST_ARN, ACCOUNT)
    assert not allowed and "no" in reason
    assert policy_allows([], REQUEST_ARN, ACCOUNT) == (False, "the function has no resource policy")
    assert arn_like("a*c?e", "abbbcde") and not arn_like("a*c?e", "abbbce")


# Over moto's backends, in-process.


@pytest.fixture
def account() -> Iterator[dict[str, Any]]:
    install_snapshots()
    install_lambda_fixes()
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        yield {name: session.client(name) for name in ("iam", "lambda", "apigateway")}


def wire(
    clients: dict[str, Any], function_arn: str, paths: tuple[str, ...] = ("/",), kind: str = "AWS_PROXY"
) -> tuple[str, dict[str, str]]:
    """An API with ANY on each path (made under the root), integrated with the function, not deployed."""
    gateway = clients["apigateway"]
    api_id = gateway.create_rest_api(name="by-hand")["id"]
    ids = {item["path"]: item["id"] for item in gateway.get_resources(restApiId=api_id)["items"]}
    for path in paths:
        if path not in ids:
            ids[path] = gateway.create_resource(restApiId=api_id, parentId=ids["/"], pathPart=path.lstrip("/"))["id"]
        put_lambda_proxy(gateway, api_id, ids[path], "ANY", function_arn, kind)
    return api_id, ids


def get(api_id: str, path: str = "/", stage: str = "test", method: str = "GET") -> Request:
    return Request(
        method=method,
        api_id=api_id,
        stage=stage,
        path=path,
        query="",
        headers=[("Host", "127.0.0.1")],
        body=b"",
        source_ip="127.0.0.1",
    )


@pytest.fixture
def dataplane(tmp_path: Path) -> Iterator[DataPlane]:
    plane = DataPlane(tmp_path / "code", console=lambda _: None)
    yield plane
    plane.close()


def refusal(plane: DataPlane, request: Request) -> Refusal:
    with pytest.raises(Refusal) as raised:
        plane.resolve(request)
    return raised.value


def test_unknown_api_stage_resource_or_method_is_a_missing_authentication_token(
    account: dict[str, Any], dataplane: DataPlane
) -> None:
    api_id, _ = wire(account, make_function(account))
    allow(account, api_id)
    account["apigateway"].create_deployment(restApiId=api_id, stageName="test")
    assert dataplane.resolve(get(api_id)).resource.path == "/"
    for request in (get("nosuchapi"), get(api_id, stage="prod"), get(api_id, "/no/such/resource")):
        answer = refusal(dataplane, request).response()
        assert answer == (
            403,
            [("Content-Type", "application/json"), ("x-amzn-ErrorType", "MissingAuthenticationTokenException")],
            b'{"message":"Missing Authentication Token"}',
        )


def test_a_method_is_the_exact_verb_or_any(account: dict[str, Any], dataplane: DataPlane) -> None:
    gateway = account["apigateway"]
    function_arn = make_function(account)
    api_id, ids = wire(account, function_arn)
    gateway.delete_method(restApiId=api_id, resourceId=ids["/"], httpMethod="ANY")
    put_lambda_proxy(gateway, api_id, ids["/"], "POST", function_arn)
    allow(account, api_id)
    gateway.create_deployment(restApiId=api_id, stageName="test")
    assert dataplane.resolve(get(api_id, method="POST")).function.function_name == "echo"
    assert refusal(dataplane, get(api_id)).status == 403


def test_without_permission_the_api_answers_internal_server_error(
    account: dict[str, Any], dataplane: DataPlane
) -> None:
    """The guide's 'not functional yet' step: deployed, but the alias's policy does not let the API in."""
    alias_arn = make_function(account)
    api_id, _ = wire(account, alias_arn)
    account["apigateway"].create_deployment(restApiId=api_id, stageName="test")
    refused = refusal(dataplane, get(api_id))
    assert (refused.status, refused.body) == (500, b'{"message": "Internal server error"}')
    assert "Invalid permissions on Lambda function" in refused.reason

    other_api, _ = wire(account, alias_arn)
    allow(account, other_api)  # a permission for another API does not count
    assert refusal(dataplane, get(api_id)).status == 500
    account["lambda"].add_permission(
        FunctionName="echo",
        Qualifier="test",
        StatementId="mine",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/*/*",
    )
    assert dataplane.resolve(get(api_id)).function.function_name == "echo"


def test_a_grant_counts_only_for_the_arn_it_is_on(account: dict[str, Any], dataplane: DataPlane) -> None:
    """Lambda keeps a policy per alias besides the function's own: the alias's lets the API invoke the alias,
    the function's lets it invoke the function unqualified, and neither stands in for the other."""
    alias_arn = make_function(account)
    calls_alias, _ = wire(account, alias_arn)
    calls_function, _ = wire(account, alias_arn.removesuffix(":test"))
    for api_id in (calls_alias, calls_function):
        account["apigateway"].create_deployment(restApiId=api_id, stageName="test")

    allow(account, calls_alias, qualifier=None)  # on the function: not in the alias's policy
    refused = refusal(dataplane, get(calls_alias))
    assert refused.status == 500 and f"{alias_arn} has no resource policy" in refused.reason
    allow(account, calls_alias, qualifier="test")
    assert dataplane.resolve(get(calls_alias)).target.invoked_arn == alias_arn

    allow(account, calls_function, qualifier="test")  # on the alias: not in the function's policy
    refused = refusal(dataplane, get(calls_function))
    assert refused.status == 500 and f"{calls_function}/*/*" not in refused.reason
    allow(account, calls_function, qualifier=None)
    assert dataplane.resolve(get(calls_function)).target.version == "$LATEST"


def test_an_integration_that_is_not_a_lambda_proxy_is_an_internal_server_error(
    account: dict[str, Any], dataplane: DataPlane
) -> None:
    function_arn = make_function(account)
    api_id, _ = wire(account, function_arn, kind="AWS")
    allow(account, api_id)
    account["apigateway"].create_deployment(restApiId=api_id, stageName="test")
    assert "not emulated" in refusal(dataplane, get(api_id)).reason

    missing = function_arn.replace(":echo", ":gone")
    api_id, _ = wire(account, missing)
    account["apigateway"].create_deployment(restApiId=api_id, stageName="test")
    refused = refusal(dataplane, get(api_id))
    assert refused.status == 500 and "does not exist" in refused.reason


def test_a_stage_serves_what_was_deployed_until_the_next_deployment(
    account: dict[str, Any], dataplane: DataPlane
) -> None:
    gateway = account["apigateway"]
    function_arn = make_function(account)
    api_id, ids = wire(account, function_arn)
    allow(account, api_id)
    gateway.create_deployment(restApiId=api_id, stageName="test")
    wire_more = gateway.create_resource(restApiId=api_id, parentId=ids["/"], pathPart="{proxy+}")["id"]
    put_lambda_proxy(gateway, api_id, wire_more, "ANY", function_arn)
    assert refusal(dataplane, get(api_id, "/a/b")).status == 403  # wired, not deployed yet
    gateway.create_deployment(restApiId=api_id, stageName="test")
    assert dataplane.resolve(get(api_id, "/a/b")).parameters == {"proxy": "a/b"}


def test_the_request_runs_the_code_the_alias_points_at(account: dict[str, Any], dataplane: DataPlane) -> None:
    api_id, _ = wire(account, make_function(account), paths=("/", "/{proxy+}"))
    allow(account, api_id)
    account["apigateway"].create_deployment(restApiId=api_id, stageName="test")
    request = get(api_id, "/some/deep/path")
    request.query = "q=1&q=2"
    status, headers, body = dataplane.answer(request)
    assert status == 200, body
    assert ("Content-Type", "application/json") in headers
    assert any(name == "x-amzn-RequestId" for name, _ in headers)
    assert not any(name.lower() == "x-amz-executed-version" for name, _ in headers)  # API Gateway does not say
    assert json.loads(body) == {
        "resource": "/{proxy+}",
        "path": "/some/deep/path",
        "httpMethod": "GET",
        "pathParameters": {"proxy": "some/deep/path"},
        "queryStringParameters": {"q": "2"},
        "body": None,
        "stage": "test",
        "apiId": api_id,
    }
    assert json.loads(dataplane.answer(get(api_id))[2])["resource"] == "/"

    # New code in $LATEST is not served; published and behind the alias, it is: a function that raises is a 502.
    functions = account["lambda"]
    functions.update_function_code(FunctionName="echo", ZipFile=zipped({"main.py": RAISES}))
    assert dataplane.answer(get(api_id))[0] == 200
    version = functions.publish_version(FunctionName="echo")["Version"]
    functions.update_alias(FunctionName="echo", Name="test", FunctionVersion=version)
    assert dataplane.answer(get(api_id))[0::2] == (502, b'{"message": "Internal server error"}')


RAISES = "def handler(event, context):\n    raise RuntimeError('boom')\n"
RELEASE = (
    "import json, os\n"
    "def handler(event, context):\n"
    "    seen = {'page': PAGE, 'memory': context.memory_limit_in_mb, 'version': context.function_version,\n"
    "            'invoked': context.invoked_function_arn, 'greeting': os.environ.get('GREETING'),\n"
    "            'mode': os.environ.get('MODE')}\n"
    "    return {'statusCode': 200, 'body': json.dumps(seen)}\n"
)


def test_each_version_runs_its_own_code_and_configuration(account: dict[str, Any], dataplane: DataPlane) -> None:
    """The rename: version 1 is main.py, 128 MB, GREETING; version 2 is app.py, 256 MB, MODE. Whichever the
    alias points at runs as it was published, whatever $LATEST holds since."""
    functions = account["lambda"]
    alias_arn = make_function(
        account, "PAGE = 'one'\n" + RELEASE, MemorySize=128, Environment={"Variables": {"GREETING": "hello"}}
    )
    functions.update_function_code(FunctionName="echo", ZipFile=zipped({"app.py": "PAGE = 'two'\n" + RELEASE}))
    functions.update_function_configuration(
        FunctionName="echo", Handler="app.handler", MemorySize=256, Environment={"Variables": {"MODE": "new"}}
    )
    assert functions.publish_version(FunctionName="echo")["Version"] == "2"
    functions.update_function_code(FunctionName="echo", ZipFile=zipped({"app.py": RAISES}))  # $LATEST moves on
    api_id, _ = wire(account, alias_arn)
    allow(account, api_id)
    account["apigateway"].create_deployment(restApiId=api_id, stageName="test")

    def served() -> dict[str, Any]:
        status, _, body = dataplane.answer(get(api_id))
        assert status == 200, body
        return json.loads(body)

    one = {"page": "one", "memory": 128, "version": "1", "invoked": alias_arn, "greeting": "hello", "mode": None}
    two = {"page": "two", "memory": 256, "version": "2", "invoked": alias_arn, "greeting": None, "mode": "new"}
    assert served() == one
    functions.update_alias(FunctionName="echo", Name="test", FunctionVersion="2")
    assert served() == two
    functions.update_alias(FunctionName="echo", Name="test", FunctionVersion="1")  # a rollback
    assert served() == one


def test_an_alias_routes_its_canary_share_by_the_draw() -> None:
    """AdditionalVersionWeights is the extra version's share: a draw under it runs that version."""
    alias = SimpleNamespace(function_version="1", routing_config={"AdditionalVersionWeights": {"2": 0.3}})
    assert routed_version(alias, lambda: 0.0) == "2"
    assert routed_version(alias, lambda: 0.2999) == "2"
    assert routed_version(alias, lambda: 0.3) == "1"
    assert routed_version(alias, lambda: 0.9999) == "1"
    assert routed_version(SimpleNamespace(function_version="4", routing_config=None), lambda: 0.0) == "4"
    empty = SimpleNamespace(function_version="4", routing_config={"AdditionalVersionWeights": {}})
    assert routed_version(empty, lambda: 0.0) == "4"


def test_version_numbers_are_never_reused(account: dict[str, Any]) -> None:
    """moto would publish "2" again after version 2 is deleted; Lambda goes on from the highest ever published."""
    functions = account["lambda"]
    make_function(account, alias=None)
    assert functions.publish_version(FunctionName="echo")["Version"] == "1"
    functions.update_function_configuration(FunctionName="echo", MemorySize=256)
    assert functions.publish_version(FunctionName="echo")["Version"] == "2"
    assert functions.publish_version(FunctionName="echo")["Version"] == "2"  # nothing changed: the same version
    functions.delete_function(FunctionName="echo", Qualifier="2")
    assert functions.publish_version(FunctionName="echo")["Version"] == "3"  # $LATEST differs from 1: a new one
    functions.delete_function(FunctionName="echo", Qualifier="1")
    functions.delete_function(FunctionName="echo", Qualifier="3")
    functions.update_function_configuration(FunctionName="echo", MemorySize=512)
    assert functions.publish_version(FunctionName="echo")["Version"] == "4"
    listed = functions.list_versions_by_function(FunctionName="echo")["Versions"]
    assert [(item["Version"], item["MemorySize"]) for item in listed] == [("$LATEST", 512), ("4", 512)]


def test_a_body_over_api_gateways_limit_is_413_request_too_long(dataplane: DataPlane) -> None:
    def moto(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise AssertionError("a data-plane request must not reach moto")

    answered: list[Any] = []
    emulator = Emulator(moto, dataplane, port=4566)
    too_long = MAX_REQUEST_BODY + 1
    environ = {
        "REQUEST_METHOD": "POST",
        "HTTP_HOST": "127.0.0.1:4566",
        "PATH_INFO": "/restapis/abc123/test/_user_request_/upload",
        "RAW_URI": "/restapis/abc123/test/_user_request_/upload",
        "CONTENT_LENGTH": str(too_long),
        "wsgi.input": io.BytesIO(b"x" * too_long),
    }
    body = emulator(environ, lambda status, headers: answered.append((status, headers)))
    assert answered[0][0].startswith("413 ")  # the phrase is "Content Too Large" from Python 3.13
    # API Gateway's own text for it (issue 22), and the body left unread: refused by its Content-Length
    assert b"".join(body) == b"HTTP content length exceeded 10485760 bytes."
    assert environ["wsgi.input"].tell() == 0


def test_every_account_gets_every_aws_managed_policy_read_from_moto_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local cloud offers all of moto's AWS managed policies in each account it makes (after every reset), each
    account its own objects, as moto's IAM would make them; moto's JSON is parsed once, not for each account."""
    import moto.iam.aws_managed_policies
    import moto.iam.models
    from moto.iam.models import IAMBackend

    from deployer.local.patches import install_managed_policies_read_once

    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    monkeypatch.setattr(
        moto.iam.models, "aws_managed_policies_data", moto.iam.aws_managed_policies.aws_managed_policies_data
    )
    as_moto_makes = IAMBackend("aws", ACCOUNT).aws_managed_policies
    parsed_by_moto: list[str] = []
    monkeypatch.setattr(moto.iam.models, "json", SimpleNamespace(loads=lambda text: parsed_by_moto.append(text)))

    install_managed_policies_read_once()
    accounts = [IAMBackend("aws", ACCOUNT), IAMBackend("aws", "210987654321")]

    def seen(policy: Any) -> tuple[Any, ...]:
        version = policy.versions[0]
        return (
            policy.arn,
            policy.path,
            policy.default_version_id,
            policy.create_date,
            policy.update_date,
            version.document,
            version.version_id,
            version.is_default,
            version.create_date,
        )

    assert len(as_moto_makes) > 1000
    assert [seen(policy) for policy in accounts[0].aws_managed_policies] == [seen(p) for p in as_moto_makes]
    assert {policy.account_id for policy in accounts[1].aws_managed_policies} == {"210987654321"}
    assert set(map(id, accounts[0].aws_managed_policies)).isdisjoint(map(id, accounts[1].aws_managed_policies))
    assert parsed_by_moto == []
