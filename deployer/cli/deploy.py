"""The commands that deploy and inspect a stage: build, up, promote, plan, rollback, down, unlock, status.

Parse, delegate (deployer.build, deployer.deploy, the state stores), report. boto3 is imported inside them only.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deployer import output
from deployer.cli import common
from deployer.cli.common import DEFAULT_CONFIG, ConfigPath, EndpointUrl, Json, Local, Stage, Yes
from deployer.errors import DeployerError

if TYPE_CHECKING:
    from deployer.build import Artifact as BuiltArtifact
    from deployer.config import Config
    from deployer.context import ArtifactDigests, Connection, Run
    from deployer.deploy import Applied
    from deployer.read_ahead import ReadsAhead
    from deployer.state import State

PLAN_CHANGES_EXIT_CODE = 3  # `deployer plan`: 0 nothing to do, 3 something would change


WAITING_EXIT_CODE = 4  # deployed, but waiting on something outside AWS the output names (DNS records to create)


def _artifact(built: BuiltArtifact) -> ArtifactDigests:
    from deployer.context import ArtifactDigests

    return ArtifactDigests(built.sha256, built.content_sha256)


def _clients_of(config: Config) -> tuple[str, ...]:
    """The clients an up uses, the lock's first: made while it waits for the lock (Aws.warm)."""
    return ("s3", "iam", "logs", "lambda", *_front_door_clients(config))


def _ready_to_deploy() -> None:
    """What up and promote need once the state is read, loaded while they wait for the lock and the state (Aws.warm):
    the deploy's modules (some 30 ms of imports) and the console the outcome lines are printed on."""
    from deployer import deploy  # noqa: F401

    output.console()


def _front_door_clients(config: Config) -> tuple[str, ...]:
    return {"rest": ("apigateway",), "http": ("apigatewayv2",)}.get(config.api_type, ())


def _report(outcome: Applied) -> None:
    change = outcome.change
    if change.action == "inactive":  # a step of a front door the stage does not use: nothing to say
        return
    output.outcome_line(change.resource, change.name, change.action, outcome.seconds, change.diffs, change.note)


def _summary(connection: Connection, started: float) -> str:
    from deployer.aws import is_mutating

    calls = connection.aws.calls
    # The state's writes and its lock's change nothing of the stack: not counted as changes.
    writes = sum(1 for call in calls if is_mutating(call)) - connection.store.own_writes
    changes = "change" if writes == 1 else "changes"
    return f"{len(calls)} AWS calls ({writes} {changes}) in {time.monotonic() - started:.1f}s"


STATUS_FIELDS = (
    "version",
    "base_url",
    "function_name",
    "rest_api_id",
    "role_name",
    "stage",
    "bucket",
    "key",
    "lambda_version",
    "canary",
    "alias",
    "region",
    "domain_url",
    "domain_status",
    "api_type",
    "http_api_id",
    "function_url",
)


def _status_fields(state: State, config: Config) -> dict[str, Any]:
    """`status --json`'s object: the contract's fields, all null when nothing is deployed."""
    deployed = state.deployed
    data: dict[str, Any] = {name: getattr(state, name) if deployed else None for name in STATUS_FIELDS}
    data["stage"] = config.stage if deployed else None
    # A state from before types names a REST API only; none yet while the stage's first up is under way.
    data["api_type"] = state.api_type or ("rest" if state.rest_api_id else None) if deployed else None
    if data["canary"]:
        data["canary"] = {"version": data["canary"]["version"], "weight": data["canary"]["weight"]}
    data["app"] = config.app_name
    data["history"] = state.history
    return data


def build(context: typer.Context, config_path: ConfigPath = DEFAULT_CONFIG, json_output: Json = False) -> None:
    """Zip the function folder into a reproducible archive; print its path, size and sha256."""
    from deployer.build import build as build_zip

    with common.reported_errors(context):
        config = common.load_config(config_path)
        artifact = build_zip(config, force=True, log=output.plain)
        if json_output:
            left_out = [{"path": item.path, "reason": item.reason} for item in artifact.left_out]
            output.result_json(
                {"path": str(artifact.path), "size": artifact.size, "sha256": artifact.sha256, "left_out": left_out}
            )
            return
        output.info(f"built {artifact.path.name}: {artifact.size:,} bytes")
        output.result(f"{artifact.path}  {artifact.size} bytes  sha256:{artifact.sha256}")


def up(
    context: typer.Context,
    version: Annotated[str, typer.Option("--version", "-v", help="Version to deploy, e.g. 1.0.0.")],
    config_path: ConfigPath = DEFAULT_CONFIG,
    stage: Stage = None,
    canary: Annotated[
        float | None,
        typer.Option(
            "--canary",
            min=0.01,
            max=99.99,
            help="Send this percentage of the stage's traffic to the new release; the rest stays on the current one.",
        ),
    ] = None,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Do not invoke the new release before traffic moves to it.")
    ] = False,
    endpoint_url: EndpointUrl = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace a published version's different bytes, or publish it with another configuration."
        ),
    ] = False,
    json_output: Json = False,
    local: Local = None,
) -> None:
    """Build if needed, upload, publish the release, check it, move the stage to it; print the URL."""
    from deployer.build import build as build_zip
    from deployer.build import build_lock

    with common.reported_errors(context):
        config = common.checked_config(version, config_path, stage, needs_source=True)
        common.warn_of_secret_looking_variables(config)
        connection = common.connect(config, endpoint_url, local)
        connection.aws.warm(*_clients_of(config), then=_ready_to_deploy)
        command = common.command_line(context)
        # The build lock too, from the build to the upload: another build cannot swap dist/'s zip in between.
        with (
            _locked_reading_ahead(connection, command, version) as (state, early),
            build_lock(config, command=command, log=output.plain),
        ):
            artifact = _artifact(build_zip(config, log=output.plain))
            share = canary / 100 if canary is not None else None
            run = connection.run(
                state, version, artifact=artifact, force=force, canary=share, check=not no_check, ahead=early
            )
            _deploy(connection, run, "up", json_output)


def promote(
    context: typer.Context,
    version: Annotated[str, typer.Argument(help="A version already uploaded (by `up` on another stage).")],
    stage: Annotated[str, typer.Option("--stage", "-s", help="The stage to ship it to.")],
    config_path: ConfigPath = DEFAULT_CONFIG,
    from_stage: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="The stage whose artifact to ship (default: [api] stage); from another bucket (another account) "
            "it is copied, verified by its sha256.",
        ),
    ] = None,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Do not invoke the release before traffic moves to it.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Publish VERSION again on this stage with another configuration."),
    ] = False,
    endpoint_url: EndpointUrl = None,
    json_output: Json = False,
    local: Local = None,
) -> None:
    """Ship the artifact already published for VERSION to a stage, as it is: nothing is built."""
    from deployer import promotion
    from deployer.state import State

    with common.reported_errors(context):
        config = common.checked_config(version, config_path, stage, needs_source=False)
        source_config = common.load_config(config_path, from_stage)
        connection = common.connect(config, endpoint_url, local)
        connection.aws.warm(*_clients_of(config), then=_ready_to_deploy)
        # Another bucket (another account): the source stage's own credentials read its artifact.
        source = (
            None if promotion.same_bucket(source_config, config) else common.connect(source_config, endpoint_url, local)
        )
        command = common.command_line(context)
        copied = source is not None  # the artifact is copied in under the lock, before the plan: not read early
        with _locked_reading_ahead(connection, command, version, artifact_read=not copied) as (state, early):
            run = connection.run(state, version, check=not no_check, force=force, ahead=early)
            action = "promote"
            if source is not None:
                output.info(
                    f"copying {version}'s artifact from stage {source_config.stage} (s3://{source_config.bucket}) "
                    f"to s3://{config.bucket}, verified by its sha256"
                )
                promotion.ship(source.target(State(), version), run)
                action = f"promote from {source_config.stage}"
            _deploy(connection, run, "promote", json_output, action)
        if source is not None:
            _record_promotion(source, version, config.stage, command)


def _record_promotion(source: Connection, version: str, stage: str, command: str) -> None:
    """The source stage's history says where its release went: written under its lock, as any write. The
    promote is done by then: a lock held by another run leaves the history without it, and says so."""
    try:
        with common.locked(source, command) as state:
            state.record(f"promoted to {stage}", version)
            source.store.save(state)
    except DeployerError as error:
        output.info(
            f"[yellow]warning:[/] {version} is deployed on stage {stage}, but stage {source.config.stage}'s history "
            f"could not say so: {output.escape(str(error))}"
        )


@contextmanager
def _locked_reading_ahead(
    connection: Connection, command: str, version: str, artifact_read: bool = True
) -> Iterator[tuple[State, ReadsAhead]]:
    """The state lock (common.locked) and, as soon as it is held, while the state is read, the reads the last plan
    of this stage made (the hint `_deploy` keeps) and the read of this version's artifact: an unchanged up's plan
    is answered in the state's round trip. What the command itself writes before its plan must not be read early
    (`artifact_read=False`: a promote that copies the artifact in first)."""
    from deployer.read_ahead import ReadsAhead, load_hint
    from deployer.resources.artifact import head_read

    config, early = connection.config, ReadsAhead(connection.aws)

    def send() -> None:
        artifact = [head_read(config, config.artifact_key(version))] if artifact_read else []
        early.send([*load_hint(_hint(connection), _clients_of(config)), *artifact])

    with closing(early), common.locked(connection, command, send) as state:
        yield state, early


def _hint(connection: Connection) -> Path:
    """Where the reads of this stage's next plan are kept (.deployer/cache, with the build's caches), named as its
    state is."""
    from deployer.stores import state_name

    name = state_name(connection.config, local=connection.local_endpoint is not None)
    return connection.config.root / ".deployer" / "cache" / f"reads-ahead-{name}.json"


def _deploy(connection: Connection, run: Run, command: str, json_output: bool, action: str | None = None) -> None:
    """Carry out `up` or `promote` and report it: a line per resource, then the URL alone on stdout."""
    from deployer import deploy
    from deployer.read_ahead import save_hint

    started = time.monotonic()
    config, target = run.config, run.target
    local_endpoint = connection.local_endpoint
    where = f"on the local cloud {local_endpoint}" if local_endpoint else f"in {connection.aws.region}"
    share = f" ({target.canary:.0%} of its traffic)" if target.canary else ""
    output.info(f"deploying [bold]{config.app_name}[/] {target.version} to stage {config.stage}{share} {where}")
    report = (lambda _: None) if json_output else _report
    outcomes = deploy.promote(run, report, action or command) if command == "promote" else deploy.up(run, report)
    save_hint(_hint(connection), deploy.reads_of_the_next_plan(run))
    if json_output:
        data = _status_fields(run.state, config)
        data["resources"] = [
            {
                "resource": item.change.resource,
                "name": item.change.name,
                "action": item.change.action,
                "seconds": round(item.seconds, 3),
            }
            for item in outcomes
            if item.change.action != "inactive"
        ]
        data["aws_calls"] = len(connection.aws.calls)
        data["dns_records_to_create"] = run.state.dns_pending or []
        output.result_json(data)
        if run.state.domain_status == "validating":
            raise typer.Exit(WAITING_EXIT_CODE)
        return
    output.info(_summary(connection, started))
    _report_domain(run.state)


def _report_domain(state: State) -> None:
    """The URL last on stdout: the domain's once it serves, the execute-api one (then on stderr) otherwise.
    DNS records the user must create are named exactly; while the certificate waits for them, exit 4."""
    for record in state.dns_pending or []:
        line = f"{record['name']} {record['type']} {record['value']}"
        output.info(f"create this DNS record: {output.escape(line)}")
        if state.domain_status == "validating":
            output.result(line)
    if state.domain_status == "validating":
        output.info(
            f"{state.domain} waits for its certificate: create the record above where its DNS is served, then run "
            f"`deployer up` again; until then the stage answers at {state.base_url}"
        )
        raise typer.Exit(WAITING_EXIT_CODE)
    if state.domain_url:
        output.info(f"execute-api URL: {state.base_url}")
        output.result(state.domain_url)
        return
    output.result(state.base_url or "")


def plan(
    context: typer.Context,
    version: Annotated[str, typer.Option("--version", "-v", help="Version `up` would deploy.")],
    config_path: ConfigPath = DEFAULT_CONFIG,
    stage: Stage = None,
    endpoint_url: EndpointUrl = None,
    json_output: Json = False,
    local: Local = None,
) -> None:
    """Show what `up` would change, reading only. Exit 0: nothing; 3: something would change."""
    from deployer import deploy
    from deployer.build import build as build_zip
    from deployer.plan import Plan

    with common.reported_errors(context):
        config = common.checked_config(version, config_path, stage, needs_source=True)
        common.warn_of_secret_looking_variables(config)
        connection = common.connect(config, endpoint_url, local)
        artifact = _artifact(build_zip(config, log=output.plain))
        planned = deploy.plan(connection.target(connection.store.load(), version, artifact=artifact))
        # A front door the stage does not use is not part of its plan (its steps asked nothing).
        changes = Plan(tuple(change for change in planned if change.action != "inactive"))
        pending = changes.pending
        if json_output:
            output.result_json(
                {
                    "changes": [
                        {
                            "resource": change.resource,
                            "name": change.name,
                            "action": change.action,
                            "diffs": {diff.field: {"old": diff.old, "new": diff.new} for diff in change.diffs},
                        }
                        for change in changes
                    ],
                    "pending": len(pending),
                }
            )
        else:
            for change in changes:
                output.plan_line(change.resource, change.name, change.action, change.diffs)
            output.info(f"{len(pending)} to change, {len(changes.changes) - len(pending)} unchanged")
        if pending:
            raise typer.Exit(PLAN_CHANGES_EXIT_CODE)


def rollback(
    context: typer.Context,
    version: Annotated[str, typer.Argument(help="An earlier release of this stage.")],
    config_path: ConfigPath = DEFAULT_CONFIG,
    stage: Stage = None,
    endpoint_url: EndpointUrl = None,
    local: Local = None,
) -> None:
    """Put an earlier release back, whole: its code and its configuration (one alias move)."""
    from deployer import deploy

    with common.reported_errors(context):
        started = time.monotonic()
        config = common.checked_config(version, config_path, stage, needs_source=False)
        connection = common.connect(config, endpoint_url, local)
        connection.aws.warm("s3", "lambda", *_front_door_clients(config))  # an alias move; the API's URL read back
        with common.locked(connection, common.command_line(context)) as state:
            run = connection.run(state, version)
            deploy.rollback(run, report=_report)
        output.info(_summary(connection, started))
        output.result(run.state.base_url or "")


def down(
    context: typer.Context,
    config_path: ConfigPath = DEFAULT_CONFIG,
    stage: Stage = None,
    endpoint_url: EndpointUrl = None,
    yes: Yes = False,
    local: Local = None,
    keep_logs: Annotated[
        bool, typer.Option("--keep-logs", help="Leave the function's log group (its events and retention).")
    ] = False,
) -> None:
    """Delete everything deployed on this stage, newest first; other stages are left alone."""
    from deployer import deploy

    with common.reported_errors(context):
        started = time.monotonic()
        config = common.load_config(config_path, stage)
        common.require_an_answer(yes, "down deletes resources")
        connection = common.connect(config, endpoint_url, local)
        with common.locked(connection, common.command_line(context)) as state:
            run = connection.run(state)
            found = deploy.find_deployed(run.target)
            if keep_logs:
                found = dataclasses.replace(found, log_group=None)
            if found.empty:
                output.info(f"nothing deployed for {config.app_name} on stage {config.stage}")
                run.state.forget_resources()
                run.save()
                return
            names = [f"rest api {api_id}" for api_id in found.rest_api_ids]
            names += [f"http api {api_id}" for api_id in found.http_api_ids]
            names += [f"function {found.function_name}"] if found.function_name else []
            names += [f"log group {found.log_group}"] if found.log_group else []
            if found.role:
                shared = found.role.other_regions
                names += [
                    f"role {found.role.name}"
                    + (f" (kept: still used in {', '.join(sorted(shared))})" if shared else "")
                ]
            if not yes and not typer.confirm(f"Delete {', '.join(names)}?", err=True, default=False):
                raise DeployerError("nothing deleted")
            deploy.down(run, found, report=_report)
            _hint(connection).unlink(missing_ok=True)  # its IDs are gone: the next up reads by name
        output.info(f"artifacts stay in s3://{config.bucket}/ for rollbacks; " + _summary(connection, started))


def unlock(
    context: typer.Context,
    config_path: ConfigPath = DEFAULT_CONFIG,
    stage: Stage = None,
    endpoint_url: EndpointUrl = None,
    yes: Yes = False,
    local: Local = None,
) -> None:
    """Remove the shared state's lock left by a run that is gone (killed): only that very lock."""
    with common.reported_errors(context):
        config = common.load_config(config_path, stage)
        common.require_an_answer(yes, "unlock removes another run's lock")
        store = common.connect(config, endpoint_url, local).store

        def confirm(holder: str) -> bool:
            return yes or typer.confirm(f"Remove the lock held by {holder}? Only if that run is gone.", err=True)

        removed = store.unlock(confirm)
        if removed is None:
            output.info(f"nothing to unlock: no deployer holds the lock of {config.app_name} on stage {config.stage}")
        else:
            output.plain(f"removed the lock held by {removed}")


def status(
    context: typer.Context,
    config_path: ConfigPath = DEFAULT_CONFIG,
    stage: Stage = None,
    json_output: Json = False,
    local: Local = None,
    endpoint_url: EndpointUrl = None,
) -> None:
    """What is deployed on a stage, from its state: the shared one (one S3 read), or the local file."""
    from deployer.state import State
    from deployer.stores import store_for

    with common.reported_errors(context):
        config = common.load_config(config_path, stage)
        is_local = common.is_local(local, config)
        if config.state_backend == "local":
            state = store_for(config, local=is_local).load()
        elif is_local:
            from deployer.local import control, resolve_port

            # The local cloud is not started for a status: not running, it holds nothing.
            running = control.status(resolve_port()) is not None
            state = common.connect(config, None, True).store.load() if running else State()
        else:
            state = common.connect(config, endpoint_url, False).store.load()
        data = _status_fields(state, config)
        if is_local:
            from deployer.local import control, resolve_port

            data["local"] = control.describe(resolve_port())  # the emulator; no AWS call, it is not started
        where = " on the local cloud" if is_local else ""
        if json_output:
            output.result_json(data)
            return
        if not state.deployed:
            output.result(f"nothing deployed for {config.app_name} on stage {config.stage}{where}")
            return
        shown = {name: output.untrusted(value, output.FIELD_LIMIT) for name, value in data.items()}  # the state's
        for name in ("version", "base_url", "api_type", "stage", "function_name", "alias", "lambda_version"):
            output.result(f"{name:<14} {shown[name]}")
        for name in ("rest_api_id", "http_api_id", "function_url"):  # the front door's own ID, or URL
            if data[name]:
                output.result(f"{name:<14} {shown[name]}")
        if data["domain_url"]:
            domain_status = shown["domain_status"] or "ready"
            output.result(f"{'domain_url':<14} {shown['domain_url']} ({domain_status})")
        if data["canary"]:
            canary = data["canary"]
            version = output.untrusted(canary["version"], output.FIELD_LIMIT)
            output.result(f"{'canary':<14} {version} gets {canary['weight']:.0%} of the traffic")
        for name in ("role_name", "bucket", "key"):
            output.result(f"{name:<14} {shown[name]}")
        if is_local and not data["local"]["running"]:
            output.info("the local cloud is not running: what it held is gone; `deployer up --local` deploys again")
