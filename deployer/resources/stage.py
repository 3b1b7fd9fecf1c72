"""The stage: a deployment of the API's current wiring, published on the stage (default `test`).

A new deployment on the existing stage switches it atomically; the stage is never deleted (that
would be downtime). Each deployment's description carries a fingerprint of the wiring it was made
for, so a run that finds the stage serving other wiring (or a crash between wiring and deploying)
publishes again, and a run that changed nothing publishes nothing.
"""

from __future__ import annotations

import hashlib
import json

from botocore.exceptions import ClientError

from deployer.context import Change, Context
from deployer.resources.rest_api import METHOD, PROXY, ROOT, gateway_call, integration_uri
from deployer.retry import error_code

FINGERPRINT_PREFIX = "deployer wiring "


def fingerprint(ctx: Context) -> str:
    wiring = {path: {METHOD: ["NONE", "AWS_PROXY", "POST", integration_uri(ctx)]} for path in (ROOT, PROXY)}
    return hashlib.sha256(json.dumps(wiring, sort_keys=True).encode()).hexdigest()[:16]


def base_url(ctx: Context) -> str:
    if ctx.local_endpoint:
        return f"{ctx.local_endpoint}/restapis/{ctx.state.rest_api_id}/{ctx.config.stage}/_user_request_/"
    return f"https://{ctx.state.rest_api_id}.execute-api.{ctx.aws.region}.amazonaws.com/{ctx.config.stage}"


class Stage:
    resource = "stage"

    def plan(self, ctx: Context) -> Change:
        name = ctx.config.stage
        if ctx.api_changed or not ctx.state.rest_api_id:
            return Change(self.resource, name, "create" if not ctx.state.deployment_id else "update")
        api = ctx.aws.apigateway
        try:
            stage = api.get_stage(restApiId=ctx.state.rest_api_id, stageName=name)
            deployment = api.get_deployment(restApiId=ctx.state.rest_api_id, deploymentId=stage["deploymentId"])
        except ClientError as error:
            if error_code(error) != "NotFoundException":
                raise
            return Change(self.resource, name, "create")
        ctx.state.deployment_id = stage["deploymentId"]
        ctx.state.base_url = base_url(ctx)
        published = deployment.get("description", "").removeprefix(FINGERPRINT_PREFIX)
        if published != fingerprint(ctx):
            return Change(self.resource, name, "update", {"wiring": (published, fingerprint(ctx))})
        return Change(self.resource, name, "unchanged")

    def apply(self, ctx: Context, change: Change) -> None:
        # One CreateDeployment per 5 s per account: botocore's standard retries absorb the 429s.
        deployment = gateway_call(
            ctx.aws.apigateway.create_deployment,
            restApiId=ctx.state.rest_api_id,
            stageName=ctx.config.stage,
            description=FINGERPRINT_PREFIX + fingerprint(ctx),
        )
        ctx.state.deployment_id = deployment["id"]
        ctx.state.base_url = base_url(ctx)
        ctx.save()
