"""A deploy killed (SIGKILL) between any two AWS calls, then run again, converges.

The killed run goes as far as its Nth call: the call is made, its answer never used, nothing after it
saved, its lock left behind in S3. The next `deployer up` is refused naming the dead run and `deployer
unlock`; after the unlock, `up` must find what the killed run made (by the shared state, else by name
and tags), finish the job, and leave exactly one role, function and API, wired right, a private and
encrypted bucket, and a readable shared state that names them all, its lock released.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from botocore.exceptions import ClientError

from deployer.aws import read_or_none
from tests.account import APP, BUCKET, Account
from tests.conftest import run_deployer

KILL_AFTER_CALL = Path(__file__).with_name("kill_after_call.py")
STATE_KEY, LOCK_KEY = f"deployer-state/{APP}/test/state.json", f"deployer-state/{APP}/test/lock.json"


def run_until_call(project: Path, call: int, *arguments: str, signal_name: str = "KILL") -> subprocess.Popen[str]:
    """`deployer <arguments>` in the project folder, signalled right after its `call`th AWS call (0: never)."""
    environment = {**os.environ, "DEPLOYER_TEST_AFTER_CALL": str(call), "DEPLOYER_TEST_SIGNAL": signal_name}
    return subprocess.Popen(
        [sys.executable, str(KILL_AFTER_CALL), *arguments],
        cwd=project,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wipe(account: Account) -> None:
    """Delete everything a deploy makes, and check the account is empty: as fresh as moto's reset, and faster.

    (A reset makes moto reload AWS's managed policies on the next request, about a second each time.)
    """
    gateway, functions, iam, s3 = (account.client(name) for name in ("apigateway", "lambda", "iam", "s3"))
    for api in account.rest_apis():
        gateway.delete_rest_api(restApiId=api["id"])
    for function in account.functions():
        functions.delete_function(FunctionName=function["FunctionName"])
    for role in account.roles():
        for policy in iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=role["RoleName"], PolicyArn=policy["PolicyArn"])
        iam.delete_role(RoleName=role["RoleName"])
    for group in account.log_groups():
        account.client("logs").delete_log_group(logGroupName=group)
    for bucket in s3.list_buckets()["Buckets"]:
        for item in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            s3.delete_object(Bucket=bucket["Name"], Key=item["Key"])
        s3.delete_bucket(Bucket=bucket["Name"])
    assert account.is_empty() and s3.list_buckets()["Buckets"] == []


def assert_converged(project: Path, account: Account) -> None:
    stack = account.assert_stack("v1.0.0/example.zip")
    s3 = account.client("s3")  # the bucket the deploy created is private and encrypted
    blocked = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert blocked == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    [rule] = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    state = json.loads(s3.get_object(Bucket=BUCKET, Key=STATE_KEY)["Body"].read())  # the shared state
    assert (state["version"], state["key"]) == ("1.0.0", "v1.0.0/example.zip")
    assert (state["function_name"], state["function_arn"]) == (APP, stack["function"]["FunctionArn"])
    assert (state["role_name"], state["role_arn"]) == (stack["role"]["RoleName"], stack["role"]["Arn"])
    assert state["rest_api_id"] == stack["api"]["id"]
    assert state["base_url"] == f"https://{stack['api']['id']}.execute-api.us-east-1.amazonaws.com/test"
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=LOCK_KEY)  # released


def test_a_deploy_killed_after_any_call_converges_on_the_next_up(project: Path, moto_server: Account) -> None:
    counting = run_until_call(project, 0, "up", "--version", "1.0.0")
    _, errors = counting.communicate(timeout=120)
    assert counting.returncode == 0, errors
    calls = int(errors.rsplit("aws calls: ", 1)[1])
    assert calls >= 30  # a fresh deploy: the lock, bucket, object, role, function, API wiring, stage, permission, state

    started = time.monotonic()
    refusal_seen = False
    for call in range(1, calls + 1):
        wipe(moto_server)
        shutil.rmtree(project / ".deployer")  # the build in dist/ stays: every run deploys the same bytes
        killed = run_until_call(project, call, "up", "--version", "1.0.0")
        _, errors = killed.communicate(timeout=120)
        assert killed.returncode == -signal.SIGKILL, f"after call {call}: {errors}"
        lock = read_or_none(lambda: moto_server.client("s3").get_object(Bucket=BUCKET, Key=LOCK_KEY))
        if lock is not None:  # it held the lock when it died: the next run is refused until `unlock`
            assert json.loads(lock["Body"].read())["pid"] == killed.pid
            if not refusal_seen:  # once is proof enough (a run more at every kill point costs half a minute)
                refused = run_deployer(project, "up", "--version", "1.0.0")
                assert refused.returncode == 1 and "`deployer unlock` removes its lock" in refused.stderr
                refusal_seen = True
            unlocked = run_deployer(project, "unlock", "--yes")
            assert unlocked.returncode == 0, unlocked.stderr

        again = run_deployer(project, "up", "--version", "1.0.0")
        assert again.returncode == 0, f"killed after call {call}, the next up failed: {again.stderr}"
        try:
            assert_converged(project, moto_server)
        except (AssertionError, ClientError) as error:
            raise AssertionError(f"killed after call {call}, the next up did not converge: {error}") from error
    print(f"{calls} crash points in {time.monotonic() - started:.1f}s")
