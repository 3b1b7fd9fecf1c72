"""A Lambda function URL on the stage's alias as its front door (`[api] type = "url"`): no charge beyond Lambda's.

The URL config is on the alias (Qualifier = the alias's name), so a release stays one alias move. AuthType NONE
(anyone) or AWS_IAM (`[api] auth = "iam"`: signed requests only), and CORS from `[api] cors`; a change of either
(in deploy.toml, or by hand) is one UpdateFunctionUrlConfig. With NONE the alias's policy holds the two statements
AWS documents for a public function URL: lambda:InvokeFunctionUrl for Principal "*" with the FunctionUrlAuthType
NONE condition and, required for URLs made since October 2025, lambda:InvokeFunction with InvokedViaFunctionUrl.
With AWS_IAM the callers' own IAM policies grant access: no statement is added.

A function URL takes no custom domain (CloudFront would be needed): config.py refuses `domain` with this type.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from deployer.aws import delete_if_present, read_or_none
from deployer.context import Run, Target
from deployer.gateway.http_api import function_url_id
from deployer.plan import Change, Diff, Learned, Plan, inactive
from deployer.resources.alias import Alias
from deployer.resources.permission import Grant, GrantStep, url_statement_ids

TYPE = "url"
INVOKE_URL_ACTION = "lambda:InvokeFunctionUrl"


class Field(StrEnum):
    AUTH_TYPE = "AuthType"
    CORS = "Cors"


def with_slash(url: str) -> str:
    return url if url.endswith("/") else f"{url}/"


def served_url(target: Target, function_url: str) -> str:
    """The URL the stage answers at: Lambda's, with a slash; on the local cloud, its data plane's
    `http://{url id}.lambda-url.localhost:{port}/` (local/doors.py serves it by the id, the host's first label)."""
    if target.local_endpoint:
        url_id = function_url_id(function_url)
        return f"http://{url_id}.lambda-url.localhost:{urlsplit(target.local_endpoint).port}/"
    return with_slash(function_url)


def read(aws: Any, function_name: str, alias: str) -> dict[str, Any] | None:
    return read_or_none(lambda: aws.lambda_.get_function_url_config(FunctionName=function_name, Qualifier=alias))


class FunctionUrl:
    resource = "function url"

    def plan(self, target: Target, earlier: Plan) -> Change[dict[str, Any]]:
        config = target.config
        if config.api_type != TYPE:
            return inactive(self.resource, config.alias, config.api_type)
        alias = earlier.of(Alias)
        found = (
            None if alias is None or alias.action == "create" else read(target.aws, config.function_name, config.alias)
        )
        if found is None:
            return Change(self.resource, config.alias, "create")
        diffs = []
        if found.get("AuthType") != config.url_auth:
            diffs.append(Diff(Field.AUTH_TYPE, found.get("AuthType"), config.url_auth))
        if (found.get("Cors") or None) != config.cors:
            diffs.append(Diff(Field.CORS, found.get("Cors") or None, config.cors))
        url = served_url(target, found["FunctionUrl"])
        learned = Learned(function_url=url, base_url=url, api_type=TYPE)
        return Change(self.resource, config.alias, "update" if diffs else "unchanged", tuple(diffs), found, learned)

    def apply(self, run: Run, change: Change[dict[str, Any]]) -> None:
        config, functions = run.config, run.aws.lambda_
        # An empty Cors clears what a user set by hand: deploy.toml says there is none.
        arguments = {"FunctionName": config.function_name, "Qualifier": config.alias, "AuthType": config.url_auth,
                     "Cors": config.cors or {}}  # fmt: skip
        if change.action == "update":
            answer = functions.update_function_url_config(**arguments)
        else:
            answer = functions.create_function_url_config(**arguments)
        url = served_url(run.target, answer["FunctionUrl"])
        run.state.function_url, run.state.base_url, run.state.api_type = url, url, TYPE
        run.save_soon()


class Permission(GrantStep):
    """With AuthType NONE, the statements that let anyone call the alias through its URL (and through it only)."""

    resource = "url permission"
    api_type = TYPE

    def sids(self, alias: str) -> tuple[str, ...]:
        return url_statement_ids(alias)

    def grants(self, alias: str, auth: str) -> tuple[Grant, ...]:
        if auth != "NONE":  # AWS_IAM: the caller's identity policy grants lambda:InvokeFunctionUrl
            return ()
        url_sid, invoke_sid = url_statement_ids(alias)
        return (
            Grant(url_sid, action=INVOKE_URL_ACTION, principal="*", url_auth_type="NONE"),
            Grant(invoke_sid, principal="*", via_url=True),
        )

    def planned(self, target: Target, earlier: Plan) -> tuple[Grant, ...]:
        return self.grants(target.config.alias, target.config.url_auth)

    def wanted(self, run: Run) -> tuple[Grant, ...]:
        return self.grants(run.config.alias, run.config.url_auth)


def delete(run: Run) -> bool:
    """The alias's URL config (the statements are removed by the caller: they are the alias's policy)."""
    functions, config = run.aws.lambda_, run.config
    return delete_if_present(
        lambda: functions.delete_function_url_config(FunctionName=config.function_name, Qualifier=config.alias)
    )


def wiring_problem(run: Run) -> str | None:
    """Read back the function URL a type switch made, before the old door goes: what is not as it must be, or None."""
    config = run.config
    found = read(run.aws, config.function_name, config.alias)
    if found is None:
        return f"no function URL on alias {config.alias}"
    if found.get("AuthType") != config.url_auth:
        return f"the function URL's AuthType is {found.get('AuthType')}, not {config.url_auth}"
    return None
