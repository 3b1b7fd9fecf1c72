"""A stage's credentials: the boto3 session every client of that stage is made from (cli/common.connect).

- no `profile` nor `role_arn` under [stages.S]: the standard credential chain (AWS_PROFILE, the environment, ...);
- `profile = "prod"`: that profile of ~/.aws/config (AWS_CONFIG_FILE), whatever AWS_PROFILE says;
- `role_arn = "arn:..."`: the standard chain's credentials assume that role (STS AssumeRole, session name
  `deployer-<user>`, the ExternalId if `external_id` is set). botocore's RefreshableCredentials hold the answer and
  call AssumeRole again before it expires (15 minutes before, or 10 at the latest), so a run longer than the
  credentials' hour keeps working. Its clock is the run's (retry.Waits.clock, elapsed time added to the wall
  time at the start): the tests move it without sleeping.

The first AssumeRole is made at once, so that a refusal is one line naming the role (never the external id's
value) before anything else is read or changed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.session
from botocore.config import Config as BotoConfig
from botocore.credentials import CredentialProvider, DeferredRefreshableCredentials
from botocore.exceptions import ClientError, ProfileNotFound

from deployer import output
from deployer.aws import CONNECT_TIMEOUT, READ_TIMEOUT, error_code, error_message, retry_policy
from deployer.config import Config
from deployer.errors import DeployerError, UsageError
from deployer.retry import Waits
from deployer.state import current_user

SESSION_NAME_LIMIT = 64  # characters STS takes in a RoleSessionName
NOT_IN_SESSION_NAMES = re.compile(r"[^\w+=,.@-]", re.ASCII)  # STS's rule: [\w+=,.@-]


def session_name(user: str) -> str:
    """`deployer-<user>`, what CloudTrail shows for every call of the stage: STS's characters only, 64 at most."""
    return f"deployer-{NOT_IN_SESSION_NAMES.sub('-', user)}"[:SESSION_NAME_LIMIT]


def stage_session(config: Config, endpoint_url: str | None, waits: Waits) -> boto3.Session:
    """The session of the stage's account: its profile, or the role it assumes (made with the standard chain's
    credentials), or the standard chain itself."""
    if config.profile is not None:
        return _profile_session(config)
    base = boto3.Session()
    if config.role_arn is None:
        return base
    return _assuming_session(base, config, endpoint_url, waits)


def _profile_session(config: Config) -> boto3.Session:
    try:
        return boto3.Session(profile_name=config.profile)
    except ProfileNotFound:
        where = os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config"
        raise UsageError(
            f"stage {config.stage}: no AWS profile named {config.profile!r} in {where}: add it (`aws configure "
            f"--profile {config.profile}`) or fix [stages.{config.stage}] profile in deploy.toml"
        ) from None


class _AssumedRole(CredentialProvider):
    """A credential provider that hands botocore the role's refreshable credentials, ahead of its own chain."""

    METHOD = "deployer-assume-role"
    CANONICAL_NAME = None

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._credentials


def _assuming_session(base: boto3.Session, config: Config, endpoint_url: str | None, waits: Waits) -> boto3.Session:
    assert config.role_arn is not None
    arguments: dict[str, Any] = {"RoleArn": config.role_arn, "RoleSessionName": session_name(current_user())}
    if config.external_id is not None:
        arguments["ExternalId"] = config.external_id
    sts: list[Any] = []  # made at the first AssumeRole: by then Aws has checked the region and the endpoint

    def assume() -> dict[str, str]:
        if not sts:
            boto_config = BotoConfig(
                retries=retry_policy(base), connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT
            )
            region = config.region or base.region_name
            sts.append(base.client("sts", region_name=region, endpoint_url=endpoint_url, config=boto_config))
        answer = sts[0].assume_role(**arguments)["Credentials"]
        return {
            "access_key": answer["AccessKeyId"],
            "secret_key": answer["SecretAccessKey"],
            "token": answer["SessionToken"],
            "expiry_time": answer["Expiration"].isoformat(),
        }

    credentials = DeferredRefreshableCredentials(
        refresh_using=assume, method=_AssumedRole.METHOD, time_fetcher=run_time(waits)
    )
    core = botocore.session.Session()
    core.get_component("credential_provider").insert_before("env", _AssumedRole(credentials))
    return boto3.Session(botocore_session=core)


def run_time(waits: Waits) -> Callable[[], datetime]:
    """Now, by the run's clock: the wall time at the start plus the time the run's clock says has passed."""
    started, clock_at_start = datetime.now(UTC), waits.clock()
    return lambda: started + timedelta(seconds=waits.clock() - clock_at_start)


def assume_now(session: boto3.Session, config: Config) -> None:
    """Make the stage's first AssumeRole now (nothing for a stage without role_arn): a refusal is one line naming
    the role, and whether an external id was given (never its value)."""
    if config.role_arn is None:
        return
    credentials = session.get_credentials()
    try:
        credentials.get_frozen_credentials()
    except ClientError as error:
        words = error_message(error)
        if config.external_id:
            words = words.replace(config.external_id, "***")
        with_id = " with the external id of deploy.toml" if config.external_id else " (no external id)"
        raise DeployerError(
            f"stage {config.stage}: AWS refused to let your credentials assume {config.role_arn}{with_id}: "
            f"{error_code(error)}: {output.untrusted(output.one_line(words))}; check the role's trust policy "
            f"(and [stages.{config.stage}] role_arn / external_id in deploy.toml)"
        ) from None
