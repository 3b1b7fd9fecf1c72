"""`deployer ci github|bootstrap|remove`: deploying from CI with no stored keys.

Parse, delegate (deployer.ci), report. boto3 is imported inside the commands that call AWS only.
Registered on deployer.cli's app as the `ci` command group.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deployer import ci, output
from deployer.cli import common
from deployer.cli.common import DEFAULT_CONFIG, ConfigPath, EndpointUrl, Local, Stage
from deployer.errors import UsageError

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.plan import Change

ci_app = typer.Typer(
    help="Deploy from CI with no stored keys: a GitHub Actions workflow, and the account's side of it.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@ci_app.command("github")
def github(
    context: typer.Context,
    stage: Stage = None,
    account: Annotated[
        str | None,
        typer.Option(
            "--account", help="The stage's AWS account ID (default: asked of AWS with the stage's credentials)."
        ),
    ] = None,
    install: Annotated[
        str | None,
        typer.Option(
            "--install", help="What the workflow gives `pip install` (default: `.`, this project's checkout)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a workflow file deployer did not write.")] = False,
    config_path: ConfigPath = DEFAULT_CONFIG,
    endpoint_url: EndpointUrl = None,
    local: Local = None,
) -> None:
    """Write .github/workflows/deployer.yml: pull requests run `plan`, pushes to main run `up`, through the roles
    `ci bootstrap` makes (GitHub's OIDC, no stored keys)."""
    from deployer.ci import github as workflows

    with common.reported_errors(context):
        config = common.load_config(config_path, stage)
        root = workflows.repository_root(config)
        relative_config = workflows.config_path_in(config, root)
        if install is None:
            install = workflows.default_install(root)
            if install is None:
                raise UsageError(
                    f"{root} is not deployer's own checkout: say how the workflow installs deployer with --install "
                    "(what `pip install` takes)"
                )
        install = workflows.check_install(install)
        deploy_role, plan_role = ci.deploy_role_name(config), ci.plan_role_name(config)
        if account is not None:
            common.checked_account(account)
            region = _region(config)
        else:
            connection = common.connect(config, endpoint_url, local)
            account, region = connection.aws.account_id(), connection.aws.region
        workflow = workflows.Workflow(
            stage=config.stage,
            region=region,
            deploy_role_arn=ci.role_arn(region, account, deploy_role),
            plan_role_arn=ci.role_arn(region, account, plan_role),
            config_path=relative_config,
            install=install,
            runtime=config.runtime,
        )
        path = root / workflows.WORKFLOW_PATH
        action = workflows.write(path, workflows.render(workflow), force)
        output.info(
            f"{action} {output.escape(str(path))}: pull requests plan stage {config.stage} as {plan_role}, pushes to "
            f"{ci.MAIN_BRANCH} deploy it as {deploy_role}; make those with "
            f"`deployer ci bootstrap --stage {config.stage} --repo OWNER/NAME`"
        )
        output.result(str(path))


def _region(config: Config) -> str:
    from deployer.aws import REGION_PATTERN

    region = config.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region or not REGION_PATTERN.fullmatch(region):
        raise UsageError("no AWS region for the workflow: set [app] region in deploy.toml")
    return region


Repository = Annotated[
    str, typer.Option("--repo", help="The GitHub repository whose workflow may deploy, as OWNER/NAME.")
]
Apply = Annotated[bool, typer.Option("--yes", "-y", help="Apply the changes listed (without it, only list them).")]


@ci_app.command("bootstrap")
def bootstrap(
    context: typer.Context,
    repo: Repository,
    stage: Stage = None,
    yes: Apply = False,
    config_path: ConfigPath = DEFAULT_CONFIG,
    endpoint_url: EndpointUrl = None,
    local: Local = None,
) -> None:
    """In the stage's account: GitHub's OIDC provider (if missing), a deploy role trusting only the repository's
    main branch and a read-only plan role trusting only its pull requests. Lists the changes; --yes applies them."""
    from deployer.ci import bootstrap as account_side

    with common.reported_errors(context):
        repository = ci.check_repository(repo)
        config = common.load_config(config_path, stage)
        connection = common.connect(config, endpoint_url, local)
        aws, account = connection.aws, connection.aws.account_id()
        setup = account_side.wanted(config, account, aws.region, repository)
        changes = account_side.plan(aws, config, setup)
        if _list_then_confirm(changes, yes, "bootstrap"):
            _carry_out(changes, lambda change: account_side.apply(aws, change))
        elif any(change.changes_something for change in changes):
            return
        for role in setup.roles:  # they exist: the ARNs for a workflow of one's own
            output.result(f"{role.purpose} {ci.role_arn(aws.region, account, role.name)}")


@ci_app.command("remove")
def remove(
    context: typer.Context,
    stage: Stage = None,
    yes: Apply = False,
    config_path: ConfigPath = DEFAULT_CONFIG,
    endpoint_url: EndpointUrl = None,
    local: Local = None,
) -> None:
    """Undo `ci bootstrap` for the stage: its roles (those carrying deployer's tags), and GitHub's OIDC provider if
    deployer made it and no role left in the account trusts it. Lists the changes; --yes applies them."""
    from deployer.ci import bootstrap as account_side

    with common.reported_errors(context):
        config = common.load_config(config_path, stage)
        connection = common.connect(config, endpoint_url, local)
        aws = connection.aws
        changes = account_side.plan_removal(aws, config, connection.aws.account_id(), aws.region)
        if _list_then_confirm(changes, yes, "remove"):
            _carry_out(changes, lambda change: account_side.remove(aws, change))


def _carry_out(changes: list[Change[Any]], do: Callable[[Change[Any]], None]) -> None:
    """do(change) for each change that changes something, a line for each as it is done."""
    for change in changes:
        if change.changes_something:
            started = time.monotonic()
            do(change)
            output.outcome_line(change.resource, change.name, change.action, time.monotonic() - started, ())


def _list_then_confirm(changes: list[Change[Any]], yes: bool, command: str) -> bool:
    """Print the planned changes; whether to apply them (there are some, and --yes was given)."""
    for change in changes:
        note = getattr(change.observed, "note", "") if change.action == "keep" else ""
        output.plan_line(change.resource, change.name, change.action, change.diffs, note)
    pending = sum(1 for change in changes if change.changes_something)
    if not pending:
        output.info("nothing to change")
        return False
    if not yes:
        output.info(f"{pending} to change; nothing changed: run `deployer ci {command}` again with --yes to apply")
        return False
    return True
