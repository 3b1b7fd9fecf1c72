"""An API Gateway HTTP API as the stage's front door (`[api] type = "http"`): cheaper than the REST API, payload 2.0.

The API (tagged like the REST API, found again by name and tags after a lost state), one `AWS_PROXY` integration
with payload format 2.0 to the stage's alias, the `$default` route to it, the grant on the alias scoped to the
API's execute-api ARN, and the `$default` stage with automatic deployment: the integration calls the alias,
so a release stays one alias move and the stage never needs a new deployment from us.

Why `$default` and not a stage named after ours: behind any other HTTP API stage, AWS puts the stage in the
function's `rawPath` (`/test/items`), and FastAPI+Mangum, Express+serverless-http and the like then answer 404
for every route unless the app is told its base path. Each of our stages has its own HTTP API (`<app>-<stage>`),
so the stage needs no path segment: the API serves at its root, `https://{api id}.execute-api.{region}.amazonaws.com/`.

Everything is read by the HttpApi step (GetApi or GetApis, then GetIntegrations, GetRoutes, GetStages); the steps
after it plan from that answer. With another type, every step here is inactive and asks nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from deployer.aws import delete_if_present, read_or_none
from deployer.context import Run, Target, arn_account, arn_partition, check_ours
from deployer.errors import DeployerError
from deployer.gateway.integration import execute_api_arn
from deployer.plan import Change, Diff, Learned, Plan, inactive
from deployer.resources.function import alias_arn, planned_arn
from deployer.resources.permission import Grant, GrantStep, http_api_statement_id

ROUTE_KEY = "$default"
STAGE = "$default"  # served at the API's root: the frameworks' routes match rawPath as it is (see the docstring)
PAYLOAD_FORMAT = "2.0"
TYPE = "http"


class Field(StrEnum):
    CORS = "cors"
    TAGS = "tags"
    TYPE = "IntegrationType"
    URI = "IntegrationUri"
    PAYLOAD = "PayloadFormatVersion"
    TARGET = "Target"
    AUTHORIZATION = "AuthorizationType"
    AUTO_DEPLOY = "AutoDeploy"


@dataclass(frozen=True)
class Observed:
    """The HTTP API found, with its integrations, routes and stages (one read each)."""

    api_id: str
    integrations: tuple[dict[str, Any], ...] = ()
    routes: tuple[dict[str, Any], ...] = ()
    stages: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def route(self) -> dict[str, Any] | None:
        return next((item for item in self.routes if item.get("RouteKey") == ROUTE_KEY), None)

    def integration(self) -> dict[str, Any] | None:
        """Ours: the one the $default route calls, else the first Lambda proxy one (a run that died before routing)."""
        route = self.route()
        wanted = (route or {}).get("Target", "").removeprefix("integrations/")
        by_id = {item.get("IntegrationId"): item for item in self.integrations}
        if wanted in by_id:
            return by_id[wanted]
        return next((item for item in self.integrations if item.get("IntegrationType") == "AWS_PROXY"), None)


def base_url(target: Target, api_id: str) -> str:
    """The `$default` stage's URL: the API's root, no stage segment; on the local cloud, its data plane's
    `http://{api id}.execute-api.localhost:{port}/` (local/doors.py serves it)."""
    if target.local_endpoint:
        return f"http://{api_id}.execute-api.localhost:{urlsplit(target.local_endpoint).port}/"
    return f"https://{api_id}.execute-api.{target.region}.amazonaws.com/"


def api_arn(partition: str, region: str, api_id: str) -> str:
    return f"arn:{partition}:apigateway:{region}::/apis/{api_id}"


def source_arn(region: str, function_arn: str, api_id: str) -> str:
    """Any stage, any route of this API: `arn:aws:execute-api:{region}:{account}:{api id}/*`."""
    return execute_api_arn(arn_partition(function_arn), region, arn_account(function_arn) or "", api_id, "*")


def is_ours(api: dict[str, Any], target: Target) -> bool:
    return api.get("Name") == target.config.function_name and target.config.owns(api.get("Tags") or {})


def find_tagged(target: Target) -> list[dict[str, Any]]:
    """The HTTP APIs this stage made, by name and tags: how a lost state (or `down`) finds them."""
    paginator = target.aws.apigatewayv2.get_paginator("get_apis")
    return [api for page in paginator.paginate() for api in page.get("Items", []) if is_ours(api, target)]


def _items(target: Target, operation: str, api_id: str) -> tuple[dict[str, Any], ...]:
    found = read_or_none(lambda: getattr(target.aws.apigatewayv2, operation)(ApiId=api_id))
    return tuple((found or {}).get("Items", []))


def _observed(earlier: Plan) -> Observed | None:
    change = earlier.of(HttpApi)
    return change.observed if change is not None else None


class HttpApi:
    resource = "http api"

    def plan(self, target: Target, earlier: Plan) -> Change[Observed]:
        config = target.config
        name = config.function_name
        if config.api_type != TYPE:
            return inactive(self.resource, name, config.api_type)
        recorded = target.recorded.http_api_id
        api = read_or_none(lambda: target.aws.apigatewayv2.get_api(ApiId=recorded)) if recorded else None
        if api is not None:
            # The state names it: still, it is ours only if it says so (a state file can be copied or edited).
            check_ours(config, self.resource, f"{api.get('Name')} ({recorded})", api.get("Tags") or {})
            if api.get("Name") != name:
                raise DeployerError(
                    f"the state names HTTP API {recorded}, which is {api.get('Name')}, not {name}: move the state "
                    "file aside (deployer finds this app's API by its name and tags)"
                )
            return self._found(target, api)
        found = find_tagged(target)
        if len(found) > 1:
            ids = ", ".join(item["ApiId"] for item in found)
            raise DeployerError(
                f"found {len(found)} HTTP APIs named {name} tagged for this app ({ids}); "
                "delete the extra ones (aws apigatewayv2 delete-api --api-id ID) and run again"
            )
        if found:
            return self._found(target, found[0])
        return Change(self.resource, name, "create")

    def _found(self, target: Target, api: dict[str, Any]) -> Change[Observed]:
        config, api_id = target.config, api["ApiId"]
        diffs = []
        cors = api.get("CorsConfiguration") or None
        if cors != config.cors:
            diffs.append(Diff(Field.CORS, cors, config.cors))
        tags = api.get("Tags") or {}
        if any(tags.get(key) != value for key, value in config.tags.items()):
            diffs.append(Diff(Field.TAGS, tags, config.tags))
        observed = Observed(
            api_id,
            _items(target, "get_integrations", api_id),
            _items(target, "get_routes", api_id),
            _items(target, "get_stages", api_id),
        )
        route, integration = observed.route(), observed.integration()
        learned = Learned(
            http_api_id=api_id,
            http_integration_id=integration.get("IntegrationId") if integration else None,
            http_route_id=route.get("RouteId") if route else None,
        )
        return Change(self.resource, api_id, "update" if diffs else "unchanged", tuple(diffs), observed, learned)

    def apply(self, run: Run, change: Change[Observed]) -> None:
        gateway, config = run.aws.apigatewayv2, run.config
        if change.action == "update":
            assert change.observed is not None, "an update is planned from the API found"
            api_id = change.observed.api_id
            if change.touches([Field.CORS]):
                if config.cors is None:
                    delete_if_present(lambda: gateway.delete_cors_configuration(ApiId=api_id))
                else:
                    gateway.update_api(ApiId=api_id, CorsConfiguration=config.cors)
            if change.touches([Field.TAGS]):
                arn = api_arn(arn_partition(run.state.role_arn), run.target.region, api_id)
                gateway.tag_resource(ResourceArn=arn, Tags=config.tags)
            return
        cors = {"CorsConfiguration": config.cors} if config.cors else {}
        api = gateway.create_api(
            Name=config.function_name, ProtocolType="HTTP", Description="Deployed by deployer", Tags=config.tags, **cors
        )
        state = run.state
        state.http_api_id, state.http_integration_id, state.http_route_id = api["ApiId"], None, None
        run.save_soon()


class Integration:
    """`AWS_PROXY` to the stage's alias, payload format 2.0 (what the function receives: see deployer/gateway)."""

    resource = "http integration"

    def plan(self, target: Target, earlier: Plan) -> Change[dict[str, Any]]:
        if target.config.api_type != TYPE:
            return inactive(self.resource, ROUTE_KEY, target.config.api_type)
        api = _observed(earlier)
        found = api.integration() if api else None
        if found is None:
            return Change(self.resource, "lambda proxy", "create")
        wanted = self.desired(alias_arn(planned_arn(target, earlier), target.config.alias))
        diffs = tuple(
            Diff(key, found.get(key.value), value) for key, value in wanted.items() if found.get(key) != value
        )
        return Change(self.resource, found["IntegrationId"], "update" if diffs else "unchanged", diffs, found)

    @staticmethod
    def desired(alias: str) -> dict[Field, str]:
        return {Field.TYPE: "AWS_PROXY", Field.URI: alias, Field.PAYLOAD: PAYLOAD_FORMAT}

    def apply(self, run: Run, change: Change[dict[str, Any]]) -> None:
        assert run.state.function_arn and run.state.http_api_id, "the function and the API come first"
        gateway = run.aws.apigatewayv2
        wanted = {
            key.value: value for key, value in self.desired(alias_arn(run.state.function_arn, run.config.alias)).items()
        }
        if change.action == "update":
            assert change.observed is not None, "an update is planned from the integration found"
            gateway.update_integration(
                ApiId=run.state.http_api_id, IntegrationId=change.observed["IntegrationId"], **wanted
            )
            run.state.http_integration_id = change.observed["IntegrationId"]
        else:
            created = gateway.create_integration(ApiId=run.state.http_api_id, **wanted)
            run.state.http_integration_id = created["IntegrationId"]
        run.save_soon()


class Route:
    """`$default`: every method and path goes to the integration (the function routes for itself)."""

    resource = "http route"

    def plan(self, target: Target, earlier: Plan) -> Change[dict[str, Any]]:
        if target.config.api_type != TYPE:
            return inactive(self.resource, ROUTE_KEY, target.config.api_type)
        api = _observed(earlier)
        route = api.route() if api else None
        integration = earlier.of(Integration)
        if route is None:
            return Change(self.resource, ROUTE_KEY, "create")
        diffs = []
        wanted_target = (
            f"integrations/{integration.observed['IntegrationId']}" if integration and integration.observed else None
        )
        if wanted_target is None or route.get("Target") != wanted_target:  # a new integration: the route follows
            diffs.append(Diff(Field.TARGET, route.get("Target"), wanted_target or "the new integration"))
        if route.get("AuthorizationType", "NONE") != "NONE":
            diffs.append(Diff(Field.AUTHORIZATION, route.get("AuthorizationType"), "NONE"))
        return Change(self.resource, ROUTE_KEY, "update" if diffs else "unchanged", tuple(diffs), route)

    def apply(self, run: Run, change: Change[dict[str, Any]]) -> None:
        state, gateway = run.state, run.aws.apigatewayv2
        assert state.http_api_id and state.http_integration_id, "the API and its integration come first"
        wanted = {"Target": f"integrations/{state.http_integration_id}", "AuthorizationType": "NONE"}
        if change.action == "update":
            assert change.observed is not None, "an update is planned from the route found"
            gateway.update_route(ApiId=state.http_api_id, RouteId=change.observed["RouteId"], **wanted)
            state.http_route_id = change.observed["RouteId"]
        else:
            state.http_route_id = gateway.create_route(ApiId=state.http_api_id, RouteKey=ROUTE_KEY, **wanted)["RouteId"]
        run.save_soon()


class Permission(GrantStep):
    """The HTTP API (any stage, any route) may invoke the alias: one statement, scoped to the API's ARN."""

    resource = "http permission"
    api_type = TYPE

    def sids(self, alias: str) -> tuple[str, ...]:
        return (http_api_statement_id(alias),)

    def planned(self, target: Target, earlier: Plan) -> tuple[Grant, ...]:
        api = _observed(earlier)
        api_id = api.api_id if api else "(new)"
        arn = source_arn(target.region, planned_arn(target, earlier), api_id)
        return (Grant(http_api_statement_id(target.config.alias), source_arn=arn),)

    def wanted(self, run: Run) -> tuple[Grant, ...]:
        assert run.state.function_arn and run.state.http_api_id, "the function and the API come first"
        arn = source_arn(run.target.region, run.state.function_arn, run.state.http_api_id)
        return (Grant(http_api_statement_id(run.config.alias), source_arn=arn),)


class Stage:
    """The `$default` stage, deployed automatically: what the API serves is always its routes as they are."""

    resource = "http stage"

    def plan(self, target: Target, earlier: Plan) -> Change[None]:
        config = target.config
        if config.api_type != TYPE:
            return inactive(self.resource, STAGE, config.api_type)
        api = _observed(earlier)
        stage = next((item for item in api.stages if item.get("StageName") == STAGE), None) if api else None
        if api is None or stage is None:
            return Change(self.resource, STAGE, "create")
        learned = Learned(base_url=base_url(target, api.api_id), api_type=TYPE)
        if not stage.get("AutoDeploy"):
            diff = Diff(Field.AUTO_DEPLOY, stage.get("AutoDeploy"), True)
            return Change(self.resource, STAGE, "update", (diff,), learned=learned)
        return Change(self.resource, STAGE, "unchanged", learned=learned)

    def apply(self, run: Run, change: Change[None]) -> None:
        state, config, gateway = run.state, run.config, run.aws.apigatewayv2
        assert state.http_api_id, "the API comes first"
        if change.action == "create":
            gateway.create_stage(ApiId=state.http_api_id, StageName=STAGE, AutoDeploy=True, Tags=config.tags)
        else:
            gateway.update_stage(ApiId=state.http_api_id, StageName=STAGE, AutoDeploy=True)
        state.base_url, state.api_type = base_url(run.target, state.http_api_id), TYPE
        run.save_soon()


def delete(run: Run, api_id: str) -> bool:
    """Its integrations, routes and stages go with the API."""
    gateway = run.aws.apigatewayv2
    return delete_if_present(
        lambda: gateway.delete_api(ApiId=api_id), still_there=lambda: gateway.get_api(ApiId=api_id)
    )


def wiring_problem(target: Target, api_id: str, function_arn: str) -> str | None:
    """Read back the HTTP API a type switch made, before the old door goes: what is not as it must be, or None."""
    observed = Observed(
        api_id,
        _items(target, "get_integrations", api_id),
        _items(target, "get_routes", api_id),
        _items(target, "get_stages", api_id),
    )
    route, integration = observed.route(), observed.integration()
    if route is None or integration is None:
        return f"HTTP API {api_id} has no {ROUTE_KEY} route to a Lambda integration"
    wanted = Integration.desired(alias_arn(function_arn, target.config.alias))
    if any(integration.get(key) != value for key, value in wanted.items()):
        return f"HTTP API {api_id}'s integration does not call alias {target.config.alias} with payload 2.0"
    if route.get("Target") != f"integrations/{integration.get('IntegrationId')}":
        return f"HTTP API {api_id}'s {ROUTE_KEY} route does not target its integration"
    if not any(item.get("StageName") == STAGE and item.get("AutoDeploy") for item in observed.stages):
        return f"HTTP API {api_id} has no auto-deployed stage {STAGE}"
    return None
