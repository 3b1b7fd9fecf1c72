"""Secrets by reference: `[function.secrets]` names an SSM parameter or a Secrets Manager secret per variable.

A reference is read at deploy time, before any write, with its version (the parameter's Version, the secret's
VersionId). The value goes into the release's environment and nowhere else: the state records the reference and
its version, so a rollback reads exactly the version its release was checked with. A value is never printed,
logged, stored or put in an error: `Secret` hides it from repr.

Reference forms: `ssm:/path`, `secretsmanager:name`, `secretsmanager:name#field` (a field of its JSON), or the
full ARN of a parameter or a secret (a secret's ARN may end in `#field` too).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from deployer.errors import DeployerError, UsageError

if TYPE_CHECKING:
    from deployer.aws import Aws
    from deployer.context import Target

SSM, SECRETS_MANAGER = "ssm", "secretsmanager"
SSM_NAME = re.compile(r"[A-Za-z0-9_.\-/]{1,1011}")
SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@\-]{1,512}")
JSON_FIELD = re.compile(r"[A-Za-z0-9_.\-]{1,256}")
SSM_ARN = re.compile(r"arn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:parameter(/[A-Za-z0-9_.\-/]{1,1011})")
SECRET_ARN = re.compile(r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@\-]{1,512}")
# What each kind of read needs, named in the error when the read is refused.
PERMISSIONS = {SSM: "ssm:GetParameter", SECRETS_MANAGER: "secretsmanager:GetSecretValue"}
# Names that look like secrets: a literal value under one of them is nudged towards [function.secrets].
SECRET_LOOKING = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|KEY", re.IGNORECASE)


@dataclass(frozen=True)
class Reference:
    kind: str  # SSM or SECRETS_MANAGER
    name: str  # the parameter's name (or ARN), the secret's name or ARN: what the read takes
    field: str | None  # a JSON field of the secret's string
    text: str  # as deploy.toml writes it

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> Reference:
    """The reference `text` names; UsageError (one line) when it is not one."""
    problem = reference_problem(text)
    if problem:
        raise UsageError(problem)
    if text.startswith("arn:"):
        kind = SSM if ":ssm:" in text else SECRETS_MANAGER
        body = text
    else:
        kind, body = text.split(":", 1)
    name, _, json_field = body.partition("#") if kind == SECRETS_MANAGER else (body, "", "")
    return Reference(kind, name, json_field or None, text)


def reference_problem(text: str) -> str | None:
    """Why `text` is not a reference deployer reads (None: it is one)."""
    hint = '; use "ssm:/path", "secretsmanager:name", "secretsmanager:name#field" or an ARN'
    if text.startswith("arn:"):
        base, _, json_field = text.partition("#")
        if SSM_ARN.fullmatch(text) or (SECRET_ARN.fullmatch(base) and (not _ or JSON_FIELD.fullmatch(json_field))):
            return None
        return f"{_shown(text)} is not the ARN of an SSM parameter or a Secrets Manager secret{hint}"
    kind, colon, body = text.partition(":")
    if colon and kind == SSM and SSM_NAME.fullmatch(body) and "//" not in body:
        return None
    if colon and kind == SECRETS_MANAGER:
        name, hash_sign, json_field = body.partition("#")
        if SECRET_NAME.fullmatch(name) and (not hash_sign or JSON_FIELD.fullmatch(json_field)):
            return None
    return f"{_shown(text)} is not a secret reference{hint}"


def _shown(text: str) -> str:
    """A reference quoted in an error: bounded, control characters escaped (it may be anything)."""
    return repr(text[:120] + ("..." if len(text) > 120 else ""))


@dataclass(frozen=True)
class Secret:
    """A reference read at one version. `value` is left out of repr: it is never shown."""

    name: str  # the environment variable
    reference: str  # as deploy.toml writes it
    version: str  # the parameter's Version, the secret's VersionId
    value: str = field(repr=False)

    def pin(self) -> dict[str, str]:
        """What the state records of it: the reference and its version, never the value."""
        return {"ref": self.reference, "version": self.version}


def read(aws: Aws, name: str, text: str, version: str | None = None) -> Secret:
    """Read one reference (at `version`, else its newest); one line naming it and the permission when refused."""
    from botocore.exceptions import ClientError

    from deployer.aws import error_code, is_access_denied, is_not_found, what_was_denied

    reference = parse(text)
    try:
        if reference.kind == SSM:
            wanted = f"{reference.name}:{version}" if version else reference.name
            parameter = aws.client("ssm").get_parameter(Name=wanted, WithDecryption=True)["Parameter"]
            return Secret(name, text, str(parameter["Version"]), parameter["Value"])
        options = {"VersionId": version} if version else {}
        answer = aws.client("secretsmanager").get_secret_value(SecretId=reference.name, **options)
    except ClientError as error:
        code = error_code(error)
        where = f"{text}" + (f" (version {version})" if version else "")
        if is_not_found(error):
            raise DeployerError(
                f"secret {name}: {where} does not exist; create it (`deployer secrets set {name}`) or fix "
                "[function.secrets]; nothing was changed"
            ) from None
        if is_access_denied(error):
            needs = what_was_denied(error) or f"{PERMISSIONS[reference.kind]} on it"
            raise DeployerError(
                f"secret {name}: reading {where} was refused ({code}): needs {needs}; the deploying identity needs "
                "kms:Decrypt on its KMS key too; nothing was changed"
            ) from None
        raise
    if "SecretString" not in answer:
        raise DeployerError(f"secret {name}: {text} holds binary data; Lambda's environment takes text only")
    value = answer["SecretString"]
    if reference.field is not None:
        value = _json_field(name, text, value, reference.field)
    return Secret(name, text, str(answer["VersionId"]), value)


def _json_field(name: str, text: str, document: str, json_field: str) -> str:
    """One field of a secret's JSON; the error names the field, never what the secret holds."""
    try:
        data = json.loads(document)
    except ValueError:
        data = None
    found = data.get(json_field) if isinstance(data, dict) else None
    if isinstance(found, bool) or not isinstance(found, str | int | float):
        raise DeployerError(
            f"secret {name}: {text} names field {json_field!r}, but the secret is not a JSON object with that "
            "field as text or a number; fix the secret or the reference"
        )
    return str(found)


def resolve(
    aws: Aws, references: Mapping[str, str], pins: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, Secret]:
    """Every reference read, at its pinned version when `pins` names one (a rollback), else its newest."""
    pinned = pins or {}
    return {
        name: read(aws, name, text, (pinned.get(name) or {}).get("version"))
        for name, text in sorted(references.items())
    }


def check_size(environment: Mapping[str, str], secrets: Mapping[str, Secret], stage: str) -> None:
    """Lambda's 4 KB counts the secrets' values too: refused before any write, naming variables only."""
    from deployer.config import ENVIRONMENT_LIMIT

    sizes = {name: len(name.encode()) + len(value.encode()) for name, value in environment.items()}
    sizes.update({name: len(name.encode()) + len(secret.value.encode()) for name, secret in secrets.items()})
    total = sum(sizes.values())
    if total > ENVIRONMENT_LIMIT:
        largest = ", ".join(sorted(sizes, key=lambda name: -sizes[name])[:3])
        raise UsageError(
            f"stage {stage}: the environment with its secrets' values is {total} bytes, over Lambda's "
            f"{ENVIRONMENT_LIMIT}; the largest variables are {largest}: keep large values out of the environment"
        )


def resolved(target: Target) -> Target:
    """`target` with its secrets read (newest versions), unless it has none or they are read already: no call
    at all without [function.secrets]."""
    if target.secrets is not None or not target.config.secrets:
        return target
    secrets = resolve(target.aws, target.config.secrets)
    check_size(target.config.environment, secrets, target.config.stage)
    return replace(target, secrets=secrets)


def secret_looking(environment: Mapping[str, str]) -> list[str]:
    """Literal variables whose names look like secrets: the nudge towards [function.secrets]."""
    return sorted(name for name, value in environment.items() if value and SECRET_LOOKING.search(name))


def environment(literal: Mapping[str, str], secrets: Mapping[str, Secret] | None) -> dict[str, str]:
    """Lambda's Environment.Variables: the literal ones and the secrets' values."""
    return {**literal, **{name: secret.value for name, secret in (secrets or {}).items()}}


def describe_pins(pins: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} {pin.get('ref')} version {pin.get('version')}" for name, pin in sorted(pins.items()))
