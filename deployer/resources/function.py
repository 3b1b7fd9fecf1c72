"""The Lambda function, its code taken from the artifact in S3.

Real Lambda is eventually consistent (DESIGN.md section 3): a role created seconds ago may not be
assumable yet, and a function is Pending after create and InProgress after an update, refusing any
other update meanwhile. We wait with botocore's waiters when AWS says the function is not settled,
and retry the refusals botocore does not.
"""

from __future__ import annotations

import base64
from typing import Any

from botocore.exceptions import ClientError

from deployer.context import Change, Context, adopt
from deployer.retry import error_code, function_busy, retrying, role_not_assumable

WAIT = {"Delay": 2, "MaxAttempts": 150}  # up to 5 minutes, like Terraform


def lambda_sha256(hex_digest: str) -> str:
    """Lambda reports CodeSha256 as the base64 of the digest, not hex."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def hex_sha256(lambda_digest: str) -> str:
    return base64.b64decode(lambda_digest).hex()


def _environment_summary(variables: dict[str, str]) -> str:
    """Names only: values may be secrets and are never printed or stored."""
    return ", ".join(sorted(variables)) or "(none)"


def _desired_configuration(ctx: Context) -> dict[str, Any]:
    config = ctx.config
    return {
        "Runtime": config.runtime,
        "Handler": config.handler,
        "MemorySize": config.memory,
        "Timeout": config.timeout,
        "Role": ctx.state.role_arn,
        "Environment": {"Variables": dict(config.environment)},
    }


def wait_until_settled(ctx: Context, response: dict[str, Any]) -> None:
    """Block while the function is Pending or its last update InProgress; no call when it is settled."""
    name = ctx.config.app_name
    if response.get("State") == "Pending":
        ctx.aws.lambda_.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=WAIT)
    elif response.get("LastUpdateStatus") == "InProgress":
        ctx.aws.lambda_.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)


def wait_until_ready(ctx: Context) -> None:
    """After Lambda refused a change as busy: wait until the function is Active and its update done."""
    for waiter in ("function_active_v2", "function_updated_v2"):
        ctx.aws.lambda_.get_waiter(waiter).wait(FunctionName=ctx.config.app_name, WaiterConfig=WAIT)


def update_code(ctx: Context, key: str) -> dict[str, Any]:
    """Point the function at another artifact; used by `up` and `rollback`."""
    response = retrying(
        lambda: ctx.aws.lambda_.update_function_code(
            FunctionName=ctx.config.app_name,
            S3Bucket=ctx.config.bucket,
            S3Key=key,
            Architectures=[ctx.config.architecture],
        ),
        when=function_busy,
        before_retry=lambda: wait_until_ready(ctx),
    )
    wait_until_settled(ctx, response)
    return response


def _read(ctx: Context) -> dict[str, Any] | None:
    try:
        return ctx.aws.lambda_.get_function(FunctionName=ctx.config.app_name)
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        return None


def find_ours(ctx: Context) -> str | None:
    """The app's function when it exists and carries the app's tag (for `down` without a state file)."""
    found = _read(ctx)
    tags = function_tags(ctx, found) if found is not None else None
    return ctx.config.app_name if tags is not None and ctx.config.owns(tags) else None


def function_tags(ctx: Context, found: dict[str, Any]) -> dict[str, str] | None:
    """The tags GetFunction returned, or ListTags's: Lambda leaves them out of GetFunction for callers
    without lambda:ListTags. None when they cannot be read at all (then they are neither compared nor set)."""
    if "Tags" in found:
        return found["Tags"]
    try:
        return ctx.aws.lambda_.list_tags(Resource=found["Configuration"]["FunctionArn"])["Tags"]
    except ClientError as error:
        if error_code(error) not in ("AccessDeniedException", "AccessDenied"):
            raise
        return None


class Function:
    resource = "function"

    def plan(self, ctx: Context) -> Change:
        name = ctx.config.app_name
        found = _read(ctx)
        if found is None:
            return Change(self.resource, name, "create")
        current = found["Configuration"]
        tags = function_tags(ctx, found)
        adopt(ctx, self.resource, name, tags, recorded=ctx.state.function_name == name)
        ctx.state.function_name, ctx.state.function_arn = name, current["FunctionArn"]
        diffs: dict[str, tuple[Any, Any]] = {}
        if ctx.artifact_sha256 and current.get("CodeSha256") != lambda_sha256(ctx.artifact_sha256):
            diffs["code"] = (hex_sha256(current["CodeSha256"])[:12], ctx.artifact_sha256[:12])
        desired = _desired_configuration(ctx)
        for key in ("Runtime", "Handler", "MemorySize", "Timeout"):
            if current.get(key) != desired[key]:
                diffs[key.lower()] = (current.get(key), desired[key])
        if desired["Role"] and current.get("Role") != desired["Role"]:
            diffs["role"] = (current.get("Role"), desired["Role"])
        variables = current.get("Environment", {}).get("Variables", {})
        if variables != ctx.config.environment:
            old, new = _environment_summary(variables), _environment_summary(ctx.config.environment)
            diffs["environment"] = (old, f"{new} (values changed)" if old == new else new)
        if current.get("Architectures", ["x86_64"]) != [ctx.config.architecture]:
            diffs["architecture"] = (current.get("Architectures", ["x86_64"])[0], ctx.config.architecture)
        if tags is not None and any(tags.get(key) != value for key, value in ctx.config.tags.items()):
            diffs["tags"] = (tags, ctx.config.tags)
        return Change(self.resource, name, "update" if diffs else "unchanged", diffs, current=current)

    def apply(self, ctx: Context, change: Change) -> None:
        if change.action == "create":
            self._create(ctx)
        else:
            self._update(ctx, change)
        ctx.state.version, ctx.state.bucket, ctx.state.key = ctx.version, ctx.config.bucket, ctx.artifact_key
        ctx.state.artifact_sha256 = ctx.artifact_sha256
        ctx.save()

    def _create(self, ctx: Context) -> None:
        config = ctx.config
        response = retrying(
            lambda: ctx.aws.lambda_.create_function(
                FunctionName=config.app_name,
                Code={"S3Bucket": config.bucket, "S3Key": ctx.artifact_key},
                Architectures=[config.architecture],
                Description="Deployed by deployer",
                Tags=config.tags,
                **_desired_configuration(ctx),
            ),
            when=role_not_assumable,
        )
        ctx.state.function_name, ctx.state.function_arn = config.app_name, response["FunctionArn"]
        ctx.function_created = True
        ctx.save()
        wait_until_settled(ctx, response)

    def _update(self, ctx: Context, change: Change) -> None:
        wait_until_settled(ctx, change.current)
        if "code" in change.diffs or "architecture" in change.diffs:
            update_code(ctx, ctx.artifact_key)
        if {"runtime", "handler", "memorysize", "timeout", "role", "environment"} & set(change.diffs):
            response = retrying(
                lambda: ctx.aws.lambda_.update_function_configuration(
                    FunctionName=ctx.config.app_name, **_desired_configuration(ctx)
                ),
                when=lambda error: role_not_assumable(error) or function_busy(error),
                before_retry=lambda: wait_until_ready(ctx),
            )
            wait_until_settled(ctx, response)
        if "tags" in change.diffs:
            ctx.aws.lambda_.tag_resource(Resource=ctx.state.function_arn, Tags=ctx.config.tags)


def delete(ctx: Context, name: str) -> bool:
    """Its resource policy (the API's permission) goes with it. False when there was no such function."""
    try:
        ctx.aws.lambda_.delete_function(FunctionName=name)
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return False
        raise
    return True
