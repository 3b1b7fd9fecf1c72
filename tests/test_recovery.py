"""Lost state, stale state and concurrent runs: the account is the truth, the state file only a cache of it.

A lost state file is rebuilt from the account (resources found by name and tags); a state file naming
something deleted by hand is corrected; two runs on one stage never overlap, and a lock left by a
dead run does not block the next one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import boto3
import pytest

from deployer import deploy
from deployer.context import Run
from deployer.errors import DeployerError
from tests.account import APP, Account, state_file
from tests.support import assert_in_order, edit, lock_is_free, run_in_process, run_until_call, writes

TAGS = {"deployer:app": APP, "deployer:stage": "test"}
ROLE = f"{APP}-lambda-exec"


def up(make_run, version: str = "1.0.0") -> Run:
    run = make_run(version)
    deploy.up(run)
    return run


def resources_of(run: Run) -> dict[str, object]:
    """What the state says is deployed: everything but the history."""
    return {key: value for key, value in asdict(run.state).items() if key != "history"}


# Lost and stale state ---------------------------------------------------------------------------------------


def test_a_lost_state_file_is_rebuilt_from_the_account_without_a_single_write(
    make_run, aws_account: Account, project: Path
) -> None:
    before = resources_of(up(make_run))
    state_file(project).unlink()

    run = up(make_run)
    assert writes(run) == []
    aws_account.assert_stack("v1.0.0/example.zip")
    assert resources_of(run) == before  # every ID and the deployed version found again
    assert resources_of(make_run()) == before  # and saved


def test_a_rest_api_deleted_by_hand_is_recreated_and_the_permission_follows_it(make_run, aws_account: Account) -> None:
    old_id = up(make_run).state.rest_api_id
    aws_account.client("apigateway").delete_rest_api(restApiId=old_id)

    run = up(make_run)
    done = writes(run)
    assert sorted(done) == sorted([  # the API's wiring and the grant for it go out at once
        "CreateRestApi", "CreateResource", "PutMethod", "PutMethod", "PutIntegration", "PutIntegration",
        "RemovePermission", "AddPermission", "CreateDeployment",
    ])  # fmt: skip
    assert_in_order(done, "CreateRestApi", "RemovePermission", "AddPermission", "CreateDeployment")
    assert_in_order(done, "CreateRestApi", "CreateResource", "PutMethod", "PutIntegration", "CreateDeployment")
    stack = aws_account.assert_stack("v1.0.0/example.zip")  # the one grant names the new API
    new_id = stack["api"]["id"]
    assert new_id != old_id
    assert run.state.rest_api_id == new_id and new_id in (run.state.base_url or "")


def test_down_without_a_state_file_finds_the_tagged_resources_and_removes_them(
    make_run, aws_account: Account, project: Path
) -> None:
    api_id = up(make_run).state.rest_api_id
    state_file(project).unlink()

    run = make_run()
    found = deploy.find_deployed(run.target)
    assert (found.rest_api_ids, found.function_name, found.role and found.role.name) == ([api_id], APP, ROLE)
    deploy.down(run, found)
    assert aws_account.is_empty()


def test_down_without_a_state_file_leaves_look_alikes_without_the_apps_tags_alone(
    make_run, aws_account: Account
) -> None:
    """Same names, made by someone else (no deployer tags): not ours to delete."""
    aws_account.client("s3").create_bucket(Bucket="somebody-elses-code")
    aws_account.client("s3").put_object(Bucket="somebody-elses-code", Key="code.zip", Body=b"PK\x05\x06" + bytes(18))
    role = aws_account.client("iam").create_role(
        RoleName=ROLE, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )["Role"]
    aws_account.client("lambda").create_function(
        FunctionName=APP,
        Runtime="python3.13",
        Role=role["Arn"],
        Handler="main.handler",
        Code={"S3Bucket": "somebody-elses-code", "S3Key": "code.zip"},
    )
    aws_account.client("apigateway").create_rest_api(name=APP)

    run = make_run()
    found = deploy.find_deployed(run.target)
    assert found.empty, found
    assert (len(aws_account.roles()), len(aws_account.functions()), len(aws_account.rest_apis())) == (1, 1, 1)

    # Nor does up take them over: it refuses before changing anything.
    run = make_run("1.0.0")
    with pytest.raises(DeployerError, match=rf"a role named {ROLE} already exists but deployer did not make it"):
        deploy.up(run)
    # Only the artifact was published (step 1); nothing of theirs was touched.
    assert set(writes(run)) <= {"PutObject", "CreateBucket", "PutPublicAccessBlock", "PutBucketEncryption"}
    aws_account.client("iam").tag_role(RoleName=ROLE, Tags=[{"Key": "deployer:app", "Value": APP}])  # adopt it
    run = make_run("1.0.0")
    with pytest.raises(DeployerError, match=rf"a function named {APP} already exists but deployer did not make it"):
        deploy.up(run)


def test_two_tagged_apis_with_the_apps_name_are_refused_naming_both_and_nothing_is_created(
    make_run, aws_account: Account, project: Path
) -> None:
    first = up(make_run).state.rest_api_id
    state_file(project).unlink()
    second = aws_account.client("apigateway").create_rest_api(name=APP, tags=TAGS)["id"]

    run = make_run("1.0.0")
    with pytest.raises(DeployerError, match=rf"found 2 REST APIs named {APP}") as refused:
        deploy.up(run)
    assert first in str(refused.value) and second in str(refused.value)
    assert "delete-rest-api" in str(refused.value)  # and what to do about it
    assert writes(run) == []
    assert sorted(api["id"] for api in aws_account.rest_apis()) == sorted([first, second])


def test_the_role_the_function_and_the_api_carry_the_app_and_stage_tags(make_run, aws_account: Account) -> None:
    run = up(make_run)
    iam, functions = aws_account.client("iam"), aws_account.client("lambda")
    role_tags = {tag["Key"]: tag["Value"] for tag in iam.list_role_tags(RoleName=ROLE)["Tags"]}
    function_tags = functions.list_tags(Resource=run.state.function_arn)["Tags"]
    api_tags = aws_account.client("apigateway").get_rest_api(restApiId=run.state.rest_api_id).get("tags", {})
    for tags in (role_tags, function_tags, api_tags):
        assert {key: tags.get(key) for key in TAGS} == TAGS


# Concurrent runs --------------------------------------------------------------------------------------------


def stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


def use_a_local_state(project: Path) -> None:
    """[state] backend = "local": the kernel lock of one machine (tests/test_shared_state.py has the shared one)."""
    config = project / "deploy.toml"
    config.write_text(config.read_text() + '\n[state]\nbackend = "local"\n')


def test_a_second_up_while_another_runs_fails_at_once_naming_the_holder(project: Path, moto_server: Account) -> None:
    use_a_local_state(project)
    first = run_in_process(project, "up", "--version", "1.0.0")
    assert first.returncode == 0, first.stderr
    main = project / "function" / "main.py"
    main.write_text(main.read_text().replace("Hello world!", "Bonjour au monde!"))

    # A real `deployer up --version 1.0.1`, paused (SIGSTOP) after its 3rd AWS call, lock in hand.
    holder = run_until_call(project, 3, "up", "--version", "1.0.1", signal_name="STOP")
    try:
        deadline = time.monotonic() + 60
        while not stopped(holder.pid):
            assert holder.poll() is None and time.monotonic() < deadline, "the first run never reached its 3rd call"
            time.sleep(0.05)
        lock = state_file(project, "lock")
        held = lock.read_text()
        saved = state_file(project).read_bytes()

        started = time.monotonic()
        second = run_in_process(project, "up", "--version", "1.0.1")
        assert second.returncode == 1
        assert time.monotonic() - started < 15  # at once: it does not wait for the holder
        message = second.stderr.strip()
        assert message.count("\n") == 0 and "Traceback" not in message
        assert f"another deployer is working on {APP}" in message
        assert f"pid {holder.pid} on {socket.gethostname()}" in message
        assert "`up --version 1.0.1`" in message and "since 20" in message
        assert "stop that process: its lock goes with it" in message  # how to clear it, if the holder hangs
        assert state_file(project).read_bytes() == saved
        assert lock.read_text() == held  # the holder keeps its lock

        holder.send_signal(signal.SIGCONT)
        _, errors = holder.communicate(timeout=120)
        assert holder.returncode == 0, errors
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    moto_server.assert_stack("v1.0.1/example.zip")
    assert lock_is_free(lock)


HOLD_THE_LOCK = """
import sys, time
from pathlib import Path
from deployer.config import load_config
from deployer.stores import store_for
with store_for(load_config(Path(sys.argv[1]))).lock("up --version 0.9.0"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_lock_left_by_a_killed_run_does_not_block_the_next(make_run, aws_account: Account, project: Path) -> None:
    """A run really holding the lock, then SIGKILLed: it had no chance to release it, yet the next run goes on."""
    use_a_local_state(project)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(project / "deploy.toml")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        lock = state_file(project, "lock")
        assert not lock_is_free(lock) and json.loads(lock.read_text())["pid"] == holder.pid
        with pytest.raises(DeployerError, match=f"pid {holder.pid}"), make_run().store.lock("up"):  # held: refused
            pytest.fail("the lock was taken twice")
    finally:
        holder.kill()
        holder.wait()

    run = make_run("1.0.0")
    with run.store.lock("up --version 1.0.0"):  # its holder is gone: free, although the file still names it
        assert json.loads(lock.read_text())["pid"] == os.getpid()  # ours now
        deploy.up(run)
    assert lock_is_free(lock) and lock.read_text() == ""  # released, and it names nobody
    aws_account.assert_stack("v1.0.0/example.zip")


def test_a_lock_held_is_respected_and_names_its_holder(make_run, project: Path) -> None:
    holder = make_run("1.0.0")
    with holder.store.lock("up --version 0.9.0"):
        saved = (state_file(project, "lock")).read_text()
        second = make_run("1.0.0").store
        with (
            pytest.raises(DeployerError, match=rf"pid {os.getpid()} on {socket.gethostname()}, since 20"),
            second.lock("up"),
        ):
            pytest.fail("the lock was taken twice")
        assert (state_file(project, "lock")).read_text() == saved  # the refused run changed nothing


def test_tags_left_out_of_get_function_are_read_with_list_tags(make_run, aws_account: Account, project: Path):
    """Real Lambda omits Tags from GetFunction for callers without lambda:ListTags."""
    up(make_run)
    state_file(project).unlink()
    session = boto3.Session()
    session.events.register("after-call.lambda.GetFunction", lambda parsed, **_: parsed.pop("Tags", None))
    run = make_run("1.0.0", session=session)
    deploy.up(run)
    assert "ListTags" in run.aws.calls and writes(run) == []  # adopted, tags seen equal: nothing re-tagged
    run = make_run(session=session)
    assert deploy.find_deployed(run.target).function_name == APP


def test_a_state_from_another_region_is_refused_before_anything_changes(make_run, aws_account, project: Path):
    up(make_run)
    config = project / "deploy.toml"
    config.write_text(config.read_text().replace('region = "us-east-1"', 'region = "eu-west-1"'))
    for command in (deploy.up, lambda run: deploy.plan(run.target), lambda run: deploy.find_deployed(run.target)):
        run = make_run("1.0.0")
        with pytest.raises(DeployerError, match=r"deployed in us-east-1, not eu-west-1: run `deployer down`"):
            command(run)
        assert writes(run) == []
    aws_account.assert_stack("v1.0.0/example.zip")


def test_rollback_without_a_state_file_records_the_function_and_the_url(make_run, aws_account, project: Path):
    first = up(make_run)
    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")
    up(make_run, "1.0.1")
    state_file(project).unlink()
    run = make_run("1.0.0")
    deploy.rollback(run)
    aws_account.assert_stack("v1.0.0/example.zip")
    saved = json.loads(state_file(project).read_text())
    assert (saved["version"], saved["function_name"]) == ("1.0.0", APP)
    assert saved["base_url"] == first.state.base_url


def test_down_also_removes_an_api_the_state_does_not_name_but_tagged_for_the_app(make_run, aws_account):
    """A CreateRestApi retried after a lost answer leaves a second, tagged API: down takes it too."""
    up(make_run)
    aws_account.client("apigateway").create_rest_api(name=APP, tags=TAGS)
    run = make_run()
    deploy.down(run, deploy.find_deployed(run.target))
    assert aws_account.is_empty()
