"""The local cloud's other front doors: HTTP APIs and function URLs, answered from what moto holds (payload 2.0).

Where a request comes in (the emulator routes it here, emulator.py):

- `http://{api id}.execute-api.localhost:{port}/{stage}/{path}` (a `$default` stage: `/{path}`), or the path
  form `http://127.0.0.1:{port}/_aws/execute-api/{api id}/{stage}/{path}`: an HTTP API;
- `http://{url id}.lambda-url.localhost:{port}/{path}`, or `http://127.0.0.1:{port}/_aws/lambda-url/{url id}/{path}`:
  a function URL. Browsers and curl resolve every `*.localhost` name to the loopback themselves (RFC 6761).

An HTTP API is resolved as API Gateway resolves it, from moto's apigatewayv2 backend (never deploy.toml):

    API -> stage (`$default`, else the path's first segment) -> route (`VERB /path`, `ANY /path`, `{param}`,
        `{name+}`, then `$default`) -> its integration (AWS_PROXY, payload format 2.0, a function ARN or a Lambda
        invocation URI) -> the function's resource policy must let this API in (the execute-api ARN
        `{api}/{stage}/$default` or `{api}/{stage}/{VERB}/{path}`) -> the version the alias picks

A function URL is moto's FunctionUrlConfig (`https://{url id}.lambda-url...`) on the function, on the alias its
Qualifier names (patches.install_function_url_qualifier keeps it): `AuthType` AWS_IAM wants a request signed with
the local cloud's credentials (auth.py; its owner is the account's own user, whom no resource policy needs to name);
NONE wants the resource policy to let `*` `lambda:InvokeFunctionUrl` (lambda:FunctionUrlAuthType NONE).

Both answer a CORS preflight themselves and put their CORS headers on the function's answers when they have a
CORS configuration (gateway/http_api.py). Both run the version in local/functions.py's warm workers, as the REST
data plane and Lambda Invoke do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from deployer.gateway import http_api
from deployer.gateway.answers import CannedAnswer, Response
from deployer.gateway.integration import FUNCTION_ARN, INTEGRATION_URI, execute_api_arn
from deployer.gateway.routing import ResourceSpec, match_resource
from deployer.local.functions import Functions, Target, resolve_target
from deployer.local.policy import policy_allows

Console = Callable[[str], None]

# The path forms, for clients that cannot resolve `*.localhost` names. Neither can be mistaken for the REST
# data plane's `/restapis/{id}/{stage}/_user_request_/...`, nor for an AWS API path moto answers.
HTTP_API_PATH = re.compile(r"^/_aws/execute-api/(?P<id>[A-Za-z0-9]+)(?P<path>/.*)?$")
FUNCTION_URL_PATH = re.compile(r"^/_aws/lambda-url/(?P<id>[A-Za-z0-9]+)(?P<path>/.*)?$")
# `{id}.execute-api.localhost` / `{id}.lambda-url.localhost` (a port, if any, is checked by the caller).
DOOR_HOST = re.compile(r"^(?P<id>[a-z0-9]+)\.(?P<kind>execute-api|lambda-url)\.localhost\.?$")
URL_ACTION = "lambda:InvokeFunctionUrl"


def door_host(host: str, port: int) -> tuple[http_api.FrontDoor, str] | None:
    """("http", api id) or ("url", url id) for a Host header naming one on this emulator's port; else None."""
    name, colon, given = host.strip().lower().rpartition(":")
    if not colon:
        name, given = given, str(port)
    found = DOOR_HOST.match(name)
    if found is None or given != str(port):
        return None
    return ("http" if found["kind"] == "execute-api" else "url"), found["id"]


@dataclass
class DoorRequest:
    kind: http_api.FrontDoor  # "http" or "url"
    id: str  # the API's id, or the URL's
    method: str
    path: str  # as sent, after the path form's prefix: the HTTP API's stage included; "/" at least
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"
    signed_by: str | None = None  # the access key id of a valid SigV4 signature (the local cloud's user), if any


class Refused(Exception):
    """The door answers by itself; `reason` is for the log."""

    def __init__(self, answer: CannedAnswer, reason: str) -> None:
        super().__init__(reason)
        self.answer = answer
        self.reason = reason


def _backends(module: str, name: str) -> Iterator[tuple[str, str, Any]]:
    import importlib

    backends = getattr(importlib.import_module(module), name)
    for account, regions in list(dict.items(backends)):
        for region, backend in list(dict.items(regions)):
            yield account, region, backend


def find_http_api(api_id: str) -> tuple[str, str, Any] | None:
    """(account, region, moto's Api) for an HTTP API's id."""
    for account, region, backend in _backends("moto.apigatewayv2.models", "apigatewayv2_backends"):
        api = backend.apis.get(api_id)
        if api is not None and api.protocol_type == "HTTP":
            return account, region, api
    return None


def find_function_url(wanted: str) -> tuple[str, str, Any, Any] | None:
    """(account, region, moto's function, its FunctionUrlConfig) for a URL id."""
    for account, region, backend in _backends("moto.awslambda.models", "lambda_backends"):
        for function in list(backend.list_functions()):
            config = getattr(function, "url_config", None)
            if config is not None and http_api.function_url_id(config.url) == wanted.lower():
                return account, region, function, config
    return None


def _route_for(api: Any, method: str, path: str) -> tuple[Any, dict[str, str]] | None:
    """The route serving `method path`: the best-matching `VERB /path` or `ANY /path` (an exact verb first),
    else `$default`."""
    routes = list(api.routes.values())
    for verbs in ((method.upper(),), ("ANY",)):
        specs = []
        for route in routes:
            verb, _, pattern = str(route.route_key).partition(" ")
            if verb in verbs and pattern:
                specs.append(ResourceSpec(id=route.route_id, path=pattern, methods={}))
        matched = match_resource(specs, path)
        if matched is not None:
            return api.routes[matched[0].id], matched[1]
    default = next((route for route in routes if route.route_key == http_api.DEFAULT_ROUTE), None)
    return (default, {}) if default is not None else None


def _function_of(uri: str) -> re.Match[str] | None:
    """The function ARN an HTTP API integration names: the ARN itself, or a Lambda invocation URI."""
    wrapped = INTEGRATION_URI.fullmatch(uri)
    return FUNCTION_ARN.fullmatch(wrapped["function"] if wrapped else uri)


class Doors:
    """Answers requests to HTTP APIs and function URLs from what is deployed in moto's backends."""

    def __init__(self, functions: Functions, console: Console) -> None:
        self.functions = functions
        self.console = console

    def answer(self, request: DoorRequest) -> Response:
        """The HTTP answer to one request; never raises for what a client sends."""
        door = http_api.DOORS[request.kind]
        if len(request.body) > door.max_request_body:
            self.console(f"{request.method} {request.kind} {request.id}: the body is over {door.max_request_body}")
            return http_api.with_request_id(door.too_large.response(), door)
        cors = self._cors(request)
        preflight = http_api.cors_preflight(cors, request.method, request.headers)
        if preflight is not None:  # the door's own answer, before any route or auth, as AWS answers it
            return http_api.with_request_id(preflight, door)
        try:
            if request.kind == "http":
                target, event, timeout = self._http_api(request)
            else:
                target, event, timeout = self._function_url(request)
        except Refused as refused:
            self.console(f"{request.method} {request.kind} {request.id}{request.path[:200]}: {refused.reason}")
            return http_api.with_request_id(refused.answer.response(), door)

        invoke, report = self.functions.proxy_for(target)
        answer = http_api.answer_from_function(invoke, event, report, door, timeout)
        return http_api.with_cors(answer, cors, request.headers)

    @staticmethod
    def _cors(request: DoorRequest) -> dict[str, Any] | None:
        """The door's CORS configuration: the HTTP API's CorsConfiguration, the function URL's Cors."""
        if request.kind == "http":
            found = find_http_api(request.id)
            return found[2].cors_configuration if found else None
        url = find_function_url(request.id)
        return url[3].config.get("Cors") if url else None

    def _http_api(self, request: DoorRequest) -> tuple[Target, dict[str, Any], float]:
        door = http_api.HTTP_API
        found = find_http_api(request.id)
        if found is None:
            raise Refused(door.not_found, f"no HTTP API {request.id}")
        account, region, api = found
        if http_api.DEFAULT_STAGE in api.stages:
            stage_name, routed = http_api.DEFAULT_STAGE, request.path
        else:
            stage_name, _, rest = request.path.lstrip("/").partition("/")
            routed = "/" + rest
        stage = api.stages.get(stage_name)
        if stage is None:
            raise Refused(door.not_found, f"API {request.id} has no stage {stage_name!r}")
        matched = _route_for(api, request.method, routed)
        if matched is None:
            raise Refused(door.not_found, f"no route of API {request.id} takes {request.method} {routed}")
        route, parameters = matched
        if route.authorization_type == "AWS_IAM" and request.signed_by is None:
            raise Refused(door.forbidden, f"route {route.route_key} needs a signed request (AWS_IAM)")
        if route.authorization_type not in (None, "NONE", "AWS_IAM"):
            raise Refused(door.forbidden, f"route {route.route_key} uses a {route.authorization_type} authorizer")
        integration = api.integrations.get(str(route.target or "").rpartition("/")[2])
        if integration is None:
            raise Refused(door.server_error, f"route {route.route_key} has no integration")
        if integration.integration_type != "AWS_PROXY" or integration.payload_format_version != "2.0":
            raise Refused(
                door.server_error,
                f"integration {integration.id}: {integration.integration_type}, payload format "
                f"{integration.payload_format_version} is not emulated (only AWS_PROXY with 2.0)",
            )
        arn = _function_of(str(integration.integration_uri or ""))
        if arn is None:
            raise Refused(door.server_error, f"integration URI {integration.integration_uri!r} names no function")
        target = resolve_target(arn["account"], arn["region"], arn["name"], arn["qualifier"])
        if target is None:
            raise Refused(door.server_error, f"function {arn.group(0)} does not exist")
        request_part = (
            http_api.DEFAULT_ROUTE
            if route.route_key == http_api.DEFAULT_ROUTE
            else f"{request.method.upper()}/{routed.lstrip('/')}"
        )
        source_arn = execute_api_arn(arn["partition"], region, account, api.api_id, f"{stage_name}/{request_part}")
        if integration.credentials_arn:
            self.console(f"note: integration {integration.id} invokes with role {integration.credentials_arn}")
        else:
            allowed, reason = policy_allows(target.function.policy.statements, source_arn, account, target.policy_arn)
            if not allowed:
                raise Refused(door.server_error, f"Invalid permissions on Lambda function for {source_arn}: {reason}")
        event = http_api.build_event(
            request.method,
            request.path,
            request.query,
            request.headers,
            request.body,
            api_id=api.api_id,
            stage=stage_name,
            route_key=route.route_key,
            account_id=account,
            source_ip=request.source_ip,
            protocol=request.protocol,
            path_parameters=parameters,
            stage_variables=dict(stage.stage_variables or {}),
        )
        limit = integration.timeout_in_millis / 1000 if integration.timeout_in_millis else http_api.HTTP_API_TIMEOUT
        return target, event, min(limit, http_api.HTTP_API_TIMEOUT)

    def _function_url(self, request: DoorRequest) -> tuple[Target, dict[str, Any], float]:
        door = http_api.FUNCTION_URL
        found = find_function_url(request.id)
        if found is None:
            raise Refused(door.not_found, f"no function URL {request.id}")
        account, region, function, config = found
        auth_type = str(config.config.get("AuthType") or "NONE")
        qualifier = config.config.get("Qualifier")
        target = resolve_target(account, region, function.function_name, qualifier)
        if target is None:
            raise Refused(door.server_error, f"function {function.function_name}:{qualifier} does not exist")
        authorizer = None
        if auth_type == "AWS_IAM":
            if request.signed_by is None:
                raise Refused(door.forbidden, "the URL's AuthType is AWS_IAM: the request must be signed (SigV4)")
            # The local cloud's one user is the account's own: its identity allows it, whatever the resource policy.
            authorizer = {"iam": {"accessKey": request.signed_by, "accountId": account, "callerId": request.signed_by}}
        else:
            allowed, reason = policy_allows(
                target.function.policy.statements,
                None,
                account,
                target.policy_arn,
                action=URL_ACTION,
                principal="*",
                context={"lambda:FunctionUrlAuthType": "NONE", "lambda:InvokedViaFunctionUrl": "true"},
            )
            if not allowed:
                raise Refused(door.forbidden, f"the resource policy does not open the URL to everyone: {reason}")
        event = http_api.build_event(
            request.method,
            request.path,
            request.query,
            request.headers,
            request.body,
            api_id=request.id,
            account_id=account if authorizer else http_api.ANONYMOUS,
            source_ip=request.source_ip,
            protocol=request.protocol,
            authorizer=authorizer,
        )
        return target, event, float(target.function.timeout)
