"""A stage per account (deployer/credentials.py) and promotion across accounts (deployer/promotion.py), on two
emulated accounts.

moto files a call under the account of its access key: the keys AssumeRole returns for a role of account
222222222222 make calls that land in 222222222222 (moto needs no such role: its STS grants any AssumeRole, so a
refusal is injected as AWS answers it). The test's own keys ("testing") are the first account's, 123456789012.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.handlers import BUILTIN_HANDLERS
from click.testing import Result
from moto.sts.models import sts_backends
from typer.testing import CliRunner

from deployer.cli import app
from deployer.config import load_config
from deployer.credentials import session_name
from deployer.errors import UsageError
from deployer.resources import artifact
from tests import faults
from tests.account import APP, BUCKET, Account
from tests.support import REGION, Waiting

FIRST = "123456789012"  # moto's default account: the test's own credentials
SECOND = "222222222222"
PROD_ROLE = f"arn:aws:iam::{SECOND}:role/deployer"
PROD_BUCKET = "example-prod-artifacts"
KEY = "v1.0.0/example.zip"
PROD = f"{APP}-prod"


def assumed_session(role_arn: str, **arguments: Any) -> boto3.Session:
    """A session with the keys moto hands out for `role_arn`: its calls land in the role's account."""
    answer = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=role_arn, RoleSessionName="inspector", **arguments
    )
    keys = answer["Credentials"]
    return boto3.Session(
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys["SessionToken"],
        region_name=REGION,
    )


@pytest.fixture
def second_account(aws_account: Account) -> Account:
    """The other account (production's), seen with keys of its own."""
    return Account(assumed_session(f"arn:aws:iam::{SECOND}:role/inspector"))


def with_prod_stage(project: Path, **keys: str) -> Path:
    """[stages.prod] with these keys (the role of the second account and its own bucket, unless given)."""
    keys = {"role_arn": PROD_ROLE, "bucket": PROD_BUCKET, **keys}
    table = "".join(f'{name} = "{value}"\n' for name, value in keys.items() if value)
    with (project / "deploy.toml").open("a") as toml:
        toml.write(f"\n[stages.prod]\n{table}")
    return project


def deployer(project: Path, *arguments: str, expect: int = 0) -> Result:
    """The CLI in-process; stdout and stderr apart. A failure is one error line on stderr, never a traceback."""
    result = CliRunner().invoke(app, [*arguments, "--config", str(project / "deploy.toml")])
    assert result.exit_code == expect, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    if expect in (1, 2):
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0], result.stderr
    return result


@pytest.fixture
def builtin_hook() -> Iterator[Callable[[str, Callable[..., Any]], None]]:
    """Hook every botocore session made from now on (deployer makes its own, the STS client from the standard
    chain's): (event, handler), ahead of moto's stub."""
    added: list[tuple[str, Callable[..., Any]]] = []

    def add(event: str, handler: Callable[..., Any]) -> None:
        BUILTIN_HANDLERS.insert(0, (event, handler))
        added.append((event, handler))

    yield add
    for entry in added:
        BUILTIN_HANDLERS.remove(entry)


def assume_role_calls(account: str = SECOND) -> list[Any]:
    return list(sts_backends[account]["aws"].assumed_roles)


def deployer_sessions(account: str = SECOND) -> list[Any]:
    return [role for role in assume_role_calls(account) if role.session_name != "inspector"]


def state_of(account: Account, bucket: str, stage: str) -> dict[str, Any]:
    body = account.client("s3").get_object(Bucket=bucket, Key=f"deployer-state/{APP}/{stage}/state.json")["Body"]
    return json.loads(body.read())


def buckets(account: Account) -> list[str]:
    return [bucket["Name"] for bucket in account.client("s3").list_buckets()["Buckets"]]


# deploy.toml ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ({"profile": "prod"}, "both profile and role_arn"),
        ({"role_arn": "", "external_id": "abc-123"}, "external_id goes with role_arn"),
        ({"role_arn": "arn:aws:iam::2222:role/deployer"}, "role_arn must be an IAM role ARN"),
        ({"role_arn": "arn:aws:iam::222222222222:user/deployer"}, "role_arn must be an IAM role ARN"),
        ({"profile": "pro d", "role_arn": ""}, "profile must be a profile name"),
        ({"external_id": "bad id!"}, "external_id must be 2-1224"),
        ({"region": "moon-1"}, "region must be an AWS region"),
        ({"bucket": "Not_A_Bucket"}, "not a valid S3 bucket name"),
        ({"region": "eu-west-1", "bucket": ""}, "set [stages.prod] bucket too"),
    ],
)
def test_a_stages_account_keys_are_checked_before_any_call(project: Path, keys: dict[str, str], words: str) -> None:
    with_prod_stage(project, **keys)
    with pytest.raises(UsageError, match=re.escape(words)) as refused:
        load_config(project / "deploy.toml", "prod")
    assert "bad id!" not in str(refused.value)  # an external id is never repeated, not even a wrong one
    # Any stage's table is checked: `up` of the default stage is refused as well, one line, exit 2, no call.
    assert words in deployer(project, "status", expect=2).stderr


def test_a_stage_takes_its_own_region_and_bucket_and_account_and_the_others_keep_the_apps(project: Path) -> None:
    with_prod_stage(project, region="eu-west-1", external_id="the-right-id")
    prod, default = load_config(project / "deploy.toml", "prod"), load_config(project / "deploy.toml")
    assert (prod.region, prod.bucket, prod.role_arn, prod.external_id) == (
        "eu-west-1",
        PROD_BUCKET,
        PROD_ROLE,
        "the-right-id",
    )
    assert (default.region, default.bucket, default.role_arn, default.profile) == (REGION, BUCKET, None, None)
    assert "the-right-id" not in repr(prod)  # a --debug traceback shows the configuration's repr


def test_the_session_name_is_deployer_and_the_user_in_stss_characters() -> None:
    assert session_name("alice") == "deployer-alice"
    assert session_name("jürgen müller\n") == "deployer-j-rgen-m-ller-"
    assert session_name("x" * 100) == "deployer-" + "x" * 55


# A stage in another account --------------------------------------------------------------------------------------


def test_a_stage_with_a_role_deploys_into_that_roles_account_and_nothing_into_the_callers(
    project: Path, aws_account: Account, second_account: Account
) -> None:
    with_prod_stage(project, external_id="the-right-id")
    deployer(project, "up", "--version", "1.0.0", "--stage", "prod")

    stack = second_account.assert_stack(KEY, stage="prod", name=PROD, bucket=PROD_BUCKET)
    assert stack["function"]["FunctionArn"].split(":")[4] == SECOND
    assert buckets(second_account) == [PROD_BUCKET]  # its artifact and its shared state live there
    assert state_of(second_account, PROD_BUCKET, "prod")["function_name"] == PROD
    assert aws_account.is_empty() and buckets(aws_account) == []
    # AssumeRole as AWS saw it: the deployer's session name, the external id given.
    [assumed] = deployer_sessions()
    assert (assumed.role_arn, assumed.external_id) == (PROD_ROLE, "the-right-id")
    assert assumed.session_name.startswith("deployer-")


def test_status_plan_invoke_logs_rollback_and_down_of_that_stage_work_in_its_account(
    project: Path, aws_account: Account, second_account: Account
) -> None:
    with_prod_stage(project)
    deployer(project, "up", "--version", "1.0.0", "--stage", "prod")

    status = json.loads(deployer(project, "status", "--stage", "prod", "--json").stdout)
    assert (status["function_name"], status["bucket"], status["version"]) == (PROD, PROD_BUCKET, "1.0.0")
    assert deployer(project, "plan", "--version", "1.0.0", "--stage", "prod").exit_code == 0  # nothing to change
    assert deployer(project, "invoke", "--stage", "prod").stdout == "<p>Hello world!</p>"
    logs = second_account.client("logs")
    logs.create_log_stream(logGroupName=f"/aws/lambda/{PROD}", logStreamName="2026/01/01/[1]abc")
    logs.put_log_events(
        logGroupName=f"/aws/lambda/{PROD}",
        logStreamName="2026/01/01/[1]abc",
        logEvents=[{"timestamp": int(time.time() * 1000), "message": "written in the second account"}],
    )
    assert "written in the second account" in deployer(project, "logs", "--stage", "prod").stdout
    # The same commands on the default stage see the first account, where nothing is deployed.
    assert json.loads(deployer(project, "status", "--json").stdout)["function_name"] is None
    assert aws_account.is_empty()
    # rollback, unlock and down too: down empties the second account.
    deployer(project, "rollback", "1.0.0", "--stage", "prod")
    deployer(project, "unlock", "--stage", "prod", "--yes")
    deployer(project, "down", "--stage", "prod", "--yes")
    assert second_account.is_empty()
    # Each command assumed the role once: seven commands, and the `up` before them.
    assert len(deployer_sessions()) == 8


def test_a_refused_assume_role_is_one_line_naming_the_role_not_the_external_id_and_changes_nothing(
    project: Path,
    aws_account: Account,
    second_account: Account,
    builtin_hook: Callable[[str, Callable[..., Any]], None],
) -> None:
    """The role's trust policy asks for another external id: AWS answers AccessDenied."""

    def trust_policy(request: Any, **_: Any) -> Any:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        if "ExternalId=the-right-id" in body:
            return None
        message = f"User: arn:aws:iam::{FIRST}:user/ci is not authorized to perform: sts:AssumeRole on {PROD_ROLE}"
        return faults.refuse(request, "sts", "AccessDenied", message, 403)

    builtin_hook("before-send.sts.AssumeRole", trust_policy)
    with_prod_stage(project, external_id="a-wrong-id")

    stderr = deployer(project, "up", "--version", "1.0.0", "--stage", "prod", expect=1).stderr
    assert PROD_ROLE in stderr and "external id" in stderr and "AccessDenied" in stderr
    assert "a-wrong-id" not in stderr
    assert deployer_sessions() == []
    assert second_account.is_empty() and buckets(second_account) == []
    assert aws_account.is_empty() and buckets(aws_account) == []
    # status reads through the same credentials: refused the same way.
    assert PROD_ROLE in deployer(project, "status", "--stage", "prod", expect=1).stderr


def test_the_roles_credentials_are_assumed_again_before_they_expire_on_a_long_run(
    project: Path,
    second_account: Account,
    waiting: Waiting,
    builtin_hook: Callable[[str, Callable[..., Any]], None],
) -> None:
    """A run that outlasts the credentials' hour (the run's clock jumps 55 minutes after the function is made)
    assumes the role again, once, and carries on in the same account: no sleeping."""
    passed = [0.0]  # seconds the run's clock is ahead of the monotonic clock
    waiting.clock = lambda: time.monotonic() + passed[0]

    def expires_in_an_hour_of_the_runs_clock(parsed: dict[str, Any], **_: Any) -> None:
        if "Credentials" in parsed:  # moto's expiry is by the wall clock: AWS's would be by the run's
            parsed["Credentials"]["Expiration"] = datetime.now(UTC) + timedelta(seconds=passed[0] + 3600)

    def an_hour_later(**_: Any) -> None:
        passed[0] += 55 * 60

    builtin_hook("after-call.sts.AssumeRole", expires_in_an_hour_of_the_runs_clock)
    builtin_hook("after-call.lambda.CreateFunction", an_hour_later)
    with_prod_stage(project)

    deployer(project, "up", "--version", "1.0.0", "--stage", "prod")

    assert len(deployer_sessions()) == 2
    second_account.assert_stack(KEY, stage="prod", name=PROD, bucket=PROD_BUCKET)


def test_a_stage_with_a_profile_uses_that_profile(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws_account: Account, second_account: Account
) -> None:
    """The profile holds keys of a user of the second account: the stage deploys there, whatever AWS_PROFILE says."""
    iam = second_account.client("iam")
    iam.create_user(UserName="ci")
    keys = iam.create_access_key(UserName="ci")["AccessKey"]
    config_file = tmp_path / "aws-config"
    config_file.write_text(
        f"[profile production]\naws_access_key_id = {keys['AccessKeyId']}\n"
        f"aws_secret_access_key = {keys['SecretAccessKey']}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_file))
    with_prod_stage(project, role_arn="", profile="production")

    deployer(project, "up", "--version", "1.0.0", "--stage", "prod")

    second_account.assert_stack(KEY, stage="prod", name=PROD, bucket=PROD_BUCKET)
    assert aws_account.is_empty() and buckets(aws_account) == []


def test_a_stage_with_an_unknown_profile_is_one_line_naming_it(project: Path, aws_account: Account) -> None:
    with_prod_stage(project, role_arn="", profile="nowhere")
    stderr = deployer(project, "up", "--version", "1.0.0", "--stage", "prod", expect=2).stderr
    assert "no AWS profile named 'nowhere'" in stderr
    assert aws_account.is_empty() and buckets(aws_account) == []


# Promotion across accounts -------------------------------------------------------------------------------------


@pytest.fixture(params=["one put", "multipart"])
def transfer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The artifact copied in one PutObject (the example's zip), or by a multipart upload (as a large one is)."""
    if request.param == "multipart":
        monkeypatch.setattr(artifact, "MULTIPART_THRESHOLD", 1)
    return str(request.param)


def test_promote_to_a_stage_of_another_account_copies_the_very_bytes_and_deploys_them(
    project: Path, aws_account: Account, second_account: Account, transfer: str
) -> None:
    with_prod_stage(project)
    deployer(project, "up", "--version", "1.0.0")  # stage test, the first account

    deployer(project, "promote", "1.0.0", "--stage", "prod")

    tested = aws_account.client("s3").get_object(Bucket=BUCKET, Key=KEY)
    shipped = second_account.client("s3").get_object(Bucket=PROD_BUCKET, Key=KEY)
    body = tested["Body"].read()
    assert shipped["Body"].read() == body
    assert shipped["Metadata"] == tested["Metadata"]
    assert shipped["Metadata"]["sha256"] == hashlib.sha256(body).hexdigest()
    second_account.assert_stack(KEY, stage="prod", name=PROD, bucket=PROD_BUCKET)  # runs those bytes
    aws_account.assert_stack(KEY)  # the source stage is as it was
    assert [function["FunctionName"] for function in aws_account.functions()] == [APP]
    # Both histories say so: the source's (in its account) and the target's (in its own).
    source_entry = state_of(aws_account, BUCKET, "test")["history"][-1]
    target_entry = state_of(second_account, PROD_BUCKET, "prod")["history"][-1]
    assert (source_entry["action"], source_entry["version"]) == ("promoted to prod", "1.0.0")
    assert (target_entry["action"], target_entry["version"]) == ("promote from test", "1.0.0")


def test_promote_again_finds_the_copy_and_copies_nothing(
    project: Path, aws_account: Account, second_account: Account, builtin_hook: Callable[..., None]
) -> None:
    with_prod_stage(project)
    deployer(project, "up", "--version", "1.0.0")
    deployer(project, "promote", "1.0.0", "--stage", "prod")
    reads: list[str] = []
    builtin_hook("before-parameter-build.s3.GetObject", lambda params, **_: reads.append(params["Key"]))

    deployer(project, "promote", "1.0.0", "--stage", "prod")

    assert KEY not in reads  # the artifact's bytes were not read again (state.json is)
    second_account.assert_stack(KEY, stage="prod", name=PROD, bucket=PROD_BUCKET)


def test_promote_of_bytes_changed_since_they_were_published_is_refused_and_leaves_the_target_untouched(
    project: Path, aws_account: Account, second_account: Account, transfer: str
) -> None:
    with_prod_stage(project)
    deployer(project, "up", "--version", "1.0.0")
    s3 = aws_account.client("s3")
    published = s3.head_object(Bucket=BUCKET, Key=KEY)["Metadata"]
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"not the tested zip", Metadata=published)  # sha256 kept

    stderr = deployer(project, "promote", "1.0.0", "--stage", "prod", expect=1).stderr

    assert "does not hold the bytes its version was published with" in stderr
    target = second_account.client("s3")
    assert target.list_objects_v2(Bucket=PROD_BUCKET, Prefix="v").get("KeyCount") == 0
    assert target.list_multipart_uploads(Bucket=PROD_BUCKET).get("Uploads", []) == []
    assert second_account.is_empty()
    assert all(entry["action"] != "promoted to prod" for entry in state_of(aws_account, BUCKET, "test")["history"])


def test_promote_between_stages_sharing_a_bucket_copies_nothing(project: Path, aws_account: Account) -> None:
    """Same account, same bucket: as before, the object there is deployed; nothing is read to be copied."""
    deployer(project, "up", "--version", "1.0.0")
    deployer(project, "promote", "1.0.0", "--stage", "prod")
    aws_account.assert_stack(KEY, stage="prod", name=PROD)
    assert state_of(aws_account, BUCKET, "prod")["history"][-1]["action"] == "promote"
    assert state_of(aws_account, BUCKET, "test")["history"][-1]["action"] == "up"


def test_promote_from_names_the_source_stage_here_from_the_second_account_back_to_the_first(
    project: Path, aws_account: Account, second_account: Account
) -> None:
    with_prod_stage(project)
    deployer(project, "up", "--version", "1.0.0", "--stage", "prod")
    shutil.rmtree(project / "dist")  # promote builds nothing and uploads nothing of its own: what it ships is copied

    deployer(project, "promote", "1.0.0", "--stage", "test", "--from", "prod")

    aws_account.assert_stack(KEY)  # copied into the first account's bucket, deployed there
    assert state_of(second_account, PROD_BUCKET, "prod")["history"][-1]["action"] == "promoted to test"
    assert state_of(aws_account, BUCKET, "test")["history"][-1]["action"] == "promote from prod"


def test_a_source_stage_locked_by_another_run_leaves_its_history_without_the_promote_and_says_so(
    project: Path, aws_account: Account, second_account: Account
) -> None:
    """The source's history is written under its lock, as any write; prod is deployed by then, so the promote
    succeeds and a warning says what is missing."""
    with_prod_stage(project)
    deployer(project, "up", "--version", "1.0.0")
    holder = {"user": "ci", "host": "runner", "pid": 1, "command": "up --version 1.1.0", "since": "now", "id": "x"}
    lock = f"deployer-state/{APP}/test/lock.json"
    aws_account.client("s3").put_object(Bucket=BUCKET, Key=lock, Body=json.dumps(holder).encode())

    stderr = deployer(project, "promote", "1.0.0", "--stage", "prod").stderr

    assert (
        "warning:" in stderr and "stage test's history could not say so" in stderr and "`up --version 1.1.0`" in stderr
    )
    second_account.assert_stack(KEY, stage="prod", name=PROD, bucket=PROD_BUCKET)
    assert state_of(aws_account, BUCKET, "test")["history"][-1]["action"] == "up"


def test_a_large_artifact_is_copied_a_part_at_a_time_never_read_whole(
    project: Path,
    make_run: Callable[..., Any],
    aws_account: Account,
    second_account: Account,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """40 MB go across in S3's parts: no read of the source's body asks for more than the managed transfer's
    threshold (16 MB, its first read), the rest in parts of 8 MB."""
    from deployer import promotion

    with_prod_stage(project)
    body = random.Random(0).randbytes(40 * 1024 * 1024)
    digest = hashlib.sha256(body).hexdigest()
    metadata = {"app": APP, "sha256": digest, "content-sha256": digest}
    s3 = aws_account.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=body, Metadata=metadata)
    second_account.client("s3").create_bucket(Bucket=PROD_BUCKET)
    reads: list[int] = []
    read = promotion.VerifiedStream.read

    def counted(self: promotion.VerifiedStream, amount: int | None = -1) -> bytes:
        chunk = read(self, amount)
        reads.append(len(chunk))
        return chunk

    monkeypatch.setattr(promotion.VerifiedStream, "read", counted)
    source = make_run("1.0.0").target
    target = make_run("1.0.0", stage="prod", session=assumed_session(PROD_ROLE))

    assert promotion.ship(source, target).sha256 == digest

    copied = second_account.client("s3").get_object(Bucket=PROD_BUCKET, Key=KEY)
    assert copied["Metadata"]["sha256"] == digest and hashlib.sha256(copied["Body"].read()).hexdigest() == digest
    assert sum(reads) == len(body) and max(reads) <= artifact.MULTIPART_THRESHOLD < len(body)
    assert len([size for size in reads if size]) >= 4
