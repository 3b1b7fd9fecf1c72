"""`deployer serve`: an HTTP server in front of the function, playing API Gateway's REST proxy integration.

Each request becomes a REST proxy event (deployer/gateway/proxy.py), runs in an execution environment of
its own (pool.py: up to `--concurrency` warm workers, runner.py, each reused, shut down after a few idle
minutes; past the limit, Lambda's throttle, which API Gateway answers with a 500), and its answer becomes
the HTTP response (deployer/gateway/integration.py).
Anything wrong with the function gives API Gateway's `502 {"message": "Internal server error"}` and
the reason on stderr; the server keeps serving. One line per request goes to stderr: method, path,
status, milliseconds; before it, Lambda's START, END and REPORT lines around what the function printed.

A kept-alive connection answers as fast as a fresh one: the status line, headers and body leave in one
write, with Nagle's algorithm off. (In separate writes, the body waited for the client's delayed ACK of
the headers: some 40 ms a request on a reused connection.)
"""

from __future__ import annotations

import os
import signal
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from deployer.config import Config
from deployer.errors import DeployerError, UsageError
from deployer.gateway import http_api
from deployer.gateway.answers import BAD_REQUEST, CONTENT_LENGTH_EXCEEDED, HEADERS_TOO_LARGE, Response
from deployer.gateway.integration import answer_from_function, with_request_ids
from deployer.gateway.proxy import (
    DEFAULT_BINARY_MEDIA_TYPES,
    LOCAL_ACCOUNT_ID,
    LOCAL_API_ID,
    MAX_REQUEST_BODY,
    MAX_REQUEST_HEADERS,
    build_event,
    forwarded_headers,
    request_headers_size,
)
from deployer.serve.envfile import secret_values
from deployer.serve.lambda_log import end_line, report_line, start_line
from deployer.serve.plumbing import carries_body, console
from deployer.serve.pool import DEFAULT_CONCURRENCY, IDLE_SECONDS, Reaper, RunnerPool, reap_interval
from deployer.serve.runner import FunctionRunner

DOOR_NAMES = {"rest": "a REST API", "http": "an HTTP API", "url": "a function URL"}
# Seconds a connection may sit without sending what the server waits for (a request line, headers, a body) before
# it is closed: a client that connects and says nothing holds a thread no longer.
CONNECTION_TIMEOUT = 60.0


class LocalApiServer(ThreadingHTTPServer):
    """The emulated API: one stage, `ANY /` and `ANY /{proxy+}`, all going to one function."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog (socketserver's default is 5: a burst of clients waited seconds)

    def __init__(
        self,
        address: tuple[str, int],
        runners: RunnerPool,
        stage: str,
        binary_media_types: Iterable[str] = DEFAULT_BINARY_MEDIA_TYPES,
        *,
        version: str = "$LATEST",
        memory: int = 128,
        front_door: http_api.FrontDoor = "rest",
        function_timeout: float = 3.0,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.runners = runners  # the function's execution environments
        self.version = version  # what START lines name
        self.memory = memory  # what REPORT lines give as the memory size
        self.stage = stage
        # Which door is played: the REST API's proxy (payload 1.0), or an HTTP API or function URL (payload 2.0).
        self.front_door = front_door
        self.function_timeout = function_timeout  # a function URL waits as long as the function may run
        self.binary_media_types = tuple(binary_media_types)  # what `up` gives the API ([api] binary_media_types)
        self.note: str | None = None  # the runtime check's warning, printed at startup
        self.deployment_id = uuid.uuid4().hex[:6]  # one deployment for as long as the server runs
        self.display_host = address[0]
        # Before binding: a failed bind calls server_close, which stops it.
        self.reaper = Reaper(runners.reap, reap_interval(runners.idle_seconds))
        super().__init__(address, ProxyRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can hang on a machine without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.display_host
        self.server_port = self.port

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        """The base URL: behind an HTTP API stage other than `$default`, the stage is part of it, as on AWS."""
        host = f"[{self.display_host}]" if ":" in self.display_host else self.display_host
        return f"http://{host}:{self.port}{self.stage_prefix}/"

    @property
    def stage_prefix(self) -> str:
        """The path every request must start with: `/{stage}` behind a named HTTP API stage, else nothing."""
        return f"/{self.stage}" if self.front_door == "http" and self.stage != http_api.DEFAULT_STAGE else ""

    def server_close(self) -> None:
        super().server_close()
        self.reaper.stop()
        self.runners.close()


class ProxyRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "deployer-serve"
    disable_nagle_algorithm = True  # TCP_NODELAY: an answer never waits for the client's delayed ACK
    timeout = CONNECTION_TIMEOUT  # read timeout on the connection's socket (StreamRequestHandler.setup sets it)
    server: LocalApiServer

    def version_string(self) -> str:
        return self.server_version

    def send_response(self, code: int, message: str | None = None) -> None:
        """The status line and Date, without http.server's `Server` header: API Gateway sends none of ours."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def proxy(self) -> None:
        started = time.monotonic()
        try:
            status, headers, payload = self._answer()
        except OSError:  # the client went away
            self.close_connection = True
            return
        # Printed before the answer goes out, so that a client that got it can rely on the line.
        console(f"{self.command} {self.path} {status} {(time.monotonic() - started) * 1000:.0f}ms")
        try:
            self._send(status, headers, payload)
        except OSError:
            self.close_connection = True

    # API Gateway's `ANY` method
    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = proxy

    def log_message(self, format: str, *args: object) -> None:
        """Silence http.server's access log: `proxy` prints its own line."""

    def log_error(self, format: str, *args: object) -> None:
        console(f"error: {format % args}")

    def _target(self) -> str:
        """The request target as sent: http.server folds a leading `//` of `self.path` into `/`, API Gateway
        does not (requestContext.path keeps it)."""
        words = self.requestline.split()
        return words[1] if len(words) >= 2 else self.path

    def _answer(self) -> Response:
        path, _, query = self._target().partition("?")
        path = path.partition("#")[0]
        if not path.startswith("/"):
            return with_request_ids(BAD_REQUEST.response())
        # As the door sees the request line: a REST API's stage is not in the path served here, an HTTP API's is.
        stage = f"/{self.server.stage}" if self.server.front_door == "rest" else ""
        target = f"{stage}{path}" + (f"?{query}" if query else "")
        if request_headers_size(self.command, target, self.request_version, self.headers.items()) > MAX_REQUEST_HEADERS:
            self.close_connection = True
            return with_request_ids(HEADERS_TOO_LARGE.response())
        if self.server.front_door != "rest":
            return self._answer_v2(path, query)
        try:
            body = self._read_body()
        except ValueError as error:
            self.close_connection = True
            return with_request_ids((CONTENT_LENGTH_EXCEEDED if "too large" in str(error) else BAD_REQUEST).response())
        event = build_event(
            self.command,
            path,
            query,
            forwarded_headers(self.headers.items(), self.client_address[0], self.server.port),
            body,
            self.server.stage,
            source_ip=self.client_address[0],
            protocol=self.request_version,
            deployment_id=self.server.deployment_id,
            binary_media_types=self.server.binary_media_types,
        )
        return answer_from_function(self._invoke, event, self._report, self.server.binary_media_types)

    def _answer_v2(self, path: str, query: str) -> Response:
        """An HTTP API's or a function URL's answer (payload format 2.0), with that door's limits."""
        door = http_api.DOORS[self.server.front_door]
        prefix = self.server.stage_prefix
        if prefix and path != prefix and not path.startswith(prefix + "/"):
            return http_api.with_request_id(door.not_found.response(), door)
        try:
            body = self._read_body(door.max_request_body)
        except ValueError as error:
            self.close_connection = True
            answer = door.too_large if "too large" in str(error) else BAD_REQUEST
            return http_api.with_request_id(answer.response(), door)
        event = http_api.build_event(
            self.command,
            path,
            query,
            forwarded_headers(self.headers.items(), self.client_address[0], self.server.port),
            body,
            api_id=LOCAL_API_ID,
            stage=self.server.stage if door.kind == "http" else http_api.DEFAULT_STAGE,
            account_id=LOCAL_ACCOUNT_ID if door.kind == "http" else http_api.ANONYMOUS,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        return http_api.answer_from_function(self._invoke, event, self._report, door, self.server.function_timeout)

    def _invoke(self, event: dict[str, Any]) -> Any:
        """One invocation, between the START and the END and REPORT lines Lambda writes to its log."""
        request_id = str(uuid.uuid4())
        # An environment first: a throttled invocation never starts, and Lambda logs nothing for it.
        with self.server.runners.environment() as runner:
            console(start_line(request_id, self.server.version).rstrip("\n"))
            outcome = runner.run(event, request_id=request_id)
        console(end_line(request_id).rstrip("\n"))
        console(report_line(request_id, outcome.seconds, self.server.memory, outcome.max_memory_mb).rstrip("\n"))
        if outcome.error is not None:
            raise outcome.error
        return outcome.result

    def _read_body(self, limit: int = MAX_REQUEST_BODY) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > limit:
            raise ValueError("request body too large")
        return self.rfile.read(length)

    def _read_chunked(self, limit: int = MAX_REQUEST_BODY) -> bytes:
        body = bytearray()
        while True:
            size = int(self.rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                break
            if len(body) + size > limit:
                raise ValueError("request body too large")
            body += self.rfile.read(size)
            self.rfile.readline(1024)
        while self.rfile.readline(1024).strip():  # trailers
            pass
        return bytes(body)

    def _send(self, status: int, headers: Sequence[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        with_body = carries_body(status)
        if with_body:
            self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close" if self.close_connection else "keep-alive")
        # BaseHTTPRequestHandler's own buffer (undeclared in typeshed): the body joins the headers' single write.
        self._headers_buffer.append(b"\r\n")  # type: ignore[attr-defined]
        if with_body and self.command != "HEAD":
            self._headers_buffer.append(payload)  # type: ignore[attr-defined]
        self.flush_headers()  # status line, headers and body in one write

    def _report(self, reason: str, details: Sequence[str]) -> None:
        console("\n    ".join([f"error: {self.command} {self.path}: {reason}", *details]))


def make_server(
    config: Config,
    host: str = "127.0.0.1",
    port: int = 3000,
    code_dirs: Sequence[Path] | None = None,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    idle_seconds: float = IDLE_SECONDS,
    env_file: Path | None = None,
    front_door: http_api.FrontDoor = "rest",
    stage: str | None = None,
) -> LocalApiServer:
    """A bound, not yet serving, server for `config`'s function; port 0 picks a free port. Up to `concurrency`
    requests run at once, each in its own worker; a worker idle for `idle_seconds` is shut down. `stage` is the
    stage served (default: config's); an HTTP API's other than `$default` is part of every path, as on AWS."""
    if concurrency < 1:
        raise UsageError(f"--concurrency {concurrency}: at least 1 request must be able to run; use e.g. 10")
    if not config.source.is_dir():
        raise UsageError(f"{config.path}: [function] source {config.source} is not a folder; create it or fix the path")
    region = config.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    environment = {**config.environment, **secret_values(config, env_file)}  # secrets from .env, never from AWS

    def start() -> FunctionRunner:
        return FunctionRunner(
            config.source,
            config.handler,
            config.runtime,
            config.timeout,
            config.memory,
            config.app_name,
            code_dirs=list(code_dirs or ()),
            environment=environment,
            region=region,
            console=console,
            capture_output=True,  # what the function prints reaches the terminal through console(): escaped
        )

    first = start()  # refuses a runtime this machine cannot run before the server listens
    runners = RunnerPool(start, concurrency, idle_seconds, first=first)
    try:
        server = LocalApiServer(
            (host, port),
            runners,
            stage or config.stage,
            config.binary_media_types,
            memory=config.memory,
            front_door=front_door,
            function_timeout=float(config.timeout),
        )
    except OSError as error:
        runners.close()
        raise DeployerError(
            f"cannot listen on {host}:{port}: {error.strerror or error}; choose another --port or --host"
        ) from None
    server.note = first.note
    return server


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve(
    config: Config,
    host: str = "127.0.0.1",
    port: int = 3000,
    code_dirs: list[Path] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    env_file: Path | None = None,
    front_door: http_api.FrontDoor = "rest",
) -> None:
    """Blocks serving HTTP until KeyboardInterrupt (or SIGTERM); prints one startup line with the URL."""
    # The deployed HTTP API serves from its `$default` stage, at its root (resources/http_api.py): so does serve.
    stage = http_api.DEFAULT_STAGE if front_door == "http" else config.stage
    server = make_server(
        config, host, port, code_dirs, concurrency=concurrency, env_file=env_file, front_door=front_door, stage=stage
    )
    if server.note:
        console(server.note)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
    print(
        f"Serving {config.app_name} ({config.runtime}, {config.handler}) on {server.url} "
        f"as {DOOR_NAMES[front_door]} - press Ctrl-C to stop",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console("stopping")
    finally:
        server.server_close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
