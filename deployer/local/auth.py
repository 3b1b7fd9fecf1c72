"""The local cloud is its user's only: credentials of its own, AWS SigV4 checked, and 127.0.0.1/localhost only.

Any local user can connect to 127.0.0.1, and a web page can reach it by DNS rebinding (a name of the
page's own that resolves to 127.0.0.1), so the emulator trusts neither the connection nor the network:

- At start it makes a random access key id and secret and writes them, as an AWS shared credentials
  file, to `{temp dir}/deployer-local-{uid}/{port}.credentials`: mode 0600 from its creation, in a
  folder only its user can enter. `--local` commands sign with them (target.py).
- Every control-plane request (anything moto answers, Lambda Invoke) must carry an AWS Signature
  Version 4 made with them: the access key id, the signature recomputed by botocore's signer (its
  canonical request, as moto does it), x-amz-date within 15 minutes, and the body's SHA-256 (the
  header parsing, the clock skew and the payload-hash checks are this module's own). Refusals have
  AWS's 403 shape for the protocol, so boto3 raises a ClientError with AWS's code.
- Every request, the data plane and the health check included, must name 127.0.0.1 or localhost in its
  Host header: a rebinding page's requests name the page's host. The one exception is a custom domain's
  data plane, `<domain>.localhost:<port>` (localhost_domain): browsers and curl resolve every `*.localhost` name
  to the loopback themselves (RFC 6761; no DNS server is asked, so a rebinding page cannot point one at us), and
  such a Host reaches nothing but the domain's API, never an AWS API call nor the control endpoints.
- `POST /_deployer/shutdown` carries a token derived from the secret (shutdown_token).

Standard library only at import: control.py reads the file and makes the token without botocore
(the signature check imports botocore when it runs, in the local cloud's process).
"""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import string
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from deployer.local import credentials_path

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)  # what AWS allows between x-amz-date and its own clock
AMZ_DATE = "%Y%m%dT%H%M%SZ"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
MAX_DOMAIN = 253  # the longest DNS name
# A body S3 does not hash into the signature (a signed header still says so): the rest of the request is checked.
UNHASHED_PAYLOADS = frozenset(
    {
        "UNSIGNED-PAYLOAD",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    }
)
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# AWS's query protocol (XML <ErrorResponse>): the services of the credential scope that speak it.
QUERY_SERVICES = frozenset(
    {"iam", "sts", "sns", "ec2", "cloudformation", "monitoring", "elasticloadbalancing", "autoscaling", "rds", "ses"}
)
JSON_PATHS = ("/20", "/restapis", "/apikeys", "/domainnames", "/usageplans", "/account", "/tags", "/moto-api")


@dataclass(frozen=True)
class Credentials:
    """The one key pair a local cloud accepts, and the emulator (pid) that made it."""

    access_key_id: str
    secret_access_key: str
    pid: int


def new_credentials() -> Credentials:
    """A random key pair: 20 characters of id as AWS's, a 40-character secret."""
    alphabet = string.ascii_uppercase + string.digits
    key_id = "LOCL" + "".join(secrets.choice(alphabet) for _ in range(16))
    return Credentials(key_id, secrets.token_urlsafe(30), os.getpid())


def write_credentials(port: int, credentials: Credentials) -> None:
    """Write the file atomically: mkstemp makes it 0600 from the start, os.replace puts it in place whole."""
    target = credentials_path(port)
    text = (
        f"# The deployer local cloud on http://127.0.0.1:{port} (pid {credentials.pid}) accepts only requests\n"
        "# signed with this key pair. Use it with AWS_SHARED_CREDENTIALS_FILE=<this file>.\n"
        "[default]\n"
        f"aws_access_key_id = {credentials.access_key_id}\n"
        f"aws_secret_access_key = {credentials.secret_access_key}\n"
        f"deployer_local_pid = {credentials.pid}\n"
    )
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{port}.credentials.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_credentials(port: int) -> Credentials | None:
    """The credentials of the local cloud on `port`; None when it wrote none (not running, or an older one)."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(credentials_path(port), encoding="utf-8") as stream:
            parser.read_file(stream)
        section = parser["default"]
        return Credentials(
            section["aws_access_key_id"], section["aws_secret_access_key"], int(section["deployer_local_pid"])
        )
    except (OSError, configparser.Error, KeyError, ValueError):
        return None


def remove_credentials(port: int, credentials: Credentials) -> None:
    """Delete the file if it is still this emulator's (a later one on the port may have replaced it)."""
    found = read_credentials(port)
    if found is not None and found.access_key_id == credentials.access_key_id:
        credentials_path(port).unlink(missing_ok=True)


def shutdown_token(credentials: Credentials) -> str:
    """What `POST /_deployer/shutdown` must carry in X-Deployer-Shutdown: only the secret's holder can make it."""
    return hmac.new(credentials.secret_access_key.encode(), b"deployer-local shutdown", hashlib.sha256).hexdigest()


def is_local_host(host: str, port: int) -> bool:
    """Whether a Host header names this emulator: 127.0.0.1 or localhost, with no port or its own."""
    name, colon, given = host.strip().lower().rpartition(":")
    if not colon:
        name, given = given, str(port)
    return name in LOCAL_HOSTS and given == str(port)


def localhost_domain(host: str, port: int) -> str | None:
    """The custom domain a Host header `<domain>.localhost`, with no port or this emulator's, names; else None."""
    name, colon, given = host.strip().lower().rpartition(":")
    if not colon:
        name, given = given, str(port)
    name = name.rstrip(".")
    domain, dot, suffix = name.rpartition(".")
    if given != str(port) or not dot or suffix != "localhost" or not domain or len(domain) > MAX_DOMAIN:
        return None
    return domain


@dataclass(frozen=True)
class AuthRefusal:
    """Why a control-plane request was refused: one of the `kind`s in ANSWERS, and the scope's service."""

    kind: str
    service: str | None = None
    detail: str = ""


def check_identity(environ: Mapping[str, Any], credentials: Credentials, now: datetime) -> AuthRefusal | None:
    """What check_signature checks before it needs the body: a SigV4 Authorization header naming this local
    cloud's key, a fresh X-Amz-Date, a scope of that date. A request that fails here is refused unread."""
    fields = parse_authorization(environ.get("HTTP_AUTHORIZATION", ""))
    if fields is None:
        return AuthRefusal("missing")
    key_id, date, _, service, signed_headers, _ = fields
    if not hmac.compare_digest(key_id.encode(), credentials.access_key_id.encode()):
        return AuthRefusal("unknown key", service)
    try:
        stamp = datetime.strptime(environ.get("HTTP_X_AMZ_DATE", ""), AMZ_DATE).replace(tzinfo=UTC)
    except ValueError:
        return AuthRefusal("bad signature", service, "no valid X-Amz-Date header")
    if abs(now - stamp) > MAX_SKEW:
        return AuthRefusal("expired", service, f"X-Amz-Date {stamp:%Y%m%dT%H%M%SZ} is over 15 minutes from now")
    if date != stamp.strftime("%Y%m%d") or not {"host", "x-amz-date"} <= set(signed_headers):
        return AuthRefusal("bad signature", service, "the scope's date, or host and x-amz-date not signed")
    return None


def check_signature(
    environ: Mapping[str, Any], raw_path: str, body: bytes | None, credentials: Credentials, now: datetime
) -> AuthRefusal | None:
    """None when the request is signed with `credentials` (SigV4, header form); else why not.

    `body` is the whole request body, or None when the caller has not read it: then only a request whose
    X-Amz-Content-SHA256 header stands for the body can be checked (see needs_body).
    """
    refusal = check_identity(environ, credentials, now)
    if refusal is not None:
        return refusal
    fields = parse_authorization(environ.get("HTTP_AUTHORIZATION", ""))
    assert fields is not None  # check_identity parsed it
    _, _, region, service, signed_headers, signature = fields

    claimed = environ.get("HTTP_X_AMZ_CONTENT_SHA256")
    if claimed is None and body is None:
        raise ValueError("check_signature needs the body of a request without X-Amz-Content-SHA256")
    expected = _signature(environ, raw_path, body, signed_headers, credentials, region, service)
    if not hmac.compare_digest(expected, signature):
        return AuthRefusal("bad signature", service)
    if claimed is not None and claimed not in UNHASHED_PAYLOADS:
        if not SHA256_HEX.match(claimed):
            return AuthRefusal("bad signature", service, f"X-Amz-Content-SHA256 {claimed!r} is not a SHA-256")
        if body is not None and not hmac.compare_digest(hashlib.sha256(body).hexdigest(), claimed):
            return AuthRefusal("payload", service)
    return None


def needs_body(environ: Mapping[str, Any]) -> bool:
    """Whether check_signature must see the body: it is hashed into the signature, or checked against a header."""
    return environ.get("HTTP_X_AMZ_CONTENT_SHA256") not in UNHASHED_PAYLOADS


def parse_authorization(header: str) -> tuple[str, str, str, str, list[str], str] | None:
    """(key id, date, region, service, signed header names, signature) of a SigV4 Authorization header."""
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        return None
    fields = dict(part.strip().partition("=")[::2] for part in rest.split(","))
    scope = fields.get("Credential", "").split("/")
    signed = fields.get("SignedHeaders", "").split(";")
    signature = fields.get("Signature", "")
    if len(scope) != 5 or scope[4] != "aws4_request" or not all(scope) or not SHA256_HEX.match(signature):
        return None
    if not all(signed) or signed != sorted(set(signed)) or any(name != name.lower() for name in signed):
        return None
    return scope[0], scope[1], scope[2], scope[3], signed, signature


def _signature(
    environ: Mapping[str, Any],
    raw_path: str,
    body: bytes | None,
    signed_headers: list[str],
    credentials: Credentials,
    region: str,
    service: str,
) -> str:
    """The signature the request should carry, computed by botocore's own signer (as moto verifies them):
    its canonical request (S3's path as sent, every other service's normalized), string to sign and key.

    The request it signs holds only the headers the client signed, as this module reads them from the
    environ; a signed X-Amz-Content-SHA256 is the payload's hash, else the body's own."""
    from botocore.auth import S3SigV4Auth, SigV4Auth  # the local cloud's process has botocore; control.py not
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    query = environ.get("QUERY_STRING", "")
    host = header_value(environ, "host")
    request = AWSRequest(
        method=environ.get("REQUEST_METHOD", "GET"),
        url=f"http://{host}{raw_path or '/'}" + (f"?{query}" if query else ""),
        headers={name: header_value(environ, name) for name in signed_headers},
        data=body,
    )
    request.context["timestamp"] = environ["HTTP_X_AMZ_DATE"]
    signer = S3SigV4Auth if service == "s3" else SigV4Auth
    auth = signer(BotoCredentials(credentials.access_key_id, credentials.secret_access_key), service, region)
    return str(auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request))


def header_value(environ: Mapping[str, Any], name: str) -> str:
    """A header's value from the WSGI environ (repeats joined by ","), spaces trimmed and collapsed as SigV4 says."""
    key = name.upper().replace("-", "_")
    value = environ.get(key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}", "")
    return " ".join(str(value).split())


# kind -> (status, code, message) per protocol: what AWS answers, so botocore raises what it would there.
ANSWERS: dict[str, dict[str, tuple[int, str, str]]] = {
    "json": {
        "missing": (403, "MissingAuthenticationTokenException", "Missing Authentication Token"),
        "unknown key": (403, "UnrecognizedClientException", "The security token included in the request is invalid."),
        "bad signature": (403, "InvalidSignatureException", "The request signature we calculated does not match"),
        "expired": (403, "InvalidSignatureException", "Signature expired"),
        "payload": (403, "InvalidSignatureException", "The request signature we calculated does not match"),
    },
    "query": {
        "missing": (403, "MissingAuthenticationToken", "Request is missing Authentication Token"),
        "unknown key": (403, "InvalidClientTokenId", "The security token included in the request is invalid."),
        "bad signature": (403, "SignatureDoesNotMatch", "The request signature we calculated does not match"),
        "expired": (403, "SignatureDoesNotMatch", "Signature expired"),
        "payload": (403, "SignatureDoesNotMatch", "The request signature we calculated does not match"),
    },
    "s3": {
        "missing": (403, "AccessDenied", "Access Denied"),
        "unknown key": (403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."),
        "bad signature": (403, "SignatureDoesNotMatch", "The request signature we calculated does not match"),
        "expired": (403, "RequestTimeTooSkewed", "The difference between the request time and now is too large."),
        "payload": (400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' does not match the body."),
    },
}
SIGNATURE_ADVICE = (
    " the signature you provided. Check your AWS Secret Access Key and signing method: the local cloud accepts "
    "only the credentials in its credentials file."
)


def protocol(service: str | None, environ: Mapping[str, Any], raw_path: str) -> str:
    """json, query or s3: from the credential scope's service, else guessed from the request's shape."""
    if service is not None:
        return "s3" if service == "s3" else "query" if service in QUERY_SERVICES else "json"
    if environ.get("HTTP_X_AMZ_TARGET") or raw_path.startswith(JSON_PATHS):
        return "json"
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return "query"
    return "s3"


def refusal_answer(
    refusal: AuthRefusal, environ: Mapping[str, Any], raw_path: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) in AWS's shape for the request's protocol."""
    kind = protocol(refusal.service, environ, raw_path)
    status, code, message = ANSWERS[kind][refusal.kind]
    if message.endswith("does not match"):
        message += SIGNATURE_ADVICE
    if refusal.detail:
        message = f"{message} ({refusal.detail})"
    request_id = str(uuid.uuid4())
    headers = [("x-amzn-RequestId", request_id), ("x-amz-request-id", request_id)]
    if kind == "json":
        headers.append(("x-amzn-ErrorType", code))
        headers.append(("Content-Type", "application/json"))
        return status, headers, json.dumps({"message": message}).encode()
    headers.append(("Content-Type", "text/xml"))
    error = f"<Code>{code}</Code><Message>{_xml(message)}</Message>"
    if kind == "query":
        error = f"<Error><Type>Sender</Type>{error}</Error><RequestId>{request_id}</RequestId>"
        text = f"<ErrorResponse>{error}</ErrorResponse>"
    else:
        text = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{error}<RequestId>{request_id}</RequestId></Error>'
    return status, headers, text.encode()


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
