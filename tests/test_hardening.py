"""Never harm what is not ours: another app's state, artifact or resources are refused, never used or deleted;
a state of the wrong shape is one line before any change. Each case was a defect found by trying the tool as a
hostile or unlucky user would."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import threading
from pathlib import Path

import boto3
import botocore.httpsession
import pytest
import urllib3.util
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from deployer import aws as aws_module
from deployer.aws import Aws
from deployer.cli import app
from deployer.cli.common import aws_error_message
from deployer.config import load_config
from deployer.stores import store_for
from tests.account import APP, BUCKET, OTHER, Account, state_file
from tests.faults import RawBody
from tests.support import Waiting

ROLE = f"{APP}-lambda-exec"


@pytest.fixture
def local_state(project: Path) -> None:
    """The state in .deployer/ ([state] backend = "local"): these tests are about a state *file*."""
    config = project / "deploy.toml"
    config.write_text(config.read_text() + '\n[state]\nbackend = "local"\n')


def victims_stack(account: Account) -> dict[str, object]:
    """What the example app (the victim) has in the account: its function, role and API, by name."""
    return {
        "functions": sorted(item["FunctionName"] for item in account.functions()),
        "roles": sorted(item["RoleName"] for item in account.roles()),
        "apis": sorted((item["name"], item["id"]) for item in account.rest_apis()),
    }


@pytest.mark.usefixtures("local_state")
def test_another_apps_state_file_is_refused_and_its_resources_are_left_alone(
    cli, project: Path, other_project: Path, aws_account: Account
) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    before = victims_stack(aws_account)
    stolen = store_for(load_config(other_project / "deploy.toml")).path
    stolen.parent.mkdir()
    shutil.copy(state_file(project), stolen)

    for command in (("down", "--yes"), ("up", "--version", "1.0.0"), ("rollback", "1.0.0"), ("status",)):
        message = cli(*command, expect=2, config=other_project / "deploy.toml")
        assert f"describes app {APP}, not {OTHER}" in message, command
    assert victims_stack(aws_account) == before
    aws_account.assert_stack("v1.0.0/example.zip")


@pytest.mark.usefixtures("local_state")
def test_a_state_edited_to_claim_another_apps_api_changes_nothing_of_it(
    cli, project: Path, other_project: Path, aws_account: Account
) -> None:
    """The attacker also rewrites the app's name in the copy: the tags of what it names still say whose it is."""
    cli("up", "--version", "1.0.0", expect=0)
    before = victims_stack(aws_account)
    forged = json.loads(state_file(project).read_text()) | {"app": OTHER}
    stolen = store_for(load_config(other_project / "deploy.toml")).path
    stolen.parent.mkdir()
    stolen.write_text(json.dumps(forged))

    message = cli("up", "--version", "1.0.0", expect=1, config=other_project / "deploy.toml")
    assert f"deployer made it for app {APP}, not for {OTHER}" in message
    assert victims_stack(aws_account) == before  # refused by the plan, before any write
    assert aws_account.client("s3").list_objects_v2(Bucket=BUCKET)["KeyCount"] == 1  # nothing of Other's uploaded

    cli("down", "--yes", expect=0, config=other_project / "deploy.toml")  # Other has nothing: nothing goes
    assert victims_stack(aws_account) == before
    aws_account.assert_stack("v1.0.0/example.zip")


def test_apps_whose_names_differ_only_in_case_never_share_a_state_file(tmp_path: Path) -> None:
    paths = set()
    for name in ("Demo", "demo", "DEMO"):
        text = f'[app]\nname = "{name}"\n[artifact]\nbucket = "demo-artifacts"\n[state]\nbackend = "local"\n'
        (tmp_path / "deploy.toml").write_text(text)
        path = store_for(load_config(tmp_path / "deploy.toml")).path
        paths.add(str(path).lower())  # as a case-insensitive file system would see them
    assert len(paths) == 3


@pytest.mark.usefixtures("local_state")
def test_a_state_file_from_before_the_case_rule_is_read_and_moved(cli, project: Path, aws_account: Account) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    legacy = project / ".deployer" / f"{APP}.json"
    state_file(project).rename(legacy)
    cli("up", "--version", "1.0.0", expect=0)
    assert not legacy.exists() and json.loads(state_file(project).read_text())["app"] == APP
    assert len(aws_account.rest_apis()) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "holds list, not a deployer state"),
        ("null", "holds NoneType, not a deployer state"),
        ('{"rest_api_id": 7}', "rest_api_id is int, not str"),
        ('{"releases": []}', "releases is list, not dict"),
        ('{"releases": {"1.0.0": "x"}}', "release 1.0.0 is not a release record"),
        ('{"history": [1]}', "history holds something other than entries"),
        ('{"app": "Serverl', "is not JSON"),
    ],
)
@pytest.mark.usefixtures("local_state")
def test_a_state_file_of_the_wrong_shape_is_one_line_before_any_change(
    cli, project: Path, aws_account: Account, content: str, message: str
) -> None:
    state_file(project).parent.mkdir()
    state_file(project).write_text(content)
    for command in (("up", "--version", "1.0.0"), ("down", "--yes"), ("status",), ("plan", "--version", "1.0.0")):
        error = cli(*command, expect=2)
        assert message in error and "move it aside" in error, command
    assert aws_account.is_empty()
    assert state_file(project).read_text() == content


@pytest.mark.usefixtures("local_state")
def test_a_file_where_the_state_folder_goes_is_one_line(cli, project: Path, aws_account: Account) -> None:
    (project / ".deployer").write_text("not a folder")
    assert "is a file, but deployer keeps its state in that folder" in cli("up", "--version", "1.0.0", expect=2)
    assert aws_account.is_empty()


# Apps sharing a bucket.


def test_apps_sharing_a_bucket_get_keys_of_their_own_by_default(
    cli, project: Path, other_project: Path, aws_account: Account
) -> None:
    for folder in (project, other_project):  # the example app's deploy.toml names its zip; Other's does not
        text = (folder / "deploy.toml").read_text()
        (folder / "deploy.toml").write_text(text.replace('name = "example.zip"\n', ""))
        cli("up", "--version", "1.0.0", expect=0, config=folder / "deploy.toml")
    s3 = aws_account.client("s3")
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="v")["Contents"])
    assert keys == [f"v1.0.0/{OTHER}.zip", f"v1.0.0/{APP}.zip"]
    for name in (APP, OTHER):
        assert s3.head_object(Bucket=BUCKET, Key=f"v1.0.0/{name}.zip")["Metadata"]["app"] == name
        aws_account.assert_stack(f"v1.0.0/{name}.zip", name=name)


def test_another_apps_artifact_is_never_replaced_nor_deployed_even_with_force(
    cli, project: Path, other_project: Path, aws_account: Account
) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    text = (other_project / "deploy.toml").read_text()
    (other_project / "deploy.toml").write_text(text.replace("[artifact]\n", '[artifact]\nname = "example.zip"\n'))
    main = other_project / "function" / "main.py"
    main.write_text(main.read_text().replace("Hello world!", "Not the victim's page"))
    victims = aws_account.object_sha256("v1.0.0/example.zip")

    for extra in ((), ("--force",)):
        message = cli("up", "--version", "1.0.0", *extra, expect=1, config=other_project / "deploy.toml")
        assert f"s3://{BUCKET}/v1.0.0/example.zip belongs to app {APP}, not {OTHER}" in message
    message = cli("promote", "1.0.0", "--stage", "prod", expect=1, config=other_project / "deploy.toml")
    assert f"belongs to app {APP}" in message
    assert aws_account.object_sha256("v1.0.0/example.zip") == victims
    assert [item["FunctionName"] for item in aws_account.functions()] == [APP]


# Endpoints that hang, refuse or answer HTML; addresses that are not addresses.


class SilentEndpoint:
    """A loopback port that accepts connections and never answers, counting the connections."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.accepted.append(self.server.accept()[0])

    def close(self) -> None:
        for connection in self.accepted:
            connection.close()
        self.server.close()


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real timeouts are seconds long; the rule (how many tries, then one line) is the same at 0.3 s. botocore
    also waits up to 1 s for an answer to a body's `Expect: 100-continue` (the lock's PutObject) before it sends
    the body anyway: 0.3 s too."""
    monkeypatch.setattr("deployer.aws.CONNECT_TIMEOUT", 0.3)
    monkeypatch.setattr("deployer.aws.READ_TIMEOUT", 0.3)
    wait_for_read = urllib3.util.wait_for_read
    monkeypatch.setattr(
        "urllib3.util.wait_for_read", lambda sock, timeout=None: wait_for_read(sock, min(timeout or 0.3, 0.3))
    )
    monkeypatch.setattr("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda self, context: 0)


def test_an_endpoint_that_never_answers_is_tried_three_times_then_one_line(
    cli, project: Path, short_timeouts: None
) -> None:
    silent = SilentEndpoint()
    try:
        message = cli("up", "--version", "1.0.0", "--endpoint-url", silent.url, expect=1)
    finally:
        silent.close()
    assert f"no answer from {silent.url} in time, after 3 tries" in message
    assert len(silent.accepted) == 3  # not botocore's ten: a silent endpoint does not get better


def test_a_refused_connection_is_tried_three_times_then_one_line(
    cli, project: Path, short_timeouts, monkeypatch
) -> None:
    attempts: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as closed:
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    real_send = botocore.httpsession.URLLib3Session.send

    def counted_send(self: botocore.httpsession.URLLib3Session, request: object) -> object:
        attempts.append(request.url)  # type: ignore[attr-defined]
        return real_send(self, request)

    monkeypatch.setattr(botocore.httpsession.URLLib3Session, "send", counted_send)
    message = cli("up", "--version", "1.0.0", "--endpoint-url", url, expect=1)
    assert "cannot reach AWS" in message and "--endpoint-url" in message
    assert len(attempts) == 3


def test_invoke_waits_for_the_functions_own_timeout() -> None:
    aws = Aws("us-east-1")
    assert aws.lambda_.meta.config.read_timeout == aws_module.READ_TIMEOUT
    assert aws.invoker(900).meta.config.read_timeout == 910  # the check before traffic waits for the whole run
    assert aws.invoker(900).meta.config.connect_timeout == aws_module.CONNECT_TIMEOUT


@pytest.mark.parametrize("url", ["localhost:4566", "htp://127.0.0.1:4566", "http://", "http://127.0.0.1:70000", "x"])
def test_a_malformed_endpoint_url_is_one_line_before_any_call(cli, project: Path, url: str, monkeypatch) -> None:
    assert "is not an http:// or https:// URL with a host" in cli(
        "up", "--version", "1.0.0", "--endpoint-url", url, expect=2
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    assert "fix --endpoint-url or AWS_ENDPOINT_URL" in cli("plan", "--version", "1.0.0", expect=2)
    assert not (project / "dist").exists()


def test_a_region_that_is_not_one_is_one_line(cli, project: Path, monkeypatch, aws_account: Account) -> None:
    edit = project / "deploy.toml"
    edit.write_text(edit.read_text().replace('region = "us-east-1"\n', ""))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "moon-base")
    assert "'moon-base' is not an AWS region such as us-east-1" in cli("up", "--version", "1.0.0", expect=2)
    assert aws_account.is_empty()


def test_an_error_page_instead_of_an_answer_is_one_line_without_html() -> None:
    """A proxy in the way answers with its own HTML page: the user gets its words, on one line, no markup."""
    page = b"<html>\n<head><title>403 Forbidden</title></head>\n<body>\n<h1>Blocked by policy</h1>\n</body>\n</html>\n"
    session = boto3.Session(region_name="us-east-1")
    for event in ("before-send.lambda.GetFunction", "before-send.iam.GetRole"):
        session.events.register_first(
            event, lambda request, **_: AWSResponse(request.url, 403, {"Content-Type": "text/html"}, RawBody(page))
        )
    aws = Aws("us-east-1", session=session)
    with pytest.raises(ClientError) as caught:
        aws.lambda_.get_function(FunctionName="anything")  # a REST-JSON service gives the page as its message
    message, code = aws_error_message(caught.value) or ("", 0)
    assert code == 1 and "\n" not in message and "<" not in message
    assert "AWS refused GetFunction: 403: 403 Forbidden Blocked by policy" in message
    with pytest.raises(ClientError) as caught:
        aws.iam.get_role(RoleName="anything")  # a query service parses nothing out of it
    message, code = aws_error_message(caught.value) or ("", 0)
    assert message.startswith("AWS refused GetRole: HTTP 403: an answer that is not AWS's") and "{" not in message


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_serve_on_a_port_that_does_not_exist_is_one_line(cli, port: str) -> None:
    assert f"--port {port} is not a port number" in cli("serve", "--port", port, expect=2)


# What deployer made converges to least privilege; what it shares across regions stays with the others.


def test_an_inline_policy_on_the_role_is_drift_and_up_removes_it(cli, project: Path, aws_account: Account) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    iam = aws_account.client("iam")
    everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_role_policy(RoleName=ROLE, PolicyName="admin", PolicyDocument=json.dumps(everything))

    assert "inline policies ['admin'] → []" in cli("plan", "--version", "1.0.0", expect=3)
    cli("up", "--version", "1.0.0", expect=0)
    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == []
    aws_account.assert_stack("v1.0.0/example.zip")


def test_a_public_invoke_statement_is_drift_and_up_removes_it(cli, project: Path, aws_account: Account) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    functions = aws_account.client("lambda")
    functions.add_permission(FunctionName=APP, StatementId="public", Action="lambda:InvokeFunction", Principal="*")
    everyone = {"FunctionName": APP, "Action": "lambda:InvokeFunction", "Principal": "*"}
    functions.add_permission(**everyone, StatementId="public-alias", Qualifier="test")

    planned = cli("plan", "--version", "1.0.0", expect=3)
    assert "statements not ours ['public-alias on test', 'public on the function'] → []" in planned
    cli("up", "--version", "1.0.0", expect=0)
    with pytest.raises(ClientError, match="ResourceNotFound"):
        functions.get_policy(FunctionName=APP)  # nothing may invoke the function itself any more
    [statement] = json.loads(functions.get_policy(FunctionName=APP, Qualifier="test")["Policy"])["Statement"]
    assert statement["Sid"] == "deployer-apigateway-test"
    cli("plan", "--version", "1.0.0", expect=0)


@pytest.mark.usefixtures("local_state")
def test_one_regions_down_never_removes_the_role_another_region_uses(
    cli, project: Path, aws_account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    config = project / "deploy.toml"
    config.write_text(config.read_text().replace('region = "us-east-1"\n', ""))
    state_file(project).unlink()  # a lost state, then the same app in another region
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    cli("up", "--version", "1.0.0", expect=0)
    iam = aws_account.client("iam")
    assert {"Key": "deployer:regions", "Value": "eu-west-1 us-east-1"} in iam.get_role(RoleName=ROLE)["Role"]["Tags"]

    assert "still used in us-east-1" in cli("down", "--yes", expect=0)
    assert [role["RoleName"] for role in aws_account.roles()] == [ROLE]
    assert {"Key": "deployer:regions", "Value": "us-east-1"} in iam.get_role(RoleName=ROLE)["Role"]["Tags"]
    assert [item["FunctionName"] for item in aws_account.functions()] == [APP]  # us-east-1's
    aws_account.assert_stack("v1.0.0/example.zip")  # us-east-1 still serves, with its role

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    state_file(project).unlink()
    cli("down", "--yes", expect=0)
    assert aws_account.is_empty()  # the last region gone: the role goes too


def test_a_delete_answered_with_a_server_error_is_confirmed_by_a_read(
    make_run, aws_account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupted down already deleted the API; the emulator answers 500 for it ever after."""
    from deployer import deploy
    from tests.faults import fail, no_botocore_sleep

    no_botocore_sleep(monkeypatch)
    run = make_run("1.0.0")
    deploy.up(run)
    api_id = run.state.rest_api_id
    session = boto3.Session()
    deleted = fail(session, "apigateway", "DeleteRestApi", "InternalFailure", "Internal server error", 500, times=99)
    run = make_run(session=session)
    found = deploy.find_deployed(run.target)
    aws_account.client("apigateway").delete_rest_api(restApiId=api_id)  # by the down that was interrupted
    outcomes = deploy.down(run, found)
    assert [(item.change.resource, item.change.action) for item in outcomes] == [
        ("rest api", "absent"), ("function", "delete"), ("log group", "delete"), ("role", "delete"),
    ]  # fmt: skip
    assert deleted.injected >= 1 and "GetRestApi" in run.aws.calls
    assert aws_account.is_empty()


def test_an_untagged_look_alike_function_is_refused_before_any_write(cli, project: Path, aws_account: Account) -> None:
    aws_account.client("iam").create_role(RoleName="someone", AssumeRolePolicyDocument=json.dumps({}))
    role_arn = aws_account.client("iam").get_role(RoleName="someone")["Role"]["Arn"]
    aws_account.client("lambda").create_function(
        FunctionName=APP,
        Runtime="python3.13",
        Role=role_arn,
        Handler="main.handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18},
    )
    message = cli("up", "--version", "1.0.0", expect=1)
    assert f"a function named {APP} already exists but deployer did not make it" in message
    assert [role["RoleName"] for role in aws_account.roles()] == ["someone"]  # no role made
    # Nothing uploaded, nothing recorded: only the shared state's lock was taken (and released) before the plan.
    objects = aws_account.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])
    assert [item["Key"] for item in objects] == []


def test_renaming_the_default_stage_retires_the_old_one(cli, project: Path, aws_account: Account) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    config = project / "deploy.toml"
    config.write_text(config.read_text().replace('stage = "test"', 'stage = "live"'))
    cli("up", "--version", "1.0.0", expect=0)

    aws_account.assert_stack("v1.0.0/example.zip", stage="live")  # the only stage; its alias, its grant
    aliases = aws_account.client("lambda").list_aliases(FunctionName=APP)["Aliases"]
    assert [alias["Name"] for alias in aliases] == ["live"]
    [api] = aws_account.rest_apis()
    assert api["tags"]["deployer:stage"] == "live"
    function_arn = aws_account.functions()[0]["FunctionArn"]
    assert aws_account.client("lambda").list_tags(Resource=function_arn)["Tags"]["deployer:stage"] == "live"
    role_tags = aws_account.client("iam").get_role(RoleName=ROLE)["Role"]["Tags"]
    assert {"Key": "deployer:stage", "Value": "live"} in role_tags
    cli("plan", "--version", "1.0.0", expect=0)


def test_the_api_passes_binary_media_types_as_deploy_toml_says(cli, project: Path, aws_account: Account) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    [api] = aws_account.rest_apis()
    assert api["binaryMediaTypes"] == ["*/*"]
    config = project / "deploy.toml"
    config.write_text(config.read_text() + 'binary_media_types = ["image/png", "application/pdf"]\n')
    assert "binary media types ['*/*'] → ['application/pdf', 'image/png']" in cli(
        "plan", "--version", "1.0.0", expect=3
    )
    cli("up", "--version", "1.0.0", expect=0)
    [api] = aws_account.rest_apis()
    assert sorted(api["binaryMediaTypes"]) == ["application/pdf", "image/png"]
    deployments = aws_account.client("apigateway").get_deployments(restApiId=api["id"])["items"]
    assert len(deployments) == 2  # a deployment snapshots the binary media types: a new one publishes them
    cli("plan", "--version", "1.0.0", expect=0)


def test_build_json_names_what_it_left_out_and_why(project: Path) -> None:
    (project / "function" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n")
    (project / "function" / ".npmrc").write_text("//registry.npmjs.org/:_authToken=tok3n-value\n")
    result = CliRunner().invoke(app, ["build", "--json", "--config", str(project / "deploy.toml")])
    assert result.exit_code == 0, result.stderr
    left_out = {item["path"]: item["reason"] for item in json.loads(result.stdout)["left_out"]}
    assert {"id_rsa", ".npmrc"} <= set(left_out) and all(left_out.values())
    assert "tok3n-value" not in result.stdout + result.stderr


def test_the_endpoint_type_changes_in_place_and_the_url_keeps_its_shape(
    cli, project: Path, aws_account: Account
) -> None:
    url = json.loads(
        CliRunner().invoke(app, ["up", "--version", "1.0.0", "--json", "--config", str(project / "deploy.toml")]).stdout
    )["base_url"]
    [api] = aws_account.rest_apis()
    assert api["endpointConfiguration"]["types"] == ["EDGE"]  # the guide's
    config = project / "deploy.toml"
    config.write_text(config.read_text().replace('stage = "test"', 'stage = "test"\nendpoint = "REGIONAL"'))
    assert "endpoint EDGE → REGIONAL" in cli("plan", "--version", "1.0.0", expect=3)
    cli("up", "--version", "1.0.0", expect=0)
    [after] = aws_account.rest_apis()
    assert (after["id"], after["endpointConfiguration"]["types"]) == (api["id"], ["REGIONAL"])
    assert url == f"https://{api['id']}.execute-api.us-east-1.amazonaws.com/test"
    status = json.loads(CliRunner().invoke(app, ["status", "--json", "--config", str(config)]).stdout)
    assert status["base_url"] == url
    cli("plan", "--version", "1.0.0", expect=0)


def test_a_large_artifact_goes_up_in_parts_with_its_progress_and_its_records(
    make_run, aws_account: Account, project: Path, monkeypatch: pytest.MonkeyPatch, waiting: Waiting
) -> None:
    from deployer import deploy
    from deployer.build import artifact_path
    from deployer.resources import artifact

    monkeypatch.setattr(artifact, "MULTIPART_THRESHOLD", 1)  # every zip is "large" here
    seen = waiting.uploaded  # the run's Waits.on_upload_progress
    run = make_run("1.0.0")
    deploy.up(run)
    size = artifact_path(run.config).stat().st_size
    assert seen and seen[-1] == (size, size)
    assert "CreateMultipartUpload" in run.aws.calls and "PutObject" not in run.aws.calls
    head = aws_account.client("s3").head_object(Bucket=BUCKET, Key="v1.0.0/example.zip")
    assert head["Metadata"]["app"] == APP and head["ContentLength"] == size
    aws_account.assert_stack("v1.0.0/example.zip")  # the function runs the bytes uploaded
