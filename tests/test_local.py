"""`deployer local` and `--local`, as a user runs them: the guide's story in a browser, on a local cloud.

Every test here talks to a real emulator process on a free port (never 4566, so a user's own local
cloud is left alone), started once for the module and reset between tests. The module's finalizer
stops it, and kills it if it does not stop.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

from deployer.errors import UsageError
from deployer.local import code_cache, control, log_path, pid_path
from deployer.process import alive
from tests.browser import chromium_page
from tests.conftest import REGION, run_deployer
from tests.test_local_dataplane import put_lambda_proxy

MISSING_TOKEN = b'{"message":"Missing Authentication Token"}'
INTERNAL_ERROR = b'{"message": "Internal server error"}'
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def gone(pid: int, seconds: float = 15.0) -> bool:
    """The process exited and was reaped: no /proc entry at all (no zombie left behind)."""
    deadline = time.monotonic() + seconds
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not Path(f"/proc/{pid}").exists()


def stop_for_sure(port: int) -> None:
    """Stop the emulator on `port`, kill it if it will not stop, and delete its log."""
    found = control.health(port)
    try:
        control.stop(port)
    finally:
        if found is not None and alive(found.pid):
            os.killpg(found.pid, signal.SIGKILL)
        log_path(port).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def local_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """One emulator for the module, started with `deployer local start --port`; always stopped at the end."""
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
    """A clean emulated account, and DEPLOYER_LOCAL_PORT pointing every command at it."""
    request = urllib.request.Request(f"http://127.0.0.1:{local_port}/moto-api/reset", method="POST")
    _direct.open(request, timeout=10).close()
    monkeypatch.setenv("DEPLOYER_LOCAL_PORT", str(local_port))
    monkeypatch.delenv("DEPLOYER_LOCAL", raising=False)
    return f"http://127.0.0.1:{local_port}"


def deployer_ok(project: Path, *arguments: str) -> str:
    result = run_deployer(project, *arguments)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def fetch(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with _direct.open(url, timeout=30) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def test_the_guides_story_in_a_browser(project: Path, local_cloud: str, tmp_path: Path) -> None:
    """up 1.0.0 shows Hello world!; up 1.0.1 Bonjour au monde!; rollback 1.0.0 Hello world! again; down: 403."""
    profile = tmp_path / "chromium-profile"
    url = deployer_ok(project, "up", "--version", "1.0.0", "--local").strip()
    api_id = boto3.client("apigateway", endpoint_url=local_cloud, region_name=REGION).get_rest_apis()["items"][0]["id"]
    assert url == f"{local_cloud}/restapis/{api_id}/test/_user_request_/"
    assert "Hello world!" in chromium_page(url, profile)
    status, body, _ = fetch(f"{url}some/deep/path?x=1")  # the {proxy+} resource
    assert (status, body) == (200, b"<p>Hello world!</p>")

    main = project / "function" / "main.py"
    main.write_text(main.read_text().replace("Hello world!", "Bonjour au monde!"))
    assert deployer_ok(project, "up", "--version", "1.0.1", "--local").strip() == url
    assert "Bonjour au monde!" in chromium_page(url, profile)

    assert deployer_ok(project, "rollback", "1.0.0", "--local").strip() == url
    assert "Hello world!" in chromium_page(url, profile)

    status_json = json.loads(deployer_ok(project, "status", "--local", "--json"))
    assert (status_json["version"], status_json["base_url"]) == ("1.0.0", url)
    assert status_json["local"]["running"] is True
    assert json.loads(deployer_ok(project, "status", "--json"))["base_url"] is None  # a real deployment's state

    deployer_ok(project, "down", "--yes", "--local")
    status, body, headers = fetch(url)
    assert (status, body) == (403, MISSING_TOKEN)
    assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert "Missing Authentication Token" in chromium_page(url, profile)


def test_up_local_needs_no_aws_credentials_at_all(
    project: Path, local_cloud: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws either
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")  # and a profile that does not exist is not read
    url = deployer_ok(project, "up", "--version", "1.0.0", "--local").strip()
    assert fetch(url)[:2] == (200, b"<p>Hello world!</p>")


def test_the_api_answers_500_until_the_function_lets_it_in(project: Path, local_cloud: str) -> None:
    """The guide's 'not functional yet' step: without the Lambda permission, API Gateway says 500."""
    url = deployer_ok(project, "up", "--version", "1.0.0", "--local").strip()
    functions = boto3.client("lambda", endpoint_url=local_cloud, region_name=REGION)
    functions.remove_permission(FunctionName="ServerlessExample", StatementId="deployer-apigateway-invoke")
    status, body, headers = fetch(url)
    assert (status, body) == (500, INTERNAL_ERROR)
    assert headers["x-amzn-ErrorType"] == "InternalServerErrorException"
    log = log_path(int(local_cloud.rsplit(":", 1)[1])).read_text()
    assert "Invalid permissions on Lambda function ServerlessExample" in log

    deployer_ok(project, "up", "--version", "1.0.0", "--local")  # puts the permission back, nothing else
    assert fetch(url)[:2] == (200, b"<p>Hello world!</p>")


def test_what_is_not_wired_is_a_missing_authentication_token(project: Path, local_cloud: str) -> None:
    url = deployer_ok(project, "up", "--version", "1.0.0", "--local").strip()
    session = boto3.Session(region_name=REGION)
    gateway = session.client("apigateway", endpoint_url=local_cloud)
    function_arn = session.client("lambda", endpoint_url=local_cloud).get_function(FunctionName="ServerlessExample")
    function_arn = function_arn["Configuration"]["FunctionArn"]

    # An API made by hand with only `/`: its sub-paths have no resource.
    api_id = gateway.create_rest_api(name="root-only")["id"]
    root = gateway.get_resources(restApiId=api_id)["items"][0]["id"]
    put_lambda_proxy(gateway, api_id, root, "GET", function_arn)
    gateway.create_deployment(restApiId=api_id, stageName="test")
    hand_made = f"{local_cloud}/restapis/{api_id}/test/_user_request_/"
    assert fetch(hand_made)[:2] == (500, INTERNAL_ERROR)  # deployed, but the function does not let it in yet
    session.client("lambda", endpoint_url=local_cloud).add_permission(
        FunctionName="ServerlessExample",
        StatementId="root-only",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:{REGION}:123456789012:{api_id}/*/*",
    )
    assert fetch(hand_made)[:2] == (200, b"<p>Hello world!</p>")

    for refused in (
        f"{hand_made}some/path",  # no resource
        f"{local_cloud}/restapis/{api_id}/prod/_user_request_/",  # no such stage
        url.replace(url.split("/")[4], "nosuchapi0"),  # no such API
    ):
        status, body, headers = fetch(refused)
        assert (status, body) == (403, MISSING_TOKEN), refused
        assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    request = urllib.request.Request(hand_made, method="POST", data=b"{}")
    try:
        _direct.open(request, timeout=30)
        pytest.fail("POST on a GET-only resource was served")
    except urllib.error.HTTPError as error:
        assert (error.code, error.read()) == (403, MISSING_TOKEN)


def test_the_local_target_comes_from_the_flag_the_environment_or_deploy_toml(
    project: Path, local_cloud: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = deployer_ok(project, "up", "--version", "1.0.0", "--local").strip()
    monkeypatch.setenv("DEPLOYER_LOCAL", "1")
    assert json.loads(deployer_ok(project, "status", "--json"))["base_url"] == url
    assert json.loads(deployer_ok(project, "status", "--json", "--no-local"))["base_url"] is None
    monkeypatch.delenv("DEPLOYER_LOCAL")
    config = project / "deploy.toml"
    config.write_text(config.read_text() + "\n[target]\nlocal = true\n")
    assert json.loads(deployer_ok(project, "status", "--json"))["base_url"] == url
    assert deployer_ok(project, "up", "--version", "1.0.0").strip() == url  # nothing to change, same URL

    both = run_deployer(project, "up", "--version", "1.0.0", "--endpoint-url", "http://127.0.0.1:1")
    assert both.returncode == 2 and "--endpoint-url and --local" in both.stderr
    monkeypatch.setenv("DEPLOYER_LOCAL", "perhaps")
    assert run_deployer(project, "status").returncode == 2
    monkeypatch.setenv("DEPLOYER_LOCAL", "0")
    monkeypatch.setenv("DEPLOYER_LOCAL_PORT", "http")
    assert run_deployer(project, "status").returncode == 0  # not local: the port is not read
    config.write_text(config.read_text().replace("local = true", 'local = "yes"'))
    bad = run_deployer(project, "status")
    assert bad.returncode == 2 and "[target] local must be true or false" in bad.stderr


def test_local_stop_stops_it_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second emulator of its own: start, status, stop; the process is gone (reaped) and the port free."""
    port = free_port()
    monkeypatch.setenv("DEPLOYER_LOCAL_PORT", str(port))
    try:
        started = time.monotonic()
        deployer_ok(tmp_path, "local", "start")
        start_seconds = time.monotonic() - started
        again = run_deployer(tmp_path, "local", "start")
        assert again.returncode == 0 and "already running" in again.stderr
        status = json.loads(deployer_ok(tmp_path, "local", "status", "--json"))
        assert status["running"] and status["port"] == port
        pid = status["pid"]
        assert alive(pid)

        started = time.monotonic()
        stopped = run_deployer(tmp_path, "local", "stop")
        stop_seconds = time.monotonic() - started
        assert stopped.returncode == 0 and f"pid {pid}" in stopped.stderr, stopped.stderr
        assert not alive(pid) and port_is_free(port)
        assert gone(pid), "the emulator's process was left behind"
        assert not pid_path(port).exists() and not code_cache(port).exists()

        status = run_deployer(tmp_path, "local", "status")
        assert (status.returncode, status.stdout.split()[:2]) == (3, ["not", "running"])
        again = run_deployer(tmp_path, "local", "stop")
        assert again.returncode == 0 and "not running" in again.stderr
        print(f"local start {start_seconds:.2f}s, stop {stop_seconds:.2f}s")
    finally:
        stop_for_sure(port)


def test_a_port_held_by_another_program_is_refused(tmp_path: Path) -> None:
    """Say, LocalStack on 4566: `local status`, `local start` and `up --local` name the problem; exit 1."""
    other = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)  # answers 501 to everything
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        port = str(other.server_address[1])
        for arguments in (("local", "status", "--port", port), ("local", "start", "--port", port)):
            result = run_deployer(tmp_path, *arguments, timeout=60)
            assert result.returncode == 1 and "used by another program" in result.stderr, result.stderr
    finally:
        other.shutdown()
        other.server_close()


@pytest.mark.parametrize(
    ("absent", "named"),
    [("moto", "needs moto, which is not installed"), ("flask_cors", "needs moto's server (flask_cors)")],
)
def test_without_moto_start_names_the_extra_before_spawning_anything(
    monkeypatch: pytest.MonkeyPatch, absent: str, named: str
) -> None:
    """A plain `pip install` has no moto: every `--local` command goes through start(), which says what to install."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == absent else real_find_spec(name))

    def no_spawn(*arguments: object, **keywords: object) -> None:
        raise AssertionError("nothing may be spawned without moto")

    monkeypatch.setattr(control.subprocess, "Popen", no_spawn)
    monkeypatch.setattr(control, "status", no_spawn)  # nor the port probed
    with pytest.raises(UsageError) as raised:
        control.start(free_port())
    assert named in str(raised.value) and str(raised.value).endswith(": pip install 'deployer[local]'")
