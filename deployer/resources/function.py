"""The Lambda function, its code taken from the artifact in S3.

Real Lambda is eventually consistent: a role created seconds ago may not be assumable yet, and a
function is Pending after create and InProgress after an update, refusing any other update
meanwhile. We wait with botocore's waiters when AWS says the function is not settled, and retry the
refusals botocore does not (docs/ARCHITECTURE.md, "What real AWS does").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from deployer.aws import delete_if_present, function_busy, is_access_denied, read_or_none, role_not_assumable
from deployer.config import Config
from deployer.context import Run, Target, arn_account, arn_partition, check_ours
from deployer.digest import hex_sha256
from deployer.plan import Change, Diff, Learned, Plan
from deployer.read_ahead import Read
from deployer.resources.artifact import ArtifactObject
from deployer.resources.log_group import LogGroup
from deployer.resources.role import Role
from deployer.retry import retrying
from deployer.schedule import both

if TYPE_CHECKING:
    from deployer.secrets import Secret

WAIT = {"Delay": 1, "MaxAttempts": 300}  # a second's grain, up to 5 minutes like Terraform
RELEASE_LABEL = "deployer release "
NEW_ROLE_GRAIN = 0.5  # seconds between tries of CreateFunction while IAM propagates the new role (deployer.retry)


class Field(StrEnum):
    CODE = "code"
    ARCHITECTURE = "architecture"
    RUNTIME = "runtime"
    HANDLER = "handler"
    MEMORY = "memory"
    TIMEOUT = "timeout"
    ROLE = "role"
    ENVIRONMENT = "environment"
    SECRETS = "secrets"  # a secret's reference or version: compared by version, never by value
    KMS_KEY = "kms key"
    TAGS = "tags"


# Which call each difference needs (terraform-provider-aws's needsFunctionCodeUpdate / ...ConfigUpdate).
NEEDS_CODE_UPDATE = frozenset({Field.CODE, Field.ARCHITECTURE})  # Lambda takes the architecture with the code
NEEDS_CONFIGURATION_UPDATE = frozenset(
    {
        Field.RUNTIME,
        Field.HANDLER,
        Field.MEMORY,
        Field.TIMEOUT,
        Field.ROLE,
        Field.ENVIRONMENT,
        Field.SECRETS,
        Field.KMS_KEY,
    }
)
# What a secret's value is compared as: its reference and version (a version's value never changes).
PIN_MARK = "\0pinned "
Pins = Mapping[str, Mapping[str, str]]  # variable -> {"ref": reference, "version": version}, as the state records


def _pinned(reference: str, version: str) -> str:
    return f"{PIN_MARK}{reference}@{version}"


@dataclass(frozen=True)
class Release:
    """What a published version runs, code and configuration: two versions alike in this are the same release."""

    code_sha256: str  # hex
    runtime: str
    handler: str
    memory: int
    timeout: int
    role: str | None
    architecture: str
    # sorted; literal values compared here, never stored nor printed; a secret's value stands as its pin
    environment: tuple[tuple[str, str], ...]
    secrets: tuple[tuple[str, str, str], ...] = ()  # sorted (variable, reference, version)
    kms_key_arn: str | None = None

    @classmethod
    def of(cls, configuration: dict[str, Any], pins: Pins | None = None) -> Release:
        """The release a GetFunction / ListVersionsByFunction configuration runs; `pins`: the secrets the state
        recorded for that version (unknown ones leave their variables as they are: then it matches nothing)."""
        variables = dict((configuration.get("Environment") or {}).get("Variables") or {})
        secrets = tuple(
            sorted(
                (name, str(pin["ref"]), str(pin["version"])) for name, pin in (pins or {}).items() if name in variables
            )
        )
        variables.update({name: _pinned(reference, version) for name, reference, version in secrets})
        return cls(
            code_sha256=hex_sha256(configuration.get("CodeSha256") or ""),
            runtime=configuration.get("Runtime", ""),
            handler=configuration.get("Handler", ""),
            memory=configuration.get("MemorySize", 128),
            timeout=configuration.get("Timeout", 3),
            role=configuration.get("Role"),
            architecture=(configuration.get("Architectures") or ["x86_64"])[0],
            environment=tuple(sorted(variables.items())),
            secrets=secrets,
            kms_key_arn=configuration.get("KMSKeyArn") or None,
        )

    @classmethod
    def wanted(
        cls, config: Config, code_sha256: str, role: str | None, secrets: Mapping[str, Secret] | None = None
    ) -> Release:
        pins = tuple(sorted((name, secret.reference, secret.version) for name, secret in (secrets or {}).items()))
        variables = {**config.environment, **{name: _pinned(ref, version) for name, ref, version in pins}}
        return cls(
            code_sha256=code_sha256,
            runtime=config.runtime,
            handler=config.handler,
            memory=config.memory,
            timeout=config.timeout,
            role=role,
            architecture=config.architecture,
            environment=tuple(sorted(variables.items())),
            secrets=pins,
            kms_key_arn=config.kms_key_arn,
        )

    def record(self) -> dict[str, Any]:
        """What the state keeps of it, for a rollback to rebuild it: environment variable names and the secrets'
        references and versions, never a value."""
        secret_names = {name for name, _, _ in self.secrets}
        record: dict[str, Any] = {
            "code_sha256": self.code_sha256,
            "runtime": self.runtime,
            "handler": self.handler,
            "memory": self.memory,
            "timeout": self.timeout,
            "architecture": self.architecture,
            "environment": [name for name, _ in self.environment if name not in secret_names],
        }
        if self.secrets:
            record["secrets"] = {name: {"ref": ref, "version": version} for name, ref, version in self.secrets}
        if self.kms_key_arn:
            record["kms_key_arn"] = self.kms_key_arn
        return record


@dataclass(frozen=True)
class Observed:
    configuration: dict[str, Any]  # GetFunction's Configuration of $LATEST: its state says whether to wait first
    versions: tuple[dict[str, Any], ...]  # the published versions (ListVersionsByFunction), oldest first
    alias: dict[str, Any] | None  # the stage's alias (GetAlias), None before the first release
    wanted: Release  # what this run deploys
    matching: str | None  # a published version that already is `wanted`: no update, no publish needed


def _environment_summary(variables: dict[str, str]) -> str:
    """Names only: values may be secrets and are never printed or stored."""
    return ", ".join(sorted(variables)) or "(none)"


def role_arn(config: Config, partition: str, account: str | None) -> str | None:
    """The app's role's ARN, known without asking IAM once the account is known."""
    return f"arn:{partition}:iam::{account}:role/{config.role_name}" if account else None


def planned_arn(target: Target, earlier: Plan) -> str:
    """The function's ARN as the plan knows it: read, or predicted from the account (it is created later)."""
    function = earlier.of(Function)
    if function is not None and function.observed is not None:
        return str(function.observed.configuration["FunctionArn"])
    role = earlier.of(Role)
    known = [role.observed.arn if role and role.observed else None, target.recorded.role_arn]
    partition, account = arn_partition(*known), arn_account(*known) or "(account)"
    return f"arn:{partition}:lambda:{target.region}:{account}:function:{target.config.function_name}"


def known_arn(run: Run) -> str:
    """The function's ARN, known from the role's before the function exists (the same account and partition)."""
    if run.state.function_arn:
        return run.state.function_arn
    role = run.state.role_arn
    assert role, "the role step runs first"
    partition, account = arn_partition(role), arn_account(role)
    return f"arn:{partition}:lambda:{run.target.region}:{account}:function:{run.config.function_name}"


def alias_arn(function_arn: str, alias: str) -> str:
    """The qualified ARN the API invokes: `...:function:NAME:ALIAS`."""
    return f"{function_arn}:{alias}"


def _desired_configuration(config: Config, role: str | None, secrets: Mapping[str, Secret] | None) -> dict[str, Any]:
    from deployer.secrets import environment

    desired = {
        "Runtime": config.runtime,
        "Handler": config.handler,
        "MemorySize": config.memory,
        "Timeout": config.timeout,
        "Role": role,
        "Environment": {"Variables": environment(config.environment, secrets)},
    }
    if config.kms_key_arn:  # Lambda encrypts the variables at rest with it (else with its own key)
        desired["KMSKeyArn"] = config.kms_key_arn
    return desired


def pins_by_version(target: Target) -> dict[str, Pins]:
    """The secrets' versions each published version runs with, as the state recorded them per release."""
    return {
        str(record["lambda_version"]): record.get("secrets") or {}
        for record in target.recorded.releases.values()
        if record.get("lambda_version")
    }


def release_label(version: str) -> str:
    """A published version's description: the release it is, so a lost state is recovered from AWS."""
    return f"{RELEASE_LABEL}{version}"


def release_of(description: str | None) -> str | None:
    return description.removeprefix(RELEASE_LABEL) if description and description.startswith(RELEASE_LABEL) else None


def _releases(target: Target, versions: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    """The state's release records, with what the published versions say of themselves: a lost state gets
    back every release still published, its version and its configuration."""
    pins = pins_by_version(target)
    found = {
        release: {**Release.of(item, pins.get(item["Version"])).record(), "lambda_version": item["Version"]}
        for item in versions
        if (release := release_of(item.get("Description")))
    }
    return {**target.recorded.releases, **found}


def list_versions(aws: Any, name: str) -> tuple[dict[str, Any], ...]:
    """The function's published versions, oldest first ($LATEST left out)."""
    paginator = aws.lambda_.get_paginator("list_versions_by_function")
    found = [item for page in paginator.paginate(FunctionName=name) for item in page["Versions"]]
    return tuple(sorted((item for item in found if item["Version"].isdigit()), key=lambda item: int(item["Version"])))


def _matching(
    versions: tuple[dict[str, Any], ...],
    wanted: Release,
    alias: dict[str, Any] | None,
    label: str,
    pins: dict[str, Pins],
) -> str | None:
    """The published version that already is the wanted release: the one serving, else the one labelled for
    this release, else the newest."""
    alike = [item for item in versions if Release.of(item, pins.get(item["Version"])) == wanted]
    serving = [item for item in alike if alias and item["Version"] == alias.get("FunctionVersion")]
    labelled = [item for item in alike if item.get("Description") == label]
    chosen = serving or labelled or alike
    return chosen[-1]["Version"] if chosen else None


def wait_until_settled(run: Run, response: dict[str, Any]) -> None:
    """Block while the function is Pending or its last update InProgress; no call when it is settled."""
    name, functions = run.config.function_name, run.aws.lambda_
    if response.get("State") == "Pending":
        functions.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=WAIT)
    elif response.get("LastUpdateStatus") == "InProgress":
        functions.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)


def wait_until_ready(run: Run) -> None:
    """After Lambda refused a change as busy: wait until the function is Active and its update done."""
    for waiter in ("function_active_v2", "function_updated_v2"):
        run.aws.lambda_.get_waiter(waiter).wait(FunctionName=run.config.function_name, WaiterConfig=WAIT)


def _read(target: Target) -> dict[str, Any] | None:
    return read_or_none(lambda: target.aws.lambda_.get_function(FunctionName=target.config.function_name))


def find_ours(target: Target) -> str | None:
    """The stage's function when it exists and carries the app's tag (for `down` without a state file)."""
    found = _read(target)
    tags = function_tags(target, found) if found is not None else None
    return target.config.function_name if tags is not None and target.config.owns(tags) else None


def function_tags(target: Target, found: dict[str, Any]) -> dict[str, str] | None:
    """The tags GetFunction returned, or ListTags's: Lambda leaves them out of GetFunction for callers
    without lambda:ListTags. None when they cannot be read at all (then they are neither compared nor set)."""
    if "Tags" in found:
        return found["Tags"]
    try:
        return target.aws.lambda_.list_tags(Resource=found["Configuration"]["FunctionArn"])["Tags"]
    except ClientError as error:
        if not is_access_denied(error):
            raise
        return None


class Function:
    """$LATEST: the code and configuration the next published version snapshots. Never served itself."""

    resource = "function"
    # Its plan compares the code with the artifact's; the role's ARN it predicts (role_arn). Created from the
    # uploaded artifact, with the role, after the log group (else Lambda makes one that never expires).
    reads: tuple[type, ...] = (ArtifactObject,)
    needs: tuple[type, ...] = (ArtifactObject, Role, LogGroup)

    def ahead(self, target: Target) -> tuple[Read, ...]:
        config, name = target.config, target.config.function_name
        if target.recorded.function_name is None:  # not made yet: the plan looks for it by name, and only that
            return (Read("lambda", "GetFunction", {"FunctionName": name}),)
        if target.recorded.function_name != name:
            return ()
        return (
            Read("lambda", "GetFunction", {"FunctionName": name}),
            Read("lambda", "ListVersionsByFunction", {"FunctionName": name}),  # the paginator's first page
            Read("lambda", "GetAlias", {"FunctionName": name, "Name": config.alias}),
        )

    def plan(self, target: Target, earlier: Plan) -> Change[Observed]:
        config, name = target.config, target.config.function_name
        found = _read(target)
        if found is None:
            return Change(self.resource, name, "create")
        current = found["Configuration"]
        arn = current["FunctionArn"]
        tags = function_tags(target, found)
        check_ours(config, self.resource, name, tags)
        versions, alias = both(
            lambda: list_versions(target.aws, name),
            lambda: read_or_none(lambda: target.aws.lambda_.get_alias(FunctionName=name, Name=config.alias)),
        )
        # Predicted, not read from the role's plan (which runs at the same time): deployer's role has no IAM path.
        desired_role = role_arn(config, arn_partition(arn), arn_account(arn))
        artifact = earlier.of(ArtifactObject)
        if target.keep_live:  # converting a stack from before aliases: publish what runs now, as it is
            wanted = Release.of(current)
        else:
            code = artifact.observed.sha256 if artifact and artifact.observed else Release.of(current).code_sha256
            wanted = Release.wanted(config, code, desired_role, target.secrets)
        pins = pins_by_version(target)
        matching = _matching(versions, wanted, alias, release_label(target.version or ""), pins)
        serving = pins.get((alias or {}).get("FunctionVersion", ""), {})
        diffs = [] if matching else self._differences(current, wanted, config, serving, target.secrets or {})
        if tags is not None and any(tags.get(key) != value for key, value in config.tags.items()):
            diffs.append(Diff(Field.TAGS, tags, config.tags))
        learned = Learned(function_name=name, function_arn=arn, releases=_releases(target, versions))
        return Change(
            self.resource,
            name,
            "update" if diffs else "unchanged",
            tuple(diffs),
            observed=Observed(current, versions, alias, wanted, matching),
            learned=learned,
        )

    @staticmethod
    def _differences(
        current: dict[str, Any], wanted: Release, config: Config, serving: Pins, secrets: Mapping[str, Secret]
    ) -> list[Diff]:
        """What differs between $LATEST and the release: each a named field, old -> new. Secrets are shown by
        reference and version against the release serving now, never by value."""
        now = Release.of(current)
        secret_names = {name for name, _, _ in wanted.secrets}
        literal = tuple(item for item in now.environment if item[0] not in secret_names)
        now = replace(now, environment=literal)
        wanted_literal = tuple(item for item in wanted.environment if item[0] not in secret_names)
        diffs = []
        if now.code_sha256 != wanted.code_sha256:
            diffs.append(Diff(Field.CODE, now.code_sha256[:12], wanted.code_sha256[:12]))
        for field in (Field.RUNTIME, Field.HANDLER, Field.MEMORY, Field.TIMEOUT, Field.ROLE, Field.ARCHITECTURE):
            old, new = getattr(now, field.value), getattr(wanted, field.value)
            if old != new and not (field is Field.ROLE and new is None):
                diffs.append(Diff(field, old, new))
        if now.environment != wanted_literal:
            old_names, new_names = _environment_summary(dict(now.environment)), _environment_summary(config.environment)
            new_text = f"{new_names} (values changed)" if old_names == new_names else new_names
            diffs.append(Diff(Field.ENVIRONMENT, old_names, new_text))
        diffs.extend(_secret_differences(current, wanted, serving, secrets))
        if now.kms_key_arn != wanted.kms_key_arn:
            diffs.append(
                Diff(Field.KMS_KEY, now.kms_key_arn or "(Lambda's own)", wanted.kms_key_arn or "(Lambda's own)")
            )
        return diffs

    def apply(self, run: Run, change: Change[Observed]) -> None:
        if change.action == "create":
            self._create(run)
        else:
            self._update(run, change)

    def _create(self, run: Run) -> None:
        config = run.config
        response = retrying(
            lambda: run.aws.lambda_.create_function(
                FunctionName=config.function_name,
                Code={"S3Bucket": config.bucket, "S3Key": run.target.artifact_key},
                Architectures=[config.architecture],
                Description="Deployed by deployer",
                Tags=config.tags,
                **_desired_configuration(config, run.state.role_arn, run.target.secrets),
            ),
            waits=run.aws.waits,
            when=role_not_assumable,
            first_delay=NEW_ROLE_GRAIN,
            max_delay=NEW_ROLE_GRAIN,
            waiting_for="IAM to let Lambda assume the new role",
        )
        with run.saving:  # what it made, saved by this step's own write
            run.state.function_name, run.state.function_arn = config.function_name, response["FunctionArn"]
            run.save_soon()
        wait_until_settled(run, response)

    def _update(self, run: Run, change: Change[Observed]) -> None:
        config = run.config
        assert change.observed is not None, "an update is planned from what was read"
        wait_until_settled(run, change.observed.configuration)
        if change.touches(NEEDS_CODE_UPDATE):
            update_code(run, run.target.artifact_key)
        if change.touches(NEEDS_CONFIGURATION_UPDATE):
            response = retrying(
                lambda: run.aws.lambda_.update_function_configuration(
                    FunctionName=config.function_name,
                    **_desired_configuration(config, run.state.role_arn, run.target.secrets),
                    # "": back to Lambda's own key, once kms_key_arn is gone from deploy.toml
                    **({"KMSKeyArn": ""} if change.touches([Field.KMS_KEY]) and not config.kms_key_arn else {}),
                ),
                waits=run.aws.waits,
                when=lambda error: role_not_assumable(error) or function_busy(error),
                before_retry=lambda: wait_until_ready(run),
                waiting_for="the function to settle (or IAM to let Lambda assume its role)",
            )
            wait_until_settled(run, response)
        if change.touches([Field.TAGS]):
            run.aws.lambda_.tag_resource(Resource=run.state.function_arn, Tags=config.tags)


def _secret_differences(
    current: dict[str, Any], wanted: Release, serving: Pins, secrets: Mapping[str, Secret]
) -> list[Diff]:
    """One Diff per secret whose reference or version differs from the serving release's: `NAME  ref  version
    3` -> `4`. $LATEST's own copy is checked as well (it is what gets published); only that it differs is kept."""
    variables = (current.get("Environment") or {}).get("Variables") or {}
    diffs = []
    for name, reference, version in wanted.secrets:
        pin = serving.get(name) or {}
        was = str(pin["version"]) if pin.get("ref") == reference and "version" in pin else None
        stale = name in secrets and variables.get(name) != secrets[name].value  # in memory only, never shown
        if was != version or stale:
            diffs.append(Diff(Field.SECRETS, f"{name}  {reference}  version {was or '(none)'}", version))
    return diffs


def update_code(run: Run, key: str) -> dict[str, Any]:
    """Point $LATEST at another artifact."""
    config = run.config
    response = retrying(
        lambda: run.aws.lambda_.update_function_code(
            FunctionName=config.function_name, S3Bucket=config.bucket, S3Key=key, Architectures=[config.architecture]
        ),
        waits=run.aws.waits,
        when=function_busy,
        before_retry=lambda: wait_until_ready(run),
        waiting_for="the function's last update to finish",
    )
    wait_until_settled(run, response)
    return response


def delete(run: Run, name: str) -> bool:
    """Its versions, aliases and resource policies go with it. False when there was no such function."""
    return delete_if_present(
        lambda: run.aws.lambda_.delete_function(FunctionName=name),
        still_there=lambda: run.aws.lambda_.get_function(FunctionName=name),
    )
