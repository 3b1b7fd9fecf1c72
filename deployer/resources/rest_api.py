"""The REST API and its wiring: the `{proxy+}` resource, `ANY` on it and on `/`, `AWS_PROXY` integrations.

All of the API's resources, methods and integrations are read in one GetResources call with
`embed=methods`; the steps after RestApi plan from that answer (the RestApi change's `observed`).
Any change here makes the stage step publish a new deployment (stage.wiring_changed).
The API's binary media types (`[api] binary_media_types`, default `*/*`) are set at creation and kept
in line with deploy.toml: without them API Gateway hands base64 text to browsers for images.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from deployer.aws import delete_if_present, read_or_none
from deployer.context import Run, Target, arn_partition, check_ours
from deployer.errors import DeployerError
from deployer.gateway.integration import lambda_integration_uri
from deployer.plan import Action, Change, Diff, Learned, Plan, inactive
from deployer.read_ahead import Read
from deployer.resources.function import alias_arn, known_arn, planned_arn
from deployer.resources.role import Role

ROOT, PROXY = "/", "/{proxy+}"
METHOD = "ANY"


class Field(StrEnum):
    ENDPOINT = "endpoint"
    BINARY_MEDIA_TYPES = "binary media types"
    TAGS = "tags"
    AUTHORIZATION = "authorization"
    TYPE = "type"
    HTTP_METHOD = "httpMethod"
    URI = "uri"


@dataclass(frozen=True)
class Observed:
    api_id: str
    resources: tuple[dict[str, Any], ...]  # GetResources with embed=methods: paths, methods, integrations

    def resource(self, path: str) -> dict[str, Any] | None:
        return next((item for item in self.resources if item["path"] == path), None)


def integration_uri(region: str, function_arn: str, alias: str) -> str:
    """What an AWS_PROXY integration calls: Lambda's Invoke of the stage's alias (never $LATEST)."""
    return lambda_integration_uri(arn_partition(function_arn), region, alias_arn(function_arn, alias))


def _escaped(media_type: str) -> str:
    """A media type as a JSON-pointer segment of a patch path: `image/png` is `image~1png`."""
    return media_type.replace("~", "~0").replace("/", "~1")


def _decoded(types: list[str]) -> list[str]:
    """API Gateway answers binaryMediaTypes as given; some emulators answer them escaped (`image~1png`)."""
    return [item.replace("~1", "/").replace("~0", "~") for item in types]


def serves_latest(resources: tuple[dict[str, Any], ...]) -> bool:
    """Whether an integration calls the function unqualified ($LATEST): a stack from before aliases."""
    for item in resources:
        integration = item.get("resourceMethods", {}).get(METHOD, {}).get("methodIntegration") or {}
        if integration.get("uri", "").endswith(("/invocations",)) and ":function:" in integration.get("uri", ""):
            function = integration["uri"].split(":function:", 1)[1].removesuffix("/invocations")
            if ":" not in function:
                return True
    return False


def is_ours(api: dict[str, Any], target: Target) -> bool:
    return api.get("name") == target.config.function_name and target.config.owns(api.get("tags", {}))


APIS_READ = Read("apigateway", "GetRestApis", {"limit": 500})  # find_tagged's first page


def find_tagged(target: Target) -> list[dict[str, Any]]:
    """The APIs this app created, found by name and tags: how a lost state file is recovered."""
    paginator = target.aws.apigateway.get_paginator("get_rest_apis")
    return [api for page in paginator.paginate(**APIS_READ.params) for api in page["items"] if is_ours(api, target)]


def _resources_read(api_id: str) -> Read:
    """GetResources's first page, with each resource's methods."""
    return Read("apigateway", "GetResources", {"restApiId": api_id, "embed": ["methods"], "limit": 500})


def _read_resources(target: Target, api_id: str) -> tuple[dict[str, Any], ...] | None:
    paginator = target.aws.apigateway.get_paginator("get_resources")
    params = _resources_read(api_id).params
    return read_or_none(lambda: tuple(item for page in paginator.paginate(**params) for item in page["items"]))


def _observed_api(earlier: Plan) -> Observed | None:
    change = earlier.of(RestApi)
    return change.observed if change is not None else None


def _resource_id(run: Run, path: str) -> str | None:
    return run.state.root_resource_id if path == ROOT else run.state.proxy_resource_id


class RestApi:
    resource = "rest api"
    reads: tuple[type, ...] = ()
    needs: tuple[type, ...] = ()  # the wiring is made while IAM makes a new role assumable

    def ahead(self, target: Target) -> tuple[Read, ...]:
        recorded = target.recorded.rest_api_id
        if target.config.api_type != "rest":
            return ()
        if not recorded:  # not made yet, or not recorded: the plan looks for it by name and tags
            return (APIS_READ,)
        return (Read("apigateway", "GetRestApi", {"restApiId": recorded}), _resources_read(recorded))

    def plan(self, target: Target, earlier: Plan) -> Change[Observed]:
        name = target.config.function_name
        if target.config.api_type != "rest":
            return inactive(self.resource, name, target.config.api_type)
        recorded = target.recorded.rest_api_id
        api = read_or_none(lambda: target.aws.apigateway.get_rest_api(restApiId=recorded)) if recorded else None
        if api is not None and recorded is not None:
            # The state names it: still, it is ours only if it says so (a state file can be copied or edited).
            check_ours(target.config, self.resource, f"{api.get('name')} ({recorded})", api.get("tags") or {})
            if api.get("name") != name:
                raise DeployerError(
                    f"the state names REST API {recorded}, which is {api.get('name')}, not {name}: move the state "
                    "file aside (deployer finds this app's API by its name and tags)"
                )
            resources = _read_resources(target, recorded)
            if resources is not None:
                return self._found(target, api, resources)
        found = find_tagged(target)
        if len(found) > 1:
            ids = ", ".join(api["id"] for api in found)
            raise DeployerError(
                f"found {len(found)} REST APIs named {name} tagged for this app ({ids}); "
                "delete the extra ones (aws apigateway delete-rest-api --rest-api-id ID) and run again"
            )
        if found:
            return self._found(target, found[0], _read_resources(target, found[0]["id"]) or ())
        return Change(self.resource, name, "create")

    def _found(self, target: Target, api: dict[str, Any], resources: tuple[dict[str, Any], ...]) -> Change[Observed]:
        api_id = api["id"]
        config, diffs = target.config, []
        endpoint = (api.get("endpointConfiguration") or {}).get("types") or ["EDGE"]
        if endpoint[0] != config.endpoint:
            diffs.append(Diff(Field.ENDPOINT, endpoint[0], config.endpoint))
        current = sorted(_decoded(api.get("binaryMediaTypes") or []))
        if current != sorted(config.binary_media_types):
            diffs.append(Diff(Field.BINARY_MEDIA_TYPES, current, sorted(config.binary_media_types)))
        tags = api.get("tags") or {}
        if any(tags.get(key) != value for key, value in config.tags.items()):  # a renamed default stage
            diffs.append(Diff(Field.TAGS, tags, config.tags))
        observed = Observed(api_id, resources)
        root, proxy = observed.resource(ROOT), observed.resource(PROXY)
        learned = Learned(
            rest_api_id=api_id,
            root_resource_id=root["id"] if root else None,
            proxy_resource_id=proxy["id"] if proxy else None,
        )
        action: Action = "update" if diffs else "unchanged"
        return Change(self.resource, api_id, action, tuple(diffs), observed=observed, learned=learned)

    def apply(self, run: Run, change: Change[Observed]) -> None:
        gateway, config = run.aws.apigateway, run.config
        if change.action == "update":
            assert change.observed is not None, "an update is planned from the API found"
            api_id = change.observed.api_id
            if change.touches([Field.ENDPOINT]):  # in place: the API, its ID and its URL stay
                old = next(diff.old for diff in change.diffs if diff.field == Field.ENDPOINT)
                operation = {"op": "replace", "path": f"/endpointConfiguration/types/{old}", "value": config.endpoint}
                gateway.update_rest_api(restApiId=api_id, patchOperations=[operation])
            if change.touches([Field.BINARY_MEDIA_TYPES]):
                diff = next(diff for diff in change.diffs if diff.field == Field.BINARY_MEDIA_TYPES)
                operations = [{"op": "add", "path": f"/binaryMediaTypes/{_escaped(item)}"} for item in diff.new]
                operations += [
                    {"op": "remove", "path": f"/binaryMediaTypes/{_escaped(item)}"}
                    for item in diff.old
                    if item not in diff.new
                ]
                gateway.update_rest_api(restApiId=api_id, patchOperations=operations)
            if change.touches([Field.TAGS]):
                arn = f"arn:{arn_partition(run.state.role_arn)}:apigateway:{run.target.region}::/restapis/{api_id}"
                gateway.tag_resource(resourceArn=arn, tags=config.tags)
            return
        api = gateway.create_rest_api(
            name=config.function_name,
            description="Deployed by deployer",
            endpointConfiguration={"types": [config.endpoint]},
            binaryMediaTypes=list(config.binary_media_types),
            tags=config.tags,
        )
        root_id = api.get("rootResourceId")
        if not root_id:  # older API Gateway answers leave it out
            root_id = next(item["id"] for item in _read_resources(run.target, api["id"]) or () if item["path"] == ROOT)
        with run.saving:  # what it made, saved by this step's own write
            run.state.rest_api_id, run.state.root_resource_id, run.state.proxy_resource_id = api["id"], root_id, None
            run.save_soon()


class ProxyResource:
    resource = "resource"
    reads: tuple[type, ...] = (RestApi,)
    needs: tuple[type, ...] = (RestApi,)

    def plan(self, target: Target, earlier: Plan) -> Change[None]:
        if target.config.api_type != "rest":
            return inactive(self.resource, PROXY, target.config.api_type)
        api = _observed_api(earlier)
        found = api.resource(PROXY) if api else None
        return Change(self.resource, PROXY, "unchanged" if found else "create")

    def apply(self, run: Run, change: Change[None]) -> None:
        created = run.aws.apigateway.create_resource(
            restApiId=run.state.rest_api_id,
            parentId=run.state.root_resource_id,
            pathPart="{proxy+}",
        )
        with run.saving:  # what it made, saved by this step's own write
            run.state.proxy_resource_id = created["id"]
            run.save_soon()


class Method:
    """`ANY` with no authorization, on `/` or on `/{proxy+}`."""

    resource = "method"
    reads: tuple[type, ...] = (RestApi,)
    needs: tuple[type, ...] = (ProxyResource,)

    def __init__(self, path: str) -> None:
        self.path = path

    def plan(self, target: Target, earlier: Plan) -> Change[None]:
        name = f"{METHOD} {self.path}"
        if target.config.api_type != "rest":
            return inactive(self.resource, name, target.config.api_type)
        api = _observed_api(earlier)
        found = api.resource(self.path) if api else None
        method = (found or {}).get("resourceMethods", {}).get(METHOD)
        if not method:
            return Change(self.resource, name, "create")
        if method.get("authorizationType") != "NONE":
            diff = Diff(Field.AUTHORIZATION, method.get("authorizationType"), "NONE")
            return Change(self.resource, name, "update", (diff,))
        return Change(self.resource, name, "unchanged")

    def apply(self, run: Run, change: Change[None]) -> None:
        gateway = run.aws.apigateway
        where = {"restApiId": run.state.rest_api_id, "resourceId": _resource_id(run, self.path), "httpMethod": METHOD}
        if change.action == "create":
            gateway.put_method(**where, authorizationType="NONE")
        else:
            operation = {"op": "replace", "path": "/authorizationType", "value": "NONE"}
            gateway.update_method(**where, patchOperations=[operation])


class Integration:
    """`AWS_PROXY` from `ANY` on a path to the function (integration method POST, as Lambda requires)."""

    resource = "integration"
    # The alias's ARN is known from the role's (the account): the integration is made before the function exists.
    # The API calls it only once a deployment publishes it, after the alias and its permission (stage.Stage).
    reads: tuple[type, ...] = (RestApi, Role)
    needs: tuple[type, ...] = (Method, Role)

    def __init__(self, path: str) -> None:
        self.path = path

    def plan(self, target: Target, earlier: Plan) -> Change[None]:
        name = f"{METHOD} {self.path}"
        if target.config.api_type != "rest":
            return inactive(self.resource, name, target.config.api_type)
        api = _observed_api(earlier)
        found = (api.resource(self.path) if api else None) or {}
        integration = found.get("resourceMethods", {}).get(METHOD, {}).get("methodIntegration")
        if not integration:
            return Change(self.resource, name, "create")
        desired = {
            Field.TYPE: "AWS_PROXY",
            Field.HTTP_METHOD: "POST",
            Field.URI: integration_uri(target.region, planned_arn(target, earlier), target.config.alias),
        }
        diffs = tuple(
            Diff(field, integration.get(field.value), value)
            for field, value in desired.items()
            if integration.get(field.value) != value
        )
        return Change(self.resource, name, "update" if diffs else "unchanged", diffs)

    def apply(self, run: Run, change: Change[None]) -> None:
        run.aws.apigateway.put_integration(  # creates or replaces
            restApiId=run.state.rest_api_id,
            resourceId=_resource_id(run, self.path),
            httpMethod=METHOD,
            type="AWS_PROXY",
            integrationHttpMethod="POST",
            uri=integration_uri(run.target.region, known_arn(run), run.config.alias),
        )


def delete(run: Run, api_id: str) -> bool:
    """Stages, deployments, resources, methods and integrations go with the API."""
    # API Gateway allows one DeleteRestApi per 30 s per account; botocore's standard retries back off.
    return delete_if_present(
        lambda: run.aws.apigateway.delete_rest_api(restApiId=api_id),
        still_there=lambda: run.aws.apigateway.get_rest_api(restApiId=api_id),
    )
