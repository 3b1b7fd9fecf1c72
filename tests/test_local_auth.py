"""The local cloud is its user's only (deployer/local/auth.py), on a real emulator process.

Issue 12's defect: another user of the machine replaced a deployed function's code with one unsigned request,
and any Host header was accepted (DNS rebinding). Now every API call must be signed (SigV4) with the credentials
the local cloud wrote at start to a file only its user can read, and every request must name 127.0.0.1 or
localhost; the deployed API's URL and the health check stay open.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import stat
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError

from deployer.errors import DeployerError
from deployer.local import control, credentials_path, runtime_folder
from deployer.local.auth import new_credentials, read_credentials, write_credentials
from deployer.local.target import local_credentials, session
from tests.account import Account
from tests.support import (
    NAME,
    REGION,
    call,
    deployer_ok,
    free_port,
    in_process_ok,
    make_greeter,
    release,
    stop_for_sure,
)

FOREIGN_HOST = b"Forbidden: the local cloud answers only requests for 127.0.0.1 or localhost.\n"


def send(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, chunked: bool = False
) -> tuple[int, bytes, dict[str, str]]:
    """One raw request, as another program would send it: no botocore, any headers (Host included)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if chunked:  # Transfer-Encoding: chunked, in two chunks
            connection.request(method, path, iter([body[:1000], body[1000:]]), headers or {}, encode_chunked=True)
        else:
            connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.read(), {name.lower(): value for name, value in answer.getheaders()}
    finally:
        connection.close()


def signed_headers(
    port: int, method: str, path: str, body: bytes, key_id: str, secret: str, service: str = "lambda"
) -> dict[str, str]:
    """The headers botocore signs a request with (Content-Type included), for these credentials."""
    request = AWSRequest(
        method=method,
        url=f"http://127.0.0.1:{port}{path}",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(BotoCredentials(key_id, secret), service, REGION).add_auth(request)
    return dict(request.headers.items())


def code_sha(functions: Any) -> str:
    return functions.get_function(FunctionName=NAME)["Configuration"]["CodeSha256"]


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_one_unsigned_request_cannot_replace_a_functions_code(local_cloud: str, tmp_path: Path) -> None:
    """The defect itself: UpdateFunctionCode and Invoke without a signature, with a forged one, replayed with another
    body, or too old, are refused with 403; the code stays, and the function does not run."""
    port = port_of(local_cloud)
    functions = make_greeter(Account(session(REGION), endpoint_url=local_cloud))
    before = code_sha(functions)
    path = f"/2015-03-31/functions/{NAME}/code"
    evil = json.dumps({"ZipFile": base64.b64encode(release("evil")).decode()}).encode()

    status, body, headers = send(port, "PUT", path, evil, {"Content-Type": "application/json"})
    assert (status, headers["x-amzn-errortype"]) == (403, "MissingAuthenticationTokenException")
    assert json.loads(body) == {"message": "Missing Authentication Token"}

    mine = local_credentials(port)
    forged = signed_headers(port, "PUT", path, evil, mine.access_key_id, "not the secret")
    status, body, headers = send(port, "PUT", path, evil, forged)
    assert (status, headers["x-amzn-errortype"]) == (403, "InvalidSignatureException")

    benign = json.dumps({"ZipFile": base64.b64encode(release("benign")).decode()}).encode()
    replayed = signed_headers(port, "PUT", path, benign, mine.access_key_id, mine.secret_access_key)
    status, _, headers = send(port, "PUT", path, evil, replayed)  # a signed request, another body
    assert (status, headers["x-amzn-errortype"]) == (403, "InvalidSignatureException")

    touched = tmp_path / "ran"
    invoke = f"/2015-03-31/functions/{NAME}/invocations"
    status, _, headers = send(port, "POST", invoke, json.dumps({"touch": str(touched)}).encode())
    assert (status, headers["x-amzn-errortype"]) == (403, "MissingAuthenticationTokenException")
    assert not touched.exists(), "an unsigned Invoke ran the function"

    assert code_sha(functions) == before
    assert call(functions)[1]["page"] == "latest"  # $LATEST's code, untouched


def test_a_chunked_body_is_checked_then_handed_on_whole(local_cloud: str) -> None:
    port = port_of(local_cloud)
    functions = make_greeter(Account(session(REGION), endpoint_url=local_cloud))
    mine = local_credentials(port)
    path = f"/2015-03-31/functions/{NAME}/code"
    body = json.dumps({"ZipFile": base64.b64encode(release("chunked")).decode()}).encode()
    headers = signed_headers(port, "PUT", path, body, mine.access_key_id, mine.secret_access_key)
    assert send(port, "PUT", path, body[:-1] + b" ", headers, chunked=True)[0] == 403
    status, answer, _ = send(port, "PUT", path, body, headers, chunked=True)
    assert status == 200, answer
    assert call(functions)[1]["page"] == "chunked"


def test_a_signature_older_than_15_minutes_is_refused(
    local_cloud: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = port_of(local_cloud)
    mine = local_credentials(port)
    path = "/2015-03-31/functions/"
    fresh = signed_headers(port, "GET", path, b"", mine.access_key_id, mine.secret_access_key)
    assert send(port, "GET", path, headers=fresh)[0] == 200
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: datetime.now(UTC) - timedelta(minutes=16))
    stale = signed_headers(port, "GET", path, b"", mine.access_key_id, mine.secret_access_key)
    status, body, headers = send(port, "GET", path, headers=stale)
    assert (status, headers["x-amzn-errortype"]) == (403, "InvalidSignatureException")
    assert "Signature expired" in json.loads(body)["message"]


@pytest.mark.parametrize(
    ("service", "operation", "unknown_key", "wrong_secret"),
    [
        ("lambda", "list_functions", "UnrecognizedClientException", "InvalidSignatureException"),
        ("apigateway", "get_rest_apis", "UnrecognizedClientException", "InvalidSignatureException"),
        ("iam", "list_roles", "InvalidClientTokenId", "SignatureDoesNotMatch"),
        ("s3", "list_buckets", "InvalidAccessKeyId", "SignatureDoesNotMatch"),
        ("s3", "head_bucket", "403", "403"),  # a HEAD: no body, so botocore's code is the status
    ],
)
def test_other_credentials_are_refused_with_the_services_own_code(
    local_cloud: str,
    service: str,
    operation: str,
    unknown_key: str,
    wrong_secret: str,
) -> None:
    """The fixed fake credentials `--local` used to sign with, then the right key id with another secret."""
    mine = local_credentials(port_of(local_cloud))
    for (key_id, secret), code in (
        (("deployerlocal", "deployerlocal"), unknown_key),
        ((mine.access_key_id, "x" + mine.secret_access_key), wrong_secret),
    ):
        other = boto3.Session(aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=REGION)
        with pytest.raises(ClientError) as raised:
            client = other.client(service, endpoint_url=local_cloud)
            getattr(client, operation)(**({"Bucket": "some-bucket"} if operation == "head_bucket" else {}))
        assert raised.value.response["Error"]["Code"] == code
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_the_credentials_file_signs_every_call_deployer_makes(local_cloud: str) -> None:
    """S3 (payload hashed, checksum header, an encoded key, a query), IAM, Lambda (an ARN in the path, Invoke) and
    API Gateway, all signed with the file's credentials and all verified."""
    local = session(REGION)
    s3 = local.client("s3", endpoint_url=local_cloud)
    s3.create_bucket(Bucket="deployer-artifacts")
    body = os.urandom(200_000)
    key = "v1.0.0/my app+été.zip"
    checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
    s3.put_object(Bucket="deployer-artifacts", Key=key, Body=body, ChecksumSHA256=checksum, Metadata={"app": "a b"})
    assert s3.head_object(Bucket="deployer-artifacts", Key=key)["ContentLength"] == len(body)
    listed = s3.list_objects_v2(Bucket="deployer-artifacts", Prefix="v1.0.0/my app")["Contents"]
    assert [item["Key"] for item in listed] == [key]
    with pytest.raises(ClientError) as raised:
        s3.head_object(Bucket="deployer-artifacts", Key="missing")
    assert raised.value.response["Error"]["Code"] == "404"  # moto's answer: the signature was fine

    functions = make_greeter(Account(local, endpoint_url=local_cloud))  # IAM and Lambda
    arn = functions.get_function(FunctionName=NAME)["Configuration"]["FunctionArn"]
    assert functions.get_function(FunctionName=f"{arn}:live")["Configuration"]["Version"] == "1"
    assert call(functions, {"n": 1}, Qualifier="live")[1]["page"] == "one"

    gateway = local.client("apigateway", endpoint_url=local_cloud)
    api_id = gateway.create_rest_api(name="signed")["id"]
    assert [api["id"] for api in gateway.get_rest_apis(limit=500)["items"]] == [api_id]


def test_only_127_0_0_1_and_localhost_are_answered(project: Path, local_cloud: str) -> None:
    """DNS rebinding: a page's requests name the page's host. Refused on every path: the data plane, the health
    check, the API (signed or not). `deployer up --local` still works end to end, and its URL is open to all."""
    port = port_of(local_cloud)
    url = in_process_ok(project, "up", "--version", "1.0.0", "--local").strip()
    path = url.removeprefix(local_cloud)
    assert send(port, "GET", path)[:2] == (200, b"<p>Hello world!</p>")  # no signature: the API is public, as on AWS
    assert send(port, "GET", path, headers={"Host": f"localhost:{port}"})[:2] == (200, b"<p>Hello world!</p>")

    mine = local_credentials(port)
    signed = signed_headers(port, "GET", "/2015-03-31/functions/", b"", mine.access_key_id, mine.secret_access_key)
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}", "127.0.0.1:1", ""):
        for method, target, headers in (
            ("GET", path, {}),
            ("GET", "/_deployer/health", {}),
            ("GET", "/2015-03-31/functions/", signed),
            ("POST", f"/2015-03-31/functions/{NAME}/invocations", {}),
        ):
            status, body, answer = send(port, method, target, headers={**headers, "Host": host})
            assert (status, body) == (403, FOREIGN_HOST), (host, target)
            assert answer["content-type"] == "text/plain"
    assert send(port, "GET", "/2015-03-31/functions/", headers=signed)[0] == 200


def test_the_credentials_file_is_its_users_alone(local_cloud: str, monkeypatch: pytest.MonkeyPatch) -> None:
    port = port_of(local_cloud)
    path = credentials_path(port)
    found = path.stat()
    assert (stat.S_IMODE(found.st_mode), found.st_uid) == (0o600, os.getuid())
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert local_credentials(port).pid == control.health(port).pid  # type: ignore[union-attr]

    # An AWS shared credentials file: the AWS CLI and boto3 can use the local cloud with it.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    assert boto3.client("lambda", endpoint_url=local_cloud, region_name=REGION).list_functions()["Functions"] == []


def test_shutdown_needs_the_credentials_too(local_cloud: str) -> None:
    port = port_of(local_cloud)
    for token in ("yes", "0" * 64, ""):
        status, _, _ = send(port, "POST", "/_deployer/shutdown", headers={"X-Deployer-Shutdown": token})
        assert status == 403, token
    assert control.health(port) is not None, "the local cloud was stopped without its credentials"


def test_each_start_makes_new_credentials_and_stop_removes_them(tmp_path: Path) -> None:
    """`deployer local stop` (which must prove it holds the credentials) stops it; the next start's key pair is
    another, and the old one no longer opens anything."""
    port = free_port()
    try:
        deployer_ok(tmp_path, "local", "start", "--port", str(port))
        first = local_credentials(port)
        deployer_ok(tmp_path, "local", "stop", "--port", str(port))
        assert control.health(port) is None and not credentials_path(port).exists()

        deployer_ok(tmp_path, "local", "start", "--port", str(port))
        second = local_credentials(port)
        assert (second.access_key_id, second.secret_access_key) != (first.access_key_id, first.secret_access_key)
        old = boto3.Session(
            aws_access_key_id=first.access_key_id, aws_secret_access_key=first.secret_access_key, region_name=REGION
        )
        with pytest.raises(ClientError) as raised:
            old.client("lambda", endpoint_url=f"http://127.0.0.1:{port}").list_functions()
        assert raised.value.response["Error"]["Code"] == "UnrecognizedClientException"
    finally:
        stop_for_sure(port)


def test_the_file_is_never_readable_by_others_even_with_an_open_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    previous = os.umask(0)
    try:
        runtime_folder().chmod(0o777)  # made open by someone: put back to 0700
        credentials = new_credentials()
        write_credentials(4566, credentials)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(runtime_folder().stat().st_mode) == 0o700
    assert stat.S_IMODE(credentials_path(4566).stat().st_mode) == 0o600
    assert read_credentials(4566) == credentials
    assert [item.name for item in runtime_folder().iterdir()] == ["4566.credentials"]  # no temporary left behind


def test_a_runtime_folder_that_is_a_symlink_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a shared temp dir, another user could plant the folder's name, as a link to a folder of theirs."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / f"deployer-local-{os.getuid()}").symlink_to(elsewhere)
    with pytest.raises(DeployerError, match="is not a folder of yours"):
        runtime_folder()
