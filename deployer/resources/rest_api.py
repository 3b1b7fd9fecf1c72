"""The REST API and its wiring: the `{proxy+}` resource, `ANY` on it and on `/`, `AWS_PROXY` integrations.

All of the API's resources, methods and integrations are read in one GetResources call with
`embed=methods`; the steps after RestApi work from that answer. Every change here sets
ctx.api_changed, so the stage step publishes a new deployment.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from deployer.context import Change, Context
from deployer.errors import DeployerError
from deployer.retry import concurrent_modification, error_code, retrying

ROOT, PROXY = "/", "/{proxy+}"
METHOD = "ANY"


def gateway_call(operation: Any, **arguments: Any) -> Any:
    """API Gateway writes answer ConflictException while another change settles: try again."""
    return retrying(lambda: operation(**arguments), when=concurrent_modification, limit_seconds=120)


def integration_uri(ctx: Context) -> str:
    function_arn = ctx.state.function_arn or (
        f"arn:{ctx.partition}:lambda:{ctx.aws.region}:{ctx.account_id or '(account)'}:function:{ctx.config.app_name}"
    )
    return (
        f"arn:{ctx.partition}:apigateway:{ctx.aws.region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"
    )


def _is_ours(api: dict[str, Any], ctx: Context) -> bool:
    return api.get("name") == ctx.config.app_name and ctx.config.owns(api.get("tags", {}))


def find_tagged(ctx: Context) -> list[dict[str, Any]]:
    """The APIs this app created, found by name and tags: how a lost state file is recovered."""
    paginator = ctx.aws.apigateway.get_paginator("get_rest_apis")
    return [api for page in paginator.paginate(limit=500) for api in page["items"] if _is_ours(api, ctx)]


def _read_resources(ctx: Context, api_id: str) -> list[dict[str, Any]] | None:
    paginator = ctx.aws.apigateway.get_paginator("get_resources")
    try:
        return [
            item
            for page in paginator.paginate(restApiId=api_id, embed=["methods"], limit=500)
            for item in page["items"]
        ]
    except ClientError as error:
        if error_code(error) == "NotFoundException":
            return None
        raise


def _remember(ctx: Context, api_id: str, resources: list[dict[str, Any]]) -> None:
    ctx.state.rest_api_id = api_id
    ctx.api_resources = resources
    root = next(item for item in resources if item["path"] == ROOT)
    ctx.state.root_resource_id = root["id"]


def _resource(ctx: Context, path: str) -> dict[str, Any] | None:
    return next((item for item in ctx.api_resources if item["path"] == path), None)


class RestApi:
    resource = "rest api"

    def plan(self, ctx: Context) -> Change:
        name = ctx.config.app_name
        if ctx.state.rest_api_id:
            resources = _read_resources(ctx, ctx.state.rest_api_id)
            if resources is not None:
                _remember(ctx, ctx.state.rest_api_id, resources)
                return Change(self.resource, ctx.state.rest_api_id, "unchanged")
        ctx.state.rest_api_id = None
        found = find_tagged(ctx)
        if len(found) > 1:
            ids = ", ".join(api["id"] for api in found)
            raise DeployerError(
                f"found {len(found)} REST APIs named {name} tagged for this app ({ids}); "
                "delete the extra ones (aws apigateway delete-rest-api --rest-api-id ID) and run again"
            )
        if found:
            _remember(ctx, found[0]["id"], _read_resources(ctx, found[0]["id"]) or [])
            return Change(self.resource, found[0]["id"], "unchanged")
        return Change(self.resource, name, "create")

    def apply(self, ctx: Context, change: Change) -> None:
        api = gateway_call(
            ctx.aws.apigateway.create_rest_api,
            name=ctx.config.app_name,
            description="Deployed by deployer",
            tags=ctx.config.tags,
        )
        root_id = api.get("rootResourceId")
        _remember(ctx, api["id"], [{"id": root_id, "path": ROOT}] if root_id else _read_resources(ctx, api["id"]) or [])
        ctx.api_changed = True
        ctx.save()


class ProxyResource:
    resource = "resource"

    def plan(self, ctx: Context) -> Change:
        found = _resource(ctx, PROXY)
        if found:
            ctx.state.proxy_resource_id = found["id"]
            return Change(self.resource, PROXY, "unchanged")
        return Change(self.resource, PROXY, "create")

    def apply(self, ctx: Context, change: Change) -> None:
        root = _resource(ctx, ROOT)
        assert root is not None, "every REST API has a root resource"
        created = gateway_call(
            ctx.aws.apigateway.create_resource,
            restApiId=ctx.state.rest_api_id,
            parentId=root["id"],
            pathPart="{proxy+}",
        )
        ctx.api_resources.append({"id": created["id"], "path": PROXY})
        ctx.state.proxy_resource_id = created["id"]
        ctx.api_changed = True
        ctx.save()


class Method:
    """`ANY` with no authorization, on `/` or on `/{proxy+}`."""

    resource = "method"

    def __init__(self, path: str) -> None:
        self.path = path

    def plan(self, ctx: Context) -> Change:
        name = f"{METHOD} {self.path}"
        found = _resource(ctx, self.path)
        method = (found or {}).get("resourceMethods", {}).get(METHOD)
        if not method:
            return Change(self.resource, name, "create")
        if method.get("authorizationType") != "NONE":
            return Change(self.resource, name, "update", {"authorization": (method.get("authorizationType"), "NONE")})
        return Change(self.resource, name, "unchanged")

    def apply(self, ctx: Context, change: Change) -> None:
        found = _resource(ctx, self.path)
        assert found is not None
        api = ctx.aws.apigateway
        if change.action == "create":
            gateway_call(
                api.put_method,
                restApiId=ctx.state.rest_api_id,
                resourceId=found["id"],
                httpMethod=METHOD,
                authorizationType="NONE",
            )
        else:
            gateway_call(
                api.update_method,
                restApiId=ctx.state.rest_api_id,
                resourceId=found["id"],
                httpMethod=METHOD,
                patchOperations=[{"op": "replace", "path": "/authorizationType", "value": "NONE"}],
            )
        found.setdefault("resourceMethods", {})[METHOD] = {"authorizationType": "NONE"}
        ctx.api_changed = True


class Integration:
    """`AWS_PROXY` from `ANY` on a path to the function (integration method POST, as Lambda requires)."""

    resource = "integration"

    def __init__(self, path: str) -> None:
        self.path = path

    def plan(self, ctx: Context) -> Change:
        name = f"{METHOD} {self.path}"
        found = _resource(ctx, self.path) or {}
        integration = found.get("resourceMethods", {}).get(METHOD, {}).get("methodIntegration")
        if not integration:
            return Change(self.resource, name, "create")
        desired = {"type": "AWS_PROXY", "httpMethod": "POST", "uri": integration_uri(ctx)}
        diffs = {key: (integration.get(key), value) for key, value in desired.items() if integration.get(key) != value}
        return Change(self.resource, name, "update" if diffs else "unchanged", diffs)

    def apply(self, ctx: Context, change: Change) -> None:
        found = _resource(ctx, self.path)
        assert found is not None
        gateway_call(
            ctx.aws.apigateway.put_integration,  # creates or replaces
            restApiId=ctx.state.rest_api_id,
            resourceId=found["id"],
            httpMethod=METHOD,
            type="AWS_PROXY",
            integrationHttpMethod="POST",
            uri=integration_uri(ctx),
        )
        ctx.api_changed = True


def delete(ctx: Context, api_id: str) -> bool:
    """Stages, deployments, resources, methods and integrations go with the API."""
    try:
        # API Gateway allows one DeleteRestApi per 30 s per account; botocore's standard retries back off.
        gateway_call(ctx.aws.apigateway.delete_rest_api, restApiId=api_id)
    except ClientError as error:
        if error_code(error) == "NotFoundException":
            return False
        raise
    return True
