"""deployer.serve.sandbox: the interpreter, command line and environment a worker starts with."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployer.errors import DeployerError, UsageError
from deployer.serve.runner import FunctionRunner
from deployer.serve.sandbox import find_interpreter, interpreter_note, lambda_environment, worker_command


@pytest.fixture
def fresh_interpreter_cache() -> Iterator[None]:
    find_interpreter.cache_clear()
    yield
    find_interpreter.cache_clear()


def test_a_python_worker_runs_isolated_from_this_tools_site_packages() -> None:
    command = worker_command("python3.13")
    assert command[1:5] == ["-I", "-S", "-B", "-u"]
    assert command[-1].endswith("python_worker.py")


def test_a_missing_python_version_falls_back_to_this_python_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_interpreter_cache: None
) -> None:
    shim = tmp_path / "python3.99"  # on PATH but refusing to run, like a pyenv shim
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.99: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert find_interpreter("python3.99")[0] == sys.executable
    note = interpreter_note("python3.99")
    assert note is not None
    assert "python3.99 runs here under Python" in note


def test_a_node_runtime_without_node_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_interpreter_cache: None
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DeployerError, match=r"`node` is not on PATH"):
        FunctionRunner(tmp_path, "index.handler", "nodejs22.x", 3, 128, "fn")


def test_an_unknown_runtime_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="java21"):
        worker_command("java21")


def test_the_environment_is_lambdas_not_the_callers(tmp_path: Path) -> None:
    caller = {
        "PATH": "/usr/bin",
        "AWS_ACCESS_KEY_ID": "AKIDCALLER",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "token",
        "AWS_PROFILE": "admin",
        "GITHUB_TOKEN": "ghp_caller",
    }
    environment = lambda_environment(
        function_name="fn",
        handler="main.handler",
        runtime="python3.13",
        memory=256,
        region="eu-west-1",
        source=tmp_path,
        code_dirs=[tmp_path / "deps"],
        environment={"GREETING": "hi", "AWS_SECRET_ACCESS_KEY": "not even from deploy.toml"},
        base=caller,
    )
    assert environment["PATH"] == "/usr/bin"
    assert environment["GREETING"] == "hi"
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == "fn"
    assert environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert environment["AWS_REGION"] == environment["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert environment["PYTHONPATH"] == os.pathsep.join([str(tmp_path), str(tmp_path / "deps")])
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "GITHUB_TOKEN"):
        assert name not in environment
