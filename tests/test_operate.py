"""`deployer invoke` and `deployer logs`: operate what is deployed, in-process (moto, whose Lambda Invoke runs the
function and writes its log as the local cloud does) and on the local cloud, as a user runs them.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from deployer import operate
from deployer.cli import app
from deployer.errors import UsageError
from tests.account import APP
from tests.support import fetch, in_process_ok, run_in_process

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (?P<id>\S+) (?P<message>.*)$")

# Answers GET / (the check) with a page; /fail raises, /malformed and /down answer what API Gateway maps to 5xx.
HANDLER = """\
import base64, json

def handler(event, context):
    print("serving", event["path"])
    path = event["path"]
    if path == "/fail":
        raise LookupError("no page at " + path)
    if path == "/malformed":
        return {"statusCode": 200, "body": {"not": "a string"}}
    if path == "/down":
        return {"statusCode": 503, "body": "down for maintenance"}
    if path == "/echo":
        body = event["body"]
        if event["isBase64Encoded"]:
            body = base64.b64decode(body).decode()
        seen = {key: event[key] for key in ("httpMethod", "path", "queryStringParameters")}
        seen.update(header=event["headers"].get("X-Test"), body=body, stage=event["requestContext"]["stage"])
        return {"statusCode": 201, "headers": {"X-Seen": "yes"}, "body": json.dumps(seen)}
    return {"statusCode": 200, "headers": {"Content-Type": "text/html"}, "body": "<p>Hello from " + path + "</p>"}
"""


@pytest.fixture
def app_project(project: Path) -> Path:
    (project / "function" / "main.py").write_text(HANDLER)
    return project


def run(project: Path, *arguments: str) -> Result:
    """The CLI in-process, stdout and stderr apart."""
    return CliRunner().invoke(app, [*arguments, "--config", str(project / "deploy.toml")])


def ok(project: Path, *arguments: str) -> Result:
    result = run(project, *arguments)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def log_lines(text: str) -> list[tuple[str, str]]:
    """(request id, message) of each line `deployer logs` printed (a message may span lines: a traceback)."""
    return [(found["id"], found["message"]) for found in map(LINE.match, text.splitlines()) if found]


# invoke, in-process


def test_invoke_sends_the_event_api_gateway_would_and_prints_the_answer(app_project: Path, aws_account) -> None:
    ok(app_project, "up", "--version", "1.0.0")
    result = ok(
        app_project, "invoke", "--path", "/echo?page=2", "-X", "post", "-H", "X-Test: yes please", "--data", "hi"
    )
    seen = json.loads(result.stdout)
    assert seen == {
        "httpMethod": "POST",
        "path": "/echo",
        "queryStringParameters": {"page": "2"},
        "header": "yes please",
        "body": "hi",
        "stage": "test",
    }
    lines = result.stderr.splitlines()
    assert lines[0] == "201 Created"
    assert "X-Seen: yes" in lines and "Content-Type: application/json" in lines

    page = ok(app_project, "invoke", "--path", "/x")
    assert (page.stdout, page.stderr.splitlines()[0]) == ("<p>Hello from /x</p>", "200 OK")


def test_data_from_a_file_and_a_raw_event(app_project: Path, aws_account, tmp_path: Path) -> None:
    ok(app_project, "up", "--version", "1.0.0")
    (tmp_path / "body.txt").write_text("from a file")
    assert json.loads(ok(app_project, "invoke", "--path", "/echo", "-d", f"@{tmp_path / 'body.txt'}").stdout)[
        "body"
    ] == ("from a file")

    (tmp_path / "event.json").write_text(json.dumps({"path": "/raw"}))
    raw = ok(app_project, "invoke", "--event", str(tmp_path / "event.json"))
    answer = json.loads(raw.stdout)  # the function's answer itself, not its HTTP rendering
    assert answer["body"] == "<p>Hello from /raw</p>" and answer["statusCode"] == 200


def test_a_raising_handler_exits_1_with_its_error_and_its_log_tail(app_project: Path, aws_account) -> None:
    ok(app_project, "up", "--version", "1.0.0")
    result = run(app_project, "invoke", "--path", "/fail")
    assert result.exit_code == 1 and result.stdout == "", result.stderr
    stderr = result.stderr
    error = stderr.splitlines()[-1]
    assert error.startswith("error: ") and "LookupError: no page at /fail" in error and "502" in error
    assert re.search(rf"START RequestId: {UUID} Version: 1", stderr)
    assert "serving /fail" in stderr and "REPORT RequestId:" in stderr  # the log's tail
    assert 'raise LookupError("no page at " + path)' in stderr  # the function's traceback, in its log


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [("/malformed", "502 Bad Gateway", '{"message": "Internal server error"}'), ("/down", "503", "down")],
)
def test_an_answer_api_gateway_turns_into_5xx_exits_1(
    app_project: Path, aws_account, path: str, status: str, body: str
) -> None:
    ok(app_project, "up", "--version", "1.0.0")
    result = run(app_project, "invoke", "--path", path)
    assert result.exit_code == 1, result.stderr
    assert result.stderr.startswith(status) and body in result.stdout
    assert result.stderr.splitlines()[-1].startswith("error: ")


def test_nothing_deployed_says_so_in_one_line(app_project: Path, aws_account, cli) -> None:
    assert cli("invoke", expect=1).strip() == "error: nothing deployed on stage test: run deployer up first"
    ok(app_project, "up", "--version", "1.0.0")
    assert "nothing deployed on stage prod" in cli("invoke", "--stage", "prod", expect=1)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--data", "@/no/such/file"], "cannot read /no/such/file"),
        (["-H", "NoColonHere"], "is not a header"),
        (["--data", "x", "--event", "event.json"], "leave out --data"),
        (["--event", "/no/such/event.json"], "cannot read it"),
        (["--path", "no-slash"], "must start with /"),
    ],
)
def test_bad_input_is_one_line_and_no_aws_call(cli, monkeypatch, arguments: list[str], message: str) -> None:
    def no_aws(*_: Any) -> None:
        raise AssertionError("AWS was called")

    monkeypatch.setattr("deployer.cli.common.connect", no_aws)
    assert message in cli("invoke", *arguments, expect=2)


# logs, in-process


def test_logs_show_each_invocations_lines_with_its_request_id(app_project: Path, aws_account) -> None:
    ok(app_project, "up", "--version", "1.0.0")  # the check invokes GET / once
    ok(app_project, "invoke", "--path", "/one")
    ok(app_project, "invoke", "--path", "/two")
    lines = log_lines(ok(app_project, "logs").stdout)
    assert [message.split(" RequestId")[0] for _, message in lines if "RequestId" in message] == [
        "START",
        "END",
        "REPORT",
    ] * 3
    starts = [request for request, message in lines if message.startswith("START ")]
    assert len(set(starts)) == 3 and all(re.fullmatch(UUID, request) for request in starts)
    stream = run(app_project, "logs", "--filter", "serving").stdout.split()[1]
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[1\][0-9a-f]{32}", stream)  # one warm worker: version 1's stream
    for request, path in zip(starts, ["/", "/one", "/two"], strict=True):
        assert (request, f"serving {path}") in lines  # print() output, with its request's id
        assert (request, f"END RequestId: {request}") in lines
    report = next(message for _, message in lines if message.startswith("REPORT"))
    assert re.fullmatch(
        rf"REPORT RequestId: {UUID}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\tMemory Size: 128 MB\t"
        r"Max Memory Used: \d+ MB",
        report,
    )

    only = log_lines(ok(app_project, "logs", "--filter", "serving").stdout)
    assert [message for _, message in only] == ["serving /", "serving /one", "serving /two"]
    assert {request for request, _ in only} == {stream}  # their START left out: the stream says where they ran
    later = ok(app_project, "logs", "--since", "2099-01-01T00:00:00Z")
    assert later.stdout == "" and later.stderr == ""


def test_logs_before_any_run_say_so_and_exit_0(app_project: Path, aws_account) -> None:
    result = ok(app_project, "logs")
    assert result.stdout == "" and result.stderr.strip() == f"no logs yet for {APP}"


@pytest.mark.parametrize("since", ["10x", "-5m", "", "yesterday", "5"])
def test_a_bad_since_is_one_line_and_exit_2(cli, since: str) -> None:
    assert "--since" in cli("logs", "--since", since, expect=2)


def test_since_takes_durations_and_iso_times() -> None:
    now = 1_700_000_000.0
    assert [operate.parse_since(text, now) for text in ("30s", "10m", "2h", "1d")] == [
        int((now - seconds) * 1000) for seconds in (30, 600, 7200, 86400)
    ]
    assert operate.parse_since("2024-05-01T12:00:00Z") == operate.parse_since("2024-05-01T12:00:00") == 1714564800000
    assert operate.parse_since("2024-05-01T14:00:00+02:00") == 1714564800000
    with pytest.raises(UsageError):
        operate.parse_since("10 m")


def test_a_line_without_a_request_id_belongs_to_the_request_its_stream_runs() -> None:
    lines = operate.LogLines()
    request, other = "1b2c3d4e-0000-4000-8000-000000000001", "1b2c3d4e-0000-4000-8000-000000000002"
    events = [
        ("s1", "init\n"),
        ("s1", f"START RequestId: {request} Version: 3\n"),
        ("s2", f"START RequestId: {other} Version: 3\n"),
        ("s1", "a print\n"),
        ("s2", f"2024-05-01T12:00:00.000Z\t{other}\tINFO\tnode's console.log\n"),
        ("s1", f"[ERROR]\t2024-05-01T12:00:00.000Z\t{request}\tpython's logging\n"),
        ("s1", f"REPORT RequestId: {request}\tDuration: 1.00 ms\n"),
        ("s1", "after the report\n"),
    ]
    shown = [lines.line({"timestamp": 0, "logStreamName": stream, "message": text}) for stream, text in events]
    assert [line.split(" ", 2)[1] for line in shown] == ["s1", request, other, request, other, request, request, "s1"]
    assert shown[3] == f"1970-01-01T00:00:00Z {request} a print"


def test_follow_prints_new_events_once(app_project: Path, aws_account) -> None:
    """Each poll asks from the last event's time on: what it printed already is never printed again."""
    from deployer.cli.common import connect
    from deployer.config import load_config

    ok(app_project, "up", "--version", "1.0.0")
    connection = connect(load_config(app_project / "deploy.toml"), None)
    requests = iter(["/first", "/second"])
    printed: list[str] = []

    def between_polls(_: float) -> None:
        ok(app_project, "invoke", "--path", next(requests, "/"))

    operate.follow_logs(connection, "1m", "serving", printed.append, sleep=between_polls, polls=range(4))
    messages = [message for _, message in log_lines("\n".join(printed))]
    assert messages == ["serving /", "serving /first", "serving /second", "serving /"]


# On the local cloud, as a user runs them


def deploy_locally(project: Path) -> str:
    (project / "function" / "main.py").write_text(HANDLER)
    return in_process_ok(project, "up", "--version", "1.0.0", "--local").strip()


def deployer_ok_stderr(project: Path, *arguments: str) -> str:
    result = run_in_process(project, *arguments)
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_invoke_on_the_local_cloud(project: Path, local_cloud: str) -> None:
    deploy_locally(project)
    page = run_in_process(project, "invoke", "--path", "/x", "--local")
    assert page.returncode == 0, page.stderr
    assert page.stdout == "<p>Hello from /x</p>" and page.stderr.splitlines()[0] == "200 OK"

    failed = run_in_process(project, "invoke", "--path", "/fail", "--local")
    assert failed.returncode == 1 and "Traceback (most recent call last)" in failed.stderr  # the log's tail
    assert "serving /fail" in failed.stderr and "REPORT RequestId:" in failed.stderr
    assert "LookupError: no page at /fail" in failed.stderr.splitlines()[-1]


def test_logs_on_the_local_cloud_hold_the_data_planes_requests(project: Path, local_cloud: str) -> None:
    assert "no logs yet" in deployer_ok_stderr(project, "logs", "--local")
    url = deploy_locally(project)
    for path in ("a", "b"):
        assert fetch(f"{url}{path}")[0] == 200
    lines = log_lines(in_process_ok(project, "logs", "--local"))
    starts = [request for request, message in lines if message.startswith("START ")]
    assert len(starts) == 3  # the check, then the two requests
    for request, path in zip(starts, ["/", "/a", "/b"], strict=True):
        assert (request, f"serving {path}") in lines
        assert any(message.startswith(f"REPORT RequestId: {request}\t") for _, message in lines)


def test_follow_prints_what_arrives_and_ends_quietly_on_ctrl_c(project: Path, local_cloud: str) -> None:
    url = deploy_locally(project)
    executable = shutil.which("deployer", path=str(Path(sys.executable).parent)) or "deployer"
    process = subprocess.Popen(
        [executable, "logs", "--follow", "--local"],
        cwd=project,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()], daemon=True).start()

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if text in lines.get(timeout=1):
                    return
            except queue.Empty:
                continue
        raise AssertionError(f"{text!r} never came")

    try:
        wait_for("serving /")  # the check's invocation, before the follow started
        assert fetch(f"{url}while-following")[0] == 200
        wait_for("serving /while-following")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "interrupted" not in stderr


# serve: the same START / END / REPORT lines on its console


def test_serve_prints_lambdas_start_end_and_report_lines(app_project: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from deployer.config import load_config
    from deployer.serve import make_server

    server = make_server(load_config(app_project / "deploy.toml"), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert fetch(f"{server.url}served")[:2] == (200, b"<p>Hello from /served</p>")
    finally:
        server.shutdown()
        server.server_close()
    console = capfd.readouterr().err
    lines = rf"^START RequestId: ({UUID}) Version: \$LATEST\nserving /served\nEND RequestId: \1\n"
    start = re.search(lines, console, re.M)
    assert start, console
    assert re.search(rf"^REPORT RequestId: {start[1]}\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\t", console, re.M)
