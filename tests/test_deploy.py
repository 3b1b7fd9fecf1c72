"""The deploy order against an in-process emulated account: what each command creates, and what it costs.

The AWS request counts pinned here are the product's promise (see the README's benchmark table):
a change to them is a change to the product, made on purpose.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from deployer import deploy
from deployer.aws import is_mutating
from deployer.build import build
from deployer.errors import DeployerError
from tests.account import APP, Account


def up(make_context, version: str, **options):
    ctx = make_context(version)
    artifact = build(ctx.config)
    ctx.artifact_sha256, ctx.artifact_content_sha256 = artifact.sha256, artifact.content_sha256
    for name, value in options.items():
        setattr(ctx, name, value)
    outcomes = deploy.up(ctx)
    return ctx, {outcome.change.resource + " " + outcome.change.name: outcome.change.action for outcome in outcomes}


def writes(ctx) -> list[str]:
    return [call for call in ctx.aws.calls if is_mutating(call)]


def edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def test_fresh_up_creates_the_whole_stack_in_20_requests(make_context, aws_account: Account) -> None:
    ctx, actions = up(make_context, "1.0.0")
    aws_account.assert_stack("v1.0.0/example.zip")
    assert set(actions.values()) == {"create"}
    assert (ctx.state.app, ctx.state.stage, ctx.state.region) == (APP, "test", "us-east-1")
    # The bucket is created too: HeadObject, PutObject (NoSuchBucket), CreateBucket, PutPublicAccessBlock,
    # PutBucketEncryption, PutObject, then 14 for role, function, API wiring, stage and permission.
    assert len(ctx.aws.calls) == 20
    assert len(writes(ctx)) == 16


def test_fresh_up_into_an_existing_bucket_takes_16_requests(make_context, aws_account: Account) -> None:
    aws_account.client("s3").create_bucket(Bucket="deployer-example-artifacts")
    ctx, _ = up(make_context, "1.0.0")
    assert len(ctx.aws.calls) == 16
    assert writes(ctx) == [
        "PutObject", "CreateRole", "AttachRolePolicy", "CreateFunction", "CreateRestApi", "CreateResource",
        "PutMethod", "PutMethod", "PutIntegration", "PutIntegration", "CreateDeployment", "AddPermission",
    ]  # fmt: skip


def test_up_with_nothing_changed_makes_no_write_and_eight_reads(make_context, aws_account: Account) -> None:
    up(make_context, "1.0.0")
    ctx, actions = up(make_context, "1.0.0")
    assert set(actions.values()) == {"unchanged"}
    assert writes(ctx) == []
    assert ctx.aws.calls == [
        "HeadObject", "GetRole", "ListAttachedRolePolicies", "GetFunction", "GetResources", "GetStage",
        "GetDeployment", "GetPolicy",
    ]  # fmt: skip
    aws_account.assert_stack("v1.0.0/example.zip")


def test_a_new_version_uploads_and_updates_the_code_only(make_context, aws_account: Account, project: Path) -> None:
    up(make_context, "1.0.0")
    deployments_before = aws_account.client("apigateway").get_deployments(restApiId=aws_account.rest_apis()[0]["id"])
    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")
    ctx, actions = up(make_context, "1.0.1")
    assert writes(ctx) == ["PutObject", "UpdateFunctionCode"]
    assert actions["function ServerlessExample"] == "update"
    aws_account.assert_stack("v1.0.1/example.zip")
    deployments_after = aws_account.client("apigateway").get_deployments(restApiId=aws_account.rest_apis()[0]["id"])
    assert len(deployments_after["items"]) == len(deployments_before["items"])  # no new API deployment


def test_a_memory_change_is_one_configuration_update(make_context, aws_account: Account, project: Path) -> None:
    up(make_context, "1.0.0")
    edit(project / "deploy.toml", "memory = 128", "memory = 256")
    ctx, _ = up(make_context, "1.0.0")
    assert writes(ctx) == ["UpdateFunctionConfiguration"]
    assert aws_account.functions()[0]["MemorySize"] == 256


def test_environment_values_are_deployed_but_never_stored(make_context, aws_account: Account, project: Path) -> None:
    up(make_context, "1.0.0")
    edit(project / "deploy.toml", "timeout = 3", 'timeout = 3\nenvironment = { GREETING_SECRET = "s3cr3t-value" }')
    ctx, _ = up(make_context, "1.0.0")
    assert writes(ctx) == ["UpdateFunctionConfiguration"]
    assert aws_account.functions()[0]["Environment"]["Variables"] == {"GREETING_SECRET": "s3cr3t-value"}
    assert "s3cr3t-value" not in (project / ".deployer" / f"{APP}.json").read_text()


def test_rollback_is_one_write_and_serves_the_old_code(make_context, aws_account: Account, project: Path) -> None:
    up(make_context, "1.0.0")
    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")
    up(make_context, "1.0.1")
    ctx = make_context("1.0.0")
    deploy.rollback(ctx)
    assert writes(ctx) == ["UpdateFunctionCode"]
    assert len(ctx.aws.calls) == 2
    aws_account.assert_stack("v1.0.0/example.zip")
    assert (ctx.state.version, ctx.state.key) == ("1.0.0", "v1.0.0/example.zip")


def test_rollback_to_a_version_never_uploaded_names_it_and_lists_the_others(make_context, aws_account) -> None:
    up(make_context, "1.0.0")
    ctx = make_context("0.9.0")
    with pytest.raises(DeployerError, match=r"version 0\.9\.0 was never uploaded.*published versions: 1\.0\.0"):
        deploy.rollback(ctx)
    assert writes(ctx) == []


def test_an_api_changed_by_hand_is_repaired_and_redeployed(make_context, aws_account: Account) -> None:
    up(make_context, "1.0.0")
    gateway = aws_account.client("apigateway")
    api_id = aws_account.rest_apis()[0]["id"]
    root = next(item for item in aws_account.resources(api_id) if item["path"] == "/")
    gateway.put_integration(restApiId=api_id, resourceId=root["id"], httpMethod="ANY", type="MOCK")
    ctx, actions = up(make_context, "1.0.0")
    assert actions["integration ANY /"] == "update"
    assert writes(ctx) == ["PutIntegration", "CreateDeployment"]  # a new deployment on the same stage
    aws_account.assert_stack("v1.0.0/example.zip")


def test_down_removes_everything_and_a_second_down_is_harmless(make_context, aws_account: Account) -> None:
    up(make_context, "1.0.0")
    ctx = make_context()
    deploy.down(ctx, deploy.find_deployed(ctx))
    # GetRestApis: an API the state does not name but tagged for the app (a retried CreateRestApi) goes too.
    assert ctx.aws.calls == ["GetRestApis", "DeleteRestApi", "DeleteFunction", "ListAttachedRolePolicies",
                             "DetachRolePolicy", "DeleteRole"]  # fmt: skip
    assert aws_account.is_empty()
    ctx = make_context()
    found = deploy.find_deployed(ctx)
    assert found.empty
    assert not ctx.state.deployed


def test_down_treats_resources_already_gone_as_removed(make_context, aws_account: Account) -> None:
    up(make_context, "1.0.0")
    aws_account.client("lambda").delete_function(FunctionName=APP)
    ctx = make_context()
    outcomes = deploy.down(ctx, deploy.find_deployed(ctx))
    assert [outcome.change.action for outcome in outcomes] == ["delete", "absent", "delete"]
    assert aws_account.is_empty()


def test_plan_reads_only_and_names_the_fields_that_differ(make_context, aws_account: Account, project: Path) -> None:
    ctx = make_context("1.0.0")
    ctx.artifact_sha256 = build(ctx.config).sha256
    assert {change.action for change in deploy.plan(ctx)} == {"create"}
    assert writes(ctx) == [] and aws_account.is_empty()

    up(make_context, "1.0.0")
    edit(project / "deploy.toml", "memory = 128", "memory = 512")
    ctx = make_context("1.0.0")
    ctx.artifact_sha256 = build(ctx.config).sha256
    changes = {change.resource: change for change in deploy.plan(ctx)}
    assert writes(ctx) == []
    assert changes["function"].action == "update"
    assert changes["function"].diffs == {"memorysize": (128, 512)}
    assert [resource for resource, change in changes.items() if change.action != "unchanged"] == ["function"]


def test_the_architecture_is_passed_to_lambda_and_a_change_is_a_code_update(
    make_context, aws_account: Account, project: Path
) -> None:
    edit(project / "deploy.toml", "timeout = 3", 'timeout = 3\narchitecture = "arm64"')
    up(make_context, "1.0.0")
    assert aws_account.functions()[0]["Architectures"] == ["arm64"]

    # Lambda takes a new architecture with the code. moto ignores that field of UpdateFunctionCode,
    # so the request itself is checked.
    sent: list[dict] = []
    session = boto3.Session()
    session.events.register("provide-client-params.lambda.UpdateFunctionCode", lambda params, **_: sent.append(params))
    edit(project / "deploy.toml", 'architecture = "arm64"', 'architecture = "x86_64"')
    ctx = make_context("1.0.0", session=session)
    ctx.artifact_sha256 = build(ctx.config).sha256
    deploy.up(ctx)
    assert writes(ctx) == ["UpdateFunctionCode"]
    assert [params["Architectures"] for params in sent] == [["x86_64"]]


def test_the_same_source_compressed_differently_is_the_same_version(
    make_context, aws_account: Account, project: Path, monkeypatch
) -> None:
    """Another machine's zlib may deflate differently: the content, not the zip's bytes, names a version."""
    first, _ = up(make_context, "1.0.0")
    monkeypatch.setattr("deployer.build.COMPRESSION_LEVEL", 1)
    rebuilt = build(first.config, force=True)
    assert rebuilt.sha256 != first.artifact_sha256 and rebuilt.content_sha256 == first.artifact_content_sha256
    ctx, actions = up(make_context, "1.0.0")
    assert writes(ctx) == [] and set(actions.values()) == {"unchanged"}
    aws_account.assert_stack("v1.0.0/example.zip")  # still the bytes first published

    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")
    with pytest.raises(DeployerError, match="already published with different bytes"):
        up(make_context, "1.0.0")
