"""A latency model of AWS in front of moto_server: an HTTP proxy on 127.0.0.1 (stdlib only) that adds what real
AWS does and moto does not (DESIGN.md §3), so the benchmark's wall times mean something:

- every request waits DELAY seconds before it is forwarded (a round trip to a region);
- IAM propagation: CreateFunction or UpdateFunctionConfiguration naming a role created less than
  PROPAGATION seconds ago answers 400 InvalidParameterValueException "The role defined for the function cannot
  be assumed by Lambda." (botocore does not retry it);
- API Gateway's control-plane quotas per account: CreateRestApi once per 30 s (edge) or 3 s (regional),
  DeleteRestApi once per 30 s, CreateDeployment once per 5 s, CreateResource 5 per s, GetResources 5 per 2 s,
  everything else 10 per s with a burst of 40; over them 429 TooManyRequestsException.

The service is read from the request's SigV4 credential scope, as moto_server itself does.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DELAY = 0.040
PROPAGATION = 7.5
ROLE_NOT_ASSUMABLE = "The role defined for the function cannot be assumed by Lambda."
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass
class Bucket:
    """A token bucket: `rate` requests a second, at most `burst` at once."""

    rate: float
    burst: float
    tokens: float = -1.0
    updated: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        if self.tokens < 0:
            self.tokens = self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def _quotas() -> dict[str, Bucket]:
    return {
        "CreateRestApi EDGE": Bucket(1 / 30, 1),
        "CreateRestApi REGIONAL": Bucket(1 / 3, 1),
        "DeleteRestApi": Bucket(1 / 30, 1),
        "CreateDeployment": Bucket(1 / 5, 1),
        "CreateResource": Bucket(5, 5),
        "GetResources": Bucket(5 / 2, 5),
        "other": Bucket(10, 40),
    }


def _gateway_operation(method: str, path: str, body: bytes) -> str:
    """The quota an API Gateway request counts against."""
    parts = [part for part in urllib.parse.urlsplit(path).path.split("/") if part]
    if method == "POST" and parts == ["restapis"]:
        try:
            types = json.loads(body or b"{}").get("endpointConfiguration", {}).get("types") or ["EDGE"]
        except ValueError:
            types = ["EDGE"]
        return f"CreateRestApi {'REGIONAL' if 'REGIONAL' in types else 'EDGE'}"
    if method == "DELETE" and len(parts) == 2 and parts[0] == "restapis":
        return "DeleteRestApi"
    if method == "POST" and len(parts) == 3 and parts[0] == "restapis" and parts[2] == "deployments":
        return "CreateDeployment"
    if method == "POST" and len(parts) == 4 and parts[0] == "restapis" and parts[2] == "resources":
        return "CreateResource"
    if method == "GET" and len(parts) == 3 and parts[0] == "restapis" and parts[2] == "resources":
        return "GetResources"
    return "other"


class Model:
    """The account-wide state of the latency model: when each role was created, the quotas' buckets, and a
    count of what it refused (the benchmark prints them)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.roles: dict[str, float] = {}
        self.quotas = _quotas()
        self.refused: dict[str, int] = {}

    def reset(self) -> None:
        with self.lock:
            self.roles.clear()
            self.quotas = _quotas()
            self.refused.clear()

    def refuse(self, what: str) -> None:
        with self.lock:
            self.refused[what] = self.refused.get(what, 0) + 1


def _service(headers: http.client.HTTPMessage) -> str:
    found = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", headers.get("Authorization", ""))
    return found.group(1) if found else ""


def _role_name(arn: object) -> str:
    return arn.rsplit("/", 1)[-1] if isinstance(arn, str) else ""


def make_handler(upstream: tuple[str, int], model: Model) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: object) -> None:
            pass

        def _answer(self, status: int, error: str, message: str) -> None:
            body = json.dumps({"__type": error, "message": message}).encode()
            self.send_response(status)
            self.send_header("x-amzn-ErrorType", error)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _refused(self, service: str, body: bytes) -> bool:
            """Answered with AWS's refusal when the model says AWS would refuse this request."""
            path = urllib.parse.urlsplit(self.path).path
            if service == "lambda" and (
                (self.command == "POST" and path.rstrip("/").endswith("/functions"))
                or (self.command == "PUT" and path.endswith("/configuration"))
            ):
                try:
                    role = _role_name(json.loads(body or b"{}").get("Role"))
                except ValueError:
                    role = ""
                created = model.roles.get(role)
                if created is not None and time.monotonic() - created < PROPAGATION:
                    model.refuse("role not yet assumable")
                    self._answer(400, "InvalidParameterValueException", ROLE_NOT_ASSUMABLE)
                    return True
            if service == "apigateway":
                operation = _gateway_operation(self.command, self.path, body)
                with model.lock:
                    allowed = model.quotas[operation].take()
                if not allowed:
                    model.refuse(f"{operation.split()[0]} throttled")
                    self._answer(429, "TooManyRequestsException", "Too Many Requests")
                    return True
            return False

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            time.sleep(DELAY)
            service = _service(self.headers)
            if self._refused(service, body):
                return
            connection = http.client.HTTPConnection(*upstream, timeout=60)
            headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            connection.close()
            if service == "iam" and response.status == 200 and b"CreateRole" in body:
                form = urllib.parse.parse_qs(body.decode())
                if form.get("Action") == ["CreateRole"]:
                    with model.lock:
                        model.roles[form.get("RoleName", [""])[0]] = time.monotonic()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _forward

    return Handler


class LatencyProxy:
    """The proxy, serving on a free port of 127.0.0.1 in a thread: `url` goes where AWS_ENDPOINT_URL would."""

    def __init__(self, upstream_url: str) -> None:
        upstream = urllib.parse.urlsplit(upstream_url)
        self.model = Model()
        handler = make_handler((upstream.hostname or "127.0.0.1", upstream.port or 80), self.model)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LatencyProxy:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
