"""The package as users get it: a wheel of this checkout, installed without extras into a fresh venv.

Building the wheel fetches setuptools (pip builds in isolation) and installing it fetches boto3, Typer
and Rich: both reach PyPI (pip's cache helps), hence the `network` mark. One wheel and one venv serve
the whole module.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from deployer.local import log_path
from tests.support import free_port

pytestmark = pytest.mark.network

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "deployer"
# The guide's function and deploy.toml.
HELLO_JS = (
    "exports.handler = async (event) => "
    '({statusCode: 200, headers: {"Content-Type": "text/html"}, body: "<p>Hello world!</p>"})\n'
)
DEPLOY_TOML = """\
[app]
name = "HelloWorld"
region = "us-east-1"

[artifact]
bucket = "hello-world-artifacts"
name = "hello.zip"

[function]
source = "function"
handler = "main.handler"
runtime = "nodejs22.x"
memory = 128
timeout = 3

[api]
stage = "test"
"""
MISSING_MOTO = "error: the local cloud needs moto, which is not installed: pip install 'deployer[local]'"


def run(command: Sequence[str | Path]) -> None:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"


def isolated_environment(**extra: str) -> dict[str, str]:
    """This environment without what would let the fresh venv see this checkout or the test venv."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"}
    environment = {name: value for name, value in os.environ.items() if name not in dropped}
    test_venv_bin = str(Path(sys.prefix) / "bin")
    environment["PATH"] = os.pathsep.join(
        folder for folder in environment.get("PATH", "").split(os.pathsep) if folder != test_venv_bin
    )
    return {**environment, **extra}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy: setuptools writes build/ next to the sources, and a stale build/lib there would
    # put modules deleted since into the wheel.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(PACKAGE, source / "deployer", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp_path_factory.mktemp("wheels")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-w", wheels, source])
    (built,) = wheels.glob("deployer-*.whl")
    return built


@pytest.fixture(scope="module")
def deployer_command(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `deployer` of a fresh venv holding the wheel and its dependencies, no extras: no moto."""
    venv = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", venv])  # this pip installs into it: faster than ensurepip
    python = venv / "bin" / "python"
    # --no-compile: no .pyc for every module installed (Python compiles what the tests import, when they import it).
    pip = [sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check"]
    run([*pip, "install", "--no-compile", wheel])
    run([python, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('moto') is not None)"])
    return venv / "bin" / "deployer"


@pytest.fixture(scope="module")
def hello_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("hello")
    (project / "function").mkdir()
    (project / "function" / "main.js").write_text(HELLO_JS)
    (project / "deploy.toml").write_text(DEPLOY_TOML)
    return project


def test_the_wheel_carries_every_file_of_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"deployer/serve/node_worker.js", "deployer/serve/python_worker.py"} <= names
    sources = {
        path.relative_to(REPO).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert sorted(sources - names) == []


@pytest.mark.skipif(shutil.which("node") is None, reason="the guide's function is JavaScript: it needs node")
def test_serve_answers_the_guides_node_function_without_any_extra(deployer_command: Path, hello_project: Path) -> None:
    process = subprocess.Popen(
        [str(deployer_command), "serve", "--port", "0"],
        cwd=hello_project,
        env=isolated_environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        found = re.search(r"http://127\.0\.0\.1:\d+/", process.stdout.readline())
        assert found, "serve printed no URL"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to 127.0.0.1
        with opener.open(found.group(0), timeout=30) as answer:
            status, body = answer.status, answer.read().decode()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, errors = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            _, errors = process.communicate()
    assert (status, body) == (200, "<p>Hello world!</p>"), errors
    assert "Traceback" not in errors


@pytest.mark.parametrize("command", [["up", "--version", "1.0.0", "--local"], ["local", "start"]])
def test_the_local_cloud_without_moto_is_one_line_naming_the_extra(
    deployer_command: Path, hello_project: Path, command: list[str]
) -> None:
    port = free_port()
    log_existed = log_path(port).exists()
    done = subprocess.run(
        [str(deployer_command), *command],
        cwd=hello_project,
        env=isolated_environment(DEPLOYER_LOCAL_PORT=str(port)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr.splitlines()) == (2, [MISSING_MOTO])
    assert log_path(port).exists() == log_existed, "nothing may be started (its log is the first thing written)"
