"""`deployer ci bootstrap` and `ci remove`: the account side of the GitHub workflow.

Three things, planned by reads first (a list of `Change`s, printed), applied only when asked:

- GitHub's OIDC identity provider (https://token.actions.githubusercontent.com, audience sts.amazonaws.com), made if
  the account has none, tagged as deployer's; one that exists is used as it is (the audience added if missing).
- The deploy role, trusting only GitHub's tokens for pushes to the repository's main branch
  (`repo:OWNER/NAME:ref:refs/heads/main`), with the stage's least-privilege policy (deployer.permissions).
- The plan role, trusting only the repository's pull requests (`repo:OWNER/NAME:pull_request`), with the policy
  for `plan` alone: reads. Two roles, not one role with two subjects: a pull request's workflow (which anyone
  may propose) must never get the deploy role's writes.

Both roles carry the app's tags and `deployer:ci`; their trust and inline policy are compared with the wanted ones
and rewritten when they differ (a second run changes nothing). `remove` deletes the roles that carry our tags,
and the provider only when deployer made it and no role left in the account trusts it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from typing import Any

from deployer.aws import Aws, read_or_none
from deployer.ci import (
    AUDIENCE,
    MAIN_BRANCH,
    OIDC_HOST,
    OIDC_URL,
    deploy_role_name,
    plan_role_name,
    provider_arn,
)
from deployer.config import Config
from deployer.context import check_ours
from deployer.output import untrusted
from deployer.plan import Change, Diff

POLICY_NAME = "deployer"  # the roles' inline policy
CI_TAG = "deployer:ci"  # on the roles and the provider deployer made: "github-deploy", "github-plan", "github"
PROVIDER = "provider"  # GitHub's OIDC identity provider
ROLE = "role"
SHOWN_LIMIT = 200  # of what others wrote (a role's description, its trusted subjects), in a plan's line


@dataclass(frozen=True)
class WantedRole:
    name: str
    purpose: str  # "deploy" or "plan"
    description: str
    trust: dict[str, Any]
    policy: dict[str, Any]
    tags: dict[str, str]


@dataclass(frozen=True)
class Setup:
    """What `ci bootstrap` makes in one account for one stage and repository."""

    provider_arn: str
    provider_tags: dict[str, str]
    roles: tuple[WantedRole, ...]


def trust_policy(provider: str, subject: str) -> dict[str, Any]:
    """Only GitHub's tokens meant for STS (aud) and issued to that repository's ref or event (sub)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{OIDC_HOST}:aud": AUDIENCE, f"{OIDC_HOST}:sub": subject},
                },
            }
        ],
    }


def wanted(config: Config, account_id: str, region: str, repository: str) -> Setup:
    from deployer.permissions import COMMANDS, policy_document

    provider = provider_arn(region, account_id)
    roles = (
        ("deploy", deploy_role_name(config), f"ref:refs/heads/{MAIN_BRANCH}", COMMANDS, f"deploy stage {config.stage}"),
        ("plan", plan_role_name(config), "pull_request", ("plan",), f"plan stage {config.stage} (reads only)"),
    )
    return Setup(
        provider,
        {"deployer:app": config.app_name, CI_TAG: "github"},
        tuple(
            WantedRole(
                name=name,
                purpose=purpose,
                description=f"GitHub Actions of {repository} ({subject}) {doing}: made by deployer ci bootstrap",
                trust=trust_policy(provider, f"repo:{repository}:{subject}"),
                policy=policy_document(config, account_id, region, commands),
                tags={**config.tags, CI_TAG: f"github-{purpose}"},
            )
            for purpose, name, subject, commands, doing in roles
        ),
    )


# ---- reads ----


def _tags(listed: list[dict[str, str]] | None) -> dict[str, str]:
    return {tag["Key"]: tag.get("Value", "") for tag in listed or []}


def _document(value: Any) -> Any:
    """A policy document as IAM hands it back (boto3 decodes it; a string when it could not) in a comparable form."""
    return json.loads(value) if isinstance(value, str) else value


def _same(one: Any, other: Any) -> bool:
    return json.dumps(_document(one), sort_keys=True) == json.dumps(_document(other), sort_keys=True)


def _subjects(trust: Any) -> str:
    """Whom a trust policy lets in, for the plan's line: the token subjects it names."""
    found = [
        str(value)
        for statement in (_document(trust) or {}).get("Statement", [])
        for values in statement.get("Condition", {}).values()
        for key, value in values.items()
        if key.endswith(":sub")
    ]
    return " ".join(found) or "others"


def _read_provider(aws: Aws, arn: str) -> dict[str, Any] | None:
    return read_or_none(lambda: aws.iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn))


def _read_role(aws: Aws, name: str) -> dict[str, Any] | None:
    found = read_or_none(lambda: aws.iam.get_role(RoleName=name))
    return found["Role"] if found else None


def _read_inline(aws: Aws, name: str) -> Any:
    found = read_or_none(lambda: aws.iam.get_role_policy(RoleName=name, PolicyName=POLICY_NAME))
    return found["PolicyDocument"] if found else None


def plan(aws: Aws, config: Config, setup: Setup) -> list[Change[Any]]:
    """What bootstrap would do, by reads only: the provider, then each role."""
    changes: list[Change[Any]] = []
    provider = _read_provider(aws, setup.provider_arn)
    if provider is None:
        changes.append(Change(PROVIDER, OIDC_HOST, "create", observed=setup))
    elif AUDIENCE not in provider.get("ClientIDList", []):
        audiences = provider.get("ClientIDList", [])
        diff = Diff("audiences", " ".join(audiences) or "none", " ".join([*audiences, AUDIENCE]))
        changes.append(Change(PROVIDER, OIDC_HOST, "update", (diff,), observed=setup))
    else:
        changes.append(Change(PROVIDER, OIDC_HOST, "unchanged"))
    for role in setup.roles:
        changes.append(_plan_role(aws, config, role))
    return changes


def _plan_role(aws: Aws, config: Config, wanted_role: WantedRole) -> Change[WantedRole]:
    found = _read_role(aws, wanted_role.name)
    if found is None:
        return Change(ROLE, wanted_role.name, "create", observed=wanted_role)
    tags = _tags(found.get("Tags"))
    check_ours(config, ROLE, wanted_role.name, tags)
    diffs = []
    trust_changed = not _same(found.get("AssumeRolePolicyDocument"), wanted_role.trust)
    if trust_changed:  # the description (naming the repository) follows it
        shown = untrusted(_subjects(found.get("AssumeRolePolicyDocument")), SHOWN_LIMIT)
        diffs.append(Diff("trusts", shown, _subjects(wanted_role.trust)))
    current = _read_inline(aws, wanted_role.name)
    if current is None or not _same(current, wanted_role.policy):
        diffs.append(Diff("policy", "none" if current is None else "another", f"deployer's for {wanted_role.purpose}"))
    if any(tags.get(key) != value for key, value in wanted_role.tags.items()):
        diffs.append(Diff("tags", "missing", "deployer's"))
    if not trust_changed and found.get("Description", "") != wanted_role.description:
        shown = untrusted(found.get("Description", ""), SHOWN_LIMIT)
        diffs.append(Diff("description", shown, wanted_role.description))
    return Change(ROLE, wanted_role.name, "update" if diffs else "unchanged", tuple(diffs), observed=wanted_role)


# ---- writes ----


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def apply(aws: Aws, change: Change[Any]) -> None:
    """Carry out one planned change (create or update; unchanged ones are skipped by the caller)."""
    iam, wanted_thing = aws.iam, change.observed
    if isinstance(wanted_thing, Setup):  # the provider
        setup = wanted_thing
        if change.action == "create":
            iam.create_open_id_connect_provider(
                Url=OIDC_URL, ClientIDList=[AUDIENCE], Tags=_tag_list(setup.provider_tags)
            )  # no thumbprint: IAM trusts GitHub's certificate authority itself
        else:
            iam.add_client_id_to_open_id_connect_provider(
                OpenIDConnectProviderArn=setup.provider_arn, ClientID=AUDIENCE
            )
        return
    role = wanted_thing
    assert isinstance(role, WantedRole), change
    trust = json.dumps(role.trust)
    fields = {diff.field for diff in change.diffs}
    if change.action == "create":
        iam.create_role(
            RoleName=role.name, AssumeRolePolicyDocument=trust, Description=role.description, Tags=_tag_list(role.tags)
        )
        fields = {"policy"}
    if "trusts" in fields:
        iam.update_assume_role_policy(RoleName=role.name, PolicyDocument=trust)
    if "tags" in fields:
        iam.tag_role(RoleName=role.name, Tags=_tag_list(role.tags))
    if fields & {"trusts", "description"}:
        iam.update_role(RoleName=role.name, Description=role.description)
    if "policy" in fields:
        iam.put_role_policy(RoleName=role.name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(role.policy))


# ---- remove ----


@dataclass(frozen=True)
class Removal:
    """A planned step of `ci remove`: the provider's ARN to delete, or why a thing stays."""

    arn: str = ""
    note: str = ""


def plan_removal(aws: Aws, config: Config, account_id: str, region: str) -> list[Change[Removal]]:
    """The stage's CI roles that carry our tags, then the provider if deployer made it and no other role trusts it."""
    changes: list[Change[Removal]] = []
    leaving = set()
    for name in (deploy_role_name(config), plan_role_name(config)):
        found = _read_role(aws, name)
        if found is None:
            changes.append(Change(ROLE, name, "absent"))
            continue
        tags = _tags(found.get("Tags"))
        if not (config.owns(tags) and tags.get("deployer:stage") == config.stage and CI_TAG in tags):
            changes.append(Change(ROLE, name, "keep", observed=Removal(note="deployer did not make it for this stage")))
            continue
        leaving.add(name)
        changes.append(Change(ROLE, name, "delete", observed=Removal()))
    arn = provider_arn(region, account_id)
    provider = _read_provider(aws, arn)
    if provider is None:
        changes.append(Change(PROVIDER, OIDC_HOST, "absent"))
    elif _tags(provider.get("Tags")).get(CI_TAG) != "github":
        changes.append(Change(PROVIDER, OIDC_HOST, "keep", observed=Removal(note="deployer did not make it")))
    else:
        users = [name for name in _roles_trusting(aws, arn) if name not in leaving]
        if users:
            shown = ", ".join(untrusted(user, SHOWN_LIMIT) for user in users[:3]) + (
                f" and {len(users) - 3} more" if len(users) > 3 else ""
            )
            changes.append(Change(PROVIDER, OIDC_HOST, "keep", observed=Removal(note=f"still trusted by {shown}")))
        else:
            changes.append(Change(PROVIDER, OIDC_HOST, "delete", observed=Removal(arn=arn)))
    return changes


def _roles_trusting(aws: Aws, arn: str) -> list[str]:
    """Every role of the account whose trust policy names the provider: any of them keeps it."""
    names = []
    for page in aws.iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            if arn in json.dumps(_document(role.get("AssumeRolePolicyDocument"))):
                names.append(role["RoleName"])
    return names


def remove(aws: Aws, change: Change[Removal]) -> None:
    """Carry out one planned delete; what is already gone is done."""
    from deployer.aws import delete_if_present

    iam = aws.iam
    if change.resource == PROVIDER:
        arn = change.observed.arn if change.observed else ""
        delete_if_present(lambda: iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn))
        return
    name = change.name
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=name):
        for policy in page["PolicyNames"]:
            delete_if_present(partial(iam.delete_role_policy, RoleName=name, PolicyName=policy))
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name):
        for attached in page["AttachedPolicies"]:
            delete_if_present(partial(iam.detach_role_policy, RoleName=name, PolicyArn=attached["PolicyArn"]))
    delete_if_present(lambda: iam.delete_role(RoleName=name))
