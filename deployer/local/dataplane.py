"""The data plane of the local cloud: what API Gateway does with a request to a deployed REST API.

A request to `/restapis/{api id}/{stage}/_user_request_/{path}` is resolved against moto's in-process
backends, the way API Gateway resolves it against the deployed configuration (never deploy.toml):

    stage -> its deployment -> resource (exact path first, then `{param}`, then `{proxy+}`)
          -> method (the exact verb, else ANY) -> integration (AWS_PROXY, POST, a Lambda invocation URI)
          -> the function, version or alias it names (the resource policy of exactly that ARN must let
             this API invoke it) -> the version that runs: an alias's, or the one its routing weights pick
          -> that version's own code and configuration

A request to a custom domain, `<domain>.localhost:<port>/{base path}/{path}` (the emulator's Host rule, auth.py),
is first mapped as API Gateway maps it (find_domain_route): the domain name in moto's backend, the base path mapping
whose base path is the path's first segment, else the root's `(none)` one, names the API and stage; the rest of the
path is routed as above. The function sees the path as the client sent it, base path included, as it does on AWS.
A domain that is not there, or a path no mapping takes, is API Gateway's 403 `{"message":"Forbidden"}`.

What is not wired gets API Gateway's answers (deployer/gateway/answers.py): 403 `Missing Authentication
Token` for no such API, stage, resource or method; 500 `Internal server error` for an integration that
cannot be invoked or a function whose policy does not allow this API (the reason goes to the emulator's
log, as it would to CloudWatch); 502 when the function fails or answers something API Gateway cannot map.

moto's Deployment objects do not record the API they deployed, so patches.install_snapshots wraps
moto's CreateDeployment to keep a copy of the wiring (resources, methods, integrations) and of the API's
binaryMediaTypes with each deployment: like API Gateway, a stage keeps serving what was deployed until
the next deployment. The event and the answer are API Gateway's own (deployer/gateway/): the binary rule,
the 29 s integration timeout, the request's ids and headers as the client spelled them.

Which resource serves a path is API Gateway's routing (deployer/gateway/routing.py); whether the function's
resource policy lets this API in is local/policy.py; the function runs in local/functions.py's warm workers,
which Lambda Invoke (invoke.py) shares.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from deployer.gateway.answers import (
    CONTENT_LENGTH_EXCEEDED,
    FORBIDDEN,
    HEADERS_TOO_LARGE,
    INTERNAL_SERVER_ERROR,
    MISSING_AUTHENTICATION_TOKEN,
    UNAUTHORIZED,
    CannedAnswer,
    Response,
)
from deployer.gateway.integration import (
    FUNCTION_ARN,
    INTEGRATION_URI,
    answer_from_function,
    execute_api_arn,
    with_request_ids,
)
from deployer.gateway.proxy import MAX_REQUEST_BODY, MAX_REQUEST_HEADERS, build_event, request_headers_size
from deployer.gateway.routing import (
    IntegrationSpec,
    MethodSpec,
    ResourceSpec,
    match_resource,
    with_stage_variables,
)
from deployer.local.functions import Functions, Target, resolve_target
from deployer.local.policy import policy_allows
from deployer.serve.pool import DEFAULT_CONCURRENCY, IDLE_SECONDS

Console = Callable[[str], None]

DATA_PLANE_PATH = re.compile(r"^/restapis/(?P<api>[^/]+)/(?P<stage>[^/]+)/_user_request_(?P<path>/.*)?$")


class Refusal(Exception):
    """API Gateway answers the client itself: the request never reaches the function."""

    def __init__(self, answer: CannedAnswer, reason: str) -> None:
        super().__init__(reason)
        self.answer = answer
        self.status = answer.status
        self.body = answer.body
        self.reason = reason  # for the log only: the client gets the canned answer

    def response(self) -> Response:
        return self.answer.response()


def missing_token(reason: str) -> Refusal:
    return Refusal(MISSING_AUTHENTICATION_TOKEN, reason)


def server_error(reason: str) -> Refusal:
    return Refusal(INTERNAL_SERVER_ERROR, reason)


SNAPSHOT_ATTRIBUTE = "deployer_snapshot"
BINARY_ATTRIBUTE = "deployer_binary_media_types"  # the API's binaryMediaTypes when it was deployed
# The request's headers as received (name spelling, order, repeats), put in the WSGI environ by
# patches.install_http_fixes: WSGI's HTTP_* keys lose all three.
RAW_HEADERS_KEY = "deployer.raw_headers"
# Set in the WSGI environ by the emulator when the connection must close after the answer, its body unread
# (a body over its bound): patches.install_http_fixes then neither drains the body nor keeps the connection.
CLOSE_CONNECTION_KEY = "deployer.close_connection"


def client_headers(environ: Mapping[str, Any]) -> list[tuple[str, str]] | None:
    """The request's headers as the client sent them, when the server recorded them (else None)."""
    headers = environ.get(RAW_HEADERS_KEY)
    return None if headers is None else [(str(name), str(value)) for name, value in headers]


def snapshot(api: Any) -> tuple[ResourceSpec, ...]:
    """A copy of a moto RestAPI's resources, methods and integrations, as plain values."""
    resources = []
    for resource in list(api.resources.values()):
        methods = {}
        for verb, method in list(resource.resource_methods.items()):
            found = method.method_integration
            integration = (
                None
                if found is None
                else IntegrationSpec(
                    type=found.integration_type,
                    uri=found.uri,
                    http_method=found.http_method,
                    credentials=found.credentials,
                )
            )
            methods[verb.upper()] = MethodSpec(
                http_method=verb.upper(),
                authorization_type=method.authorization_type,
                api_key_required=bool(method.api_key_required),
                integration=integration,
            )
        resources.append(ResourceSpec(id=resource.id, path=resource.get_path(), methods=methods))
    return tuple(resources)


# Finding things in moto's backends.


def _instantiated(backends: Any) -> Iterator[tuple[str, str, Any]]:
    """(account, region, backend) for the backends that exist, without creating new ones."""
    for account, regions in list(dict.items(backends)):
        for region, backend in list(dict.items(regions)):
            yield account, region, backend


def find_rest_api(api_id: str) -> tuple[str, str, Any] | None:
    """(account, region, RestAPI) for an API id, in whichever account and region holds it."""
    from moto.apigateway.models import apigateway_backends

    for account, region, backend in _instantiated(apigateway_backends):
        api = backend.apis.get(api_id)
        if api is not None:
            return account, region, api
    return None


ROOT_BASE_PATH = "(none)"  # API Gateway's name of the mapping of the domain's root


@dataclass(frozen=True)
class DomainRoute:
    """Where a base path mapping sends a request to a custom domain."""

    api_id: str
    stage: str
    base_path: str  # the part of the path the mapping took, as sent ("" for the root's mapping)
    path: str  # the rest, routed within the API: "/" at least


def find_domain_route(domain: str, path: str) -> DomainRoute | None:
    """The API and stage a request for `domain` and `path` (as sent) goes to, by the domain's base path mappings:
    the one named by the path's first segment, else the root's. None: no such domain, or no mapping takes it."""
    from moto.apigateway.models import apigateway_backends

    for _, _, backend in _instantiated(apigateway_backends):
        if domain not in backend.domain_names:
            continue
        mappings = dict(backend.base_path_mappings.get(domain) or {})
        first, _, rest = path.lstrip("/").partition("/")
        named = mappings.get(unquote(first)) if first and unquote(first) != ROOT_BASE_PATH else None
        mapping, base_path, rest = (
            (named, "/" + first, "/" + rest) if named else (mappings.get(ROOT_BASE_PATH), "", path)
        )
        if mapping is None:
            return None
        stage = mapping.stage
        if stage is None:  # a mapping without a stage takes it from the path's next segment
            stage, _, remaining = rest.lstrip("/").partition("/")
            if not stage:
                return None
            base_path, rest = f"{base_path}/{stage}", "/" + remaining
        return DomainRoute(mapping.rest_api_id, stage, base_path, rest or "/")
    return None


@dataclass
class Invocation:
    """Everything needed to run one request, found in the backends."""

    account: str
    region: str
    api_id: str
    stage: str
    resource: ResourceSpec
    parameters: dict[str, str]
    stage_variables: dict[str, str]
    target: Target
    deployment_id: str = ""
    binary_media_types: tuple[str, ...] = ()

    @property
    def function(self) -> Any:
        return self.target.function


# The request, end to end.


@dataclass
class Request:
    method: str
    api_id: str
    stage: str
    path: str  # after `_user_request_`, percent-encoding kept; "/" at least
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"
    domain: str | None = None  # a custom domain's request: its name, and the base path its mapping took
    base_path: str = ""


class DataPlane:
    """Answers data-plane requests from what is deployed in moto's backends."""

    def __init__(
        self,
        cache: Path,
        console: Console,
        concurrency: int = DEFAULT_CONCURRENCY,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.console = console
        self.functions = Functions(cache, console, concurrency, idle_seconds)

    def resolve(self, request: Request) -> Invocation:
        found = find_rest_api(request.api_id)
        if found is None:
            raise missing_token(f"no REST API {request.api_id}")
        account, region, api = found
        stage = api.stages.get(request.stage)
        if stage is None:
            raise missing_token(f"API {request.api_id} has no stage {request.stage}")
        deployment = api.deployments.get(stage.deployment_id)
        if deployment is None:
            raise missing_token(f"stage {request.stage} has no deployment")
        resources = getattr(deployment, SNAPSHOT_ATTRIBUTE, None)
        if resources is None:  # deployed before the snapshots were installed: the live wiring is all there is
            resources = snapshot(api)
        matched = match_resource(resources, request.path)
        if matched is None:
            raise missing_token(f"no resource of API {request.api_id} matches {request.path}")
        resource, parameters = matched
        method = resource.methods.get(request.method.upper()) or resource.methods.get("ANY")
        if method is None:
            raise missing_token(f"no {request.method} method on resource {resource.path}")
        if method.authorization_type == "AWS_IAM":
            raise missing_token(f"{method.http_method} {resource.path} needs a signed request (AWS_IAM)")
        if method.authorization_type not in (None, "NONE"):
            raise Refusal(
                UNAUTHORIZED,
                f"{method.http_method} {resource.path} uses a {method.authorization_type} authorizer (not emulated)",
            )
        if method.api_key_required:
            raise Refusal(FORBIDDEN, "the method requires an API key")
        target = self._target(account, region, request, resource, method, dict(stage.variables or {}))
        binary = getattr(deployment, BINARY_ATTRIBUTE, None)
        if binary is None:  # deployed before the snapshots were installed
            binary = tuple(getattr(api, "binaryMediaTypes", None) or ())
        return Invocation(
            account=account,
            region=region,
            api_id=request.api_id,
            stage=request.stage,
            resource=resource,
            parameters=parameters,
            stage_variables=dict(stage.variables or {}),
            target=target,
            deployment_id=str(stage.deployment_id),
            binary_media_types=tuple(binary),
        )

    def _target(
        self,
        account: str,
        region: str,
        request: Request,
        resource: ResourceSpec,
        method: MethodSpec,
        stage_variables: Mapping[str, str],
    ) -> Target:
        where = f"{method.http_method} {resource.path}"
        integration = method.integration
        if integration is None:
            raise server_error(f"{where} has no integration")
        if integration.type != "AWS_PROXY":
            raise server_error(f"{where}: integration type {integration.type} is not emulated (only AWS_PROXY)")
        uri = with_stage_variables(integration.uri or "", stage_variables)
        target = INTEGRATION_URI.fullmatch(uri)
        function_arn = FUNCTION_ARN.fullmatch(target.group("function")) if target else None
        if function_arn is None:
            raise server_error(f"{where}: integration URI {uri!r} does not name a Lambda function")
        if (integration.http_method or "").upper() != "POST":
            raise server_error(f"{where}: Lambda is invoked with POST, the integration uses {integration.http_method}")
        found = resolve_target(
            function_arn.group("account"),
            function_arn.group("region"),
            function_arn.group("name"),
            function_arn.group("qualifier"),
        )
        if found is None:
            raise server_error(f"Execution failed: function {target.group('function')} does not exist")  # type: ignore[union-attr]
        if integration.credentials:
            self.console(f"note: {where} invokes with role {integration.credentials}; its IAM policy is not checked")
            return found
        source_arn = execute_api_arn(
            function_arn.group("partition"),
            region,
            account,
            request.api_id,
            f"{request.stage}/{request.method.upper()}/{request.path.lstrip('/')}",
        )
        allowed, reason = policy_allows(found.function.policy.statements, source_arn, account, found.policy_arn)
        if not allowed:
            raise server_error(
                "Execution failed due to configuration error: Invalid permissions on Lambda function "
                f"{found.function.function_name} for {source_arn}: {reason}"
            )
        return found

    def answer(self, request: Request) -> Response:
        """The HTTP answer to one data-plane request; never raises for what a client sends."""
        request_target = f"/{request.stage}{request.path}" + (f"?{request.query}" if request.query else "")
        if (
            request_headers_size(request.method, request_target, request.protocol, request.headers)
            > MAX_REQUEST_HEADERS
        ):
            return with_request_ids(HEADERS_TOO_LARGE.response())
        if len(request.body) > MAX_REQUEST_BODY:
            return with_request_ids(CONTENT_LENGTH_EXCEEDED.response())
        try:
            invocation = self.resolve(request)
        except Refusal as refusal:
            self.console(f"{request.method} {request.api_id}/{request.stage}{request.path}: {refusal.reason}")
            return with_request_ids(refusal.response())
        try:
            event = build_event(
                request.method,
                request.path,
                request.query,
                request.headers,
                request.body,
                request.stage,
                resource_path=invocation.resource.path,
                source_ip=request.source_ip,
                protocol=request.protocol,
                account_id=invocation.account,
                api_id=invocation.api_id,
                deployment_id=invocation.deployment_id,
                binary_media_types=invocation.binary_media_types,
            )
        except ValueError as error:  # a path spelled so that it matches a resource only once normalised
            unmatched = missing_token(str(error))
            self.console(f"{request.method} {request.api_id}/{request.stage}{request.path}: {unmatched.reason}")
            return with_request_ids(unmatched.response())
        if request.domain is not None:  # what the client asked for: the base path stays in, no stage is added
            root, base = request.path == "/", request.base_path
            event["path"] = (base or "/") if root else base + event["path"]
            event["requestContext"]["path"] = (base or "/") if root else base + request.path
            event["requestContext"]["domainName"] = request.domain
            event["requestContext"]["domainPrefix"] = request.domain.split(".", 1)[0]
        event["pathParameters"] = invocation.parameters or None
        event["stageVariables"] = invocation.stage_variables or None
        event["requestContext"]["resourceId"] = invocation.resource.id
        target = invocation.target
        if target.invoked_arn != target.function.function_arn:  # an alias: which version its routing picked
            self.console(f"{request.method} {request.path}: {target.invoked_arn} runs version {target.version}")

        invoke, report = self.functions.proxy_for(target)
        return answer_from_function(invoke, event, report, invocation.binary_media_types)

    def close(self) -> None:
        self.functions.close()
