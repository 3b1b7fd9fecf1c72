"""The stage's custom domain: certificate, API Gateway domain name and base path mapping, Route 53 records.

moto answers ACM's RequestCertificate with a certificate that stays PENDING_VALIDATION (for 60 s, then ISSUED
whatever DNS says). Real ACM issues a DNS-validated certificate once its validation CNAME resolves ("DNS
validation", https://docs.aws.amazon.com/acm/latest/userguide/dns-validation.html): the `acm_validates` fixture
does that, before each DescribeCertificate, from the records in the emulated Route 53 (or in `outside`, the
user's own DNS elsewhere).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.handlers import BUILTIN_HANDLERS

from tests.account import Account
from tests.support import edit, imported_certificate

DOMAIN = "api.example.com"
ACCOUNT_ID = "123456789012"
REGIONS = ("us-east-1", "eu-west-1")  # where the tests' certificates are
ELSEWHERE = f"arn:aws:acm:eu-west-1:{ACCOUNT_ID}:certificate/1234"  # a certificate of another region than the API's


def with_domain(project: Path, *lines: str) -> None:
    edit(project / "deploy.toml", "[api]\n", "[api]\n" + "".join(f"{line}\n" for line in lines), count=1)


class AcmValidates:
    def __init__(self) -> None:
        self.outside: set[tuple[str, str]] = set()  # (name, value) of CNAMEs in DNS that Route 53 does not serve

    def __call__(self, **_: Any) -> None:
        from moto.acm.models import acm_backends

        route53 = boto3.client("route53")
        served = set(self.outside)
        for zone in route53.list_hosted_zones()["HostedZones"]:
            for record in route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]:
                for value in record.get("ResourceRecords", []):
                    served.add((record["Name"].rstrip("."), value["Value"].rstrip(".")))
        bundles = [bundle for region in REGIONS for bundle in acm_backends[ACCOUNT_ID][region]._certificates.values()]
        for bundle in bundles:
            if bundle.status != "PENDING_VALIDATION":
                continue
            options = bundle.describe()["Certificate"]["DomainValidationOptions"]
            if all(
                (option["ResourceRecord"]["Name"].rstrip("."), option["ResourceRecord"]["Value"].rstrip(".")) in served
                for option in options
            ):
                bundle.status = "ISSUED"


@pytest.fixture
def acm_validates(aws_account: Account):
    validates = AcmValidates()
    entry = ("before-call.acm.DescribeCertificate", validates)
    BUILTIN_HANDLERS.append(entry)
    yield validates
    BUILTIN_HANDLERS.remove(entry)


def zone(account: Account, name: str = "example.com") -> str:
    return account.client("route53").create_hosted_zone(Name=name, CallerReference=name)["HostedZone"]["Id"]


def records(account: Account, zone_id: str) -> dict[tuple[str, str], Any]:
    found = account.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return {
        (item["Name"].rstrip("."), item["Type"]): item.get("AliasTarget", {}).get("DNSName")
        or [value["Value"] for value in item.get("ResourceRecords", [])]
        for item in found
    }


def certificates(account: Account) -> list[dict[str, Any]]:
    acm = account.client("acm")
    return [
        acm.describe_certificate(CertificateArn=item["CertificateArn"])["Certificate"]
        for item in acm.list_certificates()["CertificateSummaryList"]
    ]


def run_cli(project: Path, *arguments: str, expect: int) -> tuple[list[str], str]:
    from typer.testing import CliRunner

    from deployer.cli import app

    result = CliRunner().invoke(app, [*arguments, "--config", str(project / "deploy.toml")])
    assert result.exit_code == expect, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stdout.splitlines(), result.stderr


def test_with_a_zone_in_route53_everything_is_automatic(project: Path, aws_account: Account, acm_validates) -> None:
    zone_id = zone(aws_account)
    with_domain(project, f'domain = "{DOMAIN}"')
    stdout, stderr = run_cli(project, "up", "--version", "1.0.0", expect=0)
    assert stdout[-1] == f"https://{DOMAIN}"
    assert "execute-api" in stderr
    [certificate] = certificates(aws_account)
    assert certificate["Status"] == "ISSUED" and certificate["DomainName"] == DOMAIN
    tags = aws_account.client("acm").list_tags_for_certificate(CertificateArn=certificate["CertificateArn"])["Tags"]
    assert {"Key": "deployer:app", "Value": "ServerlessExample"} in tags
    gateway = aws_account.client("apigateway")
    domain = gateway.get_domain_name(domainName=DOMAIN)
    assert domain["endpointConfiguration"]["types"] == ["REGIONAL"] and domain["securityPolicy"] == "TLS_1_2"
    assert domain["regionalCertificateArn"] == certificate["CertificateArn"]
    [mapping] = gateway.get_base_path_mappings(domainName=DOMAIN)["items"]
    api_id = aws_account.rest_apis()[0]["id"]
    assert (mapping["restApiId"], mapping["stage"], mapping["basePath"]) == (api_id, "test", "(none)")
    written = records(aws_account, zone_id)
    assert written[(DOMAIN, "A")] == written[(DOMAIN, "AAAA")] == domain["regionalDomainName"]
    validation = certificate["DomainValidationOptions"][0]["ResourceRecord"]
    assert (validation["Name"].rstrip("."), "CNAME") in written
    status, _ = run_cli(project, "status", "--json", expect=0)
    data = json.loads("\n".join(status))
    assert (data["domain_url"], data["domain_status"]) == (f"https://{DOMAIN}", "ready")
    assert data["base_url"].startswith(f"https://{api_id}.execute-api.")
    run_cli(project, "plan", "--version", "1.0.0", expect=0)  # nothing left to do


def test_without_a_zone_the_records_are_named_exit_4_and_a_second_up_finishes(
    project: Path, aws_account: Account, acm_validates
) -> None:
    with_domain(project, f'domain = "{DOMAIN}"')
    stdout, stderr = run_cli(project, "up", "--version", "1.0.0", expect=4)
    [certificate] = certificates(aws_account)
    validation = certificate["DomainValidationOptions"][0]["ResourceRecord"]
    assert stdout == [f"{validation['Name'].rstrip('.')} CNAME {validation['Value'].rstrip('.')}"]
    assert aws_account.client("apigateway").get_domain_names()["items"] == []  # not before the certificate
    aws_account.assert_stack("v1.0.0/example.zip")  # everything else is deployed
    status, _ = run_cli(project, "status", "--json", expect=0)
    assert json.loads("\n".join(status))["domain_status"] == "validating"
    run_cli(project, "up", "--version", "1.0.0", expect=4)  # still no record: still waiting, nothing else done
    acm_validates.outside.add((validation["Name"].rstrip("."), validation["Value"].rstrip(".")))
    stdout, stderr = run_cli(project, "up", "--version", "1.0.0", expect=0)
    assert stdout[-1] == f"https://{DOMAIN}"
    target = aws_account.client("apigateway").get_domain_name(domainName=DOMAIN)["regionalDomainName"]
    assert f"create this DNS record: {DOMAIN} CNAME {target}" in stderr
    assert len(certificates(aws_account)) == 1  # the same certificate, not a second request


def test_a_given_certificate_is_used_as_it_is(project: Path, aws_account: Account, acm_validates) -> None:
    zone(aws_account)
    arn = imported_certificate(aws_account, DOMAIN)
    with_domain(project, f'domain = "{DOMAIN}"', f'certificate_arn = "{arn}"')
    run_cli(project, "up", "--version", "1.0.0", expect=0)
    assert [item["CertificateArn"] for item in certificates(aws_account)] == [arn]
    assert aws_account.client("apigateway").get_domain_name(domainName=DOMAIN)["regionalCertificateArn"] == arn


def test_an_issued_wildcard_certificate_is_found_and_used(project: Path, aws_account: Account, acm_validates) -> None:
    zone(aws_account)
    arn = imported_certificate(aws_account, "*.example.com")
    with_domain(project, f'domain = "{DOMAIN}"')
    run_cli(project, "up", "--version", "1.0.0", expect=0)
    assert [item["CertificateArn"] for item in certificates(aws_account)] == [arn]  # none requested
    assert aws_account.client("apigateway").get_domain_name(domainName=DOMAIN)["regionalCertificateArn"] == arn


def test_a_new_base_path_is_changed_in_place(project: Path, aws_account: Account, acm_validates) -> None:
    zone(aws_account)
    with_domain(project, f'domain = "{DOMAIN}"')
    run_cli(project, "up", "--version", "1.0.0", expect=0)
    gateway = aws_account.client("apigateway")
    created = gateway.get_domain_name(domainName=DOMAIN)["regionalDomainName"]
    with_domain(project, 'base_path = "v1"')
    _, stderr = run_cli(project, "plan", "--version", "1.0.0", expect=3)
    assert "base path mapping" in stderr and "v1" in stderr
    stdout, _ = run_cli(project, "up", "--version", "1.0.0", expect=0)
    assert stdout[-1] == f"https://{DOMAIN}/v1"
    [mapping] = gateway.get_base_path_mappings(domainName=DOMAIN)["items"]
    assert mapping["basePath"] == "v1"
    assert gateway.get_domain_name(domainName=DOMAIN)["regionalDomainName"] == created  # the same domain name


def test_two_stages_have_two_domains_each_mapped_to_its_own_api(
    project: Path, aws_account: Account, acm_validates
) -> None:
    zone(aws_account)
    with_domain(project, f'domain = "{DOMAIN}"')
    (project / "deploy.toml").write_text(
        (project / "deploy.toml").read_text() + '\n[stages.prod]\ndomain = "www.example.com"\n'
    )
    run_cli(project, "up", "--version", "1.0.0", expect=0)
    stdout, _ = run_cli(project, "up", "--version", "1.0.0", "--stage", "prod", expect=0)
    assert stdout[-1] == "https://www.example.com"
    gateway = aws_account.client("apigateway")
    apis = {api["name"]: api["id"] for api in aws_account.rest_apis()}
    for name, stage, api in (
        (DOMAIN, "test", "ServerlessExample"),
        ("www.example.com", "prod", "ServerlessExample-prod"),
    ):
        [mapping] = gateway.get_base_path_mappings(domainName=name)["items"]
        assert (mapping["restApiId"], mapping["stage"]) == (apis[api], stage)
    run_cli(project, "down", "--yes", "--stage", "prod", expect=0)
    assert [item["domainName"] for item in gateway.get_domain_names()["items"]] == [DOMAIN]


def test_down_leaves_a_foreign_certificate_zone_and_record_alone(
    project: Path, aws_account: Account, acm_validates
) -> None:
    zone_id = zone(aws_account)
    foreign = imported_certificate(aws_account, "other.example.com")
    route53 = aws_account.client("route53")
    theirs = {
        "Name": "www.example.com",
        "Type": "CNAME",
        "TTL": 60,
        "ResourceRecords": [{"Value": "elsewhere.example.net"}],
    }
    route53.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": theirs}]}
    )
    with_domain(project, f'domain = "{DOMAIN}"')
    run_cli(project, "up", "--version", "1.0.0", expect=0)
    run_cli(project, "down", "--yes", expect=0)
    assert aws_account.is_empty()
    assert aws_account.client("apigateway").get_domain_names()["items"] == []
    assert [item["CertificateArn"] for item in certificates(aws_account)] == [foreign]  # ours went, theirs stays
    left = records(aws_account, zone_id)
    assert set(left) == {("example.com", "NS"), ("example.com", "SOA"), ("www.example.com", "CNAME")}


def test_a_record_not_ours_is_refused_and_left_as_it_is(project: Path, aws_account: Account, acm_validates) -> None:
    zone_id = zone(aws_account)
    theirs = {"Name": DOMAIN, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.1"}]}
    aws_account.client("route53").change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": theirs}]}
    )
    with_domain(project, f'domain = "{DOMAIN}"')
    _, stderr = run_cli(project, "up", "--version", "1.0.0", expect=1)
    assert "deployer did not write it" in stderr
    assert records(aws_account, zone_id)[(DOMAIN, "A")] == ["192.0.2.1"]


@pytest.mark.parametrize("name", ["API.example.com", "localhost", "a..example.com", "-a.example.com", "1.2.3.4"])
def test_a_domain_that_is_not_a_dns_name_is_refused(cli, project: Path, aws_account: Account, name: str) -> None:
    with_domain(project, f'domain = "{name}"')
    stderr = cli("up", "--version", "1.0.0", expect=2)
    assert "[api] domain" in stderr
    assert aws_account.is_empty()


def domain_steps(project: Path, *arguments: str, expect: int) -> dict[str, tuple[str, str]]:
    """`plan --json`'s domain steps: resource -> (action, name)."""
    stdout, _ = run_cli(project, "plan", "--version", "1.0.0", "--json", *arguments, expect=expect)
    steps = ("certificate", "domain name", "base path mapping", "dns records")
    changes = json.loads("\n".join(stdout))["changes"]
    return {item["resource"]: (item["action"], item["name"]) for item in changes if item["resource"] in steps}


def test_plan_shows_the_domain_steps_to_create_then_nothing(project: Path, aws_account: Account, acm_validates) -> None:
    zone(aws_account)
    with_domain(project, f'domain = "{DOMAIN}"', 'base_path = "v1"')
    assert domain_steps(project, expect=3) == {
        "certificate": ("create", DOMAIN),
        "domain name": ("create", DOMAIN),
        "base path mapping": ("create", "v1"),
        "dns records": ("create", DOMAIN),
    }
    assert certificates(aws_account) == []  # plan reads only
    assert aws_account.client("apigateway").get_domain_names()["items"] == []
    run_cli(project, "up", "--version", "1.0.0", expect=0)
    [certificate] = certificates(aws_account)
    assert domain_steps(project, expect=0) == {
        "certificate": ("unchanged", certificate["CertificateArn"]),
        "domain name": ("unchanged", DOMAIN),
        "base path mapping": ("unchanged", "v1"),
        "dns records": ("unchanged", DOMAIN),
    }
    text, _ = run_cli(project, "status", expect=0)
    assert f"https://{DOMAIN}/v1 (ready)" in "\n".join(text)


def test_the_status_of_a_domain_without_a_zone_says_what_waits(
    project: Path, aws_account: Account, acm_validates
) -> None:
    with_domain(project, f'domain = "{DOMAIN}"')
    run_cli(project, "up", "--version", "1.0.0", expect=4)
    [certificate] = certificates(aws_account)
    validation = certificate["DomainValidationOptions"][0]["ResourceRecord"]
    acm_validates.outside.add((validation["Name"].rstrip("."), validation["Value"].rstrip(".")))
    run_cli(project, "up", "--version", "1.0.0", expect=0)
    status, _ = run_cli(project, "status", "--json", expect=0)
    data = json.loads("\n".join(status))
    api_id = aws_account.rest_apis()[0]["id"]
    assert (data["domain_url"], data["domain_status"]) == (f"https://{DOMAIN}", "waiting for DNS")
    assert data["base_url"] == f"https://{api_id}.execute-api.us-east-1.amazonaws.com/test"


def test_two_stages_each_take_their_own_base_path_and_certificate(
    project: Path, aws_account: Account, acm_validates
) -> None:
    zone(aws_account)
    ours, theirs = imported_certificate(aws_account, DOMAIN), imported_certificate(aws_account, "www.example.com")
    with_domain(project, f'domain = "{DOMAIN}"', 'base_path = "v1"', f'certificate_arn = "{ours}"')
    (project / "deploy.toml").write_text(
        (project / "deploy.toml").read_text()
        + f'\n[stages.prod]\ndomain = "www.example.com"\ncertificate_arn = "{theirs}"\n'
        + '\n[stages.beta]\ndomain = "beta.example.com"\nbase_path = "b"\n'
    )
    for stage in ("test", "prod", "beta"):
        run_cli(project, "up", "--version", "1.0.0", "--stage", stage, expect=0)
    gateway = aws_account.client("apigateway")
    found = {
        name: (
            gateway.get_domain_name(domainName=name)["regionalCertificateArn"],
            gateway.get_base_path_mappings(domainName=name)["items"][0]["basePath"],
        )
        for name in (DOMAIN, "www.example.com", "beta.example.com")
    }
    [requested] = [
        item["CertificateArn"] for item in certificates(aws_account) if item["CertificateArn"] not in (ours, theirs)
    ]
    assert found == {
        DOMAIN: (ours, "v1"),  # [api]'s: the default stage's only
        "www.example.com": (theirs, "(none)"),  # its own certificate, and not [api]'s base path
        "beta.example.com": (requested, "b"),  # its own base path, a certificate requested for it
    }


@pytest.mark.parametrize(
    ("lines", "stage_lines", "named"),
    [
        (['domain_endpoint = "edge"'], [], "[api] domain_endpoint"),
        ([], ['domain_endpoint = "GLOBAL"', f'domain = "{DOMAIN}"'], 'domain_endpoint must be "REGIONAL" or "EDGE"'),
        ([f'domain = "{DOMAIN}"'], ['base_path = "v2"'], "[stages.prod] base_path is for a custom domain"),
        (
            [f'domain = "{DOMAIN}"', 'domain_endpoint = "EDGE"', f'certificate_arn = "{ELSEWHERE}"'],
            [],
            "an EDGE domain name takes its certificate from ACM in us-east-1",
        ),
        (
            [f'domain = "{DOMAIN}"', f'certificate_arn = "{ELSEWHERE}"'],
            [],
            "a REGIONAL domain name takes its certificate from ACM in us-east-1",
        ),
    ],
)
def test_a_domain_setting_that_cannot_be_is_refused(
    cli, project: Path, aws_account: Account, lines: list[str], stage_lines: list[str], named: str
) -> None:
    with_domain(project, *lines)
    text = (project / "deploy.toml").read_text() + "\n[stages.prod]\n" + "".join(f"{line}\n" for line in stage_lines)
    (project / "deploy.toml").write_text(text)
    stderr = cli("up", "--version", "1.0.0", "--stage", "prod" if stage_lines else "test", expect=2)
    assert named in stderr
    assert aws_account.is_empty()


def alias_records(account: Account, zone_id: str) -> dict[str, tuple[str, str]]:
    """The A and AAAA alias records of DOMAIN: type -> (target, target's zone)."""
    found = account.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return {
        item["Type"]: (item["AliasTarget"]["DNSName"].rstrip("."), item["AliasTarget"]["HostedZoneId"])
        for item in found
        if item["Name"] == f"{DOMAIN}." and item["Type"] in ("A", "AAAA")
    }


def test_an_edge_domain_takes_its_certificate_from_us_east_1_and_points_at_cloudfront(
    project: Path, aws_account: Account, acm_validates
) -> None:
    zone_id = zone(aws_account)
    edit(project / "deploy.toml", 'region = "us-east-1"', 'region = "eu-west-1"', count=1)
    with_domain(project, f'domain = "{DOMAIN}"', 'domain_endpoint = "EDGE"')
    stdout, _ = run_cli(project, "up", "--version", "1.0.0", expect=0)
    assert stdout[-1] == f"https://{DOMAIN}"
    [certificate] = certificates(aws_account)  # in us-east-1, where CloudFront takes its certificates
    assert (certificate["DomainName"], certificate["Status"]) == (DOMAIN, "ISSUED")
    assert boto3.client("acm", region_name="eu-west-1").list_certificates()["CertificateSummaryList"] == []
    gateway = boto3.client("apigateway", region_name="eu-west-1")  # the API's region
    domain = gateway.get_domain_name(domainName=DOMAIN)
    assert domain["endpointConfiguration"]["types"] == ["EDGE"] and domain["securityPolicy"] == "TLS_1_2"
    assert domain["certificateArn"] == certificate["CertificateArn"] and "regionalCertificateArn" not in domain
    cloudfront = (domain["distributionDomainName"], "Z2FDTNDATAQYW2")
    assert alias_records(aws_account, zone_id) == {"A": cloudfront, "AAAA": cloudfront}
    assert {action for action, _ in domain_steps(project, expect=0).values()} == {"unchanged"}
    run_cli(project, "down", "--yes", expect=0)
    assert certificates(aws_account) == [] and gateway.get_domain_names()["items"] == []
    assert set(records(aws_account, zone_id)) == {("example.com", "NS"), ("example.com", "SOA")}


def test_switching_a_domain_to_edge_is_refused_until_it_is_deleted_then_it_is_made_anew(
    project: Path, aws_account: Account, acm_validates
) -> None:
    zone_id = zone(aws_account)
    with_domain(project, f'domain = "{DOMAIN}"')
    run_cli(project, "up", "--version", "1.0.0", expect=0)
    gateway = aws_account.client("apigateway")
    regional = gateway.get_domain_name(domainName=DOMAIN)
    with_domain(project, 'domain_endpoint = "EDGE"')
    _, stderr = run_cli(project, "up", "--version", "1.0.0", expect=1)
    [error] = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert "is REGIONAL and domain_endpoint asks for EDGE" in error
    assert f"aws apigateway delete-domain-name --domain-name {DOMAIN}" in error
    assert gateway.get_domain_name(domainName=DOMAIN)["endpointConfiguration"] == {"types": ["REGIONAL"]}
    assert alias_records(aws_account, zone_id)["A"][0] == regional["regionalDomainName"]  # untouched
    gateway.delete_domain_name(domainName=DOMAIN)  # as the line says
    run_cli(project, "up", "--version", "1.0.0", expect=0)
    edge = gateway.get_domain_name(domainName=DOMAIN)
    assert edge["endpointConfiguration"]["types"] == ["EDGE"]
    assert edge["certificateArn"] == regional["regionalCertificateArn"]  # us-east-1's already: the same one
    cloudfront = (edge["distributionDomainName"], "Z2FDTNDATAQYW2")
    assert alias_records(aws_account, zone_id) == {"A": cloudfront, "AAAA": cloudfront}  # ours: replaced
    [mapping] = gateway.get_base_path_mappings(domainName=DOMAIN)["items"]
    assert mapping["restApiId"] == aws_account.rest_apis()[0]["id"]


def test_a_certificate_acm_does_not_validate_in_time_stops_up_saying_what_to_check(
    project: Path, aws_account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("moto.settings.ACM_VALIDATION_WAIT", 10**9)  # moto would issue it after a minute anyway
    zone_id = zone(aws_account)
    with_domain(project, f'domain = "{DOMAIN}"')
    stdout, stderr = run_cli(project, "up", "--version", "1.0.0", expect=1)
    assert f"waiting for ACM to validate the certificate of {DOMAIN} (1800s so far)" in stderr
    [error] = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert "in 30 minutes" in error and "example.com" in error and "run `deployer up` again" in error
    assert stdout == []
    aws_account.assert_stack("v1.0.0/example.zip")  # the stage itself is deployed
    [certificate] = certificates(aws_account)
    assert certificate["Status"] == "PENDING_VALIDATION"
    assert aws_account.client("apigateway").get_domain_names()["items"] == []
    validation = certificate["DomainValidationOptions"][0]["ResourceRecord"]
    assert (validation["Name"].rstrip("."), "CNAME") in records(aws_account, zone_id)
    status, _ = run_cli(project, "status", "--json", expect=0)
    assert json.loads("\n".join(status))["domain_status"] == "validating"
    run_cli(project, "down", "--yes", expect=0)  # the state named all of it: nothing is left behind
    assert aws_account.is_empty() and certificates(aws_account) == []
    assert set(records(aws_account, zone_id)) == {("example.com", "NS"), ("example.com", "SOA")}


def test_after_a_switch_to_edge_the_regional_certificate_deployer_requested_goes(
    project: Path, aws_account: Account, acm_validates
) -> None:
    zone(aws_account)
    edit(project / "deploy.toml", 'region = "us-east-1"', 'region = "eu-west-1"', count=1)
    with_domain(project, f'domain = "{DOMAIN}"')
    run_cli(project, "up", "--version", "1.0.0", expect=0)
    europe, virginia = (boto3.client("acm", region_name=region) for region in ("eu-west-1", "us-east-1"))
    [regional] = europe.list_certificates()["CertificateSummaryList"]
    with_domain(project, 'domain_endpoint = "EDGE"')
    run_cli(project, "up", "--version", "1.0.0", expect=1)
    boto3.client("apigateway", region_name="eu-west-1").delete_domain_name(domainName=DOMAIN)
    run_cli(project, "up", "--version", "1.0.0", expect=0)
    assert europe.list_certificates()["CertificateSummaryList"] == []  # requested by deployer, unused: gone
    [edge] = virginia.list_certificates()["CertificateSummaryList"]
    assert edge["DomainName"] == DOMAIN and edge["CertificateArn"] != regional["CertificateArn"]
    run_cli(project, "down", "--yes", expect=0)
    assert virginia.list_certificates()["CertificateSummaryList"] == []
