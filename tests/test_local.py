"""`deployer local` and `--local`, as a user runs them: the guide's story in a browser, on a local cloud.

Releases run there as on AWS: each is a published version behind the stage's alias, checked by Lambda
Invoke before the alias moves, and the API calls the alias (its canary share included).

Every test here talks to a real emulator process on a free port (never 4566, so a user's own local
cloud is left alone): conftest's `local_cloud`, started once for the session and reset between tests.
The session's finalizer stops it, and kills it if it does not stop.
"""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import math
import os
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from deployer.errors import UsageError
from deployer.local import code_cache, control, log_path, pid_path
from deployer.local.target import session
from deployer.process import alive
from tests.account import APP, Account
from tests.browser import chromium_page
from tests.support import (
    ARN,
    REGION,
    call,
    deployer_ok,
    edit,
    fetch,
    free_port,
    gone,
    in_process_ok,
    make_greeter,
    port_is_free,
    put_lambda_proxy,
    run_deployer,
    run_in_process,
    stop_for_sure,
)

MISSING_TOKEN = b'{"message":"Missing Authentication Token"}'
INTERNAL_ERROR = b'{"message": "Internal server error"}'
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def test_the_guides_story_in_a_browser(project: Path, local_cloud: str, tmp_path: Path, moto_server: Account) -> None:
    """up 1.0.0 shows Hello world!; up 1.0.1 Bonjour au monde!; rollback 1.0.0 Hello world! again; down: 403."""
    profile = tmp_path / "chromium-profile"
    url = in_process_ok(project, "up", "--version", "1.0.0", "--local").strip()
    api_id = session(REGION).client("apigateway", endpoint_url=local_cloud).get_rest_apis()["items"][0]["id"]
    assert url == f"{local_cloud}/restapis/{api_id}/test/_user_request_/"
    account = Account(session(REGION), endpoint_url=local_cloud)
    account.assert_stack("v1.0.0/example.zip")  # the API calls the alias `test`, which the grant is on
    assert "Hello world!" in chromium_page(url, profile)
    status, body, _ = fetch(f"{url}some/deep/path?x=1")  # the {proxy+} resource
    assert (status, body) == (200, b"<p>Hello world!</p>")

    main = project / "function" / "main.py"
    main.write_text(main.read_text().replace("Hello world!", "Bonjour au monde!"))
    assert in_process_ok(project, "up", "--version", "1.0.1", "--local").strip() == url
    assert "Bonjour au monde!" in chromium_page(url, profile)
    account.assert_stack("v1.0.1/example.zip")

    assert in_process_ok(project, "rollback", "1.0.0", "--local").strip() == url
    assert "Hello world!" in chromium_page(url, profile)
    assert account.assert_stack("v1.0.0/example.zip")["alias"]["FunctionVersion"] == "1"

    status_json = json.loads(in_process_ok(project, "status", "--local", "--json"))
    assert (status_json["version"], status_json["base_url"]) == ("1.0.0", url)
    assert status_json["local"]["running"] is True
    # A real deployment's state is apart (here an emulated account stands for AWS: AWS_ENDPOINT_URL).
    assert json.loads(in_process_ok(project, "status", "--json"))["base_url"] is None

    in_process_ok(project, "down", "--yes", "--local")
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
    url = in_process_ok(project, "up", "--version", "1.0.0", "--local").strip()
    assert fetch(url)[:2] == (200, b"<p>Hello world!</p>")


def test_the_api_answers_500_until_the_alias_lets_it_in(project: Path, local_cloud: str) -> None:
    """The guide's 'not functional yet' step: without the alias's permission, API Gateway says 500. The grant is
    in the alias's own policy, as Lambda keeps it: the function's policy and its RemovePermission do not see it."""
    url = in_process_ok(project, "up", "--version", "1.0.0", "--local").strip()
    functions = session(REGION).client("lambda", endpoint_url=local_cloud)
    [grant] = json.loads(functions.get_policy(FunctionName=APP, Qualifier="test")["Policy"])["Statement"]
    alias_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{APP}:test"
    assert (grant["Sid"], grant["Resource"]) == ("deployer-apigateway-test", alias_arn)
    with pytest.raises(functions.exceptions.ResourceNotFoundException):
        functions.get_policy(FunctionName=APP)  # the function's own policy: empty
    with pytest.raises(functions.exceptions.ResourceNotFoundException):
        functions.remove_permission(FunctionName=APP, StatementId="deployer-apigateway-test")
    assert fetch(url)[:2] == (200, b"<p>Hello world!</p>")

    functions.remove_permission(FunctionName=APP, StatementId="deployer-apigateway-test", Qualifier="test")
    status, body, headers = fetch(url)
    assert (status, body) == (500, INTERNAL_ERROR)
    assert headers["x-amzn-ErrorType"] == "InternalServerErrorException"
    log = log_path(int(local_cloud.rsplit(":", 1)[1])).read_text()
    assert "Invalid permissions on Lambda function ServerlessExample" in log

    functions.add_permission(  # a grant on the function does not let the API invoke the alias
        FunctionName=APP,
        StatementId="deployer-apigateway-test",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:{REGION}:123456789012:{url.split('/')[4]}/*/*",
    )
    assert fetch(url)[:2] == (500, INTERNAL_ERROR)

    in_process_ok(project, "up", "--version", "1.0.0", "--local")  # puts the alias's permission back, nothing else
    assert fetch(url)[:2] == (200, b"<p>Hello world!</p>")


def test_what_is_not_wired_is_a_missing_authentication_token(project: Path, local_cloud: str) -> None:
    url = in_process_ok(project, "up", "--version", "1.0.0", "--local").strip()
    local = session(REGION)
    gateway = local.client("apigateway", endpoint_url=local_cloud)
    function_arn = local.client("lambda", endpoint_url=local_cloud).get_function(FunctionName="ServerlessExample")
    function_arn = function_arn["Configuration"]["FunctionArn"]

    # An API made by hand with only `/`: its sub-paths have no resource.
    api_id = gateway.create_rest_api(name="root-only")["id"]
    root = gateway.get_resources(restApiId=api_id)["items"][0]["id"]
    put_lambda_proxy(gateway, api_id, root, "GET", function_arn)
    gateway.create_deployment(restApiId=api_id, stageName="test")
    hand_made = f"{local_cloud}/restapis/{api_id}/test/_user_request_/"
    assert fetch(hand_made)[:2] == (500, INTERNAL_ERROR)  # deployed, but the function does not let it in yet
    local.client("lambda", endpoint_url=local_cloud).add_permission(
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
    project: Path, local_cloud: str, monkeypatch: pytest.MonkeyPatch, moto_server: Account
) -> None:
    """(moto_server stands for AWS where a command is not local: AWS_ENDPOINT_URL points at it.)"""
    url = in_process_ok(project, "up", "--version", "1.0.0", "--local").strip()
    monkeypatch.setenv("DEPLOYER_LOCAL", "1")
    assert json.loads(in_process_ok(project, "status", "--json"))["base_url"] == url
    assert json.loads(in_process_ok(project, "status", "--json", "--no-local"))["base_url"] is None
    monkeypatch.delenv("DEPLOYER_LOCAL")
    config = project / "deploy.toml"
    config.write_text(config.read_text() + "\n[target]\nlocal = true\n")
    assert json.loads(in_process_ok(project, "status", "--json"))["base_url"] == url
    assert in_process_ok(project, "up", "--version", "1.0.0").strip() == url  # nothing to change, same URL

    both = run_in_process(project, "up", "--version", "1.0.0", "--endpoint-url", "http://127.0.0.1:1")
    assert both.returncode == 2 and "--endpoint-url and --local" in both.stderr
    monkeypatch.setenv("DEPLOYER_LOCAL", "perhaps")
    assert run_in_process(project, "status").returncode == 2
    monkeypatch.setenv("DEPLOYER_LOCAL", "0")
    monkeypatch.setenv("DEPLOYER_LOCAL_PORT", "http")
    assert run_in_process(project, "status").returncode == 0  # not local: the port is not read
    config.write_text(config.read_text().replace("local = true", 'local = "yes"'))
    bad = run_in_process(project, "status")
    assert bad.returncode == 2 and "[target] local must be true or false" in bad.stderr


def test_a_rollback_brings_back_the_renamed_handler_its_memory_and_its_environment(
    project: Path, local_cloud: str
) -> None:
    """2.0.0: main.py, 128 MB, GREETING. 2.1.0: app.py (handler app.handler), 256 MB, MODE. Rolling back to 2.0.0
    serves 2.0.0's page, from a version that has 2.0.0's handler, memory and environment."""
    config, source = project / "deploy.toml", project / "function"
    edit(config, "timeout = 3", 'timeout = 3\nenvironment = { GREETING = "hello" }')
    url = in_process_ok(project, "up", "--version", "2.0.0", "--local").strip()
    (source / "app.py").write_text((source / "main.py").read_text().replace("Hello world!", "Hello from app.py"))
    (source / "main.py").unlink()
    edit(config, 'handler = "main.handler"', 'handler = "app.handler"')
    edit(config, "memory = 128", "memory = 256")
    edit(config, 'environment = { GREETING = "hello" }', 'environment = { MODE = "new" }')
    in_process_ok(project, "up", "--version", "2.1.0", "--local")
    assert fetch(url)[:2] == (200, b"<p>Hello from app.py</p>")

    in_process_ok(project, "rollback", "2.0.0", "--local")
    assert fetch(url)[:2] == (200, b"<p>Hello world!</p>")
    functions = session(REGION).client("lambda", endpoint_url=local_cloud)
    live = functions.get_function_configuration(
        FunctionName=APP, Qualifier=functions.get_alias(FunctionName=APP, Name="test")["FunctionVersion"]
    )
    assert (live["Handler"], live["MemorySize"], live["Description"]) == ("main.handler", 128, "deployer release 2.0.0")
    assert live["Environment"]["Variables"] == {"GREETING": "hello"}
    latest = functions.get_function_configuration(FunctionName=APP)
    assert (latest["Handler"], latest["MemorySize"]) == ("app.handler", 256)  # $LATEST is never served


def test_a_release_that_raises_is_refused_and_never_served(project: Path, local_cloud: str) -> None:
    url = in_process_ok(project, "up", "--version", "1.0.0", "--local").strip()
    main = project / "function" / "main.py"
    main.write_text("def handler(event, context):\n    raise LookupError('no greeting configured')\n")
    refused = run_in_process(project, "up", "--version", "1.0.1", "--local")
    assert refused.returncode == 1, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "LookupError: no greeting configured" in errors[0], refused.stderr
    assert "Traceback" not in refused.stderr
    for _ in range(5):
        assert fetch(url)[:2] == (200, b"<p>Hello world!</p>")
    functions = session(REGION).client("lambda", endpoint_url=local_cloud)
    assert functions.get_alias(FunctionName=APP, Name="test")["FunctionVersion"] == "1"


# A canary's share: n requests, each the new version with probability p (the alias's weight) independently, so
# the count of new pages is Binomial(n, p). With n = 400 and p = 0.3 (mean 120, standard deviation 9.2), a
# correct router lands outside [76, 167] with probability P(X <= 75) + P(X >= 168) = 2.03e-7 + 2.41e-7 = 4.4e-7,
# under one in a million (computed exactly below); a router that ignored the weight (0 or 400 new pages), or
# gave the canary the primary's share (mean 280), is outside by far more than 15 standard deviations.
CANARY_REQUESTS, CANARY_WEIGHT, CANARY_BOUNDS = 400, 0.3, (76, 167)


def binomial_outside(n: int, p: float, low: int, high: int) -> float:
    """P(X < low) + P(X > high) for X ~ Binomial(n, p), summed exactly."""
    return math.fsum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1) if not low <= k <= high)


def test_a_canary_gets_its_share_of_the_requests_then_up_gives_it_all(project: Path, local_cloud: str) -> None:
    assert binomial_outside(CANARY_REQUESTS, CANARY_WEIGHT, *CANARY_BOUNDS) < 1e-6
    url = in_process_ok(project, "up", "--version", "1.0.0", "--local").strip()
    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")
    in_process_ok(project, "up", "--local", "--version", "1.1.0", "--canary", "30")
    pages = []
    for _ in range(CANARY_REQUESTS):
        status, body, _ = fetch(url)
        assert status == 200, body
        pages.append(body)
    assert set(pages) == {b"<p>Hello world!</p>", b"<p>Bonjour au monde!</p>"}
    new = pages.count(b"<p>Bonjour au monde!</p>")
    low, high = CANARY_BOUNDS
    assert low <= new <= high, f"{new} of {CANARY_REQUESTS} requests got the canary (weight {CANARY_WEIGHT})"

    in_process_ok(project, "up", "--version", "1.1.0", "--local")  # no --canary: all of it
    assert {fetch(url)[1] for _ in range(50)} == {b"<p>Bonjour au monde!</p>"}


def test_lambda_invoke_on_the_local_cloud_answers_as_lambda_does(local_cloud: str) -> None:
    """Through boto3, as `up`'s check calls it: the result, a function error, a missing alias, the log's tail."""
    functions = make_greeter(Account(session(REGION), endpoint_url=local_cloud))
    answer, result = call(functions, {"n": 1}, Qualifier="live", LogType="Tail")
    assert (answer["StatusCode"], answer["ExecutedVersion"], result["page"]) == (200, "1", "one")
    assert result["invoked"] == f"{ARN}:live"
    log = base64.b64decode(answer["LogResult"]).decode()
    assert 'handling {"n": 1}' in log and "to stderr too" in log and " Version: 1" in log.splitlines()[0]

    answer, error = call(functions, {"fail": True}, Qualifier="2")
    assert (answer["StatusCode"], answer["FunctionError"], answer["ExecutedVersion"]) == (200, "Unhandled", "2")
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "asked to fail")

    with pytest.raises(functions.exceptions.ResourceNotFoundException) as raised:
        call(functions, Qualifier="prod")
    assert raised.value.response["Error"]["Message"] == f"Function not found: {ARN}:prod"
    assert call(functions, InvocationType="DryRun")[0]["StatusCode"] == 204


def test_the_local_cloud_never_reuses_a_version_number(local_cloud: str) -> None:
    functions = make_greeter(Account(session(REGION), endpoint_url=local_cloud))
    functions.delete_function(FunctionName="greeter", Qualifier="2")
    assert functions.publish_version(FunctionName="greeter")["Version"] == "3"  # moto alone says "2" again
    assert call(functions, Qualifier="3")[1]["page"] == "latest"


def test_local_stop_stops_it_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second emulator of its own: start, status, stop; the process is gone (reaped) and the port free. The start
    and the stop are `deployer` processes, as a user runs them; the commands that find it running or stopped run
    in this process (the same answers, without an interpreter started for each)."""
    port = free_port()
    monkeypatch.setenv("DEPLOYER_LOCAL_PORT", str(port))
    try:
        started = time.monotonic()
        deployer_ok(tmp_path, "local", "start")
        start_seconds = time.monotonic() - started
        again = run_in_process(tmp_path, "local", "start")
        assert again.returncode == 0 and "already running" in again.stderr
        status = json.loads(in_process_ok(tmp_path, "local", "status", "--json"))
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

        status = run_in_process(tmp_path, "local", "status")
        assert (status.returncode, status.stdout.split()[:2]) == (3, ["not", "running"])
        again = run_in_process(tmp_path, "local", "stop")
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


def test_the_deployed_api_sees_header_names_and_repeated_headers_as_the_client_sent_them(
    project: Path, local_cloud: str
) -> None:
    """Over real HTTP, not only in the data plane: the emulator hands the recorded headers on."""
    main = project / "function" / "main.py"
    main.write_text(
        "import json\n\n"
        "def handler(event, context):\n"
        "    return {'statusCode': 200, 'body': json.dumps([event['headers'], event['multiValueHeaders']])}\n"
    )
    url = urlsplit(in_process_ok(project, "up", "--version", "1.0.0", "--local").strip())
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.putrequest("GET", f"{url.path}headers")
    for name, value in (("x-MiXeD-Case", "kept"), ("Cookie", "a=1"), ("Cookie", "b=2")):
        connection.putheader(name, value)
    connection.endheaders()
    headers, multi = json.loads(connection.getresponse().read())
    connection.close()
    assert headers["x-MiXeD-Case"] == "kept" and "X-Mixed-Case" not in headers
    assert multi["Cookie"] == ["a=1", "b=2"] and headers["Cookie"] == "b=2"  # the last in headers, as AWS
