"""The function's resource policy statement letting this API (any stage, any method) invoke it."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from deployer.context import Change, Context
from deployer.resources.function import wait_until_ready
from deployer.retry import error_code, function_busy, retrying

STATEMENT_ID = "deployer-apigateway-invoke"
PRINCIPAL = "apigateway.amazonaws.com"


def source_arn(ctx: Context) -> str:
    return f"arn:{ctx.partition}:execute-api:{ctx.aws.region}:{ctx.account_id}:{ctx.state.rest_api_id}/*/*"


def _statement(ctx: Context) -> dict[str, Any] | None:
    """Our statement in the function's policy, or None (no policy at all is ResourceNotFoundException)."""
    try:
        policy = json.loads(ctx.aws.lambda_.get_policy(FunctionName=ctx.config.app_name)["Policy"])
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        return None
    return next((item for item in policy.get("Statement", []) if item.get("Sid") == STATEMENT_ID), None)


def _differences(ctx: Context, statement: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    current_arn = statement.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn")
    principal = statement.get("Principal", {})
    principal = principal.get("Service") if isinstance(principal, dict) else principal
    diffs = {}
    if current_arn != source_arn(ctx):
        diffs["source arn"] = (current_arn, source_arn(ctx))
    if principal != PRINCIPAL:
        diffs["principal"] = (principal, PRINCIPAL)
    return diffs


class Permission:
    resource = "permission"

    def plan(self, ctx: Context) -> Change:
        if ctx.function_created:  # a function created in this run has no policy yet: no need to ask
            return Change(self.resource, STATEMENT_ID, "create")
        statement = _statement(ctx)
        if statement is None:
            return Change(self.resource, STATEMENT_ID, "create")
        ctx.state.permission_statement_id = STATEMENT_ID  # learned, like the other IDs (a lost state file)
        diffs = _differences(ctx, statement)
        return Change(self.resource, STATEMENT_ID, "update" if diffs else "unchanged", diffs)

    def apply(self, ctx: Context, change: Change) -> None:
        functions = ctx.aws.lambda_
        if change.action == "update":
            retrying(
                lambda: functions.remove_permission(FunctionName=ctx.config.app_name, StatementId=STATEMENT_ID),
                when=function_busy,
                before_retry=lambda: wait_until_ready(ctx),
            )
        try:
            retrying(
                lambda: functions.add_permission(
                    FunctionName=ctx.config.app_name,
                    StatementId=STATEMENT_ID,
                    Action="lambda:InvokeFunction",
                    Principal=PRINCIPAL,
                    SourceArn=source_arn(ctx),
                ),
                when=function_busy,
                before_retry=lambda: wait_until_ready(ctx),
            )
        except ClientError as error:
            # "The statement id (...) provided already exists": done already, by us or by a run
            # that died before it could say so. Replace it only if it says something else.
            if error_code(error) != "ResourceConflictException" or "already exists" not in str(error):
                raise
            statement = _statement(ctx)
            if statement is not None and _differences(ctx, statement):
                self.apply(ctx, Change(self.resource, STATEMENT_ID, "update"))
        ctx.state.permission_statement_id = STATEMENT_ID
        ctx.save()
