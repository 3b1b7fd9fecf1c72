"""Whole releases: each release is a published Lambda version behind the stage's alias, checked before traffic.

A rollback brings back the release whole (code and configuration), stages are separate stacks that share
the app's artifacts, promote ships the bytes one stage tested, a release that fails its check never gets
traffic, and a canary routes a share of it. All against in-process moto, whose Lambda Invoke really runs
the function here (tests/lambda_invoke.py).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from deployer import deploy
from deployer.errors import DeployerError
from tests.account import APP, Account, state_file
from tests.support import assert_in_order, edit, fork_until_call, run_in_process, writes

PROD = f"{APP}-prod"


def up(make_run, version: str, **options):
    run = make_run(version, **options)
    deploy.up(run)
    return run


def invoke_alias(account: Account, name: str = APP, alias: str = "test") -> dict:
    """Call the stage's alias as API Gateway does (Lambda Invoke with a proxy event): what the users get."""
    event = {"httpMethod": "GET", "path": "/", "resource": "/", "headers": None, "requestContext": {}}
    answer = account.client("lambda").invoke(FunctionName=name, Qualifier=alias, Payload=json.dumps(event).encode())
    return {"error": answer.get("FunctionError"), **json.loads(answer["Payload"].read())}


def rename_the_handler(project: Path) -> None:
    """2.1.0: main.py becomes app.py, its handler app.handler; more memory; another variable."""
    source = project / "function"
    (source / "app.py").write_text((source / "main.py").read_text().replace("Hello world!", "Hello from app.py"))
    (source / "main.py").unlink()
    config = project / "deploy.toml"
    edit(config, 'handler = "main.handler"', 'handler = "app.handler"')
    edit(config, "memory = 128", "memory = 256")
    edit(config, 'environment = { GREETING = "hello" }', 'environment = { MODE = "new" }')


def with_greeting_variable(project: Path) -> None:
    edit(project / "deploy.toml", "timeout = 3", 'timeout = 3\nenvironment = { GREETING = "hello" }')


# Rollback brings the release back whole ------------------------------------------------------------------


def test_a_rollback_brings_back_code_and_configuration_as_they_ran(
    make_run, aws_account: Account, project: Path
) -> None:
    with_greeting_variable(project)
    up(make_run, "2.0.0")
    rename_the_handler(project)
    up(make_run, "2.1.0")
    assert aws_account.assert_stack("v2.1.0/example.zip")["live"]["Handler"] == "app.handler"
    assert "Hello from app.py" in invoke_alias(aws_account)["body"]

    run = make_run("2.0.0")
    deploy.rollback(run)
    assert writes(run) == ["UpdateAlias"]  # one write
    live = aws_account.assert_stack("v2.0.0/example.zip")["live"]
    assert (live["Handler"], live["MemorySize"]) == ("main.handler", 128)
    assert live["Environment"]["Variables"] == {"GREETING": "hello"}
    answer = invoke_alias(aws_account)
    assert (answer["error"], answer["statusCode"]) == (None, 200) and "Hello world!" in answer["body"]
    assert (run.state.version, run.state.lambda_version) == ("2.0.0", "1")


def test_a_pruned_release_is_published_again_from_its_recorded_configuration(
    make_run, aws_account: Account, project: Path, lambda_invoke
) -> None:
    edit(project / "deploy.toml", '[api]\nstage = "test"', '[api]\nstage = "test"\n\n[releases]\nkeep = 1')
    with_greeting_variable(project)
    up(make_run, "2.0.0")
    rename_the_handler(project)
    edit(project / "deploy.toml", 'MODE = "new"', 'MODE = "new", GREETING = "hello"')
    up(make_run, "2.1.0")
    versions = aws_account.client("lambda").list_versions_by_function(FunctionName=APP)["Versions"]
    assert [item["Version"] for item in versions] == ["$LATEST", "2"]  # 2.0.0's version 1 was pruned

    run = make_run("2.0.0")
    deploy.rollback(run)
    assert writes(run) == [
        "UpdateFunctionCode", "UpdateFunctionConfiguration", "PublishVersion", "UpdateAlias",
        "DeleteFunction",  # keep = 1: 2.1.0's version goes now
    ]  # fmt: skip
    # The new version 3 is checked before it gets traffic.
    assert [qualifier for qualifier, _ in lambda_invoke.invocations][-1:] == ["3"], run.aws.calls
    live = aws_account.assert_stack("v2.0.0/example.zip")["live"]
    assert (live["Handler"], live["MemorySize"], live["Version"]) == ("main.handler", 128, "3")
    assert live["Environment"]["Variables"] == {"GREETING": "hello"}  # its names, today's values
    assert "Hello world!" in invoke_alias(aws_account)["body"]


def test_a_release_whose_variable_is_no_longer_set_cannot_be_published_again(
    make_run, aws_account: Account, project: Path
) -> None:
    edit(project / "deploy.toml", '[api]\nstage = "test"', '[api]\nstage = "test"\n\n[releases]\nkeep = 1')
    with_greeting_variable(project)
    up(make_run, "2.0.0")
    rename_the_handler(project)
    up(make_run, "2.1.0")
    run = make_run("2.0.0")
    with pytest.raises(DeployerError, match=r"environment variable GREETING, which deploy\.toml no longer sets"):
        deploy.rollback(run)
    assert writes(run) == []


def test_a_lost_state_finds_each_release_again_from_the_versions_descriptions(
    make_run, aws_account: Account, project: Path
) -> None:
    up(make_run, "1.0.0")
    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")
    up(make_run, "1.0.1")
    (state_file(project)).unlink()

    run = make_run("1.0.0")
    deploy.rollback(run)
    assert run.aws.calls == ["ListVersionsByFunction", "UpdateAlias", "GetRestApis"]  # the API, for the URL
    aws_account.assert_stack("v1.0.0/example.zip")
    assert run.state.base_url and run.state.rest_api_id in run.state.base_url


def test_rollback_on_a_stage_with_nothing_deployed_says_to_run_up(make_run, aws_account: Account) -> None:
    with pytest.raises(DeployerError, match=r"not deployed on stage test: run `deployer up --version 1\.0\.0`"):
        deploy.rollback(make_run("1.0.0"))


# Old versions are pruned ------------------------------------------------------------------------------------


def test_versions_beyond_keep_are_pruned_but_never_one_an_alias_uses(
    make_run, aws_account: Account, project: Path
) -> None:
    edit(project / "deploy.toml", '[api]\nstage = "test"', '[api]\nstage = "test"\n\n[releases]\nkeep = 2')
    functions = aws_account.client("lambda")
    for number, greeting in enumerate(["one", "two", "three", "four"], start=1):
        edit(project / "function" / "main.py", "Hello world!" if number == 1 else "Hello", "Hello")
        (project / "function" / "greeting.txt").write_text(greeting)
        up(make_run, f"1.0.{number}")
        if number == 1:  # someone pins the first release under an alias of their own
            functions.create_alias(FunctionName=APP, Name="pinned", FunctionVersion="1")
    numbers = [item["Version"] for item in functions.list_versions_by_function(FunctionName=APP)["Versions"]]
    assert numbers == ["$LATEST", "1", "3", "4"]  # 2 pruned; 1 kept: an alias points at it
    aws_account.assert_stack("v1.0.4/example.zip")


# Stages and promote -----------------------------------------------------------------------------------------


def test_a_stage_table_applies_to_its_stage_only(make_run, aws_account: Account, project: Path) -> None:
    with open(project / "deploy.toml", "a") as config:
        config.write('\n[stages.prod]\nmemory = 512\nenvironment = { TIER = "prod" }\n')
    up(make_run, "1.0.0")
    up(make_run, "1.0.0", stage="prod")
    test = aws_account.assert_stack("v1.0.0/example.zip")["live"]
    prod = aws_account.assert_stack("v1.0.0/example.zip", stage="prod", name=PROD)["live"]
    assert (test["MemorySize"], prod["MemorySize"]) == (128, 512)
    assert "Environment" not in test or not test["Environment"].get("Variables")
    assert prod["Environment"]["Variables"] == {"TIER": "prod"}
    assert len(aws_account.rest_apis()) == 2 and len(aws_account.functions()) == 2


def test_promote_ships_the_bytes_published_for_the_version_not_the_edited_source(
    make_run, aws_account: Account, project: Path
) -> None:
    up(make_run, "1.0.0")
    edit(project / "function" / "main.py", "Hello world!", "Not tested yet")
    run = make_run("1.0.0", stage="prod")
    run.target = run.target.__class__(**{**run.target.__dict__, "artifact": None})  # promote builds nothing
    deploy.promote(run)
    assert "PutObject" not in run.aws.calls  # the artifact already in S3 is the one shipped
    aws_account.assert_stack("v1.0.0/example.zip", stage="prod", name=PROD)
    assert "Hello world!" in invoke_alias(aws_account, PROD, "prod")["body"]


def test_promote_of_a_version_never_uploaded_is_refused(make_run, aws_account: Account) -> None:
    up(make_run, "1.0.0")
    run = make_run(None, stage="prod")
    run.target = run.target.__class__(**{**run.target.__dict__, "version": "9.9.9"})
    with pytest.raises(DeployerError, match=r"version 9\.9\.9 was never uploaded.*published versions: 1\.0\.0"):
        deploy.promote(run)
    assert writes(run) == []


def test_down_on_one_stage_leaves_the_other_serving(project: Path, moto_server: Account) -> None:
    for arguments in (["up", "--version", "1.0.0"], ["promote", "1.0.0", "--stage", "prod"]):
        result = run_in_process(project, *arguments)
        assert result.returncode == 0, result.stderr
    status = json.loads(run_in_process(project, "status", "--stage", "prod", "--json").stdout)
    assert (status["function_name"], status["stage"], status["version"]) == (PROD, "prod", "1.0.0")
    assert status["base_url"].endswith("/prod")

    result = run_in_process(project, "down", "--stage", "prod", "--yes")
    assert result.returncode == 0, result.stderr
    assert {function["FunctionName"] for function in moto_server.functions()} == {APP}
    moto_server.assert_stack("v1.0.0/example.zip")
    assert json.loads(run_in_process(project, "status", "--stage", "prod", "--json").stdout)["version"] is None
    assert json.loads(run_in_process(project, "status", "--json").stdout)["version"] == "1.0.0"


# The check before traffic -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "reported"),
    [
        ("def handler(event, context):\n    raise ValueError('database is down')\n", "ValueError: database is down"),
        ("def handler(event, context):\n    return {'statusCode': 503, 'body': 'busy'}\n", "it answered 503 busy"),
        ("def handler(event, context):\n    return 'not a proxy response'\n", "API Gateway would answer 502"),
    ],
)
def test_a_release_that_fails_its_check_never_receives_traffic(
    make_run, aws_account: Account, project: Path, handler: str, reported: str
) -> None:
    up(make_run, "1.0.0")
    deployments = aws_account.client("apigateway").get_deployments(restApiId=aws_account.rest_apis()[0]["id"])
    (project / "function" / "main.py").write_text(handler)
    run = make_run("1.0.1")
    with pytest.raises(DeployerError, match=rf"release 1\.0\.1 \(version 2\) failed its check, GET /: {reported}"):
        deploy.up(run)
    assert "UpdateAlias" not in run.aws.calls
    aws_account.assert_stack("v1.0.0/example.zip")  # the alias never moved: users still get 1.0.0
    assert "Hello world!" in invoke_alias(aws_account)["body"]
    state = make_run().state
    assert (state.version, state.lambda_version) == ("1.0.0", "1")
    after = aws_account.client("apigateway").get_deployments(restApiId=aws_account.rest_apis()[0]["id"])
    assert len(after["items"]) == len(deployments["items"])


def test_a_failed_check_is_one_line_and_exit_1_and_status_still_shows_the_old_release(
    project: Path, aws_account: Account
) -> None:
    from typer.testing import CliRunner

    from deployer.cli import app

    config = ["--config", str(project / "deploy.toml")]
    assert CliRunner().invoke(app, ["up", "--version", "1.0.0", *config]).exit_code == 0
    (project / "function" / "main.py").write_text("def handler(event, context):\n    raise KeyError('id')\n")
    result = CliRunner().invoke(app, ["up", "--version", "1.0.1", *config])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "failed its check, GET /: KeyError: 'id'" in errors[0]
    status = json.loads(CliRunner().invoke(app, ["status", "--json", *config]).stdout)
    assert (status["version"], status["lambda_version"]) == ("1.0.0", "1")


def test_no_check_publishes_without_invoking(make_run, aws_account: Account, project: Path, lambda_invoke) -> None:
    up(make_run, "1.0.0", check=False)
    assert lambda_invoke.invocations == []
    aws_account.assert_stack("v1.0.0/example.zip")


def test_against_a_bare_moto_server_the_check_is_reported_skipped(project: Path, moto_server: Account) -> None:
    result = run_in_process(project, "up", "--version", "1.0.0")
    assert result.returncode == 0, result.stderr
    check_line = next(line for line in result.stderr.splitlines() if line.strip().startswith("check"))
    assert "skipped" in check_line and "Lambda Invoke is unavailable at this endpoint" in check_line
    moto_server.assert_stack("v1.0.0/example.zip")


# Canaries ---------------------------------------------------------------------------------------------------


def test_a_canary_routes_a_share_then_up_moves_all_and_rollback_abandons_it(
    make_run, aws_account: Account, project: Path
) -> None:
    up(make_run, "1.0.0")
    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")
    run = up(make_run, "1.1.0", canary=0.1)
    alias = aws_account.alias(APP, "test")
    assert alias["FunctionVersion"] == "1" and alias["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.1}
    assert run.state.version == "1.0.0"
    assert run.state.canary == {"version": "1.1.0", "lambda_version": "2", "weight": 0.1}

    run = up(make_run, "1.1.0")  # no --canary: all of it
    assert writes(run) == ["UpdateAlias"]  # already published and checked
    alias = aws_account.alias(APP, "test")
    assert alias["FunctionVersion"] == "2" and not alias["RoutingConfig"]["AdditionalVersionWeights"]
    assert (run.state.version, run.state.canary) == ("1.1.0", None)

    edit(project / "function" / "main.py", "Bonjour au monde!", "Hola mundo!")
    up(make_run, "1.2.0", canary=0.25)
    run = make_run("1.1.0")
    deploy.rollback(run)  # back to the current release: the canary is abandoned
    assert writes(run) == ["UpdateAlias"]
    alias = aws_account.alias(APP, "test")
    assert alias["FunctionVersion"] == "2" and not alias["RoutingConfig"]["AdditionalVersionWeights"]
    assert (run.state.version, run.state.canary) == ("1.1.0", None)


def test_status_shows_the_split_of_a_canary(project: Path, moto_server: Account) -> None:
    assert run_in_process(project, "up", "--version", "1.0.0").returncode == 0
    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")
    result = run_in_process(project, "up", "--version", "1.1.0", "--canary", "10")
    assert result.returncode == 0, result.stderr
    status = json.loads(run_in_process(project, "status", "--json").stdout)
    assert (status["version"], status["lambda_version"]) == ("1.0.0", "1")
    assert status["canary"] == {"version": "1.1.0", "weight": 0.1}
    text = run_in_process(project, "status").stdout
    assert "canary         1.1.0 gets 10% of the traffic" in text


# Crashes and stacks from before releases --------------------------------------------------------------------


def test_a_run_killed_between_publish_and_alias_move_converges_without_publishing_twice(
    project: Path, moto_server: Account
) -> None:
    assert run_in_process(project, "up", "--version", "1.0.0").returncode == 0
    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")
    killed = fork_until_call(project, 0, "up", "--version", "1.0.1", after_operation="PublishVersion")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert moto_server.alias(APP, "test")["FunctionVersion"] == "1"  # published, not yet live

    assert run_in_process(project, "unlock", "--yes").returncode == 0  # the killed run's lock
    again = run_in_process(project, "up", "--version", "1.0.1")
    assert again.returncode == 0, again.stderr
    moto_server.assert_stack("v1.0.1/example.zip")
    versions = moto_server.client("lambda").list_versions_by_function(FunctionName=APP)["Versions"]
    assert [item["Version"] for item in versions] == ["$LATEST", "1", "2"]  # the one published is reused


def make_it_a_stack_from_before_aliases(account: Account, project: Path) -> None:
    """What deployer made before releases: the API calls the function unqualified ($LATEST), granted by an
    unqualified statement; no version, no alias; a state file without releases."""
    functions, gateway = account.client("lambda"), account.client("apigateway")
    function_arn = account.functions()[0]["FunctionArn"]
    api_id = account.rest_apis()[0]["id"]
    functions.remove_permission(FunctionName=APP, StatementId="deployer-apigateway-test", Qualifier="test")
    functions.delete_alias(FunctionName=APP, Name="test")
    functions.delete_function(FunctionName=APP, Qualifier="1")
    uri = f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{function_arn}/invocations"
    for item in account.resources(api_id):
        gateway.put_integration(
            restApiId=api_id, resourceId=item["id"], httpMethod="ANY", type="AWS_PROXY",
            integrationHttpMethod="POST", uri=uri,
        )  # fmt: skip
    gateway.create_deployment(restApiId=api_id, stageName="test")
    functions.add_permission(
        FunctionName=APP,
        StatementId="deployer-apigateway-invoke",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/*/*",
    )
    path = state_file(project)
    state = json.loads(path.read_text())
    for key in ("alias", "lambda_version", "canary", "releases"):
        state.pop(key, None)
    path.write_text(json.dumps(state))


def test_a_stack_from_before_aliases_is_converted_with_no_downtime(
    make_run, aws_account: Account, project: Path
) -> None:
    up(make_run, "1.0.0")
    make_it_a_stack_from_before_aliases(aws_account, project)
    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")

    run = up(make_run, "1.0.1")
    done = writes(run)
    # First what runs now goes behind the alias and the API calls the alias; only then does $LATEST change. (The
    # integrations may change before the alias exists: the API calls them only once CreateDeployment publishes them.)
    converting = done[: done.index("UpdateFunctionCode")]
    assert sorted(converting) == sorted([
        "PublishVersion", "CreateAlias", "PutIntegration", "PutIntegration", "AddPermission", "CreateDeployment",
        "RemovePermission", "PutObject",
    ])  # fmt: skip
    assert_in_order(
        converting, "PublishVersion", "CreateAlias", "AddPermission", "CreateDeployment", "RemovePermission"
    )
    assert_in_order(converting, "PutIntegration", "CreateDeployment", "RemovePermission", "PutObject")
    assert done[done.index("UpdateFunctionCode") :] == ["UpdateFunctionCode", "PublishVersion", "UpdateAlias"]
    versions = aws_account.client("lambda").list_versions_by_function(FunctionName=APP)["Versions"]
    assert [item["Description"] for item in versions[1:]] == ["deployer release 1.0.0", "deployer release 1.0.1"]
    aws_account.assert_stack("v1.0.1/example.zip")
    with pytest.raises(ClientError, match="ResourceNotFound"):  # the unqualified grant is gone: no policy left
        aws_account.client("lambda").get_policy(FunctionName=APP)
    assert [entry["action"] for entry in run.state.history][-2:] == ["convert", "up"]
