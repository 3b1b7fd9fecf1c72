"""Two machines, one app: the state and its lock live in S3, so two project folders that share nothing but the
account see and respect each other's deployments."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import boto3
import pytest

from deployer.errors import DeployerError
from deployer.remote_state import S3StateStore
from tests.account import APP, BUCKET, Account, state_file
from tests.faults import fail
from tests.support import run_in_process, run_until_call

STATE_KEY = f"deployer-state/{APP}/test/state.json"
LOCK_KEY = f"deployer-state/{APP}/test/lock.json"


@pytest.fixture
def teammate(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """B: another folder holding the same app (a CI runner's checkout), with no .deployer/ of its own."""
    folder = tmp_path_factory.mktemp("teammate")
    shutil.copy(project / "deploy.toml", folder / "deploy.toml")
    shutil.copytree(project / "function", folder / "function")
    return folder


def ok(folder: Path, *arguments: str) -> str:
    result = run_in_process(folder, *arguments)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_b_sees_what_a_deployed_and_its_down_removes_it(project: Path, teammate: Path, moto_server: Account) -> None:
    url = ok(project, "up", "--version", "1.0.0").strip()
    status = json.loads(ok(teammate, "status", "--json"))
    assert (status["version"], status["base_url"]) == ("1.0.0", url)
    assert status["history"][-1]["command"] == "up --version 1.0.0" and "@" in status["history"][-1]["by"]
    assert not (project / ".deployer").exists() or not state_file(project).exists()  # the bucket is the truth

    ok(teammate, "down", "--yes")
    assert moto_server.is_empty()
    assert "nothing deployed" in ok(project, "status")


def test_while_a_deploys_b_is_refused_naming_a_and_after_a_is_killed_unlock_lets_b_deploy(
    project: Path, teammate: Path, moto_server: Account
) -> None:
    holder = run_until_call(project, 12, "up", "--version", "1.0.0", signal_name="STOP")  # paused mid-deploy
    try:
        deadline = time.monotonic() + 60
        while holder.poll() is None and not _stopped(holder.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        refused = run_in_process(teammate, "up", "--version", "1.0.0")
        assert refused.returncode == 1 and time.monotonic() - started < 30
        assert f"pid {holder.pid} on " in refused.stderr and "`up --version 1.0.0`" in refused.stderr
        assert len([line for line in refused.stderr.splitlines() if line.strip()]) <= 2  # its start line, one error

        holder.send_signal(signal.SIGKILL)  # A dies holding the lock
        holder.wait(timeout=30)
        again = run_in_process(teammate, "up", "--version", "1.0.0")
        assert again.returncode == 1 and "`deployer unlock` removes its lock" in again.stderr

        removed = run_in_process(teammate, "unlock", "--yes")
        assert (
            removed.returncode == 0
            and f"removed the lock held by `up --version 1.0.0` (pid {holder.pid}" in removed.stderr
        )
        ok(teammate, "up", "--version", "1.0.0")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    moto_server.assert_stack("v1.0.0/example.zip")  # one of each, as B finished what A began
    assert json.loads(ok(project, "status", "--json"))["version"] == "1.0.0"  # and A's folder agrees
    with pytest.raises(moto_server.client("s3").exceptions.NoSuchKey):
        moto_server.client("s3").get_object(Bucket=BUCKET, Key=LOCK_KEY)  # released


def _stopped(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "T"
    except OSError:
        return False


def store(account: Account) -> S3StateStore:
    from deployer.aws import Aws

    return S3StateStore(Aws("us-east-1", session=account.session), BUCKET, f"deployer-state/{APP}/test/", APP)


def test_a_write_based_on_a_stale_read_is_refused(make_run, aws_account: Account) -> None:
    aws_account.client("s3").create_bucket(Bucket=BUCKET)
    first, second = store(aws_account), store(aws_account)
    state = first.load()
    state.app, state.version = APP, "1.0.0"
    first.save(state)
    stale = second.load()
    state.version = "1.0.1"
    first.save(state)  # the first writer goes on, from what it wrote
    stale.version = "9.9.9"
    with pytest.raises(DeployerError, match="changed since this run read it"):
        second.save(stale)
    assert (
        json.loads(aws_account.client("s3").get_object(Bucket=BUCKET, Key=STATE_KEY)["Body"].read())["version"]
        == "1.0.1"
    )


def test_unlock_removes_only_the_lock_it_showed(aws_account: Account) -> None:
    aws_account.client("s3").create_bucket(Bucket=BUCKET)
    s3 = aws_account.client("s3")
    s3.put_object(Bucket=BUCKET, Key=LOCK_KEY, Body=json.dumps({"pid": 1, "command": "up --version 1.0.0"}))

    def a_new_run_takes_it_meanwhile(holder: str) -> bool:
        s3.delete_object(Bucket=BUCKET, Key=LOCK_KEY)
        s3.put_object(Bucket=BUCKET, Key=LOCK_KEY, Body=json.dumps({"pid": 2, "command": "up --version 2.0.0"}))
        return True

    with pytest.raises(DeployerError, match="a new run holds it now"):
        store(aws_account).unlock(a_new_run_takes_it_meanwhile)
    assert json.loads(s3.get_object(Bucket=BUCKET, Key=LOCK_KEY)["Body"].read())["pid"] == 2


def test_an_unchanged_up_writes_nothing_but_its_lock_and_reads_the_state_once(make_run, aws_account: Account) -> None:
    from deployer import deploy

    def up_under_the_lock() -> list[str]:
        """As `deployer up` does: the lock, the state read under it, the deploy, the release."""
        run = make_run("1.0.0", shared_state=True)
        run.aws.calls.clear()
        with run.store.lock("up --version 1.0.0"):
            run.state = run.store.load()
            deploy.up(run)
        return [call for call in run.aws.calls if call in ("GetObject", "PutObject", "DeleteObject")]

    first = up_under_the_lock()
    assert first.count("PutObject") > 2  # the state is written after each resource created (crash safety)
    assert up_under_the_lock() == ["PutObject", "GetObject", "DeleteObject"]  # take the lock, read, release


def test_a_local_state_file_moves_into_s3_the_first_time(project: Path, moto_server: Account) -> None:
    config = project / "deploy.toml"
    original = config.read_text()
    config.write_text(original + '\n[state]\nbackend = "local"\n')
    ok(project, "up", "--version", "1.0.0")
    local = json.loads(state_file(project).read_text())

    config.write_text(original)  # the shared state, by default
    ok(project, "up", "--version", "1.0.0")
    shared = json.loads(moto_server.client("s3").get_object(Bucket=BUCKET, Key=STATE_KEY)["Body"].read())
    assert shared["rest_api_id"] == local["rest_api_id"] and shared["history"] == local["history"]
    assert not state_file(project).exists() and state_file(project).with_suffix(".json.moved-to-s3").exists()
    moto_server.assert_stack("v1.0.0/example.zip")


@pytest.mark.parametrize(
    ("key", "body", "message"),
    [
        (STATE_KEY, b"[1, 2", "is not JSON"),
        (STATE_KEY, b"[]", "holds list, not a deployer state"),
        (STATE_KEY, b'{"app": "Other"}', "describes app Other, not ServerlessExample"),
        (LOCK_KEY, b"<xml/>", "is not a deployer lock"),
    ],
)
def test_a_state_or_lock_object_that_is_not_ours_is_one_line(
    cli, aws_account: Account, key: str, body: bytes, message: str
) -> None:
    aws_account.client("s3").create_bucket(Bucket=BUCKET)
    aws_account.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)
    error = cli("up", "--version", "1.0.0", expect=2)
    assert message in error
    assert aws_account.is_empty()


def test_a_bucket_you_may_not_write_names_the_permission(cli, project: Path, aws_account: Account, monkeypatch) -> None:
    aws_account.client("s3").create_bucket(Bucket=BUCKET)
    session = boto3.Session()
    fail(session, "s3", "PutObject", "AccessDenied", "Access Denied", 403, times=99)
    monkeypatch.setattr("deployer.aws.boto3.Session", lambda: session)
    error = cli("up", "--version", "1.0.0", expect=1)
    assert f"needs s3:PutObject on arn:aws:s3:::{BUCKET}/deployer-state/{APP}/test/lock.json;" in error
    assert aws_account.is_empty()
