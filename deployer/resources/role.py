"""The IAM execution role: trusts only lambda.amazonaws.com, holds at most the basic logging policy."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from deployer.context import Change, Context, adopt
from deployer.retry import error_code

TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
BASIC_LOGGING = "arn:{partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


def _trusted_services(document: Any) -> list[str]:
    """Who may assume the role, in a form that ignores layout (IAM may hand back a string or a list)."""
    if isinstance(document, str):
        document = json.loads(document)
    trusted = []
    for statement in document.get("Statement", []):
        services = statement.get("Principal", {}).get("Service", [])
        services = [services] if isinstance(services, str) else services
        others = sorted(key for key in statement.get("Principal", {}) if key != "Service")
        trusted.append(f"{statement.get('Effect')} {statement.get('Action')} {sorted(services)} {others}")
    return sorted(trusted)


def _desired_policies(ctx: Context, partition: str) -> set[str]:
    return {BASIC_LOGGING.format(partition=partition)} if ctx.config.logs else set()


def _attached(ctx: Context, name: str) -> set[str]:
    paginator = ctx.aws.iam.get_paginator("list_attached_role_policies")
    return {policy["PolicyArn"] for page in paginator.paginate(RoleName=name) for policy in page["AttachedPolicies"]}


def _read(ctx: Context, name: str) -> dict[str, Any] | None:
    try:
        return ctx.aws.iam.get_role(RoleName=name)["Role"]
    except ClientError as error:
        if error_code(error) != "NoSuchEntity":
            raise
        return None


def _tags(role: dict[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in role.get("Tags", [])}


def find_ours(ctx: Context) -> str | None:
    """The app's role when it exists and carries the app's tag (for `down` without a state file)."""
    found = _read(ctx, ctx.config.role_name)
    return ctx.config.role_name if found is not None and ctx.config.owns(_tags(found)) else None


class Role:
    resource = "role"

    def plan(self, ctx: Context) -> Change:
        name = ctx.config.role_name
        role = _read(ctx, name)
        if role is None:
            return Change(self.resource, name, "create")
        tags = _tags(role)
        adopt(ctx, self.resource, name, tags, recorded=ctx.state.role_name == name)
        ctx.state.role_name, ctx.state.role_arn = name, role["Arn"]
        partition = role["Arn"].split(":")[1]
        diffs: dict[str, tuple[Any, Any]] = {}
        if _trusted_services(role["AssumeRolePolicyDocument"]) != _trusted_services(TRUST_POLICY):
            diffs["trust policy"] = ("changed", "lambda.amazonaws.com only")
        attached = _attached(ctx, name)
        desired = _desired_policies(ctx, partition)
        if attached != desired:
            diffs["policies"] = (sorted(attached), sorted(desired))
        if any(tags.get(key) != value for key, value in ctx.config.tags.items()):
            diffs["tags"] = (tags, ctx.config.tags)
        return Change(self.resource, name, "update" if diffs else "unchanged", diffs, current=attached)

    def apply(self, ctx: Context, change: Change) -> None:
        iam, name = ctx.aws.iam, ctx.config.role_name
        attached: set[str] = change.current or set()
        if change.action == "create":
            role = iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
                Description=f"Execution role of the Lambda function {ctx.config.app_name} (deployer)",
                Tags=[{"Key": key, "Value": value} for key, value in ctx.config.tags.items()],
            )["Role"]
            ctx.state.role_name, ctx.state.role_arn = name, role["Arn"]
            ctx.save()
        elif "trust policy" in change.diffs:
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(TRUST_POLICY))
        if "tags" in change.diffs:
            iam.tag_role(RoleName=name, Tags=[{"Key": key, "Value": value} for key, value in ctx.config.tags.items()])
        desired = _desired_policies(ctx, ctx.partition)
        for policy in sorted(desired - attached):
            iam.attach_role_policy(RoleName=name, PolicyArn=policy)
        for policy in sorted(attached - desired):
            iam.detach_role_policy(RoleName=name, PolicyArn=policy)


def delete(ctx: Context, name: str) -> bool:
    """Detach what is attached, then delete. False when there was no such role."""
    iam = ctx.aws.iam
    try:
        for policy in sorted(_attached(ctx, name)):
            iam.detach_role_policy(RoleName=name, PolicyArn=policy)
        iam.delete_role(RoleName=name)
    except ClientError as error:
        if error_code(error) == "NoSuchEntity":
            return False
        if error_code(error) != "DeleteConflict":
            raise
        # Inline policies added by hand block the delete: remove them too, the role is ours.
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=name):
            for policy in page["PolicyNames"]:
                iam.delete_role_policy(RoleName=name, PolicyName=policy)
        iam.delete_role(RoleName=name)
    return True
