"""The stage's custom domain: its ACM certificate, API Gateway's domain name and base path mapping, and the
DNS records in Route 53.

- Certificate: `certificate_arn`; else an ISSUED certificate covering the name (exactly or by a wildcard) in the
  API's region (an EDGE domain name's: us-east-1, where CloudFront takes them); else one is requested there (DNS
  validation, tagged as the app's). Where Route 53
  holds a public zone for the name, its validation record is written and `up` waits for ISSUED; where it
  does not, the record is left to the user: the domain is "validating" and `up` exits 4 naming it.
- Domain name: `domain_endpoint` (REGIONAL, the default, or EDGE), TLS 1.2, tagged as the app's and the stage's;
  a domain name of another app or stage is refused. Its certificate is changed in place, its endpoint type
  never (refused, saying what to do: its DNS target and its certificate's region change with it).
- Base path mapping: this stage's API and stage under `base_path`; a new base path is changed in place.
- DNS: alias A and AAAA records to API Gateway's target (REGIONAL: its regional name and zone; EDGE: its
  CloudFront distribution, in CloudFront's zone), written only where none is, or where deployer wrote the one
  there (deployer/resources/dns.py). Without a zone, the CNAME to create is named.
- The local cloud (`--local`): the same resources in its emulated account; its ACM issues a requested certificate at
  once (no DNS validates it there), and without a Route 53 zone there is no DNS to write: its data plane answers
  the domain as http://<domain>.localhost:<port>/<base_path> (a `*.localhost` name is the loopback), its URL.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from deployer import retry
from deployer.aws import delete_if_present, read_or_none
from deployer.config import EDGE_CERTIFICATE_REGION
from deployer.context import Run, Target, check_ours
from deployer.errors import DeployerError
from deployer.plan import Action, Change, Diff, Learned, Plan
from deployer.resources import dns, http_api
from deployer.resources.rest_api import RestApi

SECURITY_POLICY = "TLS_1_2"
ROOT = "(none)"  # API Gateway's name of the empty base path
VALIDATION_WAIT = 1800  # seconds: ACM validates within minutes once the record resolves; give it half an hour
EDGE = "EDGE"
CLOUDFRONT_HOSTED_ZONE = "Z2FDTNDATAQYW2"  # AWS's fixed zone ID for alias records to any CloudFront distribution


class Field(StrEnum):
    STATUS = "status"
    CERTIFICATE = "certificate"
    SECURITY_POLICY = "security policy"
    BASE_PATH = "base path"
    RECORDS = "records"


def _none(resource: str) -> Change[Any]:
    return Change(resource, "none", "unchanged")


def domain_url(target: Target) -> str | None:
    """The URL the domain serves the stage at: https://<domain>/<base_path>, or on the local cloud its data plane's
    http://<domain>.localhost:<port>/<base_path>."""
    config = target.config
    if config.domain is None or not target.local_endpoint:
        return config.domain_url
    url = f"http://{config.domain}.localhost:{urlsplit(target.local_endpoint).port}"
    return f"{url}/{config.base_path}" if config.base_path else url


def covers(pattern: str, name: str) -> bool:
    """Whether a certificate name covers the domain: the same name, or *.parent for a name one level below."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    return pattern == name or (pattern.startswith("*.") and name.split(".", 1)[-1] == pattern[2:])


def certificate_region(target: Target) -> str:
    """Where the domain name's certificate must be: the API's region, or us-east-1 for an EDGE domain name."""
    return EDGE_CERTIFICATE_REGION if target.config.domain_endpoint == EDGE else target.region


def region_of(arn: str) -> str:
    return arn.split(":")[3]  # arn:aws:acm:<region>:<account>:certificate/<id>


def _describe(target: Target, arn: str) -> dict[str, Any] | None:
    """The certificate, asked of ACM in its own region (the ARN's)."""
    acm = target.aws.acm_in(region_of(arn))
    found = read_or_none(lambda: acm.describe_certificate(CertificateArn=arn))
    return found["Certificate"] if found else None


def _issued_covering(target: Target, name: str) -> str | None:
    """An ISSUED certificate of the certificate's region covering the name, the exact one first."""
    covering: list[tuple[bool, str]] = []
    acm = target.aws.acm_in(certificate_region(target))
    for page in acm.get_paginator("list_certificates").paginate(CertificateStatuses=["ISSUED"]):
        for summary in page["CertificateSummaryList"]:
            names = {summary.get("DomainName", ""), *summary.get("SubjectAlternativeNameSummaries", [])}
            if any(covers(item, name) for item in names):
                covering.append((name not in names, summary["CertificateArn"]))
    return min(covering)[1] if covering else None


def validation_records(certificate: dict[str, Any]) -> list[dict[str, str]]:
    """The CNAMEs ACM asks for (it may take a few seconds after the request to name them)."""
    records = []
    for option in certificate.get("DomainValidationOptions", []):
        record = option.get("ResourceRecord")
        if record and option.get("ValidationStatus") != "SUCCESS":
            value = record["Value"].lower().rstrip(".")
            records.append({"name": record["Name"].rstrip("."), "type": record["Type"], "value": value})
    return records


class Certificate:
    """Observes the certificate's ARN, once there is one: the domain name's."""

    resource = "certificate"

    def plan(self, target: Target, earlier: Plan) -> Change[str]:
        config = target.config
        if config.domain is None:
            return _none(self.resource)
        region = certificate_region(target)
        requested = target.recorded.requested_certificate_arn
        if requested and region_of(requested) != region:  # requested for the other endpoint type
            requested = None
        arn = config.certificate_arn or requested
        certificate = _describe(target, arn) if arn else None
        if config.certificate_arn and (certificate is None or region_of(config.certificate_arn) != region):
            raise DeployerError(
                f"certificate_arn {config.certificate_arn} is not a certificate in ACM of region {region}: a "
                f"{config.domain_endpoint} domain name takes one from there; give one of {region}, or none"
            )
        if certificate is None or certificate["Status"] in ("FAILED", "REVOKED", "EXPIRED", "VALIDATION_TIMED_OUT"):
            found = _issued_covering(target, config.domain)
            if found is None:
                return Change(self.resource, config.domain, "create")
            certificate = {"CertificateArn": found, "Status": "ISSUED"}
        arn = certificate["CertificateArn"]
        status = certificate["Status"]
        diffs = (Diff(Field.STATUS, status, "ISSUED"),) if status != "ISSUED" else ()
        learned = Learned(certificate_arn=arn, domain=config.domain, domain_url=domain_url(target))
        if not diffs and target.recorded.domain_status == "validating":  # validated since: the records were made
            learned |= Learned(domain_status=None, dns_pending=None)
        return Change(self.resource, arn, "update" if diffs else "unchanged", diffs, observed=arn, learned=learned)

    def apply(self, run: Run, change: Change[str]) -> None:
        config, acm, state = run.config, run.aws.acm_in(certificate_region(run.target)), run.state
        assert config.domain is not None
        state.domain, state.domain_url = config.domain, domain_url(run.target)
        if change.action == "create":
            previous = state.requested_certificate_arn  # one requested for the other endpoint type: unused now
            token = hashlib.sha256(f"{config.app_name}/{config.stage}/{config.domain}".encode()).hexdigest()[:32]
            tags = [{"Key": key, "Value": value} for key, value in config.tags.items()]
            arn = acm.request_certificate(
                DomainName=config.domain, ValidationMethod="DNS", IdempotencyToken=token, Tags=tags
            )["CertificateArn"]
            state.certificate_arn = state.requested_certificate_arn = arn
            run.save_soon()
            if previous and previous != arn:
                _delete_if_unused(run, previous)
        arn = state.certificate_arn or change.name
        state.certificate_arn = arn
        certificate: dict[str, Any] = {}

        def named() -> bool:  # ACM names the validation records a few seconds after the request
            certificate.update(_describe(run.target, arn) or {})
            return certificate.get("Status") != "PENDING_VALIDATION" or bool(validation_records(certificate))

        retry.wait_for(
            named, waits=run.aws.waits, waiting_for="ACM to name the certificate's validation record", limit_seconds=60
        )
        if certificate.get("Status") == "ISSUED":
            return
        records = validation_records(certificate)
        zone = dns.find_zone(run.aws.route53, config.domain)
        if zone is None:  # the user's DNS: the record is theirs to create, `up` exits 4 naming it
            state.domain_status, state.dns_pending = "validating", records
            run.save_soon()
            return
        written = list(state.dns_records or [])
        for record in records:
            dns.write(run.aws.route53, zone["Id"], record["name"], record["type"], record["value"], written)
            entry = {"zone": zone["Id"], **record}
            if entry not in written:
                written.append(entry)
            state.dns_records = written
            run.save_soon()

        def issued() -> bool:
            return (_describe(run.target, arn) or {}).get("Status") == "ISSUED"

        validated = retry.wait_for(
            issued,
            waits=run.aws.waits,
            waiting_for=f"ACM to validate the certificate of {config.domain}",
            limit_seconds=VALIDATION_WAIT,
            delay=10,
        )
        if not validated:
            state.domain_status = "validating"  # what `status` shows, and the next `up` waits on again
            run.save_soon()
            raise DeployerError(
                f"ACM has not validated the certificate of {config.domain} in {VALIDATION_WAIT // 60} minutes, though "
                f"its record is in Route 53 zone {zone['Name'].rstrip('.')}: check that the name servers the domain "
                "is delegated to (at its registrar) are that zone's, then run `deployer up` again"
            )
        state.domain_status, state.dns_pending = None, None


def _issued(run: Run) -> bool:
    return run.state.domain_status != "validating"


def endpoint_of(found: dict[str, Any]) -> str:
    """A domain name's endpoint type (AWS's default, when it names none, is EDGE)."""
    types = found.get("endpointConfiguration", {}).get("types") or [EDGE]
    return EDGE if EDGE in types else types[0]


def certificate_key(endpoint: str) -> str:
    """The domain name's field holding its certificate: an EDGE one's is CloudFront's, a REGIONAL one's its own."""
    return "certificateArn" if endpoint == EDGE else "regionalCertificateArn"


def target_of(found: dict[str, Any], endpoint: str) -> dict[str, str]:
    """What the alias records point at: the CloudFront distribution (in CloudFront's zone) or the regional name."""
    if endpoint == EDGE:
        return {"name": found["distributionDomainName"], "zone": CLOUDFRONT_HOSTED_ZONE}
    return {"name": found["regionalDomainName"], "zone": found["regionalHostedZoneId"]}


class DomainName:
    """Observes what the domain's records are to point at (API Gateway's target: {"name", "zone"})."""

    resource = "domain name"

    def plan(self, target: Target, earlier: Plan) -> Change[dict[str, str]]:
        config = target.config
        if config.domain is None:
            return _none(self.resource)
        found = read_or_none(lambda: target.aws.apigateway.get_domain_name(domainName=config.domain))
        if found is None:
            return Change(self.resource, config.domain, "create")
        tags = found.get("tags", {})
        check_ours(config, self.resource, config.domain, tags)
        if tags.get("deployer:stage") != config.stage:
            raise DeployerError(
                f"the domain name {config.domain} serves stage {tags.get('deployer:stage')}, not {config.stage}: "
                "give each stage its own domain"
            )
        endpoint, current = config.domain_endpoint, endpoint_of(found)
        if current != endpoint:
            raise DeployerError(
                f"the domain name {config.domain} is {current} and domain_endpoint asks for {endpoint}: deployer does "
                f"not switch a domain name's endpoint type (its DNS target and its certificate's region change with "
                f"it); set domain_endpoint back to {current}, or delete the domain name (aws apigateway "
                f"delete-domain-name --domain-name {config.domain}) and run `deployer up` to make it anew"
            )
        certificate = earlier.of(Certificate)
        wanted = certificate.observed if certificate else None
        diffs = []
        key = certificate_key(endpoint)
        if found.get(key) != wanted:
            diffs.append(Diff(Field.CERTIFICATE, found.get(key), wanted or "a new certificate"))
        if found.get("securityPolicy") != SECURITY_POLICY:
            diffs.append(Diff(Field.SECURITY_POLICY, found.get("securityPolicy"), SECURITY_POLICY))
        target_name = target_of(found, endpoint)
        return Change(
            self.resource,
            config.domain,
            "update" if diffs else "unchanged",
            tuple(diffs),
            observed=target_name,
            learned=Learned(domain_target=target_name),
        )

    def apply(self, run: Run, change: Change[dict[str, str]]) -> Change[dict[str, str]] | None:
        config, gateway, state = run.config, run.aws.apigateway, run.state
        if not _issued(run):
            return Change(self.resource, change.name, "skip", note="waiting for the certificate's DNS record")
        endpoint = config.domain_endpoint
        if change.action == "create":
            found = gateway.create_domain_name(
                domainName=config.domain,
                endpointConfiguration={"types": [endpoint]},
                securityPolicy=SECURITY_POLICY,
                tags=config.tags,
                **{certificate_key(endpoint): state.certificate_arn},
            )
            state.domain_target = target_of(found, endpoint)
            run.save_soon()
            return None
        operations = []
        if change.touches([Field.CERTIFICATE]):
            operations.append(
                {"op": "replace", "path": f"/{certificate_key(endpoint)}", "value": state.certificate_arn}
            )
        if change.touches([Field.SECURITY_POLICY]):
            operations.append({"op": "replace", "path": "/securityPolicy", "value": SECURITY_POLICY})
        gateway.update_domain_name(domainName=config.domain, patchOperations=operations)
        return None


def _mappings(target: Target, domain: str) -> list[dict[str, Any]]:
    found = read_or_none(lambda: target.aws.apigateway.get_base_path_mappings(domainName=domain, limit=500))
    return found.get("items", []) if found else []


def _api_mappings(target: Target, domain: str) -> list[dict[str, Any]]:
    """The domain's API mappings as API Gateway v2 answers them (an HTTP API's)."""
    found = read_or_none(lambda: target.aws.apigatewayv2.get_api_mappings(DomainName=domain, MaxResults="500"))
    return found.get("Items", []) if found else []


class BasePathMapping:
    """Observes this stage's mapping as API Gateway answers it, when there is one. An HTTP API's is an API mapping
    (API Gateway v2's CreateApiMapping) on the same domain name: `_plan_http`, `_apply_http`."""

    resource = "base path mapping"

    def plan(self, target: Target, earlier: Plan) -> Change[dict[str, Any]]:
        config = target.config
        if config.domain is None:
            return _none(self.resource)
        if config.api_type == http_api.TYPE:
            return self._plan_http(target, earlier)
        wanted = config.base_path or ROOT
        domain = earlier.of(DomainName)
        api = earlier.of(RestApi)
        api_id = api.observed.api_id if api and api.observed else None
        if domain is None or domain.action == "create" or api_id is None:
            return Change(self.resource, wanted, "create")
        mappings = _mappings(target, config.domain)
        ours = next((item for item in mappings if item["restApiId"] == api_id and item["stage"] == config.stage), None)
        taken = next((item for item in mappings if item["basePath"] == wanted and item is not ours), None)
        if taken is not None:
            raise DeployerError(
                f"base path {wanted} of {config.domain} already serves API {taken['restApiId']} stage "
                f"{taken['stage']}: choose another base_path"
            )
        if ours is None:
            return Change(self.resource, wanted, "create")
        diffs = (Diff(Field.BASE_PATH, ours["basePath"], wanted),) if ours["basePath"] != wanted else ()
        return Change(self.resource, wanted, "update" if diffs else "unchanged", diffs, observed=ours)

    def _plan_http(self, target: Target, earlier: Plan) -> Change[dict[str, Any]]:
        """The HTTP API's mapping; a REST API mapping of this stage's (a type switch) on the same path moves to it."""
        config = target.config
        assert config.domain is not None
        name = config.base_path or ROOT
        domain, api = earlier.of(DomainName), earlier.of(http_api.HttpApi)
        api_id = api.observed.api_id if api and api.observed else None
        old_rest = target.recorded.rest_api_id
        if domain is None or domain.action == "create":
            return Change(self.resource, name, "create")
        mappings = _api_mappings(target, config.domain) if api_id else []
        ours = next((item for item in mappings if item["ApiId"] == api_id and item["Stage"] == http_api.STAGE), None)
        rest_mappings = _mappings(target, config.domain) if old_rest else []
        moving = next((item for item in rest_mappings if item["restApiId"] == old_rest), None)
        taken = next(
            (
                item
                for item in mappings  # the old REST API's mapping (v2 lists REST mappings too) is the one moving
                if item.get("ApiMappingKey", "") == config.base_path and item is not ours and item["ApiId"] != old_rest
            ),
            None,
        )
        if taken is not None:
            raise DeployerError(
                f"base path {name} of {config.domain} already serves API {taken['ApiId']} stage {taken['Stage']}: "
                "choose another base_path"
            )
        observed = {"http": ours, "rest": moving}
        if ours is None:
            return Change(self.resource, name, "create", observed=observed)
        diffs: tuple[Diff, ...] = ()
        if ours.get("ApiMappingKey", "") != config.base_path:
            diffs = (Diff(Field.BASE_PATH, ours.get("ApiMappingKey", "") or ROOT, name),)
        action: Action = "update" if diffs or moving else "unchanged"
        return Change(self.resource, name, action, diffs, observed=observed)

    def _apply_http(self, run: Run, change: Change[dict[str, Any]]) -> None:
        """A path serves one API: the REST API's mapping goes first (a switch), then this HTTP API's is made."""
        config, state = run.config, run.state
        observed = change.observed or {}
        if observed.get("rest"):
            delete_if_present(
                partial(
                    run.aws.apigateway.delete_base_path_mapping,
                    domainName=config.domain,
                    basePath=observed["rest"]["basePath"],
                )
            )
        ours = observed.get("http")
        if ours is not None and ours.get("ApiMappingKey", "") == config.base_path:
            return
        v2 = run.aws.apigatewayv2
        if ours is not None:  # a new base path: the mapping is made anew under it
            delete_if_present(
                partial(v2.delete_api_mapping, ApiMappingId=ours["ApiMappingId"], DomainName=config.domain)
            )
        v2.create_api_mapping(
            DomainName=config.domain, ApiId=state.http_api_id, Stage=http_api.STAGE, ApiMappingKey=config.base_path
        )

    def apply(self, run: Run, change: Change[dict[str, Any]]) -> Change[dict[str, Any]] | None:
        config, gateway, state = run.config, run.aws.apigateway, run.state
        if not _issued(run):
            return Change(self.resource, change.name, "skip", note="waiting for the certificate's DNS record")
        if config.api_type == http_api.TYPE:
            self._apply_http(run, change)
        elif change.action == "create":
            arguments = {"basePath": config.base_path} if config.base_path else {}
            gateway.create_base_path_mapping(
                domainName=config.domain,
                restApiId=state.rest_api_id,
                stage=config.stage,
                **arguments,
            )
        else:
            assert change.observed is not None, "an update is planned from the mapping found"
            gateway.update_base_path_mapping(
                domainName=config.domain,
                basePath=change.observed["basePath"],
                patchOperations=[{"op": "replace", "path": "/basePath", "value": config.base_path or ""}],
            )
        state.domain_url = domain_url(run.target)
        return None


def alias_value(target_name: dict[str, str]) -> str:
    return f"ALIAS {target_name['name'].lower().rstrip('.')} {target_name['zone']}"


class DnsRecords:
    """Observes the Route 53 zone that holds the domain (None: there is none, the user writes the record)."""

    resource = "dns records"

    def plan(self, target: Target, earlier: Plan) -> Change[dict[str, Any]]:
        config = target.config
        if config.domain is None:
            return _none(self.resource)
        zone = dns.find_zone(target.aws.route53, config.domain)
        domain = earlier.of(DomainName)
        target_name = domain.observed if domain else None
        if zone is None and target.local_endpoint:  # nothing resolves the name there: the data plane answers it
            note = f"the local cloud has no DNS to write: it answers {domain_url(target)}"
            return Change(self.resource, config.domain, "skip", observed=None, note=note)
        if zone is None:  # apply names the record to create by hand
            return Change(self.resource, config.domain, "skip", observed=None, note="no Route 53 zone holds it")
        if target_name is None:
            return Change(self.resource, config.domain, "create", observed=zone)
        value = alias_value(target_name)
        found = {kind: dns.read(target.aws.route53, zone["Id"], config.domain, kind) for kind in ("A", "AAAA")}
        current = {kind: dns.value_of(record) if record else None for kind, record in found.items()}
        diffs = tuple(
            Diff(Field.RECORDS, f"{kind} {old}", f"{kind} {value}") for kind, old in current.items() if old != value
        )
        return Change(self.resource, config.domain, "update" if diffs else "unchanged", diffs, observed=zone)

    def apply(self, run: Run, change: Change[dict[str, Any]]) -> Change[dict[str, Any]] | None:
        config, state = run.config, run.state
        assert config.domain is not None
        if not _issued(run):
            return Change(self.resource, change.name, "skip", note="waiting for the certificate's DNS record")
        target_name = state.domain_target
        assert target_name is not None, "the domain name comes first"
        if change.observed is None and run.target.local_endpoint:
            state.domain_status, state.dns_pending = "ready", None
            return None
        if change.observed is None:
            state.domain_status = "waiting for DNS"
            state.dns_pending = [{"name": config.domain, "type": "CNAME", "value": target_name["name"]}]
            return Change(self.resource, change.name, "skip", note=f"create: CNAME {target_name['name']}")
        zone_id = change.observed["Id"]
        written = list(state.dns_records or [])
        for kind in ("A", "AAAA"):
            value = alias_value(target_name)
            dns.write(run.aws.route53, zone_id, config.domain, kind, value, written)
            written = [item for item in written if not (item["name"] == config.domain and item["type"] == kind)]
            written.append({"zone": zone_id, "name": config.domain, "type": kind, "value": value})
            state.dns_records = written
            run.save_soon()
        state.domain_status, state.dns_pending = "ready", None
        return None


STEPS = (Certificate(), DomainName(), BasePathMapping(), DnsRecords())


def remove(run: Run, api_ids: list[str], http_api_ids: tuple[str, ...] = ()) -> list[Change]:
    """`down`'s part: this stage's mapping, the domain name when no other mapping uses it, the records deployer
    wrote (still saying what it wrote), a certificate deployer requested that nothing uses. Nothing else."""
    config, state, gateway = run.config, run.state, run.aws.apigateway
    domain = state.domain or config.domain
    changes: list[Change] = []
    if domain is None:
        return changes
    found = read_or_none(lambda: gateway.get_domain_name(domainName=domain))
    tags = (found or {}).get("tags", {})
    ours = found is not None and config.owns(tags) and tags.get("deployer:stage") == config.stage
    if ours:
        others = []  # HTTP API mappings of other APIs: the domain name stays for them
        for mapping in _api_mappings(run.target, domain) if http_api_ids else []:
            if mapping["ApiId"] not in http_api_ids:
                others.append(mapping)
                continue
            key = mapping.get("ApiMappingKey", "") or ROOT
            v2 = run.aws.apigatewayv2
            delete_if_present(partial(v2.delete_api_mapping, ApiMappingId=mapping["ApiMappingId"], DomainName=domain))
            changes.append(Change("base path mapping", key, "delete"))
        mappings = _mappings(run.target, domain)
        for mapping in mappings:
            if mapping["restApiId"] in api_ids:
                base_path = mapping["basePath"]
                delete_if_present(partial(gateway.delete_base_path_mapping, domainName=domain, basePath=base_path))
                changes.append(Change("base path mapping", base_path, "delete"))
        if not others and all(mapping["restApiId"] in api_ids for mapping in mappings):
            delete_if_present(lambda: gateway.delete_domain_name(domainName=domain))
            changes.append(Change("domain name", domain, "delete"))
    records = list(state.dns_records or [])
    if not records and found is not None and ours:  # a lost state: the records deployer would have written
        zone = dns.find_zone(run.aws.route53, domain)
        target_name = target_of(found, endpoint_of(found))
        if zone is not None:
            records = [{"zone": zone["Id"], "name": domain, "type": kind, "value": alias_value(target_name)}
                       for kind in ("A", "AAAA")]  # fmt: skip
    for record in records:
        deleted = dns.delete(run.aws.route53, record)
        changes.append(Change("dns record", f"{record['type']} {record['name']}", "delete" if deleted else "absent"))
    arn = state.requested_certificate_arn
    if arn and _delete_if_unused(run, arn):
        changes.append(Change("certificate", arn, "delete"))
    return changes


def _delete_if_unused(run: Run, arn: str) -> bool:
    """Delete a certificate deployer requested (still tagged as the app's) that nothing uses: whether it did."""
    certificate = _describe(run.target, arn)
    if certificate is None:
        return False
    acm = run.aws.acm_in(region_of(arn))
    tags = {
        tag["Key"]: tag.get("Value", "") for tag in acm.list_tags_for_certificate(CertificateArn=arn).get("Tags", [])
    }
    if not run.config.owns(tags) or certificate.get("InUseBy"):
        return False
    return delete_if_present(lambda: acm.delete_certificate(CertificateArn=arn))
