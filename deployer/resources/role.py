"""The IAM execution role: trusts only lambda.amazonaws.com, holds at most the basic logging policy.

IAM is global, the rest of a deployment is regional: the same app deployed in two regions shares its role.
The role's `deployer:regions` tag lists the regions using it; `down` in one region takes that region off
the list and deletes the role only when no other region is left on it. Inline policies are never ours: `up`
removes any it finds (least privilege converges, `logs = false` means no policy at all)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws import IAM_DELETE_CONFLICT, delete_if_present, error_code, read_or_none
from deployer.context import Run, Target, arn_partition, check_ours
from deployer.plan import Change, Diff, Plan
from deployer.read_ahead import Read
from deployer.schedule import both

TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
BASIC_LOGGING = "arn:{partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


class Field(StrEnum):
    TRUST_POLICY = "trust policy"
    POLICIES = "policies"
    TAGS = "tags"
    REGIONS = "regions"  # the regions whose deployments use the role
    INLINE_POLICIES = "inline policies"  # deployer sets none: any found was added by hand


REGIONS_TAG = "deployer:regions"


@dataclass(frozen=True)
class Observed:
    arn: str
    attached: frozenset[str]  # the managed policies attached now


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


def _desired_policies(logs: bool, partition: str) -> frozenset[str]:
    return frozenset({BASIC_LOGGING.format(partition=partition)} if logs else ())


def _attached(iam: Any, name: str) -> frozenset[str]:
    paginator = iam.get_paginator("list_attached_role_policies")
    return frozenset(
        policy["PolicyArn"] for page in paginator.paginate(RoleName=name) for policy in page["AttachedPolicies"]
    )


def _read(target: Target, name: str) -> dict[str, Any] | None:
    found = read_or_none(lambda: target.aws.iam.get_role(RoleName=name))
    return found["Role"] if found else None


def _tags(role: dict[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in role.get("Tags", [])}


def regions(tags: dict[str, str]) -> frozenset[str]:
    return frozenset(tags.get(REGIONS_TAG, "").split())


def _regions_tag(names: frozenset[str]) -> dict[str, str]:
    return {"Key": REGIONS_TAG, "Value": " ".join(sorted(names))}


def _inline(iam: Any, name: str) -> list[str]:
    return [
        policy
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=name)
        for policy in page["PolicyNames"]
    ]


@dataclass(frozen=True)
class OurRole:
    """The app's role (found by `down`), and the other regions whose deployments still use it."""

    name: str
    other_regions: frozenset[str]


def find_ours(target: Target) -> OurRole | None:
    """The app's role when it exists and carries the app's tag (for `down`)."""
    name = target.config.role_name
    found = _read(target, name)
    if found is None or not target.config.owns(_tags(found)):
        return None
    return OurRole(name, regions(_tags(found)) - {target.region})


class Role:
    resource = "role"
    reads: tuple[type, ...] = ()
    needs: tuple[type, ...] = ()

    def ahead(self, target: Target) -> tuple[Read, ...]:
        name = target.config.role_name
        if target.recorded.role_name is None:  # not made yet: the plan looks for it by name, and only that
            return (Read("iam", "GetRole", {"RoleName": name}),)
        if target.recorded.role_name != name:
            return ()
        # The role, then its policies (both paginators' first pages): asked in turn by the plan, read at once here
        operations = ("GetRole", "ListAttachedRolePolicies", "ListRolePolicies")
        return tuple(Read("iam", operation, {"RoleName": name}) for operation in operations)

    def plan(self, target: Target, earlier: Plan) -> Change[Observed]:
        config, name = target.config, target.config.role_name
        role = _read(target, name)
        if role is None:
            return Change(self.resource, name, "create")
        tags = _tags(role)
        check_ours(config, self.resource, name, tags)
        diffs = []
        if _trusted_services(role["AssumeRolePolicyDocument"]) != _trusted_services(TRUST_POLICY):
            diffs.append(Diff(Field.TRUST_POLICY, "changed", "lambda.amazonaws.com only"))
        attached, inline = both(lambda: _attached(target.aws.iam, name), lambda: _inline(target.aws.iam, name))
        desired = _desired_policies(config.logs, arn_partition(role["Arn"]))
        if attached != desired:
            diffs.append(Diff(Field.POLICIES, sorted(attached), sorted(desired)))
        if inline:
            diffs.append(Diff(Field.INLINE_POLICIES, inline, []))
        if any(tags.get(key) != value for key, value in config.tags.items()):
            diffs.append(Diff(Field.TAGS, tags, config.tags))
        used_in = regions(tags)
        if target.region not in used_in:
            diffs.append(Diff(Field.REGIONS, sorted(used_in), sorted(used_in | {target.region})))
        return Change(
            self.resource,
            name,
            "update" if diffs else "unchanged",
            tuple(diffs),
            observed=Observed(role["Arn"], attached),
            learned={"role_name": name, "role_arn": role["Arn"]},
        )

    def apply(self, run: Run, change: Change[Observed]) -> None:
        iam, config, name = run.aws.iam, run.config, run.config.role_name
        tags = [{"Key": key, "Value": value} for key, value in config.tags.items()]
        attached: frozenset[str] = change.observed.attached if change.observed else frozenset()
        if change.action == "create":
            role = iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
                Description=f"Execution role of the Lambda function {config.app_name} (deployer)",
                Tags=[*tags, _regions_tag(frozenset({run.target.region}))],
            )["Role"]
            with run.saving:  # what it made, saved by this step's own write
                run.state.role_name, run.state.role_arn = name, role["Arn"]
                run.save_soon()
        elif change.touches([Field.TRUST_POLICY]):
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(TRUST_POLICY))
        if change.touches([Field.TAGS]):
            iam.tag_role(RoleName=name, Tags=tags)
        if change.touches([Field.REGIONS]):
            wanted = next(diff.new for diff in change.diffs if diff.field == Field.REGIONS)
            iam.tag_role(RoleName=name, Tags=[_regions_tag(frozenset(wanted))])
        if change.touches([Field.INLINE_POLICIES]):
            for policy in _inline(iam, name):  # read again: what is there now goes, not what the plan saw
                iam.delete_role_policy(RoleName=name, PolicyName=policy)
        desired = _desired_policies(config.logs, arn_partition(run.state.role_arn))
        for policy in sorted(desired - attached):
            iam.attach_role_policy(RoleName=name, PolicyArn=policy)
        for policy in sorted(attached - desired):
            iam.detach_role_policy(RoleName=name, PolicyArn=policy)


def leave(run: Run, found: OurRole) -> None:
    """This region no longer uses the role: take it off the role's list, and leave the role to the others."""
    run.aws.iam.tag_role(RoleName=found.name, Tags=[_regions_tag(found.other_regions)])


def delete(run: Run, name: str) -> bool:
    """Detach what is attached, then delete. False when there was no such role."""
    iam = run.aws.iam

    def detach_and_delete() -> None:
        for policy in sorted(_attached(iam, name)):
            iam.detach_role_policy(RoleName=name, PolicyArn=policy)
        try:
            iam.delete_role(RoleName=name)
        except ClientError as error:
            if error_code(error) != IAM_DELETE_CONFLICT:
                raise
            # Inline policies added by hand block the delete: remove them too, the role is ours.
            for page in iam.get_paginator("list_role_policies").paginate(RoleName=name):
                for policy in page["PolicyNames"]:
                    iam.delete_role_policy(RoleName=name, PolicyName=policy)
            iam.delete_role(RoleName=name)

    return delete_if_present(detach_and_delete, still_there=lambda: iam.get_role(RoleName=name))
