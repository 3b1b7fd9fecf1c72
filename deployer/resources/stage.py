"""The stage: a deployment of the API's current wiring, published on the stage (default `test`).

A new deployment on the existing stage switches it atomically; the stage is never deleted (that
would be downtime). Each deployment's description carries a fingerprint of the wiring it was made
for, so a run that finds the stage serving other wiring (or a crash between wiring and deploying)
publishes again, and a run that changed nothing publishes nothing.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum

from deployer.aws import read_or_none
from deployer.context import Run, Target
from deployer.plan import Change, Diff, Plan
from deployer.resources.function import planned_arn
from deployer.resources.rest_api import METHOD, PROXY, ROOT, gateway_call, integration_uri

FINGERPRINT_PREFIX = "deployer wiring "
WIRING = frozenset({"rest api", "resource", "method", "integration"})  # the steps a deployment publishes


class Field(StrEnum):
    WIRING = "wiring"


def wiring_changed(earlier: Plan) -> bool:
    """Whether the plan changes what a deployment of the API publishes: then the stage needs a new one."""
    return any(change.changes_something for change in earlier if change.resource in WIRING)


def fingerprint(region: str, function_arn: str, alias: str) -> str:
    uri = integration_uri(region, function_arn, alias)
    wiring = {path: {METHOD: ["NONE", "AWS_PROXY", "POST", uri]} for path in (ROOT, PROXY)}
    return hashlib.sha256(json.dumps(wiring, sort_keys=True).encode()).hexdigest()[:16]


def base_url(target: Target, api_id: str) -> str:
    if target.local_endpoint:
        return f"{target.local_endpoint}/restapis/{api_id}/{target.config.stage}/_user_request_/"
    return f"https://{api_id}.execute-api.{target.region}.amazonaws.com/{target.config.stage}"


class Stage:
    resource = "stage"

    def plan(self, target: Target, earlier: Plan) -> Change:
        name = target.config.stage
        api = earlier.of("rest api")
        api_id = api.learned.get("rest_api_id") if api else None
        if api_id is None:
            return Change(self.resource, name, "create")
        if wiring_changed(earlier):
            return Change(self.resource, name, "update")
        gateway = target.aws.apigateway
        stage = read_or_none(lambda: gateway.get_stage(restApiId=api_id, stageName=name))
        deployment = stage and read_or_none(
            lambda: gateway.get_deployment(restApiId=api_id, deploymentId=stage["deploymentId"])
        )
        if not stage or not deployment:
            return Change(self.resource, name, "create")
        learned = {"deployment_id": stage["deploymentId"], "base_url": base_url(target, api_id)}
        published = deployment.get("description", "").removeprefix(FINGERPRINT_PREFIX)
        wanted = fingerprint(target.region, planned_arn(target, earlier), target.config.alias)
        if published != wanted:
            return Change(self.resource, name, "update", (Diff(Field.WIRING, published, wanted),), learned=learned)
        return Change(self.resource, name, "unchanged", learned=learned)

    def apply(self, run: Run, change: Change) -> None:
        assert run.state.rest_api_id and run.state.function_arn, "the API and the function come first"
        # One CreateDeployment per 5 s per account: botocore's standard retries absorb the 429s.
        deployment = gateway_call(
            run.aws.apigateway.create_deployment,
            restApiId=run.state.rest_api_id,
            stageName=run.config.stage,
            description=FINGERPRINT_PREFIX + fingerprint(run.target.region, run.state.function_arn, run.config.alias),
        )
        run.state.deployment_id = deployment["id"]
        run.state.base_url = base_url(run.target, run.state.rest_api_id)
        run.save()
