"""`deployer policy`: the least-privilege IAM policy for deploying a stage (the table is deployer/permissions.py)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from deployer import output
from deployer.cli import common
from deployer.cli.common import DEFAULT_CONFIG, ConfigPath, EndpointUrl, Json, Stage

Account = Annotated[
    str | None,
    typer.Option(
        "--account",
        help="The 12-digit account ID to write into the policy; without it, one STS GetCallerIdentity call asks AWS.",
    ),
]


def policy(
    context: typer.Context,
    config_path: ConfigPath = DEFAULT_CONFIG,
    stage: Stage = None,
    account: Account = None,
    endpoint_url: EndpointUrl = None,
    json_output: Json = False,
) -> None:
    """Print the least-privilege IAM policy for plan, up, rollback, promote, logs and down on a stage.

    The policy document goes to stdout (`deployer policy > policy.json`); without --json, a summary of what each
    statement is for goes to stderr first."""
    from deployer.permissions import policy_document

    with common.reported_errors(context):
        if account is not None:
            common.checked_account(account)
        config = common.load_config(config_path, stage)
        region, account_id = _where(config.region, account, endpoint_url)
        document = policy_document(config, account_id, region)
        if not json_output:
            _summarise(document, config.stage, account_id, region)
        output.result(json.dumps(document, indent=2))


def _where(configured_region: str | None, account: str | None, endpoint_url: str | None) -> tuple[str, str]:
    """The region and the account the policy is for: --account works offline (the region from deploy.toml or the
    environment); else one STS GetCallerIdentity asks whose credentials these are."""
    from deployer.aws import Aws

    aws = Aws(configured_region, endpoint_url)  # checks the region, with no call
    if account is not None:
        return aws.region, account
    aws.check_credentials()
    return aws.region, aws.account_id()


def _summarise(document: dict[str, Any], stage: str, account_id: str, region: str) -> None:
    output.info(f"Least-privilege policy for stage {output.escape(stage)} in {account_id} ({region}):")
    for statement in document["Statement"]:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        condition = "".join(
            f" if {key} = {value}"
            for values in statement.get("Condition", {}).values()
            for key, value in values.items()
        )
        output.info(f"  {output.escape(', '.join(statement['Action']))}")
        output.info(f"    on {output.escape(', '.join(resources) + condition)}")
