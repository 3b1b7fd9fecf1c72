"""The two emulations of API Gateway behind one interface, as fixtures: `deployer serve` over HTTP and the local
cloud's data plane over in-process moto, both running FUNCTION. tests/test_gateway_fidelity*.py run each
behaviour on both (the `emulation` fixture); tests/conftest.py registers this module as a plugin.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from deployer.config import load_config
from deployer.gateway.proxy import forwarded_headers
from deployer.local.dataplane import DataPlane, Request
from deployer.local.patches import install_binary_media_types, install_lambda_fixes, install_snapshots
from deployer.serve import make_server
from tests.support import REGION, Reply, allow, http_call, make_function, put_lambda_proxy, running

STAGE = "fidelity"
# The function both emulations run: /reply answers what the request body says, /sleep/N sleeps, the rest
# echoes the event, /big/N answers N bytes.
FUNCTION = """
import base64, json, time

def handler(event, context):
    route = event["path"].strip("/").split("/")
    if route[0] == "reply":
        body = event["body"]
        return json.loads(base64.b64decode(body) if event["isBase64Encoded"] else body)
    if route[0] == "sleep":
        time.sleep(float(route[1]))
    if route[0] == "big":
        return {"statusCode": 200, "body": "x" * int(route[1])}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(event)}
"""


Send = Callable[[str, str, Sequence[tuple[str, str]], bytes | None], Reply]


@dataclass
class Emulation:
    name: str
    send: Send

    def request(
        self, target: str, method: str = "GET", headers: Sequence[tuple[str, str]] = (), body: bytes | None = None
    ) -> Reply:
        return self.send(target, method, headers, body)

    def event(self, target: str, method: str = "GET", **options: Any) -> dict[str, Any]:
        reply = self.request(target, method, **options)
        assert reply.status == 200, (reply.status, reply.body)
        return json.loads(reply.body)

    def reply_with(self, result: Any, accept: str | None = None) -> Reply:
        headers = [("Content-Type", "application/json")] + ([("Accept", accept)] if accept else [])
        return self.request("/reply", "POST", headers, json.dumps(result).encode())


Start = Callable[..., Emulation]


@pytest.fixture
def serve_emulation(tmp_path: Path) -> Iterator[Start]:
    """`deployer serve` for FUNCTION, configured by a deploy.toml."""
    with_servers: list[Any] = []

    def start(binary_media_types: Sequence[str] = ("*/*",), timeout: int = 5) -> Emulation:
        source = tmp_path / f"function{len(with_servers)}"
        source.mkdir()
        (source / "main.py").write_text(FUNCTION)
        config = tmp_path / f"deploy{len(with_servers)}.toml"
        config.write_text(
            f'[app]\nname = "Fidelity"\nregion = "eu-west-1"\n[artifact]\nbucket = "fidelity-artifacts"\n'
            f'[function]\nsource = "{source.name}"\nhandler = "main.handler"\nruntime = "python3.13"\n'
            f'timeout = {timeout}\n[api]\nstage = "{STAGE}"\n'
            f"binary_media_types = {json.dumps(list(binary_media_types))}\n"
        )
        context = running(make_server(load_config(config), "127.0.0.1", 0))
        server = context.__enter__()
        with_servers.append(context)
        return Emulation(
            "serve", lambda target, method, headers, body: http_call(server.port, target, method, body, headers)
        )

    yield start
    for context in reversed(with_servers):
        context.__exit__(None, None, None)


@pytest.fixture
def local_emulation(tmp_path: Path) -> Iterator[Start]:
    """The local cloud's data plane over in-process moto: FUNCTION deployed behind `/` and `/{proxy+}`."""
    install_snapshots()
    install_binary_media_types()
    install_lambda_fixes()
    plane = DataPlane(tmp_path / "code", console=lambda _: None)
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        clients = {name: session.client(name) for name in ("iam", "lambda", "apigateway")}

        made: list[str] = []

        def start(binary_media_types: Sequence[str] = ("*/*",), timeout: int = 5) -> Emulation:
            """`timeout` is the helper's 5 s, whatever is asked."""
            gateway = clients["apigateway"]
            name = f"fidelity{len(made)}"
            made.append(name)
            alias_arn = make_function(clients, FUNCTION, name=name)
            api_id = gateway.create_rest_api(name="fidelity", binaryMediaTypes=list(binary_media_types))["id"]
            root = gateway.get_resources(restApiId=api_id)["items"][0]["id"]
            proxy = gateway.create_resource(restApiId=api_id, parentId=root, pathPart="{proxy+}")["id"]
            for resource in (root, proxy):
                put_lambda_proxy(gateway, api_id, resource, "ANY", alias_arn)
            allow(clients, api_id, name)
            gateway.create_deployment(restApiId=api_id, stageName=STAGE)

            def send(target: str, method: str, headers: Sequence[tuple[str, str]], body: bytes | None) -> Reply:
                path, _, query = target.partition("?")
                sent = [("Host", "127.0.0.1:4566"), *headers]
                if body is not None:
                    sent.append(("Content-Length", str(len(body))))
                request = Request(
                    method=method,
                    api_id=api_id,
                    stage=STAGE,
                    path=path,
                    query=query,
                    headers=forwarded_headers(sent, "127.0.0.1", 4566),
                    body=body or b"",
                    source_ip="127.0.0.1",
                )
                status, response_headers, payload = plane.answer(request)
                return Reply(status, response_headers, payload)

            return Emulation("local", send)

        yield start
    plane.close()


@pytest.fixture(params=["serve", "local"])
def emulation(request: pytest.FixtureRequest) -> Start:
    return request.getfixturevalue(f"{request.param}_emulation")  # type: ignore[no-any-return]
