"""The commands that run things on this machine: `deployer serve` (one function behind a local API Gateway) and
`deployer local start|stop|status` (the local cloud). Parse, delegate (deployer.serve, deployer.local), report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer

from deployer import output
from deployer.cli import common
from deployer.cli.common import DEFAULT_CONFIG, ConfigPath, Json
from deployer.errors import UsageError

LocalPort = Annotated[
    int | None, typer.Option("--port", "-p", help="The local cloud's port (default: DEPLOYER_LOCAL_PORT, else 4566).")
]


def serve(
    context: typer.Context,
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
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file", help="NAME=value lines: the values of [function.secrets] (default: .env beside deploy.toml)."
        ),
    ] = None,
    front_door: Annotated[
        str | None,
        typer.Option(
            "--type",
            help="The front door to play: rest (payload 1.0), http or url (payload 2.0). Default: [api] type.",
        ),
    ] = None,
) -> None:
    """Run the function locally behind an API Gateway proxy emulation (or an HTTP API, or a function URL)."""
    from deployer.dependencies import bundle_dependencies
    from deployer.gateway.http_api import FRONT_DOORS, FrontDoor
    from deployer.serve import serve as serve_locally

    with common.reported_errors(context):
        if not 0 <= port <= 65535:  # 0: any free port
            raise UsageError(f"--port {port} is not a port number; use 1-65535, e.g. 3000")
        if concurrency < 1:
            raise UsageError(f"--concurrency {concurrency}: at least 1 request must be able to run; use e.g. 10")
        if not host.strip():  # an unset variable: the server would listen on every interface
            raise UsageError('--host "" names no address: pass one, e.g. 127.0.0.1 (this machine only)')
        if front_door is not None and front_door not in FRONT_DOORS:
            raise UsageError(f"--type {front_door!r} is not a front door; use one of {', '.join(FRONT_DOORS)}")
        config = common.load_config(config_path)
        door = cast(FrontDoor, front_door or config.api_type)  # --type, else the stage's [api] type
        # Serve what would be deployed: the source plus its bundled dependencies, nothing of the tool's own.
        bundled = bundle_dependencies(config, config.root / ".deployer" / "cache", log=output.plain)
        code_dirs = [] if bundled is None else [bundled if config.is_python else bundled / "node_modules"]
        serve_locally(
            config,
            host=host,
            port=port,
            code_dirs=code_dirs,
            concurrency=concurrency,
            env_file=env_file,
            front_door=door,
        )


local_app = typer.Typer(
    help="The local cloud: an embedded AWS emulator on 127.0.0.1 whose URLs serve what you deploy (`--local`).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


LOCAL_NOT_RUNNING_EXIT_CODE = 3  # `deployer local status`: 0 running, 3 not running


@local_app.command("start")
def local_start(context: typer.Context, port: LocalPort = None) -> None:
    """Start the local cloud in the background (if it is not running); print its endpoint."""
    from deployer.local import control, resolve_port

    with common.reported_errors(context):
        emulator, started = control.start(resolve_port(port), log=output.info)
        verb = "started" if started else "already running"
        output.info(f"local cloud {verb}: pid {emulator.pid}, log {emulator.log}")
        output.result(emulator.url)


@local_app.command("stop")
def local_stop(context: typer.Context, port: LocalPort = None) -> None:
    """Stop the local cloud; everything deployed to it is gone."""
    from deployer.local import control, endpoint, resolve_port

    with common.reported_errors(context):
        chosen = resolve_port(port)
        stopped = control.stop(chosen, log=output.info)
        if stopped is None:
            output.info(f"the local cloud is not running on {endpoint(chosen)}")
        else:
            output.info(f"stopped the local cloud on {stopped.url} (pid {stopped.pid})")


@local_app.command("status")
def local_status(context: typer.Context, port: LocalPort = None, json_output: Json = False) -> None:
    """Whether the local cloud runs. Exit 0: running; 3: not running; 1: another program holds the port."""
    from deployer.local import control, resolve_port

    with common.reported_errors(context):
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
