"""`deployer secrets list|set NAME`: the stage's secret references and their versions, and writing one.

A value is read from standard input (or a prompt that does not echo) and written to AWS; it is never printed.
Registered on deployer.cli's app as the `secrets` command group.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deployer import output
from deployer.cli import common
from deployer.cli.common import DEFAULT_CONFIG, ConfigPath, EndpointUrl, Local, Stage
from deployer.errors import DeployerError, UsageError

if TYPE_CHECKING:
    from deployer import secrets
    from deployer.aws import Aws
    from deployer.config import Config

VALUE_LIMIT = 65536  # Secrets Manager's limit on a secret's string; SSM's is smaller and says so itself

secrets_app = typer.Typer(
    help="The stage's secrets: references in deploy.toml, values in SSM or Secrets Manager (never shown).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@secrets_app.command("list")
def list_secrets(
    context: typer.Context,
    stage: Stage = None,
    config_path: ConfigPath = DEFAULT_CONFIG,
    endpoint_url: EndpointUrl = None,
    local: Local = None,
) -> None:
    """Each secret of the stage: its reference, newest version, last change and the version the live release
    runs with. Never a value."""
    with common.reported_errors(context):
        config = common.load_config(config_path, stage)
        if not config.secrets:
            output.info(f"stage {config.stage} has no [function.secrets]")
            return
        connection = common.connect(config, endpoint_url, local)
        state = connection.store.load()
        live = (state.releases.get(state.version or "") or {}).get("secrets") or {}
        for name, text in sorted(config.secrets.items()):
            newest, changed = _describe(connection.aws, text)
            running = (live.get(name) or {}).get("version", "-") if (live.get(name) or {}).get("ref") == text else "-"
            line = f"{name}  {text}  version {newest}  live {running}  changed {changed}"
            output.result(output.escape(line))


def _describe(aws: Aws, text: str) -> tuple[str, str]:
    """The reference's newest version and when it last changed, from metadata only (no value is read)."""
    from botocore.exceptions import ClientError

    from deployer import secrets
    from deployer.aws import error_code, is_access_denied, is_not_found

    reference = secrets.parse(text)
    try:
        if reference.kind == secrets.SSM:
            name = reference.name.split(":parameter", 1)[-1] if reference.name.startswith("arn:") else reference.name
            found = aws.client("ssm").describe_parameters(
                ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}]
            )["Parameters"]
            if not found:
                return "missing", "-"
            return str(found[0]["Version"]), found[0]["LastModifiedDate"].isoformat(timespec="seconds")
        described = aws.client("secretsmanager").describe_secret(SecretId=reference.name)
    except ClientError as error:
        code = error_code(error)
        if is_not_found(error):
            return "missing", "-"
        if is_access_denied(error):
            return f"unreadable ({code})", "-"
        raise
    current = [key for key, stages in (described.get("VersionIdsToStages") or {}).items() if "AWSCURRENT" in stages]
    changed = described.get("LastChangedDate")
    return (current[0] if current else "missing"), changed.isoformat(timespec="seconds") if changed else "-"


@secrets_app.command("set")
def set_secret(
    context: typer.Context,
    name: Annotated[str, typer.Argument(help="A variable of [function.secrets].")],
    stage: Stage = None,
    config_path: ConfigPath = DEFAULT_CONFIG,
    endpoint_url: EndpointUrl = None,
    local: Local = None,
) -> None:
    """Write NAME's referenced SSM SecureString or Secrets Manager secret (created, tagged, if missing); the value
    comes from standard input, or a prompt that does not echo it."""
    with common.reported_errors(context):
        config = common.load_config(config_path, stage)
        if name not in config.secrets:
            known = ", ".join(sorted(config.secrets)) or "none"
            raise UsageError(
                f"{name[:64]!r} is not in [function.secrets] for stage {config.stage} (it has: {known}); add "
                f'{name[:64]} = "ssm:/..." there first'
            )
        text = config.secrets[name]
        value = _read_value(name)
        connection = common.connect(config, endpoint_url, local)
        version = _write(connection.aws, config, text, value)
        output.info(f"{name}: {output.escape(text)} is now version {output.escape(version)}; `deployer up` releases it")


def _read_value(name: str) -> str:
    """From a prompt without echo on a terminal, else standard input (bounded); one trailing newline dropped."""
    if sys.stdin.isatty():
        value = typer.prompt(f"value of {name}", hide_input=True, err=True)
    else:
        data = sys.stdin.buffer.read(VALUE_LIMIT + 1)
        if len(data) > VALUE_LIMIT:
            raise UsageError(f"the value of {name} is over {VALUE_LIMIT} bytes; secrets take less")
        try:
            value = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"the value of {name} is not UTF-8 text; Lambda's environment takes text") from None
        value = value.removesuffix("\n").removesuffix("\r")
    if not value:
        raise UsageError(f"no value for {name}: pipe it on standard input (e.g. `deployer secrets set {name} < file`)")
    return value


def _write(aws: Aws, config: Config, text: str, value: str) -> str:
    """Write the value where `text` points; the new version. A missing one is created, tagged as the app's."""
    from botocore.exceptions import ClientError

    from deployer import secrets
    from deployer.aws import error_code, is_access_denied

    reference = secrets.parse(text)
    tags = [{"Key": "deployer:app", "Value": config.app_name}]
    try:
        if reference.kind == secrets.SSM:
            parameters = aws.client("ssm")
            try:
                answer = parameters.put_parameter(Name=reference.name, Value=value, Type="SecureString", Tags=tags)
            except parameters.exceptions.ParameterAlreadyExists:
                answer = parameters.put_parameter(Name=reference.name, Value=value, Type="SecureString", Overwrite=True)
            return str(answer["Version"])
        return _write_secret(aws, reference, value, tags)
    except ClientError as error:
        code = error_code(error)
        if is_access_denied(error):
            permission = "ssm:PutParameter" if reference.kind == secrets.SSM else "secretsmanager:PutSecretValue"
            raise DeployerError(f"writing {text} was refused ({code}): the caller needs {permission} on it") from None
        if code == "ValidationException" or code.startswith("ParameterMaxVersion") or code.endswith("TooLong"):
            raise UsageError(f"AWS refused the value for {text} ({code}): too long or not accepted there") from None
        raise


def _write_secret(aws: Aws, reference: secrets.Reference, value: str, tags: list[dict[str, str]]) -> str:
    manager = aws.client("secretsmanager")
    document: Any = value
    try:
        if reference.field is not None:  # one field of the secret's JSON: the others stay
            current = manager.get_secret_value(SecretId=reference.name).get("SecretString") or "{}"
            try:
                fields = json.loads(current)
            except ValueError:
                fields = None
            if not isinstance(fields, dict):
                raise DeployerError(f"{reference.text} is not a JSON object: its field cannot be set") from None
            document = json.dumps({**fields, reference.field: value})
        return str(manager.put_secret_value(SecretId=reference.name, SecretString=document)["VersionId"])
    except manager.exceptions.ResourceNotFoundException:
        if reference.name.startswith("arn:"):
            raise DeployerError(f"{reference.text} does not exist; create it first, or reference it by name") from None
        if reference.field is not None:
            document = json.dumps({reference.field: value})
        return str(manager.create_secret(Name=reference.name, SecretString=document, Tags=tags)["VersionId"])
