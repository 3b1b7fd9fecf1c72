"""The data plane of the local cloud: what API Gateway does with a request to a deployed REST API.

A request to `/restapis/{api id}/{stage}/_user_request_/{path}` is resolved against moto's in-process
backends, the way API Gateway resolves it against the deployed configuration (never deploy.toml):

    stage -> its deployment -> resource (exact path first, then `{param}`, then `{proxy+}`)
          -> method (the exact verb, else ANY) -> integration (AWS_PROXY, POST, a Lambda invocation URI)
          -> the function, version or alias it names (the resource policy of exactly that ARN must let
             this API invoke it) -> the version that runs: an alias's, or the one its routing weights pick
          -> that version's own code and configuration

What is not wired gets API Gateway's answers (deployer/gateway/answers.py): 403 `Missing Authentication
Token` for no such API, stage, resource or method; 500 `Internal server error` for an integration that
cannot be invoked or a function whose policy does not allow this API (the reason goes to the emulator's
log, as it would to CloudWatch); 502 when the function fails or answers something API Gateway cannot map.

moto's Deployment objects do not record the API they deployed, so patches.install_snapshots wraps
moto's CreateDeployment to keep a copy of the wiring (resources, methods, integrations) and of the API's
binaryMediaTypes with each deployment: like API Gateway, a stage keeps serving what was deployed until
the next deployment. The event and the answer are API Gateway's own (deployer/gateway/): the binary rule,
the 29 s integration timeout, the request's ids and headers as the client spelled them.

The function runs through `deployer serve`'s workers (FunctionRunner): the deployed zip is unpacked
once per CodeSha256 into a cache folder, and one warm runner is kept per version ($LATEST, 1, 2 ...),
code and configuration; a runner whose version changed or disappeared is closed. Lambda Invoke
(invoke.py) runs functions through the same runners.
"""

from __future__ import annotations

import io
import random
import re
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployer.digest import hex_sha256
from deployer.errors import DeployerError
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
    APIGATEWAY_PRINCIPAL,
    FUNCTION_ARN,
    INTEGRATION_URI,
    INVOKE_ACTION,
    FunctionError,
    answer_from_function,
    execute_api_arn,
    with_request_ids,
)
from deployer.gateway.proxy import MAX_REQUEST_BODY, MAX_REQUEST_HEADERS, build_event, request_headers_size
from deployer.serve.lambda_log import invocation_log, stream_name
from deployer.serve.runner import FunctionRunner, Outcome

Console = Callable[[str], None]

DATA_PLANE_PATH = re.compile(r"^/restapis/(?P<api>[^/]+)/(?P<stage>[^/]+)/_user_request_(?P<path>/.*)?$")
GREEDY_SEGMENT = re.compile(r"\{([A-Za-z0-9_]+)\+\}")
PARAMETER_SEGMENT = re.compile(r"\{([A-Za-z0-9_]+)\}")
STAGE_VARIABLE = re.compile(r"\$\{stageVariables\.([A-Za-z0-9_.-]+)\}")


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


# The wiring a deployment serves.


@dataclass(frozen=True)
class IntegrationSpec:
    type: str | None
    uri: str | None
    http_method: str | None
    credentials: str | None


@dataclass(frozen=True)
class MethodSpec:
    http_method: str
    authorization_type: str | None
    api_key_required: bool
    integration: IntegrationSpec | None


@dataclass(frozen=True)
class ResourceSpec:
    id: str
    path: str
    methods: Mapping[str, MethodSpec]


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


def _lambda_backend(account: str, region: str) -> Any | None:
    from moto.awslambda.models import lambda_backends

    if account not in dict.keys(lambda_backends) or region not in dict.keys(lambda_backends[account]):
        return None
    return lambda_backends[account][region]


def find_function(account: str, region: str, name: str, qualifier: str | None) -> Any | None:
    """moto's function object for $LATEST, a version, or the version an alias points at (its primary one)."""
    backend = _lambda_backend(account, region)
    if backend is None:
        return None
    try:
        return backend.get_function(name, qualifier)
    except Exception:  # moto's UnknownFunctionException and friends: there is no such function
        return None


def function_exists(arn: str) -> bool:
    found = FUNCTION_ARN.fullmatch(arn)
    if found is None:
        return False
    return find_function(found["account"], found["region"], found["name"], found["qualifier"]) is not None


@dataclass(frozen=True)
class Target:
    """What one invocation of a function ARN runs, and whose resource policy decides who may invoke it."""

    function: Any  # moto's LambdaFunction: $LATEST or a published version, each with its own code and configuration
    version: str  # "$LATEST" or the number of the version that runs (Invoke's X-Amz-Executed-Version)
    invoked_arn: str  # as the caller named it: unqualified, or qualified by a version or an alias
    policy_arn: str  # the ARN whose policy applies: the invoked one, the unqualified one for $LATEST


def routed_version(alias: Any, draw: Callable[[], float] | None = None) -> str:
    """The version one invocation of the alias runs: each additional version gets its weight's share of
    the invocations (RoutingConfig.AdditionalVersionWeights), the alias's own version the rest."""
    weights = (alias.routing_config or {}).get("AdditionalVersionWeights") or {}
    chance = (draw or random.random)()  # looked up per call: a test may seed or replace it
    for version, weight in weights.items():
        if chance < float(weight):
            return str(version)
        chance -= float(weight)
    return str(alias.function_version)


def resolve_target(account: str, region: str, name: str, qualifier: str | None) -> Target | None:
    """What invoking `name` with `qualifier` (None, $LATEST, a version number or an alias) runs; None when the
    function, the version or the alias does not exist. An alias picks its version anew for each call."""
    latest = find_function(account, region, name, None)
    backend = _lambda_backend(account, region)
    if latest is None or backend is None:
        return None
    unqualified = latest.function_arn
    version = qualifier or "$LATEST"
    if version != "$LATEST" and not version.isdigit():
        try:
            alias = backend.get_alias(version, name)
        except Exception:  # moto's UnknownAliasException: no such alias
            return None
        version = routed_version(alias)
    function = find_function(account, region, name, version)
    if function is None:
        return None
    invoked = f"{unqualified}:{qualifier}" if qualifier else unqualified
    policy_arn = unqualified if qualifier in (None, "$LATEST") else invoked
    return Target(function, str(function.version), invoked, policy_arn)


# Matching a request like API Gateway.


def _segments(path: str) -> list[str]:
    parts = path.strip("/").split("/")
    return [] if parts == [""] else parts


def _match(pattern: list[str], wanted: list[str]) -> tuple[tuple[int, ...], dict[str, str]] | None:
    """Per segment 2 (literal), 1 (`{param}`) or 0 (greedy `{name+}`, last only), and the parameters (as sent:
    API Gateway does not decode them; a trailing slash is not part of them)."""
    score: list[int] = []
    parameters: dict[str, str] = {}
    for index, part in enumerate(pattern):
        greedy = GREEDY_SEGMENT.fullmatch(part)
        if greedy:
            if index != len(pattern) - 1 or len(wanted) <= index:
                return None
            parameters[greedy.group(1)] = "/".join(wanted[index:])  # percent-encoding kept, as API Gateway does
            return (*score, 0), parameters
        if index >= len(wanted):
            return None
        single = PARAMETER_SEGMENT.fullmatch(part)
        if single:
            parameters[single.group(1)] = wanted[index]
            score.append(1)
        elif part == wanted[index]:
            score.append(2)
        else:
            return None
    return (tuple(score), parameters) if len(pattern) == len(wanted) else None


def match_resource(resources: Sequence[ResourceSpec], path: str) -> tuple[ResourceSpec, dict[str, str]] | None:
    """The resource serving `path` and its path parameters: the exact path first, then `{param}`
    segments, then a greedy `{name+}`; `/` is served by the root resource only."""
    wanted = _segments(path)
    best: tuple[tuple[int, ...], ResourceSpec, dict[str, str]] | None = None
    for resource in resources:
        pattern = _segments(resource.path)
        if not pattern or not wanted:
            if not pattern and not wanted:
                return resource, {}
            continue
        found = _match(pattern, wanted)
        if found is not None and (best is None or found[0] > best[0]):
            best = (found[0], resource, found[1])
    return (best[1], best[2]) if best else None


# The function's resource policy.


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def arn_like(pattern: str, value: str) -> bool:
    """IAM's ArnLike / StringLike: `*` any run of characters (slashes too), `?` one character."""
    expression = "".join(
        ".*" if character == "*" else "." if character == "?" else re.escape(character) for character in pattern
    )
    return re.fullmatch(expression, value, flags=re.DOTALL) is not None


def _action_matches(statement: Mapping[str, Any]) -> bool:
    return any(arn_like(str(action).lower(), INVOKE_ACTION.lower()) for action in _as_list(statement.get("Action")))


def _principal_matches(statement: Mapping[str, Any]) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        return False
    return APIGATEWAY_PRINCIPAL in _as_list(principal.get("Service")) or "*" in _as_list(principal.get("AWS"))


CONDITION_TESTS: dict[str, Callable[[str, str], bool]] = {
    "arnlike": arn_like,
    "stringlike": arn_like,
    "arnequals": lambda pattern, value: pattern == value,
    "stringequals": lambda pattern, value: pattern == value,
}


def _conditions_hold(statement: Mapping[str, Any], context: Mapping[str, str]) -> tuple[bool, str]:
    """Whether every condition holds for this request's context keys (lower-cased)."""
    for operator, tests in (statement.get("Condition") or {}).items():
        test = CONDITION_TESTS.get(str(operator).lower())
        if test is None or not isinstance(tests, Mapping):
            return False, f"condition operator {operator} is not emulated"
        for key, patterns in tests.items():
            value = context.get(str(key).lower())
            if value is None or not any(test(str(pattern), value) for pattern in _as_list(patterns)):
                return False, f"{key} {value} does not match {operator} {patterns}"
    return True, ""


def policy_allows(
    statements: Sequence[Mapping[str, Any]], source_arn: str, account: str, resource: str | None = None
) -> tuple[bool, str]:
    """Whether the policy lets API Gateway invoke the function for a request from `source_arn`, and why not.

    With `resource` (the invoked ARN; unqualified for $LATEST), only that ARN's statements count: Lambda keeps
    one policy per alias or version besides the function's own, where moto keeps every statement in one
    list, each naming its Resource. A grant on the function does not let anyone invoke its alias."""
    if resource is not None:
        statements = [
            statement
            for statement in statements
            if any(arn_like(str(item), resource) for item in _as_list(statement.get("Resource")))
        ]
    context = {"aws:sourcearn": source_arn, "aws:sourceaccount": account}
    allowed, reasons = False, []
    for statement in statements:
        if not (_action_matches(statement) and _principal_matches(statement)):
            continue
        holds, reason = _conditions_hold(statement, context)
        if not holds:
            reasons.append(f"statement {statement.get('Sid', '?')}: {reason}")
            continue
        if str(statement.get("Effect", "Allow")).lower() == "deny":
            return False, f"statement {statement.get('Sid', '?')} denies it"
        allowed = True
    if allowed:
        return True, ""
    if not statements:
        return False, f"{resource or 'the function'} has no resource policy"
    return False, "; ".join(reasons) or f"no statement lets {APIGATEWAY_PRINCIPAL} invoke it"


# Running the function.


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


@dataclass
class _Warm:
    key: tuple[Any, ...]
    runner: FunctionRunner
    log_stream: str  # the worker is an execution environment: its invocations share one log stream


# CloudWatch Logs writes come from request threads; moto's log streams are not thread-safe.
_logs_lock = threading.Lock()


def write_log(function: Any, stream: str, events: Sequence[tuple[int, str]]) -> None:
    """Put an invocation's log events into moto's CloudWatch Logs, as Lambda does: group `/aws/lambda/<name>` in the
    function's account and region, and the stream, created when missing (a reset of the emulator drops them)."""
    from moto.logs.models import LogStream, logs_backends

    backend = logs_backends[function.account_id][function.region]
    group_name = f"/aws/lambda/{function.function_name}"
    with _logs_lock:
        group = backend.groups.get(group_name)
        if group is None:
            group = backend.create_log_group(group_name, {})
        if stream not in group.streams:
            # A new dict rather than an insertion: a FilterLogEvents iterating the streams meanwhile is undisturbed.
            group.streams = {**group.streams, stream: LogStream(group, stream)}
        backend.put_log_events(group_name, stream, [{"timestamp": when, "message": text} for when, text in events])


@dataclass
class Functions:
    """Warm runners for the emulated functions' versions, and their unpacked code (one folder per CodeSha256).

    Each invocation's log (START, what the function printed, the error, END, REPORT) goes to CloudWatch Logs as
    Lambda writes it, so `deployer logs` reads the local cloud as it reads AWS."""

    cache: Path
    console: Console
    _runners: dict[str, _Warm] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, function: Any, event: Any, invoked_arn: str | None = None, request_id: str | None = None) -> Outcome:
        """One invocation of this version ($LATEST or a published one) with its own code and configuration; its
        outcome carries its log.

        Finding (or starting) the runner is part of the invocation: a runtime this machine lacks, a zip that
        does not unpack or a function without code fails it, as a bad deployment would."""
        request_id = request_id or str(uuid.uuid4())
        version = str(function.version)
        try:
            warm = self._warm(function)
        except FunctionError as error:
            outcome, stream = Outcome(request_id, error=error, started=time.time()), stream_name(version)
        else:
            outcome, stream = warm.runner.run(event, invoked_arn, request_id), warm.log_stream
        outcome.log = invocation_log(outcome, version, int(function.memory_size))
        try:
            write_log(function, stream, outcome.log)
        except Exception as error:  # the log is a record of the invocation, never a reason for it to fail
            self.console(f"{function.function_name}: could not write its log: {type(error).__name__}: {error}")
        return outcome

    def runner(self, function: Any) -> FunctionRunner:
        return self._warm(function).runner

    def _warm(self, function: Any) -> _Warm:
        code_sha = hex_sha256(function.code_sha_256 or "")
        if not code_sha or not function.code_bytes:
            raise FunctionError(
                "Runtime.InvalidCode",
                f"function {function.function_name} holds no code (package type {function.package_type})",
            )
        environment = {str(key): str(value) for key, value in (function.environment_vars or {}).items()}
        key = (
            code_sha,
            function.handler,
            function.run_time,
            int(function.timeout),
            int(function.memory_size),
            tuple(sorted(environment.items())),
        )
        arn = function.function_arn  # qualified for a published version: each version its own runner
        with self._lock:
            warm = self._runners.get(arn)
            if warm is not None and warm.key == key:
                return warm
            if warm is not None:
                self.console(f"{function.function_name}: code or configuration changed; starting a new worker")
                warm.runner.close()
                del self._runners[arn]
            source = self._unpack(code_sha, function.code_bytes)
            try:
                runner = FunctionRunner(
                    source,
                    function.handler or "",
                    function.run_time or "",
                    int(function.timeout),
                    int(function.memory_size),
                    function.function_name,
                    environment=environment,
                    region=function.region,
                    account_id=function.account_id,
                    console=self.console,
                    version=str(function.version),
                    capture_output=True,  # Lambda Invoke's LogType Tail returns what one invocation printed
                )
                note = runner.note
            except DeployerError as error:  # a runtime this machine cannot run
                raise FunctionError("Runtime.Unavailable", str(error)) from None
            if note:
                self.console(f"{function.function_name}: {note}")
            for gone in [other for other in self._runners if not function_exists(other)]:
                self.console(f"{gone}: the function or version is gone; stopping its worker")
                self._runners.pop(gone).runner.close()
            warm = _Warm(key, runner, stream_name(str(function.version)))
            self._runners[arn] = warm
            return warm

    def _unpack(self, code_sha: str, code: bytes) -> Path:
        target = self.cache / code_sha
        if target.is_dir():
            return target
        self.cache.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=self.cache, prefix=".unpacking-"))
        try:
            with zipfile.ZipFile(io.BytesIO(code)) as archive:
                archive.extractall(scratch)  # names with `..` or a leading `/` are sanitised by zipfile
            try:
                scratch.rename(target)
            except OSError:  # another request unpacked the same code meanwhile
                shutil.rmtree(scratch, ignore_errors=True)
        except (zipfile.BadZipFile, OSError) as error:
            shutil.rmtree(scratch, ignore_errors=True)
            raise FunctionError("Runtime.InvalidCode", f"cannot unpack the function's code: {error}") from None
        return target

    def close(self) -> None:
        with self._lock:
            runners, self._runners = list(self._runners.values()), {}
        for warm in runners:
            warm.runner.close()
        shutil.rmtree(self.cache, ignore_errors=True)


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


class DataPlane:
    """Answers data-plane requests from what is deployed in moto's backends."""

    def __init__(self, cache: Path, console: Console) -> None:
        self.console = console
        self.functions = Functions(cache, console)

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
        uri = STAGE_VARIABLE.sub(lambda found: str(stage_variables.get(found.group(1), "")), integration.uri or "")
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
        target = f"/{request.stage}{request.path}" + (f"?{request.query}" if request.query else "")
        if request_headers_size(request.method, target, request.protocol, request.headers) > MAX_REQUEST_HEADERS:
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
            refusal = missing_token(str(error))
            self.console(f"{request.method} {request.api_id}/{request.stage}{request.path}: {refusal.reason}")
            return with_request_ids(refusal.response())
        event["pathParameters"] = invocation.parameters or None
        event["stageVariables"] = invocation.stage_variables or None
        event["requestContext"]["resourceId"] = invocation.resource.id
        target = invocation.target
        if target.invoked_arn != target.function.function_arn:  # an alias: which version its routing picked
            self.console(f"{request.method} {request.path}: {target.invoked_arn} runs version {target.version}")

        def invoke(event: dict[str, Any]) -> Any:
            outcome = self.functions.run(target.function, event, target.invoked_arn)
            if outcome.error is not None:
                raise outcome.error
            return outcome.result

        def report(reason: str, details: Sequence[str]) -> None:
            self.console("\n    ".join([f"{target.invoked_arn} (version {target.version}): {reason}", *details]))

        return answer_from_function(invoke, event, report, invocation.binary_media_types)

    def close(self) -> None:
        self.functions.close()
