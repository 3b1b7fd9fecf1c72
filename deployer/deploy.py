"""The deploy order, in one place, and the commands that walk it: plan, up, promote, rollback, down.

`plan` asks each step in UP_ORDER what it would change, by reads only, and returns a Plan (data).
`up` computes that same Plan, then executes it: each step applies its change, in order, saving the
state after every resource it creates. A release is code and configuration published as one Lambda
version; the stage's alias moves to it once it passed its check, and the API calls the alias, so
`rollback` is one alias move. `down` removes what the state (or the app's tags) names, newest first.

Steps hand data on in two typed ways only: a plan step asks the plan so far for an earlier step's change
(`earlier.of(function.Function)`: a `Change[function.Observed]`), and an apply asks what the steps before it
did (`run.done.of(version.Version)`: the version published). What a plan learned for the state is a `Learned`,
recorded before anything is applied.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from deployer import check, schedule, secrets
from deployer.aws import read_or_none
from deployer.context import Run, Step, Target
from deployer.errors import DeployerError, UsageError
from deployer.plan import Change, Diff, Plan
from deployer.read_ahead import Read, reading_ahead
from deployer.resources import (
    alias,
    artifact,
    domain,
    front_door,
    function,
    function_url,
    http_api,
    log_group,
    permission,
    prune,
    rest_api,
    role,
    stage,
    version,
)
from deployer.state import State

UP_ORDER: tuple[Step[Any], ...] = (
    artifact.ArtifactObject(),
    role.Role(),
    log_group.LogGroup(),  # before the function: else Lambda makes it at the first log line, kept forever
    function.Function(),  # $LATEST: code and configuration; never served
    version.Version(),  # published once it holds the release
    check.Check(),  # the new version invoked before any traffic reaches it
    alias.Alias(),  # the stage's alias moves to it: the release is live (or a canary's share of it)
    rest_api.RestApi(),
    rest_api.ProxyResource(),
    rest_api.Method(rest_api.PROXY),
    rest_api.Method(rest_api.ROOT),
    rest_api.Integration(rest_api.PROXY),
    rest_api.Integration(rest_api.ROOT),
    permission.Permission(),  # the API may invoke the alias: before a deployment makes it call it
    stage.Stage(),
    # [api] type = "http": an HTTP API, its integration (payload 2.0) and $default route, its grant, its stage
    http_api.HttpApi(),
    http_api.Integration(),
    http_api.Route(),
    http_api.Permission(),
    http_api.Stage(),
    # [api] type = "url": the alias's function URL and, with auth "none", its public grants
    function_url.FunctionUrl(),
    function_url.Permission(),
    *domain.STEPS,  # certificate, domain name, base path mapping, DNS records: the stage's own domain, if any
    prune.Prune(),
    front_door.OldFrontDoor(),  # a type switch: the old door goes last, once the new one is made and read back
)
# What each step's plan reads, and what its apply needs done first: the steps it declares (`reads`, `needs`), or
# every step before it (deployer.schedule). So the upload, the role, the log group and the REST API's wiring go out
# together, the wiring while IAM makes the new role assumable; the alias after the check, the permission after the
# alias, the stage's deployment after both.
READS = schedule.dependencies(UP_ORDER, "reads")
NEEDS = schedule.dependencies(UP_ORDER, "needs")


@dataclass
class Applied:
    """A change as carried out, and how long it took: what a command reports, line by line."""

    change: Change[Any]
    seconds: float


Reporter = Callable[[Applied], None]


def plan(target: Target) -> Plan:
    """What `up` would do, from reads only: nothing is written, to AWS or to the state."""
    _check_region(target)
    target = secrets.resolved(target)  # every reference read before anything is written

    def plan_step(index: int, earlier: list[Change[Any]]) -> Change[Any]:
        return UP_ORDER[index].plan(target, Plan(tuple(earlier)))

    # Each step's plan as soon as the plans it reads are done; the reads the state and the configuration predict
    # are all sent first, at once, and answer the plans' calls (one round trip where the waves took four).
    with reading_ahead(target.aws, _predicted_reads(target), early=target.ahead):
        return Plan(tuple(schedule.walk(READS, plan_step)))


def reads_of_the_next_plan(run: Run) -> list[Read]:
    """The reads the next plan of this stage will make, as the state now predicts them: kept as the hint the next
    command sends as soon as it holds the lock (deployer.read_ahead), before the state itself is read. The
    artifact's read is left out: it names the version, which the next command reads for itself (deployer.cli)."""
    target = replace(run.target, recorded=run.state.copy())
    versioned = artifact.head_read(target.config, target.artifact_key) if target.version else None
    return [read for read in _predicted_reads(target) if read != versioned]


def _predicted_reads(target: Target) -> list[Read]:
    """The reads the plan will make, from the steps that predict theirs (`ahead`): by the IDs the state records,
    or, for what it does not record yet, the first read of the step's search by name."""
    return [read for step in UP_ORDER if (ahead := getattr(step, "ahead", None)) for read in ahead(target)]


def _check_region(target: Target) -> None:
    """A state describing another region would make every lookup miss: `up` would duplicate the stack
    there and forget this one, `down` would forget it without deleting it."""
    recorded = target.recorded
    if recorded.deployed and recorded.region and recorded.region != target.region:
        raise DeployerError(
            f"{target.config.function_name} is deployed in {recorded.region}, not {target.region}: run `deployer "
            f"down` with region {recorded.region} first, or move the state file aside to start over"
        )


def _identify(run: Run) -> None:
    """Which app, stage and region the state describes, for `status` and for the reader of the file."""
    run.state.app, run.state.stage, run.state.region = run.config.app_name, run.config.stage, run.target.region


def execute(run: Run, planned: Plan, report: Reporter = lambda _: None, action: str = "up") -> list[Applied]:
    """Apply each change of the plan, each once what it needs is done (several at once); what the plan found in the
    account is recorded first. A step's apply sees in `run.done` the changes it needs, as carried out; `report` gets
    each change in UP_ORDER's order, and `run.done` ends with all of them."""
    _identify(run)
    for change in planned:
        run.state.learn(change.learned)
    run.done = Plan(())

    def apply(index: int, before: list[Applied]) -> Applied:
        step, change = UP_ORDER[index], planned.changes[index]
        started = time.monotonic()
        own = replace(run, done=Plan(tuple(outcome.change for outcome in before)))  # the same state, store and lock
        done = (step.apply(own, change) if change.action not in ("unchanged", "absent", "inactive") else None) or change
        return Applied(done, time.monotonic() - started)

    def finished(index: int, outcome: Applied) -> None:
        run.done = Plan((*run.done.changes, outcome.change))
        report(outcome)

    try:
        outcomes = schedule.walk(NEEDS, apply, finished)
    except BaseException:
        with contextlib.suppress(Exception):  # what the steps made is recorded before their error ends the run
            run.flush()
        raise
    if planned.pending:  # an up that changed nothing is no event: the shared state is not even written
        run.state.record(action, run.target.version if not run.target.keep_live else run.state.version)
    run.save()
    return outcomes


def up(run: Run, report: Reporter = lambda _: None, action: str = "up") -> list[Applied]:
    """Create or update every resource, in order; a second run with nothing changed writes nothing.

    A stack from before aliases (its API calls the function's $LATEST) is converted first, with no
    downtime and without serving anything new: what runs now is published and put behind the alias,
    the API is pointed at the alias, and only then does $LATEST take the new release."""
    _check_region(run.target)
    run.target = secrets.resolved(run.target)  # read once, before any write; apply puts the values in place
    planned = plan(run.target)
    converting = _serves_latest(planned)
    outcomes: list[Applied] = []
    if converting:
        as_it_is = replace(run.target, keep_live=True)
        outcomes += execute(replace(run, target=as_it_is), plan(as_it_is), report, action="convert")
        permission.remove_unqualified(run)
        run.target = replace(run.target, recorded=run.state.copy())
        planned = plan(run.target)
    return outcomes + execute(run, planned, report, action)


def _serves_latest(planned: Plan) -> bool:
    """The function exists with no alias yet, and the API calls it unqualified."""
    function_change, alias_change = planned.of(function.Function), planned.of(alias.Alias)
    api = planned.of(rest_api.RestApi)
    return bool(
        function_change is not None
        and function_change.action != "create"
        and alias_change is not None
        and alias_change.action == "create"
        and api is not None
        and api.observed is not None
        and rest_api.serves_latest(api.observed.resources)
    )


def promote(run: Run, report: Reporter = lambda _: None, action: str = "promote") -> list[Applied]:
    """Ship the artifact already published for the version to this stage, as it is: nothing is built. `action`
    is what the history says ("promote from staging" after a copy from another stage's bucket)."""
    published = artifact.published_artifact(run.target)
    run.target = replace(run.target, artifact=published)
    return up(run, report, action=action)


def rollback(run: Run, report: Reporter = lambda _: None) -> list[Applied]:
    """Put release V back, whole: one alias move to its published version, code and configuration as
    they ran. A version pruned since is published again from V's artifact and V's recorded configuration."""
    started = time.monotonic()
    target, state = run.target, run.state
    assert target.version is not None
    _check_region(target)
    config = target.config
    versions = version.versions_by_number(target)
    if versions is None or (not versions and not state.deployed):
        raise DeployerError(
            f"{config.function_name} is not deployed on stage {config.stage}: "
            f"run `deployer up --version {target.version}` instead"
        )
    number = version.find_release(target, target.version, versions)
    if number is None:
        return _republish(run, report)
    previous = state.version
    arguments = {"FunctionName": config.function_name, "Name": config.alias, "FunctionVersion": number}
    try:
        run.aws.lambda_.update_alias(**arguments, RoutingConfig={"AdditionalVersionWeights": {}})
    except run.aws.lambda_.exceptions.ResourceNotFoundException:
        return _republish(run, report)  # no alias yet: a stack from before aliases, converted by up
    _identify(run)
    state.function_name = config.function_name
    state.alias, state.lambda_version, state.canary = config.alias, number, None
    state.version, state.bucket, state.key = target.version, config.bucket, target.artifact_key
    if config.api_type == "rest":  # an HTTP API's or a function URL's URL does not move with a rollback
        _find_our_api(target, state)
    state.record("rollback", target.version)
    run.save()
    change: Change[Any] = Change(
        "alias", config.alias, "update", (Diff(alias.Field.VERSION, previous, f"{target.version}"),)
    )
    outcome = Applied(change, time.monotonic() - started)
    report(outcome)
    return [outcome]


def _find_our_api(target: Target, state: State) -> None:
    """The API whose URL rollback prints and stores: the one the state names only if it is this app's (a state can be
    edited to name another app's), else the one found by name and tags (a lost state), else none."""
    recorded = state.rest_api_id
    if recorded:
        api = read_or_none(lambda: target.aws.apigateway.get_rest_api(restApiId=recorded))
        if api is not None and rest_api.is_ours(api, target):
            state.base_url = stage.base_url(target, recorded)
            return
    state.rest_api_id = state.root_resource_id = state.proxy_resource_id = state.deployment_id = None
    state.base_url = None
    apis = rest_api.find_tagged(target)
    if len(apis) == 1:
        state.rest_api_id = apis[0]["id"]
        state.base_url = stage.base_url(target, apis[0]["id"])


def _republish(run: Run, report: Reporter) -> list[Applied]:
    """Publish release V again from its artifact and the configuration recorded when it was deployed."""
    target, config = run.target, run.target.config
    assert target.version is not None
    record = run.state.releases.get(target.version)
    if record is None:
        uploaded = artifact.published_versions(target)
        if target.version not in uploaded:
            listing = ", ".join(uploaded) if uploaded else "none"
            raise DeployerError(
                f"version {target.version} was never uploaded (no s3://{config.bucket}/{target.artifact_key}); "
                f"published versions: {listing}"
            )
        raise DeployerError(
            f"release {target.version} is no longer published on stage {config.stage} and its configuration was "
            f"not recorded: `deployer promote {target.version} --stage {config.stage}` ships its artifact with "
            "today's configuration"
        )
    lacking = [
        key for key in ("handler", "runtime", "memory", "timeout", "architecture", "environment") if key not in record
    ]
    if lacking:
        raise UsageError(
            f"the state's record of release {target.version} has no {lacking[0]}, so the release cannot be rebuilt "
            f"from it: `deployer promote {target.version} --stage {config.stage}` ships its artifact with today's "
            "configuration"
        )
    missing = [name for name in record["environment"] if name not in config.environment]
    if missing:
        raise UsageError(
            f"release {target.version} ran with the environment variable {missing[0]}, which deploy.toml no longer "
            f"sets for stage {config.stage}: set it again to roll back (its value is never recorded)"
        )
    recorded = replace(
        config,
        handler=record["handler"],
        runtime=record["runtime"],
        memory=record["memory"],
        timeout=record["timeout"],
        architecture=record["architecture"],
        environment={name: config.environment[name] for name in record["environment"]},
        secrets={name: pin["ref"] for name, pin in (record.get("secrets") or {}).items()},
        kms_key_arn=record.get("kms_key_arn"),
    )
    # Exactly the versions V was checked with (SSM name:3, the secret's VersionId), never today's.
    pinned = secrets.resolve(target.aws, recorded.secrets, record.get("secrets"))
    secrets.check_size(recorded.environment, pinned, config.stage)
    published = artifact.published_artifact(replace(target, config=recorded))
    run.target = replace(target, config=recorded, artifact=published, canary=None, secrets=pinned)
    return up(run, report, action="rollback")


@dataclass
class Deployed:
    """What `down` will remove: from the state file, else found by name and tags."""

    rest_api_ids: list[str]
    function_name: str | None
    role: role.OurRole | None
    log_group: str | None = None  # only one deployer made (tagged): an adopted group is not ours to delete
    http_api_ids: list[str] = field(default_factory=list)  # [api] type = "http" (or a type switch's leftover)

    @property
    def empty(self) -> bool:
        return not (self.rest_api_ids or self.http_api_ids or self.function_name or self.role or self.log_group)


def find_deployed(target: Target) -> Deployed:
    """What this stage's down removes: the APIs, function and role named after it that carry the app's tag
    (an API a retried CreateRestApi orphaned too). Never what a state file names without that proof."""
    _check_region(target)
    api_ids = [api["id"] for api in rest_api.find_tagged(target)]
    http_api_ids = [api["ApiId"] for api in http_api.find_tagged(target)] if _may_have_http_apis(target) else []
    return Deployed(
        api_ids, function.find_ours(target), role.find_ours(target), log_group.find_ours(target), http_api_ids
    )


def _may_have_http_apis(target: Target) -> bool:
    """Whether down looks for HTTP APIs by tag: when the stage is (or was) of that type. A REST stage whose state
    never named one asks nothing more than it did before HTTP APIs existed."""
    return target.config.api_type == "http" or bool(target.recorded.http_api_id)


def down(run: Run, found: Deployed, report: Reporter = lambda _: None) -> list[Applied]:
    """Remove what `found` names, newest first; what is already gone counts as removed."""
    outcomes: list[Applied] = []

    def remove(resource: str, name: str, delete: Callable[[], bool]) -> None:
        started = time.monotonic()
        existed = delete()
        outcome = Applied(Change(resource, name, "delete" if existed else "absent"), time.monotonic() - started)
        report(outcome)
        outcomes.append(outcome)

    started = time.monotonic()
    for change in domain.remove(run, found.rest_api_ids, tuple(found.http_api_ids)):  # mappings go before their API
        outcome = Applied(change, time.monotonic() - started)
        report(outcome)
        outcomes.append(outcome)
        started = time.monotonic()
    for api_id in found.rest_api_ids:
        remove("rest api", api_id, partial(rest_api.delete, run, api_id))
    for api_id in found.http_api_ids:
        remove("http api", api_id, partial(http_api.delete, run, api_id))  # its URL config goes with the function
    if found.function_name:
        name = found.function_name
        remove("function", name, lambda: function.delete(run, name))
    if found.log_group:
        group = found.log_group
        remove("log group", group, lambda: log_group.delete(run, group))
    if found.role and found.role.other_regions:
        started, shared = time.monotonic(), found.role
        role.leave(run, shared)
        note = f"still used in {', '.join(sorted(shared.other_regions))}"
        outcome = Applied(Change("role", shared.name, "keep", note=note), time.monotonic() - started)
        report(outcome)
        outcomes.append(outcome)
    elif found.role:
        role_name = found.role.name
        remove("role", role_name, lambda: role.delete(run, role_name))
    artifact.abort_unfinished_uploads(run)  # the artifacts stay for rollbacks; a killed run's parts do not
    version = run.state.version
    run.state.forget_resources()
    run.state.record("down", version)
    run.save()
    return outcomes
