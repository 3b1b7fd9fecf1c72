"""Lambda Invoke for in-process moto: the function version's own zip really runs, in `deployer serve`'s workers.

moto runs functions only in Docker, which this machine lacks; without this, `up`'s check before traffic
could not run against `mock_aws`. A `before-send.lambda.Invoke` handler answers the request itself, in
Lambda's own shape (200, the payload, `X-Amz-Function-Error` when the function failed), from the
version or alias the request names; every other call still goes to moto.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from deployer.gateway import FunctionError
from deployer.local.dataplane import Functions, find_function
from tests.faults import NOWHERE


class RawBody(io.BytesIO):
    """A body botocore can parse (stream) and hand on as a StreamingBody (read): Invoke's Payload is one."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


ACCOUNT = "123456789012"  # moto's default account
INVOKE_PATH = re.compile(r"/2015-03-31/functions/(?P<name>[^/]+)/invocations$")


class LambdaInvoke:
    """Runs what a function version holds; records each invocation (qualifier, event) for the tests."""

    def __init__(self, cache: Path) -> None:
        self.functions = Functions(cache, console=lambda line: None)
        self.invocations: list[tuple[str | None, Any]] = []

    def handle(self, request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse | None:
        url = urlsplit(request.url)
        found = INVOKE_PATH.search(url.path)
        if event_name != "before-send.lambda.Invoke" or found is None or request.url == NOWHERE:
            return None  # not an Invoke, or a fault answered it already
        query = dict(part.split("=", 1) for part in url.query.split("&") if "=" in part)
        qualifier = unquote(query["Qualifier"]) if "Qualifier" in query else None
        name = unquote(found["name"]).split(":")[-1] if ":" in unquote(found["name"]) else unquote(found["name"])
        event = json.loads(request.body or b"null")
        self.invocations.append((qualifier, event))
        target = request.url
        request.url = NOWHERE  # moto, which would try Docker, never sees it
        region = url.hostname.split(".")[1] if url.hostname and url.hostname.startswith("lambda.") else "us-east-1"
        function = find_function(ACCOUNT, region, name, qualifier)
        headers = {"Content-Type": "application/json", "x-amzn-RequestId": "invoke-emulated"}
        if function is None:
            body = json.dumps({"Type": "User", "Message": f"Function not found: {name}:{qualifier}"}).encode()
            headers["x-amzn-ErrorType"] = "ResourceNotFoundException"
            return AWSResponse(target, 404, headers, RawBody(body))  # type: ignore[arg-type]
        try:
            body = json.dumps(self.functions.runner(function).invoke(event)).encode()
        except FunctionError as error:
            headers["X-Amz-Function-Error"] = "Unhandled"
            body = json.dumps(error.payload()).encode()
        return AWSResponse(target, 200, headers, RawBody(body))  # type: ignore[arg-type]

    def close(self) -> None:
        self.functions.close()
