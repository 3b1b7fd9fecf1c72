"""Fixtures: a scratch project, an emulated AWS account (moto, in-process or as a server), a deploy context.

Nothing here can reach real AWS: credentials are fake, the metadata service is off, and every
client talks to moto.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from deployer.aws import Aws
from deployer.build import build
from deployer.cli import app
from deployer.config import load_config
from deployer.context import ArtifactDigests, Connection, Run
from deployer.stores import store_for
from tests.account import APP, OTHER, Account
from tests.lambda_invoke import LambdaInvoke

# Shared helpers live in tests/support.py; these names stay importable from here for the modules that use them.
from tests.support import (  # noqa: F401
    MOTO_SERVER,
    REGION,
    REPO,
    Waiting,
    build_each_cli_command_once,
    find_moto_handlers_once,
    free_port,
    install_moto_fixes,
    keep_only_the_managed_policies_we_use,
    lock_is_free,
    reset_local_cloud,
    run_deployer,
    run_in_process,
    share_botocore_client_classes,
    share_botocore_model_cache,
    stop_for_sure,
)

_free_port = free_port

# The `emulation` fixtures (serve and the local cloud's data plane, one interface) of tests/test_gateway_fidelity*.py.
pytest_plugins = ("tests.emulations",)


# Tests that use these run against an emulated account (and most deploy to it): seconds each, not milliseconds.
EMULATED_ACCOUNTS = frozenset({"aws_account", "moto_server", "local_cloud", "local_port", "make_run", "cli"})
# Modules whose module- or session-scoped fixtures install packages (a wheel and a venv; pip and npm bundles; the
# framework apps): one xdist worker runs each whole, so they are built once, not once per worker.
ONE_WORKER_EACH = ("tests/test_packaging.py", "tests/test_dependencies.py", "tests/test_frameworks_v2.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests against an emulated account run first, the quick ones after: with two xdist workers, whichever
    finishes first takes the quick ones, and the run does not wait on one worker's long last test."""
    items.sort(key=lambda item: EMULATED_ACCOUNTS.isdisjoint(getattr(item, "fixturenames", ())))


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's `load` distribution (the default with -n), except that each ONE_WORKER_EACH module goes to one
    worker whole, and before the rest (xdist sends its largest units first). Not `--dist loadgroup`: with pytest
    9.2 its xdist_group marks no longer group anything (pytest-dev/pytest-xdist#1386)."""
    if config.getvalue("dist") != "load":
        return None  # another distribution asked for: xdist's own
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER_EACH else nodeid

    return Scheduling(config, log)


@pytest.fixture(autouse=True)
def fake_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, a fixed region, no instance metadata, no profile or endpoint from the host."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


@pytest.fixture
def waiting() -> Waiting:
    """What the runs made here wait with (given to their Aws): deployer.retry backs off for real on AWS; here it
    records the delays instead of sleeping, and what it says of a long wait."""
    return Waiting()


@pytest.fixture(autouse=True)
def in_process_cli_never_sleeps(monkeypatch: pytest.MonkeyPatch, waiting: Waiting) -> None:
    """The in-process CLI's commands wait with the test's sleep and clock (what they say of it stays the CLI's)."""
    from deployer.cli import common

    made, given = common.make_waits, waiting.waits()
    monkeypatch.setattr(common, "make_waits", lambda: dataclasses.replace(made(), sleep=given.sleep, clock=given.clock))


@pytest.fixture
def no_waiting(waiting: Waiting) -> list[float]:
    """The delays deployer.retry would have slept, in order."""
    return waiting.delays


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the repository's example project: deploy.toml and function/."""
    shutil.copy(REPO / "deploy.toml", tmp_path / "deploy.toml")
    shutil.copytree(REPO / "function", tmp_path / "function", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


@pytest.fixture
def other_project(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second app, Other, in its own folder, sharing the bucket (and the account) with the example app."""
    folder = tmp_path_factory.mktemp("other")
    shutil.copytree(project / "function", folder / "function")
    text = (project / "deploy.toml").read_text().replace(f'name = "{APP}"', f'name = "{OTHER}"')
    (folder / "deploy.toml").write_text(text.replace('name = "example.zip"\n', ""))
    return folder


@pytest.fixture(scope="session", autouse=True)
def library_work_done_once() -> Iterator[None]:
    """What botocore, moto and Typer work out again and again, worked out once per process (tests/support.py says
    why for each): botocore's service models read and each service's client class made, in-process moto's URL
    patterns found per backend, the in-process CLI's click command built. Undone, last first, at the end."""
    undos = [
        share_botocore_model_cache(),
        share_botocore_client_classes(),
        find_moto_handlers_once(),
        build_each_cli_command_once(),
    ]
    yield
    for undo in reversed(undos):
        undo()


@pytest.fixture(scope="session", autouse=True)
def only_the_managed_policy_we_use() -> Iterator[None]:
    """moto parses ~1,300 AWS managed policies per account (about a second a test); we attach one."""
    import moto.iam.models

    every = keep_only_the_managed_policies_we_use()
    yield
    moto.iam.models.aws_managed_policies_data = every


@pytest.fixture
def aws_account(lambda_invoke: LambdaInvoke) -> Iterator[Account]:
    """An in-process emulated account, with AWS's managed policies (the basic logging one is attached), whose
    Lambda Invoke really runs the function."""
    install_moto_fixes()
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        yield Account(boto3.Session(region_name=REGION))


@pytest.fixture
def lambda_invoke(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaInvoke]:
    """Lambda Invoke for in-process moto (which needs Docker for it): the function's zip really runs.

    It goes into botocore's built-in handlers, so every session made from now on has it, before moto's own stub.
    It listens on every `before-send` (not `before-send.lambda.Invoke`, whose handlers botocore would run ahead
    of all others) so that the faults a test injects come first: a throttled Invoke is throttled."""
    from botocore.handlers import BUILTIN_HANDLERS

    invoke = LambdaInvoke(tmp_path_factory.mktemp("invoked-code"))
    entry = ("before-send", invoke.handle)
    BUILTIN_HANDLERS.insert(0, entry)
    yield invoke
    BUILTIN_HANDLERS.remove(entry)
    invoke.close()


@pytest.fixture
def make_run(project: Path, aws_account: Account, waiting: Waiting):
    """A fresh Run on the scratch project, as each CLI command makes one: state loaded from disk, and with
    a version, the artifact built (or found up to date) as `up` builds it."""

    def make(
        version: str | None = None,
        session: boto3.Session | None = None,
        config_path: Path | None = None,
        stage: str | None = None,
        shared_state: bool = False,
        **options: Any,
    ) -> Run:
        config = load_config(config_path or project / "deploy.toml", stage)
        aws = Aws(config.region, session=session or boto3.Session(), waits=waiting.waits())
        # Resource tests keep the state in .deployer/ (their pinned calls are the resources'); the shared state's
        # own calls are pinned by tests/test_shared_state.py, and the CLI tests run with it.
        store = (
            store_for(config, aws) if shared_state else store_for(dataclasses.replace(config, state_backend="local"))
        )
        built = build(config) if version and config.source.is_dir() else None
        artifact = ArtifactDigests(built.sha256, built.content_sha256) if built else None
        return Connection(config, aws, store).run(store.load(), version, artifact=artifact, **options)

    return make


@pytest.fixture
def one_step_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps planned and applied one after another in UP_ORDER, as before they ran at once: for a test whose subject
    is how one call is retried, and which pins the calls around it (what else runs meanwhile is not its subject)."""
    monkeypatch.setattr("deployer.schedule.WORKERS", 1)


@pytest.fixture
def cli(project: Path, aws_account: Account):
    """Run the CLI in-process (fast) against the in-process emulated account."""
    runner = CliRunner()

    def invoke(*arguments: str, expect: int, config: Path | None = None) -> str:
        result = runner.invoke(app, [*arguments, "--config", str(config or project / "deploy.toml")])
        assert result.exit_code == expect, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        if expect == 2:  # refused before anything started: the error is all there is
            assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        elif expect == 1:  # failed on the way: progress so far, then one error line
            assert [line for line in lines if line.startswith("error: ")] == lines[-1:], result.stderr
        return result.stderr

    return invoke


@pytest.fixture(scope="session")
def moto_server_url() -> Iterator[str]:
    """One moto_server on 127.0.0.1 for the session; tests reset it with `moto_server` below."""
    port = free_port()
    environment = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
    server = subprocess.Popen(
        [sys.executable, "-c", MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def moto_server(moto_server_url: str, monkeypatch: pytest.MonkeyPatch) -> Account:
    """A clean emulated account behind moto_server; AWS_ENDPOINT_URL points every client at it."""
    request = urllib.request.Request(f"{moto_server_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server_url)
    return Account(boto3.Session(region_name=REGION), endpoint_url=moto_server_url)


@pytest.fixture(scope="session")
def local_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """One local cloud for the session (for each xdist worker), started with `deployer local start --port` on a
    free port (never 4566, so a user's own local cloud is left alone); always stopped at the end."""
    port = free_port()
    started = run_deployer(tmp_path_factory.mktemp("start"), "local", "start", "--port", str(port))
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip() == f"http://127.0.0.1:{port}"
        yield port
    finally:
        stop_for_sure(port)


@pytest.fixture
def local_cloud(local_port: int, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean emulated account on the local cloud, and DEPLOYER_LOCAL_PORT pointing every command at it."""
    reset_local_cloud(local_port)
    monkeypatch.setenv("DEPLOYER_LOCAL_PORT", str(local_port))
    monkeypatch.delenv("DEPLOYER_LOCAL", raising=False)
    return f"http://127.0.0.1:{local_port}"
