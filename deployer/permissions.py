"""Every AWS call deployer makes, per command, and the resource it acts on: one table, and the IAM policy made from it.

`CALLS` is the table. Each row names the step module that makes the calls (documentation, and where to look), the
service (botocore's name), the API operations, the kinds of resource they act on (RESOURCE_KINDS: ARN patterns of
this app's stage), the commands that make them, and `when`, the rare path that makes them (None: the common path of
the command, which the tests' deploy flows exercise). `policy_document` turns the rows for some commands into an IAM
policy scoped to the stage's ARNs; `needed` turns one refused call into the action and resource to grant.

The table cannot drift from the code: tests/test_permissions.py runs the deploy flows recording every (service,
operation) the clients send, per command, and fails on any call the table does not list for that command; and it
runs them as a user holding exactly the policy this module prints.

IAM's action names mostly equal the operation's; the exceptions are named below (S3_ACTIONS, LAMBDA_ACTIONS), and
API Gateway's actions are its HTTP methods (`apigateway:GET` on `arn:aws:apigateway:R::/restapis/*`), taken from
botocore's model of each operation.

New front doors (an HTTP API, a function URL) add their rows here, next to the REST API's: see "Front doors".
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployer.config import Config

COMMANDS = ("plan", "up", "rollback", "promote", "logs", "down")
UP_LIKE = frozenset({"up", "promote"})  # promote is `up` on another stage, with the artifact already in S3
LOCKED = frozenset({"up", "rollback", "promote", "down"})  # the commands that take the state lock and write the state
DOMAIN, SECRETS, KMS_KEY = "a custom domain ([api] domain)", "[function.secrets]", "[function] kms_key_arn"
STAGE_ROLE = "[stages.S] role_arn"
REST_API, HTTP_API, FUNCTION_URL = '[api] type = "rest"', '[api] type = "http"', '[api] type = "url"'


@dataclass(frozen=True)
class Calls:
    """One row of the table: `operations` of `service`, on `resources` (RESOURCE_KINDS), made by `commands`."""

    module: str  # the module making the calls
    service: str  # botocore's service name
    operations: tuple[str, ...]
    resources: tuple[str, ...]
    commands: frozenset[str]
    when: str | None = None  # a rare path only (repairs, pruning, large uploads); None: every run of the commands
    needs: str | None = None  # DOMAIN, SECRETS, KMS_KEY, or a front door: only for a stage with that configured
    condition: dict[str, dict[str, str]] | None = None  # {operator: {key: value}}, values formatted as resources


ALL = frozenset(COMMANDS)
READS = frozenset({"plan", "up", "promote"})  # the commands that compute a plan (reads only)
_API_TAG = {"StringEquals": {"aws:ResourceTag/deployer:app": "{app}"}}
_API_TAG_ON_CREATE = {"StringEquals": {"aws:RequestTag/deployer:app": "{app}"}}

CALLS: tuple[Calls, ...] = (
    # The shared state and its lock (remote_state.py): the state's object read by all, written under the lock.
    Calls("remote_state", "s3", ("GetObject",), ("state",), ALL - {"logs"}),
    Calls("remote_state", "s3", ("PutObject", "DeleteObject"), ("state",), LOCKED),
    # The artifact (resources/artifact.py) and its bucket (bucket.py), made private and encrypted if missing.
    Calls("artifact", "s3", ("HeadObject",), ("artifacts",), READS),
    Calls("artifact", "s3", ("PutObject",), ("artifacts",), frozenset({"up"})),
    Calls(
        "artifact",
        "s3",
        ("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"),
        ("artifacts",),
        frozenset({"up"}),
        when="an artifact of 16 MB or more (uploaded in parts)",
    ),
    Calls(
        "artifact",
        "s3",
        ("ListMultipartUploads",),
        ("bucket",),
        frozenset({"up", "down"}),
        when="every up and down, but a refusal is let pass: it only looks for a killed run's upload to abort",
    ),
    Calls(
        "artifact",
        "s3",
        ("AbortMultipartUpload",),
        ("artifacts",),
        frozenset({"up", "down"}),
        when="a killed run's upload",
    ),
    Calls(
        "artifact", "s3", ("HeadBucket", "ListObjectsV2"), ("bucket",), READS | {"rollback"}, when="a release to find"
    ),
    Calls(
        "bucket",
        "s3",
        ("CreateBucket", "PutBucketEncryption", "PutBucketLifecycleConfiguration", "PutPublicAccessBlock"),
        ("bucket", "state_bucket"),
        frozenset({"up"}),
    ),
    # The execution role (resources/role.py), and passing it to Lambda (resources/function.py).
    Calls("role", "iam", ("GetRole", "ListAttachedRolePolicies", "ListRolePolicies"), ("role",), READS),
    Calls("role", "iam", ("GetRole", "ListAttachedRolePolicies"), ("role",), frozenset({"down"})),
    Calls("role", "iam", ("CreateRole", "AttachRolePolicy"), ("role",), UP_LIKE),
    Calls(
        "role",
        "iam",
        ("UpdateAssumeRolePolicy", "TagRole", "DeleteRolePolicy", "DetachRolePolicy"),
        ("role",),
        UP_LIKE,
        when="a role changed by hand, or used in another region",
    ),
    Calls("role", "iam", ("DetachRolePolicy", "DeleteRole"), ("role",), frozenset({"down"})),
    Calls(
        "role",
        "iam",
        ("TagRole", "ListRolePolicies", "DeleteRolePolicy"),
        ("role",),
        frozenset({"down"}),
        when="a role used in another region, or with policies added by hand",
    ),
    # The log group (resources/log_group.py); `logs` reads it.
    Calls("log_group", "logs", ("DescribeLogGroups",), ("log_groups",), READS | {"down"}),
    Calls("log_group", "logs", ("CreateLogGroup", "PutRetentionPolicy"), ("log_group",), UP_LIKE),
    Calls("log_group", "logs", ("ListTagsForResource", "DeleteLogGroup"), ("log_group",), frozenset({"down"})),
    Calls("operate", "logs", ("FilterLogEvents",), ("log_group",), frozenset({"logs"})),
    # The function, its versions and its alias (resources/function.py, version.py, alias.py, prune.py, check.py).
    Calls("function", "lambda", ("GetFunction", "ListVersionsByFunction", "GetAlias"), ("function",), READS),
    Calls("function", "lambda", ("GetFunction",), ("function",), frozenset({"down"})),
    Calls(
        "function",
        "lambda",
        ("CreateFunction", "UpdateFunctionCode", "PublishVersion", "CreateAlias", "UpdateAlias", "Invoke"),
        ("function",),
        UP_LIKE,
    ),
    Calls(
        "function",
        "lambda",
        ("UpdateFunctionConfiguration", "ListTags", "TagResource"),
        ("function",),
        UP_LIKE,
        when="a release with another configuration, or a function tagged by hand",
    ),
    Calls(
        "prune",
        "lambda",
        ("ListAliases", "DeleteFunction"),
        ("function",),
        UP_LIKE,
        when="more releases than [releases] keep",
    ),
    Calls("deploy", "lambda", ("ListVersionsByFunction", "UpdateAlias"), ("function",), frozenset({"rollback"})),
    Calls(
        "deploy",
        "lambda",
        ("GetFunction", "UpdateFunctionCode", "UpdateFunctionConfiguration", "PublishVersion", "Invoke"),
        ("function",),
        frozenset({"rollback"}),
        when="a pruned release, published again",
    ),
    Calls("function", "lambda", ("DeleteFunction",), ("function",), frozenset({"down"})),
    Calls(
        "function",
        "iam",
        ("PassRole",),
        ("role",),
        UP_LIKE,
        condition={"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
    ),
    # The grant to API Gateway (resources/permission.py).
    Calls("permission", "lambda", ("GetPolicy",), ("function",), READS),
    Calls("permission", "lambda", ("AddPermission",), ("function",), UP_LIKE),
    Calls(
        "permission",
        "lambda",
        ("RemovePermission",),
        ("function",),
        UP_LIKE,
        when="a grant changed by hand, or a stack from before aliases",
    ),
    # Front doors: a stage has one ([api] type); switching from one to another needs both types' policies. `down`
    # looks for the app's REST API by name whatever the type.
    # The REST API (resources/rest_api.py, stage.py): API Gateway takes no narrower ARN than an API's path, and no
    # API's ID is known before it exists: reads by region, changes to an API tagged as this app's.
    Calls("rest_api", "apigateway", ("GetRestApis",), ("rest_apis",), frozenset({"down"})),
    Calls(
        "rest_api",
        "apigateway",
        ("GetRestApis", "GetRestApi", "GetResources", "GetStages", "GetDeployment"),
        ("rest_apis", "rest_api_parts"),
        READS | {"rollback", "down"},
        needs=REST_API,
    ),
    Calls(
        "rest_api",
        "apigateway",
        ("CreateRestApi",),
        ("rest_apis",),
        UP_LIKE,
        needs=REST_API,
        condition=_API_TAG_ON_CREATE,
    ),
    Calls(
        "rest_api",
        "apigateway",
        ("CreateResource", "PutMethod", "PutIntegration", "CreateDeployment"),
        ("rest_api_parts",),
        UP_LIKE,
        needs=REST_API,
        condition=_API_TAG,
    ),
    Calls(
        "rest_api",
        "apigateway",
        ("UpdateRestApi", "UpdateMethod"),
        ("rest_api_parts",),
        UP_LIKE,
        when="an API changed by hand",
        needs=REST_API,
        condition=_API_TAG,
    ),
    Calls(
        "rest_api",
        "apigateway",
        ("TagResource",),
        ("api_tags",),
        UP_LIKE,
        when="an API found without its tags",
        needs=REST_API,
    ),
    Calls(
        "rest_api",
        "apigateway",
        ("DeleteRestApi",),
        ("rest_api_parts",),
        frozenset({"down"}),
        needs=REST_API,
        condition=_API_TAG,
    ),
    # An HTTP API ([api] type = "http", resources/http_api.py): as the REST API's, by region and the app's tag.
    Calls(
        "http_api",
        "apigatewayv2",
        ("GetApis", "GetApi", "GetIntegrations", "GetRoutes", "GetStages"),
        ("http_apis", "http_api_parts"),
        READS | {"down"},
        needs=HTTP_API,
    ),
    Calls(
        "http_api",
        "apigatewayv2",
        ("CreateApi",),
        ("http_apis",),
        UP_LIKE,
        needs=HTTP_API,
        condition=_API_TAG_ON_CREATE,
    ),
    Calls(
        "http_api",
        "apigatewayv2",
        ("CreateIntegration", "CreateRoute", "CreateStage"),
        ("http_api_parts",),
        UP_LIKE,
        needs=HTTP_API,
        condition=_API_TAG,
    ),
    Calls(
        "http_api",
        "apigatewayv2",
        ("UpdateApi", "DeleteCorsConfiguration", "UpdateIntegration", "UpdateRoute", "UpdateStage"),
        ("http_api_parts",),
        UP_LIKE,
        when="a changed [api] cors, or an API changed by hand",
        needs=HTTP_API,
        condition=_API_TAG,
    ),
    Calls(
        "http_api",
        "apigatewayv2",
        ("TagResource",),
        ("api_tags",),
        UP_LIKE,
        when="an API found without its tags",
        needs=HTTP_API,
    ),
    Calls(
        "http_api",
        "apigatewayv2",
        ("DeleteApi",),
        ("http_api_parts",),
        frozenset({"down"}),
        needs=HTTP_API,
        condition=_API_TAG,
    ),
    # A function URL ([api] type = "url", resources/function_url.py): the function's alias's own URL.
    Calls("function_url", "lambda", ("GetFunctionUrlConfig",), ("function",), READS, needs=FUNCTION_URL),
    Calls("function_url", "lambda", ("CreateFunctionUrlConfig",), ("function",), UP_LIKE, needs=FUNCTION_URL),
    Calls(
        "function_url",
        "lambda",
        ("UpdateFunctionUrlConfig", "DeleteFunctionUrlConfig"),
        ("function",),
        UP_LIKE | {"down"},
        when="a changed [api] auth or cors, or a switch to another front door",
        needs=FUNCTION_URL,
    ),
    # A custom domain (resources/domain.py, dns.py): ACM and Route 53 give no narrower ARN before a thing exists.
    Calls("domain", "acm", ("ListCertificates", "RequestCertificate"), ("any",), UP_LIKE | {"down"}, needs=DOMAIN),
    Calls(
        "domain",
        "acm",
        ("DescribeCertificate", "ListTagsForCertificate", "DeleteCertificate"),
        ("certificates",),
        UP_LIKE | {"down", "plan"},
        needs=DOMAIN,
    ),
    Calls(
        "domain",
        "apigateway",
        ("GetDomainName", "GetBasePathMappings"),
        ("domain_names",),
        READS | {"down"},
        needs=DOMAIN,
    ),
    Calls(
        "domain",
        "apigateway",
        (
            "CreateDomainName",
            "UpdateDomainName",
            "DeleteDomainName",
            "CreateBasePathMapping",
            "UpdateBasePathMapping",
            "DeleteBasePathMapping",
        ),
        ("domain_names",),
        UP_LIKE | {"down"},
        needs=DOMAIN,
    ),
    Calls(
        "domain",
        "apigatewayv2",
        ("GetApiMappings", "CreateApiMapping"),
        ("domain_names",),
        UP_LIKE | {"down", "plan"},
        when="an HTTP API behind the domain",
        needs=DOMAIN,
    ),
    Calls("dns", "route53", ("ListHostedZones",), ("any",), UP_LIKE | {"down", "plan"}, needs=DOMAIN),
    Calls(
        "dns",
        "route53",
        ("ListResourceRecordSets", "ChangeResourceRecordSets"),
        ("hosted_zones",),
        UP_LIKE | {"down", "plan"},
        needs=DOMAIN,
    ),
    # Secrets by reference (secrets.py): read at deploy time, with their versions.
    Calls("secrets", "ssm", ("GetParameter",), ("parameters",), READS | {"rollback"}, needs=SECRETS),
    Calls("secrets", "secretsmanager", ("GetSecretValue",), ("secrets",), READS | {"rollback"}, needs=SECRETS),
    # The function's own KMS key for its environment: Lambda uses it on the caller's behalf (as it passes the role).
    Calls(
        "function", "kms", ("Encrypt", "Decrypt", "CreateGrant"), ("kms_key",), UP_LIKE | {"rollback"}, needs=KMS_KEY
    ),
    # A stage in its own account (credentials.py): every command first assumes the stage's role, so credentials that
    # are not that role (a CI role made by `ci bootstrap`) need this to get in; the role itself holds the rest.
    Calls("credentials", "sts", ("AssumeRole",), ("stage_role",), ALL, needs=STAGE_ROLE),
)

# IAM's action where it is not "<service>:<operation>".
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
LAMBDA_ACTIONS = {"Invoke": "InvokeFunction"}


@cache
def _api_gateway_method(service: str, operation: str) -> str:
    """API Gateway's IAM action (REST and HTTP APIs alike) is the HTTP method of the operation: botocore's model
    knows it."""
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    return str(model.operation_model(operation).http["method"])


def iam_action(service: str, operation: str) -> str:
    """The IAM action a call of `service`'s `operation` needs (PassRole is a permission, not an operation)."""
    if service in ("apigateway", "apigatewayv2"):
        return f"apigateway:{_api_gateway_method(service, operation)}"
    if service == "s3":
        return f"s3:{S3_ACTIONS.get(operation, operation)}"
    if service == "lambda":
        return f"lambda:{LAMBDA_ACTIONS.get(operation, operation)}"
    return f"{service}:{operation}"


def resource_arns(kind: str, config: Config, account_id: str, region: str) -> tuple[str, ...]:
    """The ARN patterns of a resource kind, for this stage of this app."""
    partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
    function = f"arn:{partition}:lambda:{region}:{account_id}:function:{config.function_name}"
    log_group = f"arn:{partition}:logs:{region}:{account_id}:log-group:{config.log_group}"
    api_gateway = f"arn:{partition}:apigateway:{region}::"
    state_bucket = config.state_bucket or config.bucket
    arns: dict[str, tuple[str, ...]] = {
        "function": (function, f"{function}:*"),  # and its versions and alias
        "role": (f"arn:{partition}:iam::{account_id}:role/{config.role_name}",),
        "log_group": (log_group, f"{log_group}:*"),
        "log_groups": (f"arn:{partition}:logs:{region}:{account_id}:log-group:*",),  # DescribeLogGroups takes no name
        "bucket": (f"arn:{partition}:s3:::{config.bucket}",),
        "artifacts": (f"arn:{partition}:s3:::{config.bucket}/v*/{config.artifact_name}",),
        "state_bucket": (f"arn:{partition}:s3:::{state_bucket}",),
        "state": (f"arn:{partition}:s3:::{state_bucket}/{config.state_prefix}{config.app_name}/{config.stage}/*",),
        "rest_apis": (f"{api_gateway}/restapis",),  # the list: GetRestApis, CreateRestApi
        "rest_api_parts": (f"{api_gateway}/restapis/*",),  # an API and everything in it
        "api_tags": (f"{api_gateway}/tags/*",),
        "http_apis": (f"{api_gateway}/apis",),  # an HTTP API's IAM resources have no /v2 of the request's path
        "http_api_parts": (f"{api_gateway}/apis/*",),
        "domain_names": (f"{api_gateway}/domainnames", f"{api_gateway}/domainnames/*"),
        "certificates": (f"arn:{partition}:acm:*:{account_id}:certificate/*",),  # an EDGE domain's is in us-east-1
        "hosted_zones": (f"arn:{partition}:route53:::hostedzone/*", f"arn:{partition}:route53:::change/*"),
        "any": ("*",),  # ListCertificates, RequestCertificate, ListHostedZones: no resource-level permissions
        "parameters": tuple(_secret_arns(config, "ssm", partition, account_id, region)),
        "secrets": tuple(_secret_arns(config, "secretsmanager", partition, account_id, region)),
        "kms_key": (config.kms_key_arn,) if config.kms_key_arn else (),
        "stage_role": (config.role_arn,) if config.role_arn else (),
    }
    return arns[kind]


def _secret_arns(config: Config, kind: str, partition: str, account_id: str, region: str) -> Iterable[str]:
    from deployer.secrets import parse

    for text in sorted(set(config.secrets.values())):
        reference = parse(text)
        if reference.kind != kind:
            continue
        if reference.name.startswith("arn:"):
            yield reference.name if kind == "ssm" else f"{reference.name}*"
        elif kind == "ssm":
            yield f"arn:{partition}:ssm:{region}:{account_id}:parameter/{reference.name.lstrip('/')}"
        else:  # a secret's ARN ends in a random six characters
            yield f"arn:{partition}:secretsmanager:{region}:{account_id}:secret:{reference.name}-??????"


def rows_for(config: Config, commands: Collection[str] = COMMANDS) -> list[Calls]:
    """The rows of the table that apply to this stage's configuration and these commands."""
    unknown = set(commands) - set(COMMANDS)
    if unknown:
        raise ValueError(f"unknown commands: {sorted(unknown)}")
    wanted = set(commands)
    front_door = config.api_type  # [api] type: rest (the default), http or url
    configured = {
        DOMAIN: config.domain is not None,
        SECRETS: bool(config.secrets),
        KMS_KEY: bool(config.kms_key_arn),
        STAGE_ROLE: bool(config.role_arn),
        REST_API: front_door == "rest",
        HTTP_API: front_door == "http",
        FUNCTION_URL: front_door == "url",
    }
    return [row for row in CALLS if row.commands & wanted and (row.needs is None or configured[row.needs])]


def policy_document(
    config: Config, account_id: str, region: str, commands: Collection[str] = COMMANDS
) -> dict[str, Any]:
    """The least-privilege IAM policy for running `commands` on the stage of `config`: one statement per set of
    resources (and condition), its actions sorted; the same input gives the same document, byte for byte."""
    Statement = tuple[tuple[str, ...], str]  # the resource kinds and the condition (as text)
    actions: dict[Statement, set[str]] = {}
    conditions: dict[Statement, dict[str, dict[str, str]] | None] = {}
    for row in rows_for(config, commands):
        condition = _formatted(row.condition, config)
        key = (row.resources, repr(condition))
        conditions[key] = condition
        actions.setdefault(key, set()).update(iam_action(row.service, name) for name in row.operations)
    statements = []
    for key in sorted(actions, key=lambda item: (sorted(actions[item])[0], item)):
        kinds, _ = key
        arns = list(dict.fromkeys(arn for kind in kinds for arn in resource_arns(kind, config, account_id, region)))
        if not arns:  # no secret of that kind
            continue
        statement: dict[str, Any] = {
            "Sid": _sid(kinds, conditions[key]),
            "Effect": "Allow",
            "Action": sorted(actions[key]),
            "Resource": arns if len(arns) > 1 else arns[0],
        }
        if conditions[key]:
            statement["Condition"] = conditions[key]
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


def _formatted(condition: dict[str, dict[str, str]] | None, config: Config) -> dict[str, dict[str, str]] | None:
    if condition is None:
        return None
    return {
        operator: {key: value.format(app=config.app_name) for key, value in values.items()}
        for operator, values in condition.items()
    }


def _sid(kinds: tuple[str, ...], condition: dict[str, dict[str, str]] | None) -> str:
    """A statement id IAM accepts (letters and digits) that says what the statement is for: "RestApiParts",
    "RestApisRequestTag" (its resources, and the condition's key)."""
    words = [*kinds, *(key.split(":")[1].split("/")[0] for values in (condition or {}).values() for key in values)]
    return "".join(word[:1].upper() + word[1:] for part in words for word in re.split(r"_", part))


def needed(service: str, operation: str, message: str, params: dict[str, Any], region: str) -> tuple[str, str]:
    """What a refused call needs: the IAM action and the resource AWS's message names ("... is not authorized to
    perform: iam:PassRole on resource: arn:..."; CreateFunction needs iam:PassRole too); else the action of the
    operation and the resource the call was about (from its parameters, as the table's ARN patterns write it; an
    account AWS did not say is "*"), else "*"."""
    named_action = NAMED_ACTION.search(message)
    action = named_action.group(1) if named_action else iam_action(service, operation)
    named = NAMED_RESOURCE.search(message)
    if named:
        return action, named.group(1).strip('"').rstrip(".")  # S3 quotes the ARN
    return action, _resource_of(service, params, region) or "*"


NAMED_ACTION = re.compile(r"not authorized to perform:? ([a-z0-9-]+:[A-Za-z0-9*]+)")
NAMED_RESOURCE = re.compile(r"on resource:? (\S+(?: \S+)??)(?: because\b|\s*$|[,;] )")


def _resource_of(service: str, params: dict[str, Any], region: str) -> str | None:
    """The ARN a call's parameters name, as the table writes it (account "*" when the call does not say it)."""
    partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
    if service == "s3" and params.get("Bucket"):
        key = params.get("Key")
        return f"arn:{partition}:s3:::{params['Bucket']}" + (f"/{key}" if key else "")
    if service == "lambda" and params.get("FunctionName"):
        name = str(params["FunctionName"])
        arn = name if name.startswith("arn:") else f"arn:{partition}:lambda:{region}:*:function:{name}"
        return f"{arn}:{params['Qualifier']}" if params.get("Qualifier") else arn
    if service == "iam" and params.get("RoleName"):
        return f"arn:{partition}:iam::*:role/{params['RoleName']}"
    if service == "logs" and params.get("logGroupName"):
        return f"arn:{partition}:logs:{region}:*:log-group:{params['logGroupName']}:*"
    if service == "apigateway":
        return f"arn:{partition}:apigateway:{region}::/restapis" + (
            f"/{params['restApiId']}" if params.get("restApiId") else ""
        )
    if service == "apigatewayv2":
        return f"arn:{partition}:apigateway:{region}::/apis" + (f"/{params['ApiId']}" if params.get("ApiId") else "")
    return None
