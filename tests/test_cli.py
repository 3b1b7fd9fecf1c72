"""The `deployer` command, driven as a user drives it, against moto_server on 127.0.0.1.

The guide's whole story runs the installed console script, a process per command; the other tests run the
same commands in this process (tests/support.run_in_process answers as a process would): what they check,
lines and exit codes, is the CLI's, not the process boundary's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployer.cli import app
from tests.account import BUCKET, Account
from tests.support import in_process_ok, run_deployer, run_in_process


def deploy_ok(project: Path, *arguments: str) -> str:
    result = run_deployer(project, *arguments)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def test_the_guides_whole_story(project: Path, moto_server: Account) -> None:
    """build; up 1.0.0; new greeting as 1.0.1; rollback 1.0.0; up 1.0.0 again; down; down again."""
    built = deploy_ok(project, "build")
    assert "example.zip" in built and "sha256:" in built

    url = deploy_ok(project, "up", "--version", "1.0.0").strip()
    stack = moto_server.assert_stack("v1.0.0/example.zip")
    assert url == f"https://{stack['api']['id']}.execute-api.us-east-1.amazonaws.com/test"

    main = project / "function" / "main.py"
    main.write_text(main.read_text().replace("Hello world!", "Bonjour au monde!"))
    assert deploy_ok(project, "up", "--version", "1.0.1").strip() == url
    moto_server.assert_stack("v1.0.1/example.zip")

    deploy_ok(project, "rollback", "1.0.0")
    moto_server.assert_stack("v1.0.0/example.zip")

    main.write_text(main.read_text().replace("Bonjour au monde!", "Hello world!"))
    assert deploy_ok(project, "up", "--version", "1.0.0").strip() == url
    moto_server.assert_stack("v1.0.0/example.zip")

    status = json.loads(deploy_ok(project, "status", "--json"))
    assert (status["version"], status["base_url"], status["stage"]) == ("1.0.0", url, "test")
    # The last up found 1.0.0 live already: a run that changes nothing is no event in the history.
    assert [entry["action"] for entry in status["history"]] == ["up", "up", "rollback"]
    assert status["history"][-1]["command"] == "rollback 1.0.0" and "@" in status["history"][-1]["by"]

    deploy_ok(project, "down", "--yes")
    assert moto_server.is_empty()
    again = run_deployer(project, "down", "--yes")
    assert again.returncode == 0, again.stderr
    assert "nothing deployed" in again.stderr
    assert moto_server.is_empty()

    status = json.loads(deploy_ok(project, "status", "--json"))
    for field in ("version", "base_url", "function_name", "rest_api_id", "role_name", "stage", "bucket", "key"):
        assert status[field] is None


def test_up_prints_one_line_per_resource_and_the_url_alone_on_stdout(project: Path, moto_server: Account) -> None:
    result = run_in_process(project, "up", "--version", "1.0.0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("https://")
    for resource in (
        "artifact",
        "role",
        "function",
        "rest api",
        "resource",
        "method",
        "integration",
        "stage",
        "permission",
    ):
        assert f"  {resource} " in result.stderr
    assert "created" in result.stderr and "AWS calls" in result.stderr


def test_status_json_is_all_null_before_anything_is_deployed(project: Path, moto_server: Account) -> None:
    status = json.loads(in_process_ok(project, "status", "--json"))  # no bucket, no state: nothing deployed
    for field in ("version", "base_url", "function_name", "rest_api_id", "role_name", "stage", "bucket", "key"):
        assert status[field] is None


def test_down_without_a_terminal_or_yes_refuses_and_deletes_nothing(project: Path, moto_server: Account) -> None:
    in_process_ok(project, "up", "--version", "1.0.0")
    result = run_in_process(project, "down")
    assert result.returncode == 2
    assert "--yes" in result.stderr
    moto_server.assert_stack("v1.0.0/example.zip")


# Bad input: one clear line on stderr, a non-zero exit code, no traceback, nothing changed in AWS (the `cli`
# fixture checks the line and the code).


@pytest.mark.parametrize("version", ["", "x" * 65, "1/0", "..", "1..0", "1 0", "1;ls", "$(id)", "a|b", "1&"])
def test_a_bad_version_is_refused_before_any_aws_call(cli, version: str, project: Path, aws_account) -> None:
    assert "invalid version" in cli("up", "--version", version, expect=2)
    assert aws_account.is_empty()
    assert not (project / ".deployer").exists() and not (project / "dist").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace("[api]", "[api"), "is not valid TOML"),
        (lambda text: text + "colour = 'blue'\n", "unknown key 'colour' in [api]"),
        (lambda text: text.replace("memory = 128", "memory = 'lots'"), "memory must be an integer"),
        (lambda text: text.replace('name = "ServerlessExample"\n', ""), "[app] name is required"),
        (lambda text: text.replace("python3.13", "nodejs6.10"), "Lambda no longer accepts it"),
        (lambda text: text.replace('source = "function"', 'source = "nowhere"'), "does not exist"),
        (lambda text: text.replace("main.handler", "app.handler"), "needs app.py"),
    ],
)
def test_bad_configuration_is_refused_before_any_aws_call(cli, edit, message: str, project: Path, aws_account):
    config = project / "deploy.toml"
    config.write_text(edit(config.read_text()))
    assert message in cli("up", "--version", "1.0.0", expect=2)
    assert aws_account.is_empty()


def test_missing_credentials_say_how_to_provide_them(cli, monkeypatch, aws_account) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    message = cli("up", "--version", "1.0.0", expect=2)
    assert "no AWS credentials found" in message and "AWS_PROFILE" in message


def test_different_bytes_under_a_published_version_are_refused(cli, project: Path, aws_account) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    main = project / "function" / "main.py"
    main.write_text(main.read_text().replace("Hello world!", "Bonjour au monde!"))
    message = cli("up", "--version", "1.0.0", expect=1)
    assert "already published with different bytes" in message and "pick a new version" in message
    aws_account.assert_stack("v1.0.0/example.zip")  # still the first upload, untouched
    cli("up", "--version", "1.0.0", "--force", expect=0)
    aws_account.assert_stack("v1.0.0/example.zip")
    assert aws_account.client("s3").get_object(Bucket=BUCKET, Key="v1.0.0/example.zip")["Body"].read()


def test_rollback_to_a_version_never_uploaded_is_refused(cli, aws_account) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    message = cli("rollback", "7.7.7", expect=1)
    assert "version 7.7.7 was never uploaded" in message and "published versions: 1.0.0" in message
    aws_account.assert_stack("v1.0.0/example.zip")


def test_up_json_gives_scripts_the_status_fields_and_each_resource(project: Path, aws_account) -> None:
    result = CliRunner().invoke(app, ["up", "--version", "1.0.0", "--json", "--config", str(project / "deploy.toml")])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    api_id = aws_account.rest_apis()[0]["id"]
    assert data["rest_api_id"] == api_id and data["version"] == "1.0.0" and data["stage"] == "test"
    assert data["base_url"] == f"https://{api_id}.execute-api.us-east-1.amazonaws.com/test"
    actions = [(item["resource"], item["action"]) for item in data["resources"]]
    assert actions[4:7] == [("version", "create"), ("check", "check"), ("alias", "create")]
    # unchanged: the four steps of a custom domain (none configured) and old versions (none to prune)
    assert [action for _, action in actions] == ["create"] * 5 + ["check"] + ["create"] * 9 + ["unchanged"] * 5
    assert data["lambda_version"] == "1" and data["canary"] is None
    # 23 for the stack (the log group: 3; ListMultipartUploads after the upload: a killed run's parts are
    # aborted); 17 for the shared state: the lock (6: refused for want of a bucket, the bucket made private,
    # encrypted and given its lifecycle rule, taken), one read, and a write after each resource created (10).
    # (Its release, one request more, comes after the count.)
    assert data["aws_calls"] == 40


def test_plan_exits_3_when_up_would_change_something_and_0_when_not(cli, aws_account) -> None:
    cli("plan", "--version", "1.0.0", expect=3)
    assert aws_account.is_empty()  # plan only reads
    cli("up", "--version", "1.0.0", expect=0)
    cli("plan", "--version", "1.0.0", expect=0)


def test_the_summary_counts_changes_to_the_stack_not_the_locks_writes(cli, aws_account) -> None:
    first = cli("up", "--version", "1.0.0", expect=0).splitlines()[-1]
    again = cli("up", "--version", "1.0.0", expect=0).splitlines()[-1]
    assert "changes)" in first and "(0 changes)" not in first
    assert again.startswith("16 AWS calls (0 changes)")  # the lock's PutObject and DeleteObject are no change


@pytest.mark.parametrize(
    ("arguments", "forbidden"),
    [
        (["--help"], {"boto3", "botocore", "rich"}),
        (["build"], {"boto3", "botocore", "pathspec"}),  # pathspec: only for [function] exclude patterns
        (["status", "--json"], {"boto3", "botocore"}),  # with [state] backend = "local" (below)
    ],
)
def test_commands_that_never_call_aws_start_without_importing_boto3(
    project: Path, arguments: list[str], forbidden: set[str]
) -> None:
    """A fast start: boto3 and botocore cost ~300 ms to import; Rich's help rendering ~60 ms more."""
    config = project / "deploy.toml"
    config.write_text(config.read_text() + '\n[state]\nbackend = "local"\n')  # status reads a file, not S3
    probe = (
        "import sys\n"
        "from deployer.cli import main\n"
        f"sys.argv = ['deployer', *{arguments!r}]\n"
        "try:\n    main()\nexcept SystemExit as done:\n    assert not done.code, done.code\n"
        f"print('loaded:', sorted({{name.split('.')[0] for name in sys.modules}} & set({sorted(forbidden)!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=project, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "loaded: []", result.stdout


def test_no_answer_at_the_down_prompt_deletes_nothing(project: Path, aws_account: Account, monkeypatch) -> None:
    CliRunner().invoke(app, ["up", "--version", "1.0.0", "--config", str(project / "deploy.toml")])
    monkeypatch.setattr("deployer.cli.common.can_ask", lambda: True)  # as if at a terminal that then closes
    result = CliRunner().invoke(app, ["down", "--config", str(project / "deploy.toml")], input="")  # end of input
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr and "nothing" in result.stderr.splitlines()[-1]
    aws_account.assert_stack("v1.0.0/example.zip")


def test_a_profile_that_does_not_exist_is_bad_configuration(cli, monkeypatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    message = cli("up", "--version", "1.0.0", expect=2)
    assert "no-such-profile" in message and "AWS_PROFILE" in message


def test_debug_shows_the_traceback_of_that_command_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--debug holds for the command it is given to (it is kept on Typer's context): a later command, or a
    library caller of the CLI's error reporting, gets one line again."""
    import typer

    from deployer.cli import common
    from deployer.errors import UsageError

    missing = str(tmp_path / "deploy.toml")
    debugged = CliRunner().invoke(app, ["--debug", "build", "--config", missing])
    assert isinstance(debugged.exception, UsageError)  # raised as it is: the traceback is shown
    with pytest.raises(typer.Exit) as exited, common.reported_errors():
        raise UsageError("bad input")
    assert exited.value.exit_code == 2
    assert capsys.readouterr().err.strip().endswith("bad input")
    plain = CliRunner().invoke(app, ["build", "--config", missing])
    assert plain.exit_code == 2 and "Traceback" not in plain.stderr
    assert str(debugged.exception) in plain.stderr
