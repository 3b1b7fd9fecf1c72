"""The deploy order against an in-process emulated account: what each command creates, and what it costs.

The AWS request counts pinned here are the product's promise (see the README's benchmark table):
a change to them is a change to the product, made on purpose.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from deployer import deploy
from deployer.build import build
from deployer.errors import DeployerError
from deployer.plan import Diff
from deployer.resources import function
from tests.account import APP, Account, state_file
from tests.support import assert_in_order, edit, writes


def up(make_run, version: str, **options):
    run = make_run(version, **options)
    outcomes = deploy.up(run)
    return run, {
        outcome.change.resource + " " + outcome.change.name: outcome.change.action
        for outcome in outcomes
        if outcome.change.action != "inactive"  # the steps of the front doors a REST stage does not use
    }


def test_fresh_up_creates_the_whole_stack_in_28_requests(make_run, aws_account: Account) -> None:
    run, actions = up(make_run, "1.0.0")
    aws_account.assert_stack("v1.0.0/example.zip")
    assert set(actions.values()) == {"create", "check", "unchanged"}  # unchanged: no old versions to prune
    assert actions["check GET /"] == "check"
    assert (run.state.app, run.state.stage, run.state.region) == (APP, "test", "us-east-1")
    assert (run.state.version, run.state.alias, run.state.lambda_version) == ("1.0.0", "test", "1")
    # The bucket is created too: PutObject (NoSuchBucket), CreateBucket, PutPublicAccessBlock, PutBucketEncryption,
    # PutBucketLifecycleConfiguration. The log group too: DescribeLogGroups, CreateLogGroup, PutRetentionPolicy.
    # ListMultipartUploads after the upload: a killed run's unfinished parts are aborted.
    assert len(run.aws.calls) == 28
    assert len(writes(run)) == 21


def test_fresh_up_into_an_existing_bucket_takes_23_requests(make_run, aws_account: Account, lambda_invoke) -> None:
    aws_account.client("s3").create_bucket(Bucket="deployer-example-artifacts")
    run, _ = up(make_run, "1.0.0")
    plan = ["HeadObject", "GetRole", "DescribeLogGroups", "GetFunction", "GetRestApis"]  # the plan: nothing exists
    assert sorted(run.aws.calls[:5]) == sorted(plan)  # read at once, before any write
    assert sorted(run.aws.calls[5:]) == sorted([
        "PutObject",
        "ListMultipartUploads",  # a killed run's unfinished upload of this key is aborted
        "CreateRole", "AttachRolePolicy", "CreateLogGroup", "PutRetentionPolicy", "CreateFunction", "PublishVersion",
        "Invoke",  # the check, on version 1, before the alias exists
        "CreateAlias", "CreateRestApi", "CreateResource", "PutMethod", "PutMethod", "PutIntegration",
        "PutIntegration", "AddPermission", "CreateDeployment",
    ])  # fmt: skip
    # Steps run at once where they can (the upload, the role, the log group, the API's wiring); these orders hold:
    assert_in_order(run.aws.calls, "PutObject", "CreateFunction")
    assert_in_order(run.aws.calls, "CreateRole", "CreateFunction")
    assert_in_order(run.aws.calls, "PutRetentionPolicy", "CreateFunction")  # else Lambda makes a group kept forever
    assert_in_order(run.aws.calls, "CreateFunction", "PublishVersion", "Invoke", "CreateAlias", "AddPermission")
    assert_in_order(run.aws.calls, "CreateRestApi", "CreateResource", "PutMethod", "PutIntegration")
    assert_in_order(run.aws.calls, "PutIntegration", "CreateDeployment")
    assert_in_order(run.aws.calls, "AddPermission", "CreateDeployment")  # the API may call the alias before it does
    assert [qualifier for qualifier, _ in lambda_invoke.invocations] == ["1"]


def test_an_unchanged_up_makes_no_write_and_fourteen_reads(make_run, aws_account: Account, lambda_invoke) -> None:
    up(make_run, "1.0.0")
    run, actions = up(make_run, "1.0.0")
    assert set(actions.values()) == {"unchanged"}, actions
    assert writes(run) == []
    assert sorted(run.aws.calls) == sorted([  # read in waves, several at once: the order varies
        "HeadObject", "GetRole", "ListAttachedRolePolicies",
        "ListRolePolicies",  # inline policies are never ours: up removes any
        "DescribeLogGroups",  # its retention
        "GetFunction", "ListVersionsByFunction", "GetAlias",
        "GetRestApi",  # the API the state names: ours only if its name and tags say so
        "GetResources",
        "GetPolicy", "GetPolicy",  # the alias's and the function's: a statement not ours is drift
        "GetStages",  # ours, and any a renamed [api] stage left behind
        "GetDeployment",
    ])  # fmt: skip
    assert len(lambda_invoke.invocations) == 1  # the first up's check only: what serves was checked then
    aws_account.assert_stack("v1.0.0/example.zip")


def test_a_new_version_is_upload_code_update_publish_and_alias_move(
    make_run, aws_account: Account, project: Path, lambda_invoke
) -> None:
    up(make_run, "1.0.0")
    deployments_before = aws_account.client("apigateway").get_deployments(restApiId=aws_account.rest_apis()[0]["id"])
    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")
    run, actions = up(make_run, "1.0.1")
    assert writes(run) == ["PutObject", "UpdateFunctionCode", "PublishVersion", "UpdateAlias"]
    assert run.aws.calls.index("Invoke") < run.aws.calls.index("UpdateAlias")  # checked before traffic moves
    assert lambda_invoke.invocations[-1][0] == "2"  # the new version itself, not the alias
    assert actions["function ServerlessExample"] == "update"
    aws_account.assert_stack("v1.0.1/example.zip")
    deployments_after = aws_account.client("apigateway").get_deployments(restApiId=aws_account.rest_apis()[0]["id"])
    assert len(deployments_after["items"]) == len(deployments_before["items"])  # no new API deployment


def test_a_memory_change_is_one_configuration_update(make_run, aws_account: Account, project: Path) -> None:
    up(make_run, "1.0.0")
    edit(project / "deploy.toml", "memory = 128", "memory = 256")
    run, _ = up(make_run, "1.0.0", force=True)  # the same release name, another configuration: only forced
    assert writes(run) == ["UpdateFunctionConfiguration", "PublishVersion", "UpdateAlias"]
    assert aws_account.assert_stack("v1.0.0/example.zip")["live"]["MemorySize"] == 256


def test_environment_values_are_deployed_but_never_stored(make_run, aws_account: Account, project: Path) -> None:
    up(make_run, "1.0.0")
    edit(project / "deploy.toml", "timeout = 3", 'timeout = 3\nenvironment = { GREETING_SECRET = "s3cr3t-value" }')
    run, _ = up(make_run, "1.0.0", force=True)
    assert writes(run) == ["UpdateFunctionConfiguration", "PublishVersion", "UpdateAlias"]
    live = aws_account.assert_stack("v1.0.0/example.zip")["live"]
    assert live["Environment"]["Variables"] == {"GREETING_SECRET": "s3cr3t-value"}
    assert "s3cr3t-value" not in (state_file(project)).read_text()


def test_rollback_is_one_write_and_serves_the_old_code(make_run, aws_account: Account, project: Path) -> None:
    up(make_run, "1.0.0")
    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")
    up(make_run, "1.0.1")
    run = make_run("1.0.0")
    deploy.rollback(run)
    # One write; then one read: the API whose URL it prints is this app's (a state can be edited to name another's).
    assert run.aws.calls == ["ListVersionsByFunction", "UpdateAlias", "GetRestApi"]
    aws_account.assert_stack("v1.0.0/example.zip")
    assert (run.state.version, run.state.key, run.state.lambda_version) == ("1.0.0", "v1.0.0/example.zip", "1")


def test_rollback_to_a_version_never_uploaded_names_it_and_lists_the_others(make_run, aws_account) -> None:
    up(make_run, "1.0.0")
    run = make_run("0.9.0")
    with pytest.raises(DeployerError, match=r"version 0\.9\.0 was never uploaded.*published versions: 1\.0\.0"):
        deploy.rollback(run)
    assert writes(run) == []


def test_an_api_changed_by_hand_is_repaired_and_redeployed(make_run, aws_account: Account) -> None:
    up(make_run, "1.0.0")
    gateway = aws_account.client("apigateway")
    api_id = aws_account.rest_apis()[0]["id"]
    root = next(item for item in aws_account.resources(api_id) if item["path"] == "/")
    gateway.put_integration(restApiId=api_id, resourceId=root["id"], httpMethod="ANY", type="MOCK")
    run, actions = up(make_run, "1.0.0")
    assert actions["integration ANY /"] == "update"
    assert writes(run) == ["PutIntegration", "CreateDeployment"]  # a new deployment on the same stage
    aws_account.assert_stack("v1.0.0/example.zip")


def test_down_removes_everything_and_a_second_down_is_harmless(make_run, aws_account: Account) -> None:
    up(make_run, "1.0.0")
    run = make_run()
    deploy.down(run, deploy.find_deployed(run.target))
    # Found by name and tags, never on a state file's word alone (a state can be copied from another app):
    # every tagged API of the app's name goes, an orphan of a retried CreateRestApi too.
    assert run.aws.calls == ["GetRestApis", "GetFunction", "GetRole", "DescribeLogGroups", "ListTagsForResource",
                             "DeleteRestApi", "DeleteFunction", "DeleteLogGroup",
                             "ListAttachedRolePolicies", "DetachRolePolicy", "DeleteRole",
                             "ListMultipartUploads"]  # fmt: skip
    assert aws_account.is_empty()
    run = make_run()
    found = deploy.find_deployed(run.target)
    assert found.empty
    assert not run.state.deployed


def test_down_treats_resources_already_gone_as_removed(make_run, aws_account: Account) -> None:
    up(make_run, "1.0.0")
    run = make_run()
    found = deploy.find_deployed(run.target)
    aws_account.client("lambda").delete_function(FunctionName=APP)  # gone between the look and the delete
    outcomes = deploy.down(run, found)
    assert [outcome.change.action for outcome in outcomes] == ["delete", "absent", "delete", "delete"]
    assert aws_account.is_empty()


def test_plan_reads_only_and_names_the_fields_that_differ(make_run, aws_account: Account, project: Path) -> None:
    run = make_run("1.0.0")
    assert {change.action for change in deploy.plan(run.target)} == {"create", "check", "unchanged", "inactive"}
    assert writes(run) == [] and aws_account.is_empty()

    up(make_run, "1.0.0")
    edit(project / "deploy.toml", "memory = 128", "memory = 512")
    run = make_run("1.0.0", force=True)
    changes = {change.resource: change for change in deploy.plan(run.target)}
    assert writes(run) == []
    assert changes["function"].action == "update"
    assert changes["function"].diffs == (Diff(function.Field.MEMORY, 128, 512),)
    changing = [resource for resource, change in changes.items() if change.action not in ("unchanged", "inactive")]
    assert changing == ["function", "version", "check", "alias"]  # a new release, checked, then live


def test_the_architecture_is_passed_to_lambda_and_a_change_is_a_code_update(
    make_run, aws_account: Account, project: Path
) -> None:
    edit(project / "deploy.toml", "timeout = 3", 'timeout = 3\narchitecture = "arm64"')
    up(make_run, "1.0.0")
    assert aws_account.functions()[0]["Architectures"] == ["arm64"]

    # Lambda takes a new architecture with the code. moto ignores that field of UpdateFunctionCode,
    # so the request itself is checked.
    sent: list[dict] = []
    session = boto3.Session()
    session.events.register("provide-client-params.lambda.UpdateFunctionCode", lambda params, **_: sent.append(params))
    edit(project / "deploy.toml", 'architecture = "arm64"', 'architecture = "x86_64"')
    run = make_run("1.0.0", session=session, force=True)
    deploy.up(run)
    assert writes(run) == ["UpdateFunctionCode", "PublishVersion", "UpdateAlias"]
    assert [params["Architectures"] for params in sent] == [["x86_64"]]


def test_the_same_source_compressed_differently_is_the_same_version(
    make_run, aws_account: Account, project: Path, monkeypatch
) -> None:
    """Another machine's zlib may deflate differently: the content, not the zip's bytes, names a version."""
    first, _ = up(make_run, "1.0.0")
    monkeypatch.setattr("deployer.build.zipwriter.COMPRESSION_LEVEL", 1)
    rebuilt = build(first.config, force=True)
    published = first.target.artifact
    assert rebuilt.sha256 != published.sha256 and rebuilt.content_sha256 == published.content_sha256
    run, actions = up(make_run, "1.0.0")
    assert writes(run) == [] and set(actions.values()) == {"unchanged"}
    aws_account.assert_stack("v1.0.0/example.zip")  # still the bytes first published

    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")
    with pytest.raises(DeployerError, match="already published with different bytes"):
        up(make_run, "1.0.0")
