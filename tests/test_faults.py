"""What real AWS does that moto does not (docs/ARCHITECTURE.md, "What real AWS does"), injected in front
of moto: `up` survives each.

Every test injects one behaviour with tests/faults.py, then checks three things: the up succeeds, the
account ends up exactly right (Account.assert_stack), and the retry or wait that saved it really
happened (the deployer's backoff delays, botocore's retry attempts, the waiter's polls). Where the
injected answer is one only the deployer retries, the test first shows that without that retry the
same answer fails the deploy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import typer
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from deployer import deploy
from deployer.aws import RETRY_POLICY, Aws
from deployer.cli import common
from deployer.context import Run
from deployer.resources.permission import statement_id
from deployer.retry import Waits, retrying
from tests.account import APP, BUCKET, Account, state_file
from tests.faults import (
    CONCURRENT_MODIFICATION,
    PENDING_REFUSAL,
    ROLE_NOT_ASSUMABLE,
    RUNTIME_RETIRED,
    STATEMENT_EXISTS,
    THROTTLES,
    UPDATE_IN_PROGRESS,
    Sleeps,
    fail,
    give_up_at_once,
    retry_attempts,
    rewrite,
    throttle,
    throttle_randomly,
    without_botocore_retries,
)
from tests.faults import no_botocore_sleep as _no_botocore_sleep
from tests.support import Waiting, edit

# The 25 calls of a fresh up into an account without the bucket (pinned in test_deploy.py).
FRESH_UP_CALLS = [
    "HeadObject", "GetRole", "DescribeLogGroups", "GetFunction", "GetRestApis",  # the plan
    "PutObject", "CreateBucket", "PutPublicAccessBlock", "PutBucketEncryption", "PutBucketLifecycleConfiguration",
    "PutObject", "ListMultipartUploads", "CreateRole", "AttachRolePolicy", "CreateLogGroup", "PutRetentionPolicy",
    "CreateFunction", "PublishVersion", "Invoke",
    "CreateAlias", "CreateRestApi",
    "CreateResource", "PutMethod", "PutMethod", "PutIntegration", "PutIntegration", "AddPermission",
    "CreateDeployment",
]  # fmt: skip


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    return _no_botocore_sleep(monkeypatch)


def up(make_run, version: str, session: boto3.Session | None = None) -> Run:
    run = make_run(version, session=session or boto3.Session())
    deploy.up(run)
    return run


def segment(calls: list[str], start: str, length: int) -> list[str]:
    """The `length` calls from the first `start` on."""
    index = calls.index(start)
    return calls[index : index + length]


STATEMENT_ID = statement_id("test")  # the grant on the test stage's alias


def statements(account: Account) -> list[dict[str, Any]]:
    return json.loads(account.client("lambda").get_policy(FunctionName=APP, Qualifier="test")["Policy"])["Statement"]


# IAM propagation -----------------------------------------------------------------------------------------


def test_create_function_is_retried_at_a_half_seconds_grain_while_the_new_role_cannot_be_assumed(
    make_run,
    aws_account: Account,
    no_waiting: list[float],
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
    waiting: Waiting,
) -> None:
    session = boto3.Session()
    fault = fail(session, "lambda", "CreateFunction", "InvalidParameterValueException", ROLE_NOT_ASSUMABLE, times=4)

    with monkeypatch.context() as patch:  # without the deployer's retry, the first refusal is final
        give_up_at_once(patch, waiting)
        with pytest.raises(ClientError, match="cannot be assumed by Lambda"):
            up(make_run, "1.0.0", session)
    assert (fault.seen, no_waiting) == (1, [])  # botocore did not retry it either

    run = up(make_run, "1.0.0", session)
    assert fault.injected == 4
    assert run.aws.calls.count("CreateFunction") == 4  # three refusals, then the function
    # A half second's grain from each try's start (less its round trip): the new role is ready at a moment of its own
    assert no_waiting == pytest.approx([0.5, 0.5, 0.5], abs=0.1) and all(pause <= 0.5 for pause in no_waiting)
    assert sleeps.retries == []  # all of it was the deployer's retry, not botocore's
    aws_account.assert_stack("v1.0.0/example.zip")


def test_the_grain_runs_from_each_tries_start_its_round_trip_included() -> None:
    """A try answered 0.2 s after it went out is followed by a pause of 0.3 s, not 0.5: one try every half second."""
    now, tries = [0.0], []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def create_function() -> str:
        tries.append(now[0])
        now[0] += 0.2  # the round trip
        if len(tries) < 4:
            raise ClientError({"Error": {"Code": "InvalidParameterValueException", "Message": "not yet"}}, "Create")
        return "made"

    waits = Waits(sleep=sleep, clock=lambda: now[0])
    assert retrying(create_function, waits=waits, when=lambda _: True, first_delay=0.5, max_delay=0.5) == "made"
    assert tries == pytest.approx([0.0, 0.5, 1.0, 1.5])


def test_a_long_wait_says_what_it_waits_for_and_for_how_long(make_run, aws_account: Account, waiting: Waiting) -> None:
    now = [0.0]  # a clock that moves only when the deployer sleeps
    waiting.clock = lambda: now[0]
    waiting.sleep = lambda seconds: now.__setitem__(0, now[0] + seconds)
    said = waiting.said
    session = boto3.Session()
    fail(session, "lambda", "CreateFunction", "InvalidParameterValueException", ROLE_NOT_ASSUMABLE, times=19)
    up(make_run, "1.0.0", session)
    waiting = "IAM to let Lambda assume the new role"
    assert said == [(waiting, 2.0), (waiting, 7.0)]  # silent for the first 2 s, then every 5 s
    assert now[0] == 9.5  # 19 refusals, half a second each: ready within half a second of it being so


def test_a_role_change_is_retried_until_lambda_can_assume_the_role(
    make_run, aws_account: Account, project: Path, no_waiting: list[float], sleeps: Sleeps
) -> None:
    up(make_run, "1.0.0")
    edit(project / "deploy.toml", "memory = 128", "memory = 256")  # a new release: its configuration is set
    # Someone pointed the function at another role; the new release puts it back on the app's role.
    iam = aws_account.client("iam")
    other = iam.create_role(
        RoleName="other-role", Path="/other/", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
    )["Role"]
    aws_account.client("lambda").update_function_configuration(FunctionName=APP, Role=other["Arn"])

    session = boto3.Session()
    fault = fail(
        session, "lambda", "UpdateFunctionConfiguration", "InvalidParameterValueException", ROLE_NOT_ASSUMABLE, times=2
    )
    run = make_run("1.0.0", session=session, force=True)  # 1.0.0 again with another memory: only forced
    deploy.up(run)
    assert fault.injected == 2
    assert [call for call in run.aws.calls if call.startswith("Update")] == [
        *["UpdateFunctionConfiguration"] * 3,
        "UpdateAlias",
    ]
    assert no_waiting == pytest.approx([0.5, 1.0], abs=0.1)
    stack = aws_account.assert_stack("v1.0.0/example.zip")
    assert stack["function"]["Role"] == stack["role"]["Arn"] == stack["live"]["Role"]


# Function states: ResourceConflictException, Pending, InProgress -----------------------------------------


def test_an_update_in_progress_is_waited_for_then_the_code_update_is_retried(
    make_run,
    aws_account: Account,
    project: Path,
    no_waiting: list[float],
    monkeypatch: pytest.MonkeyPatch,
    waiting: Waiting,
) -> None:
    up(make_run, "1.0.0")
    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")
    arn = aws_account.functions()[0]["FunctionArn"]
    session = boto3.Session()
    fault = fail(
        session, "lambda", "UpdateFunctionCode", "ResourceConflictException", UPDATE_IN_PROGRESS.format(arn=arn), 409, 2
    )

    with monkeypatch.context() as patch:  # a 409 botocore does not retry: alone, it fails the deploy
        give_up_at_once(patch, waiting)
        with pytest.raises(ClientError, match="An update is in progress"):
            up(make_run, "1.0.1", session)
    assert fault.seen == 1

    run = up(make_run, "1.0.1", session)
    # Refused, then the function_active_v2 and function_updated_v2 waiters read the function, then the
    # update again.
    assert segment(run.aws.calls, "UpdateFunctionCode", 4) == [
        "UpdateFunctionCode",
        "GetFunction",
        "GetFunction",
        "UpdateFunctionCode",
    ]
    assert no_waiting == pytest.approx([0.5], abs=0.1)
    aws_account.assert_stack("v1.0.1/example.zip")


def in_progress(parsed: dict[str, Any]) -> None:
    configuration = parsed.get("Configuration", parsed)  # GetFunction nests it; the updates answer it flat
    configuration["LastUpdateStatus"] = "InProgress"


Rewrite = Callable[[dict[str, Any]], None]


def for_first(count: int, change: Rewrite) -> Rewrite:
    """Apply `change` to the first `count` answers only."""
    seen = [0]

    def apply(parsed: dict[str, Any]) -> None:
        seen[0] += 1
        if seen[0] <= count:
            change(parsed)

    return apply


def test_a_new_function_still_pending_is_waited_for_before_it_is_published(
    make_run, aws_account: Account, sleeps: Sleeps
) -> None:
    session = boto3.Session()

    def pending(parsed: dict[str, Any]) -> None:
        configuration = parsed.get("Configuration", parsed)
        configuration["State"], configuration["StateReasonCode"] = "Pending", "Creating"

    rewrite(session, "lambda", "CreateFunction", pending)
    rewrite(session, "lambda", "GetFunction", for_first(2, pending))  # the waiter's first two polls: still Pending
    run = up(make_run, "1.0.0", session)
    lambdas = [call for call in run.aws.calls if call in {"CreateFunction", "GetFunction", "PublishVersion"}]
    assert segment(lambdas, "CreateFunction", 5) == [  # the API's wiring goes out meanwhile: Lambda's calls only
        "CreateFunction", "GetFunction", "GetFunction", "GetFunction", "PublishVersion",
    ]  # fmt: skip
    assert sleeps.waiter == [1, 1]  # function_active_v2, at the deployer's 1 s grain
    aws_account.assert_stack("v1.0.0/example.zip")


def test_a_code_update_in_progress_is_waited_for_before_the_configuration_changes(
    make_run, aws_account: Account, project: Path, sleeps: Sleeps
) -> None:
    up(make_run, "1.0.0")
    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")
    edit(project / "deploy.toml", "memory = 128", "memory = 256")
    session = boto3.Session()
    rewrite(session, "lambda", "UpdateFunctionCode", in_progress)
    rewrite(session, "lambda", "UpdateFunctionConfiguration", in_progress)
    polls = [0]

    def after_the_plan(parsed: dict[str, Any]) -> None:
        polls[0] += 1
        if polls[0] in (2, 3):  # the plan's read is settled; the first two polls after the code update are not
            in_progress(parsed)

    rewrite(session, "lambda", "GetFunction", after_the_plan)
    run = up(make_run, "1.0.1", session)
    assert segment(run.aws.calls, "UpdateFunctionCode", 6) == [
        "UpdateFunctionCode", "GetFunction", "GetFunction", "GetFunction", "UpdateFunctionConfiguration", "GetFunction",
    ]  # fmt: skip
    assert sleeps.waiter == [1, 1]
    aws_account.assert_stack("v1.0.1/example.zip")
    assert aws_account.functions()[0]["MemorySize"] == 256


def test_a_function_found_mid_update_is_waited_for_before_it_is_changed(
    make_run, aws_account: Account, project: Path, sleeps: Sleeps
) -> None:
    up(make_run, "1.0.0")
    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")
    session = boto3.Session()
    rewrite(session, "lambda", "GetFunction", for_first(2, in_progress))  # the plan's read and the first poll
    run = up(make_run, "1.0.1", session)
    assert run.aws.calls.count("GetFunction") == 3  # the plan's read, then the waiter's two polls
    assert segment(run.aws.calls, "PutObject", 5) == [
        "PutObject", "ListMultipartUploads", "GetFunction", "GetFunction", "UpdateFunctionCode"
    ]  # fmt: skip
    assert sleeps.waiter == [1]
    aws_account.assert_stack("v1.0.1/example.zip")


# API Gateway ----------------------------------------------------------------------------------------------


def test_api_gateway_concurrent_modification_is_retried_on_integrations_and_deployments(
    make_run,
    aws_account: Account,
    no_waiting: list[float],
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
    one_step_at_a_time: None,
) -> None:
    session = boto3.Session()
    integration = fail(session, "apigateway", "PutIntegration", "ConflictException", CONCURRENT_MODIFICATION, 409, 3)
    deployment = fail(session, "apigateway", "CreateDeployment", "ConflictException", CONCURRENT_MODIFICATION, 409, 2)
    attempts = {
        operation: retry_attempts(session, "apigateway", operation)
        for operation in ("PutIntegration", "CreateDeployment")
    }

    with monkeypatch.context() as patch:  # without the deployer's needs-retry handler, the first refusal is final
        patch.setattr("deployer.aws.CONCURRENT_MODIFICATION_LIMIT", 0)
        with pytest.raises(ClientError, match="concurrent modification"):
            up(make_run, "1.0.0", session)
    assert (integration.seen, deployment.seen, sleeps.retries) == (1, 0, [])  # botocore did not retry it either

    run = up(make_run, "1.0.0", session)
    assert (integration.injected, deployment.injected) == (3, 2)
    # Retried by botocore under each call (the handler classifies the answer once, on the client): the deployer
    # made each call once, and botocore counted the tries and slept the handler's delays.
    assert run.aws.calls.count("PutIntegration") == 2
    assert run.aws.calls.count("CreateDeployment") == 1
    assert attempts == {"PutIntegration": [0, 2, 0], "CreateDeployment": [2]}
    assert sleeps.retries == [0.5, 1.0, 0.5, 1.0]
    assert no_waiting == []
    aws_account.assert_stack("v1.0.0/example.zip")


def test_api_gateway_concurrent_modification_is_retried_for_two_minutes_then_stands(
    aws_account: Account, monkeypatch: pytest.MonkeyPatch, waiting: Waiting
) -> None:
    now = [0.0]  # a clock that moves only when botocore sleeps
    waiting.clock = lambda: now[0]
    monkeypatch.setattr(
        "botocore.endpoint.time", SimpleNamespace(sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
    )
    said = waiting.said
    session = boto3.Session(region_name="us-east-1")
    fault = fail(session, "apigateway", "GetRestApis", "ConflictException", CONCURRENT_MODIFICATION, 409, times=10**6)

    with pytest.raises(ClientError, match="concurrent modification"):
        Aws("us-east-1", session=session, waits=waiting.waits()).apigateway.get_rest_apis()
    assert fault.seen == 121  # refused at 0 s, 0.5 s, then every second to 119.5 s: a second more would pass 2 minutes
    assert now[0] == 119.5
    assert said[0] == ("API Gateway to finish another change to the API", 2.5)
    assert len(said) == 24  # then every 5 s, not every second


# Throttling: botocore's standard retries, as deployer.aws configures them ----------------------------------

THROTTLED_CALLS = [  # (service, operation, a call that makes it)
    ("apigateway", "CreateRestApi", lambda client: client.create_rest_api(name="x")),
    ("iam", "ListRoles", lambda client: client.list_roles()),
    ("s3", "ListBuckets", lambda client: client.list_buckets()),
    ("lambda", "ListFunctions", lambda client: client.list_functions()),
]


@pytest.mark.parametrize(("service", "operation", "call"), THROTTLED_CALLS, ids=[item[0] for item in THROTTLED_CALLS])
def test_each_services_throttling_fails_a_single_attempt_and_is_retried_in_standard_mode(
    aws_account: Account, sleeps: Sleeps, service: str, operation: str, call
) -> None:
    session = boto3.Session(region_name="us-east-1")
    fault = throttle(session, service, operation, times=4)
    once = session.client(service, config=BotoConfig(retries={"mode": "standard", "total_max_attempts": 1}))
    with pytest.raises(ClientError) as refused:
        call(once)
    assert refused.value.response["Error"]["Code"] == THROTTLES[service][0]

    retried = session.client(service, config=BotoConfig(retries=RETRY_POLICY))
    response = call(retried)
    assert response["ResponseMetadata"]["RetryAttempts"] == 3
    assert (fault.seen, fault.injected) == (5, 4)
    assert len(sleeps.retries) == 3


@pytest.mark.parametrize(
    ("environment", "profile", "tries", "mode"),
    [
        ({}, "", 1 + 10, "standard"),  # nothing set: ours, standard mode and 10 retries
        ({"AWS_MAX_ATTEMPTS": "2"}, "", 2, "standard"),
        ({"AWS_RETRY_MODE": "legacy"}, "", 1 + 10, "legacy"),
        ({}, "retry_mode = legacy\nmax_attempts = 4\n", 4, "legacy"),
        ({"AWS_MAX_ATTEMPTS": "3"}, "max_attempts = 5\n", 3, "standard"),  # as botocore: the environment first
    ],
    ids=["ours", "env-attempts", "env-mode", "profile", "env-over-profile"],
)
def test_the_users_own_retry_mode_and_attempts_win_over_ours(
    aws_account: Account,
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    environment: dict[str, str],
    profile: str,
    tries: int,
    mode: str,
) -> None:
    config_file = tmp_path / "aws-config"
    config_file.write_text("[default]\n" + profile)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_file))
    for name in ("AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    session = boto3.Session(region_name="us-east-1")
    fault = throttle(session, "apigateway", "GetRestApis", times=99)
    client = Aws("us-east-1", session=session).apigateway

    with pytest.raises(ClientError, match="TooManyRequestsException"):
        client.get_rest_apis()
    assert fault.seen == tries
    assert client.meta.config.retries["mode"] == mode


def test_throttling_on_iam_s3_lambda_and_api_gateway_is_retried_by_botocore(
    make_run,
    aws_account: Account,
    no_waiting: list[float],
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
    one_step_at_a_time: None,
) -> None:
    session = boto3.Session()
    faults = [
        throttle(session, "s3", "PutObject", times=1 + 3),
        throttle(session, "iam", "CreateRole", times=3),
        throttle(session, "lambda", "CreateFunction", times=2),
        throttle(session, "apigateway", "CreateDeployment", times=6),  # more than botocore's legacy mode's 4 retries
    ]
    attempts = {
        operation: retry_attempts(session, service, operation)
        for service, operation in [
            ("s3", "PutObject"), ("iam", "CreateRole"), ("lambda", "CreateFunction"), ("apigateway", "CreateDeployment")
        ]
    }  # fmt: skip
    with monkeypatch.context() as patch:  # without botocore's retries, the first throttle fails the deploy
        without_botocore_retries(patch)
        with pytest.raises(ClientError, match="SlowDown"):
            up(make_run, "1.0.0", session)
    assert (faults[0].seen, sleeps.retries) == (1, [])

    run = up(make_run, "1.0.0", session)
    assert [fault.injected for fault in faults] == [1 + 3, 3, 2, 6]
    # After the failed try: the first PutObject took 3 retries to be told NoSuchBucket; the others 3, 2, 6 to succeed.
    assert attempts == {"PutObject": [0, 3, 0], "CreateRole": [3], "CreateFunction": [2], "CreateDeployment": [6]}
    assert len(sleeps.retries) == 3 + 3 + 2 + 6
    # botocore retried under each call; the deployer saw none of it (the plan's five reads go out at once: any order)
    assert sorted(run.aws.calls[:5]) == sorted(FRESH_UP_CALLS[:5]) and run.aws.calls[5:] == FRESH_UP_CALLS[5:]
    assert no_waiting == []
    aws_account.assert_stack("v1.0.0/example.zip")


@pytest.mark.parametrize("seed", [1, 3, 6])  # seeds that throttle all four services, 8 to 11 times
def test_a_whole_deploy_with_a_quarter_of_all_requests_throttled_succeeds(
    make_run, aws_account: Account, no_waiting: list[float], sleeps: Sleeps, seed: int
) -> None:
    session = boto3.Session()
    throttling = throttle_randomly(session, rate=0.25, seed=seed)
    run = up(make_run, "1.0.0", session)
    throttled = sum(throttling.injected.values())
    assert {name.split(".")[0] for name in throttling.injected} >= {"s3", "iam", "lambda", "apigateway"}
    assert throttled >= 7 and throttling.requests == len(FRESH_UP_CALLS) + throttled
    assert len(sleeps.retries) == throttled
    assert sorted(run.aws.calls) == sorted(FRESH_UP_CALLS)  # steps run at once: the same calls, in another order
    assert no_waiting == []
    aws_account.assert_stack("v1.0.0/example.zip")


# Permissions ------------------------------------------------------------------------------------------------


def asked_qualifier(request: Any) -> str:
    """The Qualifier an AddPermission request names (its query string)."""
    return dict(part.split("=", 1) for part in urlsplit(request.url).query.split("&") if "=" in part)["Qualifier"]


def add_statement(account: Account, source_arn: str | None = None):
    """What a concurrent (or killed) run did just before us: it added the statement. As the request asks, or not."""

    def before(request: Any) -> None:
        asked = json.loads(request.body)
        account.client("lambda").add_permission(
            FunctionName=APP,
            Qualifier=asked_qualifier(request),
            StatementId=asked["StatementId"],
            Action=asked["Action"],
            Principal=asked["Principal"],
            SourceArn=source_arn or asked["SourceArn"],
        )

    return before


def test_a_statement_another_run_just_added_is_taken_as_done(make_run, aws_account: Account) -> None:
    session = boto3.Session()
    message = STATEMENT_EXISTS.format(sid=STATEMENT_ID)
    fault = fail(
        session, "lambda", "AddPermission", "ResourceConflictException", message, 409, before=add_statement(aws_account)
    )
    run = up(make_run, "1.0.0", session)
    assert fault.injected == 1
    assert segment(run.aws.calls, "AddPermission", 2) == ["AddPermission", "GetPolicy"]  # refused, read: the same
    aws_account.assert_stack("v1.0.0/example.zip")
    assert len(statements(aws_account)) == 1
    assert run.state.permission_statement_id == STATEMENT_ID


def test_a_statement_another_run_added_for_another_api_is_replaced(make_run, aws_account: Account) -> None:
    session = boto3.Session()
    old_api = "arn:aws:execute-api:us-east-1:123456789012:oldapi1234/*/*"
    message = STATEMENT_EXISTS.format(sid=STATEMENT_ID)
    before = add_statement(aws_account, source_arn=old_api)
    fail(session, "lambda", "AddPermission", "ResourceConflictException", message, 409, before=before)
    run = up(make_run, "1.0.0", session)
    assert segment(run.aws.calls, "AddPermission", 4) == [
        "AddPermission",
        "GetPolicy",
        "RemovePermission",
        "AddPermission",
    ]
    stack = aws_account.assert_stack("v1.0.0/example.zip")
    [statement] = statements(aws_account)
    assert stack["api"]["id"] in statement["Condition"]["ArnLike"]["AWS:SourceArn"]


def test_a_statement_naming_an_old_api_is_replaced(make_run, aws_account: Account) -> None:
    up(make_run, "1.0.0")
    functions = aws_account.client("lambda")
    functions.remove_permission(FunctionName=APP, StatementId=STATEMENT_ID, Qualifier="test")
    functions.add_permission(
        FunctionName=APP,
        Qualifier="test",
        StatementId=STATEMENT_ID,
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn="arn:aws:execute-api:us-east-1:123456789012:oldapi1234/*/*",
    )
    run = up(make_run, "1.0.0")
    assert [call for call in run.aws.calls if call.endswith("Permission")] == ["RemovePermission", "AddPermission"]
    stack = aws_account.assert_stack("v1.0.0/example.zip")
    [statement] = statements(aws_account)
    assert stack["api"]["id"] in statement["Condition"]["ArnLike"]["AWS:SourceArn"]


# Runtimes ---------------------------------------------------------------------------------------------------


def test_a_runtime_lambda_refuses_is_one_clear_line_and_exit_1(
    make_run, aws_account: Account, no_waiting: list[float], capsys: pytest.CaptureFixture[str]
) -> None:
    session = boto3.Session()
    fault = fail(session, "lambda", "CreateFunction", "InvalidParameterValueException", RUNTIME_RETIRED, times=5)
    with pytest.raises(typer.Exit) as exited, common.reported_errors():
        up(make_run, "1.0.0", session)
    assert exited.value.exit_code == 1
    assert fault.seen == 1 and no_waiting == []  # final at once: retrying would not help
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert "AWS refused CreateFunction: InvalidParameterValueException: The runtime parameter of nodejs6.10" in error
    assert aws_account.functions() == []
    assert [bucket["Name"] for bucket in aws_account.client("s3").list_buckets()["Buckets"]] == [BUCKET]


# A bucket name that belongs to someone else ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "code", "status"),
    [
        ("HeadObject", "403", 403),  # the bucket exists in another account: S3 answers a bare 403
        ("CreateBucket", "BucketAlreadyExists", 409),  # nobody of ours has it, but the name is taken
    ],
)
def test_a_bucket_owned_by_another_account_is_one_clear_line_and_no_function_is_created(
    make_run,
    aws_account: Account,
    project: Path,
    capsys: pytest.CaptureFixture[str],
    operation: str,
    code: str,
    status: int,
) -> None:
    session = boto3.Session()
    fail(session, "s3", operation, code, "Access Denied" if status == 403 else "The requested bucket name is not "
         "available.", status=status, times=5)  # fmt: skip
    with pytest.raises(typer.Exit) as exited, common.reported_errors():
        up(make_run, "1.0.0", session)
    assert exited.value.exit_code == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert f"bucket {BUCKET} exists but belongs to another AWS account" in error
    assert "choose another [artifact] bucket name" in error
    if operation == "HeadObject":  # the plan's read: refused before anything is made
        assert aws_account.is_empty()
        return
    # The upload goes out with the role, the log group and the API: what they made is in the state (the next up
    # adopts it, down removes it). No function: it needs the artifact.
    assert not aws_account.functions()
    path = state_file(project)
    recorded = json.loads(path.read_text()) if path.exists() else {}
    assert [role["RoleName"] for role in aws_account.roles()] in ([], [recorded.get("role_name")])
    assert [api["id"] for api in aws_account.rest_apis()] in ([], [recorded.get("rest_api_id")])


def test_a_function_still_pending_is_waited_for_when_lambda_refuses_the_permission(
    make_run, aws_account: Account, no_waiting: list[float]
) -> None:
    """A run interrupted during the Pending wait leaves a function the next run finds 'unchanged'."""
    session = boto3.Session()
    fault = fail(session, "lambda", "AddPermission", "ResourceConflictException", PENDING_REFUSAL, 409, times=1)
    run = up(make_run, "1.0.0", session)
    assert fault.injected == 1
    assert segment(run.aws.calls, "AddPermission", 4) == [
        "AddPermission",
        "GetFunction",
        "GetFunction",
        "AddPermission",
    ]
    aws_account.assert_stack("v1.0.0/example.zip")


def test_an_update_lambda_marks_failed_is_one_line_with_lambdas_reason(
    make_run, aws_account: Account, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    up(make_run, "1.0.0")
    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")
    session = boto3.Session()
    rewrite(session, "lambda", "UpdateFunctionCode", in_progress)

    def failed(parsed: dict[str, Any]) -> None:
        parsed["Configuration"].update(LastUpdateStatus="Failed", LastUpdateStatusReason="Unzipped size too large")

    rewrite(session, "lambda", "GetFunction", failed)
    with pytest.raises(typer.Exit) as exited, common.reported_errors():
        up(make_run, "1.0.1", session)
    assert exited.value.exit_code == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "the function failed to settle: Unzipped size too large" in error


def test_a_403_on_your_own_bucket_names_the_missing_permissions(
    make_run, aws_account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    """S3 answers 403 for a missing key when you lack s3:ListBucket: that is not someone else's bucket."""
    aws_account.client("s3").create_bucket(Bucket=BUCKET)
    session = boto3.Session()
    fail(session, "s3", "HeadObject", "403", "Forbidden", status=403, times=5)
    with pytest.raises(typer.Exit) as exited, common.reported_errors():
        up(make_run, "1.0.0", session)
    assert exited.value.exit_code == 1
    error = capsys.readouterr().err
    assert f"you may not use s3://{BUCKET}/v*/example.zip" in error and "s3:ListBucket" in error
    assert "belongs to another AWS account" not in error


def test_a_long_throttling_wait_says_what_it_waits_for(
    make_run, aws_account: Account, monkeypatch: pytest.MonkeyPatch, waiting: Waiting
) -> None:
    """botocore's own backoff (API Gateway allows one CreateDeployment per 5 s per account) is said too."""
    now = [0.0]  # a clock that moves only when botocore sleeps between tries
    waiting.clock = lambda: now[0]
    monkeypatch.setattr("botocore.endpoint.time", SimpleNamespace(sleep=lambda seconds: now.__setitem__(0, now[0] + 3)))
    said = waiting.said
    session = boto3.Session()
    throttled = throttle(session, "apigateway", "CreateDeployment", times=3)
    up(make_run, "1.0.0", session)
    assert throttled.injected == 3
    waiting = "API Gateway to accept more requests (CreateDeployment is throttled)"
    assert said == [(waiting, 3.0), (waiting, 6.0)]  # the first refusal starts the wait; then 3 s, 6 s
    aws_account.assert_stack("v1.0.0/example.zip")
