"""Never harm the operator, round two (issue 20): careless arguments, signals, stale locks, tampered state and the
messages a careless CI script meets. Each test pins one case that once went wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deployer.cli import app
from tests.account import APP, BUCKET, OTHER, Account
from tests.support import run_deployer

STATE_KEY = f"deployer-state/{APP}/test/state.json"
LOCK_KEY = f"deployer-state/{APP}/test/lock.json"


def status_json(project: Path) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["status", "--json", "--config", str(project / "deploy.toml")])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def shared_state(account: Account) -> dict[str, Any]:
    return json.loads(account.client("s3").get_object(Bucket=BUCKET, Key=STATE_KEY)["Body"].read())


def change_the_code(project: Path, text: str) -> None:
    main = project / "function" / "main.py"
    main.write_text(main.read_text().replace("Hello world!", text))


# 1. `--stage ""` (an unset shell variable) once acted on the default stage: `down --yes --stage ""` deleted it.


@pytest.mark.parametrize("stage", ["", " ", "te st", "../test", "123"])
def test_an_empty_or_malformed_stage_is_refused_by_every_command_and_nothing_is_touched(
    cli, project: Path, aws_account: Account, stage: str
) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    state_before = shared_state(aws_account)
    commands: list[tuple[str, ...]] = [
        ("down", "--yes"),
        ("up", "--version", "1.0.1"),
        ("plan", "--version", "1.0.1"),
        ("rollback", "1.0.0"),
        ("promote", "1.0.0"),
        ("status",),
        ("unlock", "--yes"),
        ("invoke",),
        ("logs",),
    ]
    for command in commands:
        message = cli(*command, "--stage", stage, expect=2)
        assert f"--stage {stage!r}: a stage name must be" in message, command
    aws_account.assert_stack("v1.0.0/example.zip")
    assert shared_state(aws_account) == state_before
    assert [item["FunctionName"] for item in aws_account.functions()] == [APP]


# 17. The history once kept `up --version V` whatever else was typed: --force and --canary were lost.


def test_the_history_keeps_the_whole_command_line_that_ran(cli, project: Path, aws_account: Account) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    change_the_code(project, "Canary!")
    cli("up", "-v", "1.0.1", "--canary", "10", "--no-check", expect=0)
    change_the_code(project, "Forced")  # 1.0.1's bytes change: only --force replaces them
    cli("up", "--version", "1.0.1", "--force", "--canary", "25.5", expect=0)

    commands = [entry["command"] for entry in status_json(project)["history"]]
    config = str(project / "deploy.toml")
    assert commands == [
        f"up --version 1.0.0 --config {config}",
        f"up --version 1.0.1 --config {config} --canary 10 --no-check",
        f"up --version 1.0.1 --config {config} --canary 25.5 --force",
    ]


def test_the_command_line_kept_holds_no_password_of_an_endpoint_url(project: Path, monkeypatch) -> None:
    from deployer.cli import common
    from deployer.errors import DeployerError

    seen: list[str] = []
    real = common.command_line

    def recorded(context: Any) -> str:
        seen.append(real(context))  # what the lock and the history would name
        raise DeployerError("stop here")

    monkeypatch.setattr(common, "command_line", recorded)
    url = "http://user:s3cret@127.0.0.1:9"
    CliRunner().invoke(app, ["down", "--yes", "--endpoint-url", url, "--config", str(project / "deploy.toml")])
    assert seen == [f"down --config {project / 'deploy.toml'} --endpoint-url http://127.0.0.1:9 --yes"]


# 16. Messages: each of these once printed a wrong or "unexpected" line.


def put_shared_state(account: Account, **changes: Any) -> None:
    account.client("s3").put_object(Bucket=BUCKET, Key=STATE_KEY, Body=json.dumps(shared_state(account) | changes))


def test_a_release_record_without_its_handler_is_one_line(cli, project: Path, aws_account: Account) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    record = dict(shared_state(aws_account)["releases"]["1.0.0"], lambda_version=None)
    del record["handler"]
    put_shared_state(aws_account, releases={**shared_state(aws_account)["releases"], "0.9.0": record})
    message = cli("rollback", "0.9.0", expect=2)
    assert "the state's record of release 0.9.0 has no handler, so the release cannot be rebuilt" in message
    aws_account.assert_stack("v1.0.0/example.zip")


@pytest.mark.parametrize("weight", ["10%", True, 1.5, None])
def test_a_canary_weight_that_is_not_a_share_is_one_line(cli, aws_account: Account, weight: object) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    put_shared_state(aws_account, canary={"version": "1.0.0", "lambda_version": "1", "weight": weight})
    for command in (("status",), ("up", "--version", "1.0.0")):
        message = cli(*command, expect=2)
        assert f"the canary's weight is {weight!r}, not a share between 0 and 1" in message, command


def test_deeply_nested_toml_is_a_usage_error(cli, project: Path) -> None:
    config = project / "deploy.toml"
    config.write_text(config.read_text() + "deep = " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nests arrays or tables too deeply" in cli("status", expect=2)


def test_a_deeply_nested_state_is_one_line(cli, aws_account: Account) -> None:
    aws_account.client("s3").create_bucket(Bucket=BUCKET)
    aws_account.client("s3").put_object(Bucket=BUCKET, Key=STATE_KEY, Body=b"[" * 100_000 + b"]" * 100_000)
    assert "nests too deeply to be a deployer state" in cli("status", expect=2)


def test_a_region_the_local_cloud_does_not_emulate_is_refused_before_it_starts(
    cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto keeps a backend per region botocore knows; for any other it answered 500 to every call."""
    config = project / "deploy.toml"
    config.write_text(config.read_text().replace('region = "us-east-1"', 'region = "xx-moon-1"'))

    def started(*_: object, **__: object) -> None:
        raise AssertionError("the local cloud was started for a region it cannot emulate")

    monkeypatch.setattr("deployer.local.target.start", started)
    assert "region 'xx-moon-1' is not an AWS region the local cloud emulates" in cli(
        "up", "--version", "1.0.0", "--local", expect=2
    )


@pytest.mark.parametrize("since", ["99999999d", "9" * 15 + "s", "9" * 5000 + "d", "0001-01-01"])
def test_logs_since_before_1970_is_a_usage_error(cli, aws_account: Account, since: str) -> None:
    message = cli("logs", "--since", since, expect=2)
    assert "--since" in message and ("1970" in message or "neither a duration" in message)


def test_status_into_a_closed_pipe_ends_quietly(project: Path) -> None:
    """`deployer status | head -1`: head leaves after one line, the next write meets a closed pipe."""
    config = project / "deploy.toml"
    config.write_text(config.read_text() + '\n[state]\nbackend = "local"\n')
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before deployer writes: deterministic, not 1 run in 10
    try:
        done = subprocess.run(
            [sys.executable, "-m", "deployer", "status"],
            cwd=project,
            stdout=writer,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=60,
        )
    finally:
        os.close(writer)
    assert (done.returncode, done.stderr) == (0, "")


def test_serve_on_an_empty_host_is_refused(cli) -> None:
    """An unset variable in `--host "$HOST"` would listen on every interface."""
    assert '--host "" names no address' in cli("serve", "--host", "", expect=2)


def test_text_from_elsewhere_keeps_its_colons(capsys: pytest.CaptureFixture[str]) -> None:
    """`-r /etc/passwd` in requirements.txt: pip's error quotes `root:x:0:0:...`, which Rich made `root❌0:0`."""
    from deployer import output

    output.plain("Invalid requirement: 'root:x:0:0:root:/root:/bin/bash'")
    output.error("pip could not install: root:x:0:0:root:/root:/bin/bash")
    printed = capsys.readouterr().err
    assert printed.count("root:x:0:0") == 2 and "❌" not in printed


class NotAws:
    """A web server that answers 404 to everything: not S3."""

    def __init__(self) -> None:
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_bare_404_from_an_endpoint_that_is_not_aws_is_not_nothing_deployed(cli, project: Path) -> None:
    """S3 answers a GetObject of a missing key with a NoSuchKey XML body (S3 API reference, GetObject, "Errors"),
    a missing bucket with NoSuchBucket: a 404 with neither is not S3 answering."""
    endpoint = NotAws()
    try:
        message = cli("status", "--endpoint-url", endpoint.url, expect=1)
    finally:
        endpoint.close()
    assert f"{endpoint.url} answered s3:GetObject with a bare 404, not S3's NoSuchKey" in message
    assert "not answering as AWS" in message and "nothing deployed" not in message


# 3. A handler taking 35 s with `timeout = 40` passed its check and went live: every request got a 504.


def test_a_check_answered_after_api_gateways_29_seconds_fails_and_the_alias_stays(
    cli, project: Path, aws_account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """API Gateway's integration timeout is 29 s (DESIGN.md, "API Gateway answers"; AWS's API Gateway quotas page:
    "Integration timeout: 50 milliseconds - 29 seconds"); after it the client gets 504 whatever the function does."""
    cli("up", "--version", "1.0.0", expect=0)
    config = project / "deploy.toml"
    config.write_text(config.read_text().replace("timeout = 3", "timeout = 40"))
    change_the_code(project, "Slow")
    moments = iter([1000.0, 1035.0])  # the invoke starts, and ends 35 s later
    monkeypatch.setattr("deployer.check.clock", lambda: next(moments))

    message = cli("up", "--version", "1.0.1", expect=1)
    assert "release 1.0.1 (version 2) failed its check, GET /: it answered after 35s" in message
    assert "API Gateway waits 29s at most" in message
    alias = aws_account.client("lambda").get_alias(FunctionName=APP, Name="test")
    assert (alias["FunctionVersion"], alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})) == ("1", {})
    assert status_json(project)["version"] == "1.0.0"


# 4. `unlock --yes` removed the lock of a run still alive on this host; that run then said "nothing was
# overwritten" after changing $LATEST.


def put_lock(account: Account, holder: object) -> None:
    s3 = account.client("s3")
    if "Buckets" in s3.list_buckets() and not s3.list_buckets()["Buckets"]:
        s3.create_bucket(Bucket=BUCKET)
    body = holder if isinstance(holder, bytes) else json.dumps(holder).encode()
    s3.put_object(Bucket=BUCKET, Key=LOCK_KEY, Body=body)


def lock_body(account: Account) -> bytes | None:
    s3 = account.client("s3")
    try:
        return s3.get_object(Bucket=BUCKET, Key=LOCK_KEY)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None


def a_dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def holder_here(pid: int) -> dict[str, object]:
    import socket

    return {"user": "ci", "host": socket.gethostname(), "pid": pid, "command": "up --version 1.0.0", "since": "now"}


def test_unlock_refuses_the_lock_of_a_run_alive_on_this_host(cli, aws_account: Account) -> None:
    put_lock(aws_account, holder_here(os.getpid()))  # this very test process: certainly alive
    message = cli("unlock", "--yes", expect=1)
    assert f"(pid {os.getpid()} on " in message and "which is still running on this host: nothing removed" in message
    assert json.loads(lock_body(aws_account) or b"{}")["pid"] == os.getpid()


def test_a_lock_whose_holder_died_on_this_host_says_unlock_is_safe(cli, aws_account: Account) -> None:
    pid = a_dead_pid()
    put_lock(aws_account, holder_here(pid))
    refused = cli("up", "--version", "1.0.0", expect=1)
    gone = f"but pid {pid} is no longer running on this host: that run is gone, so unlocking is safe: `deployer unlock`"
    assert gone in refused
    removed = cli("unlock", "--yes", expect=0)
    assert f"removed the lock held by `up --version 1.0.0` (pid {pid} on" in removed
    assert "no longer running on this host" in removed and lock_body(aws_account) is None


def test_a_stale_state_write_after_aws_writes_says_what_really_changed(
    cli, project: Path, aws_account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    cli("up", "--version", "1.0.0", expect=0)
    session = boto3.Session()

    def another_run_writes_the_state(**_: object) -> None:
        put_shared_state(aws_account, history=[])  # a new ETag: this run's next write is refused (412)

    session.events.register("after-call.lambda.UpdateFunctionCode", another_run_writes_the_state)
    monkeypatch.setattr("deployer.aws.boto3.Session", lambda: session)
    change_the_code(project, "Changed")
    message = cli("up", "--version", "1.0.1", expect=1)
    assert "changed since this run read it (another run wrote it): it was not overwritten" in message
    already = "but this run had already changed AWS (PutObject, UpdateFunctionCode, PublishVersion), which the state"
    assert already in message  # the artifact's upload, $LATEST and a new version: the state's own writes left out
    assert "nothing was overwritten" not in message


# 6. A lock object that is not a JSON object blocked the stage, and `unlock` refused to remove it.


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (b"garbage", "'garbage'"),
        (b"null", "'null'"),
        (b"[1]", "'[1]'"),
        (b"\x1b[2J[bold]boom\x07\n" + b"A" * 500, "'\\x1b[2J[bold]boom\\x07\\n" + "A" * 177 + "…'"),
    ],
)
def test_unlock_shows_a_lock_that_is_not_a_json_object_and_removes_it(
    cli, aws_account: Account, body: bytes, shown: str
) -> None:
    put_lock(aws_account, body)
    assert "is not a deployer lock" in cli("up", "--version", "1.0.0", expect=2)
    removed = cli("unlock", "--yes", expect=0)
    assert f"removed the lock held by an object that is not a deployer lock: {shown}" in removed
    assert "\x1b" not in removed and "\x07" not in removed
    assert lock_body(aws_account) is None
    cli("up", "--version", "1.0.0", expect=0)


# 5. SIGTERM (CI cancelled, `timeout`, `docker stop`) and SIGHUP (a closed terminal) left the lock behind.


@pytest.mark.parametrize(("name", "code"), [("TERM", 143), ("HUP", 129)])
def test_sigterm_and_sighup_release_the_lock_as_ctrl_c_does(
    project: Path, moto_server: Account, name: str, code: int
) -> None:
    from tests.support import KILL_AFTER_CALL

    environment = {**os.environ, "DEPLOYER_TEST_AFTER_OPERATION": "CreateFunction", "DEPLOYER_TEST_SIGNAL": name}
    stopped = subprocess.run(
        [sys.executable, str(KILL_AFTER_CALL), "up", "--version", "1.0.0"],
        cwd=project,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stopped.returncode == code, stopped.stderr
    assert f"error: stopped by SIG{name}: released the state lock; run the same command again" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert lock_body(moto_server) is None
    again = run_deployer(project, "up", "--version", "1.0.0")  # no `deployer unlock` needed
    assert again.returncode == 0, again.stderr
    moto_server.assert_stack("v1.0.0/example.zip")


# 7. A release with the same code and configuration as the live one was recorded nowhere (`rollback` could not find
# it); the same release name with another configuration was published again, as a second `deployer release A`.


def lambda_versions(account: Account) -> list[tuple[str, str]]:
    versions = account.client("lambda").list_versions_by_function(FunctionName=APP)["Versions"]
    return [(item["Version"], item.get("Description", "")) for item in versions if item["Version"] != "$LATEST"]


def test_a_release_alike_the_live_one_is_recorded_shown_and_can_be_rolled_back_to(
    cli, project: Path, aws_account: Account
) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    assert "release 1.0.0 → 1.0.1" in cli("plan", "--version", "1.0.1", expect=3)
    cli("up", "--version", "1.0.1", expect=0)  # the very same code and configuration
    assert lambda_versions(aws_account) == [("1", "deployer release 1.0.0")]  # nothing published twice
    status = status_json(project)
    assert (status["version"], status["lambda_version"], status["key"]) == ("1.0.1", "1", "v1.0.1/example.zip")
    assert shared_state(aws_account)["releases"]["1.0.1"]["lambda_version"] == "1"
    assert [entry["action"] for entry in status["history"]] == ["up", "up"]
    cli("plan", "--version", "1.0.1", expect=0)

    change_the_code(project, "Version two")
    cli("up", "--version", "1.0.2", expect=0)
    cli("rollback", "1.0.1", expect=0)
    alias = aws_account.client("lambda").get_alias(FunctionName=APP, Name="test")
    assert alias["FunctionVersion"] == "1" and status_json(project)["version"] == "1.0.1"


def test_the_same_release_with_another_configuration_is_refused_unless_forced(
    cli, project: Path, aws_account: Account
) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    config = project / "deploy.toml"
    config.write_text(config.read_text().replace("memory = 128", "memory = 256"))
    message = cli("up", "--version", "1.0.0", expect=1)
    assert "release 1.0.0 is already published with another memory; a release is immutable" in message
    assert "pass --force" in message
    assert lambda_versions(aws_account) == [("1", "deployer release 1.0.0")]
    assert aws_account.client("lambda").get_function(FunctionName=APP)["Configuration"]["MemorySize"] == 128

    cli("up", "--version", "1.0.0", "--force", expect=0)
    assert [number for number, _ in lambda_versions(aws_account)] == ["1", "2"]
    assert (
        aws_account.client("lambda").get_function(FunctionName=APP, Qualifier="test")["Configuration"]["MemorySize"]
        == 256
    )


def test_promote_takes_force_as_up_does_for_a_release_shipped_again_with_another_configuration(
    cli, project: Path, aws_account: Account
) -> None:
    """The refusal says "pass --force": promote takes it too (it had none, so the advice could not be followed)."""
    cli("up", "--version", "1.0.0", expect=0)
    cli("promote", "1.0.0", "--stage", "prod", expect=0)
    config = project / "deploy.toml"
    config.write_text(config.read_text() + "\n[stages.prod]\nmemory = 256\n")
    assert "pass --force" in cli("promote", "1.0.0", "--stage", "prod", expect=1)
    prod = f"{APP}-prod"
    functions = aws_account.client("lambda")
    assert functions.get_function(FunctionName=prod, Qualifier="prod")["Configuration"]["MemorySize"] == 128
    cli("promote", "1.0.0", "--stage", "prod", "--force", expect=0)
    assert functions.get_function(FunctionName=prod, Qualifier="prod")["Configuration"]["MemorySize"] == 256


# 8. A state edited to name another app's API: rollback printed and stored that app's URL; errors advised adopting
# another app's resources.


def test_rollback_never_prints_nor_stores_the_url_of_another_apps_api(
    cli, project: Path, other_project: Path, aws_account: Account
) -> None:
    victim_url = CliRunner().invoke(app, ["up", "--version", "1.0.0", "--config", str(project / "deploy.toml")])
    victim_url = victim_url.stdout.strip()
    victim = shared_state(aws_account)
    others = other_project / "deploy.toml"
    own = CliRunner().invoke(app, ["up", "--version", "1.0.0", "--config", str(others)]).stdout.strip()
    other_key = f"deployer-state/{OTHER}/test/state.json"
    s3 = aws_account.client("s3")
    forged = json.loads(s3.get_object(Bucket=BUCKET, Key=other_key)["Body"].read())
    forged |= {key: victim[key] for key in ("rest_api_id", "root_resource_id", "proxy_resource_id", "base_url")}
    s3.put_object(Bucket=BUCKET, Key=other_key, Body=json.dumps(forged))

    result = CliRunner().invoke(app, ["rollback", "1.0.0", "--config", str(others)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == own != victim_url
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key=other_key)["Body"].read())
    assert stored["base_url"] == own and stored["rest_api_id"] != victim["rest_api_id"]
    assert victim_url not in json.dumps(stored)


def test_adopting_by_tag_is_advised_only_for_what_no_other_app_claims(
    cli, project: Path, other_project: Path, aws_account: Account
) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    lambda_client = aws_account.client("lambda")
    role = aws_account.client("iam").get_role(RoleName=f"{APP}-lambda-exec")["Role"]["Arn"]
    zipped = b"PK\x05\x06" + b"\0" * 18
    lambda_client.create_function(
        FunctionName=OTHER, Runtime="python3.13", Role=role, Handler="main.handler", Code={"ZipFile": zipped},
        Tags={"deployer:app": APP},
    )  # fmt: skip
    claimed = cli("up", "--version", "1.0.0", expect=1, config=other_project / "deploy.toml")
    assert f"a function named {OTHER} already exists but deployer made it for app {APP}" in claimed
    assert "adopt" not in claimed and "tag it" not in claimed

    lambda_client.untag_resource(Resource=lambda_client.get_function(FunctionName=OTHER)["Configuration"][
        "FunctionArn"], TagKeys=["deployer:app"])  # fmt: skip
    unclaimed = cli("up", "--version", "1.0.0", expect=1, config=other_project / "deploy.toml")
    assert f"tag it deployer:app={OTHER} to adopt it" in unclaimed
