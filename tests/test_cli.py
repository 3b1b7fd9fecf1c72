"""The installed `deployer` command, driven as a user drives it, against moto_server on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

from tests.account import Account
from tests.conftest import run_deployer


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
    assert [entry["action"] for entry in status["history"]] == ["up", "up", "rollback", "up"]

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
    result = run_deployer(project, "up", "--version", "1.0.0")
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


def test_status_json_is_all_null_before_anything_is_deployed(project: Path) -> None:
    status = json.loads(deploy_ok(project, "status", "--json"))
    for field in ("version", "base_url", "function_name", "rest_api_id", "role_name", "stage", "bucket", "key"):
        assert status[field] is None


def test_down_without_a_terminal_or_yes_refuses_and_deletes_nothing(project: Path, moto_server: Account) -> None:
    deploy_ok(project, "up", "--version", "1.0.0")
    result = run_deployer(project, "down")
    assert result.returncode == 2
    assert "--yes" in result.stderr
    moto_server.assert_stack("v1.0.0/example.zip")
