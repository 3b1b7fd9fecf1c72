"""Deploying from CI: `deployer ci github` writes a GitHub Actions workflow (github.py), `deployer ci bootstrap`
and `ci remove` make and undo its account side, GitHub's OIDC provider and two roles (bootstrap.py).

The names both sides agree on live here: the roles the workflow assumes are the ones bootstrap makes.
Standard library only: `deployer --help` stays fast.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from deployer.errors import UsageError

if TYPE_CHECKING:
    from deployer.config import Config

MAIN_BRANCH = "main"  # pushes to it deploy; the deploy role trusts only its ref
OIDC_HOST = "token.actions.githubusercontent.com"
OIDC_URL = f"https://{OIDC_HOST}"
AUDIENCE = "sts.amazonaws.com"  # what aws-actions/configure-aws-credentials asks GitHub's token to be for
ROLE_NAME_LIMIT = 64  # IAM's

# GitHub's rules: an owner (user or organisation) is 1-39 letters, digits or single hyphens, not at either end;
# a repository name is 1-100 letters, digits, '.', '_' or '-', and neither "." nor "..".
OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
REPOSITORY = re.compile(r"[A-Za-z0-9._-]{1,100}")


def check_repository(text: str) -> str:
    """OWNER/NAME as GitHub allows it, or one UsageError line."""
    owner, slash, name = text.partition("/")
    if not slash or not OWNER.fullmatch(owner) or not REPOSITORY.fullmatch(name) or name in (".", ".."):
        shown = text[:120].encode("unicode_escape").decode("ascii")
        raise UsageError(
            f"--repo {shown!r} is not a GitHub repository: give OWNER/NAME (owner: letters, digits, single hyphens, "
            "at most 39; name: letters, digits, '.', '_', '-', at most 100), e.g. --repo octo-org/my-app"
        )
    return text


def deploy_role_name(config: Config) -> str:
    """The role pushes to the main branch assume: `up` on the stage."""
    return _role_name(config, "deploy")


def plan_role_name(config: Config) -> str:
    """The role pull requests assume: `plan` only, reads."""
    return _role_name(config, "plan")


def _role_name(config: Config, purpose: str) -> str:
    name = f"{config.function_name}-github-{purpose}"
    if len(name) > ROLE_NAME_LIMIT:
        raise UsageError(
            f"the CI role name {name} is over IAM's {ROLE_NAME_LIMIT} characters: choose a shorter [app] name or stage"
        )
    return name


def partition(region: str) -> str:
    """The ARN partition of a region (aws-cn for China, aws-us-gov for GovCloud, else aws)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def role_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:{partition(region)}:iam::{account_id}:role/{name}"


def provider_arn(region: str, account_id: str) -> str:
    return f"arn:{partition(region)}:iam::{account_id}:oidc-provider/{OIDC_HOST}"
