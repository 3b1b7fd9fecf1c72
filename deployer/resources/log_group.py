"""The function's CloudWatch Logs group, `/aws/lambda/<function name>`, made before the function.

Left to Lambda, the group appears at the function's first log line and keeps every event forever (billed
forever). Made here first, it carries the app's tags and `[function] log_retention_days`. A group of that
name found without our tag (made by Lambda, or by hand) is adopted: its retention is kept in line, but it is
not ours, so `down` leaves it. `down` deletes a group carrying our tag, unless `--keep-logs`.
"""

from __future__ import annotations

import contextlib
from enum import StrEnum
from typing import Any

from deployer.aws import delete_if_present, read_or_none
from deployer.context import Run, Target
from deployer.plan import Change, Diff, Plan
from deployer.read_ahead import Read


class Field(StrEnum):
    RETENTION = "retention days"


def _by_prefix(name: str) -> dict[str, Any]:
    return {"logGroupNamePrefix": name, "limit": 50}


def _read(logs: Any, name: str) -> dict[str, Any] | None:
    """The group of exactly this name (DescribeLogGroups matches a prefix: /aws/lambda/app-prod too)."""
    found = read_or_none(lambda: logs.describe_log_groups(**_by_prefix(name)))
    groups = found["logGroups"] if found else []
    return next((group for group in groups if group["logGroupName"] == name), None)


class LogGroup:
    resource = "log group"
    reads: tuple[type, ...] = ()
    needs: tuple[type, ...] = ()

    def ahead(self, target: Target) -> tuple[Read, ...]:
        name = target.config.log_group
        recorded = target.recorded.log_group
        return (Read("logs", "DescribeLogGroups", _by_prefix(name)),) if recorded in (None, name) else ()

    def plan(self, target: Target, earlier: Plan) -> Change[None]:
        name, wanted = target.config.log_group, target.config.log_retention_days
        group = _read(target.aws.logs, name)
        if group is None:
            return Change(self.resource, name, "create")
        retention = group.get("retentionInDays")  # absent: never expires
        diffs = (Diff(Field.RETENTION, retention or "never expire", wanted),) if retention != wanted else ()
        return Change(self.resource, name, "update" if diffs else "unchanged", diffs, learned={"log_group": name})

    def apply(self, run: Run, change: Change[None]) -> None:
        logs, name = run.aws.logs, run.config.log_group
        if change.action == "create":
            # Lambda may have made it since the plan (a log line of the running function): adopted as it is.
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                logs.create_log_group(logGroupName=name, tags=run.config.tags)
            with run.saving:  # what it made, saved by this step's own write
                run.state.log_group = name
                run.save_soon()
        logs.put_retention_policy(logGroupName=name, retentionInDays=run.config.log_retention_days)


def find_ours(target: Target) -> str | None:
    """The stage's log group when it exists and carries the app's tag: made by deployer, so `down` deletes it."""
    logs, name = target.aws.logs, target.config.log_group
    group = _read(logs, name)
    if group is None:
        return None
    arn = group.get("logGroupArn") or group["arn"].removesuffix(":*")
    tags = read_or_none(lambda: logs.list_tags_for_resource(resourceArn=arn))
    return name if tags is not None and target.config.owns(tags.get("tags", {})) else None


def delete(run: Run, name: str) -> bool:
    """Every log event of the stage goes with it. False when there was no such group."""
    return delete_if_present(lambda: run.aws.logs.delete_log_group(logGroupName=name))
