"""Lambda Invoke as the local cloud answers it (deployer/local/invoke.py), parsed by botocore as AWS's answer is.

In-process: the `aws_account` fixture's botocore hook (tests/lambda_invoke.py) hands every Invoke to the same
code the emulator runs; tests/test_local.py calls it on the real emulator process.
"""

from __future__ import annotations

import base64
import shutil
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from deployer.local.functions import Functions, find_function
from deployer.serve.runner import FunctionRunner
from tests.account import Account
from tests.support import ARN, NAME, call, make_greeter


def test_each_qualifier_runs_its_own_version(aws_account: Account) -> None:
    functions = make_greeter(aws_account)
    for arguments, page, version, invoked in [
        ({}, "latest", "$LATEST", ARN),
        ({"Qualifier": "$LATEST"}, "latest", "$LATEST", f"{ARN}:$LATEST"),
        ({"Qualifier": "1"}, "one", "1", f"{ARN}:1"),
        ({"Qualifier": "2"}, "two", "2", f"{ARN}:2"),
        ({"Qualifier": "live"}, "one", "1", f"{ARN}:live"),
        ({"FunctionName": f"{ARN}:live"}, "one", "1", f"{ARN}:live"),  # the qualifier in the ARN
        ({"FunctionName": f"{NAME}:2"}, "two", "2", f"{ARN}:2"),
        ({"FunctionName": f"123456789012:function:{NAME}", "Qualifier": "2"}, "two", "2", f"{ARN}:2"),
    ]:
        answer, result = call(functions, **arguments)
        assert answer["StatusCode"] == 200 and "FunctionError" not in answer, (arguments, result)
        assert answer["ExecutedVersion"] == version, arguments
        assert result == {"page": page, "version": version, "invoked": invoked, "memory": 256 if page != "one" else 128}


def test_an_alias_with_a_canary_executes_the_version_its_weight_picks(aws_account: Account, monkeypatch) -> None:
    functions = make_greeter(aws_account)
    functions.update_alias(FunctionName=NAME, Name="live", RoutingConfig={"AdditionalVersionWeights": {"2": 0.25}})
    draws = iter([0.1, 0.9])
    monkeypatch.setattr("deployer.local.functions.random.random", lambda: next(draws))
    assert call(functions, Qualifier="live")[0]["ExecutedVersion"] == "2"  # 0.1 < 0.25: the canary
    assert call(functions, Qualifier="live")[0]["ExecutedVersion"] == "1"


def test_a_function_error_is_200_with_x_amz_function_error(aws_account: Account) -> None:
    functions = make_greeter(aws_account)
    answer, error = call(functions, {"fail": True}, Qualifier="2")
    assert (answer["StatusCode"], answer["FunctionError"], answer["ExecutedVersion"]) == (200, "Unhandled", "2")
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "asked to fail")
    assert any("raise ValueError" in line for line in error["stackTrace"])


@pytest.mark.parametrize(
    ("arguments", "missing"),
    [
        ({"Qualifier": "9"}, f"{ARN}:9"),
        ({"Qualifier": "prod"}, f"{ARN}:prod"),
        ({"FunctionName": "nobody"}, "arn:aws:lambda:us-east-1:123456789012:function:nobody"),
    ],
)
def test_an_unknown_function_version_or_alias_is_resource_not_found(
    aws_account: Account, arguments: dict[str, str], missing: str
) -> None:
    functions = make_greeter(aws_account)
    with pytest.raises(functions.exceptions.ResourceNotFoundException) as raised:
        call(functions, **arguments)
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert error["Error"]["Message"] == f"Function not found: {missing}"
    assert error["Type"] == "User"  # the modeled members of ResourceNotFoundException, as from AWS


def test_log_type_tail_returns_the_invocations_own_log(aws_account: Account) -> None:
    functions = make_greeter(aws_account)
    first, _ = call(functions, {"n": 1}, Qualifier="1", LogType="Tail")
    log = base64.b64decode(first["LogResult"]).decode()
    lines = log.splitlines()
    assert lines[0].startswith("START RequestId: ") and lines[0].endswith(" Version: 1")
    assert lines[1:4] == ["cold start of one", 'handling {"n": 1}', "to stderr too"]  # init output: a cold start
    assert lines[-2].startswith("END RequestId: ") and lines[-1].startswith("REPORT RequestId: ")
    assert "Memory Size: 128 MB" in lines[-1]
    request_id = lines[0].split()[2]
    assert first["ResponseMetadata"]["RequestId"] == request_id

    second, _ = call(functions, {"n": 2}, Qualifier="1", LogType="Tail")
    log = base64.b64decode(second["LogResult"]).decode()
    assert "cold start" not in log and 'handling {"n": 2}' in log and '{"n": 1}' not in log  # warm: its own only
    assert "LogResult" not in call(functions, {"n": 3}, Qualifier="1")[0]

    failed, _ = call(functions, {"fail": True}, Qualifier="1", LogType="Tail")
    log = base64.b64decode(failed["LogResult"]).decode()
    assert "[ERROR] ValueError: asked to fail\nTraceback (most recent call last):" in log


def test_the_tail_is_the_last_4_kb(aws_account: Account) -> None:
    functions = make_greeter(aws_account)
    answer, _ = call(functions, {"padding": "x" * 10_000}, Qualifier="2", LogType="Tail")
    log = base64.b64decode(answer["LogResult"])
    assert len(log) == 4096 and log.decode().splitlines()[-1].startswith("REPORT RequestId: ")


def test_dry_run_is_204_and_event_is_202_and_runs_later(aws_account: Account, tmp_path: Path) -> None:
    functions = make_greeter(aws_account)
    marker = tmp_path / "ran"
    answer, payload = call(functions, {"touch": str(marker)}, Qualifier="live", InvocationType="DryRun")
    assert (answer["StatusCode"], payload) == (204, None)
    answer, payload = call(functions, {"touch": str(marker)}, Qualifier="live", InvocationType="Event")
    assert (answer["StatusCode"], payload) == (202, None)
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the Event invocation never ran"


@pytest.mark.parametrize(
    ("arguments", "payload", "code"),
    [
        ({"FunctionName": f"{NAME}:1", "Qualifier": "2"}, b"{}", "InvalidParameterValueException"),
        ({"FunctionName": NAME}, b"{not json", "InvalidRequestContentException"),
    ],
)
def test_what_lambda_refuses_before_running_anything(
    aws_account: Account, arguments: dict[str, str], payload: bytes, code: str
) -> None:
    functions = make_greeter(aws_account)
    with pytest.raises(ClientError) as raised:
        functions.invoke(Payload=payload, **arguments)
    assert raised.value.response["Error"]["Code"] == code


def test_a_runner_captures_what_each_invocation_prints_even_before_a_timeout(
    aws_account: Account, tmp_path: Path
) -> None:
    make_greeter(aws_account, timeout=1)
    functions = Functions(tmp_path / "code", console=lambda _: None)
    try:
        version = find_function("123456789012", "us-east-1", NAME, "1")
        outcome = functions.run(version, {"sleep": 5})  # the timeout is 1 s
        assert outcome.error is not None and outcome.error.error_type == "Sandbox.Timedout"
        assert b'handling {"sleep": 5}' in outcome.output
        again = functions.run(version, {})
        assert again.error is None and again.result["page"] == "one"
        assert again.output.startswith(b"cold start of one")  # the timed-out worker was replaced
    finally:
        functions.close()


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_a_node_functions_output_is_kept_per_invocation_too(tmp_path: Path) -> None:
    (tmp_path / "index.js").write_text(
        "console.log('init');\n"
        "exports.handler = async (event) => {\n"
        "  console.log('hello', event.n);\n"
        "  console.error('oops');\n"
        "  return event.n;\n"
        "};\n"
    )
    runner = FunctionRunner(
        tmp_path, "index.handler", "nodejs22.x", 3, 128, "fn", console=lambda _: None, version="7", capture_output=True
    )
    try:
        first, second = runner.run({"n": 1}), runner.run({"n": 2})
    finally:
        runner.close()
    assert (first.result, first.output) == (1, b"init\nhello 1\noops\n")
    assert (second.result, second.output) == (2, b"hello 2\noops\n")
