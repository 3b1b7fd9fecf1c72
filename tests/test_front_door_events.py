"""The check before traffic and `deployer invoke` speak the stage's front door: payload 2.0 behind an HTTP API or a
function URL, read by that door's rules (a JSON value without statusCode is a 200), the REST proxy event otherwise.

The function here works only with payload 2.0 (it reads `rawPath`, which the REST proxy event has not) and answers a
bare JSON object (which API Gateway's REST proxy calls malformed): checked with the REST event, it would stop every
release of an HTTP API or function URL stage that works on AWS.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deployer import deploy
from deployer.errors import DeployerError
from tests.account import Account
from tests.support import in_process_ok, run_in_process

# AWS's payload 2.0 (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html,
# https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html): version, rawPath, requestContext.http.
HANDLER_2_0 = """
def handler(event, context):
    if event.get("version") != "2.0":
        raise ValueError("this function reads payload format 2.0 only")
    return {
        "path": event["rawPath"],
        "method": event["requestContext"]["http"]["method"],
        "account": event["requestContext"]["accountId"],
        "query": event.get("queryStringParameters"),
    }
"""


def with_door(project: Path, kind: str, handler: str = HANDLER_2_0) -> None:
    config = project / "deploy.toml"
    head, _, _ = config.read_text().partition("\n[api]\n")
    config.write_text(f'{head}\n[api]\nstage = "test"\ntype = "{kind}"\n')
    (project / "function" / "main.py").write_text(handler)


@pytest.mark.parametrize("kind", ["http", "url"])
def test_the_check_sends_payload_2_0_and_reads_the_answer_as_the_door_does(
    kind: str, make_run, aws_account: Account, project: Path
) -> None:
    with_door(project, kind)
    run = make_run("1.0.0")
    outcomes = {outcome.change.resource: outcome.change for outcome in deploy.up(run)}
    assert (outcomes["check"].action, outcomes["check"].note) == ("check", "answered 200")
    alias = aws_account.client("lambda").get_alias(FunctionName=run.config.function_name, Name=run.config.alias)
    assert alias["FunctionVersion"] == run.state.lambda_version  # the release went live: its check passed


def test_a_release_failing_its_2_0_check_never_gets_the_alias(make_run, aws_account: Account, project: Path) -> None:
    with_door(project, "http")
    run = make_run("1.0.0")
    deploy.up(run)
    failing = HANDLER_2_0.replace('"path": event["rawPath"],', '"statusCode": 500, "body": "broken",')
    (project / "function" / "main.py").write_text(failing)
    second = make_run("1.1.0")
    with pytest.raises(DeployerError, match="failed its check, GET /: it answered 500 broken"):
        deploy.up(second)
    alias = aws_account.client("lambda").get_alias(FunctionName=run.config.function_name, Name=run.config.alias)
    assert alias["FunctionVersion"] == run.state.lambda_version  # still 1.0.0's


@pytest.mark.parametrize(("kind", "account"), [("http", "123456789012"), ("url", "anonymous")])
def test_invoke_sends_the_doors_event_and_infers_the_answer_as_it_does(
    kind: str, account: str, project: Path, aws_account: Account
) -> None:
    with_door(project, kind)
    in_process_ok(project, "up", "--version", "1.0.0")
    result = run_in_process(project, "invoke", "--path", "/items/7?color=red&color=blue", "-X", "PUT")
    assert result.returncode == 0, result.stderr
    # A value without statusCode is a 200 with that JSON; query values repeated are joined with commas.
    assert json.loads(result.stdout) == {"path": "/items/7", "method": "PUT", "account": account,
                                         "query": {"color": "red,blue"}}  # fmt: skip
    assert result.stderr.splitlines()[0] == "200 OK"
    assert "Content-Type: application/json" in result.stderr.splitlines()
