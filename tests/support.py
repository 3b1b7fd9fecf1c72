"""Helpers the test modules share: ports, processes, running the CLI (as a process or in this one), the local cloud.

One place for them, so that no test module imports another. tests/conftest.py holds the fixtures built on them;
tests/account.py looks at the emulated account; tests/faults.py injects AWS's misbehaviour.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import io
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer.retry import Waits
from tests.account import Account

if TYPE_CHECKING:
    from deployer.serve import LocalApiServer


class Waiting:
    """The Waits a test's runs get (make_run's, the `cli` fixture's): nothing sleeps, each delay is recorded, each
    wait said is heard. A test may set `clock` and `sleep` (a clock that moves only when the deployer sleeps)
    before or after it makes a run: the Waits reads them at each call."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.said: list[tuple[str, float]] = []
        self.uploaded: list[tuple[int, int]] = []
        self.clock = time.monotonic
        self.sleep = self.delays.append

    def waits(self) -> Waits:
        return Waits(
            sleep=lambda seconds: self.sleep(seconds),
            clock=lambda: self.clock(),
            on_wait=lambda what, seconds: self.said.append((what, seconds)),
            on_upload_progress=lambda sent, total: self.uploaded.append((sent, total)),
        )


REPO = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
APPS = Path(__file__).resolve().parent / "apps"  # the functions `deployer serve` tests run
KILL_AFTER_CALL = Path(__file__).with_name("kill_after_call.py")

# The one AWS managed policy deployer attaches (resources/role.py). moto would parse ~1,300 of them for every
# account it makes (about a second after each reset); the emulators of the tests hold this one only.
MANAGED_POLICIES_WE_USE = ("AWSLambdaBasicExecutionRole",)


def keep_only_the_managed_policies_we_use() -> str:
    """Trim moto's AWS managed policies to MANAGED_POLICIES_WE_USE; the full set, as moto had it, is returned."""
    import moto.iam.models

    every = moto.iam.models.aws_managed_policies_data
    policies = json.loads(every)
    moto.iam.models.aws_managed_policies_data = json.dumps({name: policies[name] for name in MANAGED_POLICIES_WE_USE})
    return every


def share_botocore_model_cache() -> Any:
    """Every botocore session made from now on, in this process, reads AWS's service models once between them.

    botocore caches what its Loader read (service models, endpoints, paginators) per Loader, and every new session
    gets a new Loader: each test's boto3.Session and each in-process command parsed the same JSON again (about a
    quarter of a deploy test's time). Loaders for the same data path now share that one cache, as a session's
    clients share theirs; so each client's endpoint rules, parsed into a RuleSet for every client made, are parsed
    once per ruleset read. What deployer does with a session does not change. Returns the undo."""
    import botocore.endpoint_provider
    import botocore.session

    made = botocore.session.create_loader
    caches: dict[str | None, dict[Any, Any]] = {}

    def create_loader(search_path_string: str | None = None) -> Any:
        loader = made(search_path_string)
        loader._cache = caches.setdefault(search_path_string, {})
        return loader

    provider = botocore.endpoint_provider.EndpointProvider
    make_provider = provider.__init__
    rulesets: dict[tuple[int, int], Any] = {}  # by the ids of the rules and partitions, kept alive by `caches`

    def init_provider(self: Any, ruleset_data: Any, partition_data: Any, excluded_params: Any = None) -> None:
        key = (id(ruleset_data), id(partition_data))
        if key not in rulesets:
            make_provider(self, ruleset_data, partition_data, excluded_params)
            rulesets[key] = (self.ruleset, ruleset_data, partition_data)
        self.ruleset = rulesets[key][0]
        self._excluded_params = excluded_params or frozenset()

    botocore.session.create_loader = create_loader
    provider.__init__ = init_provider  # type: ignore[method-assign]

    def undo() -> None:
        botocore.session.create_loader = made
        provider.__init__ = make_provider  # type: ignore[method-assign]

    return undo


def share_botocore_client_classes() -> Any:
    """Every botocore session made from now on, in this process, makes each service's client class once between them,
    and translates each event name (botocore's aliases of old service names) once.

    botocore builds a new client class for every client (a method and a docstring object per operation: hundreds for
    Lambda or API Gateway), and every session and every client it copies its event emitter for starts with an empty
    cache of event names: about half of the 4 ms a client costs, paid by each command for each service and by each
    test's own clients. The class depends only on the service's model (read once, shared_botocore_model_cache) and
    on the `creating-client-class` handlers, which are boto3's and botocore's own in every session here; the name
    cache only on the alias table, the same in every session. Each client still has its own emitter, config and
    connection pool. Returns the undo."""
    import botocore.client
    import botocore.hooks

    make_class = botocore.client.ClientCreator._create_client_class
    classes: dict[tuple[str, int], tuple[Any, Any]] = {}  # the model kept alive with its class: ids are not reused

    def create_client_class(self: Any, service_name: str, service_model: Any) -> Any:
        model = service_model._service_description
        key = (service_name, id(model))
        if key not in classes:
            classes[key] = (make_class(self, service_name, service_model), model)
        return classes[key][0]

    make_aliaser = botocore.hooks.EventAliaser.__init__
    names: dict[str, str] = {}

    def init_aliaser(self: Any, event_emitter: Any, event_aliases: Any = None) -> None:
        make_aliaser(self, event_emitter, event_aliases)
        if self._event_aliases == botocore.hooks.EVENT_ALIASES:
            self._alias_name_cache = names

    botocore.client.ClientCreator._create_client_class = create_client_class  # type: ignore[method-assign]
    botocore.hooks.EventAliaser.__init__ = init_aliaser  # type: ignore[method-assign]

    def undo() -> None:
        botocore.client.ClientCreator._create_client_class = make_class  # type: ignore[method-assign]
        botocore.hooks.EventAliaser.__init__ = make_aliaser  # type: ignore[method-assign]

    return undo


def find_moto_handlers_once() -> Any:
    """In-process moto (mock_aws) works out a backend's URL patterns on every request it answers: for S3 it reloads
    moto.s3.urls each time, as those may change with MOTO_* settings in the environment. Worked out once per backend
    class and those settings here (the same patterns, so the same handler for each request). Returns the undo."""
    from moto.core.base_backend import BaseBackend

    urls = BaseBackend.urls
    found: dict[tuple[type, tuple[tuple[str, str], ...]], Any] = {}

    def cached_urls(self: Any) -> Any:
        key = (
            type(self),
            tuple(sorted((name, value) for name, value in os.environ.items() if name.startswith("MOTO_"))),
        )
        if key not in found:
            found[key] = urls.fget(self)  # type: ignore[attr-defined]
        return found[key]

    BaseBackend.urls = property(cached_urls)  # type: ignore[method-assign,assignment]

    def undo() -> None:
        BaseBackend.urls = urls  # type: ignore[method-assign]

    return undo


def build_each_cli_command_once() -> Any:
    """Typer builds its click command from the app's functions (their signatures and annotations, evaluated again)
    on every `app()` and every CliRunner.invoke: about 25 ms, more than many a command's own work. Built once per
    app and process here, as a user's single `deployer` run builds it once; the command parses each invocation
    afresh (click keeps what it parsed on the invocation's Context). A forked child inherits what is built.
    Returns the undo."""
    import typer.main
    import typer.testing

    made = typer.main.get_command
    built: dict[int, tuple[Any, int, int, Any]] = {}

    def get_command(typer_instance: Any) -> Any:
        shape = (len(typer_instance.registered_commands), len(typer_instance.registered_groups))
        known = built.get(id(typer_instance))
        if known is None or known[0] is not typer_instance or known[1:3] != shape:
            known = built[id(typer_instance)] = (typer_instance, *shape, made(typer_instance))
        return known[3]

    typer.main.get_command = get_command
    typer.testing._get_command = get_command  # typer.testing imported it by name

    def undo() -> None:
        typer.main.get_command = made
        typer.testing._get_command = made

    return undo


def install_moto_fixes() -> None:
    """Where moto differs from AWS in what deployer reads back, mend it as the local cloud does: version numbers,
    a policy per qualifier, an API's binary media types and tags, the front doors' (deployer.local.patches)."""
    from deployer.local.patches import (
        install_binary_media_types,
        install_front_door_fixes,
        install_lambda_fixes,
        install_qualified_policies,
        install_rest_api_tags,
    )

    install_lambda_fixes()
    install_qualified_policies()
    install_binary_media_types()
    install_rest_api_tags()
    install_front_door_fixes()


def answer_each_request_sooner() -> None:
    """In the tests' moto_server: moto finds the backend a request's host names by listing its own package folder
    (a listdir and ~170 isdir) on every request, and werkzeug formats a log line per request for a stderr nobody
    reads; together about a quarter of its time. The folder does not change while it runs; errors are still logged."""
    import logging

    import moto.backends

    modules = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: modules
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


# moto_server with the same fixes and only the managed policies we use: a separate process.
MOTO_SERVER = (
    "import sys; from tests.support import answer_each_request_sooner, install_moto_fixes, "
    "keep_only_the_managed_policies_we_use; "
    "install_moto_fixes(); keep_only_the_managed_policies_we_use(); answer_each_request_sooner(); "
    "from moto.server import main; main(sys.argv[1:])"
)


# ---- ports and processes ----------------------------------------------------------------------------------------


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick, so two xdist workers never get the same one)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def gone(pid: int, seconds: float = 15.0) -> bool:
    """The process exited and was reaped: no /proc entry at all (no zombie left behind)."""
    deadline = time.monotonic() + seconds
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not Path(f"/proc/{pid}").exists()


def stopped(pid: int) -> bool:
    """The process is paused (SIGSTOP): its state in /proc is T."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "T"
    except OSError:
        return False


def lock_is_free(lock: Path) -> bool:
    """Whether a command could take this state lock now (it is a kernel lock, not the file's presence)."""
    with lock.open("a") as stream:
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(stream, fcntl.LOCK_UN)
    return True


# ---- the CLI ------------------------------------------------------------------------------------------------------


def writes(run: Any) -> list[str]:
    """The calls of a run that change the account, in order (deployer.aws.is_mutating)."""
    from deployer.aws import is_mutating

    return [call for call in run.aws.calls if is_mutating(call)]


def edit(path: Path, old: str, new: str, count: int = -1) -> None:
    """Replace `old` in the file (every time, or the first `count` times); it must be there."""
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, count))


def assert_in_order(calls: Sequence[str], *operations: str) -> None:
    """Every call of each operation comes before every call of the next: an order that holds whichever answer comes
    first while steps run at once (the rest of a request log's order is not the product's promise)."""
    for first, then in itertools.pairwise(operations):
        assert first in calls and then in calls, f"{first} or {then} never called: {calls}"
        last = max(index for index, call in enumerate(calls) if call == first)
        assert last < calls.index(then), f"{first} after {then}: {calls}"


def run_deployer(project: Path, *arguments: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed `deployer` console script, as a user runs it, in the project folder.

    For what needs a process of its own: its pid, a signal, the console script itself, a server that outlives
    the command. Everything else runs in this process with `run_in_process`, the same answer a second sooner."""
    executable = shutil.which("deployer", path=str(Path(sys.executable).parent)) or "deployer"
    return subprocess.run(
        [executable, *arguments], cwd=project, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def run_in_process(project: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`deployer <arguments>` in the project folder, run by typer's CliRunner in this process (this process's
    environment, as a child would have it); answered as `run_deployer` answers. An exception the CLI let out
    is a crash, as a process's: exit code 1 and its traceback on stderr."""
    from typer.testing import CliRunner

    from deployer.cli import app

    with contextlib.chdir(project):
        result = CliRunner().invoke(app, list(arguments), catch_exceptions=True)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(["deployer", *arguments], result.exit_code, result.stdout, stderr)


def deployer_ok(project: Path, *arguments: str) -> str:
    """`deployer <arguments>` in its own process, which must succeed without a traceback: its stdout."""
    result = run_deployer(project, *arguments)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def in_process_ok(project: Path, *arguments: str) -> str:
    """As `deployer_ok`, in this process."""
    result = run_in_process(project, *arguments)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def run_until_call(project: Path, call: int, *arguments: str, signal_name: str = "KILL") -> subprocess.Popen[str]:
    """`deployer <arguments>` in the project folder, signalled right after its `call`th AWS call (0: never)."""
    environment = {**os.environ, "DEPLOYER_TEST_AFTER_CALL": str(call), "DEPLOYER_TEST_SIGNAL": signal_name}
    return subprocess.Popen(
        [sys.executable, str(KILL_AFTER_CALL), *arguments],
        cwd=project,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass(frozen=True)
class Killed:
    """A run forked and signalled (fork_until_call): its exit status (-N for signal N), stderr and pid."""

    returncode: int
    stderr: str
    pid: int


def fork_until_call(
    project: Path, call: int, *arguments: str, signal_name: str = "KILL", after_operation: str | None = None
) -> Killed:
    """`deployer <arguments>` in the project folder, in a child forked from this process (deployer and botocore are
    imported already: no interpreter to start), signalled right after its `call`th AWS call, counted over all its
    threads as tests/kill_after_call.py counts them, or after the first call of `after_operation`. With neither
    (call 0), nothing is signalled and the child's stderr ends with `aws calls: N`, as kill_after_call.py's.
    The child shares nothing with this process but its memory as it was: its own sessions, clients and files."""
    from botocore.handlers import BUILTIN_HANDLERS

    with contextlib.ExitStack() as stack:
        errors = stack.enter_context(tempfile.TemporaryFile())  # the child's stderr
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                os.dup2(errors.fileno(), 2)
                os.dup2(os.open(os.devnull, os.O_RDWR), 1)
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                os.chdir(project)
                calls, counting = [0], threading.Lock()

                def after_call(model: Any, http_response: Any, **_: Any) -> None:
                    if http_response.url is None:  # answered by a read sent ahead: its read was the call
                        return
                    with counting:
                        calls[0] += 1
                        if calls[0] == call or model.name == after_operation:
                            os.kill(os.getpid(), getattr(signal, "SIG" + signal_name))

                BUILTIN_HANDLERS.append(("after-call.*.*", after_call))
                sys.argv = ["deployer", *arguments]
                from deployer.cli import main

                main()
                code = 0
            except SystemExit as exit:
                code = exit.code if isinstance(exit.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                if not call and not after_operation:
                    with contextlib.suppress(Exception):
                        sys.stderr.flush()
                    os.write(2, f"\naws calls: {calls[0]}\n".encode())  # fd 2: sys.stderr may be pytest's capture
                os._exit(code)
        deadline = time.monotonic() + 120
        while (status := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"deployer {' '.join(arguments)} did not end in 120 s")
            time.sleep(0.02)
        errors.seek(0)
        return Killed(os.waitstatus_to_exitcode(status[1]), errors.read().decode(errors="replace"), pid)


# ---- the local cloud ----------------------------------------------------------------------------------------------

_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@contextlib.contextmanager
def serve_process(project: Path, *options: str, listening: str = r"http://127\.0\.0\.1:(\d+)/") -> Iterator[int]:
    """`deployer serve --port 0 <options>` in the project folder, as a process of its own: the port it says it listens
    on (the first line on stdout, matched by `listening`); stopped with Ctrl-C (SIGINT) when the block ends."""
    deployer = Path(sys.executable).parent / "deployer"
    process = subprocess.Popen(
        [str(deployer), "serve", "--port", "0", *options], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(listening, line)
        assert found, (line, process.stderr.read() if process.stderr else "")
        yield int(found.group(1))
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=15)  # Ctrl-C stops it: else the test fails, the process killed
        finally:
            process.kill()


def fetch(url: str) -> tuple[int, bytes, dict[str, str]]:
    """GET `url` straight (no proxy): status, body, headers, whatever the status."""
    try:
        with _direct.open(url, timeout=30) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def signed_request(port: int, method: str, path: str, body: bytes = b"") -> urllib.request.Request:
    """A request to the local cloud signed with its credentials, as it wants every call it hands to moto."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from deployer.local.target import local_credentials

    credentials = local_credentials(port)
    request = AWSRequest(method=method, url=f"http://127.0.0.1:{port}{path}", data=body)
    SigV4Auth(Credentials(credentials.access_key_id, credentials.secret_access_key), "moto", REGION).add_auth(request)
    return urllib.request.Request(request.url, data=body, method=method, headers=dict(request.headers.items()))


def reset_local_cloud(port: int) -> None:
    """A clean emulated account on the local cloud (moto's reset, signed as the local cloud wants it)."""
    _direct.open(signed_request(port, "POST", "/moto-api/reset"), timeout=10).close()


def stop_for_sure(port: int) -> None:
    """Stop the emulator on `port`, kill it if it will not stop, and delete its log."""
    from deployer.local import control, log_path
    from deployer.process import alive

    found = control.health(port)
    try:
        control.stop(port)
    finally:
        if found is not None and alive(found.pid):
            os.killpg(found.pid, signal.SIGKILL)
        log_path(port).unlink(missing_ok=True)


# ---- functions and APIs made by hand, as `up` would make them -------------------------------------------------------

ACCOUNT = "123456789012"
ECHO = (
    "import json\n"
    "def handler(event, context):\n"
    "    keys = ('resource', 'path', 'httpMethod', 'pathParameters', 'queryStringParameters', 'body')\n"
    "    seen = {key: event[key] for key in keys}\n"
    "    seen['stage'] = event['requestContext']['stage']\n"
    "    seen['apiId'] = event['requestContext']['apiId']\n"
    "    return {'statusCode': 200, 'headers': {'Content-Type': 'application/json'}, 'body': json.dumps(seen)}\n"
)


def zipped(files: dict[str, str]) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        for name, text in files.items():
            bundle.writestr(name, text)
    return archive.getvalue()


def make_function(
    clients: dict[str, Any], code: str = ECHO, name: str = "echo", alias: str | None = "test", **configuration: Any
) -> str:
    """A function, its code published as version 1 behind `alias`, as `up` leaves it; the ARN an integration
    calls: the alias's (None: the unqualified function's)."""
    assume = {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    trust = {"Version": "2012-10-17", "Statement": [assume]}
    role = clients["iam"].create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust))
    created = clients["lambda"].create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role["Role"]["Arn"],
        Handler="main.handler",
        Code={"ZipFile": zipped({"main.py": code})},
        Timeout=5,
        **configuration,
    )
    if alias is None:
        return created["FunctionArn"]
    version = clients["lambda"].publish_version(FunctionName=name)["Version"]
    return clients["lambda"].create_alias(FunctionName=name, Name=alias, FunctionVersion=version)["AliasArn"]


def make_function_from_zip(
    clients: dict[str, Any], code: bytes, runtime: str, handler: str, name: str = "app", alias: str = "test"
) -> str:
    """A function from a built artifact (its zip's bytes), published as version 1 behind `alias`: the alias's ARN."""
    assume = {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    trust = {"Version": "2012-10-17", "Statement": [assume]}
    role = clients["iam"].create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust))
    clients["lambda"].create_function(
        FunctionName=name,
        Runtime=runtime,
        Role=role["Role"]["Arn"],
        Handler=handler,
        Code={"ZipFile": code},
        Timeout=10,
    )
    version = clients["lambda"].publish_version(FunctionName=name)["Version"]
    return clients["lambda"].create_alias(FunctionName=name, Name=alias, FunctionVersion=version)["AliasArn"]  # type: ignore[no-any-return]


def put_lambda_proxy(
    gateway: Any, api_id: str, resource_id: str, verb: str, function_arn: str, kind: str = "AWS_PROXY"
) -> None:
    """A `verb` method on the resource, open to anyone, integrated with the function (POST, as Lambda wants)."""
    from deployer.gateway.integration import lambda_integration_uri

    gateway.put_method(restApiId=api_id, resourceId=resource_id, httpMethod=verb, authorizationType="NONE")
    gateway.put_integration(
        restApiId=api_id,
        resourceId=resource_id,
        httpMethod=verb,
        type=kind,
        integrationHttpMethod="POST",
        uri=lambda_integration_uri("aws", REGION, function_arn),
    )


def make_http_api(
    clients: dict[str, Any], alias_arn: str, function: str, stage: str = "$default", grant: bool = True
) -> str:
    """An HTTP API as `up` makes one for `[api] type = "http"`: AWS_PROXY, payload 2.0, to the alias `test`;
    the `$default` route; the stage auto-deployed; the alias's permission scoped to the API (unless `grant` is
    False). Its ID."""
    gateway = clients["apigatewayv2"]
    api_id = str(gateway.create_api(Name=function, ProtocolType="HTTP")["ApiId"])
    integration = gateway.create_integration(
        ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=alias_arn, PayloadFormatVersion="2.0"
    )["IntegrationId"]
    gateway.create_route(ApiId=api_id, RouteKey="$default", Target=f"integrations/{integration}")
    gateway.create_stage(ApiId=api_id, StageName=stage, AutoDeploy=True)
    if grant:
        clients["lambda"].add_permission(
            FunctionName=function,
            Qualifier="test",
            StatementId="httpapi",
            Action="lambda:InvokeFunction",
            Principal="apigateway.amazonaws.com",
            SourceArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/*",
        )
    return api_id


def allow(clients: dict[str, Any], api_id: str, function: str = "echo", qualifier: str | None = "test") -> None:
    """What `up` grants: this API, any stage and method, may invoke the alias (None: the unqualified function)."""
    clients["lambda"].add_permission(
        FunctionName=function,
        **({"Qualifier": qualifier} if qualifier else {}),
        StatementId="apigateway",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/*/*",
    )


NAME = "greeter"
ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{NAME}"
CODE = (
    "import json, os, sys\n"
    "print('cold start of', PAGE)\n"
    "def handler(event, context):\n"
    "    print('handling', json.dumps(event))\n"
    "    print('to stderr too', file=sys.stderr)\n"
    "    if event.get('fail'):\n"
    "        raise ValueError('asked to fail')\n"
    "    if event.get('touch'):\n"
    "        open(event['touch'], 'w').write(context.aws_request_id)\n"
    "    if event.get('sleep'):\n"
    "        import time; time.sleep(event['sleep'])\n"
    "    return {'page': PAGE, 'version': context.function_version, 'invoked': context.invoked_function_arn,\n"
    "            'memory': context.memory_limit_in_mb}\n"
)


def release(page: str) -> bytes:
    return zipped({"main.py": f"PAGE = {page!r}\n" + CODE})


def make_greeter(account: Account, timeout: int = 3, **configuration: Any) -> Any:
    """Version 1 says "one" (128 MB), version 2 "two" (256 MB), $LATEST "latest"; the alias `live` is on 1. Each
    times out after `timeout` seconds."""
    iam, functions = account.client("iam"), account.client("lambda")
    trust = {
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    }
    role = iam.create_role(RoleName="greeter-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    functions.create_function(
        FunctionName=NAME,
        Runtime="python3.13",
        Role=role,
        Handler="main.handler",
        Code={"ZipFile": release("one")},
        Timeout=timeout,
        **configuration,
    )
    functions.publish_version(FunctionName=NAME)
    functions.update_function_code(FunctionName=NAME, ZipFile=release("two"))
    functions.update_function_configuration(FunctionName=NAME, MemorySize=256)
    functions.publish_version(FunctionName=NAME)
    functions.update_function_code(FunctionName=NAME, ZipFile=release("latest"))
    functions.create_alias(FunctionName=NAME, Name="live", FunctionVersion="1")
    return functions


def call(functions: Any, event: Any = None, **arguments: Any) -> tuple[dict[str, Any], Any]:
    arguments.setdefault("FunctionName", NAME)
    answer = functions.invoke(Payload=json.dumps(event if event is not None else {}).encode(), **arguments)
    payload = answer["Payload"].read()
    return answer, json.loads(payload) if payload else None


# ---- HTTP to a local server (`deployer serve`, the local cloud) ------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


def http_call(
    port: int,
    target: str = "/",
    method: str = "GET",
    body: bytes | None = None,
    headers: Sequence[tuple[str, str]] = (),
    host: str | None = None,
) -> Reply:
    """`method target` to 127.0.0.1:port; with `host`, under that Host header (a name no DNS serves), any Host among
    `headers` left out."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        connection.putrequest(method, target, skip_host=host is not None, skip_accept_encoding=True)
        if host is not None:
            connection.putheader("Host", host)
        for name, value in headers:
            if host is None or name.lower() != "host":
                connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


@contextlib.contextmanager
def running(server: LocalApiServer) -> Iterator[LocalApiServer]:
    """Serve `server` (deployer serve's, or any socketserver) on a thread until the block ends."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# ---- ACM ----------------------------------------------------------------------------------------------------------


def imported_certificate(account: Account, name: str) -> str:
    """An ISSUED certificate for `name` in ACM, as one imported (or issued long ago) would be."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return account.client("acm").import_certificate(
        Certificate=certificate.public_bytes(serialization.Encoding.PEM),
        PrivateKey=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ),
    )["CertificateArn"]
