"""The resource policy statement letting this API (any stage, any method) invoke the stage's alias.

The statement is on the alias (AddPermission with Qualifier), scoped by `AWS:SourceArn` to the API's
execute-api ARN. A stack from before aliases granted the unqualified function instead; converting it
removes that grant once the API calls the alias (remove_unqualified).

Any other statement on the alias's or the function's policy is not ours (a public invoke added by hand,
say): `plan` shows it as drift and `up` removes it, so that only this API can invoke the function.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws import delete_if_present, function_busy, read_or_none, statement_exists
from deployer.context import Run, Target, arn_account, arn_partition
from deployer.gateway.integration import APIGATEWAY_PRINCIPAL, INVOKE_ACTION, execute_api_arn
from deployer.plan import Change, Diff, Learned, Plan
from deployer.resources.alias import Alias
from deployer.resources.function import Function, planned_arn, wait_until_ready
from deployer.resources.rest_api import RestApi
from deployer.retry import retrying
from deployer.schedule import both

UNQUALIFIED_STATEMENT_ID = "deployer-apigateway-invoke"  # what stacks from before aliases granted


def statement_id(alias: str) -> str:
    return f"deployer-apigateway-{alias}"


class Field(StrEnum):
    SOURCE_ARN = "source arn"
    PRINCIPAL = "principal"
    OTHER_STATEMENTS = "statements not ours"  # on the alias or the function: removed


@dataclass(frozen=True)
class Foreign:
    """A statement deployer did not add, and where it is (the alias, or None: the function itself)."""

    qualifier: str | None
    sid: str

    def __str__(self) -> str:
        return f"{self.sid} on {self.qualifier or 'the function'}"


def source_arn(region: str, function_arn: str, api_id: str | None) -> str:
    """Any stage, any method of this API: `arn:aws:execute-api:{region}:{account}:{api id}/*/*`."""
    partition, account = arn_partition(function_arn), arn_account(function_arn)
    return execute_api_arn(partition, region, account or "", api_id or "", "*/*")


def _statements(aws: Any, function_name: str, alias: str | None) -> list[dict[str, Any]]:
    """The statements of the alias's (or the function's) policy; none when there is no policy."""
    qualifier = {"Qualifier": alias} if alias else {}
    found = read_or_none(lambda: aws.lambda_.get_policy(FunctionName=function_name, **qualifier))
    statements = json.loads(found["Policy"]).get("Statement", []) if found else []
    return [statements] if isinstance(statements, dict) else statements


def _qualifier_of(resource: Any) -> str | None:
    """The qualifier a statement's Resource names (None: the function itself). Lambda's GetPolicy answers one
    qualifier's statements; some emulators answer all of them, whatever the qualifier asked."""
    parts = resource.split(":") if isinstance(resource, str) else []
    return parts[7] if len(parts) > 7 else None


def _statement(aws: Any, function_name: str, alias: str | None, sid: str) -> dict[str, Any] | None:
    """The statement `sid` of the alias's (or the function's) policy, or None."""
    return next((item for item in _statements(aws, function_name, alias) if item.get("Sid") == sid), None)


def _differences(statement: dict[str, Any], wanted_arn: str) -> tuple[Diff, ...]:
    current_arn = statement.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn")
    principal = statement.get("Principal", {})
    principal = principal.get("Service") if isinstance(principal, dict) else principal
    diffs = []
    if current_arn != wanted_arn:
        diffs.append(Diff(Field.SOURCE_ARN, current_arn, wanted_arn))
    if principal != APIGATEWAY_PRINCIPAL:
        diffs.append(Diff(Field.PRINCIPAL, principal, APIGATEWAY_PRINCIPAL))
    return tuple(diffs)


class Permission:
    resource = "permission"
    reads: tuple[type, ...] = (Alias, RestApi)
    needs: tuple[type, ...] = (Alias, RestApi)

    def plan(self, target: Target, earlier: Plan) -> Change[tuple[Foreign, ...]]:
        config = target.config
        sid = statement_id(config.alias)
        alias, function = earlier.of(Alias), earlier.of(Function)
        foreign: tuple[Foreign, ...]
        if alias is None or alias.action == "create":  # a new alias has no policy yet: no need to ask
            foreign = (
                ()
                if function is None or function.action == "create"
                else self._foreign(target, None, _statements(target.aws, config.function_name, None))
            )
            diffs = (Diff(Field.OTHER_STATEMENTS, [str(item) for item in foreign], []),) if foreign else ()
            return Change(self.resource, sid, "create", diffs, observed=foreign)
        on_alias, on_function = both(  # the alias's policy and the function's, in one round trip
            lambda: _statements(target.aws, config.function_name, config.alias),
            lambda: _statements(target.aws, config.function_name, None),
        )
        statement = next((item for item in on_alias if item.get("Sid") == sid), None)
        foreign = self._foreign(target, config.alias, on_alias) + self._foreign(target, None, on_function)
        others = (Diff(Field.OTHER_STATEMENTS, [str(item) for item in foreign], []),) if foreign else ()
        if statement is None:
            return Change(self.resource, sid, "create", others, observed=foreign)
        api = earlier.of(RestApi)
        wanted = source_arn(
            target.region, planned_arn(target, earlier), api.observed.api_id if api and api.observed else None
        )
        diffs = (*_differences(statement, wanted), *others)
        learned = Learned(permission_statement_id=sid)  # like the other IDs: a lost state file names it again
        return Change(self.resource, sid, "update" if diffs else "unchanged", diffs, observed=foreign, learned=learned)

    @staticmethod
    def _foreign(target: Target, alias: str | None, statements: list[dict[str, Any]]) -> tuple[Foreign, ...]:
        """Statements deployer did not add, of those read from the alias's policy (alias) or the function's (None)."""
        ours = {statement_id(target.config.alias)} if alias else {UNQUALIFIED_STATEMENT_ID}  # conversion's
        return tuple(
            Foreign(alias, item.get("Sid", ""))
            for item in statements
            if item.get("Sid") not in ours and _qualifier_of(item.get("Resource")) == alias
        )

    def apply(self, run: Run, change: Change[tuple[Foreign, ...]]) -> None:
        functions, config = run.aws.lambda_, run.config
        sid = statement_id(config.alias)
        assert run.state.function_arn, "the function step runs first"
        for foreign in change.observed or ():
            retrying(
                partial(
                    delete_if_present,
                    partial(
                        functions.remove_permission,
                        FunctionName=config.function_name,
                        StatementId=foreign.sid,
                        **({"Qualifier": foreign.qualifier} if foreign.qualifier else {}),
                    ),
                ),
                waits=run.aws.waits,
                when=function_busy,
                before_retry=lambda: wait_until_ready(run),
            )
        if change.action == "update" and not change.touches([Field.SOURCE_ARN, Field.PRINCIPAL]):
            return  # only statements not ours were wrong: ours stays as it is
        wanted = source_arn(run.target.region, run.state.function_arn, run.state.rest_api_id)
        if change.action == "update":
            retrying(
                lambda: functions.remove_permission(
                    FunctionName=config.function_name, StatementId=sid, Qualifier=config.alias
                ),
                waits=run.aws.waits,
                when=function_busy,
                before_retry=lambda: wait_until_ready(run),
            )
        try:
            retrying(
                lambda: functions.add_permission(
                    FunctionName=config.function_name,
                    Qualifier=config.alias,
                    StatementId=sid,
                    Action=INVOKE_ACTION,
                    Principal=APIGATEWAY_PRINCIPAL,
                    SourceArn=wanted,
                ),
                waits=run.aws.waits,
                when=function_busy,
                before_retry=lambda: wait_until_ready(run),
            )
        except ClientError as error:
            # "The statement id (...) provided already exists": done already, by us or by a run
            # that died before it could say so. Replace it only if it says something else.
            if not statement_exists(error):
                raise
            statement = _statement(run.aws, config.function_name, config.alias, sid)
            differences = _differences(statement, wanted) if statement is not None else ()
            if differences:
                self.apply(run, Change(self.resource, sid, "update", differences))
        with run.saving:  # what it made, saved by this step's own write
            run.state.permission_statement_id = sid
            run.save()


def remove_unqualified(run: Run) -> bool:
    """Remove the grant a stack from before aliases gave the unqualified function; False if there was none."""
    functions, name = run.aws.lambda_, run.config.function_name
    if _statement(run.aws, name, None, UNQUALIFIED_STATEMENT_ID) is None:
        return False
    return retrying(
        lambda: delete_if_present(
            lambda: functions.remove_permission(FunctionName=name, StatementId=UNQUALIFIED_STATEMENT_ID)
        ),
        waits=run.aws.waits,
        when=function_busy,
        before_retry=lambda: wait_until_ready(run),
    )
