"""Route 53: the public hosted zone that holds a name, and the records deployer writes there.

deployer writes a record only where there is none, or where the one there is exactly what deployer wrote
(recorded in the state): it never changes nor deletes a record it did not write. Route 53's CREATE refuses a
record that appeared since it was read, and DELETE one whose value is not exactly the one named.
"""

from __future__ import annotations

from typing import Any

from deployer.errors import DeployerError


def _fqdn(name: str) -> str:
    return name.lower().rstrip(".") + "."


def find_zone(route53: Any, name: str) -> dict[str, Any] | None:
    """The public hosted zone with the longest name that holds `name` (api.example.com: example.com's, or
    api.example.com's own when there is one). None: nobody can write the records but the user."""
    wanted = _fqdn(name)
    best = None
    for page in route53.get_paginator("list_hosted_zones").paginate():
        for zone in page["HostedZones"]:
            zone_name = _fqdn(zone["Name"])
            if zone.get("Config", {}).get("PrivateZone"):
                continue
            if (wanted == zone_name or wanted.endswith("." + zone_name)) and (
                best is None or len(zone_name) > len(_fqdn(best["Name"]))
            ):
                best = zone
    return best


def value_of(record: dict[str, Any]) -> str:
    """A record's value, one string: `ALIAS <target> <zone>` or the values joined."""
    alias = record.get("AliasTarget")
    if alias:
        return f"ALIAS {alias['DNSName'].lower().rstrip('.')} {alias['HostedZoneId']}"
    return " ".join(item["Value"].lower().rstrip(".") for item in record.get("ResourceRecords", []))


def read(route53: Any, zone_id: str, name: str, kind: str) -> dict[str, Any] | None:
    """The record of this name and type in the zone, if any."""
    answer = route53.list_resource_record_sets(
        HostedZoneId=zone_id, StartRecordName=_fqdn(name), StartRecordType=kind, MaxItems="1"
    )
    found = answer["ResourceRecordSets"]
    if found and _fqdn(found[0]["Name"]) == _fqdn(name) and found[0]["Type"] == kind:
        return found[0]
    return None


def record_set(name: str, kind: str, value: str) -> dict[str, Any]:
    """The ResourceRecordSet for a value as value_of() writes it."""
    if value.startswith("ALIAS "):
        _, target, zone = value.split(" ")
        alias = {"HostedZoneId": zone, "DNSName": target, "EvaluateTargetHealth": False}
        return {"Name": _fqdn(name), "Type": kind, "AliasTarget": alias}
    return {"Name": _fqdn(name), "Type": kind, "TTL": 300, "ResourceRecords": [{"Value": value}]}


def write(route53: Any, zone_id: str, name: str, kind: str, value: str, ours: list[dict[str, Any]]) -> bool:
    """Make the record say `value`: created where there is none, replaced only when what is there is a value
    deployer wrote (`ours`). False when it said so already. A record of another value is refused, untouched."""
    found = read(route53, zone_id, name, kind)
    if found is not None and value_of(found) == value:
        return False
    if found is not None and not any(
        item["zone"] == zone_id and _fqdn(item["name"]) == _fqdn(name) and item["type"] == kind
        and item["value"] == value_of(found)
        for item in ours
    ):  # fmt: skip
        raise DeployerError(
            f"the {kind} record {name} in Route 53 zone {zone_id} already says {value_of(found)} and deployer did "
            f"not write it: remove it, or choose another domain, then run again"
        )
    action = "CREATE" if found is None else "UPSERT"
    change = {"Action": action, "ResourceRecordSet": record_set(name, kind, value)}
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [change]})
    return True


def delete(route53: Any, record: dict[str, Any]) -> bool:
    """Delete a record deployer wrote, only if it still says exactly what deployer wrote. Whether it did."""
    found = read(route53, record["zone"], record["name"], record["type"])
    if found is None or value_of(found) != record["value"]:
        return False
    change = {"Action": "DELETE", "ResourceRecordSet": found}
    route53.change_resource_record_sets(HostedZoneId=record["zone"], ChangeBatch={"Changes": [change]})
    return True
