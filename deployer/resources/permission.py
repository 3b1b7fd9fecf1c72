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
from deployer.plan import Action, Change, Diff, Learned, Plan, inactive
from deployer.read_ahead import Read
from deployer.resources.alias import Alias
from deployer.resources.function import Function, planned_arn, wait_until_ready
from deployer.resources.rest_api import RestApi
from deployer.retry import retrying
from deployer.schedule import both

UNQUALIFIED_STATEMENT_ID = "deployer-apigateway-invoke"  # what stacks from before aliases granted


def statement_id(alias: str) -> str:
    return f"deployer-apigateway-{alias}"


# The other front doors' statements on the alias (issue 26): an HTTP API's grant, and the two a public function URL
# needs (AWS documents lambda:InvokeFunctionUrl, and since October 2025 lambda:InvokeFunction too, for new URLs).
def http_api_statement_id(alias: str) -> str:
    return f"deployer-httpapi-{alias}"


def url_statement_ids(alias: str) -> tuple[str, str]:
    return f"deployer-url-{alias}", f"deployer-url-invoke-{alias}"


def our_statement_ids(target: Target) -> frozenset[str]:
    """The alias's statements that are deployer's: the stage's front door's, and those of a door the state still
    records (a type switch removes them last, once the new door is made). Any other is not ours, whatever its
    name says: a statement named like another door's that no door of this stage explains is removed."""
    config, recorded, alias = target.config, target.recorded, target.config.alias
    ours: set[str] = set()
    if config.api_type == "rest" or recorded.rest_api_id:
        ours.add(statement_id(alias))
    if config.api_type == "http" or recorded.http_api_id:
        ours.add(http_api_statement_id(alias))
    if config.api_type == "url" or recorded.function_url:
        ours.update(url_statement_ids(alias))
    return frozenset(ours)


class Field(StrEnum):
    SOURCE_ARN = "source arn"
    PRINCIPAL = "principal"
    OTHER_STATEMENTS = "statements not ours"  # on the alias or the function: removed
    STATEMENTS = "statements"  # another front door's own (an HTTP API's, a function URL's): written or removed


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


def _policy_read(function_name: str, alias: str | None) -> Read:
    """GetPolicy of the alias, or of the function itself."""
    return Read("lambda", "GetPolicy", {"FunctionName": function_name, **({"Qualifier": alias} if alias else {})})


def _statements(aws: Any, function_name: str, alias: str | None) -> list[dict[str, Any]]:
    """The statements of the alias's (or the function's) policy; none when there is no policy."""
    found = read_or_none(lambda: aws.lambda_.get_policy(**_policy_read(function_name, alias).params))
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

    def ahead(self, target: Target) -> tuple[Read, ...]:
        config = target.config
        if config.api_type != "rest" or target.recorded.alias != config.alias:
            return ()
        return tuple(_policy_read(config.function_name, qualifier) for qualifier in (config.alias, None))

    def plan(self, target: Target, earlier: Plan) -> Change[tuple[Foreign, ...]]:
        config = target.config
        sid = statement_id(config.alias)
        if config.api_type != "rest":  # another front door: its own step grants it (no request made here)
            return inactive(self.resource, sid, config.api_type)
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
        ours = our_statement_ids(target) if alias else {UNQUALIFIED_STATEMENT_ID}  # conversion's
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
            run.save_soon()


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


# ---- the other front doors' grants (issue 26): an HTTP API's, a function URL's ----------------------------------


@dataclass(frozen=True)
class Grant:
    """One statement a front door needs on the alias: what AddPermission is given, and how GetPolicy answers it."""

    sid: str
    action: str = INVOKE_ACTION
    principal: str = APIGATEWAY_PRINCIPAL
    source_arn: str | None = None
    url_auth_type: str | None = None  # FunctionUrlAuthType: only when the function URL's AuthType is this
    via_url: bool = False  # InvokedViaFunctionUrl: only through a function URL

    def arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"StatementId": self.sid, "Action": self.action, "Principal": self.principal}
        if self.source_arn:
            arguments["SourceArn"] = self.source_arn
        if self.url_auth_type:
            arguments["FunctionUrlAuthType"] = self.url_auth_type
        if self.via_url:
            arguments["InvokedViaFunctionUrl"] = True
        return arguments

    def matches(self, statement: dict[str, Any]) -> bool:
        """Whether the statement Lambda's GetPolicy answers says what this grant says."""
        condition: dict[str, Any] = {}
        if self.source_arn:
            condition["ArnLike"] = {"AWS:SourceArn": self.source_arn}
        if self.url_auth_type:
            condition["StringEquals"] = {"lambda:FunctionUrlAuthType": self.url_auth_type}
        if self.via_url:
            condition["Bool"] = {"lambda:InvokedViaFunctionUrl": "true"}
        principal = statement.get("Principal")
        principal = principal.get("Service", principal) if isinstance(principal, dict) else principal
        return (
            statement.get("Action") == self.action
            and principal == self.principal
            and (statement.get("Condition") or {}) == condition
        )


@dataclass(frozen=True)
class Granted:
    """What a front door's grant step found: statements not ours, and which of its own to (re)write or remove."""

    foreign: tuple[Foreign, ...] = ()
    to_write: tuple[str, ...] = ()  # sids missing or saying something else
    present: tuple[str, ...] = ()  # sids on the alias now (a rewrite removes the old statement first)
    unwanted: tuple[str, ...] = ()  # this door's sids no longer needed (a function URL's auth became iam)


class GrantStep:
    """The statements one front door type needs on the alias (an HTTP API's, a function URL's), as one step.
    Subclasses say which type, which statement ids are theirs, and the grants wanted (when planning, from the plan so
    far; when applying, from the run's state). Like the REST API's Permission, any statement not ours goes."""

    resource = "grants"
    api_type = ""

    def sids(self, alias: str) -> tuple[str, ...]:
        raise NotImplementedError

    def planned(self, target: Target, earlier: Plan) -> tuple[Grant, ...]:
        raise NotImplementedError

    def wanted(self, run: Run) -> tuple[Grant, ...]:
        raise NotImplementedError

    def plan(self, target: Target, earlier: Plan) -> Change[Granted]:
        config = target.config
        name = ", ".join(self.sids(config.alias))
        if config.api_type != self.api_type:
            return inactive(self.resource, name, config.api_type)
        wanted = self.planned(target, earlier)
        alias, function = earlier.of(Alias), earlier.of(Function)
        if alias is None or alias.action == "create":  # a new alias has no policy yet: no need to ask
            foreign = (
                ()
                if function is None or function.action == "create"
                else Permission._foreign(target, None, _statements(target.aws, config.function_name, None))
            )
            granted = Granted(foreign, tuple(grant.sid for grant in wanted))
        else:
            on_alias, on_function = both(  # the alias's policy and the function's, in one round trip
                lambda: _statements(target.aws, config.function_name, config.alias),
                lambda: _statements(target.aws, config.function_name, None),
            )
            foreign = Permission._foreign(target, config.alias, on_alias) + Permission._foreign(
                target, None, on_function
            )
            found = {item.get("Sid"): item for item in on_alias if _qualifier_of(item.get("Resource")) == config.alias}
            stale = tuple(
                grant.sid for grant in wanted if grant.sid not in found or not grant.matches(found[grant.sid])
            )
            unwanted = tuple(
                sid for sid in self.sids(config.alias) if sid in found and sid not in {g.sid for g in wanted}
            )
            granted = Granted(foreign, stale, tuple(sid for sid in stale if sid in found), unwanted)
        diffs = []
        if granted.to_write:
            diffs.append(Diff(Field.STATEMENTS, sorted(granted.present), sorted(granted.to_write)))
        if granted.unwanted:
            diffs.append(Diff(Field.STATEMENTS, sorted(granted.unwanted), []))
        if foreign:
            diffs.append(Diff(Field.OTHER_STATEMENTS, [str(item) for item in foreign], []))
        new = bool(granted.to_write) and not granted.present
        action: Action = "create" if new else ("update" if diffs else "unchanged")
        return Change(self.resource, name, action, tuple(diffs), observed=granted)

    def apply(self, run: Run, change: Change[Granted]) -> None:
        config = run.config
        granted = change.observed or Granted()
        for foreign in granted.foreign:
            _remove(run, foreign.sid, foreign.qualifier)
        for sid in (*granted.present, *granted.unwanted):
            _remove(run, sid, config.alias)
        for grant in self.wanted(run):
            if grant.sid in granted.to_write:
                _add(run, grant)
        run.save_soon()


def _lambda_call(run: Run, operation: Any, **arguments: Any) -> Any:
    """A change to the function's policy, retried while Lambda says the function is busy."""
    return retrying(
        partial(operation, FunctionName=run.config.function_name, **arguments),
        waits=run.aws.waits,
        when=function_busy,
        before_retry=lambda: wait_until_ready(run),
    )


def _remove(run: Run, sid: str, qualifier: str | None) -> None:
    """Remove a statement from the alias's (or, with no qualifier, the function's) policy; gone counts as done."""
    where = {"Qualifier": qualifier} if qualifier else {}
    remove = run.aws.lambda_.remove_permission
    _lambda_call(run, lambda **arguments: delete_if_present(partial(remove, **arguments)), StatementId=sid, **where)


def _add(run: Run, grant: Grant) -> None:
    functions, config = run.aws.lambda_, run.config
    try:
        _lambda_call(run, functions.add_permission, Qualifier=config.alias, **grant.arguments())
    except ClientError as error:  # a run that died after adding it: the same statement is done
        if not statement_exists(error):
            raise
        statement = _statement(run.aws, config.function_name, config.alias, grant.sid)
        if statement is None or not grant.matches(statement):
            _remove(run, grant.sid, config.alias)
            _lambda_call(run, functions.add_permission, Qualifier=config.alias, **grant.arguments())


def remove_statements(run: Run, sids: tuple[str, ...]) -> None:
    """Remove these statements from the alias's policy (an old front door's), what is gone counting as done."""
    for sid in sids:
        _remove(run, sid, run.config.alias)


def statements_on_alias(aws: Any, function_name: str, alias: str) -> dict[str, dict[str, Any]]:
    """The alias's statements by sid (a type switch checks the new door's grants by this read)."""
    return {
        item.get("Sid", ""): item
        for item in _statements(aws, function_name, alias)
        if _qualifier_of(item.get("Resource")) == alias
    }
