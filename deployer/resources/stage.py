"""The stage: a deployment of the API's current wiring, published on the stage (default `test`).

A new deployment on the existing stage switches it atomically; the stage is never deleted (that
would be downtime). Each deployment's description carries a fingerprint of the wiring it was made
for, so a run that finds the stage serving other wiring (or a crash between wiring and deploying)
publishes again, and a run that changed nothing publishes nothing.

Each stage has its own API, so any other stage found on this one is what a renamed `[api] stage` left
behind: it is deleted once the new stage is published, with the alias it called (and that alias's grant).
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from functools import partial

from deployer.aws import delete_if_present, read_or_none
from deployer.context import Run, Target
from deployer.plan import Change, Diff, Learned, Plan, inactive
from deployer.read_ahead import Read
from deployer.resources.function import planned_arn
from deployer.resources.permission import Permission
from deployer.resources.rest_api import METHOD, PROXY, ROOT, Integration, RestApi, integration_uri

FINGERPRINT_PREFIX = "deployer wiring "
WIRING = frozenset({"rest api", "resource", "method", "integration"})  # the steps a deployment publishes


class Field(StrEnum):
    WIRING = "wiring"
    OLD_STAGES = "old stages"  # a renamed stage's old name: deleted, with its alias


def wiring_changed(earlier: Plan) -> bool:
    """Whether the plan changes what a deployment of the API publishes: then the stage needs a new one."""
    return any(change.changes_something for change in earlier if change.resource in WIRING)


def fingerprint(region: str, function_arn: str, alias: str, binary_media_types: tuple[str, ...]) -> str:
    """What a deployment publishes: the integrations, and the binary media types (a deployment snapshots them)."""
    uri = integration_uri(region, function_arn, alias)
    wiring: dict[str, object] = {path: {METHOD: ["NONE", "AWS_PROXY", "POST", uri]} for path in (ROOT, PROXY)}
    wiring["binaryMediaTypes"] = sorted(binary_media_types)
    return hashlib.sha256(json.dumps(wiring, sort_keys=True).encode()).hexdigest()[:16]


def base_url(target: Target, api_id: str) -> str:
    if target.local_endpoint:
        return f"{target.local_endpoint}/restapis/{api_id}/{target.config.stage}/_user_request_/"
    return f"https://{api_id}.execute-api.{target.region}.amazonaws.com/{target.config.stage}"


class Stage:
    resource = "stage"
    reads: tuple[type, ...] = (Integration,)  # the wiring (wiring_changed) and the API
    needs: tuple[type, ...] = (Integration, Permission)  # the API may call the alias before a deployment makes it

    def ahead(self, target: Target) -> tuple[Read, ...]:
        api_id, deployment_id = target.recorded.rest_api_id, target.recorded.deployment_id
        if target.config.api_type != "rest" or not api_id:
            return ()
        stages = Read("apigateway", "GetStages", {"restApiId": api_id})
        if not deployment_id:
            return (stages,)
        return (stages, Read("apigateway", "GetDeployment", {"restApiId": api_id, "deploymentId": deployment_id}))

    def plan(self, target: Target, earlier: Plan) -> Change[None]:
        name = target.config.stage
        if target.config.api_type != "rest":
            return inactive(self.resource, name, target.config.api_type)
        api = earlier.of(RestApi)
        api_id = api.observed.api_id if api and api.observed else None
        if api_id is None:
            return Change(self.resource, name, "create")
        gateway = target.aws.apigateway
        stages = (read_or_none(lambda: gateway.get_stages(restApiId=api_id)) or {}).get("item", [])
        old = sorted(item["stageName"] for item in stages if item["stageName"] != name)
        cleanup = (Diff(Field.OLD_STAGES, old, []),) if old else ()
        if wiring_changed(earlier):
            return Change(
                self.resource, name, "update", (Diff(Field.WIRING, "the API's", "a new deployment"), *cleanup)
            )
        stage = next((item for item in stages if item["stageName"] == name), None)
        deployment = stage and read_or_none(
            lambda: gateway.get_deployment(restApiId=api_id, deploymentId=stage["deploymentId"])
        )
        if not stage or not deployment:
            return Change(self.resource, name, "create", cleanup)
        learned = Learned(deployment_id=stage["deploymentId"], base_url=base_url(target, api_id), api_type="rest")
        published = deployment.get("description", "").removeprefix(FINGERPRINT_PREFIX)
        config = target.config
        wanted = fingerprint(target.region, planned_arn(target, earlier), config.alias, config.binary_media_types)
        diffs = (Diff(Field.WIRING, published, wanted),) if published != wanted else ()
        return Change(self.resource, name, "update" if diffs or old else "unchanged", diffs + cleanup, learned=learned)

    def apply(self, run: Run, change: Change[None]) -> None:
        assert run.state.rest_api_id and run.state.function_arn, "the API and the function come first"
        config, gateway = run.config, run.aws.apigateway
        if change.action == "create" or not change.diffs or change.touches([Field.WIRING]):
            # One CreateDeployment per 5 s per account: botocore's standard retries absorb the 429s.
            wiring = fingerprint(run.target.region, run.state.function_arn, config.alias, config.binary_media_types)
            deployment = gateway.create_deployment(
                restApiId=run.state.rest_api_id,
                stageName=config.stage,
                description=FINGERPRINT_PREFIX + wiring,
            )
            with run.saving:  # what it made, saved by this step's own write
                run.state.deployment_id = deployment["id"]
                run.state.base_url = base_url(run.target, run.state.rest_api_id)
                run.state.api_type = "rest"
                run.save_soon()
        for diff in change.diffs:
            if diff.field != Field.OLD_STAGES:
                continue
            for old in diff.old:  # the new stage is live: the old name goes, and the alias it called
                delete_if_present(partial(gateway.delete_stage, restApiId=run.state.rest_api_id, stageName=old))
                delete_if_present(partial(run.aws.lambda_.delete_alias, FunctionName=config.function_name, Name=old))
