"""`deployer invoke` and `deployer logs`: operate what is deployed on a stage (the logic is deployer/operate.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from deployer import output
from deployer.cli import common
from deployer.cli.common import DEFAULT_CONFIG, ConfigPath, EndpointUrl, Local, Stage
from deployer.errors import UsageError


def _print_line(line: str) -> None:
    try:
        output.result(line)
    except BrokenPipeError:  # `deployer logs | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that the exit's flush fails no more
        raise typer.Exit(0) from None


def invoke(
    context: typer.Context,
    stage: Stage = None,
    path: Annotated[
        str | None, typer.Option("--path", help="The request's path, with its query string if any (default /).")
    ] = None,
    method: Annotated[str | None, typer.Option("--method", "-X", help="The request's method (default GET).")] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="A request header, 'Name: value'; repeat it for more.")
    ] = None,
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="The request's body; @FILE sends that file's bytes.")
    ] = None,
    event: Annotated[
        Path | None,
        typer.Option("--event", help="Send this JSON file as the event, as it is, instead of an HTTP request's event."),
    ] = None,
    config_path: ConfigPath = DEFAULT_CONFIG,
    local: Local = None,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Call the stage's function as its API would: the body on stdout, the status and headers on stderr."""
    from deployer import operate

    with common.reported_errors(context):
        config = common.load_config(config_path, stage)
        common.is_local(local, config, endpoint_url)  # refuses --local with --endpoint-url before anything else
        if event is not None:
            given = [name for name, value in (("--data", data), ("--path", path), ("--method", method)) if value]
            given += ["-H"] if header else []
            if given:
                raise UsageError(f"--event sends the event as it is: leave out {', '.join(given)}")
            payload = operate.read_event(event)
            connection = common.connect(config, endpoint_url, local)
            raise typer.Exit(operate.invoke_raw(connection, payload))
        request = operate.http_request(method or "GET", path or "/", header or [], data)
        connection = common.connect(config, endpoint_url, local)
        raise typer.Exit(operate.invoke(connection, request))


def logs(
    context: typer.Context,
    stage: Stage = None,
    since: Annotated[
        str, typer.Option("--since", help="From when: 30s, 10m, 2h, 1d back, or an ISO time (UTC by default).")
    ] = "10m",
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C.")] = False,
    filter_pattern: Annotated[
        str | None, typer.Option("--filter", help="Only events matching this CloudWatch Logs filter pattern.")
    ] = None,
    config_path: ConfigPath = DEFAULT_CONFIG,
    local: Local = None,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Print the stage's function's log events: time (UTC), request id, message; --follow for new ones."""
    from deployer import operate

    with common.reported_errors(context):
        config = common.load_config(config_path, stage)
        operate.parse_since(since)  # a bad --since is refused before any AWS call
        connection = common.connect(config, endpoint_url, local)
        if follow:
            operate.follow_logs(connection, since, filter_pattern, _print_line)
        else:
            operate.show_logs(connection, since, filter_pattern, _print_line)
