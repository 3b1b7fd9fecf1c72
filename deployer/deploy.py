"""The deploy order, in one place, and the commands that walk it: plan, up, rollback, down.

`up` converges each resource in UP_ORDER: plan (reads), then apply (writes) only what differs, saving
the state after every resource it creates. `plan` runs the same reads and stops. `down` walks the
order backwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import ClientError

from deployer.context import Change, Context, Step
from deployer.errors import DeployerError
from deployer.resources import artifact, function, permission, rest_api, role, stage
from deployer.retry import error_code

UP_ORDER: tuple[Step, ...] = (
    artifact.Artifact(),
    role.Role(),
    function.Function(),
    rest_api.RestApi(),
    rest_api.ProxyResource(),
    rest_api.Method(rest_api.PROXY),
    rest_api.Method(rest_api.ROOT),
    rest_api.Integration(rest_api.PROXY),
    rest_api.Integration(rest_api.ROOT),
    stage.Stage(),
    permission.Permission(),
)
API_WIRING = (rest_api.RestApi, rest_api.ProxyResource, rest_api.Method, rest_api.Integration)


@dataclass
class Outcome:
    change: Change
    seconds: float


Report = Callable[[Outcome], None]


def plan(ctx: Context) -> list[Change]:
    """What `up` would do, from reads only."""
    _check_region(ctx)
    changes = []
    for step in UP_ORDER:
        change = step.plan(ctx)
        if isinstance(step, API_WIRING) and change.changes_something:
            ctx.api_changed = True
        changes.append(change)
    return changes


def _check_region(ctx: Context) -> None:
    """A state describing another region would make every lookup miss: `up` would duplicate the stack
    there and forget this one, `down` would forget it without deleting it."""
    recorded = ctx.state.region
    if ctx.state.deployed and recorded and recorded != ctx.aws.region:
        raise DeployerError(
            f"{ctx.config.app_name} is deployed in {recorded}, not {ctx.aws.region}: run `deployer down` with "
            f"region {recorded} first, or move {ctx.store.path} aside to start over"
        )


def _identify(ctx: Context) -> None:
    """Which app, stage and region the state file describes, for `status` and for the reader of the file."""
    _check_region(ctx)
    ctx.state.app, ctx.state.stage, ctx.state.region = ctx.config.app_name, ctx.config.stage, ctx.aws.region


def up(ctx: Context, report: Report = lambda _: None) -> list[Outcome]:
    """Create or update every resource, in order; a second run with nothing changed writes nothing."""
    _identify(ctx)
    outcomes = []
    for step in UP_ORDER:
        started = time.monotonic()
        change = step.plan(ctx)
        if change.changes_something:
            step.apply(ctx, change)
        outcome = Outcome(change, time.monotonic() - started)
        report(outcome)
        outcomes.append(outcome)
    # The function now serves this version's artifact, whether this run changed it or found it so
    # (a run killed after CreateFunction, a lost state file): record it either way.
    ctx.state.version, ctx.state.bucket, ctx.state.key = ctx.version, ctx.config.bucket, ctx.artifact_key
    ctx.state.artifact_sha256 = ctx.artifact_sha256
    ctx.state.record("up", ctx.version)
    ctx.save()
    return outcomes


def rollback(ctx: Context, report: Report = lambda _: None) -> Outcome:
    """Point the function at the artifact of an earlier version that is still in S3."""
    started = time.monotonic()
    previous = ctx.state.version
    _identify(ctx)
    key = ctx.artifact_key
    found = artifact.head(ctx, key)
    if found is None:
        versions = artifact.published_versions(ctx)
        listing = ", ".join(versions) if versions else "none"
        raise DeployerError(
            f"version {ctx.version} was never uploaded (no s3://{ctx.config.bucket}/{key}); "
            f"published versions: {listing}"
        )
    try:
        response = function.update_code(ctx, key)
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        raise DeployerError(
            f"function {ctx.config.app_name} is not deployed: run `deployer up --version {ctx.version}` instead"
        ) from None
    ctx.state.function_name, ctx.state.function_arn = ctx.config.app_name, response["FunctionArn"]
    if not ctx.state.rest_api_id:  # a lost state file: the API that serves the function, by its tags
        apis = rest_api.find_tagged(ctx)
        if len(apis) == 1:
            ctx.state.rest_api_id = apis[0]["id"]
            ctx.state.base_url = stage.base_url(ctx)
    ctx.state.version, ctx.state.bucket, ctx.state.key = ctx.version, ctx.config.bucket, key
    ctx.state.artifact_sha256 = artifact.sha256_of(found) or function.hex_sha256(response["CodeSha256"])
    ctx.state.record("rollback", ctx.version)
    ctx.save()
    outcome = Outcome(
        Change("function", ctx.config.app_name, "update", {"version": (previous, ctx.version)}),
        time.monotonic() - started,
    )
    report(outcome)
    return outcome


@dataclass
class Found:
    """What `down` will remove: from the state file, else found by name and tags."""

    rest_api_ids: list[str]
    function_name: str | None
    role_name: str | None

    @property
    def empty(self) -> bool:
        return not (self.rest_api_ids or self.function_name or self.role_name)


def find_deployed(ctx: Context) -> Found:
    """The state's resources, plus what carries this app's tag: an API orphaned by a retried
    CreateRestApi, or everything when the state file is lost."""
    _check_region(ctx)
    state = ctx.state
    tagged = [api["id"] for api in rest_api.find_tagged(ctx) if api["id"] != state.rest_api_id]
    api_ids = [state.rest_api_id, *tagged] if state.rest_api_id else tagged
    function_name = state.function_name or function.find_ours(ctx)
    role_name = state.role_name or role.find_ours(ctx)
    return Found(api_ids, function_name, role_name)


def down(ctx: Context, found: Found, report: Report = lambda _: None) -> list[Outcome]:
    """Remove what `found` names, newest first; what is already gone counts as removed."""
    outcomes = []

    def remove(resource: str, name: str, delete: Callable[[], bool]) -> None:
        started = time.monotonic()
        existed = delete()
        outcome = Outcome(Change(resource, name, "delete" if existed else "absent"), time.monotonic() - started)
        report(outcome)
        outcomes.append(outcome)

    for api_id in found.rest_api_ids:
        remove("rest api", api_id, lambda api_id=api_id: rest_api.delete(ctx, api_id))  # type: ignore[misc]
    if found.function_name:
        name = found.function_name
        remove("function", name, lambda: function.delete(ctx, name))
    if found.role_name:
        role_name = found.role_name
        remove("role", role_name, lambda: role.delete(ctx, role_name))
    version = ctx.state.version
    ctx.state.forget_resources()
    ctx.state.record("down", version)
    ctx.save()
    return outcomes
