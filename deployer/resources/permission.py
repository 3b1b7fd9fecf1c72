"""The function's resource policy statement letting this API (any stage, any method) invoke it."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws import read_or_none
from deployer.context import Run, Target, arn_account, arn_partition
from deployer.plan import Change, Diff, Plan
from deployer.resources.function import planned_arn, wait_until_ready
from deployer.retry import error_code, function_busy, retrying

STATEMENT_ID = "deployer-apigateway-invoke"
PRINCIPAL = "apigateway.amazonaws.com"


class Field(StrEnum):
    SOURCE_ARN = "source arn"
    PRINCIPAL = "principal"


def source_arn(region: str, function_arn: str, api_id: str | None) -> str:
    """Any stage, any method of this API: `arn:aws:execute-api:{region}:{account}:{api id}/*/*`."""
    partition, account = arn_partition(function_arn), arn_account(function_arn)
    return f"arn:{partition}:execute-api:{region}:{account}:{api_id}/*/*"


def _statement(aws: Any, function_name: str) -> dict[str, Any] | None:
    """Our statement in the function's policy, or None (no policy at all is ResourceNotFoundException)."""
    found = read_or_none(lambda: aws.lambda_.get_policy(FunctionName=function_name))
    policy = json.loads(found["Policy"]) if found else {}
    return next((item for item in policy.get("Statement", []) if item.get("Sid") == STATEMENT_ID), None)


def _differences(statement: dict[str, Any], wanted_arn: str) -> tuple[Diff, ...]:
    current_arn = statement.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn")
    principal = statement.get("Principal", {})
    principal = principal.get("Service") if isinstance(principal, dict) else principal
    diffs = []
    if current_arn != wanted_arn:
        diffs.append(Diff(Field.SOURCE_ARN, current_arn, wanted_arn))
    if principal != PRINCIPAL:
        diffs.append(Diff(Field.PRINCIPAL, principal, PRINCIPAL))
    return tuple(diffs)


class Permission:
    resource = "permission"

    def plan(self, target: Target, earlier: Plan) -> Change:
        function = earlier.of("function")
        if function is None or function.action == "create":  # a new function has no policy yet: no need to ask
            return Change(self.resource, STATEMENT_ID, "create")
        statement = _statement(target.aws, target.config.app_name)
        if statement is None:
            return Change(self.resource, STATEMENT_ID, "create")
        api = earlier.of("rest api")
        wanted = source_arn(
            target.region, planned_arn(target, earlier), api.learned.get("rest_api_id") if api else None
        )
        diffs = _differences(statement, wanted)
        learned = {"permission_statement_id": STATEMENT_ID}  # like the other IDs: a lost state file names it again
        return Change(self.resource, STATEMENT_ID, "update" if diffs else "unchanged", diffs, learned=learned)

    def apply(self, run: Run, change: Change) -> None:
        functions, name = run.aws.lambda_, run.config.app_name
        assert run.state.function_arn, "the function step runs first"
        wanted = source_arn(run.target.region, run.state.function_arn, run.state.rest_api_id)
        if change.action == "update":
            retrying(
                lambda: functions.remove_permission(FunctionName=name, StatementId=STATEMENT_ID),
                when=function_busy,
                before_retry=lambda: wait_until_ready(run),
            )
        try:
            retrying(
                lambda: functions.add_permission(
                    FunctionName=name,
                    StatementId=STATEMENT_ID,
                    Action="lambda:InvokeFunction",
                    Principal=PRINCIPAL,
                    SourceArn=wanted,
                ),
                when=function_busy,
                before_retry=lambda: wait_until_ready(run),
            )
        except ClientError as error:
            # "The statement id (...) provided already exists": done already, by us or by a run
            # that died before it could say so. Replace it only if it says something else.
            if error_code(error) != "ResourceConflictException" or "already exists" not in str(error):
                raise
            statement = _statement(run.aws, name)
            if statement is not None and _differences(statement, wanted):
                self.apply(run, Change(self.resource, STATEMENT_ID, "update"))
        run.state.permission_statement_id = STATEMENT_ID
        run.save()
