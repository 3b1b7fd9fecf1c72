"""IAM enforcement in front of in-process moto: every call is allowed only if the policy held allows its action on
its resource, with its condition keys, as AWS evaluates an identity policy; else AWS's AccessDenied answer.

Why not moto's own (`INITIAL_NO_AUTH_ACTION_COUNT`, `moto.core.enable_iam_authentication`)? In moto 5.2 it checks
resource ARNs only for S3 and for IAM calls on an existing role (every other service's resource is "*", which no
scoped statement matches), evaluates no condition key (a condition whose key the request lacks passes), names API
Gateway's actions by operation (apigateway:GetRestApis, where IAM says apigateway:GET), and refuses Lambda and API
Gateway calls in-process with SignatureDoesNotMatch. So this module works out each call's action, resource and
condition keys from the call itself (AWS's Service Authorization Reference: API Gateway's action is the HTTP method
on the request's path, S3's and Lambda's names differ from some operations', CreateFunction passes its role) and
evaluates the policy: Allow statements only, `*` and `?` wildcards, StringEquals conditions (a missing key fails).
It never reads deployer's table: it is the check on it.

It listens on every session's `before-call` (botocore's built-in handlers, as tests/lambda_invoke.py does), ahead
of moto; a refused call never reaches moto.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import quote

from botocore.awsrequest import AWSResponse

from tests.faults import RawBody

ACCOUNT = "123456789012"
USER = f"arn:aws:iam::{ACCOUNT}:user/ci"
S3_ACTIONS = {
    "HeadObject": "GetObject",
    "HeadBucket": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "ListMultipartUploads": "ListBucketMultipartUploads",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "PutBucketEncryption": "PutEncryptionConfiguration",
    "PutBucketLifecycleConfiguration": "PutLifecycleConfiguration",
    "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
}
DENIED_CODE = {"lambda": "AccessDeniedException", "logs": "AccessDeniedException"}  # the others: AccessDenied


@dataclass(frozen=True)
class Request:
    """One permission a call needs: what IAM evaluates."""

    action: str
    resource: str
    keys: dict[str, str] = field(default_factory=dict)  # condition keys the request carries


@dataclass
class Enforcer:
    policy: dict[str, Any] | None = None  # None: not enforcing
    checked: list[Request] = field(default_factory=list)  # every permission evaluated, allowed or not
    refused: list[Request] = field(default_factory=list)
    region: str = "us-east-1"

    def allows(self, request: Request) -> bool:
        assert self.policy is not None
        return any(_statement_allows(statement, request) for statement in self.policy["Statement"])

    def keep_params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["enforced_params"] = dict(params)

    def before_call(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if self.policy is None:
            return None
        service = model.service_model.service_name
        if service == "sts" and model.name == "GetCallerIdentity":
            return None  # AWS allows it to every caller
        for request in needs(service, model, context.get("enforced_params", {}), self.region):
            self.checked.append(request)
            if not self.allows(request):
                self.refused.append(request)
                return _denied(service, model.name, request)
        return None


def _statement_allows(statement: dict[str, Any], request: Request) -> bool:
    if statement.get("Effect") != "Allow":
        return False
    actions = _listed(statement.get("Action"))
    resources = _listed(statement.get("Resource"))
    if not any(fnmatchcase(request.action.lower(), action.lower()) for action in actions):
        return False
    if not any(fnmatchcase(request.resource, resource) for resource in resources):
        return False
    for operator, values in statement.get("Condition", {}).items():
        assert operator == "StringEquals", f"this evaluator knows StringEquals only, not {operator}"
        for key, wanted in values.items():
            if request.keys.get(key) not in _listed(wanted):
                return False
    return True


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def needs(service: str, model: Any, params: dict[str, Any], region: str) -> list[Request]:
    """The permissions a call needs, its resource and condition keys worked out from the call."""
    operation = model.name
    if service == "s3":
        bucket = f"arn:aws:s3:::{params.get('Bucket', '')}"
        resource = f"{bucket}/{params['Key']}" if "Key" in params else bucket
        return [Request(f"s3:{S3_ACTIONS.get(operation, operation)}", resource)]
    if service == "lambda":
        name = str(params.get("FunctionName", ""))
        function = name if name.startswith("arn:") else f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"
        qualifier = params.get("Qualifier")
        action = "lambda:InvokeFunction" if operation == "Invoke" else f"lambda:{operation}"
        wanted = [Request(action, f"{function}:{qualifier}" if qualifier else function)]
        if params.get("Role"):  # CreateFunction, UpdateFunctionConfiguration hand the role to Lambda
            passed = {"iam:PassedToService": "lambda.amazonaws.com"}
            wanted.append(Request("iam:PassRole", str(params["Role"]), passed))
        return wanted
    if service == "iam":
        return [Request(f"iam:{operation}", f"arn:aws:iam::{ACCOUNT}:role/{params.get('RoleName', '')}")]
    if service == "logs":
        group = params.get("logGroupName") or params.get("logGroupIdentifier")
        if operation == "DescribeLogGroups":
            resource = f"arn:aws:logs:{region}:{ACCOUNT}:log-group:*"
        elif "resourceArn" in params:
            resource = str(params["resourceArn"])
        else:
            resource = f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{group}:*"
        return [Request(f"logs:{operation}", resource)]
    if service in ("apigateway", "apigatewayv2"):
        return [_api_gateway(service, model, params, region)]
    if service == "ssm":  # a parameter's ARN has no slash of its own before the name's
        name = str(params.get("Name", "")).split(":")[0].lstrip("/")
        return [Request(f"ssm:{operation}", f"arn:aws:ssm:{region}:{ACCOUNT}:parameter/{name}")]
    if service == "acm":  # a certificate's own ARN; listing and requesting have no resource
        return [Request(f"acm:{operation}", str(params.get("CertificateArn", "*")))]
    if service == "route53":  # a zone's; listing the zones has none
        zone_id = str(params.get("HostedZoneId", "")).rsplit("/", 1)[-1]
        return [Request(f"route53:{operation}", f"arn:aws:route53:::hostedzone/{zone_id}" if zone_id else "*")]
    return [Request(f"{service}:{operation}", "*")]


def _api_gateway(service: str, model: Any, params: dict[str, Any], region: str) -> Request:
    """API Gateway's action is the HTTP method; its resource the request's path (an HTTP API's without its /v2);
    an API's tags are its condition keys (ABAC: what is in an API carries the API's tags), a create's tags are the
    request's."""
    from moto.apigateway.models import apigateway_backends
    from moto.apigatewayv2.models import apigatewayv2_backends

    path = model.http["requestUri"].split("?")[0].removeprefix("/v2")
    members = model.input_shape.members if model.input_shape else {}
    for name, shape in members.items():
        location = shape.serialization.get("name", name)
        if shape.serialization.get("location") == "uri" and name in params:
            path = path.replace(f"{{{location}}}", quote(str(params[name]), safe=""))
    keys: dict[str, str] = {}
    if model.name in ("CreateRestApi", "CreateApi"):
        requested = params.get("tags") or params.get("Tags") or {}
        keys |= {f"aws:RequestTag/{key}": value for key, value in requested.items()}
    tags: dict[str, str] = {}
    if params.get("restApiId"):
        api = apigateway_backends[ACCOUNT][region].apis.get(params["restApiId"])
        tags = getattr(api, "tags", None) or {}
    elif params.get("ApiId"):  # moto keeps an HTTP API's tags in its backend's tagger
        backend = apigatewayv2_backends[ACCOUNT][region]
        api = backend.apis.get(params["ApiId"])
        tags = backend.get_tags(api.arn) if api is not None else {}
    keys |= {f"aws:ResourceTag/{key}": value for key, value in tags.items()}
    return Request(f"apigateway:{model.http['method']}", f"arn:aws:apigateway:{region}::{path}", keys)


def _denied(service: str, operation: str, request: Request) -> tuple[AWSResponse, dict[str, Any]]:
    """AWS's answer: S3's HEAD has no body ("403"), S3 quotes the ARN, the others name it as it is."""
    if service == "s3" and operation.startswith("Head"):
        error = {"Code": "403", "Message": "Forbidden"}
    else:
        resource = f'"{request.resource}"' if service == "s3" else request.resource
        message = (
            f"User: {USER} is not authorized to perform: {request.action} on resource: {resource} because no "
            f"identity-based policy allows the {request.action} action"
        )
        error = {"Code": DENIED_CODE.get(service, "AccessDenied"), "Message": message}
    body = json.dumps({"message": error["Message"]}).encode()
    response = AWSResponse("https://denied.invalid/", 403, {}, RawBody(body))  # type: ignore[arg-type]
    return response, {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 403}}


@contextmanager
def enforcing(enforcer: Enforcer) -> Iterator[Enforcer]:
    """Every session made from now on (the CLI's own) goes through `enforcer`."""
    from botocore.handlers import BUILTIN_HANDLERS

    entries = [("before-parameter-build", enforcer.keep_params), ("before-call", enforcer.before_call)]
    for entry in reversed(entries):
        BUILTIN_HANDLERS.insert(0, entry)
    try:
        yield enforcer
    finally:
        for entry in entries:
            BUILTIN_HANDLERS.remove(entry)


def without(policy: dict[str, Any], action: str) -> dict[str, Any]:
    """The policy less one action (a statement left with none is dropped)."""
    statements = []
    for statement in policy["Statement"]:
        kept = [name for name in _listed(statement["Action"]) if name != action]
        if kept:
            statements.append({**statement, "Action": kept})
    return {**policy, "Statement": statements}


NEEDS_LINE = re.compile(r"needs (\S+) on (\S+);")
