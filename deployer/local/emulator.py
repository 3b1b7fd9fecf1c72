"""The emulator process: moto's own server app, with a small middleware in front of it.

The middleware answers its user only (auth.py): a request whose Host header is not 127.0.0.1 or localhost
(DNS rebinding) is refused whatever its path, and every AWS API call must be signed with the credentials
written at start. It answers four kinds of paths itself and hands every other AWS API call, its signature
checked, to moto's `DomainDispatcherApplication`, unchanged:

- `/restapis/{api id}/{stage}/_user_request_/{path}`: the data plane of a deployed REST API
  (dataplane.py), the URL scheme LocalStack uses for the same thing; open to all, as on AWS;
- `POST /2015-03-31/functions/{function}/invocations`: Lambda Invoke (invoke.py), which moto could only
  answer with Docker; it runs the version in the data plane's warm workers; signed, as every API call;
- any path with the Host `<domain>.localhost:<port>`: a custom domain's data plane (the same pipeline, after the
  domain's base path mapping named the API and stage: dataplane.find_domain_route); such a Host reaches nothing
  else, and a domain the emulated account does not have is API Gateway's 403 Forbidden;
- `{api id}.execute-api.localhost:<port>` and `{url id}.lambda-url.localhost:<port>` (any path), and their path
  forms `/_aws/execute-api/{api id}/...` and `/_aws/lambda-url/{url id}/...`: an HTTP API or a function URL
  (doors.py, payload format 2.0); open to all, as on AWS, but for what asks for AWS_IAM: a SigV4 signature
  with the local cloud's credentials;
- `GET /_deployer/health`: `{"service": "deployer-local", "pid": ..., "port": ..., ...}`; open;
- `POST /_deployer/shutdown` (with the header `X-Deployer-Shutdown: {auth.shutdown_token}`, which only
  the credentials' holder can make): stop serving, close the function workers, delete the unpacked code.

Nothing is read without a bound: a request is refused by its Content-Length before its body is read (an AWS
API call after its signature's key and date are checked, then over MAX_API_BODY; the data plane over API
Gateway's 10 MB; the control endpoints over MAX_CONTROL_BODY), a chunked body is read up to the same bound,
and the connection of a refused request is closed rather than drained. A connection that sends nothing for
a minute is closed (patches.CONNECTION_TIMEOUT).

moto's own differences from AWS that a deployment can see are mended at start (patches.py).
SIGTERM and SIGINT stop it the same way. Run it with `python -m deployer.local --port N`; `deployer
local start` does that, detached (control.py).
"""

from __future__ import annotations

import argparse
import hmac
import io
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from http import HTTPStatus
from types import FrameType
from typing import Any
from urllib.parse import quote, urlsplit

from deployer.errors import UsageError
from deployer.gateway import http_api
from deployer.gateway.answers import CONTENT_LENGTH_EXCEEDED, FORBIDDEN
from deployer.gateway.integration import with_request_ids
from deployer.gateway.proxy import MAX_REQUEST_BODY, forwarded_headers
from deployer.local import HOST, SERVICE, code_cache, pid_path, resolve_port, worker_limits
from deployer.local.auth import (
    AuthRefusal,
    Credentials,
    check_identity,
    check_signature,
    is_local_host,
    localhost_domain,
    needs_body,
    new_credentials,
    refusal_answer,
    remove_credentials,
    shutdown_token,
    write_credentials,
)
from deployer.local.control import require_emulator
from deployer.local.dataplane import (
    CLOSE_CONNECTION_KEY,
    DATA_PLANE_PATH,
    DataPlane,
    Request,
    client_headers,
    find_domain_route,
)
from deployer.local.doors import FUNCTION_URL_PATH, HTTP_API_PATH, DoorRequest, Doors, door_host
from deployer.local.invoke import INVOKE_PATH, MAX_PAYLOAD, answer_invoke
from deployer.serve.plumbing import carries_body
from deployer.serve.plumbing import stamped_console as console  # the log file gets the time of day

HEALTH_PATH = "/_deployer/health"
SHUTDOWN_PATH = "/_deployer/shutdown"
SHUTDOWN_HEADER = "HTTP_X_DEPLOYER_SHUTDOWN"
FOREIGN_HOST = b"Forbidden: the local cloud answers only requests for 127.0.0.1 or localhost.\n"
# The largest body of a signed AWS API call: deployer's own uploads are at most 16 MB a request (an S3 part or
# a small artifact), and moto keeps everything in memory.
MAX_API_BODY = 64 * 1024 * 1024
MAX_CONTROL_BODY = 1024  # health and shutdown take no body


class BodyTooLarge(Exception):
    """The request's body is over the bound of its path: refused, and its connection closed, unread."""


def declared_length(environ: dict[str, Any]) -> int:
    """The request's Content-Length; 0 when there is none (or it is not a number: werkzeug reads no body then)."""
    try:
        return max(int(environ.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def check_length(environ: dict[str, Any], limit: int) -> None:
    """BodyTooLarge when the Content-Length says more than `limit` (the body is left unread)."""
    if declared_length(environ) > limit:
        raise BodyTooLarge


def read_bounded(environ: dict[str, Any], limit: int) -> bytes:
    """The whole body (Content-Length or chunked), reading at most `limit` + 1 bytes; BodyTooLarge beyond."""
    from werkzeug.wsgi import get_input_stream

    check_length(environ, limit)
    body = get_input_stream(environ, safe_fallback=True).read(limit + 1)  # no length, not chunked: no body
    if len(body) > limit:
        raise BodyTooLarge
    return body


def raw_path(environ: dict[str, Any]) -> str:
    """The request path as the client sent it (percent-encoding kept), without the query string."""
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if target:
        if "://" in target.split("?", 1)[0]:
            return urlsplit(target).path or "/"
        return target.split("?", 1)[0].split("#", 1)[0]
    path = environ.get("PATH_INFO", "")
    return quote(path.encode("latin-1"), safe="/:@!$&'()*+,;=-._~")


def request_headers(environ: dict[str, Any], port: int) -> list[tuple[str, str]]:
    """The request's headers, plus what API Gateway adds: the client's address, the port and the scheme.

    As the client sent them (names in its case, repeated headers apart) when the server recorded them;
    else rebuilt from the WSGI environment, which has lost both."""
    recorded = client_headers(environ)
    if recorded is not None:
        return forwarded_headers(recorded, environ.get("REMOTE_ADDR", HOST), port)
    headers: list[tuple[str, str]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = "-".join(part.capitalize() for part in key[5:].split("_"))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = "Content-Type" if key == "CONTENT_TYPE" else "Content-Length"
        else:
            continue
        headers.append((name, str(value)))
    return forwarded_headers(headers, environ.get("REMOTE_ADDR", HOST), port)


def read_body(environ: dict[str, Any], limit: int = MAX_REQUEST_BODY) -> bytes | None:
    """The request body; None when it is over `limit` (API Gateway's 10 MB), then left unread when its
    Content-Length says so, and the connection marked to be closed."""
    try:
        return read_bounded(environ, limit)
    except BodyTooLarge:
        environ[CLOSE_CONNECTION_KEY] = True
        return None


def _send(
    start_response: Callable[..., Any], method: str, status: int, headers: list[tuple[str, str]], payload: bytes
) -> list[bytes]:
    """An API's answer (REST, HTTP API or function URL) on the wire: our Content-Length, no body where HTTP has none."""
    with_body = carries_body(status)
    headers = [(name, value) for name, value in headers if name.lower() != "content-length"]
    if with_body:
        headers.append(("Content-Length", str(len(payload))))
    start_response(_status_line(status), headers)
    return [payload] if with_body and method != "HEAD" else []


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


class Emulator:
    """The WSGI app: the data plane and the control endpoints here, every AWS API call to moto."""

    def __init__(
        self,
        moto_app: Callable[..., Iterable[bytes]],
        dataplane: DataPlane,
        port: int,
        credentials: Credentials | None = None,
    ) -> None:
        self.moto_app = moto_app
        self.dataplane = dataplane
        self.port = port
        self.credentials = credentials  # None: no API call is accepted at all
        self.doors = Doors(dataplane.functions, dataplane.console)  # HTTP APIs and function URLs
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.request_shutdown: Callable[[], None] = lambda: None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        door = door_host(environ.get("HTTP_HOST", ""), self.port)
        if door is not None:  # an HTTP API's or a function URL's own host, and nothing else
            return self._door(environ, start_response, door[0], door[1], raw_path(environ))
        domain = localhost_domain(environ.get("HTTP_HOST", ""), self.port)
        if domain is not None:  # a custom domain's API, and nothing else
            return self._domain(environ, start_response, domain)
        if not is_local_host(environ.get("HTTP_HOST", ""), self.port):
            console(f"refused a request for the host {environ.get('HTTP_HOST', '')[:100]!r}")
            return self._answer(start_response, 403, [("Content-Type", "text/plain")], FOREIGN_HOST, environ)
        path = environ.get("PATH_INFO", "")
        if path == HEALTH_PATH:
            if declared_length(environ) > MAX_CONTROL_BODY or environ.get("HTTP_TRANSFER_ENCODING"):
                return self._too_large(environ, start_response, MAX_CONTROL_BODY)
            return self._json(start_response, 200, self.health())
        if path == SHUTDOWN_PATH:
            return self._shutdown(environ, start_response)
        path = raw_path(environ)
        for kind, pattern in (("http", HTTP_API_PATH), ("url", FUNCTION_URL_PATH)):
            form = pattern.match(path)
            if form is not None:
                return self._door(environ, start_response, kind, form["id"], form["path"] or "/")
        matched = DATA_PLANE_PATH.match(path)
        if matched is not None:
            return self._data_plane(environ, start_response, matched)
        try:
            refusal = self._authenticate(environ, path)
        except BodyTooLarge:
            console(f"refused {environ.get('REQUEST_METHOD')} {path[:200]}: its body is over {MAX_API_BODY} bytes")
            return self._too_large(environ, start_response, MAX_API_BODY)
        if refusal is not None:
            console(f"refused {environ.get('REQUEST_METHOD')} {path[:200]}: {refusal.kind} {refusal.detail}".rstrip())
            return self._answer(start_response, *refusal_answer(refusal, environ, path), environ)
        if environ.get("REQUEST_METHOD") == "POST" and INVOKE_PATH.match(path):
            return self._invoke(environ, start_response, path)
        return self.moto_app(environ, start_response)

    def _authenticate(self, environ: dict[str, Any], path: str) -> AuthRefusal | None:
        """None when the request is signed with this local cloud's credentials.

        The key and date are checked first, on the headers alone: a request that is not this local cloud's user's
        is refused unread. Then its size (BodyTooLarge over MAX_API_BODY). The body is read here when the
        signature covers it or it is chunked (so that moto never reads an unbounded one), then put back whole for
        moto or Invoke.
        """
        if self.credentials is None:
            return AuthRefusal("unknown key")
        now = datetime.now(UTC)
        refusal = check_identity(environ, self.credentials, now)
        if refusal is not None:
            environ[CLOSE_CONNECTION_KEY] = True  # its body, if any, is not worth reading
            return refusal
        check_length(environ, MAX_API_BODY)
        body = None
        if needs_body(environ) or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = read_bounded(environ, MAX_API_BODY)
        refusal = check_signature(environ, path, body, self.credentials, now)
        if body is not None:  # after the check, which reads the headers as they were signed
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            # A chunked body is whole now: its length says where it ends.
            environ.pop("wsgi.input_terminated", None)
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        return refusal

    def _shutdown(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        token = environ.get(SHUTDOWN_HEADER, "")
        expected = shutdown_token(self.credentials) if self.credentials is not None else None
        if (
            environ.get("REQUEST_METHOD") != "POST"
            or expected is None
            or not hmac.compare_digest(token.encode(), expected.encode())
        ):
            environ[CLOSE_CONNECTION_KEY] = True
            message = "POST with the header X-Deployer-Shutdown from the local cloud's credentials: deployer local stop"
            return self._json(start_response, 403, {"message": message})
        if declared_length(environ) > MAX_CONTROL_BODY or environ.get("HTTP_TRANSFER_ENCODING"):
            return self._too_large(environ, start_response, MAX_CONTROL_BODY)
        console("shutdown requested")
        self.request_shutdown()
        return self._json(start_response, 202, {"stopping": True, "pid": os.getpid()})

    def health(self) -> dict[str, Any]:
        from moto import __version__ as moto_version

        return {
            "service": SERVICE,
            "pid": os.getpid(),
            "port": self.port,
            "started_at": self.started_at,
            "moto": moto_version,
        }

    def _data_plane(self, environ: dict[str, Any], start_response: Callable[..., Any], matched: Any) -> list[bytes]:
        def request(body: bytes) -> Request:
            return self._request(environ, body, matched.group("api"), matched.group("stage"), matched.group("path"))

        return self._serve(environ, start_response, matched.group(0), request)

    def _domain(self, environ: dict[str, Any], start_response: Callable[..., Any], domain: str) -> list[bytes]:
        """A request to `<domain>.localhost`: the API and stage its base path mapping names, as API Gateway does."""
        path = raw_path(environ)
        route = find_domain_route(domain, path)

        def request(body: bytes) -> Request | None:
            if route is None:
                return None
            found = self._request(environ, body, route.api_id, route.stage, route.path)
            return replace(found, domain=domain, base_path=route.base_path)

        return self._serve(environ, start_response, f"{domain[:100]}{path[:200]}", request)

    def _door(
        self, environ: dict[str, Any], start_response: Callable[..., Any], kind: str, door_id: str, path: str
    ) -> list[bytes]:
        """A request to an HTTP API or a function URL (`path` as sent, past the path form's prefix)."""
        started = time.monotonic()
        method = environ.get("REQUEST_METHOD", "GET")
        door = http_api.DOORS[kind]
        body = read_body(environ)
        if body is None:
            status, headers, payload = http_api.with_request_id(door.too_large.response(), door)
        else:
            request = DoorRequest(
                kind=door.kind,
                id=door_id,
                method=method,
                path=path,
                query=environ.get("QUERY_STRING", ""),
                headers=request_headers(environ, self.port),
                body=body,
                source_ip=environ.get("REMOTE_ADDR", HOST),
                protocol=environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                signed_by=self._signer(environ, body),
            )
            status, headers, payload = self.doors.answer(request)
        console(f"{method} {kind} {door_id[:64]}{path[:200]} {status} {(time.monotonic() - started) * 1000:.0f}ms")
        return _send(start_response, method, status, headers, payload)

    def _signer(self, environ: dict[str, Any], body: bytes) -> str | None:
        """The access key id of the request's SigV4 signature when it is the local cloud's user's and valid (what
        AWS_IAM auth asks of an HTTP API route or a function URL), else None."""
        if self.credentials is None or not environ.get("HTTP_AUTHORIZATION", "").startswith("AWS4-HMAC-SHA256 "):
            return None  # unsigned (a bearer token is the function's business, not the door's)
        refusal = check_signature(environ, raw_path(environ), body, self.credentials, datetime.now(UTC))
        if refusal is not None:
            console(f"an unsigned or badly signed request to a door: {refusal.kind} {refusal.detail}".rstrip())
            return None
        return self.credentials.access_key_id

    def _request(self, environ: dict[str, Any], body: bytes, api_id: str, stage: str, path: str | None) -> Request:
        return Request(
            method=environ.get("REQUEST_METHOD", "GET"),
            api_id=api_id,
            stage=stage,
            path=path or "/",
            query=environ.get("QUERY_STRING", ""),
            headers=request_headers(environ, self.port),
            body=body,
            source_ip=environ.get("REMOTE_ADDR", HOST),
            protocol=environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
        )

    def _serve(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        shown: str,
        request: Callable[[bytes], Request | None],
    ) -> list[bytes]:
        """The data plane's answer to a request (None: no API takes it, API Gateway's 403), with its log line."""
        started = time.monotonic()
        method = environ.get("REQUEST_METHOD", "GET")
        body = read_body(environ)
        if body is None:
            status, headers, payload = with_request_ids(CONTENT_LENGTH_EXCEEDED.response())
        else:
            made = request(body)
            if made is None:
                console(f"{method} {shown}: no API of the emulated account is mapped there")
                status, headers, payload = with_request_ids(FORBIDDEN.response())
            else:
                status, headers, payload = self.dataplane.answer(made)
        console(f"{method} {shown} {status} {(time.monotonic() - started) * 1000:.0f}ms")
        return _send(start_response, method, status, headers, payload)

    def _invoke(self, environ: dict[str, Any], start_response: Callable[..., Any], path: str) -> list[bytes]:
        """Lambda Invoke, in Lambda's own shape (botocore parses it as it parses AWS's answer)."""
        headers = {name.lower(): value for name, value in request_headers(environ, self.port)}
        body = read_body(environ, MAX_PAYLOAD)  # None: too large, which answer_invoke refuses
        answer = answer_invoke(
            self.dataplane.functions, path, environ.get("QUERY_STRING", ""), headers, body, self.dataplane.console
        )
        assert answer is not None, "INVOKE_PATH matched"
        status, response_headers, payload = answer
        if carries_body(status):
            response_headers = [*response_headers, ("Content-Length", str(len(payload)))]
        start_response(_status_line(status), response_headers)
        return [payload] if carries_body(status) else []

    def _too_large(self, environ: dict[str, Any], start_response: Callable[..., Any], limit: int) -> list[bytes]:
        """413, the body left unread and the connection closed (draining it would be reading it)."""
        environ[CLOSE_CONNECTION_KEY] = True
        payload = f"Request body over {limit} bytes: the local cloud does not read it.\n".encode()
        return self._answer(
            start_response, 413, [("Content-Type", "text/plain"), ("Connection", "close")], payload, environ
        )

    @staticmethod
    def _answer(
        start_response: Callable[..., Any],
        status: int,
        headers: list[tuple[str, str]],
        payload: bytes,
        environ: dict[str, Any],
    ) -> list[bytes]:
        start_response(_status_line(status), [*headers, ("Content-Length", str(len(payload)))])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [payload]

    @staticmethod
    def _json(start_response: Callable[..., Any], status: int, data: dict[str, Any]) -> list[bytes]:
        payload = json.dumps(data, sort_keys=True).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        start_response(_status_line(status), headers)
        return [payload]


def run(host: str, port: int) -> int:
    """Serve until shut down (POST /_deployer/shutdown, SIGTERM or SIGINT); 1 if the port cannot be bound."""
    # Before moto's IAM is imported: `up` attaches the AWS managed policy AWSLambdaBasicExecutionRole.
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    os.environ["MOTO_PORT"] = str(port)  # moto builds some URLs of its own (S3, SQS) with it
    # No DNS validates a certificate here: ACM issues a requested one at once (moto's default waits 60 s), so that
    # `up --local` with a custom domain makes its domain name and mapping in one run.
    os.environ["MOTO_ACM_VALIDATION_WAIT"] = "0"
    from moto import __version__ as moto_version
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug import serving

    from deployer.local.patches import install_local_cloud

    class RequestHandler(MotoRequestHandler):
        """moto's handler; the access log keeps AWS API calls only (data-plane requests log their own line)."""

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            path = self.path.split("?", 1)[0]
            domain = localhost_domain(self.headers.get("Host", ""), port)
            if not path.startswith("/_deployer/") and not DATA_PLANE_PATH.match(path) and domain is None:
                super().log_request(code, size)

    serving._log_add_style = False  # a log file, not a terminal: no colours
    install_local_cloud()
    concurrency, idle_seconds = worker_limits()
    dataplane = DataPlane(code_cache(port), console, concurrency, idle_seconds)
    credentials = new_credentials()
    emulator = Emulator(DomainDispatcherApplication(create_backend_app), dataplane, port, credentials)
    try:
        server = serving.make_server(host, port, emulator, threaded=True, request_handler=RequestHandler)
    except (OSError, SystemExit) as error:  # werkzeug exits (SystemExit 1) when the port is taken
        console(f"cannot listen on {host}:{port}: {error}; choose another port (--port, DEPLOYER_LOCAL_PORT)")
        return 1
    shutil.rmtree(code_cache(port), ignore_errors=True)  # the port is ours: what is there was left by a killed one
    write_credentials(port, credentials)  # before the first request is served: `start` reads it once health answers
    stopping = threading.Event()

    def request_shutdown() -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, name="shutdown", daemon=True).start()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        console(f"{signal.Signals(signum).name} received")
        request_shutdown()

    emulator.request_shutdown = request_shutdown
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    pid_file = pid_path(port)
    pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
    console(f"deployer local cloud (moto {moto_version}) on http://{host}:{port}, pid {os.getpid()}")
    try:
        server.serve_forever()
    finally:
        server.server_close()
        dataplane.close()
        remove_credentials(port, credentials)
        try:
            if pid_file.read_text(encoding="utf-8").strip() == str(os.getpid()):
                pid_file.unlink()
        except OSError:
            pass
        console("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployer.local", description="The deployer local cloud.")
    parser.add_argument("--host", default=HOST, help=f"address to listen on (default {HOST})")
    parser.add_argument("--port", type=int, default=None, help="port (default: DEPLOYER_LOCAL_PORT, else 4566)")
    arguments = parser.parse_args(argv)
    try:
        require_emulator()
        port = resolve_port(arguments.port)
    except UsageError as error:  # run by hand without moto, or with a bad DEPLOYER_LOCAL_PORT: one line, no traceback
        console(f"error: {error}")
        return error.exit_code
    return run(arguments.host, port)
