"""The four framework test apps (tests/apps: Flask + apig-wsgi, FastAPI + Mangum, aws-lambda-powertools, Express +
serverless-http), unmodified, behind an HTTP API and a function URL (payload format 2.0), under `deployer serve` and
the local cloud; and behind the REST API (payload 1.0) under `deployer serve` as a process of its own.

Each app is built once per session (its dependencies installed from the registries: marked `network`); one xdist
worker runs this whole module (tests/conftest.py), so each is installed once.
The HTTP API here has a `$default` stage: behind a named stage the stage is part of the path every function sees
(as on AWS), which the adapters route as part of the app's own path: test_a_named_stage_is_in_the_apps_path shows it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from deployer.build import build
from deployer.config import Config, load_config
from deployer.dependencies import bundle_dependencies
from deployer.gateway import http_api
from deployer.local.target import session
from deployer.serve import make_server
from tests.support import APPS, REGION, Reply, http_call, make_function_from_zip, make_http_api, running, serve_process

pytestmark = pytest.mark.network  # installs each app's dependencies from PyPI or the npm registry

# app folder -> (handler, runtime, greeting, the JSON key of /items/{id})
FRAMEWORKS = {
    "flask_apig": ("main.handler", "python3.13", b"<h1>Hello from Flask</h1>", None),
    "fastapi_mangum": ("main.handler", "python3.13", b"<h1>Hello from FastAPI</h1>", "item_id"),
    "powertools": ("main.handler", "python3.13", b"<h1>Hello from Powertools</h1>", "item_id"),
    "express_serverless_http": ("main.handler", "nodejs22.x", b"<h1>Hello from Express</h1>", "itemId"),
}
PIXEL_START = b"\x89PNG\r\n\x1a\n"
Call = Callable[..., Reply]


@dataclasses.dataclass(frozen=True)
class BuiltApp:
    config: Config
    code_dirs: list[Path]  # the bundled dependencies, as `deployer serve` adds them
    zip_bytes: bytes  # the artifact `up` would upload


@pytest.fixture(scope="session")
def built_apps(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], BuiltApp]:
    """Each framework app copied, configured and built once for the session (per xdist worker)."""
    made: dict[str, BuiltApp] = {}

    def get(app: str) -> BuiltApp:
        if app not in made:
            handler, runtime, _, _ = FRAMEWORKS[app]
            if runtime.startswith("nodejs") and shutil.which("node") is None:
                pytest.skip("no node here")
            folder = tmp_path_factory.mktemp(app)
            shutil.copytree(APPS / app, folder, dirs_exist_ok=True)
            name = "".join(part.capitalize() for part in app.split("_"))
            (folder / "deploy.toml").write_text(
                f'[app]\nname = "{name}"\nregion = "{REGION}"\n[artifact]\nbucket = "{name.lower()}-artifacts"\n'
                f'[function]\nsource = "function"\nhandler = "{handler}"\nruntime = "{runtime}"\ntimeout = 10\n'
            )
            config = load_config(folder / "deploy.toml")
            artifact = build(config)
            bundled = bundle_dependencies(config, config.root / ".deployer" / "cache")
            assert bundled is not None
            code_dirs = [bundled if config.is_python else bundled / "node_modules"]
            made[app] = BuiltApp(config, code_dirs, artifact.path.read_bytes())
        return made[app]

    return get


def check_app(call: Call, app: str) -> None:
    """What a user of any framework app relies on, behind a 2.0 door: a page, JSON in and out, a query string, a
    path parameter, a header the app sets, and an image as bytes."""
    _, _, greeting, path_key = FRAMEWORKS[app]
    page = call("/", headers=[("Accept", "text/html")])
    assert (page.status, page.body) == (200, greeting), page.body[:300]
    assert page.header("Content-Type")[0].startswith("text/html")
    pixel = call("/pixel.png", headers=[("Accept", "image/png")])
    assert pixel.header("Content-Type") == ["image/png"] and pixel.body.startswith(PIXEL_START)
    if path_key is None:  # the Flask app's own routes: an upload and cookies both ways
        upload = call("/upload", "POST", bytes(range(256)), [("Content-Type", "application/octet-stream")])
        assert json.loads(upload.body) == {"size": 256, "first": "00010203"}
        whoami = call("/whoami", headers=[("Cookie", "session=abc; theme=dark"), ("x-CUSTOM", "Kept")]).json()
        assert whoami == {"cookies": {"session": "abc", "theme": "dark"}, "custom": "Kept", "path": "/whoami"}
        assert len(call("/cookies").header("Set-Cookie")) == 2
        return
    sent = {"name": "café", "tags": ["a", "b"], "n": 3}
    echo = call("/echo", "POST", json.dumps(sent).encode(), [("Content-Type", "application/json")])
    assert (echo.status, echo.json()) == (200, {"echo": sent})
    search = call("/search?q=hello%20world&page=2")
    assert search.status == 200 and search.json()["q"] == "hello world" and str(search.json()["page"]) == "2"
    item = call("/items/42")
    assert item.status == 200 and str(item.json()[path_key]) == "42"
    assert item.header("X-Item-Source") == [{"fastapi_mangum": "fastapi"}.get(app, app.split("_")[0])]


@pytest.fixture
def serve_app(built_apps: Callable[[str], BuiltApp]) -> Iterator[Callable[[str, http_api.FrontDoor, str], Call]]:
    """`deployer serve` of a built app as a door (in-process, with its bundled dependencies)."""
    contexts: list[Any] = []

    def start(app: str, door: http_api.FrontDoor, stage: str = http_api.DEFAULT_STAGE) -> Call:
        built = built_apps(app)
        config = dataclasses.replace(built.config, stage=stage)
        context = running(make_server(config, "127.0.0.1", 0, built.code_dirs, front_door=door))
        port = context.__enter__().port
        contexts.append(context)
        prefix = f"/{stage}" if door == "http" and stage != http_api.DEFAULT_STAGE else ""

        def call(
            path: str, method: str = "GET", body: bytes | None = None, headers: Sequence[tuple[str, str]] = ()
        ) -> Reply:
            return http_call(port, prefix + path, method, body, headers)

        return call

    yield start
    for context in reversed(contexts):
        context.__exit__(None, None, None)


def deploy_app(local_cloud: str, built: BuiltApp, door: http_api.FrontDoor) -> str:
    """The app in the local cloud behind its alias, and the door to it: the path form's prefix."""
    local = session(REGION)
    clients = {name: local.client(name, endpoint_url=local_cloud) for name in ("iam", "lambda", "apigatewayv2")}
    alias_arn = make_function_from_zip(clients, built.zip_bytes, built.config.runtime, built.config.handler)
    if door == "url":
        made = clients["lambda"].create_function_url_config(FunctionName="app", Qualifier="test", AuthType="NONE")
        clients["lambda"].add_permission(
            FunctionName="app",
            Qualifier="test",
            StatementId="FunctionURLAllowPublicAccess",
            Action="lambda:InvokeFunctionUrl",
            Principal="*",
            FunctionUrlAuthType="NONE",
        )
        return f"/_aws/lambda-url/{made['FunctionUrl'].split('://', 1)[1].split('.', 1)[0]}"
    return f"/_aws/execute-api/{make_http_api(clients, alias_arn, 'app')}"


@pytest.mark.parametrize("door", ["http", "url"])
@pytest.mark.parametrize("app", list(FRAMEWORKS))
def test_a_framework_app_runs_unmodified_under_serve(
    app: str, door: http_api.FrontDoor, serve_app: Callable[..., Call]
) -> None:
    call = serve_app(app, door)
    if app == "powertools":
        expect_rest_resolver_refuses_2_0(call)
        return
    check_app(call, app)


@pytest.mark.parametrize("door", ["http", "url"])
@pytest.mark.parametrize("app", list(FRAMEWORKS))
def test_a_framework_app_runs_unmodified_in_the_local_cloud(
    app: str, door: http_api.FrontDoor, built_apps: Callable[[str], BuiltApp], local_cloud: str
) -> None:
    prefix = deploy_app(local_cloud, built_apps(app), door)
    port = int(local_cloud.rsplit(":", 1)[1])

    def call(path: str, method: str = "GET", body: bytes | None = None, headers: Sequence[Any] = ()) -> Reply:
        return http_call(port, prefix + path, method, body, headers)

    if app == "powertools":
        expect_rest_resolver_refuses_2_0(call)
        return
    check_app(call, app)


def expect_rest_resolver_refuses_2_0(call: Call) -> None:
    """Powertools' APIGatewayRestResolver reads the REST (1.0) event only: behind a 2.0 door the app fails, as it
    would on AWS (Powertools has APIGatewayHttpResolver and LambdaFunctionUrlResolver for these doors)."""
    assert call("/").status == 502


def test_a_named_stage_is_in_the_apps_path(serve_app: Callable[..., Call]) -> None:
    """Behind an HTTP API stage named `test` (not `$default`), Mangum hands FastAPI `/test/items/42`, as on AWS
    (rawPath keeps the stage): the app's own 404 unless it is told the base path."""
    call = serve_app("fastapi_mangum", "http", "test")
    assert call("/items/42").status == 404


# --- behind the REST API (payload 1.0), as `deployer serve` runs them -------------------------------------------------


@pytest.mark.network  # installs Flask and apig-wsgi from PyPI into the function's bundle
def test_a_flask_app_behind_apig_wsgi_is_served_as_aws_would(
    tmp_path: Path, built_apps: Callable[[str], BuiltApp]
) -> None:
    """Flask through apig-wsgi under `deployer serve` with deploy.toml's default binary_media_types (*/*): an
    image and an uploaded body round-trip as bytes, two cookies stay two, header names are as sent."""
    with serving_app(tmp_path, built_apps, "flask_apig", "FlaskFidelity", "main.handler", "python3.13") as port:
        page = http_call(port, "/", headers=[("Accept", "text/html")])
        assert (page.status, page.body) == (200, b"<h1>Hello from Flask</h1>")
        pixel = http_call(port, "/pixel.png", headers=[("Accept", "image/png")])
        assert pixel.header("Content-Type") == ["image/png"] and pixel.body.startswith(b"\x89PNG\r\n\x1a\n")
        upload = http_call(port, "/upload", "POST", bytes(range(256)), [("Content-Type", "application/octet-stream")])
        assert json.loads(upload.body) == {"size": 256, "first": "00010203"}
        browser = [("Cookie", "session=abc; theme=dark"), ("x-CUSTOM", "Kept")]
        whoami = json.loads(http_call(port, "/whoami", headers=browser).body)
        assert whoami == {"cookies": {"session": "abc", "theme": "dark"}, "custom": "Kept", "path": "/whoami"}
        # Two Cookie headers reach the event as two values, as on AWS; apig-wsgi joins them with a comma, so
        # Flask reads one cookie: what the deployed app would do with such a client, seen locally.
        twice = [("Cookie", "session=abc"), ("Cookie", "theme=dark")]
        assert json.loads(http_call(port, "/whoami", headers=twice).body)["cookies"] == {"session": "abc,theme=dark"}
        assert len(http_call(port, "/cookies").header("Set-Cookie")) == 2


@contextmanager
def serving_app(
    tmp_path: Path, built_apps: Callable[[str], BuiltApp], app: str, name: str, handler: str, runtime: str
) -> Iterator[int]:
    """`deployer serve` on tests/apps/<app> (deploy.toml's defaults, binary_media_types */*): the port it listens on.

    Its dependency cache holds the session's install of the app's requirements (built_apps: the same runtime and
    manifests, so the same cache entry; hard links, not a copy), as after a first `deployer serve` or `build`:
    the registries are asked once per app and session, not once per test. Installing into the cache is
    test_serve.py's and tests/test_dependencies.py's subject, and built_apps' own install the same function's."""
    shutil.copytree(APPS / app, tmp_path, dirs_exist_ok=True)
    cache = Path(".deployer", "cache", "dependencies")
    shutil.copytree(built_apps(app).config.root / cache, tmp_path / cache, copy_function=os.link)
    (tmp_path / "deploy.toml").write_text(
        f'[app]\nname = "{name}"\nregion = "us-east-1"\n[artifact]\nbucket = "{name.lower()}-artifacts"\n'
        f'[function]\nsource = "function"\nhandler = "{handler}"\nruntime = "{runtime}"\ntimeout = 10\n'
    )
    with serve_process(tmp_path) as port:
        yield port


def check_framework_app(port: int, greeting: bytes, source: str, path_key: str) -> None:
    """What a user of any of the framework apps relies on: a page, a JSON body echoed, a query string, a path
    parameter and a header the app sets."""
    page = http_call(port, "/", headers=[("Accept", "text/html")])
    assert (page.status, page.body) == (200, greeting)
    assert page.header("Content-Type")[0].startswith("text/html")
    sent = {"name": "café", "tags": ["a", "b"], "n": 3}
    echo = http_call(port, "/echo", "POST", json.dumps(sent).encode(), [("Content-Type", "application/json")])
    assert (echo.status, echo.json()) == (200, {"echo": sent})
    search = http_call(port, "/search?q=hello%20world&page=2")
    assert search.status == 200 and search.json()["q"] == "hello world" and str(search.json()["page"]) == "2"
    item = http_call(port, "/items/42")
    assert item.status == 200 and str(item.json()[path_key]) == "42"
    assert item.header("X-Item-Source") == [source]


@pytest.mark.network  # installs FastAPI and Mangum from PyPI into the function's bundle
def test_a_fastapi_app_behind_mangum_is_served_as_aws_would(
    tmp_path: Path, built_apps: Callable[[str], BuiltApp]
) -> None:
    """FastAPI through Mangum under `deployer serve`: a page, JSON in and out, query and path parameters, a
    header set by the app, and an image returned as bytes."""
    with serving_app(tmp_path, built_apps, "fastapi_mangum", "FastapiFidelity", "main.handler", "python3.13") as port:
        check_framework_app(port, b"<h1>Hello from FastAPI</h1>", "fastapi", "item_id")
        pixel = http_call(port, "/pixel.png", headers=[("Accept", "image/png")])
        assert pixel.header("Content-Type") == ["image/png"] and pixel.body.startswith(b"\x89PNG\r\n\x1a\n")
        assert http_call(port, "/items/not-a-number").status == 422


@pytest.mark.network  # installs aws-lambda-powertools from PyPI into the function's bundle
def test_a_powertools_rest_resolver_app_is_served_as_aws_would(
    tmp_path: Path, built_apps: Callable[[str], BuiltApp]
) -> None:
    """aws-lambda-powertools' APIGatewayRestResolver under `deployer serve`: a page, JSON in and out, query and
    path parameters, a header set by the app, and an image returned as bytes."""
    with serving_app(tmp_path, built_apps, "powertools", "PowertoolsFidelity", "main.handler", "python3.13") as port:
        check_framework_app(port, b"<h1>Hello from Powertools</h1>", "powertools", "item_id")
        pixel = http_call(port, "/pixel.png", headers=[("Accept", "image/png")])
        assert pixel.header("Content-Type") == ["image/png"] and pixel.body.startswith(b"\x89PNG\r\n\x1a\n")
        assert http_call(port, "/nowhere").status == 404


@pytest.mark.network  # installs Express and serverless-http from the npm registry into the function's bundle
def test_an_express_app_behind_serverless_http_is_served_as_aws_would(
    tmp_path: Path, built_apps: Callable[[str], BuiltApp]
) -> None:
    """Express through serverless-http under `deployer serve`: a page, JSON in and out, query and path
    parameters, a header set by the app, and an image returned as bytes."""
    if shutil.which("node") is None:
        pytest.skip("no node here")
    with serving_app(
        tmp_path, built_apps, "express_serverless_http", "ExpressFidelity", "main.handler", "nodejs22.x"
    ) as port:
        check_framework_app(port, b"<h1>Hello from Express</h1>", "express", "itemId")
        pixel = http_call(port, "/pixel.png", headers=[("Accept", "image/png")])
        assert pixel.header("Content-Type") == ["image/png"] and pixel.body.startswith(b"\x89PNG\r\n\x1a\n")
