"""`deployer up --local` serves every front door (issue 26): an HTTP API at `http://{api id}.execute-api.localhost:
{port}/` (its `$default` stage, the API's root) and a function URL at `http://{url id}.lambda-url.localhost:{port}/`,
as the local cloud's data plane answers them (local/doors.py), with the deployer's own commands end to end.

Requests go to 127.0.0.1 with the door's Host header (curl and browsers resolve `*.localhost` to the loopback
themselves; this test needs no resolver). Few deploys: the session's local cloud, reset between tests.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from deployer.local.target import local_credentials, session
from tests.account import APP, Account
from tests.support import REGION, Reply, edit, fetch, http_call, in_process_ok

HELLO, BONJOUR = b"<p>Hello world!</p>", b"<p>Bonjour au monde!</p>"


def front_door(project: Path, settings: str) -> None:
    """deploy.toml's `[api]` table, with these settings after `stage = "test"`."""
    config = project / "deploy.toml"
    head = config.read_text().split("[api]")[0]
    config.write_text(f'{head}[api]\nstage = "test"\n{settings}')


def get(url: str, path: str = "/", headers: Sequence[tuple[str, str]] = ()) -> Reply:
    """GET `path` of the door `url` names, sent to 127.0.0.1 with its Host header: no DNS involved."""
    site = urlsplit(url)
    assert site.hostname == "127.0.0.1" or (site.hostname or "").endswith(".localhost"), url
    assert site.port is not None, url
    return http_call(site.port, path, headers=headers, host=site.netloc)


def signed(url: str, port: int) -> list[tuple[str, str]]:
    """SigV4 headers for GET `url` with the local cloud's credentials, as a caller of an AWS_IAM URL signs."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    credentials = local_credentials(port)
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(credentials.access_key_id, credentials.secret_access_key), "lambda", REGION).add_auth(request)
    return [(name, value) for name, value in request.headers.items() if name.lower() != "host"]


def up(project: Path, *arguments: str) -> str:
    """`deployer up --local ARGUMENTS`: the URL it prints last."""
    return in_process_ok(project, "up", "--local", *arguments).strip().splitlines()[-1]


def test_up_local_serves_an_http_api_at_its_root_and_each_release_is_one_alias_move(
    project: Path, local_cloud: str
) -> None:
    front_door(project, 'type = "http"\n')
    url = up(project, "--version", "1.0.0")
    port = urlsplit(local_cloud).port
    account = Account(session(REGION), endpoint_url=local_cloud)
    (api,) = account.http_apis()
    assert url == f"http://{api['ApiId']}.execute-api.localhost:{port}/"  # `$default`: no stage in the URL
    assert (get(url).status, get(url).body) == (200, HELLO)
    assert get(url, "/any/path?x=1").body == HELLO  # the $default route takes every path
    by_path = fetch(f"{local_cloud}/_aws/execute-api/{api['ApiId']}/")
    assert by_path[:2] == (200, HELLO)
    assert get(url, "/test/").body == HELLO and get(url, "/nothing-here").status == 200  # no stage to match
    status = in_process_ok(project, "status", "--local", "--json")
    assert f'"base_url": "{url}"' in status

    # A stage changed by hand (apigatewayv2 UpdateStage) is put back by the next up, which serves a second release.
    gateway = account.client("apigatewayv2")
    gateway.update_stage(ApiId=api["ApiId"], StageName="$default", AutoDeploy=False)
    edit(project / "function" / "main.py", "Hello world!", "Bonjour au monde!")
    assert up(project, "--version", "1.1.0") == url
    assert {get(url).body for _ in range(5)} == {BONJOUR}
    stages = gateway.get_stages(ApiId=api["ApiId"])["Items"]
    assert [(item["StageName"], item["AutoDeploy"]) for item in stages] == [("$default", True)]

    # A canary and a rollback move the alias only: the same API, integration and stage answer both releases.
    edit(project / "function" / "main.py", "Bonjour au monde!", "Hello world!")
    wiring = gateway.get_integrations(ApiId=api["ApiId"])["Items"]
    up(project, "--version", "1.2.0", "--canary", "50")
    assert {get(url).body for _ in range(40)} == {HELLO, BONJOUR}  # each alone: 2 x 0.5**40
    in_process_ok(project, "rollback", "1.1.0", "--local")
    assert {get(url).body for _ in range(5)} == {BONJOUR}
    assert account.http_apis() == [api]
    assert gateway.get_integrations(ApiId=api["ApiId"])["Items"] == wiring

    in_process_ok(project, "down", "--local", "--yes")
    assert account.is_empty()
    assert get(url).status == 404


def test_up_local_serves_a_function_url_public_then_signed_only(project: Path, local_cloud: str) -> None:
    front_door(project, 'type = "url"\ncors = { allow_origins = ["https://example.com"] }\n')
    url = up(project, "--version", "1.0.0")
    port = urlsplit(local_cloud).port
    account = Account(session(REGION), endpoint_url=local_cloud)
    functions = account.client("lambda")
    config = functions.get_function_url_config(FunctionName=APP, Qualifier="test")
    url_id = (urlsplit(config["FunctionUrl"]).hostname or "").split(".")[0]
    assert (url, config["AuthType"]) == (f"http://{url_id}.lambda-url.localhost:{port}/", "NONE")
    public = get(url, headers=[("Origin", "https://example.com")])
    assert (public.status, public.body) == (200, HELLO)
    assert public.header("Access-Control-Allow-Origin") == ["https://example.com"]
    assert fetch(f"{local_cloud}/_aws/lambda-url/{url_id}/")[:2] == (200, HELLO)
    # The statements AWS documents for a public URL, with their conditions where Lambda keeps them.
    policy = json.loads(functions.get_policy(FunctionName=APP, Qualifier="test")["Policy"])
    conditions = sorted(json.dumps(statement["Condition"], sort_keys=True) for statement in policy["Statement"])
    assert conditions == [
        '{"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}',
        '{"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}',
    ]

    # auth = "iam", and no cors: an unsigned request is refused, a signed one answered, CORS cleared.
    front_door(project, 'type = "url"\nauth = "iam"\n')
    assert up(project, "--version", "1.0.0") == url
    assert "Cors" not in functions.get_function_url_config(FunctionName=APP, Qualifier="test")
    unsigned = get(url)
    assert unsigned.status == 403, unsigned.body
    answered = get(url, headers=[*signed(url, port), ("Origin", "https://example.com")])
    assert (answered.status, answered.body) == (200, HELLO)
    assert answered.header("Access-Control-Allow-Origin") == []

    in_process_ok(project, "down", "--local", "--yes")
    assert account.is_empty()
    assert account.client("lambda").list_functions()["Functions"] == []


def test_a_switch_from_rest_to_http_moves_the_served_url(project: Path, local_cloud: str) -> None:
    rest_url = up(project, "--version", "1.0.0")
    assert fetch(rest_url)[:2] == (200, HELLO)

    front_door(project, 'type = "http"\n')
    result = in_process_ok(project, "up", "--local", "--version", "1.0.0")
    http_url = result.strip().splitlines()[-1]
    account = Account(session(REGION), endpoint_url=local_cloud)
    (api,) = account.http_apis()
    assert http_url == f"http://{api['ApiId']}.execute-api.localhost:{urlsplit(local_cloud).port}/"
    assert (get(http_url).status, get(http_url).body) == (200, HELLO)
    assert account.rest_apis() == [] and fetch(rest_url)[0] != 200  # the old door is gone

    in_process_ok(project, "down", "--local", "--yes")
    assert account.is_empty()
