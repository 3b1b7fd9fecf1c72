"""Least privilege and no leaks: what the deployed stack allows, and what the tool writes and prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from deployer import deploy
from deployer.cli import app
from tests.account import APP, BUCKET, Account

SECRET = "pa55-w0rd-never-shown"


def up(make_run, version: str = "1.0.0"):
    run = make_run(version)
    deploy.up(run)
    return run


def test_the_role_trusts_only_lambda_and_holds_only_basic_logging(make_run, aws_account: Account) -> None:
    up(make_run)
    role = aws_account.roles()[0]
    statements = role["AssumeRolePolicyDocument"]["Statement"]
    assert statements == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    iam = aws_account.client("iam")
    assert iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"] == []
    attached = iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]
    assert [policy["PolicyName"] for policy in attached] == ["AWSLambdaBasicExecutionRole"]


def test_logs_false_leaves_the_role_with_no_policy_at_all(make_run, aws_account: Account, project: Path) -> None:
    up(make_run)
    config = project / "deploy.toml"
    config.write_text(config.read_text().replace("timeout = 3", "timeout = 3\nlogs = false"))
    up(make_run)
    role_name = aws_account.roles()[0]["RoleName"]
    assert aws_account.client("iam").list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []


def test_a_policy_attached_by_hand_is_detached(make_run, aws_account: Account) -> None:
    up(make_run)
    iam = aws_account.client("iam")
    role_name = aws_account.roles()[0]["RoleName"]
    admin = iam.create_policy(PolicyName="TooMuch", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }))["Policy"]["Arn"]  # fmt: skip
    iam.attach_role_policy(RoleName=role_name, PolicyArn=admin)
    up(make_run)
    attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    assert [policy["PolicyName"] for policy in attached] == ["AWSLambdaBasicExecutionRole"]


def test_the_permission_lets_only_this_api_invoke(make_run, aws_account: Account) -> None:
    up(make_run)
    policy = json.loads(aws_account.client("lambda").get_policy(FunctionName=APP, Qualifier="test")["Policy"])
    [statement] = policy["Statement"]
    with pytest.raises(ClientError, match="ResourceNotFoundException"):  # nothing else may invoke the function
        aws_account.client("lambda").get_policy(FunctionName=APP)
    api_id = aws_account.rest_apis()[0]["id"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Condition"] == {
        "ArnLike": {"AWS:SourceArn": f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/*/*"}
    }


def test_a_bucket_it_creates_blocks_public_access_and_encrypts(make_run, aws_account: Account) -> None:
    up(make_run)
    s3 = aws_account.client("s3")
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                     "RestrictPublicBuckets": True}  # fmt: skip
    rules = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_secrets_and_credentials_are_never_printed_nor_stored(project: Path, aws_account: Account, monkeypatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "credential-" + SECRET)
    config = project / "deploy.toml"
    config.write_text(
        config.read_text().replace("timeout = 3", f'timeout = 3\nenvironment = {{ API_KEY = "{SECRET}" }}')
    )
    runner = CliRunner()
    outputs = []
    for arguments in (["up", "--version", "1.0.0"], ["status", "--json"]):
        result = runner.invoke(app, [*arguments, "--config", str(config)])
        assert result.exit_code == 0, result.stderr
        outputs += [result.stdout, result.stderr]
    config.write_text(config.read_text().replace(SECRET, SECRET + "-rotated"))
    # A new value is a new release (the same name with another configuration is refused): plan 1.0.1.
    result = runner.invoke(app, ["plan", "--version", "1.0.1", "--config", str(config)])
    assert result.exit_code == 3
    assert "environment API_KEY → API_KEY (values changed)" in result.stderr  # shown by name only
    outputs += [result.stdout, result.stderr]
    s3 = aws_account.client("s3")  # the shared state, and everything else in the bucket
    objects = s3.list_objects_v2(Bucket=BUCKET, Prefix="deployer-state/")["Contents"]
    stored = [s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read().decode() for item in objects]
    assert stored and all(SECRET not in text for text in outputs + stored)
    assert aws_account.functions()[0]["Environment"]["Variables"] == {"API_KEY": SECRET}
