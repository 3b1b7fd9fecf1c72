"""A plan is data computed by reads only, the same for `plan` and `up`; computing one never writes state."""

from __future__ import annotations

from pathlib import Path

from deployer import deploy
from deployer.aws import is_mutating
from deployer.plan import Change, Plan
from deployer.resources import function
from tests.account import Account, state_file
from tests.conftest import run_deployer


def actions(changes: list[Change] | Plan) -> list[tuple[str, str, str]]:
    return [(change.resource, change.name, change.action) for change in changes]


def test_planning_writes_no_state_on_a_fresh_a_deployed_or_a_forgotten_account(
    make_run, aws_account: Account, project: Path
) -> None:
    run = make_run("1.0.0")
    assert {change.action for change in deploy.plan(run.target)} == {"create", "check", "unchanged"}
    assert not state_file(project).exists()  # not even an empty one
    assert run.state == make_run("1.0.0").state

    deploy.up(make_run("1.0.0"))
    saved = state_file(project).read_bytes()
    edit = project / "deploy.toml"
    edit.write_text(edit.read_text().replace("memory = 128", "memory = 256"))
    run = make_run("1.0.0")
    assert [change.resource for change in deploy.plan(run.target).pending] == ["function", "version", "alias"]
    assert state_file(project).read_bytes() == saved

    # A lost state file: the plan finds every ID in the account, but only `up` records them.
    state_file(project).unlink()
    run = make_run("1.0.0")
    planned = deploy.plan(run.target)
    assert planned.of("rest api").learned["rest_api_id"] == aws_account.rest_apis()[0]["id"]
    assert not state_file(project).exists() and run.state.rest_api_id is None
    assert [call for call in run.aws.calls if is_mutating(call)] == []


def test_the_plan_command_leaves_the_state_file_as_it_was(project: Path, moto_server: Account) -> None:
    assert run_deployer(project, "plan", "--version", "1.0.0").returncode == 3
    assert not state_file(project).exists()
    assert run_deployer(project, "up", "--version", "1.0.0").returncode == 0
    saved = state_file(project).read_bytes()
    main = project / "function" / "main.py"
    main.write_text(main.read_text().replace("Hello world!", "Bonjour au monde!"))
    result = run_deployer(project, "plan", "--version", "1.0.1")
    assert result.returncode == 3, result.stderr
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
    assert {diff.field for diff in shown.of("function").diffs} == {function.Field.CODE, function.Field.TIMEOUT}
    assert [call for call in run.aws.calls if is_mutating(call)] == [
        "PutObject",
        "UpdateFunctionCode",
        "UpdateFunctionConfiguration",
        "PublishVersion",
        "UpdateAlias",
    ]
    assert aws_account.functions()[0]["Timeout"] == 10
