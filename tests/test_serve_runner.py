"""deployer.serve.runner: a warm worker process per function, as the Lambda service runs one sandbox."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deployer.process import alive
from deployer.serve.runner import (
    FunctionCrash,
    FunctionError,
    FunctionRunner,
    FunctionTimeout,
    source_fingerprint,
)

PYTHON_CODE = """
import os, time
def handler(event, context):
    if event == "raise":
        raise KeyError("missing")
    if event == "set":
        return {1, 2}
    if event == "sleep":
        time.sleep(5)
    if event == "exit":
        os._exit(3)
    return {"echo": event, "pid": os.getpid()}
"""
NODE_CODE = """
exports.handler = async (event) => {
  if (event === 'raise') throw new RangeError('missing');
  if (event === 'sleep') await new Promise((resolve) => setTimeout(resolve, 5000));
  if (event === 'exit') process.exit(3);
  return { echo: event, pid: process.pid };
};
"""
APPS = {"python": ("main.py", PYTHON_CODE, "python3.13"), "node": ("main.js", NODE_CODE, "nodejs22.x")}
MakeRunner = Callable[..., FunctionRunner]


@pytest.fixture
def make_runner(tmp_path: Path) -> Iterator[MakeRunner]:
    """Writes a function (the code above, or `code`) into tmp_path and returns its runner; closes them all."""
    runners: list[FunctionRunner] = []

    def make(language: str, code: str | None = None, handler: str = "main.handler", **options: Any) -> FunctionRunner:
        file_name, default_code, runtime = APPS[language]
        source = tmp_path / language
        source.mkdir(exist_ok=True)
        (source / file_name).write_text(default_code if code is None else code)
        options = {"timeout": 3, "memory": 128, "function_name": "fn", **options}
        runner = FunctionRunner(source, handler, options.pop("runtime", runtime), **options)
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        runner.close()


@pytest.fixture(params=["python", "node"])
def language(request: pytest.FixtureRequest) -> str:
    return request.param


def test_invoke_returns_the_raw_result_and_keeps_the_worker(make_runner: MakeRunner, language: str) -> None:
    runner = make_runner(language)
    first = runner.invoke({"a": [1, "x", None]})
    assert first["echo"] == {"a": [1, "x", None]}
    assert runner.invoke("plain string")["pid"] == first["pid"]


def test_a_raising_handler_gives_its_error_type_and_message(make_runner: MakeRunner, language: str) -> None:
    runner = make_runner(language)
    with pytest.raises(FunctionError) as raised:
        runner.invoke("raise")
    expected = {"python": "KeyError", "node": "RangeError"}[language]
    assert raised.value.error_type == expected
    assert "missing" in raised.value.message
    assert raised.value.payload()["errorType"] == expected
    assert raised.value.stack_trace  # where it was raised
    assert runner.invoke("after")["echo"] == "after"


def test_a_timeout_kills_the_worker_and_the_next_invocation_gets_a_fresh_one(
    make_runner: MakeRunner, language: str
) -> None:
    runner = make_runner(language, timeout=1)
    pid = runner.invoke("warm")["pid"]
    started = time.monotonic()
    with pytest.raises(FunctionTimeout, match=r"Task timed out after 1\.00 seconds"):
        runner.invoke("sleep")
    assert time.monotonic() - started < 3
    assert not alive(pid)
    assert runner.invoke("again")["pid"] != pid


def test_an_exiting_worker_is_a_crash_and_is_replaced(make_runner: MakeRunner, language: str) -> None:
    runner = make_runner(language)
    with pytest.raises(FunctionCrash, match="exit status 3"):
        runner.invoke("exit")
    assert runner.invoke("again")["echo"] == "again"


def test_an_unserialisable_python_result_is_a_marshal_error(make_runner: MakeRunner) -> None:
    runner = make_runner("python")
    with pytest.raises(FunctionError) as raised:
        runner.invoke("set")
    assert raised.value.error_type == "Runtime.MarshalError"
    assert "not JSON serializable" in raised.value.message


@pytest.mark.parametrize(
    ("language", "handler", "error_type", "message"),
    [
        ("python", "missing.handler", "Runtime.ImportModuleError", "Unable to import module 'missing'"),
        ("python", "main.nothere", "Runtime.HandlerNotFound", "Handler 'nothere' missing on module 'main'"),
        ("node", "missing.handler", "Runtime.ImportModuleError", "Cannot find module 'missing'"),
        ("node", "main.nothere", "Runtime.HandlerNotFound", "main.nothere is undefined or not exported"),
    ],
)
def test_a_handler_that_does_not_load_is_an_init_error(
    make_runner: MakeRunner, language: str, handler: str, error_type: str, message: str
) -> None:
    runner = make_runner(language, handler=handler)
    for _ in range(2):  # each invocation retries the init, like Lambda
        with pytest.raises(FunctionError) as raised:
            runner.invoke({})
        assert raised.value.error_type == error_type
        assert message in raised.value.message


def test_a_python_syntax_error_is_reported_as_such(make_runner: MakeRunner) -> None:
    runner = make_runner("python", code="def handler(event, context)\n    return 1\n")
    with pytest.raises(FunctionError) as raised:
        runner.invoke({})
    assert raised.value.error_type == "Runtime.UserCodeSyntaxError"


def test_a_module_that_takes_too_long_to_load_is_an_init_timeout(
    make_runner: MakeRunner, language: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("deployer.serve.runner.INIT_TIMEOUT", 0.5)
    code = {
        "python": "import time\ntime.sleep(5)\ndef handler(event, context):\n    return 1\n",
        "node": "const end = Date.now() + 5000;\nwhile (Date.now() < end) {}\nexports.handler = async () => 1;\n",
    }[language]
    runner = make_runner(language, code=code)
    with pytest.raises(FunctionTimeout, match="Init phase timed out"):
        runner.invoke({})


def test_python_logging_reaches_the_console_like_on_lambda(
    make_runner: MakeRunner, capfd: pytest.CaptureFixture[str]
) -> None:
    code = "import logging\ndef handler(event, context):\n    logging.getLogger().warning('careful')\n    return 1\n"
    make_runner("python", code=code).invoke({})
    line = next(line for line in capfd.readouterr().err.splitlines() if "careful" in line)
    assert re.fullmatch(r"\[WARNING\]\t\S+Z\t[0-9a-f-]{36}\tcareful", line), line


def test_nodejs24_refuses_a_callback_handler_nodejs22_runs_it(make_runner: MakeRunner) -> None:
    code = "exports.handler = (event, context, callback) => callback(null, {via: 'callback'});\n"
    with pytest.raises(FunctionError) as raised:
        make_runner("node", code=code, runtime="nodejs24.x").invoke({})
    assert raised.value.error_type == "Runtime.CallbackHandlerDeprecated"
    assert make_runner("node", code=code, runtime="nodejs22.x").invoke({}) == {"via": "callback"}


def test_close_kills_the_worker_and_refuses_more_invocations(make_runner: MakeRunner, language: str) -> None:
    runner = make_runner(language)
    pid = runner.invoke("warm")["pid"]
    runner.close()
    assert not alive(pid)
    with pytest.raises(FunctionError):
        runner.invoke("late")


def test_fingerprint_changes_with_an_edit_but_not_with_bytecode(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("x = 1\n")
    (tmp_path / "__pycache__").mkdir()
    before = source_fingerprint(tmp_path)
    (tmp_path / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "main.pyc").write_bytes(b"\0")
    assert source_fingerprint(tmp_path) == before
    (tmp_path / "main.py").write_text("x = 22\n")
    assert source_fingerprint(tmp_path) != before
