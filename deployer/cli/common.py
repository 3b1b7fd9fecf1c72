"""What every command shares: the options, the connection to AWS (or the local cloud), the state lock, and
how a failure is reported (one line on stderr, an exit code; a traceback only with --debug).

Nothing here imports boto3 at load time: `deployer --help` and `deployer build` start fast.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from deployer import output
from deployer.errors import DeployerError, UsageError

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.context import Connection
    from deployer.retry import Waits
    from deployer.state import State


@dataclass(frozen=True)
class Options:
    """The options given before the command (`deployer --debug up ...`), kept on Typer's context as its `obj`."""

    debug: bool = False


def debugging(context: typer.Context | None) -> bool:
    """Whether --debug was given to the command of `context` (no context: a library call, no)."""
    options = context.find_object(Options) if context is not None else None
    return options is not None and options.debug


ConfigPath = Annotated[Path, typer.Option("--config", "-c", help="Path of deploy.toml.")]


EndpointUrl = Annotated[
    str | None,
    typer.Option("--endpoint-url", help="AWS endpoint (e.g. a local moto_server); AWS_ENDPOINT_URL works too."),
]


Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout, for scripts.")]

ACCOUNT_ID = re.compile(r"[0-9]{12}")  # ASCII digits only (\d would take any script's)


def checked_account(account: str) -> str:
    """An --account given on the command line, as AWS writes account IDs, else one usage line."""
    if not ACCOUNT_ID.fullmatch(account):
        raise UsageError(f"--account {output.untrusted(account, 40)!r} is not a 12-digit AWS account ID")
    return account


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


Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


DEFAULT_CONFIG = Path("deploy.toml")


def aws_error_message(error: Exception) -> tuple[str, int] | None:
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
        needs = aws.what_was_denied(error)
        if needs is not None:  # one line naming the permission: the action, and the resource AWS named
            return (
                f"AWS refused {operation} ({code}): needs {output.one_line(needs)}; grant it to these credentials "
                "(`deployer policy` prints every permission a deploy of this stage needs)",
                1,
            )
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
def reported_errors(context: typer.Context | None = None) -> Iterator[None]:
    """Every failure becomes one line on stderr and an exit code; a traceback only with --debug (given to the
    command of `context`)."""
    try:
        yield
    except typer.Exit:
        raise
    except typer.Abort:  # Ctrl-C or end of input at a prompt
        output.error("nothing done: no answer to the question")
        raise typer.Exit(1) from None
    except DeployerError as error:
        if debugging(context):
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
        if debugging(context):
            raise
        known = aws_error_message(error) if "botocore" in sys.modules else None
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


def is_local(flag: bool | None, config: Config, endpoint_url: str | None = None) -> bool:
    from deployer.local import wants_local

    local = wants_local(flag, config.local)
    if local and endpoint_url:
        raise UsageError("--endpoint-url and --local both name where to deploy: pass one of them")
    return local


def load_config(config_path: Path, stage: str | None = None) -> Config:
    """deploy.toml for the stage. (deployer.config is imported when a command runs: `--help` never needs it.)"""
    from deployer import config

    return config.load_config(config_path, stage)


def checked_config(version: str, config_path: Path, stage: str | None, *, needs_source: bool) -> Config:
    """All that can be checked before any AWS call, in order: the version, deploy.toml, the source folder."""
    from deployer.config import check_version

    check_version(version)
    config = load_config(config_path, stage)
    if needs_source:
        from deployer.build import check_source

        check_source(config)
    return config


def warn_of_secret_looking_variables(config: Config) -> None:
    """`up` and `plan` nudge, once, towards [function.secrets] when a literal variable's name looks like a secret."""
    from deployer.secrets import secret_looking

    names = secret_looking(config.environment)
    if names:
        text = (
            f"{', '.join(names)} in [function] environment look{'s' if len(names) == 1 else ''} like a secret, in "
            "deploy.toml in plain text: reference it from SSM or Secrets Manager in [function.secrets] "
            "(README, Secrets)"
        )
        output.info(f"[yellow]warning:[/] {output.escape(text)}")


def _say_wait(what: str, seconds: float) -> None:
    output.info(f"  [dim]waiting for {output.escape(what)} ({seconds:.0f}s so far)[/]")


def connect(config: Config, endpoint_url: str | None, local: bool | None = None) -> Connection:
    """The account (or the local cloud, started if needed) and the state store a command works with."""
    waits = make_waits()
    if is_local(local, config, endpoint_url):
        from deployer.local.target import local_connection

        return local_connection(config, log=output.info, waits=waits)
    from deployer.aws import Aws
    from deployer.context import Connection
    from deployer.credentials import assume_now, stage_session
    from deployer.stores import store_for

    # Every client of the stage (the ACM of us-east-1 too) comes from the session of the stage's account.
    aws = Aws(config.region, endpoint_url, session=stage_session(config, endpoint_url, waits), waits=waits)
    aws.check_credentials()
    assume_now(aws.session, config)
    return Connection(config, aws, store_for(config, aws))


def make_waits() -> Waits:
    """How a command waits: the real clock and sleep; a long wait says what it waits for, a large upload shows
    a bar (on a terminal). Given to the command's Aws, never set as a global (the tests replace this maker)."""
    from deployer.retry import Waits

    return Waits(on_wait=_say_wait, on_upload_progress=output.UploadBar())


def can_ask() -> bool:
    """Whether a person can answer a question: standard input is a terminal."""
    return sys.stdin.isatty()


def require_an_answer(yes: bool, what: str) -> None:
    """A command that asks first: without --yes, there must be someone to ask."""
    if not yes and not can_ask():
        raise UsageError(f"{what}: pass --yes to confirm when there is no terminal to ask")


def command_line(context: typer.Context) -> str:
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
def locked(connection: Connection, command: str, on_lock: Callable[[], object] = lambda: None) -> Iterator[State]:
    """Hold the state lock for the whole command, and read the state under it: never a stale copy. `on_lock` runs
    once the lock is held, before the state is read (reads sent ahead go out then). SIGTERM and SIGHUP stop the
    command as Ctrl-C does: the lock is released."""
    with _stopped_by_signals():
        try:
            with connection.store.lock(command):
                on_lock()
                yield connection.store.load()
        except Stopped as stopped:
            stopped.released_lock = True  # the lock's own `finally` ran
            raise
