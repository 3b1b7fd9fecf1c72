"""The command line: parse, delegate, report. No AWS logic lives here.

The commands live by group: deploy.py (build, up, promote, plan, rollback, down, unlock, status), operate.py
(invoke, logs), local.py (serve, and the local cloud's `local start|stop|status`), policy.py (policy), secrets.py,
ci.py (`ci github|bootstrap|remove`); common.py holds what they share (the options, the connection, the state lock,
how errors are reported). They are registered here, in the order `--help` lists them.

boto3 is imported only inside the commands that talk to AWS, so `deployer --help` and `deployer build`
start fast.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Annotated

import typer

from deployer.cli import ci, deploy, local, operate, policy, secrets
from deployer.cli.common import Options

app = typer.Typer(
    name="deployer",
    help="Ship a web application to AWS Lambda behind API Gateway, with plain boto3 calls.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain Click help: rendering it with Rich costs ~60 ms at every start
)


@app.callback()
def main_options(
    context: typer.Context, debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False
) -> None:
    context.obj = Options(debug=debug)  # read by common.reported_errors, through the context


# The commands, in the order `--help` lists them (command groups come after them).
COMMANDS: tuple[Callable[..., None], ...] = (
    deploy.build,
    deploy.up,
    deploy.promote,
    deploy.plan,
    deploy.rollback,
    deploy.down,
    deploy.unlock,
    deploy.status,
    local.serve,
    operate.invoke,
    operate.logs,
    policy.policy,
)
for command in COMMANDS:
    app.command()(command)
app.add_typer(local.local_app, name="local")
app.add_typer(secrets.secrets_app, name="secrets")
app.add_typer(ci.ci_app, name="ci")


def main() -> None:
    try:
        app()
    finally:
        # The process ends here and the OS takes back its memory: frozen, its objects are skipped by the collections
        # Python runs as it shuts down (a walk over some 50,000 objects, 0.1-0.2 s after an `up` whose clients hold
        # their service models). atexit handlers, the flushing of output and the modules' teardown still run.
        gc.freeze()
