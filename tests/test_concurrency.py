"""Issue 22 items 3 and 4: concurrent requests run in parallel execution environments, and memory size is enforced,
in both emulations (`deployer serve` over HTTP, the local cloud's data plane and Lambda Invoke over in-process moto).

Where AWS's behaviour is recorded:

- Lambda runs each concurrent invocation in its own execution environment and reuses a warm one afterwards;
  past the function's concurrency Lambda answers 429 TooManyRequestsException, Reason
  `ReservedFunctionConcurrentInvocationLimitExceeded` (a function with reserved concurrency) or
  `ConcurrentInvocationLimitExceeded` (Lambda developer guide, "Understanding Lambda function scaling";
  the Invoke API reference, TooManyRequestsException).
- API Gateway's REST proxy integration does not pass Lambda's 429 on: the client gets
  500 `{"message": "Internal server error"}` (AWS knowledge center "api-gateway-internal-server-error":
  "If the backend service is throttled ... API Gateway can return an Internal server error"; an AWS engineer
  on stackoverflow.com/questions/36363280: "There is no way to map Lambda's 429 ... It will always be
  considered as 500", since mapped to the INTEGRATION_FAILURE gateway response; re:Post "API Gateway proxy
  integration does not forward Lambda throttling (HTTP 429) to client").
- A function past its memory size is killed: its log says `RequestId: ... Error: Runtime exited with error:
  signal: killed` / `Runtime.ExitError`, its REPORT line a Max Memory Used at the Memory Size (CloudWatch
  logs as quoted in smplogs.com/guides/lambda-memory-errors and cloudwithgagan.com's "fix Lambda function
  timeout memory errors"); API Gateway answers the failed invocation with 502.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from moto import mock_aws

from deployer.config import load_config
from deployer.gateway.proxy import forwarded_headers
from deployer.local.dataplane import DataPlane, Request
from deployer.local.invoke import answer_invoke
from deployer.local.patches import install_binary_media_types, install_lambda_fixes, install_snapshots
from deployer.serve import make_server
from tests.support import REGION, allow, http_call, make_function, put_lambda_proxy, running

INTERNAL_SERVER_ERROR = b'{"message": "Internal server error"}'
FUNCTION = """
import json, os, time

def handler(event, context):
    route = event["path"].strip("/").split("/")
    if route[0] == "sleep":
        time.sleep(float(route[1]))
    if route[0] == "allocate":  # route[1] MB, touched, held while the handler runs
        held = bytearray(int(route[1]) * 1024 * 1024)
    return {"statusCode": 200, "body": json.dumps({"pid": os.getpid(), "path": event["path"]})}
"""


@dataclass
class Api:
    name: str
    get: Callable[[str], tuple[int, bytes]]
    log: Callable[[], str]  # the function's log so far (serve's console, the local cloud's CloudWatch Logs)


Start = Callable[..., Api]


@pytest.fixture
def serve_api(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> Iterator[Start]:
    contexts: list[Any] = []

    def start(concurrency: int = 10, idle_seconds: float = 300.0, memory: int = 512) -> Api:
        (tmp_path / "function").mkdir(exist_ok=True)
        (tmp_path / "function" / "main.py").write_text(FUNCTION)
        config = tmp_path / "deploy.toml"
        config.write_text(
            '[app]\nname = "Pool"\nregion = "eu-west-1"\n[artifact]\nbucket = "pool-artifacts"\n'
            '[function]\nsource = "function"\nhandler = "main.handler"\nruntime = "python3.13"\n'
            f'timeout = 10\nmemory = {memory}\n[api]\nstage = "test"\n'
        )
        server = make_server(load_config(config), "127.0.0.1", 0, concurrency=concurrency, idle_seconds=idle_seconds)
        context = running(server)
        context.__enter__()
        contexts.append(context)

        def get(path: str) -> tuple[int, bytes]:
            reply = http_call(server.port, path)
            return reply.status, reply.body

        return Api("serve", get, lambda: capfd.readouterr().err)

    yield start
    for context in contexts:
        context.__exit__(None, None, None)


@pytest.fixture
def local_api(tmp_path: Path) -> Iterator[Start]:
    install_snapshots()
    install_binary_media_types()
    install_lambda_fixes()
    planes: list[DataPlane] = []
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        clients = {name: session.client(name) for name in ("iam", "lambda", "apigateway", "logs")}

        def start(concurrency: int = 10, idle_seconds: float = 300.0, memory: int = 512) -> Api:
            plane = DataPlane(tmp_path / "code", lambda _: None, concurrency=concurrency, idle_seconds=idle_seconds)
            planes.append(plane)
            alias_arn = make_function(clients, FUNCTION, name="pool", MemorySize=memory)
            gateway = clients["apigateway"]
            api_id = gateway.create_rest_api(name="pool")["id"]
            root = gateway.get_resources(restApiId=api_id)["items"][0]["id"]
            proxy = gateway.create_resource(restApiId=api_id, parentId=root, pathPart="{proxy+}")["id"]
            for resource in (root, proxy):
                put_lambda_proxy(gateway, api_id, resource, "ANY", alias_arn)
            allow(clients, api_id, "pool")
            gateway.create_deployment(restApiId=api_id, stageName="test")

            def get(path: str) -> tuple[int, bytes]:
                headers = forwarded_headers([("Host", "127.0.0.1:4566")], "127.0.0.1", 4566)
                request = Request("GET", api_id, "test", path, "", headers, b"", "127.0.0.1")
                status, _, body = plane.answer(request)
                return status, body

            def log() -> str:
                found = clients["logs"].filter_log_events(logGroupName="/aws/lambda/pool")
                return "".join(event["message"] for event in found["events"])

            return Api("local", get, log)

        yield start
        for plane in planes:
            plane.close()


@pytest.fixture(params=["serve", "local"])
def api(request: pytest.FixtureRequest) -> Start:
    return request.getfixturevalue(f"{request.param}_api")  # type: ignore[no-any-return]


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at once, each in its own thread; their results, in the order they finished."""
    finished: list[Any] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(calls))

    def run(function: Callable[[], Any]) -> None:
        barrier.wait()
        result = function()
        with lock:
            finished.append(result)

    threads = [threading.Thread(target=run, args=(function,)) for function in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return finished


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- item 3: parallel environments, a limit, idle ones reaped -------------------------------------------------


def test_a_quick_request_never_waits_behind_a_slow_one(api: Start) -> None:
    emulation = api()

    def slow() -> tuple[str, int, bytes]:
        return ("slow", *emulation.get("/sleep/2"))

    def quick() -> tuple[str, int, bytes]:
        time.sleep(0.3)  # after the slow one has its worker
        return ("quick", *emulation.get("/quick"))

    finished = together(slow, quick)
    assert [name for name, _, _ in finished] == ["quick", "slow"]
    assert [status for _, status, _ in finished] == [200, 200]
    pids = {json.loads(body)["pid"] for _, _, body in finished}
    assert len(pids) == 2  # two execution environments


def test_past_the_concurrency_limit_api_gateway_answers_lambdas_throttle_with_500(api: Start) -> None:
    emulation = api(concurrency=2)
    finished = together(*[lambda: emulation.get("/sleep/1.5")] * 3)
    statuses = sorted(status for status, _ in finished)
    assert statuses == [200, 200, 500]
    assert [body for status, body in finished if status == 500] == [INTERNAL_SERVER_ERROR]
    # Warm environments are reused: the limit's two workers serve what comes next.
    pids = {json.loads(body)["pid"] for status, body in finished if status == 200}
    assert {json.loads(emulation.get("/again")[1])["pid"]} <= pids


def test_an_idle_worker_is_shut_down(api: Start) -> None:
    emulation = api(idle_seconds=0.3)
    status, body = emulation.get("/first")
    assert status == 200
    pid = json.loads(body)["pid"]
    for _ in range(200):  # up to 10 s; the reaper looks every 0.15 s here
        if not alive(pid):
            break
        time.sleep(0.05)
    assert not alive(pid)
    status, body = emulation.get("/second")
    assert status == 200 and json.loads(body)["pid"] != pid  # a cold start in a new environment


# --- item 4: memory size enforced -----------------------------------------------------------------------------


def test_a_worker_past_its_memory_size_is_killed_as_lambda_kills_it(api: Start) -> None:
    emulation = api(memory=128)
    assert emulation.get("/allocate/10")[0] == 200  # well within 128 MB, the runtime's own baseline included
    assert emulation.get("/allocate/300") == (502, INTERNAL_SERVER_ERROR)
    log = emulation.log()
    assert "Error: Runtime exited with error: signal: killed" in log
    assert "Runtime.ExitError" in log
    assert "Memory Size: 128 MB\tMax Memory Used: 128 MB" in log
    assert emulation.get("/after")[0] == 200  # a new worker takes the next request


# --- Lambda Invoke in the local cloud: Lambda's own 429 -------------------------------------------------------


def test_lambda_invoke_past_the_reserved_concurrency_is_429_too_many_requests(tmp_path: Path) -> None:
    install_lambda_fixes()
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        clients = {name: session.client(name) for name in ("iam", "lambda")}
        make_function(clients, FUNCTION, name="pool", alias=None)
        clients["lambda"].put_function_concurrency(FunctionName="pool", ReservedConcurrentExecutions=1)
        plane = DataPlane(tmp_path / "code", lambda _: None)  # the default limit (10) is not what throttles
        arn = f"arn:aws:lambda:{REGION}:123456789012:function:pool"
        path = f"/2015-03-31/functions/{quote(arn, safe='')}/invocations"
        payload = json.dumps({"path": "/sleep/1.5"}).encode()
        try:
            finished = together(*[lambda: answer_invoke(plane.functions, path, "", {}, payload, print)] * 2)
        finally:
            plane.close()
    statuses = sorted(response[0] for response in finished)  # type: ignore[index]
    assert statuses == [200, 429]
    _, headers, body = next(response for response in finished if response[0] == 429)  # type: ignore[index]
    assert ("x-amzn-ErrorType", "TooManyRequestsException") in headers
    assert json.loads(body) == {
        "Type": "User",
        "Message": "Rate Exceeded.",
        "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
    }
