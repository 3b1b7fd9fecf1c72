"""A deploy killed (SIGKILL) between any two AWS calls, then run again, converges.

The killed run goes as far as its Nth call: the call is made, its answer never used, nothing after it
saved, its lock left behind in S3. The next `deployer up` is refused naming the dead run and `deployer
unlock`; after the unlock, `up` must find what the killed run made (by the shared state, else by name
and tags), finish the job, and leave exactly one role, function and API, wired right, a private and
encrypted bucket, and a readable shared state that names them all, its lock released.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from deployer.aws import read_or_none
from tests.account import APP, BUCKET, Account
from tests.support import fork_until_call, run_in_process

STATE_KEY, LOCK_KEY = f"deployer-state/{APP}/test/state.json", f"deployer-state/{APP}/test/lock.json"

# Every AWS call of a fresh deploy is a kill point. Pinned so that each is a test of its own (xdist shares them
# out); test_a_fresh_deploy_makes_this_many_calls says when a change to the deploy moves it.
CALLS_IN_A_FRESH_DEPLOY = 41


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


def test_a_fresh_deploy_makes_this_many_calls(project: Path, moto_server: Account) -> None:
    counting = fork_until_call(project, 0, "up", "--version", "1.0.0")  # counted as the kill points below count
    assert counting.returncode == 0, counting.stderr
    calls = int(counting.stderr.rsplit("aws calls: ", 1)[1])
    # The lock, bucket, object, role, function, API wiring, stage, permission, state: each one a kill point below.
    assert calls == CALLS_IN_A_FRESH_DEPLOY, f"set CALLS_IN_A_FRESH_DEPLOY = {calls}, so every call is a kill point"


@pytest.mark.parametrize("call", range(1, CALLS_IN_A_FRESH_DEPLOY + 1))
def test_a_deploy_killed_after_any_call_converges_on_the_next_up(
    call: int, project: Path, moto_server: Account
) -> None:
    """The killed run is a process of its own, forked from this one (its pid is in the lock it leaves); its steps run
    at once, so which calls came before the Nth varies between runs. Unlock and the next up run in this process,
    against the same moto_server."""
    killed = fork_until_call(project, call, "up", "--version", "1.0.0")
    assert killed.returncode == -signal.SIGKILL, f"after call {call}: {killed.stderr}"
    lock = read_or_none(lambda: moto_server.client("s3").get_object(Bucket=BUCKET, Key=LOCK_KEY))
    if lock is not None:  # it held the lock when it died: the next run is refused until `unlock`
        assert json.loads(lock["Body"].read())["pid"] == killed.pid
        refused = run_in_process(project, "up", "--version", "1.0.0")
        assert refused.returncode == 1 and "`deployer unlock` removes its lock" in refused.stderr, refused.stderr
        unlocked = run_in_process(project, "unlock", "--yes")
        assert unlocked.returncode == 0, unlocked.stderr

    again = run_in_process(project, "up", "--version", "1.0.0")
    assert again.returncode == 0, f"killed after call {call}, the next up failed: {again.stderr}"
    try:
        assert_converged(project, moto_server)
    except (AssertionError, ClientError) as error:
        raise AssertionError(f"killed after call {call}, the next up did not converge: {error}") from error
