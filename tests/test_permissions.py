"""deployer/permissions.py: the table of every AWS call per command cannot drift from the calls the commands make,
`deployer policy` prints the stage's policy from it, and a user holding exactly that policy can deploy, while one
lacking any single action of it is stopped with one line naming that action (tests/enforcement.py evaluates it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from deployer.config import Config, load_config
from deployer.permissions import CALLS, COMMANDS, iam_action, needed, policy_document, rows_for
from tests.account import APP, BUCKET, Account
from tests.enforcement import ACCOUNT, NEEDS_LINE, Enforcer, enforcing, without
from tests.support import REGION, REPO, run_in_process

# The flows the proof runs, in order: (stage, arguments, exit code). Every command of `deployer policy` is in it:
# a fresh up, a new version as a canary, then all of it, a rollback, a plan, logs, a promote to another stage, and
# both stages' down.
FLOW: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("test", ("up", "--version", "1.0.0"), 0),
    ("test", ("up", "--version", "1.1.0", "--canary", "10"), 0),
    ("test", ("up", "--version", "1.1.0"), 0),
    ("test", ("rollback", "1.0.0"), 0),
    ("test", ("plan", "--version", "1.1.0"), 3),
    ("test", ("logs", "--since", "1h"), 0),
    ("prod", ("promote", "1.1.0", "--stage", "prod"), 0),
    ("prod", ("down", "--yes", "--stage", "prod"), 0),
    ("test", ("down", "--yes"), 0),
)
# The front doors ([api] type) this configuration knows: the REST API, and an HTTP API and a function URL where
# deploy.toml has [api] type.
FRONT_DOORS = ("rest", "http", "url") if "api_type" in {field.name for field in fields(Config)} else ("rest",)
NEW_VERSION_AT = 1  # the source changes before this step: 1.1.0 is other code
# Steps a step needs run first (beyond the first up): the rollback needs 1.1.0 live, the promote 1.1.0's artifact,
# the prod stage's down the promote.
PREREQUISITES = {3: (1, 2), 6: (1,), 7: (6,)}


def _default_policy(stage: str = "test") -> dict[str, Any]:
    return policy_document(load_config(REPO / "deploy.toml", stage), ACCOUNT, REGION)


def _common_path_actions(config: Config | None = None) -> list[str]:
    """The actions of the stage's policy that the flow's commands make on every run (rows without `when`)."""
    config = config or load_config(REPO / "deploy.toml", "test")
    actions = {iam_action(row.service, name) for row in rows_for(config) if row.when is None for name in row.operations}
    return sorted(actions)


def _actions(policy: dict[str, Any]) -> list[str]:
    return [action for statement in policy["Statement"] for action in statement["Action"]]


def _deployer(project: Path, *arguments: str) -> tuple[int, str, str]:
    result = run_in_process(project, *arguments)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


def _change_the_source(project: Path) -> None:
    main = project / "function" / "main.py"
    main.write_text(main.read_text() + "\n# release 1.1.0\n")


@pytest.fixture
def enforcer(aws_account: Account) -> Iterator[Enforcer]:
    with enforcing(Enforcer(region=REGION)) as enforcer:
        yield enforcer


def _printed_policies(project: Path) -> dict[str, dict[str, Any]]:
    """What `deployer policy --json` prints for each stage (the account asked of STS)."""
    policies = {}
    for stage in ("test", "prod"):
        code, stdout, stderr = _deployer(project, "policy", "--json", "--stage", stage)
        assert code == 0, stderr
        policies[stage] = json.loads(stdout)
    return policies


# ---- deployer policy --------------------------------------------------------------------------------------------


def test_policy_is_scoped_to_the_stage_and_its_account(project: Path, aws_account: Account) -> None:
    policies = _printed_policies(project)
    assert policies["test"] == _default_policy("test") and policies["prod"] == _default_policy("prod")
    statements = {statement["Sid"]: statement for statement in policies["prod"]["Statement"]}
    function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{APP}-prod"
    assert statements["Function"]["Resource"] == [function, f"{function}:*"]
    assert statements["Role"]["Resource"] == f"arn:aws:iam::{ACCOUNT}:role/{APP}-prod-lambda-exec"
    assert statements["RolePassedToService"] == {
        "Sid": "RolePassedToService",
        "Effect": "Allow",
        "Action": ["iam:PassRole"],
        "Resource": f"arn:aws:iam::{ACCOUNT}:role/{APP}-prod-lambda-exec",
        "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
    }
    assert statements["State"]["Resource"] == f"arn:aws:s3:::{BUCKET}/deployer-state/{APP}/prod/*"
    assert statements["Artifacts"]["Resource"] == f"arn:aws:s3:::{BUCKET}/v*/example.zip"
    assert statements["RestApiPartsResourceTag"]["Condition"] == {"StringEquals": {"aws:ResourceTag/deployer:app": APP}}
    every_resource = [r for s in policies["prod"]["Statement"] for r in json.dumps(s["Resource"]).split(",")]
    assert all(f"{APP}-prod" in r or APP not in r or "/prod/" in r for r in every_resource)  # no other stage's


def test_policy_without_json_summarises_on_stderr_and_prints_the_document_on_stdout(
    project: Path, aws_account: Account
) -> None:
    code, stdout, stderr = _deployer(project, "policy", "--account", "111122223333")
    assert code == 0
    assert json.loads(stdout)["Statement"][0]["Effect"] == "Allow"
    assert f"Least-privilege policy for stage test in 111122223333 ({REGION}):" in stderr
    assert f"on arn:aws:lambda:{REGION}:111122223333:function:{APP}, " in stderr


def test_policy_with_account_makes_no_aws_call(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")  # no credentials and no emulator: any call would fail
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, stdout, stderr = _deployer(project, "policy", "--json", "--account", "111122223333")
    assert code == 0, stderr
    assert "arn:aws:iam::111122223333:role/ServerlessExample-lambda-exec" in stdout


@pytest.mark.parametrize("account", ["12345", "abcdefghijkl", "1234567890123"])
def test_a_bad_account_is_one_line_and_exit_2(project: Path, account: str) -> None:
    code, stdout, stderr = _deployer(project, "policy", "--account", account)
    assert (code, stdout) == (2, "")
    assert stderr.strip().splitlines() == [f"error: --account '{account}' is not a 12-digit AWS account ID"]


def test_the_plan_policy_reads_only() -> None:
    config = load_config(REPO / "deploy.toml", "test")
    actions = {a for s in policy_document(config, ACCOUNT, REGION, ("plan",))["Statement"] for a in s["Action"]}
    reads = ("Get", "List", "Describe", "Head")
    assert actions and all(action.split(":")[1].startswith(reads) or action == "apigateway:GET" for action in actions)
    assert "s3:GetObject" in actions and "lambda:GetFunction" in actions


def test_a_stage_in_its_own_account_lets_other_credentials_assume_its_role_and_no_other(project: Path) -> None:
    """CI's role (ci bootstrap's) runs every command of a [stages.S] role_arn stage by first assuming that role."""
    role = "arn:aws:iam::222222222222:role/deployer-prod"
    config_path = project / "deploy.toml"
    config_path.write_text(
        config_path.read_text() + f'\n[stages.prod]\nrole_arn = "{role}"\nbucket = "prod-artifacts"\n'
    )
    for commands in (COMMANDS, ("plan",)):
        statements = policy_document(load_config(config_path, "prod"), ACCOUNT, REGION, commands)["Statement"]
        assuming = [statement for statement in statements if "sts:AssumeRole" in statement["Action"]]
        assert [(statement["Action"], statement["Resource"]) for statement in assuming] == [(["sts:AssumeRole"], role)]
    test_stage = policy_document(load_config(config_path, "test"), ACCOUNT, REGION)["Statement"]
    assert not [statement for statement in test_stage if "sts:AssumeRole" in statement["Action"]]


# ---- an AccessDenied, as what is needed ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "operation", "message", "params", "expected"),
    [
        (  # Lambda names the ARN
            "lambda",
            "GetFunction",
            f"User: arn:aws:iam::{ACCOUNT}:user/ci is not authorized to perform: lambda:GetFunction on resource: "
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{APP} because no identity-based policy allows the "
            "lambda:GetFunction action",
            {"FunctionName": APP},
            ("lambda:GetFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{APP}"),
        ),
        (  # IAM names the role by name; CreateFunction's refusal is for iam:PassRole
            "lambda",
            "CreateFunction",
            "User: arn:aws:iam::1:user/ci is not authorized to perform: iam:PassRole on resource: role r because no "
            "identity-based policy allows the iam:PassRole action",
            {"FunctionName": APP},
            ("iam:PassRole", "role r"),
        ),
        (  # S3 quotes the ARN
            "s3",
            "PutObject",
            'User: arn:aws:iam::1:user/ci is not authorized to perform: s3:PutObject on resource: "arn:aws:s3:::b/k" '
            "because no identity-based policy allows the s3:PutObject action",
            {"Bucket": "b", "Key": "k"},
            ("s3:PutObject", "arn:aws:s3:::b/k"),
        ),
        (  # a HEAD has no message: the call's own object; S3 names its action otherwise
            "s3",
            "HeadObject",
            "",
            {"Bucket": "b", "Key": "v1/app.zip"},
            ("s3:GetObject", "arn:aws:s3:::b/v1/app.zip"),
        ),
        (  # API Gateway's action is the method
            "apigateway",
            "CreateDeployment",
            "Forbidden",
            {"restApiId": "abc"},
            ("apigateway:POST", f"arn:aws:apigateway:{REGION}::/restapis/abc"),
        ),
        (  # a qualified call, account unknown
            "lambda",
            "Invoke",
            "",
            {"FunctionName": APP, "Qualifier": "3"},
            ("lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:*:function:{APP}:3"),
        ),
    ],
)
def test_a_refusal_names_the_action_and_the_resource(
    service: str, operation: str, message: str, params: dict[str, Any], expected: tuple[str, str]
) -> None:
    assert needed(service, operation, message, params, REGION) == expected


def test_a_refusal_is_one_line_naming_what_is_needed_and_the_run_stops_there(
    project: Path, aws_account: Account, enforcer: Enforcer
) -> None:
    enforcer.policy = without(_default_policy(), "iam:CreateRole")
    code, stdout, stderr = _deployer(project, "up", "--version", "1.0.0")
    role = f"arn:aws:iam::{ACCOUNT}:role/{APP}-lambda-exec"
    assert (code, stdout) == (1, "")
    assert stderr.strip().splitlines()[-1] == (
        f"error: AWS refused CreateRole (AccessDenied): needs iam:CreateRole on {role}; grant it to these "
        "credentials (`deployer policy` prints every permission a deploy of this stage needs)"
    )
    assert aws_account.roles() == [] and aws_account.functions() == []


# ---- the table cannot drift, and the printed policy is enough -------------------------------------------------


def _recording(seen: dict[str, set[tuple[str, str]]], current: list[str]) -> tuple[str, Any]:
    """A before-call handler adding each (service, operation) to seen[current[0]]."""

    def record(model: Any, **_: Any) -> None:
        seen[current[0]].add((model.service_model.service_name, model.name))

    return ("before-call", record)


def _issue_requested_certificates(**_: Any) -> None:
    """ACM issues what deployer requested once its validation record is in DNS: here, at once."""
    from moto.acm.models import acm_backends

    for bundle in acm_backends[ACCOUNT][REGION]._certificates.values():
        if bundle.status == "PENDING_VALIDATION":
            bundle.status = "ISSUED"


def test_a_stage_with_a_domain_needs_only_its_rows_and_the_printed_policy_is_enough(
    project: Path, aws_account: Account, enforcer: Enforcer
) -> None:
    from botocore.handlers import BUILTIN_HANDLERS

    aws_account.client("route53").create_hosted_zone(Name="example.com", CallerReference="example.com")
    text = (project / "deploy.toml").read_text()
    (project / "deploy.toml").write_text(text.replace("[api]\n", '[api]\ndomain = "api.example.com"\n', 1))
    enforcer.policy = _printed_policies(project)["test"]
    seen: dict[str, set[tuple[str, str]]] = {command: set() for command in COMMANDS}
    current = ["?"]
    entries = [_recording(seen, current), ("before-call.acm.DescribeCertificate", _issue_requested_certificates)]
    BUILTIN_HANDLERS.extend(entries)
    try:
        for arguments, expected in (
            (("up", "--version", "1.0.0"), 0),
            (("plan", "--version", "1.0.0"), 0),
            (("down", "--yes"), 0),
        ):
            current[0] = arguments[0]
            code, stdout, stderr = _deployer(project, *arguments)
            assert code == expected, stderr
            if arguments[0] == "up":
                assert stdout.splitlines()[-1] == "https://api.example.com"
    finally:
        for entry in entries:
            BUILTIN_HANDLERS.remove(entry)
    assert enforcer.refused == []
    assert {request.action.split(":")[0] for request in enforcer.checked} >= {"acm", "route53", "apigateway"}
    config = load_config(project / "deploy.toml", "test")
    for command, calls in seen.items():
        listed = {(row.service, name) for row in rows_for(config, (command,)) for name in row.operations}
        assert calls - listed == set(), f"`{command}` makes calls the table does not list for it"
    assert aws_account.client("apigateway").get_domain_names()["items"] == []


def test_a_stage_with_secrets_reads_them_under_its_policy_and_is_stopped_without_it(
    project: Path, aws_account: Account, enforcer: Enforcer
) -> None:
    aws_account.client("ssm").put_parameter(Name="/serverless/db", Value="s3cr3t-value", Type="SecureString")
    with (project / "deploy.toml").open("a") as toml:
        toml.write('\n[function.secrets]\nDB_PASSWORD = "ssm:/serverless/db"\n')
    policy = _printed_policies(project)["test"]
    parameter = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/serverless/db"
    assert {"Sid": "Parameters", "Effect": "Allow", "Action": ["ssm:GetParameter"], "Resource": parameter} in policy[
        "Statement"
    ]
    enforcer.policy = without(policy, "ssm:GetParameter")
    code, _, stderr = _deployer(project, "up", "--version", "1.0.0")
    lines = stderr.strip().splitlines()
    assert code == 1 and lines[-1].startswith("error: secret DB_PASSWORD: reading ssm:/serverless/db was refused")
    assert f"needs ssm:GetParameter on {parameter};" in lines[-1]
    assert aws_account.functions() == []  # nothing changed
    enforcer.policy = policy
    code, _, stderr = _deployer(project, "up", "--version", "1.0.0")
    assert code == 0, stderr
    assert "s3cr3t-value" not in stderr
    configuration = aws_account.client("lambda").get_function_configuration(FunctionName=APP, Qualifier="test")
    assert configuration["Environment"]["Variables"]["DB_PASSWORD"] == "s3cr3t-value"


# ---- proof by enforcement -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("door", FRONT_DOORS)
def test_the_flow_as_a_user_holding_exactly_the_printed_policy_makes_only_calls_the_table_lists(
    project: Path, aws_account: Account, enforcer: Enforcer, door: str
) -> None:
    """FLOW on each front door the configuration knows, as a user holding the printed policy of each stage: every
    command succeeds, every (service, operation) the clients send is in the table for its command, and every
    common-path row (no `when`) of the stage's policy is called by one of its commands."""
    from botocore.handlers import BUILTIN_HANDLERS

    if door != "rest":
        text = (project / "deploy.toml").read_text()
        (project / "deploy.toml").write_text(text.replace("[api]\n", f'[api]\ntype = "{door}"\n', 1))
    policies = _printed_policies(project)
    seen: dict[str, set[tuple[str, str]]] = {command: set() for command in COMMANDS}
    current = ["?"]
    entry = _recording(seen, current)
    BUILTIN_HANDLERS.append(entry)
    try:
        for index, (stage, arguments, expected) in enumerate(FLOW):
            if index == NEW_VERSION_AT:
                _change_the_source(project)
            enforcer.policy, current[0] = policies[stage], arguments[0]
            code, _, stderr = _deployer(project, *arguments)
            assert code == expected, stderr
            if index == 0:
                assert [function["FunctionName"] for function in aws_account.functions()] == [APP]
            if arguments[0] == "promote":
                assert aws_account.alias(f"{APP}-prod", "prod")["FunctionVersion"] == "1"
    finally:
        BUILTIN_HANDLERS.remove(entry)
    assert enforcer.refused == []
    config = load_config(project / "deploy.toml", "test")
    for command, calls in seen.items():
        listed = {(row.service, name) for row in rows_for(config, (command,)) for name in row.operations}
        assert calls - listed == set(), f"`{command}` makes calls the table does not list for it"
    made = set().union(*seen.values())
    for row in rows_for(config):
        if row.when is None and row.operations != ("PassRole",):  # PassRole: a permission CreateFunction needs
            assert {(row.service, name) for name in row.operations} <= made, f"no command made {row}"
    used = {request.action for request in enforcer.checked}
    assert set(_common_path_actions(config)) <= used <= set(_actions(policies["test"]) + _actions(policies["prod"]))
    assert aws_account.functions() == [] and aws_account.rest_apis() == [] and aws_account.roles() == []


@pytest.mark.parametrize("action", _common_path_actions())
def test_without_any_one_action_the_first_command_needing_it_fails_with_one_line_naming_it(
    project: Path, aws_account: Account, enforcer: Enforcer, action: str
) -> None:
    """Only the steps of FLOW whose command the table says makes `action` run (and what they need first): the first
    up with the whole policy unless up needs the action, then each with the policy less the action."""
    policies = {stage: _default_policy(stage) for stage in ("test", "prod")}
    users = {command for row in CALLS if _has(row, action) for command in row.commands}
    steps = {0} | {index for index, (_, arguments, _) in enumerate(FLOW) if arguments[0] in users}
    while needed := {before for index in steps for before in PREREQUISITES.get(index, ())} - steps:
        steps |= needed
    for index in sorted(steps):
        stage, arguments, expected = FLOW[index]
        if index == NEW_VERSION_AT:
            _change_the_source(project)
        enforcer.policy = without(policies[stage], action) if arguments[0] in users else policies[stage]
        code, _, stderr = _deployer(project, *arguments)
        if code == expected:
            continue
        lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
        assert code == 1 and len(lines) == 1, stderr
        assert lines[0] == stderr.strip().splitlines()[-1]  # the last line: nothing after it
        needs = NEEDS_LINE.search(lines[0])
        assert needs is not None and needs.group(1) == action, lines[0]
        # Steps run at once: two calls needing the action (both methods, both policies) may both be refused; the line
        # names one of them, with the resource AWS named for it.
        assert needs.group(2) in {request.resource for request in enforcer.refused}
        assert {request.action for request in enforcer.refused} == {action}
        return
    pytest.fail(f"every command succeeded without {action}")


def _has(row: Any, action: str) -> bool:
    return row.when is None and any(iam_action(row.service, name) == action for name in row.operations)
