"""Secrets by reference: SSM parameters and Secrets Manager secrets read at deploy time, pinned per release.

Each test deploys through the CLI in this process against in-process moto and looks at the emulated account
itself: the published version's environment, the state's release records, what was (not) written.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from deployer.aws import is_mutating
from tests.account import APP, BUCKET, Account
from tests.support import run_in_process

DB_VALUE = "postgres://app:Pa55-db-7c1e9f@db.internal/app"  # searched for in everything deployer writes
API_VALUE = "api-K3y-5b8d2e41"
STATE_KEY = f"deployer-state/{APP}/test/state.json"
SECRETS_TABLE = '\n[function.secrets]\nDB_URL = "ssm:/app/test/db"\nAPI_KEY = "secretsmanager:test/creds#key"\n'


def add(project: Path, text: str) -> None:
    config = project / "deploy.toml"
    config.write_text(config.read_text() + text)


def put_parameter(account: Account, value: str, name: str = "/app/test/db") -> int:
    answer = account.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    return int(answer["Version"])


def put_secret(account: Account, value: str, name: str = "test/creds") -> str:
    manager = account.client("secretsmanager")
    document = json.dumps({"key": value, "user": "app"})
    try:
        return str(manager.put_secret_value(SecretId=name, SecretString=document)["VersionId"])
    except manager.exceptions.ResourceNotFoundException:
        return str(manager.create_secret(Name=name, SecretString=document)["VersionId"])


def ok(project: Path, *arguments: str) -> Any:
    result = run_in_process(project, *arguments)
    assert result.returncode == 0, result.stderr
    return result


def served(account: Account) -> dict[str, str]:
    """The environment of the version the stage's alias serves: what the users' requests run with."""
    return account.client("lambda").get_function_configuration(FunctionName=APP, Qualifier="test")["Environment"][
        "Variables"
    ]


def state(account: Account) -> dict[str, Any]:
    return json.loads(account.client("s3").get_object(Bucket=BUCKET, Key=STATE_KEY)["Body"].read())


@pytest.fixture
def with_secrets(project: Path, aws_account: Account) -> dict[str, str]:
    """deploy.toml with both kinds of reference, each holding a value: their first versions."""
    add(project, SECRETS_TABLE)
    put_parameter(aws_account, DB_VALUE)
    return {"DB_URL": "1", "API_KEY": put_secret(aws_account, API_VALUE)}


def test_both_kinds_are_read_into_the_release_and_the_state_pins_their_versions(
    project: Path, aws_account: Account, with_secrets: dict[str, str]
) -> None:
    ok(project, "up", "--version", "1.0.0")

    assert served(aws_account) == {"DB_URL": DB_VALUE, "API_KEY": API_VALUE}
    record = state(aws_account)["releases"]["1.0.0"]
    assert record["secrets"] == {
        "DB_URL": {"ref": "ssm:/app/test/db", "version": "1"},
        "API_KEY": {"ref": "secretsmanager:test/creds#key", "version": with_secrets["API_KEY"]},
    }
    assert record["environment"] == []  # secrets are not literal variables: a rollback reads them again
    again = run_in_process(project, "plan", "--version", "1.0.0")
    assert again.returncode == 0, again.stderr  # same versions: nothing to change


def test_a_rotation_is_a_new_release_planned_by_version_and_checked_before_traffic(
    project: Path, aws_account: Account, with_secrets: dict[str, str]
) -> None:
    ok(project, "up", "--version", "1.0.0")
    assert put_parameter(aws_account, "postgres://rotated") == 2

    planned = run_in_process(project, "plan", "--version", "1.0.1")
    assert planned.returncode == 3, planned.stderr
    assert "DB_URL  ssm:/app/test/db  version 1 → 2" in planned.stderr
    assert "API_KEY" not in planned.stderr  # unchanged: not listed

    deployed = json.loads(ok(project, "up", "--version", "1.0.1", "--json").stdout)
    actions = {item["resource"]: item["action"] for item in deployed["resources"]}
    assert actions["version"] == "create" and actions["check"] == "check"
    assert served(aws_account)["DB_URL"] == "postgres://rotated"
    assert state(aws_account)["releases"]["1.0.1"]["secrets"]["DB_URL"]["version"] == "2"
    assert deployed["lambda_version"] == "2"


def test_rollback_puts_back_the_release_with_the_secret_it_was_checked_with(
    project: Path, aws_account: Account, with_secrets: dict[str, str]
) -> None:
    ok(project, "up", "--version", "1.0.0")
    put_parameter(aws_account, "postgres://rotated")
    put_secret(aws_account, "rotated-key")
    ok(project, "up", "--version", "1.0.1")
    assert served(aws_account) == {"DB_URL": "postgres://rotated", "API_KEY": "rotated-key"}

    ok(project, "rollback", "1.0.0")

    assert served(aws_account) == {"DB_URL": DB_VALUE, "API_KEY": API_VALUE}


def test_a_pruned_release_is_published_again_with_its_pinned_versions(
    project: Path, aws_account: Account, with_secrets: dict[str, str]
) -> None:
    add(project, "\n[releases]\nkeep = 1\n")
    ok(project, "up", "--version", "1.0.0")
    put_parameter(aws_account, "postgres://rotated")
    put_secret(aws_account, "rotated-key")
    ok(project, "up", "--version", "1.0.1")
    assert state(aws_account)["releases"]["1.0.0"]["lambda_version"] is None  # pruned

    reads: list[dict[str, Any]] = []
    session = boto3.Session()
    for event in ("provide-client-params.ssm.GetParameter", "provide-client-params.secrets-manager.GetSecretValue"):
        session.events.register(event, lambda params, **_: reads.append(dict(params)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("deployer.aws.boto3.Session", lambda: session)
        ok(project, "rollback", "1.0.0")

    assert served(aws_account) == {"DB_URL": DB_VALUE, "API_KEY": API_VALUE}
    assert {"Name": "/app/test/db:1", "WithDecryption": True} in reads
    assert {"SecretId": "test/creds", "VersionId": with_secrets["API_KEY"]} in reads
    assert state(aws_account)["releases"]["1.0.0"]["secrets"]["DB_URL"]["version"] == "1"


def _writes(session: boto3.Session) -> list[str]:
    calls: list[str] = []
    session.events.register("before-call", lambda model, **_: calls.append(model.name))
    return calls


def test_a_missing_parameter_is_refused_before_anything_is_written(
    project: Path, aws_account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(project, SECRETS_TABLE + '\n[state]\nbackend = "local"\n')
    put_secret(aws_account, API_VALUE)
    session = boto3.Session()
    calls = _writes(session)
    monkeypatch.setattr("deployer.aws.boto3.Session", lambda: session)

    refused = run_in_process(project, "up", "--version", "1.0.0")

    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert lines[-1].startswith("error: secret DB_URL: ssm:/app/test/db does not exist"), refused.stderr
    assert [call for call in calls if is_mutating(call)] == []
    assert aws_account.functions() == [] and aws_account.roles() == []


def test_a_refused_read_names_the_reference_and_the_permission_and_changes_nothing(
    project: Path, aws_account: Account, with_secrets: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.faults import fail

    add(project, '\n[state]\nbackend = "local"\n')
    session = boto3.Session()
    calls = _writes(session)
    fail(session, "secretsmanager", "GetSecretValue", "AccessDeniedException", "not authorized", 400, times=99)
    monkeypatch.setattr("deployer.aws.boto3.Session", lambda: session)

    refused = run_in_process(project, "up", "--version", "1.0.0")

    assert refused.returncode == 1
    error = refused.stderr.strip().splitlines()[-1]
    assert "secretsmanager:test/creds#key" in error and "secretsmanager:GetSecretValue" in error, error
    assert "kms:Decrypt" in error and "Traceback" not in refused.stderr
    assert [call for call in calls if is_mutating(call)] == []
    assert aws_account.functions() == []


def _everything_of_ours(account: Account, project: Path) -> list[tuple[str, bytes]]:
    """Every S3 object in the bucket (state, lock, artifacts; each zip's entries too) and every file deployer
    wrote in the project (dist/, .deployer/)."""
    s3, found = account.client("s3"), []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET):
        for item in page.get("Versions", []):
            body = s3.get_object(Bucket=BUCKET, Key=item["Key"], VersionId=item["VersionId"])["Body"].read()
            found.append((item["Key"], body))
            if item["Key"].endswith(".zip"):
                with zipfile.ZipFile(io.BytesIO(body)) as archive:
                    found += [(f"{item['Key']}!{name}", archive.read(name)) for name in archive.namelist()]
    for folder in ("dist", ".deployer"):
        found += [(str(path), path.read_bytes()) for path in (project / folder).rglob("*") if path.is_file()]
    return found


def test_a_value_is_never_shown_nor_stored(
    project: Path, aws_account: Account, with_secrets: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    shown: list[str] = []
    runs = [
        ("plan", "--version", "1.0.0"),
        ("up", "--version", "1.0.0"),
        ("up", "--version", "1.0.0", "--json"),
        ("plan", "--version", "1.0.1", "--json"),
        ("status", "--json"),
        ("secrets", "list"),
    ]
    for arguments in runs:
        result = run_in_process(project, *arguments)
        shown += [result.stdout, result.stderr]
    put_parameter(aws_account, "postgres://rotated")
    for arguments in [("plan", "--version", "1.0.1"), ("up", "--version", "1.0.1"), ("rollback", "1.0.0")]:
        result = run_in_process(project, *arguments)
        assert result.returncode in (0, 3), result.stderr
        shown += [result.stdout, result.stderr]
    put_parameter(aws_account, "x" * 5000)  # over Lambda's 4 KB: the error names variables, never values
    too_big = run_in_process(project, "up", "--version", "1.0.2")
    assert too_big.returncode == 2 and "DB_URL" in too_big.stderr
    shown += [too_big.stdout, too_big.stderr, caplog.text]

    assert served(aws_account)["DB_URL"] == DB_VALUE  # the value did reach the function
    for value in (DB_VALUE, API_VALUE, "postgres://rotated", "x" * 100):
        assert not [text for text in shown if value in text]
        assert [where for where, body in _everything_of_ours(aws_account, project) if value.encode() in body] == []


def secrets_command(project: Path, *arguments: str, value: str | None = None) -> Any:
    """`deployer secrets ...` in this process, the value on standard input (not a terminal: no prompt)."""
    import contextlib
    import subprocess

    from typer.testing import CliRunner

    from deployer.cli import app

    with contextlib.chdir(project):
        result = CliRunner().invoke(app, ["secrets", *arguments], input=value)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception  # no crash
    return subprocess.CompletedProcess(arguments, result.exit_code, result.stdout, result.stderr)


def test_secrets_set_writes_both_kinds_creating_them_tagged_and_list_shows_versions_only(
    project: Path, aws_account: Account
) -> None:
    add(project, SECRETS_TABLE)
    assert secrets_command(project, "set", "DB_URL", value=DB_VALUE + "\n").returncode == 0
    assert secrets_command(project, "set", "API_KEY", value=API_VALUE).returncode == 0

    ssm = aws_account.client("ssm")
    parameter = ssm.get_parameter(Name="/app/test/db", WithDecryption=True)["Parameter"]
    assert (parameter["Value"], parameter["Type"], parameter["Version"]) == (DB_VALUE, "SecureString", 1)
    tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId="/app/test/db")["TagList"]
    assert {"Key": "deployer:app", "Value": APP} in tags
    manager = aws_account.client("secretsmanager")
    assert json.loads(manager.get_secret_value(SecretId="test/creds")["SecretString"]) == {"key": API_VALUE}
    assert {"Key": "deployer:app", "Value": APP} in manager.describe_secret(SecretId="test/creds")["Tags"]

    put_secret(aws_account, API_VALUE)  # {"key", "user"}: setting the field keeps the other one
    changed = secrets_command(project, "set", "API_KEY", value="new-key")
    assert changed.returncode == 0 and "new-key" not in changed.stderr + changed.stdout
    assert json.loads(manager.get_secret_value(SecretId="test/creds")["SecretString"]) == {
        "key": "new-key",
        "user": "app",
    }
    assert secrets_command(project, "set", "DB_URL", value="second").returncode == 0
    ok(project, "up", "--version", "1.0.0")
    assert secrets_command(project, "set", "DB_URL", value="third").returncode == 0

    listed = secrets_command(project, "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[1].startswith("DB_URL  ssm:/app/test/db  version 3  live 2  changed ")
    assert lines[0].startswith("API_KEY  secretsmanager:test/creds#key  version ")
    for value in (DB_VALUE, API_VALUE, "second", "third", "new-key"):
        assert value not in listed.stdout + listed.stderr


@pytest.mark.parametrize(
    ("arguments", "value", "said"),
    [
        (("set", "NOPE"), "v", "'NOPE' is not in [function.secrets]"),
        (("set", "DB_URL"), "", "no value for DB_URL"),
        (("set", "DB_URL"), "x" * 70000, "over 65536 bytes"),
        (("set", "DB_URL", "--stage", "1"), "v", "a stage name must be"),
        (("list", "--stage", ""), None, "a stage name must be"),
    ],
)
def test_the_commands_refuse_bad_input_in_one_line(
    project: Path, aws_account: Account, arguments: tuple[str, ...], value: str | None, said: str
) -> None:
    add(project, SECRETS_TABLE)
    refused = secrets_command(project, *arguments, value=value)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and said in refused.stderr, refused.stderr
    assert aws_account.client("ssm").describe_parameters()["Parameters"] == []


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ('[function]\nenvironment = { DB_URL = "x" }\n[function.secrets]\nDB_URL = "ssm:/a"', "DB_URL is both in"),
        ('[function.secrets]\nDB_URL = "ssm:/a"\n[stages.test]\nenvironment = { DB_URL = "x" }', "DB_URL is both"),
        ('[function.secrets]\nAWS_REGION = "ssm:/a"', "Lambda reserves"),
        ('[function.secrets]\nDB_URL = "vault:/a"', "'vault:/a' is not a secret reference"),
        ('[function.secrets]\nDB_URL = "secretsmanager:a#"', "is not a secret reference"),
        ('[function.secrets]\nDB_URL = "arn:aws:s3:::bucket"', "is not the ARN of an SSM parameter"),
        ("[function.secrets]\nDB_URL = 3", "must be a string"),
        ('[stages.prod.secrets]\nX = "ssm:"', "secrets X: 'ssm:' is not"),
        ('[function]\nkms_key_arn = "alias/mine"', "must be the ARN of a KMS key"),
    ],
)
def test_bad_secret_configuration_is_one_line_and_exit_2(project: Path, table: str, said: str) -> None:
    config = project / "deploy.toml"
    text = config.read_text()
    if table.startswith("[function]\n"):  # keys of the existing [function] table
        text = text.replace("[function]\n", table.split("\n[function.secrets]")[0] + "\n", 1)
        table = table.split("\n", 2)[2] if "[function.secrets]" in table else ""
        table = table if table.startswith("[function.secrets]") else ""
    config.write_text(text + "\n" + table + "\n")
    refused = run_in_process(project, "plan", "--version", "1.0.0")
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.count("\n") == 1 and said in refused.stderr, refused.stderr


def test_up_and_plan_nudge_once_towards_secrets(project: Path, aws_account: Account) -> None:
    config = project / "deploy.toml"
    config.write_text(
        config.read_text().replace("[function]\n", '[function]\nenvironment = { DB_PASSWORD = "pw", MODE = "x" }\n', 1)
    )
    for arguments in (("plan", "--version", "1.0.0"), ("up", "--version", "1.0.0")):
        result = run_in_process(project, *arguments)
        assert result.returncode in (0, 3), result.stderr
        warnings = [line for line in result.stderr.splitlines() if "like a secret" in line]
        assert len(warnings) == 1 and "DB_PASSWORD" in warnings[0] and "[function.secrets]" in warnings[0]
        assert "MODE" not in warnings[0] and "pw" not in result.stderr.replace("PASSWORD", "")


ECHO_SECRET = (
    "import os\n\n\ndef handler(event, context):\n"
    '    body = os.environ.get("DB_URL", "unset") + "|" + os.environ.get("API_KEY", "unset")\n'
    '    return {"statusCode": 200, "body": body}\n'
)


def test_serve_takes_secret_values_from_the_dotenv_file_never_from_aws(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deployer.config import load_config
    from deployer.serve import make_server
    from tests.support import fetch, running

    add(project, SECRETS_TABLE)
    (project / "function" / "main.py").write_text(ECHO_SECRET)
    (project / ".env").write_text('# local values\nexport DB_URL="postgres://local"\nAPI_KEY=local-key\n')
    monkeypatch.setattr("boto3.Session", lambda *_, **__: pytest.fail("serve asked AWS"))  # no account is read

    with running(make_server(load_config(project / "deploy.toml"), "127.0.0.1", 0)) as server:
        status, body, _ = fetch(server.url)
    assert (status, body) == (200, b"postgres://local|local-key")

    other = project / "other.env"
    other.write_text("DB_URL=from-other\nAPI_KEY=k\n")
    with running(make_server(load_config(project / "deploy.toml"), "127.0.0.1", 0, env_file=other)) as server:
        assert fetch(server.url)[1] == b"from-other|k"


@pytest.mark.parametrize(
    ("dotenv", "said"),
    [
        (None, "API_KEY is a secret (secretsmanager:test/creds#key) with no value for serve"),
        ("API_KEY=k\n", "DB_URL is a secret"),
        ("DB_URL=ok\nAPI_KEY k-without-equals-s3cr3t\n", ".env, line 2: not NAME=value"),
    ],
)
def test_serve_refuses_a_secret_without_a_value_naming_it(project: Path, dotenv: str | None, said: str) -> None:
    add(project, SECRETS_TABLE)
    if dotenv is not None:
        (project / ".env").write_text(dotenv)
    refused = run_in_process(project, "serve", "--port", "0")
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.count("\n") == 1 and said in refused.stderr and "s3cr3t" not in refused.stderr


def test_serve_takes_another_dotenv_file_from_env_file(project: Path) -> None:
    """`serve --env-file FILE` reads FILE, not .env: a missing FILE is one line naming it, a complete one serves."""
    add(project, SECRETS_TABLE)
    (project / ".env").write_text("DB_URL=d\nAPI_KEY=k\n")
    refused = run_in_process(project, "serve", "--port", "0", "--env-file", "missing.env")
    assert refused.returncode == 2, refused.stderr
    assert "missing.env: cannot read it" in refused.stderr and refused.stderr.count("\n") == 1
    (project / "partial.env").write_text("DB_URL=d\n")
    refused = run_in_process(project, "serve", "--port", "0", "--env-file", "partial.env")
    assert refused.returncode == 2 and "API_KEY is a secret" in refused.stderr and "partial.env" in refused.stderr
