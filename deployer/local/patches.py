"""Where moto differs from AWS in ways a deployment can see, mended here, in one place.

Each `install_*` patches moto's classes once per process (calling it again does nothing):

- install_snapshots: moto's Deployment does not record the wiring it deployed; API Gateway serves
  what was deployed until the next deployment, so each CreateDeployment keeps a copy (dataplane.py reads it),
  binaryMediaTypes included.
- install_binary_media_types: moto's CreateRestApi drops `binaryMediaTypes`, and its UpdateRestApi reads the
  type of `add`/`remove` from the operation's value, where API Gateway names it in the path
  (`/binaryMediaTypes/image~1png`, `/` escaped as `~1`): both made to work as API Gateway's do.
- install_http_fixes: werkzeug's server (moto's) hands the WSGI app headers upper-cased with repeats joined
  by commas, and closes every connection (`Connection: close`); API Gateway passes the client's spelling
  and each repeat, and keeps connections alive. So the headers as received go in the environ too
  (dataplane.RAW_HEADERS_KEY), and a request whose body is framed by its Content-Length is answered in
  one write (TCP_NODELAY) on a connection that stays open.
- install_lambda_fixes: moto numbers a new version `len(versions) + 1`, so after DeleteFunction(Qualifier=1)
  the next PublishVersion answers "2" again, a number already taken; Lambda never reuses one. It also
  decides "nothing changed, no new version" from a flag that deleting versions leaves stale, and lets a
  version share mutable configuration with $LATEST. The emulator and the in-process test account both
  install it.
- install_qualified_policies: moto keeps one resource policy per function and ignores the Qualifier of
  GetPolicy and RemovePermission; Lambda keeps one per qualifier (alias or version) besides the function's
  own. moto does record each statement's Resource (the alias ARN for AddPermission with a Qualifier), so
  GetPolicy and RemovePermission are made to see only the statements of the ARN they name. The local cloud
  and the tests' moto (in-process and moto_server: tests/support.install_moto_fixes) both install it.
- install_rest_api_tags: moto tags an API's stages only, and fails on TagResource with a REST API's ARN; API
  Gateway tags the API. The local cloud and the tests' moto install it.
- install_front_door_fixes: the HTTP API's and the function URL's (issue 26). moto keeps AddPermission's
  FunctionUrlAuthType and InvokedViaFunctionUrl as top-level keys of the statement, where Lambda writes them as
  its Condition (GetPolicy shows them there, and the local cloud's function URLs read them there); an
  UpdateFunctionUrlConfig with an empty Cors leaves the old one, where Lambda clears it; apigatewayv2 has no
  UpdateStage; and API Gateway's two APIs keep separate domain names, where AWS has one (an API mapping takes a
  domain name made with the first API). The local cloud and the tests' moto install it.
- install_managed_policies_read_once: moto parses its ~1,300 AWS managed policies from JSON for every IAM
  account it makes, twice per reset (once for the backend it drops, once for the next request's). The local
  cloud reads them once per process; each account still gets every policy, as objects of its own.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from deployer.local.dataplane import (
    BINARY_ATTRIBUTE,
    CLOSE_CONNECTION_KEY,
    RAW_HEADERS_KEY,
    SNAPSHOT_ATTRIBUTE,
    snapshot,
)

PUBLISHED = "deployer_highest_version"  # kept in moto's per-function record: the highest number ever published

_installed: set[str] = set()


def _once(name: str) -> bool:
    """True the first time `name` is asked for in this process."""
    if name in _installed:
        return False
    _installed.add(name)
    return True


def install_local_cloud() -> None:
    """Everything the emulator process needs, before it serves its first request."""
    install_snapshots()
    install_binary_media_types()
    install_http_fixes()
    install_lambda_fixes()
    install_qualified_policies()
    install_rest_api_tags()
    install_function_url_qualifier()
    install_front_door_fixes()
    install_managed_policies_read_once()


def install_managed_policies_read_once() -> None:
    """IAM's AWS managed policies, parsed from moto's JSON once per process instead of for each account moto makes
    (after every reset): the same policies, new objects for each account (an attachment count is per account)."""
    if not _once("managed policies"):
        return
    from datetime import datetime

    import moto.iam.models
    from moto.iam.models import AWSManagedPolicy, IAMBackend
    from moto.settings import load_iam_aws_managed_policies

    # As moto's AWSManagedPolicy.from_data makes them (mypy takes its unused CloudFormation hooks for abstract).
    make_policy: Any = AWSManagedPolicy
    read: dict[str, list[tuple[str, dict[str, Any]]]] = {}  # moto's JSON -> each policy's arguments

    def arguments(data: str) -> list[tuple[str, dict[str, Any]]]:
        if data not in read:  # a new text (tests trim the set) is read anew
            read.clear()
            read[data] = [
                (
                    name,
                    {
                        "default_version_id": policy.get("DefaultVersionId"),
                        "path": policy.get("Path"),
                        "document": json.dumps(policy.get("Document")),
                        "create_date": datetime.fromisoformat(policy["CreateDate"]),
                        "update_date": datetime.fromisoformat(policy["UpdateDate"]),
                    },
                )
                for name, policy in json.loads(data).items()
            ]
        return read[data]

    def init_aws_policies(self: Any) -> list[Any]:
        if not load_iam_aws_managed_policies():
            return []
        return [
            make_policy(name, account_id=self.account_id, region=self.region_name, **given)
            for name, given in arguments(moto.iam.models.aws_managed_policies_data)
        ]

    IAMBackend._init_aws_policies = init_aws_policies  # type: ignore[method-assign]


def install_rest_api_tags() -> None:
    """TagResource on a REST API's ARN (`arn:aws:apigateway:REGION::/restapis/ID`) tags the API, as API Gateway
    does; moto tags stages only (and fails on an API's ARN)."""
    if not _once("api tags"):
        return
    from urllib.parse import unquote

    from moto.apigateway.responses import APIGatewayResponse

    tag_stage = APIGatewayResponse.tag_resource

    def tag_resource(self: Any) -> Any:
        parts = unquote(self.path.split("/tags/")[1]).split("::")[-1].strip("/").split("/")
        if len(parts) != 2 or parts[0] != "restapis":
            return tag_stage(self)
        api = self.backend.get_rest_api(parts[1])
        api.tags = {**(api.tags or {}), **(self._get_param("tags") or {})}
        return json.dumps({})

    APIGatewayResponse.tag_resource = tag_resource  # type: ignore[method-assign]


def install_snapshots() -> None:
    """Make every CreateDeployment keep a copy of the wiring it deploys (moto's Deployment does not)."""
    if not _once("snapshots"):
        return
    from moto.apigateway.models import RestAPI

    original = RestAPI.create_deployment

    def create_deployment(self: Any, *arguments: Any, **keywords: Any) -> Any:
        deployment = original(self, *arguments, **keywords)
        setattr(deployment, SNAPSHOT_ATTRIBUTE, snapshot(self))
        setattr(deployment, BINARY_ATTRIBUTE, tuple(self.binaryMediaTypes or ()))
        return deployment

    RestAPI.create_deployment = create_deployment  # type: ignore[method-assign]


BINARY_MEDIA_TYPES_PATH = "/binaryMediaTypes"


def unescape_pointer(segment: str) -> str:
    """A JSON Pointer segment as API Gateway's patch paths spell it: `~1` is `/`, `~0` is `~`."""
    return segment.replace("~1", "/").replace("~0", "~")


def patch_binary_media_types(types: list[str], operation: dict[str, Any]) -> None:
    """Apply one patch operation on /binaryMediaTypes to `types` in place, as API Gateway does: the type is
    in the path (`add /binaryMediaTypes/image~1png`); `replace` swaps the named type for the value."""
    named = unescape_pointer(operation["path"][len(BINARY_MEDIA_TYPES_PATH) :].lstrip("/"))
    if operation["op"] == "add" and named and named not in types:
        types.append(named)
    elif operation["op"] == "remove" and named in types:
        types.remove(named)
    elif operation["op"] == "replace" and named in types:
        types[types.index(named)] = operation.get("value") or named


def install_binary_media_types() -> None:
    """CreateRestApi keeps `binaryMediaTypes`; UpdateRestApi adds, removes and replaces them by path."""
    if not _once("binary"):
        return
    from moto.apigateway.models import RestAPI
    from moto.apigateway.responses import APIGatewayResponse

    create = APIGatewayResponse.create_rest_api
    apply = RestAPI.apply_patch_operations

    def create_rest_api(self: Any) -> Any:
        status, headers, body = create(self)
        types = self._get_param("binaryMediaTypes")
        if types and int(status) < 300:
            api = self.backend.get_rest_api(json.loads(body)["id"])
            api.binaryMediaTypes = [str(item) for item in types]
            body = json.dumps(api.to_dict())
        return status, headers, body

    def apply_patch_operations(self: Any, patch_operations: list[dict[str, Any]]) -> None:
        others = []
        for operation in patch_operations:
            if str(operation.get("path", "")).startswith(BINARY_MEDIA_TYPES_PATH + "/"):
                patch_binary_media_types(self.binaryMediaTypes, operation)
            else:
                others.append(operation)
        apply(self, others)

    APIGatewayResponse.create_rest_api = create_rest_api  # type: ignore[method-assign]
    RestAPI.apply_patch_operations = apply_patch_operations  # type: ignore[method-assign]


def _keeps_alive(handler: Any) -> bool:
    """Whether the connection can stay open after this request: HTTP/1.1, the client did not ask to close,
    and the body's end is known from its Content-Length (not chunked, no `Expect: 100-continue` dance)."""
    headers = handler.headers
    return (
        handler.request_version == "HTTP/1.1"
        and not handler.close_connection
        and "chunked" not in str(headers.get("Transfer-Encoding", "")).lower()
        and not headers.get("Expect")
    )


# Seconds a connection to the local cloud may sit without sending what the server waits for (a request line,
# headers, a body) before it is closed: half-open connections, one thread each, no longer pile up.
CONNECTION_TIMEOUT = 60.0


def install_http_fixes() -> None:
    """werkzeug's server (the emulator's) passes the headers as received and keeps connections alive; it sends
    no `Server` header of its own (API Gateway sends none) and one `100 Continue`, not two; a silent connection
    is closed after CONNECTION_TIMEOUT (StreamRequestHandler.setup gives the socket that timeout)."""
    if not _once("http"):
        return
    from werkzeug.serving import WSGIRequestHandler
    from werkzeug.wsgi import LimitedStream

    make_environ = WSGIRequestHandler.make_environ
    closing_run_wsgi = WSGIRequestHandler.run_wsgi
    send_header = WSGIRequestHandler.send_header

    def send_header_but_ours(self: Any, keyword: str, value: str) -> None:
        if keyword.lower() == "server" and value == self.version_string():
            return  # http.server's and werkzeug's own
        send_header(self, keyword, value)

    def handle_expect_100(self: Any) -> bool:
        """Leave `100 Continue` to werkzeug's run_wsgi, which sends it too (http.server's made it two)."""
        return True

    def make_environ_with_raw_headers(self: Any) -> Any:
        environ = make_environ(self)
        environ[RAW_HEADERS_KEY] = list(self.headers.items())  # spelling, order and repeats as sent
        return environ

    def run_wsgi(self: Any) -> None:
        """The app's answer, buffered and sent in one write; the request's unread body is read first, so that
        the next request on the connection starts where it should. (werkzeug's own run_wsgi says
        `Connection: close`, then discards whatever the client sends next.)"""
        if not _keeps_alive(self):
            return closing_run_wsgi(self)  # type: ignore[no-any-return]
        environ = self.environ = self.make_environ()
        body = LimitedStream(environ["wsgi.input"], int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = body
        started: list[Any] = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return chunks.append

        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
            if environ.get(CLOSE_CONNECTION_KEY):  # refused unread: closing costs less than draining it
                self.close_connection = True
            else:
                body.exhaust()
            status, headers = started
        except Exception as error:  # what werkzeug answers too, but the connection cannot be trusted after it
            self.log_error("Error on request: %r", error)
            self.close_connection = True
            status, headers, chunks = "500 Internal Server Error", [("Content-Type", "text/plain")], [b"error"]
        code, _, reason = status.partition(" ")
        payload = b"".join(chunks)
        self.send_response(int(code), reason)
        named = set()
        for name, value in headers:
            if name.lower() not in ("connection", "keep-alive", "transfer-encoding"):
                self.send_header(name, value)
                named.add(name.lower())
        if "content-length" not in named and int(code) >= 200 and int(code) not in (204, 304):
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self._headers_buffer.append(b"\r\n")
        if environ["REQUEST_METHOD"] != "HEAD":
            self._headers_buffer.append(payload)
        self.flush_headers()  # status line, headers and body in one write

    WSGIRequestHandler.make_environ = make_environ_with_raw_headers  # type: ignore[method-assign]
    WSGIRequestHandler.send_header = send_header_but_ours  # type: ignore[method-assign]
    WSGIRequestHandler.handle_expect_100 = handle_expect_100  # type: ignore[method-assign]
    WSGIRequestHandler.timeout = CONNECTION_TIMEOUT
    WSGIRequestHandler.run_wsgi = run_wsgi  # type: ignore[method-assign]
    # When werkzeug's run_wsgi still answers (a chunked request), headers and body leave in separate writes:
    # with TCP_NODELAY the body never waits for the client's delayed ACK.
    WSGIRequestHandler.disable_nagle_algorithm = True


def release_of(function: Any) -> tuple[Any, ...]:
    """What a published version snapshots of $LATEST: its code and the configuration that runs it."""
    return (
        function.code_sha_256,
        function.handler,
        function.run_time,
        function.memory_size,
        function.timeout,
        function.role,
        json.dumps(function.environment_vars or {}, sort_keys=True),
        tuple(function.architectures),
        json.dumps(function.layers, sort_keys=True, default=str),
    )


def install_lambda_fixes() -> None:
    """PublishVersion as Lambda numbers and snapshots versions."""
    if not _once("lambda"):
        return
    from moto.awslambda.models import LambdaStorage

    def publish_version(self: Any, name_or_arn: str, description: str = "") -> Any:
        """A new version numbered one past the highest ever published (deleted ones included), unless the
        newest version already is $LATEST's code and configuration: then that one, as Lambda answers."""
        latest = self.get_function_by_name_or_arn_forbid_qualifier(name_or_arn)
        record = self._functions.get(latest.function_name)
        if record is None or not record["latest"]:
            return None
        versions = record["versions"]
        if versions and release_of(versions[-1]) == release_of(latest):
            return versions[-1]
        latest.code_or_config_updated = False
        number = max([record.get(PUBLISHED, 0), *(int(item.version) for item in versions)]) + 1
        record[PUBLISHED] = number
        version = copy.copy(latest)
        # copy.copy shares the dicts moto later changes in place on $LATEST (UpdateFunctionCode writes code["S3Key"]).
        version.code = dict(latest.code)
        version.environment_vars = dict(latest.environment_vars or {})
        version.set_version(number)
        if description:
            version.description = description
        versions.append(version)
        self._arns[version.function_arn] = version
        return version

    LambdaStorage.publish_version = publish_version  # type: ignore[method-assign]


def policy_resource(storage: Any, name_or_arn: str, qualifier: str | None) -> tuple[Any, str]:
    """The function (moto's $LATEST object, which holds the one policy) and the ARN whose policy is meant:
    `...:function:NAME:QUALIFIER`, or the unqualified ARN for no qualifier or $LATEST."""
    if name_or_arn.startswith("arn:"):
        _, name, named = storage.split_function_arn(name_or_arn)
    else:
        name, _, named = name_or_arn.partition(":")
    qualifier = named or qualifier
    storage.get_function_by_name_with_qualifier(name, qualifier)  # ResourceNotFound: no such version or alias
    latest = storage.get_function_by_name_forbid_qualifier(name)
    unqualified = latest.function_arn
    return latest, unqualified if qualifier in (None, "$LATEST") else f"{unqualified}:{qualifier}"


def install_qualified_policies() -> None:
    """GetPolicy and RemovePermission see the policy of the qualifier they name, as Lambda keeps them."""
    if not _once("policies"):
        return
    from moto.awslambda.exceptions import GenericResourcNotFound, UnknownPolicyException
    from moto.awslambda.models import LambdaBackend
    from moto.awslambda.responses import LambdaResponse

    def get_policy(self: Any, function_name: str, qualifier: str | None = None) -> str:
        latest, resource = policy_resource(self._lambdas, function_name, qualifier)
        statements = [item for item in latest.policy.statements if item.get("Resource") == resource]
        if not statements:
            raise GenericResourcNotFound()
        policy = {"Version": "2012-10-17", "Id": "default", "Statement": statements}
        return json.dumps({"Policy": json.dumps(policy), "RevisionId": latest.policy.revision})

    def remove_permission(self: Any) -> Any:
        from urllib.parse import unquote

        function_name = unquote(self.path.split("/")[-3])
        sid = unquote(self.path.split("/")[-1].split("?")[0])
        qualifier = self.querystring.get("Qualifier", [None])[0]
        latest, resource = policy_resource(self.backend._lambdas, function_name, qualifier)
        statements = latest.policy.statements
        found = next((item for item in statements if item.get("Sid") == sid and item.get("Resource") == resource), None)
        if found is None:
            raise UnknownPolicyException()
        statements.remove(found)
        return 204, {"status": 204}, "{}"

    LambdaBackend.get_policy = get_policy  # type: ignore[method-assign]
    LambdaResponse.remove_permission = remove_permission  # type: ignore[method-assign]


def install_function_url_qualifier() -> None:
    """CreateFunctionUrlConfig with a Qualifier (an alias) keeps it, and the config names the alias's ARN, as Lambda
    does: moto drops the Qualifier, and the local cloud's function URLs must run the alias's version (doors.py)."""
    if not _once("function_url_qualifier"):
        return
    from moto.awslambda.models import FunctionUrlConfig
    from moto.awslambda.responses import LambdaResponse

    create = LambdaResponse.create_function_url_config
    to_dict = FunctionUrlConfig.to_dict

    def create_function_url_config(self: Any) -> Any:
        qualifier = self.querystring.get("Qualifier", [None])[0]
        answer = create(self)
        if qualifier:
            from urllib.parse import unquote

            function = self.backend.get_function(unquote(self.path.split("/")[-2]), None)
            function.url_config.config["Qualifier"] = qualifier
            status, headers, _ = answer
            return status, headers, json.dumps(function.url_config.to_dict())
        return answer

    def qualified_to_dict(self: Any) -> dict[str, Any]:
        described = to_dict(self)
        if self.config.get("Qualifier"):
            described["FunctionArn"] = f"{self.function.function_arn}:{self.config['Qualifier']}"
        return described

    LambdaResponse.create_function_url_config = create_function_url_config  # type: ignore[method-assign]
    FunctionUrlConfig.to_dict = qualified_to_dict  # type: ignore[method-assign]


def install_front_door_fixes() -> None:
    """Where moto's function URLs and HTTP APIs differ from AWS in what `up` writes and reads back (see the
    module's docstring): URL permission conditions, an emptied Cors, apigatewayv2 UpdateStage, one domain name."""
    if not _once("front doors"):
        return
    from urllib.parse import unquote

    from moto.apigateway.models import apigateway_backends
    from moto.apigatewayv2.models import ApiGatewayV2Backend
    from moto.apigatewayv2.models import DomainName as V2DomainName
    from moto.apigatewayv2.responses import ApiGatewayV2Response
    from moto.awslambda.models import FunctionUrlConfig
    from moto.awslambda.policy import Policy

    merge = Policy.condition_merge

    def condition_merge(self: Any, obj: dict[str, Any]) -> None:
        merge(self, obj)
        if "FunctionUrlAuthType" in obj:
            condition = {"StringEquals": {"lambda:FunctionUrlAuthType": obj.pop("FunctionUrlAuthType")}}
            obj["Condition"] = {**obj.get("Condition", {}), **condition}
        if "InvokedViaFunctionUrl" in obj:
            value = str(obj.pop("InvokedViaFunctionUrl")).lower()
            obj["Condition"] = {**obj.get("Condition", {}), "Bool": {"lambda:InvokedViaFunctionUrl": value}}

    update = FunctionUrlConfig.update

    def update_config(self: Any, new_config: dict[str, Any]) -> None:
        update(self, new_config)
        if "Cors" in new_config and not new_config["Cors"]:
            self.config["Cors"] = None

    def update_stage(self: Any) -> Any:
        api_id, stage_name = self.path.split("/")[-3], unquote(self.path.split("/")[-1])
        stage = self.apigatewayv2_backend.get_stage(api_id, stage_name)
        if "autoDeploy" in json.loads(self.body):
            stage.auto_deploy = json.loads(self.body)["autoDeploy"]
        return 200, {}, json.dumps(stage.to_json())

    create_api_mapping = ApiGatewayV2Backend.create_api_mapping

    def create_mapping(self: Any, api_id: str, api_mapping_key: str, domain_name: str, stage: str) -> Any:
        made_with_v1 = apigateway_backends[self.account_id][self.region_name].domain_names
        if domain_name not in self.domain_names and domain_name in made_with_v1:
            self.domain_names[domain_name] = V2DomainName(domain_name, [], {}, {}, self)
        return create_api_mapping(self, api_id, api_mapping_key, domain_name, stage)

    ApiGatewayV2Backend.create_api_mapping = create_mapping  # type: ignore[method-assign]
    ApiGatewayV2Response.update_stage = update_stage  # type: ignore[attr-defined]
    Policy.condition_merge = condition_merge  # type: ignore[method-assign]
    FunctionUrlConfig.update = update_config  # type: ignore[method-assign]
