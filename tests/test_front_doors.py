"""The stage's front door (issue 26): an HTTP API or a function URL in place of the REST API, the same releases behind.

Each type is checked in the emulated account itself (tests/account.py): what exists and how it is wired to the
stage's alias. A release, a canary and a rollback stay alias moves whatever the door; a type switch makes the new
door, reads it back, and only then removes the old one (the order of requests is checked in the request log).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployer import deploy
from deployer.cli import app
from deployer.errors import DeployerError
from tests.account import APP, Account, state_file
from tests.support import edit, imported_certificate, writes

REGION = "us-east-1"


def up(make_run, version: str, **options):
    run = make_run(version, **options)
    outcomes = deploy.up(run)
    return run, {outcome.change.resource: outcome.change for outcome in outcomes}


def front_door(project: Path, kind: str, extra: str = "") -> None:
    """Set [api] type (and more [api] keys) in the project's deploy.toml, whatever it said before."""
    config = project / "deploy.toml"
    head, _, _ = config.read_text().partition("\n[api]\n")
    config.write_text(f'{head}\n[api]\nstage = "test"\ntype = "{kind}"\n{extra}')


def new_code(project: Path) -> None:
    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")


# ---- HTTP API ---------------------------------------------------------------------------------------------------


def test_http_creates_the_api_its_integration_route_grant_and_stage_wired_to_the_alias(
    make_run, aws_account: Account, project: Path
) -> None:
    front_door(project, "http")
    run, changes = up(make_run, "1.0.0")
    stack = aws_account.assert_http_door("v1.0.0/example.zip")
    api_id = stack["api"]["ApiId"]
    assert run.state.base_url == f"https://{api_id}.execute-api.{REGION}.amazonaws.com/"  # no stage: `$default`
    assert (run.state.api_type, run.state.http_api_id, run.state.rest_api_id) == ("http", api_id, None)
    assert run.state.http_integration_id and run.state.http_route_id
    http_writes = [call for call in writes(run) if call in ("CreateApi", "CreateIntegration", "CreateRoute",
                                                             "AddPermission", "CreateStage")]  # fmt: skip
    assert http_writes == ["CreateApi", "CreateIntegration", "CreateRoute", "AddPermission", "CreateStage"]
    # The REST API's steps asked nothing at all.
    assert not [call for call in run.aws.calls if call in ("GetRestApis", "GetRestApi", "GetResources", "GetStages")]
    assert changes["rest api"].action == "inactive"


def test_http_unchanged_makes_no_write(make_run, aws_account: Account, project: Path) -> None:
    front_door(project, "http")
    up(make_run, "1.0.0")
    run, changes = up(make_run, "1.0.0")
    assert writes(run) == []
    assert {change.action for change in changes.values()} == {"unchanged", "inactive"}
    # The API the state names (GetApi), its integrations, routes and stages, the alias's and the function's policies.
    assert [call for call in run.aws.calls if "Api" in call or call in ("GetIntegrations", "GetRoutes", "GetStages")] \
        == ["GetApi", "GetIntegrations", "GetRoutes", "GetStages"]  # fmt: skip
    aws_account.assert_http_door("v1.0.0/example.zip")


def test_http_new_release_canary_and_rollback_are_alias_moves_the_api_untouched(
    make_run, aws_account: Account, project: Path
) -> None:
    front_door(project, "http")
    first, _ = up(make_run, "1.0.0")
    new_code(project)
    run, _ = up(make_run, "1.0.1")
    assert writes(run) == ["PutObject", "UpdateFunctionCode", "PublishVersion", "UpdateAlias"]
    aws_account.assert_http_door("v1.0.1/example.zip")

    edit(project / "function" / "main.py", "Bonjour au monde!", "Hallo Welt!")
    run, _ = up(make_run, "1.0.2", canary=0.1)
    assert writes(run) == ["PutObject", "UpdateFunctionCode", "PublishVersion", "UpdateAlias"]
    alias = aws_account.alias(APP, "test")
    assert alias["RoutingConfig"]["AdditionalVersionWeights"] == {"3": pytest.approx(0.1)}

    run = make_run("1.0.0")
    deploy.rollback(run)
    assert run.aws.calls == ["ListVersionsByFunction", "UpdateAlias"]  # no REST API to look up
    aws_account.assert_http_door("v1.0.0/example.zip")
    assert run.state.base_url == first.state.base_url  # the URL does not move with a rollback


def test_http_down_leaves_nothing(make_run, aws_account: Account, project: Path) -> None:
    front_door(project, "http")
    up(make_run, "1.0.0")
    run = make_run()
    found = deploy.find_deployed(run.target)
    assert len(found.http_api_ids) == 1
    outcomes = deploy.down(run, found)
    assert ("http api", "delete") in [(outcome.change.resource, outcome.change.action) for outcome in outcomes]
    assert aws_account.is_empty()
    assert not make_run().state.deployed


def test_http_drift_is_corrected(make_run, aws_account: Account, project: Path) -> None:
    front_door(project, "http")
    up(make_run, "1.0.0")
    api_id = aws_account.http_apis()[0]["ApiId"]
    gateway = aws_account.client("apigatewayv2")
    integration = gateway.get_integrations(ApiId=api_id)["Items"][0]
    gateway.update_integration(ApiId=api_id, IntegrationId=integration["IntegrationId"], PayloadFormatVersion="1.0")
    gateway.update_stage(ApiId=api_id, StageName="$default", AutoDeploy=False)
    aws_account.client("lambda").remove_permission(FunctionName=APP, StatementId="deployer-httpapi-test",
                                                   Qualifier="test")  # fmt: skip
    run, changes = up(make_run, "1.0.0")
    assert writes(run) == ["UpdateIntegration", "AddPermission", "UpdateStage"]
    assert changes["http integration"].action == "update"
    aws_account.assert_http_door("v1.0.0/example.zip")


def test_http_a_lost_state_finds_the_api_again_by_its_tags(make_run, aws_account: Account, project: Path) -> None:
    front_door(project, "http")
    first, _ = up(make_run, "1.0.0")
    state_file(project).unlink()
    run, _ = up(make_run, "1.0.0")
    assert "GetApis" in run.aws.calls and "CreateApi" not in run.aws.calls
    aws_account.assert_http_door("v1.0.0/example.zip")  # one API, not two
    assert run.state.http_api_id == first.state.http_api_id
    assert run.state.base_url == first.state.base_url


def test_http_cors_is_the_apis_and_a_change_by_hand_is_put_back(make_run, aws_account: Account, project: Path) -> None:
    front_door(project, "http", 'cors = { allow_origins = ["https://example.com"], allow_methods = ["GET"] }\n')
    up(make_run, "1.0.0")
    api = aws_account.http_apis()[0]
    wanted = {"AllowOrigins": ["https://example.com"], "AllowMethods": ["GET"]}
    assert api["CorsConfiguration"] == wanted
    aws_account.client("apigatewayv2").update_api(ApiId=api["ApiId"], CorsConfiguration={"AllowOrigins": ["*"]})
    run, _ = up(make_run, "1.0.0")
    assert writes(run) == ["UpdateApi"]
    assert aws_account.http_apis()[0]["CorsConfiguration"] == wanted


def test_http_a_custom_domain_maps_to_the_http_api_and_moves_over_from_the_rest_api(
    make_run, aws_account: Account, project: Path
) -> None:
    domain = "api.example.com"
    settings = (
        f'domain = "{domain}"\nbase_path = "v1"\ncertificate_arn = "{imported_certificate(aws_account, domain)}"\n'
    )
    v1, v2 = aws_account.client("apigateway"), aws_account.client("apigatewayv2")
    front_door(project, "rest", settings)
    up(make_run, "1.0.0")
    assert [item["basePath"] for item in v1.get_base_path_mappings(domainName=domain)["items"]] == ["v1"]

    front_door(project, "http", settings)
    run, _ = up(make_run, "1.0.0")
    http_id = aws_account.assert_http_door("v1.0.0/example.zip")["api"]["ApiId"]
    mappings = v2.get_api_mappings(DomainName=domain)["Items"]
    assert [(item["ApiId"], item["Stage"], item["ApiMappingKey"]) for item in mappings] == [(http_id, "$default", "v1")]
    assert v1.get_base_path_mappings(domainName=domain).get("items", []) == []  # the path moved to the HTTP API
    assert run.state.domain_url == f"https://{domain}/v1"
    again, _ = up(make_run, "1.0.0")
    assert writes(again) == []

    run = make_run()
    deploy.down(run, deploy.find_deployed(run.target))
    assert v2.get_api_mappings(DomainName=domain)["Items"] == []
    assert v1.get_domain_names()["items"] == [] and aws_account.is_empty()


# ---- function URL -----------------------------------------------------------------------------------------------


def test_url_creates_the_alias_function_url_and_its_public_grants(
    make_run, aws_account: Account, project: Path
) -> None:
    front_door(project, "url")
    run, changes = up(make_run, "1.0.0")
    stack = aws_account.assert_url_door("v1.0.0/example.zip")
    url = stack["url"]["FunctionUrl"].rstrip("/") + "/"
    assert (run.state.base_url, run.state.function_url, run.state.api_type) == (url, url, "url")
    assert run.state.rest_api_id is None and run.state.http_api_id is None
    assert writes(run)[-3:] == ["CreateFunctionUrlConfig", "AddPermission", "AddPermission"]
    assert {changes["rest api"].action, changes["http api"].action} == {"inactive"}


def test_url_unchanged_new_release_canary_and_rollback(make_run, aws_account: Account, project: Path) -> None:
    front_door(project, "url")
    first, _ = up(make_run, "1.0.0")
    run, _ = up(make_run, "1.0.0")
    assert writes(run) == []
    new_code(project)
    run, _ = up(make_run, "1.0.1")
    assert writes(run) == ["PutObject", "UpdateFunctionCode", "PublishVersion", "UpdateAlias"]
    aws_account.assert_url_door("v1.0.1/example.zip")
    edit(project / "function" / "main.py", "Bonjour au monde!", "Hallo Welt!")
    run, _ = up(make_run, "1.0.2", canary=0.25)
    assert writes(run) == ["PutObject", "UpdateFunctionCode", "PublishVersion", "UpdateAlias"]
    assert aws_account.alias(APP, "test")["RoutingConfig"]["AdditionalVersionWeights"] == {"3": pytest.approx(0.25)}
    run = make_run("1.0.0")
    deploy.rollback(run)
    assert run.aws.calls == ["ListVersionsByFunction", "UpdateAlias"]
    aws_account.assert_url_door("v1.0.0/example.zip")
    assert run.state.base_url == first.state.base_url


def test_url_auth_and_cors_changes_and_drift_are_one_update(make_run, aws_account: Account, project: Path) -> None:
    front_door(project, "url")
    up(make_run, "1.0.0")
    front_door(project, "url", 'auth = "iam"\ncors = { allow_origins = ["https://example.com"] }\n')
    run, changes = up(make_run, "1.0.0")
    # IAM: the callers' policies grant it, so the public statements go.
    assert sorted(writes(run)) == ["RemovePermission", "RemovePermission", "UpdateFunctionUrlConfig"]
    stack = aws_account.assert_url_door("v1.0.0/example.zip", auth="AWS_IAM")
    assert stack["url"]["Cors"] == {"AllowOrigins": ["https://example.com"]}
    assert changes["function url"].action == "update"

    functions = aws_account.client("lambda")
    functions.update_function_url_config(FunctionName=APP, Qualifier="test", AuthType="NONE", Cors={})  # by hand
    run, _ = up(make_run, "1.0.0")
    assert writes(run) == ["UpdateFunctionUrlConfig"]
    stack = aws_account.assert_url_door("v1.0.0/example.zip", auth="AWS_IAM")
    assert stack["url"]["Cors"] == {"AllowOrigins": ["https://example.com"]}


def test_url_a_statement_not_ours_is_removed_ours_are_kept(make_run, aws_account: Account, project: Path) -> None:
    front_door(project, "url")
    up(make_run, "1.0.0")
    functions = aws_account.client("lambda")
    by_hand = {"StatementId": "by-hand", "Action": "lambda:InvokeFunction", "Principal": "s3.amazonaws.com"}
    functions.add_permission(FunctionName=APP, Qualifier="test", **by_hand)
    run, _ = up(make_run, "1.0.0")
    assert writes(run) == ["RemovePermission"]
    aws_account.assert_url_door("v1.0.0/example.zip")


def test_a_statement_named_like_another_doors_that_no_door_explains_is_removed(
    make_run, aws_account: Account, project: Path
) -> None:
    front_door(project, "url")
    up(make_run, "1.0.0")
    public = {"StatementId": "deployer-httpapi-test", "Action": "lambda:InvokeFunction", "Principal": "*"}
    aws_account.client("lambda").add_permission(FunctionName=APP, Qualifier="test", **public)  # no HTTP API here
    run, _ = up(make_run, "1.0.0")
    assert writes(run) == ["RemovePermission"]
    aws_account.assert_url_door("v1.0.0/example.zip")


def test_url_down_leaves_nothing(make_run, aws_account: Account, project: Path) -> None:
    front_door(project, "url")
    up(make_run, "1.0.0")
    run = make_run()
    deploy.down(run, deploy.find_deployed(run.target))
    assert aws_account.is_empty()
    assert not make_run().state.deployed


# ---- type switches ----------------------------------------------------------------------------------------------


def switch(make_run, project: Path, old: str, new: str):
    """Deploy type `old`, then switch to `new`: the plan's line for the old door, and the switching run."""
    front_door(project, old)
    before, _ = up(make_run, "1.0.0")
    front_door(project, new)
    planned = {change.resource: change for change in deploy.plan(make_run("1.0.0").target)}
    run, changes = up(make_run, "1.0.0")
    assert before.state.base_url != run.state.base_url
    old_door = changes["old front door"]
    assert old_door.action == "delete" and old_door.name == old
    assert old_door.note == f"the URL changes: {before.state.base_url} -> {run.state.base_url}"
    line = planned["old front door"]
    assert line.action == "delete" and [(diff.field, diff.old) for diff in line.diffs] == [
        ("URL", before.state.base_url)
    ]
    return run


def test_switch_rest_to_http_makes_the_api_then_removes_the_rest_api(
    make_run, aws_account: Account, project: Path
) -> None:
    run = switch(make_run, project, "rest", "http")
    calls = run.aws.calls
    assert calls.index("CreateStage") < calls.index("DeleteRestApi")  # the new door is made before the old goes
    assert calls.index("CreateStage") < calls.index("RemovePermission")  # the REST API's grant goes with it
    assert calls.index("GetRoutes", calls.index("CreateStage")) < calls.index("DeleteRestApi")  # and read back
    aws_account.assert_http_door("v1.0.0/example.zip")  # no REST API, no REST statement left
    assert (run.state.rest_api_id, run.state.deployment_id, run.state.api_type) == (None, None, "http")
    again, _ = up(make_run, "1.0.0")
    assert writes(again) == []


def test_a_switch_never_deletes_an_api_the_state_names_but_this_app_does_not_own(
    make_run, aws_account: Account, project: Path
) -> None:
    """The old door's steps are inactive after a switch, so its IDs come from the state alone: an edited or copied
    state naming another app's API must not get that API deleted."""
    up(make_run, "1.0.0")  # a REST stage
    other = aws_account.client("apigateway").create_rest_api(name="SomeoneElses")["id"]
    path = state_file(project)
    recorded = json.loads(path.read_text())
    recorded["rest_api_id"] = other
    path.write_text(json.dumps(recorded))
    front_door(project, "http")
    run, changes = up(make_run, "1.0.0")
    assert "DeleteRestApi" not in run.aws.calls
    assert [api["id"] for api in aws_account.client("apigateway").get_rest_apis()["items"] if api["id"] == other]
    assert run.state.rest_api_id is None and changes["old front door"].action == "delete"  # forgotten, not deleted


def test_switch_http_to_url_makes_the_url_then_removes_the_http_api(
    make_run, aws_account: Account, project: Path
) -> None:
    run = switch(make_run, project, "http", "url")
    calls = run.aws.calls
    created = calls.index("CreateFunctionUrlConfig")
    assert created < calls.index("GetFunctionUrlConfig", created) < calls.index("DeleteApi")  # made, read back, then
    aws_account.assert_url_door("v1.0.0/example.zip")
    assert (run.state.http_api_id, run.state.api_type) == (None, "url")


def test_switch_url_to_rest_deploys_the_rest_api_then_removes_the_url(
    make_run, aws_account: Account, project: Path
) -> None:
    run = switch(make_run, project, "url", "rest")
    calls = run.aws.calls
    assert calls.index("CreateDeployment") < calls.index("DeleteFunctionUrlConfig")
    # The URL's public statements stay until the REST API serves: never taken for statements not ours on the way.
    assert calls.index("CreateDeployment") < calls.index("RemovePermission")
    aws_account.assert_stack("v1.0.0/example.zip")
    assert set(aws_account.alias_statements()) == {"deployer-apigateway-test"}  # the URL's statements are gone
    with pytest.raises(aws_account.client("lambda").exceptions.ResourceNotFoundException):
        aws_account.client("lambda").get_function_url_config(FunctionName=APP, Qualifier="test")
    assert (run.state.function_url, run.state.api_type) == (None, "rest")


def test_a_switch_whose_new_door_is_not_wired_leaves_the_old_one(
    make_run, aws_account: Account, project: Path, monkeypatch
) -> None:
    from deployer.resources import http_api

    front_door(project, "rest")
    up(make_run, "1.0.0")
    front_door(project, "http")
    monkeypatch.setattr(http_api, "wiring_problem", lambda *_: "its route goes nowhere")
    with pytest.raises(DeployerError, match=r"its route goes nowhere.*the old one is left serving"):
        up(make_run, "1.0.0")
    assert len(aws_account.rest_apis()) == 1 and len(aws_account.http_apis()) == 1


# ---- what people and scripts see ------------------------------------------------------------------------------


def test_status_shows_the_type_and_the_url(project: Path, aws_account: Account) -> None:
    front_door(project, "url")
    runner = CliRunner()
    result = runner.invoke(app, ["up", "--version", "1.0.0", "--config", str(project / "deploy.toml")])
    assert result.exit_code == 0, result.stderr
    url = aws_account.client("lambda").get_function_url_config(FunctionName=APP, Qualifier="test")["FunctionUrl"]
    assert result.stdout.strip() == url.rstrip("/") + "/"
    assert "rest api" not in result.stderr  # the doors the stage does not use are not reported
    result = runner.invoke(app, ["status", "--json", "--config", str(project / "deploy.toml")])
    data = json.loads(result.stdout)
    assert (data["api_type"], data["base_url"], data["function_url"]) == (
        "url",
        url.rstrip("/") + "/",
        data["base_url"],
    )
    assert data["rest_api_id"] is None


@pytest.mark.parametrize(
    ("api", "message"),
    [
        ('type = "grpc"\n', 'type must be "rest", "http" or "url"'),
        ('type = "url"\ndomain = "api.example.com"\n', "a function URL takes no custom domain"),
        ('type = "http"\nauth = "iam"\n', 'auth = "iam" is for a function URL'),
        ('cors = { allow_origins = ["*"] }\n', "cors is answered by an HTTP API or a function URL"),
        ('type = "url"\ncors = { allow_origin = ["*"] }\n', "unknown key 'allow_origin'"),
        ('type = "url"\ncors = { max_age = -1 }\n', "max_age must be a number of seconds"),
    ],
)
def test_bad_front_door_settings_are_one_line_and_exit_2(cli, project: Path, aws_account: Account, api, message):
    config = project / "deploy.toml"
    config.write_text(config.read_text() + api)
    stderr = cli("plan", "--version", "1.0.0", expect=2)
    assert message in stderr
    assert aws_account.is_empty()


def test_a_stage_takes_its_own_type(project: Path) -> None:
    from deployer.config import load_config

    config = project / "deploy.toml"
    config.write_text(config.read_text() + 'type = "http"\n\n[stages.prod]\ntype = "url"\nauth = "iam"\n')
    assert load_config(config).api_type == "http"
    prod = load_config(config, "prod")
    assert (prod.api_type, prod.url_auth) == ("url", "AWS_IAM")


def test_plan_and_up_say_in_one_line_that_the_url_changes(project: Path, aws_account: Account) -> None:
    runner, config = CliRunner(), ["--config", str(project / "deploy.toml")]
    front_door(project, "rest")
    first = runner.invoke(app, ["up", "--version", "1.0.0", *config])
    assert first.exit_code == 0, first.stderr
    old_url = first.stdout.strip()
    front_door(project, "http")
    planned = runner.invoke(app, ["plan", "--version", "1.0.0", *config])
    assert planned.exit_code == 3, planned.stderr
    lines = [line for line in planned.stderr.splitlines() if "old front door" in line]
    assert len(lines) == 1 and f"URL {old_url} → the new http front door's URL" in lines[0], planned.stderr
    done = runner.invoke(app, ["up", "--version", "1.0.0", *config])
    assert done.exit_code == 0, done.stderr
    new_url = done.stdout.strip()
    assert new_url.startswith(f"https://{aws_account.http_apis()[0]['ApiId']}.execute-api.")
    lines = [line for line in done.stderr.splitlines() if "old front door" in line]
    assert len(lines) == 1 and f"the URL changes: {old_url} -> {new_url}" in lines[0], done.stderr
