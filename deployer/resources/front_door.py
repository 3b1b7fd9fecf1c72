"""A type switch's last step: the front door the stage used before goes, once the new one is made and read back.

The state records which door served the stage (`api_type`, and each door's IDs). When deploy.toml's `[api] type`
is another, the walk has made the new door by now (its steps come before this one); this step reads the new
door's wiring back (the route to the alias, the stage, the URL config, the grants) and only then deletes the old
door: its API (or URL config) and its statements on the alias. The stage's URL changes: plan and up say so, old ->
new, in this step's one line. A state that records no other door makes this step ask nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from deployer.aws import read_or_none
from deployer.context import Run, Target
from deployer.errors import DeployerError
from deployer.plan import Change, Diff, Plan
from deployer.resources import function_url, http_api, permission, rest_api
from deployer.state import State


class Field(StrEnum):
    URL = "URL"


@dataclass(frozen=True)
class Old:
    """The door to remove: its type, and what the state recorded of it."""

    api_type: str
    rest_api_id: str | None = None
    http_api_id: str | None = None
    function_url: str | None = None
    url: str | None = None  # the stage's URL through it


def recorded_doors(state: State) -> list[Old]:
    """Each door the state records, with the stage's URL through the one that served it."""
    served = state.api_type or "rest"  # a state from before types: the REST API
    doors = []
    if state.rest_api_id:
        doors.append(Old("rest", rest_api_id=state.rest_api_id))
    if state.http_api_id:
        doors.append(Old("http", http_api_id=state.http_api_id))
    if state.function_url:
        doors.append(Old("url", function_url=state.function_url))
    return [replace(door, url=state.base_url) if door.api_type == served else door for door in doors]


class OldFrontDoor:
    resource = "old front door"

    def plan(self, target: Target, earlier: Plan) -> Change[tuple[Old, ...]]:
        config = target.config
        recorded = recorded_doors(target.recorded)
        old = tuple(_proven(target, door) for door in recorded if door.api_type != config.api_type)
        if not old:
            return Change(self.resource, "none", "inactive", note="no other front door recorded")
        names = ", ".join(door.api_type for door in old)
        was = next((door.url for door in old if door.url), None)
        new = f"the new {config.api_type} front door's URL"
        if config.api_type == "rest" and target.recorded.rest_api_id:
            new = target.recorded.base_url or new
        return Change(self.resource, names, "delete", (Diff(Field.URL, was, new),), observed=old)

    def apply(self, run: Run, change: Change[tuple[Old, ...]]) -> Change[tuple[Old, ...]]:
        problem = _new_door_problem(run)
        if problem is not None:
            raise DeployerError(
                f"the new {run.config.api_type} front door is not wired as it must be ({problem}): the old one is "
                "left serving; run `deployer up` again"
            )
        state, alias = run.state, run.config.alias
        was = next((door.url for door in change.observed or () if door.url), None)
        for door in change.observed or ():
            if door.api_type == "rest":
                if door.rest_api_id:  # None: gone already, or not this app's (never deleted on a state's word)
                    rest_api.delete(run, door.rest_api_id)
                permission.remove_statements(run, (permission.statement_id(alias),))
                state.rest_api_id = state.root_resource_id = state.proxy_resource_id = None
                state.deployment_id = state.permission_statement_id = None
            elif door.api_type == "http":
                if door.http_api_id:
                    http_api.delete(run, door.http_api_id)
                permission.remove_statements(run, (permission.http_api_statement_id(alias),))
                state.http_api_id = state.http_integration_id = state.http_route_id = None
            elif door.api_type == "url":
                function_url.delete(run)
                permission.remove_statements(run, permission.url_statement_ids(alias))
                state.function_url = None
            run.save_soon()
        note = f"the URL changes: {was} -> {state.base_url}"
        return Change(self.resource, change.name, "delete", change.diffs, change.observed, note=note)


def _proven(target: Target, door: Old) -> Old:
    """The door with its API's ID only if that API is still there and is this app's (its name and tag): a state file
    can name anyone's API, and the old door's own steps, inactive now, no longer check it. Else the ID is dropped:
    the state forgets it, nothing is deleted."""
    aws = target.aws
    if door.rest_api_id:
        rest_id = door.rest_api_id
        found = read_or_none(lambda: aws.apigateway.get_rest_api(restApiId=rest_id))
        if found is None or not rest_api.is_ours(found, target):
            return replace(door, rest_api_id=None)
    if door.http_api_id:
        http_id = door.http_api_id
        found = read_or_none(lambda: aws.apigatewayv2.get_api(ApiId=http_id))
        if found is None or not http_api.is_ours(found, target):
            return replace(door, http_api_id=None)
    return door


def _new_door_problem(run: Run) -> str | None:
    """Read the new door back before the old one goes: its wiring to the alias, and its grants."""
    state, config = run.state, run.config
    if config.api_type == "rest":
        if not (state.rest_api_id and state.deployment_id):
            return "no REST API deployed on the stage"
        wanted = {permission.statement_id(config.alias)}
    elif config.api_type == "http":
        if not state.http_api_id or not state.function_arn:
            return "no HTTP API"
        problem = http_api.wiring_problem(run.target, state.http_api_id, state.function_arn)
        if problem:
            return problem
        wanted = {permission.http_api_statement_id(config.alias)}
    else:
        problem = function_url.wiring_problem(run)
        if problem:
            return problem
        wanted = set(permission.url_statement_ids(config.alias)) if config.url_auth == "NONE" else set()
    granted = permission.statements_on_alias(run.aws, config.function_name, config.alias)
    missing = sorted(wanted - set(granted))
    return f"alias {config.alias} lacks the statement {missing[0]}" if missing else None
