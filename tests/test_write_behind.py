"""The state written behind the steps: a step goes on while what it made is written, the writes keep their order
and each its own content, the run ends only once they are done, and a failed step leaves the state naming what
was made before it."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest

from deployer import deploy
from deployer.errors import DeployerError
from deployer.state import State
from deployer.write_behind import WriteBehind
from tests.account import APP, BUCKET, Account
from tests.faults import fail

STATE_KEY = f"deployer-state/{APP}/test/state.json"


class Recorder:
    """A store that keeps what each write held, slowly when asked."""

    own_writes = 0

    def __init__(self, seconds: float = 0.0, fail_at: int | None = None) -> None:
        self.saved: list[tuple[str | None, str | None]] = []
        self.seconds, self.fail_at = seconds, fail_at

    def save(self, state: State) -> None:
        time.sleep(self.seconds)
        if self.fail_at is not None and len(self.saved) == self.fail_at:
            self.saved.append(("failed", None))
            raise DeployerError("the state changed since this run read it")
        self.saved.append((state.function_name, state.alias))


def test_writes_keep_their_order_and_each_the_state_as_it_was_when_saved() -> None:
    store, state = Recorder(seconds=0.05), State()
    writes = WriteBehind(store)  # type: ignore[arg-type]
    state.function_name = "app"
    writes.save(state)
    state.alias = "test"  # changed while the first write is on its way: not in it
    writes.save(state)
    assert store.saved == []  # neither written yet: the caller went on at once
    writes.flush()
    assert store.saved == [("app", None), ("app", "test")]


def test_a_failed_write_is_raised_by_the_next_save_or_the_flush() -> None:
    store = Recorder(fail_at=0)
    writes = WriteBehind(store)  # type: ignore[arg-type]
    writes.save(State(function_name="app"))
    with pytest.raises(DeployerError, match="changed since"):
        writes.flush()
    writes.save(State(function_name="app"))
    writes.flush()  # raised once: the next write goes on
    store_later = Recorder(seconds=0.02, fail_at=0)
    writes = WriteBehind(store_later)  # type: ignore[arg-type]
    writes.save(State(function_name="app"))
    deadline = time.monotonic() + 10
    while writes._failure is None and time.monotonic() < deadline:  # the first write has failed, in its thread
        time.sleep(0.01)
    with pytest.raises(DeployerError, match="changed since"):
        writes.save(State(function_name="app", alias="test"))
    assert store_later.saved == [("failed", None)]


def test_a_step_goes_on_while_the_state_it_saved_is_written(
    make_run, aws_account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write recording the function takes 0.5 s here: the version is published while it is on its way; up
    returns once every write is done, the state naming all it made."""
    aws_account.client("s3").create_bucket(Bucket=BUCKET)
    session, events, lock = boto3.Session(), [], threading.Lock()

    def slow_state_write(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == STATE_KEY:
            names_function = json.loads(params["Body"])["function_name"] is not None
            if names_function and "state written: function True" not in events:
                time.sleep(0.5)
            with lock:
                events.append(f"state written: function {names_function}")

    def sent(model: Any, **_: Any) -> None:
        if model.name == "PublishVersion":
            with lock:
                events.append("PublishVersion")

    session.events.register("before-parameter-build.s3.PutObject", slow_state_write)
    session.events.register("before-call.lambda.PublishVersion", sent)
    run = make_run("1.0.0", session=session, shared_state=True)
    deploy.up(run)
    first_with_function = events.index("state written: function True")
    assert events.index("PublishVersion") < first_with_function  # it did not wait for that write
    saved = json.loads(aws_account.client("s3").get_object(Bucket=BUCKET, Key=STATE_KEY)["Body"].read())
    assert saved["deployment_id"] and saved["alias"] == "test" and saved["history"][-1]["action"] == "up"


def test_a_failed_step_leaves_the_state_naming_what_was_made_before_it(make_run, aws_account: Account) -> None:
    """The run's error comes out only once the writes on their way are done (the one recording the version is
    slow here)."""
    aws_account.client("s3").create_bucket(Bucket=BUCKET)
    session = boto3.Session()

    def slow_version_write(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == STATE_KEY and json.loads(params["Body"])["releases"]:
            time.sleep(0.3)

    session.events.register("before-parameter-build.s3.PutObject", slow_version_write)
    fail(session, "lambda", "CreateAlias", "InvalidParameterValueException", "Lambda says no", status=400)
    run = make_run("1.0.0", session=session, shared_state=True)
    with pytest.raises(Exception, match="Lambda says no"):
        deploy.up(run)
    saved = json.loads(aws_account.client("s3").get_object(Bucket=BUCKET, Key=STATE_KEY)["Body"].read())
    assert saved["function_name"] == run.config.function_name
    assert saved["releases"]["1.0.0"]["lambda_version"] == "1"  # the version published before the failure
