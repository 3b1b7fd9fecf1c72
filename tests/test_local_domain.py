"""Issue 23 on the local cloud: `up --local` with a custom domain makes the domain's resources in the emulated
account, and the data plane answers the domain as `http://<domain>.localhost:<port>/<base_path>/...`.

No DNS is needed: the tests send `Host: api.example.com.localhost:<port>` to 127.0.0.1, as curl and browsers do
for any `*.localhost` name (they resolve it to the loopback themselves, RFC 6761).

What API Gateway answers a request its domain names do not take, recorded by users of real AWS: `{"message":
"Forbidden"}`, 403, "when it has no place to point an event (when there is no base path mapping)"
(https://github.com/Miserlou/Zappa/issues/1248), as for the domain's CloudFront name itself, which is no domain
name API Gateway has (https://github.com/zappa/Zappa/issues/1338). And a function behind base path `v1` sees
`/v1/ping` as its path, not `/ping` (https://github.com/pahud/lambda-gin-refarch/issues/1).
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

from deployer.local.target import session
from tests.account import APP
from tests.support import Reply, in_process_ok, run_in_process

DOMAIN = "api.example.com"
FORBIDDEN = b'{"message":"Forbidden"}'
# Answers what API Gateway told it about the request.
ECHO = """
import json


def handler(event, context):
    seen = {
        "path": event["path"],
        "resource": event["resource"],
        "pathParameters": event["pathParameters"],
        "requestContext.path": event["requestContext"]["path"],
        "requestContext.stage": event["requestContext"]["stage"],
        "requestContext.domainName": event["requestContext"]["domainName"],
    }
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(seen)}
"""


def with_domain(project: Path, *lines: str) -> None:
    config = project / "deploy.toml"
    config.write_text(config.read_text().replace("[api]\n", "[api]\n" + "".join(f"{line}\n" for line in lines), 1))


def port_of(local_cloud: str) -> int:
    return int(local_cloud.rsplit(":", 1)[1])


def get(local_cloud: str, host: str, target: str = "/") -> Reply:
    """GET `target` from the local cloud (127.0.0.1) with this Host header: no DNS involved."""
    connection = http.client.HTTPConnection("127.0.0.1", port_of(local_cloud), timeout=30)
    try:
        connection.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


def clients(local_cloud: str, region: str = "us-east-1") -> Any:
    local = session(region)
    return local.client("apigateway", endpoint_url=local_cloud), local.client("acm", endpoint_url=local_cloud)


def test_up_local_serves_the_domain_at_its_localhost_name_and_down_removes_it(project: Path, local_cloud: str) -> None:
    with_domain(project, f'domain = "{DOMAIN}"')
    host = f"{DOMAIN}.localhost:{port_of(local_cloud)}"
    result = run_in_process(project, "up", "--version", "1.0.0", "--local")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"http://{host}"  # the domain's URL, last on stdout
    assert "the local cloud has no DNS to write" in result.stderr
    assert "create this DNS record" not in result.stderr

    gateway, acm = clients(local_cloud)
    [api] = gateway.get_rest_apis()["items"]
    found = gateway.get_domain_name(domainName=DOMAIN)
    certificate = acm.describe_certificate(CertificateArn=found["regionalCertificateArn"])["Certificate"]
    assert (certificate["DomainName"], certificate["Status"]) == (DOMAIN, "ISSUED")  # issued at once: no DNS here
    [mapping] = gateway.get_base_path_mappings(domainName=DOMAIN)["items"]
    assert (mapping["restApiId"], mapping["stage"], mapping["basePath"]) == (api["id"], "test", "(none)")

    reply = get(local_cloud, host, "/some/deep/path?x=1")
    assert (reply.status, reply.body) == (200, b"<p>Hello world!</p>")
    assert get(local_cloud, host).body == b"<p>Hello world!</p>"

    status = json.loads(in_process_ok(project, "status", "--local", "--json"))
    assert (status["domain_url"], status["domain_status"]) == (f"http://{host}", "ready")
    assert f"domain_url     http://{host} (ready)" in in_process_ok(project, "status", "--local")

    in_process_ok(project, "down", "--yes", "--local")
    assert gateway.get_domain_names()["items"] == []
    assert [item["Status"] for item in acm.list_certificates()["CertificateSummaryList"]] == []  # ours: deleted
    reply = get(local_cloud, host, "/some/deep/path")
    assert (reply.status, reply.body) == (403, FORBIDDEN)


def test_a_base_path_routes_to_the_stage_and_the_function_sees_it(project: Path, local_cloud: str) -> None:
    (project / "function" / "main.py").write_text(ECHO)
    with_domain(project, f'domain = "{DOMAIN}"', 'base_path = "v1"')
    host = f"{DOMAIN}.localhost:{port_of(local_cloud)}"
    assert in_process_ok(project, "up", "--version", "1.0.0", "--local").splitlines()[-1] == f"http://{host}/v1"

    reply = get(local_cloud, host, "/v1/hello/world")
    assert reply.status == 200, reply.body
    assert reply.json() == {
        "path": "/v1/hello/world",  # as the client sent it, base path included (AWS's own, see above)
        "resource": "/{proxy+}",
        "pathParameters": {"proxy": "hello/world"},
        "requestContext.path": "/v1/hello/world",
        "requestContext.stage": "test",
        "requestContext.domainName": DOMAIN,
    }
    assert get(local_cloud, host, "/v1").json()["resource"] == "/"
    for unmapped in ("/", "/v2/hello", "/v1x/hello"):  # no mapping takes them: API Gateway's 403
        reply = get(local_cloud, host, unmapped)
        assert (reply.status, reply.body, reply.header("x-amzn-ErrorType")) == (403, FORBIDDEN, ["ForbiddenException"])

    config = project / "deploy.toml"
    config.write_text(config.read_text().replace('base_path = "v1"', 'base_path = "v2"'))
    assert in_process_ok(project, "up", "--version", "1.0.0", "--local").splitlines()[-1] == f"http://{host}/v2"
    gateway, _ = clients(local_cloud)
    assert [item["basePath"] for item in gateway.get_base_path_mappings(domainName=DOMAIN)["items"]] == ["v2"]
    assert get(local_cloud, host, "/v2/hello").json()["path"] == "/v2/hello"
    assert get(local_cloud, host, "/v1/hello").status == 403


def test_an_unknown_localhost_domain_is_forbidden_and_other_hosts_are_refused(project: Path, local_cloud: str) -> None:
    with_domain(project, f'domain = "{DOMAIN}"')
    in_process_ok(project, "up", "--version", "1.0.0", "--local")
    port = port_of(local_cloud)

    for unknown in (
        f"other.example.com.localhost:{port}",
        f"example.com.localhost:{port}",
        f"localhost.localhost:{port}",
    ):
        reply = get(local_cloud, unknown, "/")
        assert (reply.status, reply.body, reply.header("x-amzn-ErrorType")) == (403, FORBIDDEN, ["ForbiddenException"])
    # A domain's Host reaches its API only: neither the local cloud's own endpoints nor an AWS API call.
    assert get(local_cloud, f"{DOMAIN}.localhost:{port}", "/_deployer/health").body == b"<p>Hello world!</p>"
    assert get(local_cloud, f"other.example.com.localhost:{port}", "/restapis").body == FORBIDDEN

    for foreign in (
        DOMAIN,
        f"{DOMAIN}:{port}",
        f"{DOMAIN}.localhost.evil.com:{port}",
        f"{DOMAIN}.localhost:{port + 1}",
    ):
        reply = get(local_cloud, foreign, "/")
        assert reply.status == 403 and reply.body.startswith(b"Forbidden: the local cloud answers only"), foreign
    assert get(local_cloud, f"127.0.0.1:{port}", "/_deployer/health").json()["port"] == port


def test_an_edge_domain_takes_its_certificate_from_us_east_1_of_the_local_cloud(
    project: Path, local_cloud: str
) -> None:
    """The API is in eu-west-1, the EDGE domain's certificate in us-east-1: ACM's requests are signed for
    us-east-1, and the local cloud (which emulates every region) accepts them."""
    config = project / "deploy.toml"
    config.write_text(config.read_text().replace('region = "us-east-1"', 'region = "eu-west-1"'))
    with_domain(project, f'domain = "{DOMAIN}"', 'domain_endpoint = "EDGE"')
    host = f"{DOMAIN}.localhost:{port_of(local_cloud)}"
    assert in_process_ok(project, "up", "--version", "1.0.0", "--local").splitlines()[-1] == f"http://{host}"

    gateway, _ = clients(local_cloud, "eu-west-1")
    found = gateway.get_domain_name(domainName=DOMAIN)
    assert found["certificateArn"].split(":")[3] == "us-east-1"
    _, acm_us = clients(local_cloud, "us-east-1")
    _, acm_eu = clients(local_cloud, "eu-west-1")
    assert [item["DomainName"] for item in acm_us.list_certificates()["CertificateSummaryList"]] == [DOMAIN]
    assert acm_eu.list_certificates()["CertificateSummaryList"] == []
    assert get(local_cloud, host, "/hello").body == b"<p>Hello world!</p>"
    assert APP in gateway.get_rest_apis()["items"][0]["name"]
