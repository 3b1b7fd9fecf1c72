"""The function's log group: made before the function, tagged, with [function] log_retention_days; an existing
one adopted (and left by `down`); `down` deletes ours unless --keep-logs."""

from __future__ import annotations

from pathlib import Path

from deployer import deploy
from deployer.aws import is_mutating
from deployer.resources import log_group
from tests.account import APP, Account
from tests.support import edit

GROUP = f"/aws/lambda/{APP}"


def test_up_makes_the_log_group_first_tagged_with_30_days(make_run, aws_account: Account) -> None:
    run = make_run("1.0.0")
    deploy.up(run)
    group = aws_account.log_groups()[GROUP]
    assert group["retentionInDays"] == 30
    assert group["tags"] == {"deployer:app": APP, "deployer:stage": "test"}
    assert run.aws.calls.index("PutRetentionPolicy") < run.aws.calls.index("CreateFunction")
    assert run.state.log_group == GROUP


def test_a_retention_change_is_planned_and_is_one_write(make_run, aws_account: Account, project: Path) -> None:
    deploy.up(make_run("1.0.0"))
    edit(project / "deploy.toml", "[function]\n", "[function]\nlog_retention_days = 7\n", count=1)
    change = deploy.plan(make_run("1.0.0").target).of(log_group.LogGroup)
    assert change is not None and change.action == "update"
    assert [(diff.field, diff.old, diff.new) for diff in change.diffs] == [("retention days", 30, 7)]
    run = make_run("1.0.0")
    deploy.up(run)
    assert [call for call in run.aws.calls if is_mutating(call)] == ["PutRetentionPolicy"]
    assert aws_account.log_groups()[GROUP]["retentionInDays"] == 7


def test_an_existing_group_is_adopted_its_retention_set_and_down_leaves_it(make_run, aws_account: Account) -> None:
    logs = aws_account.client("logs")
    logs.create_log_group(logGroupName=GROUP)  # Lambda's own, made at a first log line: kept forever
    run = make_run("1.0.0")
    deploy.up(run)
    assert "CreateLogGroup" not in run.aws.calls
    assert aws_account.log_groups()[GROUP]["retentionInDays"] == 30
    run = make_run()
    deploy.down(run, deploy.find_deployed(run.target))
    assert "DeleteLogGroup" not in run.aws.calls
    assert list(aws_account.log_groups()) == [GROUP]


def test_down_deletes_our_log_group_and_keep_logs_leaves_it(cli, aws_account: Account) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    cli("down", "--yes", "--keep-logs", expect=0)
    assert aws_account.log_groups()[GROUP]["retentionInDays"] == 30
    assert not aws_account.functions()
    cli("down", "--yes", expect=0)  # what is left of the stage: its logs
    assert aws_account.log_groups() == {}


def test_a_retention_cloudwatch_refuses_is_a_usage_error(cli, project: Path, aws_account: Account) -> None:
    edit(project / "deploy.toml", "[function]\n", "[function]\nlog_retention_days = 31\n", count=1)
    stderr = cli("up", "--version", "1.0.0", expect=2)
    assert "[function] log_retention_days is 31" in stderr and "1, 3, 5, 7, 14, 30" in stderr
    assert aws_account.is_empty()
