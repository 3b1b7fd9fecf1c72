"""A plan is data computed by reads only, the same for `plan` and `up`; computing one never writes state."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer import deploy
from deployer.aws import is_mutating
from deployer.plan import Change, Plan
from deployer.resources import function, rest_api
from tests.account import BUCKET, Account, state_file
from tests.support import run_in_process


def actions(changes: list[Change] | Plan) -> list[tuple[str, str, str]]:
    return [(change.resource, change.name, change.action) for change in changes]


def test_planning_writes_no_state_on_a_fresh_a_deployed_or_a_forgotten_account(
    make_run, aws_account: Account, project: Path
) -> None:
    run = make_run("1.0.0")
    assert {change.action for change in deploy.plan(run.target)} == {"create", "check", "unchanged", "inactive"}
    assert not state_file(project).exists()  # not even an empty one
    assert run.state == make_run("1.0.0").state

    deploy.up(make_run("1.0.0"))
    saved = state_file(project).read_bytes()
    edit = project / "deploy.toml"
    edit.write_text(edit.read_text().replace("memory = 128", "memory = 256"))
    run = make_run("1.0.0", force=True)
    assert [change.resource for change in deploy.plan(run.target).pending] == ["function", "version", "alias"]
    assert state_file(project).read_bytes() == saved

    # A lost state file: the plan finds every ID in the account, but only `up` records them.
    state_file(project).unlink()
    run = make_run("1.0.0", force=True)
    planned = deploy.plan(run.target)
    assert planned.of(rest_api.RestApi).learned["rest_api_id"] == aws_account.rest_apis()[0]["id"]
    assert not state_file(project).exists() and run.state.rest_api_id is None
    assert [call for call in run.aws.calls if is_mutating(call)] == []


def test_the_plan_command_leaves_the_state_as_it_was(project: Path, moto_server: Account) -> None:
    """The shared state in S3 (plan takes no lock, writes nothing), and the local file of [state] backend local."""
    s3 = moto_server.client("s3")

    def shared_state() -> bytes | None:
        found = s3.list_objects_v2(Bucket=BUCKET).get("Contents", []) if s3.list_buckets()["Buckets"] else []
        return b"".join(s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read() for item in found)

    assert run_in_process(project, "plan", "--version", "1.0.0").returncode == 3
    assert shared_state() is not None and not s3.list_buckets()["Buckets"]  # not even the bucket
    assert run_in_process(project, "up", "--version", "1.0.0").returncode == 0
    saved = shared_state()
    main = project / "function" / "main.py"
    main.write_text(main.read_text().replace("Hello world!", "Bonjour au monde!"))
    result = run_in_process(project, "plan", "--version", "1.0.1")
    assert result.returncode == 3, result.stderr
    assert shared_state() == saved

    config = project / "deploy.toml"
    config.write_text(config.read_text() + '\n[state]\nbackend = "local"\n')
    assert run_in_process(project, "up", "--version", "1.0.1").returncode == 0
    saved = state_file(project).read_bytes()
    assert run_in_process(project, "plan", "--version", "1.0.2").returncode == 3
    assert state_file(project).read_bytes() == saved


def test_up_carries_out_the_very_plan_that_plan_shows(make_run, aws_account: Account, project: Path) -> None:
    shown = deploy.plan(make_run("1.0.0").target)
    done = deploy.up(make_run("1.0.0"))
    assert actions([outcome.change for outcome in done]) == actions(shown)

    main = project / "function" / "main.py"
    main.write_text(main.read_text().replace("Hello world!", "Bonjour au monde!"))
    edit = project / "deploy.toml"
    edit.write_text(edit.read_text().replace("timeout = 3", "timeout = 10"))
    shown = deploy.plan(make_run("1.0.1").target)
    run = make_run("1.0.1")
    done = deploy.up(run)
    assert actions([outcome.change for outcome in done]) == actions(shown)
    # The function's two differences are named fields, and they alone chose the two update calls.
    assert {diff.field for diff in shown.of(function.Function).diffs} == {function.Field.CODE, function.Field.TIMEOUT}
    assert [call for call in run.aws.calls if is_mutating(call)] == [
        "PutObject",
        "UpdateFunctionCode",
        "UpdateFunctionConfiguration",
        "PublishVersion",
        "UpdateAlias",
    ]
    assert aws_account.functions()[0]["Timeout"] == 10


def test_what_a_plan_learns_is_named_state_fields_of_their_types_and_a_misspelt_one_raises() -> None:
    """A step's `learned` is recorded into the state as it is: each key must be a field the state saves."""
    from dataclasses import fields

    from deployer.plan import Learned
    from deployer.state import State

    saved = {item.name: item.type for item in fields(State)}
    for name, kind in Learned.__annotations__.items():
        assert str(getattr(kind, "__forward_arg__", kind)) == saved.get(name), name

    state = State()
    state.learn(Learned(rest_api_id="abc123"))
    assert state.rest_api_id == "abc123"
    with pytest.raises(AttributeError):
        state.learn({"rest_api_idd": "abc123"})  # type: ignore[typeddict-unknown-key]
