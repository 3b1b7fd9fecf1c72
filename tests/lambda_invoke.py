"""Lambda Invoke for in-process moto: the local cloud's own Invoke (deployer/local/invoke.py) answers it.

moto runs functions only in Docker, which this machine lacks; without this, `up`'s check before traffic
could not run against `mock_aws`. A `before-send` handler hands each Invoke request to the same code the
local cloud's emulator answers it with (the version or alias it names really runs, in the data plane's
warm workers) and returns that answer to botocore; every other call still goes to moto.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from deployer.local.functions import Functions
from deployer.local.invoke import FUNCTION_REFERENCE, INVOKE_PATH, answer_invoke
from tests.faults import NOWHERE


class RawBody(io.BytesIO):
    """A body botocore can parse (stream) and hand on as a StreamingBody (read): Invoke's Payload is one."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


class LambdaInvoke:
    """Runs what a function version holds; records each invocation (qualifier, event) for the tests."""

    def __init__(self, cache: Path) -> None:
        self.functions = Functions(cache, console=lambda line: None)
        self.invocations: list[tuple[str | None, Any]] = []

    def handle(self, request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse | None:
        url = urlsplit(request.url)
        found = INVOKE_PATH.match(url.path)
        if event_name != "before-send.lambda.Invoke" or found is None or request.url == NOWHERE:
            return None  # not an Invoke, or a fault answered it already
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else bytes(body)
        headers = {
            name.lower(): (value.decode() if isinstance(value, bytes) else value)
            for name, value in request.headers.items()
        }
        headers.setdefault("host", url.hostname or "")
        reference = FUNCTION_REFERENCE.match(unquote(found["function"]))
        qualifier = parse_qs(url.query).get("Qualifier", [None])[0] or (reference["qualifier"] if reference else None)
        try:
            self.invocations.append((qualifier, json.loads(body or b"null")))
        except ValueError:
            self.invocations.append((qualifier, body))
        answer = answer_invoke(self.functions, url.path, url.query, headers, body, console=lambda line: None)
        assert answer is not None, "INVOKE_PATH matched"
        status, answer_headers, payload = answer
        target, request.url = request.url, NOWHERE  # moto, which would try Docker, never sees it
        return AWSResponse(target, status, dict(answer_headers), RawBody(payload))  # type: ignore[arg-type]

    def close(self) -> None:
        self.functions.close()
