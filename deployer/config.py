"""Load and check `deploy.toml` (its shape: README, "deploy.toml") before anything touches AWS.

Every field is described once in SCHEMA: its type, its default (or REQUIRED) and a check. Unknown
keys, wrong types and failed checks are UsageErrors that name the key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deployer.errors import UsageError

REQUIRED = object()

# Runtimes Lambda accepts for new functions; the ones it has retired are refused by name below.
PYTHON_RUNTIMES = ("python3.11", "python3.12", "python3.13", "python3.14")
NODE_RUNTIMES = ("nodejs22.x", "nodejs24.x")
RUNTIMES = PYTHON_RUNTIMES + NODE_RUNTIMES
RETIRED_RUNTIME = re.compile(r"^(python2\.7|python3\.[0-9]|python3\.10|nodejs[0-9]*(\.[0-9]+)?|nodejs(1[0-9]|20)\.x)$")

VERSION_PATTERN = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$")


def check_version(version: str) -> str:
    """A version names an S3 prefix `v{version}/`, so it must be a plain, short token."""
    if not VERSION_PATTERN.fullmatch(version) or ".." in version:
        raise UsageError(
            f"invalid version {version!r}: use 1 to 64 letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit (for example 1.0.0)"
        )
    return version


def _pattern(regex: str, hint: str) -> Callable[[Any], str | None]:
    compiled = re.compile(regex)
    return lambda value: None if compiled.fullmatch(value) else hint


def _between(low: int, high: int) -> Callable[[Any], str | None]:
    return lambda value: None if low <= value <= high else f"must be between {low} and {high}"


def _runtime(value: str) -> str | None:
    if value in RUNTIMES:
        return None
    if RETIRED_RUNTIME.fullmatch(value):
        return f"{value!r} is retired: Lambda no longer accepts it; use one of {', '.join(RUNTIMES)}"
    return f"unknown runtime {value!r}; use one of {', '.join(RUNTIMES)}"


STAGE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _stage_name(value: str) -> str | None:
    """A stage names the API's stage and the function's alias: Lambda refuses an alias made of digits only."""
    if not STAGE_NAME.fullmatch(value) or value.isdigit():
        return "must be 1-64 letters, digits, '-' or '_', not only digits (e.g. test, prod)"
    return None


# Names Lambda sets itself and refuses in a function's environment.
RESERVED_VARIABLES = frozenset(
    {
        "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
    }
)  # fmt: skip
ENVIRONMENT_LIMIT = 4096  # bytes: Lambda's limit on all of a function's variables, names and values together
HANDLER_LIMIT = 128
# S3's rules for general purpose bucket names, beyond the characters and the length.
BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
IP_ADDRESS = re.compile(r"\d{1,3}(\.\d{1,3}){3}")


def _bucket(value: str) -> str | None:
    """S3's naming rules: a name S3 refuses is refused here, before anything is created."""
    rule = None
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", value):
        rule = "3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
    elif ".." in value:
        rule = "no two dots in a row"
    elif IP_ADDRESS.fullmatch(value):
        rule = "not an IP address"
    elif value.startswith(BUCKET_PREFIXES):
        rule = f"not starting with {', '.join(BUCKET_PREFIXES)}"
    elif value.endswith(BUCKET_SUFFIXES):
        rule = f"not ending with {', '.join(BUCKET_SUFFIXES)}"
    return f"{value!r} is not a valid S3 bucket name ({rule}); choose another" if rule else None


def _handler(value: str) -> str | None:
    """`module.function`, the module a path inside the source folder: Lambda takes 128 characters at most."""
    if len(value) > HANDLER_LIMIT:
        return f"is {len(value)} characters; Lambda takes at most {HANDLER_LIMIT}"
    if not re.fullmatch(r"[A-Za-z0-9_/.-]+\.[A-Za-z_$][A-Za-z0-9_$]*", value):
        return "must look like module.function, e.g. main.handler"
    module = value.rsplit(".", 1)[0]
    if module.startswith("/") or ".." in module.split("/") or "/./" in f"/{module}/":
        return "must name a module inside the source folder (no absolute path, no '..')"
    return None


# The retention periods CloudWatch Logs accepts (PutRetentionPolicy's retentionInDays), in days.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653
)  # fmt: skip


def _retention(value: int) -> str | None:
    if value in LOG_RETENTION_DAYS:
        return None
    return f"is {value}, which CloudWatch Logs does not accept; use one of {', '.join(map(str, LOG_RETENTION_DAYS))}"


DOMAIN_ENDPOINTS = ("REGIONAL", "EDGE")
EDGE_CERTIFICATE_REGION = "us-east-1"  # CloudFront, which serves EDGE domain names, takes certificates from there only
DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def _dns_name(value: str) -> str | None:
    """A custom domain is a host name ACM can certify: lowercase labels of letters, digits and '-', two or more."""
    labels = value.split(".")
    if len(value) > 253 or len(labels) < 2 or not all(DNS_LABEL.fullmatch(label) for label in labels):
        return (
            f"{value!r} is not a DNS name: use lowercase labels of letters, digits and '-' (at most 63 characters "
            "each) joined by dots, such as api.example.com"
        )
    if labels[-1].isdigit():
        return f"{value!r} is an IP address, not a DNS name: use a name such as api.example.com"
    return None


def _globs(value: list[Any]) -> str | None:
    if not all(isinstance(item, str) and item.strip() for item in value):
        return 'must be a list of glob patterns such as ["*.md", "tests/"]'
    return None


def _media_types(value: list[Any]) -> str | None:
    # API Gateway's own rule: type/subtype, either part may be *, at most 25 (a quota it enforces).
    if len(value) > 25 or not all(
        isinstance(item, str) and re.fullmatch(r"[\w.+*-]+/[\w.+*-]+", item) for item in value
    ):
        return 'must be a list of at most 25 media types such as ["*/*"] or ["image/png", "application/pdf"]'
    return None


def _variable_name(key: str) -> str | None:
    """A variable Lambda lets a function set: not one it reserves, and a plain name."""
    if key in RESERVED_VARIABLES:
        return f"sets {key}, which Lambda reserves for itself; rename the variable"
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", key):
        return f"has an invalid variable name {key!r}"
    return None


def _environment(value: dict[str, Any]) -> str | None:
    for key, item in value.items():
        problem = _variable_name(key)
        if problem:
            return problem
        if not isinstance(item, str):
            return f"value of {key} must be a string"
    return None


# ---- the front door: [api] type, auth, cors (issue 26) ----
API_TYPES = ("rest", "http", "url")
URL_AUTH_TYPES = {"none": "NONE", "iam": "AWS_IAM"}  # [api] auth -> the function URL's AuthType
# [api] cors keys -> the CORS settings' names, which Lambda's function URL (Cors) and API Gateway's HTTP API
# (CorsConfiguration) share.
CORS_KEYS = {
    "allow_origins": "AllowOrigins",
    "allow_methods": "AllowMethods",
    "allow_headers": "AllowHeaders",
    "expose_headers": "ExposeHeaders",
    "max_age": "MaxAge",
    "allow_credentials": "AllowCredentials",
}
CORS_MAX_AGE = 86400  # Lambda's and API Gateway's upper bound, in seconds


def _cors(value: dict[str, Any]) -> str | None:
    for key, item in value.items():
        if key not in CORS_KEYS:
            return f"has unknown key {key!r}; known keys: {', '.join(CORS_KEYS)}"
        if key == "max_age":
            if not isinstance(item, int) or isinstance(item, bool) or not 0 <= item <= CORS_MAX_AGE:
                return f"max_age must be a number of seconds from 0 to {CORS_MAX_AGE}"
        elif key == "allow_credentials":
            if not isinstance(item, bool):
                return "allow_credentials must be true or false"
        elif not isinstance(item, list) or not all(isinstance(entry, str) and entry.strip() for entry in item):
            return f'{key} must be a list of non-empty strings, such as ["https://example.com"]'
    return None


def _secrets(value: dict[str, Any]) -> str | None:
    """NAME = reference: the variable must be one Lambda lets us set, the reference one deployer can read."""
    from deployer.secrets import reference_problem

    for key, item in value.items():
        name_problem = _variable_name(key)
        if name_problem:
            return name_problem
        if not isinstance(item, str):
            return f'reference of {key} must be a string such as "ssm:/app/prod/db"'
        problem = reference_problem(item)
        if problem:
            return f"{key}: {problem}"
    return None


# section -> key -> (type, default, check returning an error text or None)
Schema = dict[str, tuple[type, Any, Callable[[Any], str | None] | None]]
SCHEMA: dict[str, Schema] = {
    "app": {
        "name": (
            str,
            REQUIRED,
            _pattern(r"[A-Za-z0-9][A-Za-z0-9_-]{0,51}", "must be 1-52 letters, digits, '-' or '_'"),
        ),
        # None: take the region from the AWS environment (AWS_REGION, AWS_DEFAULT_REGION, profile).
        "region": (str, None, _pattern(r"[a-z]{2}(-[a-z]+)+-[0-9]", "must be an AWS region such as us-east-1")),
    },
    "artifact": {
        "bucket": (str, REQUIRED, _bucket),
        # None: "<app>.zip", so that apps sharing a bucket never share a key unless told to.
        "name": (str, None, _pattern(r"[A-Za-z0-9._-]{1,100}\.zip", "must be a file name ending in .zip")),
    },
    "function": {
        "source": (str, "function", None),
        "handler": (str, "main.handler", _handler),
        "runtime": (str, "python3.13", _runtime),
        "memory": (int, 128, _between(128, 10240)),
        "timeout": (int, 3, _between(1, 900)),
        "architecture": (str, "x86_64", _pattern(r"x86_64|arm64", "must be x86_64 or arm64")),
        "environment": (dict, {}, _environment),
        # NAME = a reference to an SSM parameter or a Secrets Manager secret, read at deploy time (deployer/secrets.py).
        "secrets": (dict, {}, _secrets),
        # The KMS key Lambda encrypts the environment with at rest (None: Lambda's own key).
        "kms_key_arn": (
            str,
            None,
            _pattern(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+", "must be the ARN of a KMS key"),
        ),
        "logs": (bool, True, None),
        # Days CloudWatch Logs keeps the function's log events (Lambda's own default keeps them forever).
        "log_retention_days": (int, 30, _retention),
        # Globs of paths inside the zip to leave out (the build's own rules: deployer/build.py).
        "exclude": (list, [], _globs),
    },
    "api": {
        "stage": (str, "test", _stage_name),
        # EDGE (the guide's, through CloudFront) or REGIONAL; changed in place, the URL keeps its shape.
        "endpoint": (
            str,
            "EDGE",
            lambda value: None if value in ("EDGE", "REGIONAL") else 'must be "EDGE" or "REGIONAL"',
        ),
        # The media types API Gateway passes as binary (base64 both ways with the function): all, by default.
        "binary_media_types": (list, ["*/*"], _media_types),
        # The default stage's own domain name (TLS 1.2) with its ACM certificate and DNS records.
        "domain": (str, None, _dns_name),
        # Where the stage sits under the domain: "" is the root, "v1" serves https://<domain>/v1/...
        "base_path": (
            str,
            "",
            _pattern(
                r"([A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*)?", "must be empty (the root) or a path such as v1, no '/' first"
            ),
        ),
        # An ACM certificate covering the domain, in the API's region (EDGE: us-east-1); else found or requested.
        "certificate_arn": (
            str,
            None,
            _pattern(
                r"arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+", "must be an ACM certificate ARN"
            ),
        ),
        # The domain name's endpoint: REGIONAL (the API's region) or EDGE (CloudFront; its certificate in us-east-1).
        "domain_endpoint": (
            str,
            "REGIONAL",
            lambda value: None if value in DOMAIN_ENDPOINTS else 'must be "REGIONAL" or "EDGE"',
        ),
        # The stage's front door (README "Choosing the front door"): the REST API, an HTTP API, or a function URL.
        "type": (str, "rest", lambda value: None if value in API_TYPES else 'must be "rest", "http" or "url"'),
        # Who may call a function URL: anyone ("none"), or signed IAM requests only ("iam": AuthType AWS_IAM).
        "auth": (str, "none", lambda value: None if value in URL_AUTH_TYPES else 'must be "none" or "iam"'),
        # CORS answered by the HTTP API or the function URL itself: allow_origins, allow_methods, ...
        "cors": (dict, None, _cors),
    },
    "releases": {
        # Published Lambda versions kept per stage (code storage per region is limited); aliased ones always stay.
        "keep": (int, 10, _between(1, 1000)),
    },
    "check": {
        # `up` invokes each new release with a GET of this path before any traffic moves to it.
        "path": (str, "/", _pattern(r"/[^\s?#]*", "must be a path starting with '/', e.g. /health")),
    },
    "state": {
        # "s3": shared by everyone who deploys the app (CI, teammates); "local": a file in .deployer/, one user.
        "backend": (str, "s3", lambda value: None if value in ("s3", "local") else 'must be "s3" or "local"'),
        "bucket": (str, None, _bucket),  # None: the artifact bucket
        "prefix": (str, "deployer-state/", _pattern(r"([A-Za-z0-9._-]+/)*", "must be folder names each ending in /")),
    },
    "dependencies": {
        # true: npm runs package.json's install scripts (preinstall, install, postinstall); off by default, they
        # are code from every package in the tree, run on this machine at build time.
        "scripts": (bool, False, None),
    },
    "target": {
        # true: deploy to the embedded local cloud (`deployer local`), as `--local` or DEPLOYER_LOCAL=1 do.
        "local": (bool, False, None),
    },
}


@dataclass(frozen=True)
class Config:
    path: Path
    app_name: str
    region: str | None
    bucket: str
    artifact_name: str
    source: Path
    handler: str
    runtime: str
    memory: int
    timeout: int
    architecture: str
    environment: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # variable -> reference ([function.secrets]), never a value
    kms_key_arn: str | None = None  # [function] kms_key_arn
    logs: bool = True
    exclude: tuple[str, ...] = ()  # [function] exclude: globs of paths left out of the zip
    stage: str = "test"  # the stage this configuration is for: [stages.<stage>] merged over [function]
    default_stage: str = "test"  # [api] stage: its function, role and API keep the app's own name
    local: bool = False  # [target] local: the embedded emulator instead of an AWS account
    state_backend: str = "s3"  # [state] backend
    state_bucket: str | None = None  # [state] bucket; None: the artifact bucket
    state_prefix: str = "deployer-state/"  # [state] prefix: the state is <prefix><app>/<stage>/state.json
    keep_releases: int = 10
    check_path: str = "/"
    binary_media_types: tuple[str, ...] = ("*/*",)  # [api] binary_media_types
    endpoint: str = "EDGE"  # [api] endpoint
    log_retention_days: int = 30  # [function] log_retention_days
    domain: str | None = None  # [api] domain for the default stage, [stages.S] domain for stage S
    base_path: str = ""  # [api] base_path, or [stages.S] base_path: "" is the domain's root
    certificate_arn: str | None = None  # [api] certificate_arn, or [stages.S] certificate_arn
    domain_endpoint: str = "REGIONAL"  # [api] domain_endpoint, or [stages.S] domain_endpoint
    install_scripts: bool = False  # [dependencies] scripts: npm runs the packages' install scripts
    # The stage's account ([stages.S] profile / role_arn / external_id, deployer/credentials.py); None: the
    # standard credential chain. The external id is kept out of the repr (a --debug traceback prints locals).
    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    api_type: str = "rest"  # [api] type, or [stages.S] type: the stage's front door (rest, http, url)
    url_auth: str = "NONE"  # [api] auth as the function URL's AuthType: NONE or AWS_IAM
    cors: dict[str, Any] | None = None  # [api] cors as AWS names it (AllowOrigins, ...); None: no CORS

    @property
    def root(self) -> Path:
        """The project folder: the one holding deploy.toml, where dist/ and .deployer/ live."""
        return self.path.parent

    @property
    def is_python(self) -> bool:
        return self.runtime.startswith("python")

    @property
    def function_name(self) -> str:
        """The stage's function, and its REST API's name: the app's name on the default stage, else suffixed."""
        return self.app_name if self.stage == self.default_stage else f"{self.app_name}-{self.stage}"

    @property
    def role_name(self) -> str:
        return f"{self.function_name}-lambda-exec"

    @property
    def domain_url(self) -> str | None:
        if self.domain is None:
            return None
        return f"https://{self.domain}/{self.base_path}" if self.base_path else f"https://{self.domain}"

    @property
    def log_group(self) -> str:
        """The log group Lambda writes the function's output to."""
        return f"/aws/lambda/{self.function_name}"

    @property
    def alias(self) -> str:
        """The function's alias that the stage's API calls: named after the stage."""
        return self.stage

    @property
    def tags(self) -> dict[str, str]:
        return {"deployer:app": self.app_name, "deployer:stage": self.stage}

    def owns(self, tags: dict[str, str]) -> bool:
        """Whether a resource found by name was created by deployer for this app (it tags all it creates)."""
        return tags.get("deployer:app") == self.app_name

    def artifact_key(self, version: str) -> str:
        return f"v{version}/{self.artifact_name}"


def _type_name(kind: type) -> str:
    return {str: "a string", int: "an integer", bool: "true or false", dict: "a table", list: "a list"}[kind]


def _read_section(
    data: dict[str, Any], section: str, where: str, schema: Schema | None = None, defaults: bool = True
) -> dict[str, Any]:
    """The section's values, checked against its schema; defaults filled in unless `defaults` is False."""
    raw = data.get(section, {})
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: [{section}] must be a table")
    values: dict[str, Any] = {}
    schema = SCHEMA[section] if schema is None else schema
    for key in raw:
        if key not in schema:
            raise UsageError(f"{where}: unknown key {key!r} in [{section}]; known keys: {', '.join(schema)}")
    for key, (kind, default, check) in schema.items():
        if key not in raw:
            if default is REQUIRED:
                raise UsageError(f"{where}: [{section}] {key} is required")
            if defaults:
                values[key] = default
            continue
        value = raw[key]
        # bool is a subclass of int: `memory = true` must not pass as 1.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise UsageError(f"{where}: [{section}] {key} must be {_type_name(kind)}, not {value!r}")
        problem = check(value) if check else None
        if problem:
            raise UsageError(f"{where}: [{section}] {key} {problem}")
        values[key] = value
    return values


# What a [stages.<name>] table may override: the function's settings, but not what goes into the zip (a
# stage runs the very artifact built for the app; `promote` ships one stage's bytes to another).
STAGE_SCHEMA: Schema = {key: value for key, value in SCHEMA["function"].items() if key not in ("source", "exclude")}
# A stage's own domain and its settings: never the default stage's ([api] ones are the default stage's only).
DOMAIN_KEYS = ("domain", "base_path", "certificate_arn", "domain_endpoint")
STAGE_SCHEMA.update({key: SCHEMA["api"][key] for key in DOMAIN_KEYS})

# ---- A stage's own account: [stages.S] profile or role_arn (optional external_id), region, bucket -----------
# Only per stage (the default stage too, in its own [stages.<name>] table): with none of them a stage uses the
# standard credential chain (AWS_PROFILE, ...), [app] region and [artifact] bucket, as before. A stage in
# another account needs its own bucket (S3 bucket names are global): its artifacts and, unless [state] bucket
# names another, its shared state live there.
# (?a): \w is ASCII's, as in AWS's own rules.
ROLE_ARN = r"(?a)arn:aws[a-z-]*:iam::[0-9]{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}"
PROFILE_NAME = r"[A-Za-z0-9_.+@-]{1,64}"
EXTERNAL_ID = r"(?a)[\w+=,.@:/-]{2,1224}"  # STS's rule for ExternalId
ACCOUNT_SCHEMA: Schema = {
    "profile": (str, None, _pattern(PROFILE_NAME, "must be a profile name of ~/.aws/config, e.g. prod")),
    "role_arn": (
        str,
        None,
        _pattern(ROLE_ARN, "must be an IAM role ARN such as arn:aws:iam::123456789012:role/deployer"),
    ),
    "external_id": (str, None, _pattern(EXTERNAL_ID, "must be 2-1224 letters, digits or any of _+=,.@:/- (STS's)")),
    "region": SCHEMA["app"]["region"],
    "bucket": (str, None, _bucket),  # None: [artifact] bucket
}
STAGE_SCHEMA.update(ACCOUNT_SCHEMA)


def _stage_account(overrides: dict[str, Any], stage: str, where: str) -> dict[str, Any]:
    """The stage's account keys, taken out of `overrides` (checked one by one already): a profile or a role
    to assume, not both; an external id only with a role. Only the keys the stage sets."""
    account = {key: overrides.pop(key) for key in ACCOUNT_SCHEMA if key in overrides}
    if "profile" in account and "role_arn" in account:
        raise UsageError(
            f"{where}: [stages.{stage}] sets both profile and role_arn: keep one (a profile may itself assume "
            "a role, with role_arn and source_profile in ~/.aws/config)"
        )
    if "external_id" in account and "role_arn" not in account:
        raise UsageError(f"{where}: [stages.{stage}] external_id goes with role_arn: set role_arn too, or remove it")
    return account


def _check_stage_region(account: dict[str, Any], app_region: str | None, stage: str, where: str) -> None:
    """Lambda takes a function's code only from a bucket of its own region: a stage in another region than
    [app] region needs a bucket of its own (made there by the first upload)."""
    region = account.get("region")
    if region is not None and app_region is not None and region != app_region and "bucket" not in account:
        raise UsageError(
            f"{where}: [stages.{stage}] region is {region}, but [artifact] bucket is {app_region}'s, and Lambda "
            f"takes code only from a bucket of the function's region: set [stages.{stage}] bucket too"
        )


# A stage's front door: [api]'s for every stage, unless its own [stages.S] table says otherwise.
FRONT_DOOR_KEYS = ("type", "auth", "cors")
STAGE_SCHEMA.update({key: SCHEMA["api"][key] for key in FRONT_DOOR_KEYS})
ROLE_SUFFIX_LENGTH = len("-lambda-exec")
IAM_ROLE_NAME_LIMIT = 64


def _stage_overrides(data: dict[str, Any], stage: str, where: str) -> dict[str, Any]:
    """Every [stages.*] table checked (a typo in one is an error whatever the stage), and `stage`'s values."""
    stages = data.get("stages", {})
    if not isinstance(stages, dict):
        raise UsageError(f"{where}: [stages] must hold tables such as [stages.prod]")
    chosen: dict[str, Any] = {}
    for name, table in stages.items():
        problem = _stage_name(name)
        if problem:
            raise UsageError(f"{where}: [stages.{name}]: a stage name {problem}")
        if not isinstance(table, dict):
            raise UsageError(f"{where}: [stages.{name}] must be a table")
        values = _read_section(stages, name, where, STAGE_SCHEMA, defaults=False)
        # its account's keys go together, whatever the stage (the [app] table is checked already)
        _check_stage_region(_stage_account(dict(values), name, where), data["app"].get("region"), name, where)
        if name == stage:
            chosen = values
    return chosen


def _domain_settings(api: dict[str, Any], overrides: dict[str, Any], stage: str, where: str) -> dict[str, Any]:
    """The stage's domain keys, taken out of `overrides`: the default stage's are [api]'s, under what its own
    [stages.S] table sets; another stage has only those of its own table (two stages, two domains)."""
    own = {key: overrides.pop(key) for key in DOMAIN_KEYS if key in overrides}
    inherited = {key: api[key] for key in DOMAIN_KEYS} if stage == api["stage"] else {}
    defaults = {key: SCHEMA["api"][key][1] for key in DOMAIN_KEYS}
    settings = {**defaults, **inherited, **own}
    if settings["domain"] is None and set(own) - {"domain"}:
        key = sorted(set(own) - {"domain"})[0]
        raise UsageError(f"{where}: [stages.{stage}] {key} is for a custom domain: set [stages.{stage}] domain too")
    return settings


def _front_door_settings(
    api: dict[str, Any], overrides: dict[str, Any], stage: str, domain: dict[str, Any], where: str
) -> dict[str, Any]:
    """The stage's front door keys, taken out of `overrides` (its [stages.S] values win over [api]'s), as Config
    fields; a key that the chosen type does not use is refused rather than silently ignored."""
    settings = {key: overrides.pop(key) if key in overrides else api[key] for key in FRONT_DOOR_KEYS}
    kind, auth, cors = settings["type"], settings["auth"], settings["cors"]
    domain_endpoint, domain = domain["domain_endpoint"], domain["domain"]
    if kind == "url" and domain is not None:
        raise UsageError(
            f"{where}: stage {stage}: a function URL takes no custom domain (that needs CloudFront in front of it): "
            'remove domain, or use type = "http" or "rest"'
        )
    if kind == "http" and domain is not None and domain_endpoint == "EDGE":
        raise UsageError(
            f'{where}: stage {stage}: an HTTP API takes only a REGIONAL custom domain: set domain_endpoint = "REGIONAL"'
        )
    if auth != "none" and kind != "url":
        raise UsageError(
            f'{where}: stage {stage}: auth = "{auth}" is for a function URL (type = "url"); remove it for type "{kind}"'
        )
    if cors is not None and kind == "rest":
        raise UsageError(
            f"{where}: stage {stage}: cors is answered by an HTTP API or a function URL, not by the REST API: use "
            'type = "http" or "url", or let the function answer CORS itself'
        )
    return {
        "api_type": kind,
        "url_auth": URL_AUTH_TYPES[auth],
        "cors": {CORS_KEYS[key]: value for key, value in cors.items()} if cors is not None else None,
    }


def _check_certificate_region(config: Config, where: str) -> None:
    """A domain name takes its certificate from one region: the API's, or us-east-1 for EDGE (CloudFront's)."""
    if config.certificate_arn is None or config.domain is None:
        return
    wanted = EDGE_CERTIFICATE_REGION if config.domain_endpoint == "EDGE" else config.region
    region = config.certificate_arn.split(":")[3]
    endpoint = "an EDGE" if config.domain_endpoint == "EDGE" else "a REGIONAL"
    if wanted is not None and region != wanted:
        raise UsageError(
            f"{where}: stage {config.stage}'s certificate_arn is in {region}, but {endpoint} domain name takes its "
            f"certificate from ACM in {wanted}: give a certificate of {wanted}, or none"
        )


def load_config(path: Path, stage: str | None = None) -> Config:
    """Read deploy.toml for `stage` (default: [api] stage); every problem is one UsageError line naming
    the file and the key."""
    if not path.is_file():
        raise UsageError(f"{path}: no such configuration file; create it (see README) or pass --config PATH")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{path} is not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None
    except RecursionError:  # tomllib parses nested arrays and tables by recursion
        raise UsageError(f"{path} nests arrays or tables too deeply to be a deploy.toml; fix it") from None
    unknown = sorted(set(data) - set(SCHEMA) - {"stages"})
    if unknown:
        known = ", ".join([*SCHEMA, "stages"])
        raise UsageError(f"{path}: unknown section [{unknown[0]}]; known sections: {known}")
    where = str(path)
    app = _read_section(data, "app", where)
    artifact = _read_section(data, "artifact", where)
    function = _read_section(data, "function", where)
    api = _read_section(data, "api", where)
    target = _read_section(data, "target", where)
    state = _read_section(data, "state", where)
    releases = _read_section(data, "releases", where)
    check = _read_section(data, "check", where)
    dependencies = _read_section(data, "dependencies", where)
    # `--stage ""` (an unset shell variable) is a mistake, never the default stage: that one may be deleted.
    chosen = api["stage"] if stage is None else stage
    problem = _stage_name(chosen)
    if problem:
        raise UsageError(f"--stage {chosen!r}: a stage name {problem}; nothing was done")
    overrides = _stage_overrides(data, chosen, where)
    # A stage's environment adds to [function]'s (and wins where both name a variable).
    environment = {**function["environment"], **overrides.pop("environment", {})}
    secrets = {**function["secrets"], **overrides.pop("secrets", {})}  # the same for its secrets
    both = sorted(set(environment) & set(secrets))
    if both:
        raise UsageError(
            f"{where}: stage {chosen}: {both[0]} is both in environment and in secrets; keep it in one of them"
        )
    domain = _domain_settings(api, overrides, chosen, where)
    account = _stage_account(overrides, chosen, where)
    front_door = _front_door_settings(api, overrides, chosen, domain, where)
    function = {**function, **overrides}
    config = Config(
        path=path.resolve(),
        app_name=app["name"],
        region=app["region"],
        bucket=artifact["bucket"],
        artifact_name=artifact["name"] or f"{app['name']}.zip",
        source=(path.parent / function["source"]).resolve(),
        handler=function["handler"],
        runtime=function["runtime"],
        memory=function["memory"],
        timeout=function["timeout"],
        architecture=function["architecture"],
        environment=environment,
        secrets=secrets,
        kms_key_arn=function["kms_key_arn"],
        logs=function["logs"],
        exclude=tuple(function["exclude"]),
        stage=chosen,
        default_stage=api["stage"],
        local=target["local"],
        keep_releases=releases["keep"],
        state_backend=state["backend"],
        state_bucket=state["bucket"],
        state_prefix=state["prefix"],
        check_path=check["path"],
        binary_media_types=tuple(api["binary_media_types"]),
        endpoint=api["endpoint"],
        log_retention_days=function["log_retention_days"],
        install_scripts=dependencies["scripts"],
        **domain,
        **front_door,
    )
    config = replace(config, **account)  # the stage's own account, region and bucket, where it sets them
    _check_certificate_region(config, where)
    size = sum(len(name.encode()) + len(value.encode()) for name, value in environment.items())
    if size > ENVIRONMENT_LIMIT:
        names = ", ".join(sorted(environment, key=lambda name: -len(environment[name]))[:3])
        raise UsageError(
            f"stage {chosen}: the environment is {size} bytes, over Lambda's {ENVIRONMENT_LIMIT}; the largest "
            f"variables are {names}: move large values to a file in the source folder or to a parameter store"
        )
    if len(config.role_name) > IAM_ROLE_NAME_LIMIT:
        raise UsageError(
            f"stage {chosen}: its role would be named {config.role_name} ({len(config.role_name)} characters; "
            f"IAM allows {IAM_ROLE_NAME_LIMIT}): use a shorter [app] name or stage name"
        )
    return config
