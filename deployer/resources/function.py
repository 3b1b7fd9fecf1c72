"""The Lambda function, its code taken from the artifact in S3.

Real Lambda is eventually consistent: a role created seconds ago may not be assumable yet, and a
function is Pending after create and InProgress after an update, refusing any other update
meanwhile. We wait with botocore's waiters when AWS says the function is not settled, and retry the
refusals botocore does not (docs/ARCHITECTURE.md, "What real AWS does").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws import delete_if_present, read_or_none
from deployer.config import Config
from deployer.context import Run, Target, arn_account, arn_partition, check_ours
from deployer.digest import hex_sha256, lambda_sha256
from deployer.plan import Change, Diff, Plan
from deployer.retry import error_code, function_busy, retrying, role_not_assumable

WAIT = {"Delay": 2, "MaxAttempts": 150}  # up to 5 minutes, like Terraform


class Field(StrEnum):
    CODE = "code"
    ARCHITECTURE = "architecture"
    RUNTIME = "runtime"
    HANDLER = "handler"
    MEMORY = "memory"
    TIMEOUT = "timeout"
    ROLE = "role"
    ENVIRONMENT = "environment"
    TAGS = "tags"


# Which call each difference needs (terraform-provider-aws's needsFunctionCodeUpdate / ...ConfigUpdate).
NEEDS_CODE_UPDATE = frozenset({Field.CODE, Field.ARCHITECTURE})  # Lambda takes the architecture with the code
NEEDS_CONFIGURATION_UPDATE = frozenset(
    {Field.RUNTIME, Field.HANDLER, Field.MEMORY, Field.TIMEOUT, Field.ROLE, Field.ENVIRONMENT}
)


@dataclass(frozen=True)
class Observed:
    configuration: dict[str, Any]  # GetFunction's Configuration: its state tells apply whether to wait first


def _environment_summary(variables: dict[str, str]) -> str:
    """Names only: values may be secrets and are never printed or stored."""
    return ", ".join(sorted(variables)) or "(none)"


def role_arn(config: Config, partition: str, account: str | None) -> str | None:
    """The app's role's ARN, known without asking IAM once the account is known."""
    return f"arn:{partition}:iam::{account}:role/{config.role_name}" if account else None


def planned_arn(target: Target, earlier: Plan) -> str:
    """The function's ARN as the plan knows it: read, or predicted from the account (it is created later)."""
    function = earlier.of("function")
    if function is not None and function.learned.get("function_arn"):
        return str(function.learned["function_arn"])
    role = earlier.of("role")
    known = [role.observed.arn if role and role.observed else None, target.recorded.role_arn]
    partition, account = arn_partition(*known), arn_account(*known) or "(account)"
    return f"arn:{partition}:lambda:{target.region}:{account}:function:{target.config.app_name}"


def _desired_configuration(config: Config, role: str | None) -> dict[str, Any]:
    return {
        "Runtime": config.runtime,
        "Handler": config.handler,
        "MemorySize": config.memory,
        "Timeout": config.timeout,
        "Role": role,
        "Environment": {"Variables": dict(config.environment)},
    }


def wait_until_settled(run: Run, response: dict[str, Any]) -> None:
    """Block while the function is Pending or its last update InProgress; no call when it is settled."""
    name, functions = run.config.app_name, run.aws.lambda_
    if response.get("State") == "Pending":
        functions.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=WAIT)
    elif response.get("LastUpdateStatus") == "InProgress":
        functions.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)


def wait_until_ready(run: Run) -> None:
    """After Lambda refused a change as busy: wait until the function is Active and its update done."""
    for waiter in ("function_active_v2", "function_updated_v2"):
        run.aws.lambda_.get_waiter(waiter).wait(FunctionName=run.config.app_name, WaiterConfig=WAIT)


def update_code(run: Run, key: str) -> dict[str, Any]:
    """Point the function at another artifact; used by `up` and `rollback`."""
    config = run.config
    response = retrying(
        lambda: run.aws.lambda_.update_function_code(
            FunctionName=config.app_name, S3Bucket=config.bucket, S3Key=key, Architectures=[config.architecture]
        ),
        when=function_busy,
        before_retry=lambda: wait_until_ready(run),
    )
    wait_until_settled(run, response)
    return response


def _read(target: Target) -> dict[str, Any] | None:
    return read_or_none(lambda: target.aws.lambda_.get_function(FunctionName=target.config.app_name))


def find_ours(target: Target) -> str | None:
    """The app's function when it exists and carries the app's tag (for `down` without a state file)."""
    found = _read(target)
    tags = function_tags(target, found) if found is not None else None
    return target.config.app_name if tags is not None and target.config.owns(tags) else None


def function_tags(target: Target, found: dict[str, Any]) -> dict[str, str] | None:
    """The tags GetFunction returned, or ListTags's: Lambda leaves them out of GetFunction for callers
    without lambda:ListTags. None when they cannot be read at all (then they are neither compared nor set)."""
    if "Tags" in found:
        return found["Tags"]
    try:
        return target.aws.lambda_.list_tags(Resource=found["Configuration"]["FunctionArn"])["Tags"]
    except ClientError as error:
        if error_code(error) not in ("AccessDeniedException", "AccessDenied"):
            raise
        return None


class Function:
    resource = "function"

    def plan(self, target: Target, earlier: Plan) -> Change:
        config, name = target.config, target.config.app_name
        found = _read(target)
        if found is None:
            return Change(self.resource, name, "create")
        current = found["Configuration"]
        tags = function_tags(target, found)
        check_ours(config, self.resource, name, tags, recorded=target.recorded.function_name == name)
        diffs = []
        artifact = earlier.of("artifact")
        code = artifact.observed.sha256 if artifact and artifact.observed else None
        if code and current.get("CodeSha256") != lambda_sha256(code):
            diffs.append(Diff(Field.CODE, hex_sha256(current["CodeSha256"])[:12], code[:12]))
        role = earlier.of("role")
        arn = current["FunctionArn"]
        desired_role = (
            role.observed.arn if role and role.observed else role_arn(config, arn_partition(arn), arn_account(arn))
        )
        desired = _desired_configuration(config, desired_role)
        for field, key in (
            (Field.RUNTIME, "Runtime"),
            (Field.HANDLER, "Handler"),
            (Field.MEMORY, "MemorySize"),
            (Field.TIMEOUT, "Timeout"),
            (Field.ROLE, "Role"),
        ):
            if current.get(key) != desired[key]:
                diffs.append(Diff(field, current.get(key), desired[key]))
        variables = current.get("Environment", {}).get("Variables", {})
        if variables != config.environment:
            old, new = _environment_summary(variables), _environment_summary(config.environment)
            diffs.append(Diff(Field.ENVIRONMENT, old, f"{new} (values changed)" if old == new else new))
        architectures = current.get("Architectures", ["x86_64"])
        if architectures != [config.architecture]:
            diffs.append(Diff(Field.ARCHITECTURE, architectures[0], config.architecture))
        if tags is not None and any(tags.get(key) != value for key, value in config.tags.items()):
            diffs.append(Diff(Field.TAGS, tags, config.tags))
        return Change(
            self.resource,
            name,
            "update" if diffs else "unchanged",
            tuple(diffs),
            observed=Observed(current),
            learned={"function_name": name, "function_arn": arn},
        )

    def apply(self, run: Run, change: Change) -> None:
        if change.action == "create":
            self._create(run)
        else:
            self._update(run, change)

    def _create(self, run: Run) -> None:
        config = run.config
        response = retrying(
            lambda: run.aws.lambda_.create_function(
                FunctionName=config.app_name,
                Code={"S3Bucket": config.bucket, "S3Key": run.target.artifact_key},
                Architectures=[config.architecture],
                Description="Deployed by deployer",
                Tags=config.tags,
                **_desired_configuration(config, run.state.role_arn),
            ),
            when=role_not_assumable,
        )
        run.state.function_name, run.state.function_arn = config.app_name, response["FunctionArn"]
        run.save()
        wait_until_settled(run, response)

    def _update(self, run: Run, change: Change) -> None:
        config = run.config
        wait_until_settled(run, change.observed.configuration)
        if change.touches(NEEDS_CODE_UPDATE):
            update_code(run, run.target.artifact_key)
        if change.touches(NEEDS_CONFIGURATION_UPDATE):
            response = retrying(
                lambda: run.aws.lambda_.update_function_configuration(
                    FunctionName=config.app_name, **_desired_configuration(config, run.state.role_arn)
                ),
                when=lambda error: role_not_assumable(error) or function_busy(error),
                before_retry=lambda: wait_until_ready(run),
            )
            wait_until_settled(run, response)
        if change.touches([Field.TAGS]):
            run.aws.lambda_.tag_resource(Resource=run.state.function_arn, Tags=config.tags)


def delete(run: Run, name: str) -> bool:
    """Its resource policy (the API's permission) goes with it. False when there was no such function."""
    return delete_if_present(lambda: run.aws.lambda_.delete_function(FunctionName=name))
