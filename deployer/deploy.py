"""The deploy order, in one place, and the commands that walk it: plan, up, rollback, down.

`plan` asks each step in UP_ORDER what it would change, by reads only, and returns a Plan (data).
`up` computes that same Plan, then executes it: each step applies its change, in order, saving the
state after every resource it creates. `down` removes what the state (or the app's tags) names,
newest first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import ClientError

from deployer.context import Run, Target
from deployer.digest import hex_sha256
from deployer.errors import DeployerError
from deployer.plan import Change, Diff, Plan, Step
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


@dataclass
class Outcome:
    change: Change
    seconds: float


Report = Callable[[Outcome], None]


def plan(target: Target) -> Plan:
    """What `up` would do, from reads only: nothing is written, to AWS or to the state."""
    _check_region(target)
    changes: list[Change] = []
    for step in UP_ORDER:
        changes.append(step.plan(target, Plan(tuple(changes))))
    return Plan(tuple(changes))


def _check_region(target: Target) -> None:
    """A state describing another region would make every lookup miss: `up` would duplicate the stack
    there and forget this one, `down` would forget it without deleting it."""
    recorded = target.recorded
    if recorded.deployed and recorded.region and recorded.region != target.region:
        raise DeployerError(
            f"{target.config.app_name} is deployed in {recorded.region}, not {target.region}: run `deployer down` "
            f"with region {recorded.region} first, or move the state file aside to start over"
        )


def _identify(run: Run) -> None:
    """Which app, stage and region the state describes, for `status` and for the reader of the file."""
    run.state.app, run.state.stage, run.state.region = run.config.app_name, run.config.stage, run.target.region


def execute(run: Run, planned: Plan, report: Report = lambda _: None) -> list[Outcome]:
    """Apply each change of the plan in order; what the plan found in the account is recorded first."""
    _identify(run)
    for change in planned:
        for key, value in change.learned.items():
            setattr(run.state, key, value)
    outcomes = []
    for step, change in zip(UP_ORDER, planned, strict=True):
        started = time.monotonic()
        if change.changes_something:
            step.apply(run, change)
        outcome = Outcome(change, time.monotonic() - started)
        report(outcome)
        outcomes.append(outcome)
    # The function now serves this version's artifact, whether this run changed it or found it so
    # (a run killed after CreateFunction, a lost state file): record it either way.
    target, state = run.target, run.state
    state.version, state.bucket, state.key = target.version, target.config.bucket, target.artifact_key
    artifact_change = planned.of("artifact")
    state.artifact_sha256 = artifact_change.observed.sha256 if artifact_change else None
    state.record("up", target.version)
    run.save()
    return outcomes


def up(run: Run, report: Report = lambda _: None) -> list[Outcome]:
    """Create or update every resource, in order; a second run with nothing changed writes nothing."""
    return execute(run, plan(run.target), report)


def rollback(run: Run, report: Report = lambda _: None) -> Outcome:
    """Point the function at the artifact of an earlier version that is still in S3."""
    started = time.monotonic()
    target, state = run.target, run.state
    _check_region(target)
    previous = state.version
    _identify(run)
    key = target.artifact_key
    found = artifact.head(target, key)
    if found is None:
        versions = artifact.published_versions(target)
        listing = ", ".join(versions) if versions else "none"
        raise DeployerError(
            f"version {target.version} was never uploaded (no s3://{target.config.bucket}/{key}); "
            f"published versions: {listing}"
        )
    try:
        response = function.update_code(run, key)
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        raise DeployerError(
            f"function {target.config.app_name} is not deployed: run `deployer up --version {target.version}` instead"
        ) from None
    state.function_name, state.function_arn = target.config.app_name, response["FunctionArn"]
    if not state.rest_api_id:  # a lost state file: the API that serves the function, by its tags
        apis = rest_api.find_tagged(target)
        if len(apis) == 1:
            state.rest_api_id = apis[0]["id"]
            state.base_url = stage.base_url(target, apis[0]["id"])
    state.version, state.bucket, state.key = target.version, target.config.bucket, key
    state.artifact_sha256 = artifact.sha256_of(found) or hex_sha256(response["CodeSha256"])
    state.record("rollback", target.version)
    run.save()
    outcome = Outcome(
        Change("function", target.config.app_name, "update", (Diff("version", previous, target.version),)),
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


def find_deployed(target: Target) -> Found:
    """The state's resources, plus what carries this app's tag: an API orphaned by a retried
    CreateRestApi, or everything when the state file is lost."""
    _check_region(target)
    recorded = target.recorded
    tagged = [api["id"] for api in rest_api.find_tagged(target) if api["id"] != recorded.rest_api_id]
    api_ids = [recorded.rest_api_id, *tagged] if recorded.rest_api_id else tagged
    function_name = recorded.function_name or function.find_ours(target)
    role_name = recorded.role_name or role.find_ours(target)
    return Found(api_ids, function_name, role_name)


def down(run: Run, found: Found, report: Report = lambda _: None) -> list[Outcome]:
    """Remove what `found` names, newest first; what is already gone counts as removed."""
    outcomes = []

    def remove(resource: str, name: str, delete: Callable[[], bool]) -> None:
        started = time.monotonic()
        existed = delete()
        outcome = Outcome(Change(resource, name, "delete" if existed else "absent"), time.monotonic() - started)
        report(outcome)
        outcomes.append(outcome)

    for api_id in found.rest_api_ids:
        remove("rest api", api_id, lambda api_id=api_id: rest_api.delete(run, api_id))  # type: ignore[misc]
    if found.function_name:
        name = found.function_name
        remove("function", name, lambda: function.delete(run, name))
    if found.role_name:
        role_name = found.role_name
        remove("role", role_name, lambda: role.delete(run, role_name))
    version = run.state.version
    run.state.forget_resources()
    run.state.record("down", version)
    run.save()
    return outcomes
