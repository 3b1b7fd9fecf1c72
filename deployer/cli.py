"""The command line: parse, delegate, report. No AWS logic lives here.

boto3 is imported only inside the commands that talk to AWS, so `deployer --help` and
`deployer build` start fast.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deployer import output
from deployer.config import Config, check_version, load_config
from deployer.errors import DeployerError, UsageError

if TYPE_CHECKING:
    from deployer.build import Artifact as BuiltArtifact
    from deployer.context import ArtifactDigests, Connection, Run
    from deployer.deploy import Applied
    from deployer.retry import Waits
    from deployer.state import State

PLAN_CHANGES_EXIT_CODE = 3  # `deployer plan`: 0 nothing to do, 3 something would change
WAITING_EXIT_CODE = 4  # deployed, but waiting on something outside AWS the output names (DNS records to create)

app = typer.Typer(
    name="deployer",
    help="Ship a web application to AWS Lambda behind API Gateway, with plain boto3 calls.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain Click help: rendering it with Rich costs ~60 ms at every start
)
options = {"debug": False}

ConfigPath = Annotated[Path, typer.Option("--config", "-c", help="Path of deploy.toml.")]
EndpointUrl = Annotated[
    str | None,
    typer.Option("--endpoint-url", help="AWS endpoint (e.g. a local moto_server); AWS_ENDPOINT_URL works too."),
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout, for scripts.")]
Stage = Annotated[
    str | None, typer.Option("--stage", "-s", help="The stage to act on (default: [api] stage in deploy.toml).")
]
Local = Annotated[
    bool | None,
    typer.Option(
        "--local/--no-local",
        help="Use the local cloud (`deployer local`), started if needed; DEPLOYER_LOCAL=1 or [target] local = true "
        "in deploy.toml do the same.",
    ),
]
LocalPort = Annotated[
    int | None, typer.Option("--port", "-p", help="The local cloud's port (default: DEPLOYER_LOCAL_PORT, else 4566).")
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DEFAULT_CONFIG = Path("deploy.toml")


@app.callback()
def main_options(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    options["debug"] = debug


def _aws_error_message(error: Exception) -> tuple[str, int] | None:
    """One line for the botocore errors a user meets, or None for anything else."""
    from botocore import exceptions

    from deployer import aws

    if isinstance(error, exceptions.ProfileNotFound):
        return f"{error}: fix AWS_PROFILE (or --profile in ~/.aws/config), or unset it", 2
    if isinstance(error, exceptions.NoCredentialsError):
        return (
            "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or run `aws configure`",
            2,
        )
    if isinstance(error, exceptions.ClientError):
        details = error.response.get("Error") or {}
        operation = getattr(error, "operation_name", "a call")
        # A proxy or firewall in the way answers with its own page: its words, never its HTML or many lines.
        code = details.get("Code") or f"HTTP {error.response.get('ResponseMetadata', {}).get('HTTPStatusCode')}"
        message = output.one_line(str(details.get("Message") or "")) or "an answer that is not AWS's (a proxy?)"
        hint = ""
        if code in aws.ACCESS_DENIED_CODES | aws.CREDENTIALS_REFUSED_CODES:
            hint = "; check that your credentials are valid and allowed to do this"
        return f"AWS refused {operation}: {code}: {message}{hint}", 1
    if isinstance(error, (exceptions.ConnectTimeoutError, exceptions.ReadTimeoutError)):
        return (
            f"no answer from {_site(getattr(error, 'kwargs', {}).get('endpoint_url', 'AWS'))} in time, after "
            f"{aws.CONNECTION_ATTEMPTS} tries; nothing more was changed: check the network, the region and "
            "--endpoint-url, then run the same command again",
            1,
        )
    if isinstance(error, exceptions.EndpointConnectionError):
        return f"cannot reach AWS: {error}; check the network, the region and --endpoint-url", 1
    if isinstance(error, exceptions.WaiterError):
        configuration = (error.last_response or {}).get("Configuration", {})
        reason = configuration.get("StateReason") or configuration.get("LastUpdateStatusReason")
        if reason:  # the waiter stopped on a Failed function: say why, in Lambda's words
            return f"the function failed to settle: {reason}; fix that and run again", 1
        return f"the function did not settle in time: {error}; look at it in the Lambda console and run again", 1
    if isinstance(error, exceptions.BotoCoreError):
        return f"AWS call failed: {error}", 1
    return None


def _site(url: str) -> str:
    """scheme://host[:port] of a request URL: where, without the request's own path."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


def _without_credentials(url: str) -> str:
    """The URL without the user:password it may carry (the history is no place for a password)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


@contextmanager
def reported_errors() -> Iterator[None]:
    """Every failure becomes one line on stderr and an exit code; a traceback only with --debug."""
    try:
        yield
    except typer.Exit:
        raise
    except typer.Abort:  # Ctrl-C or end of input at a prompt
        output.error("nothing done: no answer to the question")
        raise typer.Exit(1) from None
    except DeployerError as error:
        if options["debug"]:
            raise
        output.error(str(error))
        raise typer.Exit(error.exit_code) from None
    except Stopped as stopped:
        released = "released the state lock; " if stopped.released_lock else ""
        with suppress(OSError):  # SIGHUP: the terminal may be gone
            output.error(
                f"stopped by {stopped.name}: {released}run the same command again to finish (every step is safe "
                "to repeat)"
            )
        raise typer.Exit(128 + stopped.number) from None
    except KeyboardInterrupt:
        output.error("interrupted; run the same command again to finish (every step is safe to repeat)")
        raise typer.Exit(130) from None
    except Exception as error:
        if isinstance(error, BrokenPipeError) and _stdout_is_closed():
            raise typer.Exit(0) from None  # `deployer status | head -1`: the reader has all it wanted
        if options["debug"]:
            raise
        known = _aws_error_message(error) if "botocore" in sys.modules else None
        if known is None:
            output.error(f"unexpected {type(error).__name__}: {error} (run with --debug for the traceback)")
            raise typer.Exit(1) from None
        output.error(known[0])
        raise typer.Exit(known[1]) from None


def _stdout_is_closed() -> bool:
    """Whether standard output's reader is gone (the kernel flags a pipe with no reader as an error when polled);
    if so, it goes to /dev/null, so the exit's flush fails no more."""
    import os
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        events = poller.poll(0)
    except (OSError, ValueError, AttributeError):  # no descriptor (a test runner's buffer), or no poll here
        return False
    if not any(event & (select.POLLERR | select.POLLHUP) for _, event in events):
        return False
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return True


def _is_local(flag: bool | None, config: Config, endpoint_url: str | None = None) -> bool:
    from deployer.local import wants_local

    local = wants_local(flag, config.local)
    if local and endpoint_url:
        raise UsageError("--endpoint-url and --local both name where to deploy: pass one of them")
    return local


def _checked_config(version: str, config_path: Path, stage: str | None, *, needs_source: bool) -> Config:
    """All that can be checked before any AWS call, in order: the version, deploy.toml, the source folder."""
    check_version(version)
    config = load_config(config_path, stage)
    if needs_source:
        from deployer.build import check_source

        check_source(config)
    return config


def _say_wait(what: str, seconds: float) -> None:
    output.info(f"  [dim]waiting for {output.escape(what)} ({seconds:.0f}s so far)[/]")


def _connect(config: Config, endpoint_url: str | None, local: bool | None = None) -> Connection:
    """The account (or the local cloud, started if needed) and the state store a command works with."""
    waits = _waits()
    if _is_local(local, config, endpoint_url):
        from deployer.local.target import local_connection

        return local_connection(config, log=output.info, waits=waits)
    from deployer.aws import Aws
    from deployer.context import Connection
    from deployer.state import store_for

    aws = Aws(config.region, endpoint_url, waits=waits)
    aws.check_credentials()
    return Connection(config, aws, store_for(config, aws))


def _waits() -> Waits:
    """How a command waits: the real clock and sleep; a long wait says what it waits for, a large upload shows
    a bar (on a terminal). Given to the command's Aws, never set as a global (the tests replace this maker)."""
    from deployer.retry import Waits

    return Waits(on_wait=_say_wait, on_upload_progress=output.UploadBar())


def _artifact(built: BuiltArtifact) -> ArtifactDigests:
    from deployer.context import ArtifactDigests

    return ArtifactDigests(built.sha256, built.content_sha256)


def _can_ask() -> bool:
    """Whether a person can answer a question: standard input is a terminal."""
    return sys.stdin.isatty()


def _require_an_answer(yes: bool, what: str) -> None:
    """A command that asks first: without --yes, there must be someone to ask."""
    if not yes and not _can_ask():
        raise UsageError(f"{what}: pass --yes to confirm when there is no terminal to ask")


def _command_line(context: typer.Context) -> str:
    """The command that runs, as typed (long option names): what the lock names and the history keeps.
    Options left at their defaults are left out; an endpoint URL loses any user:password in it."""
    import shlex

    words = context.command_path.split()[1:]  # without the program's name
    for parameter in context.command.params:
        name = parameter.name or ""
        source = context.get_parameter_source(name)
        if source is None or source.name != "COMMANDLINE":
            continue
        value = context.params.get(name)
        if parameter.param_type_name == "argument":
            words.append(str(value))
            continue
        long_names = [option for option in parameter.opts if option.startswith("--")] or parameter.opts
        if getattr(parameter, "is_flag", False):
            words.append(long_names[0] if value or not parameter.secondary_opts else parameter.secondary_opts[0])
            continue
        if name == "endpoint_url" and value:
            value = _without_credentials(str(value))
        words += [long_names[0], f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(words)


class Stopped(KeyboardInterrupt):
    """SIGTERM (CI cancelled, `timeout`, `docker stop`) or SIGHUP (the terminal closed): stop as on Ctrl-C, so
    that the lock is released on the way out. A KeyboardInterrupt, so every `finally` and Ctrl-C path runs."""

    def __init__(self, number: int) -> None:
        import signal

        super().__init__(signal.Signals(number).name)
        self.number = number
        self.name = signal.Signals(number).name
        self.released_lock = False


@contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """While it is held, SIGTERM and SIGHUP raise Stopped (once: a second one is ignored while we clean up)."""
    import signal

    stopping = (signal.SIGTERM, signal.SIGHUP)

    def stop(number: int, _frame: object) -> None:
        for each in stopping:
            signal.signal(each, signal.SIG_IGN)
        raise Stopped(number)

    previous = {number: signal.signal(number, stop) for number in stopping}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextmanager
def _locked(connection: Connection, command: str) -> Iterator[State]:
    """Hold the state lock for the whole command, and read the state under it: never a stale copy. SIGTERM and
    SIGHUP stop the command as Ctrl-C does: the lock is released."""
    with _stopped_by_signals():
        try:
            with connection.store.lock(command):
                yield connection.store.load()
        except Stopped as stopped:
            stopped.released_lock = True  # the lock's own `finally` ran
            raise


def _report(outcome: Applied) -> None:
    change = outcome.change
    output.outcome_line(change.resource, change.name, change.action, outcome.seconds, change.diffs, change.note)


def _summary(connection: Connection, started: float) -> str:
    from deployer.aws import is_mutating

    calls = connection.aws.calls
    writes = sum(1 for call in calls if is_mutating(call))
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
)


def _status_fields(state: State, config: Config) -> dict[str, Any]:
    """`status --json`'s object: the contract's fields, all null when nothing is deployed."""
    deployed = state.deployed
    data: dict[str, Any] = {name: getattr(state, name) if deployed else None for name in STATUS_FIELDS}
    data["stage"] = config.stage if deployed else None
    if data["canary"]:
        data["canary"] = {"version": data["canary"]["version"], "weight": data["canary"]["weight"]}
    data["app"] = config.app_name
    data["history"] = state.history
    return data


@app.command()
def build(config_path: ConfigPath = DEFAULT_CONFIG, json_output: Json = False) -> None:
    """Zip the function folder into a reproducible archive; print its path, size and sha256."""
    from deployer.build import build as build_zip

    with reported_errors():
        config = load_config(config_path)
        artifact = build_zip(config, force=True, log=output.plain)
        if json_output:
            left_out = [{"path": item.path, "reason": item.reason} for item in artifact.left_out]
            output.result_json(
                {"path": str(artifact.path), "size": artifact.size, "sha256": artifact.sha256, "left_out": left_out}
            )
            return
        output.info(f"built {artifact.path.name}: {artifact.size:,} bytes")
        output.result(f"{artifact.path}  {artifact.size} bytes  sha256:{artifact.sha256}")


@app.command()
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
    force: Annotated[bool, typer.Option("--force", help="Replace a published version's different bytes.")] = False,
    json_output: Json = False,
    local: Local = None,
) -> None:
    """Build if needed, upload, publish the release, check it, move the stage to it; print the URL."""
    from deployer.build import build as build_zip
    from deployer.build import build_lock

    with reported_errors():
        config = _checked_config(version, config_path, stage, needs_source=True)
        connection = _connect(config, endpoint_url, local)
        command = _command_line(context)
        # The build lock too, from the build to the upload: another build cannot swap dist/'s zip in between.
        with _locked(connection, command) as state, build_lock(config, command=command, log=output.plain):
            artifact = _artifact(build_zip(config, log=output.plain))
            share = canary / 100 if canary is not None else None
            run = connection.run(state, version, artifact=artifact, force=force, canary=share, check=not no_check)
            _deploy(connection, run, "up", json_output)


@app.command()
def promote(
    context: typer.Context,
    version: Annotated[str, typer.Argument(help="A version already uploaded (by `up` on another stage).")],
    stage: Annotated[str, typer.Option("--stage", "-s", help="The stage to ship it to.")],
    config_path: ConfigPath = DEFAULT_CONFIG,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Do not invoke the release before traffic moves to it.")
    ] = False,
    endpoint_url: EndpointUrl = None,
    json_output: Json = False,
    local: Local = None,
) -> None:
    """Ship the artifact already published for VERSION to a stage, as it is: nothing is built."""
    with reported_errors():
        config = _checked_config(version, config_path, stage, needs_source=False)
        connection = _connect(config, endpoint_url, local)
        with _locked(connection, _command_line(context)) as state:
            run = connection.run(state, version, check=not no_check)
            _deploy(connection, run, "promote", json_output)


def _deploy(connection: Connection, run: Run, command: str, json_output: bool) -> None:
    """Carry out `up` or `promote` and report it: a line per resource, then the URL alone on stdout."""
    from deployer import deploy

    started = time.monotonic()
    config, target = run.config, run.target
    local_endpoint = connection.local_endpoint
    where = f"on the local cloud {local_endpoint}" if local_endpoint else f"in {connection.aws.region}"
    share = f" ({target.canary:.0%} of its traffic)" if target.canary else ""
    output.info(f"deploying [bold]{config.app_name}[/] {target.version} to stage {config.stage}{share} {where}")
    report = (lambda _: None) if json_output else _report
    outcomes = deploy.promote(run, report) if command == "promote" else deploy.up(run, report)
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


@app.command()
def plan(
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

    with reported_errors():
        config = _checked_config(version, config_path, stage, needs_source=True)
        connection = _connect(config, endpoint_url, local)
        artifact = _artifact(build_zip(config, log=output.plain))
        changes = deploy.plan(connection.target(connection.store.load(), version, artifact=artifact))
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


@app.command()
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

    with reported_errors():
        started = time.monotonic()
        config = _checked_config(version, config_path, stage, needs_source=False)
        connection = _connect(config, endpoint_url, local)
        with _locked(connection, _command_line(context)) as state:
            run = connection.run(state, version)
            deploy.rollback(run, report=_report)
        output.info(_summary(connection, started))
        output.result(run.state.base_url or "")


@app.command()
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

    with reported_errors():
        started = time.monotonic()
        config = load_config(config_path, stage)
        _require_an_answer(yes, "down deletes resources")
        connection = _connect(config, endpoint_url, local)
        with _locked(connection, _command_line(context)) as state:
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
        output.info(f"artifacts stay in s3://{config.bucket}/ for rollbacks; " + _summary(connection, started))


@app.command()
def unlock(
    config_path: ConfigPath = DEFAULT_CONFIG,
    stage: Stage = None,
    endpoint_url: EndpointUrl = None,
    yes: Yes = False,
    local: Local = None,
) -> None:
    """Remove the shared state's lock left by a run that is gone (killed): only that very lock."""
    with reported_errors():
        config = load_config(config_path, stage)
        _require_an_answer(yes, "unlock removes another run's lock")
        store = _connect(config, endpoint_url, local).store

        def confirm(holder: str) -> bool:
            return yes or typer.confirm(f"Remove the lock held by {holder}? Only if that run is gone.", err=True)

        removed = store.unlock(confirm)
        if removed is None:
            output.info(f"nothing to unlock: no deployer holds the lock of {config.app_name} on stage {config.stage}")
        else:
            output.plain(f"removed the lock held by {removed}")


@app.command()
def status(
    config_path: ConfigPath = DEFAULT_CONFIG,
    stage: Stage = None,
    json_output: Json = False,
    local: Local = None,
    endpoint_url: EndpointUrl = None,
) -> None:
    """What is deployed on a stage, from its state: the shared one (one S3 read), or the local file."""
    from deployer.state import State, store_for

    with reported_errors():
        config = load_config(config_path, stage)
        is_local = _is_local(local, config)
        if config.state_backend == "local":
            state = store_for(config, local=is_local).load()
        elif is_local:
            from deployer.local import control, resolve_port

            # The local cloud is not started for a status: not running, it holds nothing.
            running = control.status(resolve_port()) is not None
            state = _connect(config, None, True).store.load() if running else State()
        else:
            state = _connect(config, endpoint_url, False).store.load()
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
        for name in ("version", "base_url", "stage", "function_name", "alias", "lambda_version", "rest_api_id"):
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


@app.command()
def serve(
    config_path: ConfigPath = DEFAULT_CONFIG,
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 3000,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            help="Requests run at once, each in its own worker, as Lambda runs them; past it, API Gateway's 500.",
        ),
    ] = 10,
) -> None:
    """Run the function locally behind an API Gateway proxy emulation."""
    from deployer.dependencies import bundle_dependencies
    from deployer.serve import serve as serve_locally

    with reported_errors():
        if not 0 <= port <= 65535:  # 0: any free port
            raise UsageError(f"--port {port} is not a port number; use 1-65535, e.g. 3000")
        if concurrency < 1:
            raise UsageError(f"--concurrency {concurrency}: at least 1 request must be able to run; use e.g. 10")
        if not host.strip():  # an unset variable: the server would listen on every interface
            raise UsageError('--host "" names no address: pass one, e.g. 127.0.0.1 (this machine only)')
        config = load_config(config_path)
        # Serve what would be deployed: the source plus its bundled dependencies, nothing of the tool's own.
        bundled = bundle_dependencies(config, config.root / ".deployer" / "cache", log=output.plain)
        code_dirs = [] if bundled is None else [bundled if config.is_python else bundled / "node_modules"]
        serve_locally(config, host=host, port=port, code_dirs=code_dirs, concurrency=concurrency)


local_app = typer.Typer(
    help="The local cloud: an embedded AWS emulator on 127.0.0.1 whose URLs serve what you deploy (`--local`).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(local_app, name="local")
LOCAL_NOT_RUNNING_EXIT_CODE = 3  # `deployer local status`: 0 running, 3 not running


@local_app.command("start")
def local_start(port: LocalPort = None) -> None:
    """Start the local cloud in the background (if it is not running); print its endpoint."""
    from deployer.local import control, resolve_port

    with reported_errors():
        emulator, started = control.start(resolve_port(port), log=output.info)
        verb = "started" if started else "already running"
        output.info(f"local cloud {verb}: pid {emulator.pid}, log {emulator.log}")
        output.result(emulator.url)


@local_app.command("stop")
def local_stop(port: LocalPort = None) -> None:
    """Stop the local cloud; everything deployed to it is gone."""
    from deployer.local import control, endpoint, resolve_port

    with reported_errors():
        chosen = resolve_port(port)
        stopped = control.stop(chosen, log=output.info)
        if stopped is None:
            output.info(f"the local cloud is not running on {endpoint(chosen)}")
        else:
            output.info(f"stopped the local cloud on {stopped.url} (pid {stopped.pid})")


@local_app.command("status")
def local_status(port: LocalPort = None, json_output: Json = False) -> None:
    """Whether the local cloud runs. Exit 0: running; 3: not running; 1: another program holds the port."""
    from deployer.local import control, resolve_port

    with reported_errors():
        data = control.describe(resolve_port(port), strict=True)
        if json_output:
            output.result_json(data)
        elif data["running"]:
            for label, key in (("running", "url"), ("pid", "pid"), ("started at", "started_at"), ("log", "log")):
                output.result(f"{label:<14} {data[key]}")
        else:
            output.result(f"not running    {data['url']}")
        if not data["running"]:
            raise typer.Exit(LOCAL_NOT_RUNNING_EXIT_CODE)


def main() -> None:
    app()


from deployer import cli_operate  # noqa: E402, F401 -- registers invoke and logs
