"""Look at the emulated AWS account itself: what exists and how it is wired, independent of the tool."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import boto3

APP = "ServerlessExample"
OTHER = "Other"  # a second app sharing the account and the bucket (conftest's other_project)
BUCKET = "deployer-example-artifacts"


def state_file(project: Path, suffix: str = "json") -> Path:
    """The example app's default-stage state file (suffix "lock": its lock) in `project`."""
    from deployer.state import file_stem

    return project / ".deployer" / f"{file_stem(APP)}.{suffix}"


BASIC_LOGGING = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


class Account:
    def __init__(self, session: boto3.Session, endpoint_url: str | None = None) -> None:
        self.session = session
        self.endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}
        self._making = threading.Lock()  # a session makes one client at a time; a client is used by any thread

    def client(self, service: str) -> Any:
        """The service's client, made on first use and kept: a test looks at the account many times (each client
        costs milliseconds). Faults a test injects go on the session before the clients they are for are made
        (tests/faults.py); they are for the deployer's clients, never for this look at the account."""
        with self._making:
            if service not in self._clients:
                self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url)
            return self._clients[service]

    def roles(self) -> list[dict[str, Any]]:
        return [role for role in self.client("iam").list_roles()["Roles"] if role["Path"] == "/"]

    def functions(self) -> list[dict[str, Any]]:
        return self.client("lambda").list_functions()["Functions"]

    def rest_apis(self) -> list[dict[str, Any]]:
        return self.client("apigateway").get_rest_apis()["items"]

    def resources(self, api_id: str) -> list[dict[str, Any]]:
        return self.client("apigateway").get_resources(restApiId=api_id, embed=["methods"])["items"]

    def object_sha256(self, key: str, bucket: str = BUCKET) -> str:
        body = self.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        return base64.b64encode(hashlib.sha256(body).digest()).decode()

    def log_groups(self) -> dict[str, dict[str, Any]]:
        """Every log group, by name, with its tags under "tags"."""
        logs = self.client("logs")
        groups = {}
        for group in logs.describe_log_groups()["logGroups"]:
            tags = logs.list_tags_for_resource(resourceArn=group["arn"].removesuffix(":*"))["tags"]
            groups[group["logGroupName"]] = {**group, "tags": tags}
        return groups

    def is_empty(self) -> bool:
        return not (self.roles() or self.functions() or self.rest_apis() or self.http_apis() or self.log_groups())

    def alias(self, name: str, alias: str) -> dict[str, Any]:
        return self.client("lambda").get_alias(FunctionName=name, Name=alias)

    def version(self, name: str, number: str) -> dict[str, Any]:
        return self.client("lambda").get_function_configuration(FunctionName=name, Qualifier=number)

    def assert_stack(self, live_key: str, stage: str = "test", name: str = APP, bucket: str = BUCKET) -> dict[str, Any]:
        """Exactly one role, function and API of this name, wired as the guide wires them, except that the API
        calls the stage's alias, whose published version runs live_key's code."""
        role_name = f"{name}-lambda-exec"
        roles = [role for role in self.roles() if role["RoleName"] == role_name]
        assert len(roles) == 1, roles
        role = roles[0]
        trust = role["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "lambda.amazonaws.com"}]
        attached = self.client("iam").list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
        assert [policy["PolicyArn"] for policy in attached] == [BASIC_LOGGING]

        functions = [function for function in self.functions() if function["FunctionName"] == name]
        assert len(functions) == 1, functions
        function = functions[0]
        assert function["Role"] == role["Arn"]
        alias = self.alias(name, stage)
        live = self.version(name, alias["FunctionVersion"])
        assert live["Role"] == role["Arn"]
        assert live["CodeSha256"] == self.object_sha256(live_key, bucket)
        assert live["Description"] == f"deployer release {live_key.split('/')[-2].removeprefix('v')}"

        apis = [api for api in self.rest_apis() if api["name"] == name]
        assert len(apis) == 1, apis
        api = apis[0]
        resources = {item["path"]: item for item in self.resources(api["id"])}
        assert sorted(resources) == ["/", "/{proxy+}"]
        region = self.session.region_name
        uri = f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{alias['AliasArn']}/invocations"
        for item in resources.values():
            method = item["resourceMethods"]["ANY"]
            assert method["authorizationType"] == "NONE"
            integration = method["methodIntegration"]
            assert (integration["type"], integration["httpMethod"], integration["uri"]) == ("AWS_PROXY", "POST", uri)

        gateway = self.client("apigateway")
        stages = gateway.get_stages(restApiId=api["id"])["item"]
        assert [item["stageName"] for item in stages] == [stage]

        policy = json.loads(self.client("lambda").get_policy(FunctionName=name, Qualifier=stage)["Policy"])
        account_id = function["FunctionArn"].split(":")[4]
        source_arn = f"arn:aws:execute-api:{region}:{account_id}:{api['id']}/*/*"
        grants = [
            statement
            for statement in policy["Statement"]
            if statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
            and statement["Condition"]["ArnLike"]["AWS:SourceArn"] == source_arn
            and statement["Resource"] == alias["AliasArn"]
        ]
        assert len(grants) == 1, policy
        return {"role": role, "function": function, "api": api, "alias": alias, "live": live}

    # ---- the other front doors (issue 26) ----

    def http_apis(self) -> list[dict[str, Any]]:
        return self.client("apigatewayv2").get_apis()["Items"]

    def alias_statements(self, name: str = APP, alias: str = "test") -> dict[str, dict[str, Any]]:
        """The alias's resource policy, by statement id (none when it has no policy)."""
        try:
            policy = self.client("lambda").get_policy(FunctionName=name, Qualifier=alias)["Policy"]
        except self.client("lambda").exceptions.ResourceNotFoundException:
            return {}
        return {item["Sid"]: item for item in json.loads(policy)["Statement"]}

    def assert_release(self, live_key: str, stage: str = "test", name: str = APP) -> dict[str, Any]:
        """The stage's alias runs live_key's code; its function and alias."""
        function = next(item for item in self.functions() if item["FunctionName"] == name)
        alias = self.alias(name, stage)
        live = self.version(name, alias["FunctionVersion"])
        assert live["CodeSha256"] == self.object_sha256(live_key)
        return {"function": function, "alias": alias, "live": live}

    def assert_http_door(self, live_key: str, stage: str = "test", name: str = APP) -> dict[str, Any]:
        """Exactly one HTTP API of this name, tagged, whose $default route calls the stage's alias with payload 2.0
        through its auto-deployed `$default` stage, with the alias's grant scoped to it; no REST API."""
        release = self.assert_release(live_key, stage, name)
        apis = [api for api in self.http_apis() if api["Name"] == name]
        assert len(apis) == 1, apis
        api = apis[0]
        assert api["ProtocolType"] == "HTTP" and api["Tags"]["deployer:app"] == APP, api
        gateway = self.client("apigatewayv2")
        integrations = gateway.get_integrations(ApiId=api["ApiId"])["Items"]
        assert [
            (item["IntegrationType"], item["IntegrationUri"], item["PayloadFormatVersion"]) for item in integrations
        ] == [("AWS_PROXY", release["alias"]["AliasArn"], "2.0")]
        routes = gateway.get_routes(ApiId=api["ApiId"])["Items"]
        assert [(item["RouteKey"], item["Target"]) for item in routes] == [
            ("$default", f"integrations/{integrations[0]['IntegrationId']}")
        ]
        stages = gateway.get_stages(ApiId=api["ApiId"])["Items"]
        # `$default`: served at the API's root, so the frameworks see their own paths (no stage segment).
        assert [(item["StageName"], item["AutoDeploy"]) for item in stages] == [("$default", True)]
        account_id = release["function"]["FunctionArn"].split(":")[4]
        region = self.session.region_name
        statements = self.alias_statements(name, stage)
        assert statements.keys() == {f"deployer-httpapi-{stage}"}, statements
        grant = statements[f"deployer-httpapi-{stage}"]
        assert grant["Principal"] == {"Service": "apigateway.amazonaws.com"}
        assert grant["Condition"] == {
            "ArnLike": {"AWS:SourceArn": f"arn:aws:execute-api:{region}:{account_id}:{api['ApiId']}/*"}
        }
        assert [item for item in self.rest_apis() if item["name"] == name] == []
        return {**release, "api": api}

    def assert_url_door(
        self, live_key: str, stage: str = "test", name: str = APP, auth: str = "NONE"
    ) -> dict[str, Any]:
        """A function URL on the stage's alias with this AuthType and, with NONE, the two public statements AWS
        documents for it (and no other); no REST or HTTP API."""
        release = self.assert_release(live_key, stage, name)
        url = self.client("lambda").get_function_url_config(FunctionName=name, Qualifier=stage)
        assert url["AuthType"] == auth, url
        statements = self.alias_statements(name, stage)
        if auth == "NONE":
            assert statements.keys() == {f"deployer-url-{stage}", f"deployer-url-invoke-{stage}"}, statements
            by_url = statements[f"deployer-url-{stage}"]
            assert (by_url["Action"], by_url["Principal"]) == ("lambda:InvokeFunctionUrl", "*")
            assert by_url["Condition"] == {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}
            invoke = statements[f"deployer-url-invoke-{stage}"]
            assert (invoke["Action"], invoke["Principal"]) == ("lambda:InvokeFunction", "*")
            assert invoke["Condition"] == {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}
        else:
            assert statements == {}
        assert [item for item in self.rest_apis() if item["name"] == name] == []
        assert [item for item in self.http_apis() if item["Name"] == name] == []
        return {**release, "url": url}
