"""Never harm the operator, round two (issue 20): what deployer reads, runs and prints that it did not write.

Terminal escapes and Rich markup from others are shown, never obeyed; an endpoint's password is never echoed;
an event file is read with a bound; installs run without the caller's AWS credentials; the artifact bucket's
bootstrap changes only a bucket deployer made; uploads killed half-way are cleaned up.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from deployer.cli import app
from deployer.config import load_config
from deployer.serve import make_server
from tests.account import APP, BUCKET, Account
from tests.support import running

STATE_KEY = f"deployer-state/{APP}/test/state.json"
LOCK_KEY = f"deployer-state/{APP}/test/lock.json"
ESC = "\x1b"
# What a hostile function prints and answers: clear the screen, retitle the terminal, ask for the cursor's
# position (the terminal types the answer into the shell), and Rich markup.
HOSTILE = """\
def handler(event, context):
    print("\\x1b[2J\\x1b]0;owned\\x07[bold red]printed[/]")
    if event.get("path") == "/fail":
        raise ValueError("\\x1b[6n[blink]boom[/]")
    return {"statusCode": 200, "headers": {"X-Evil": "\\x1b[2Jvalue[bold]x[/]"}, "body": "ok"}
"""


def run(project: Path, *arguments: str) -> Result:
    """The CLI in-process, stdout and stderr apart."""
    return CliRunner().invoke(app, [*arguments, "--config", str(project / "deploy.toml")])


@pytest.fixture
def hostile_project(project: Path) -> Path:
    (project / "function" / "main.py").write_text(HOSTILE)
    return project


def assert_shown_not_obeyed(text: str) -> None:
    """No control character reaches the terminal (a tab aside); the escapes are there to read."""
    assert not [char for char in text if (ord(char) < 0x20 and char not in "\t\n") or 0x7F <= ord(char) < 0xA0]
    assert "\\x1b" in text


# ---- 10: terminal injection --------------------------------------------------------------------------------------


def test_invoke_and_logs_show_the_functions_escapes_and_markup_as_text(hostile_project: Path, aws_account) -> None:
    assert run(hostile_project, "up", "--version", "1.0.0").exit_code == 0
    answer = run(hostile_project, "invoke")
    assert answer.exit_code == 0, answer.stderr
    assert_shown_not_obeyed(answer.stderr)
    assert "X-Evil: \\x1b[2Jvalue[bold]x[/]" in answer.stderr.splitlines()  # the header value, markup as text

    failed = run(hostile_project, "invoke", "--path", "/fail")
    assert failed.exit_code == 1
    assert_shown_not_obeyed(failed.stderr)
    assert "\\x1b]0;owned\\x07[bold red]printed[/]" in failed.stderr  # the log tail
    assert "ValueError: \\x1b[6n[blink]boom[/]" in failed.stderr.splitlines()[-1]  # the error line

    logs = run(hostile_project, "logs")
    assert logs.exit_code == 0
    assert_shown_not_obeyed(logs.stdout)
    assert "\\x1b[2J\\x1b]0;owned\\x07[bold red]printed[/]" in logs.stdout


def test_status_shows_a_tampered_states_fields_escaped_and_cut(project: Path, aws_account: Account) -> None:
    assert run(project, "up", "--version", "1.0.0").exit_code == 0
    s3 = aws_account.client("s3")
    state = json.loads(s3.get_object(Bucket=BUCKET, Key=STATE_KEY)["Body"].read())
    state["base_url"] = "https://x\x1b]0;owned\x07/\n" + "a" * 5000
    s3.put_object(Bucket=BUCKET, Key=STATE_KEY, Body=json.dumps(state))
    status = run(project, "status")
    assert status.exit_code == 0, status.stderr
    assert_shown_not_obeyed(status.stdout)
    line = next(line for line in status.stdout.splitlines() if line.startswith("base_url"))
    assert line.startswith("base_url       https://x\\x1b]0;owned\\x07/\\naaa") and len(line) < 300


def test_a_lock_written_by_someone_else_is_shown_escaped_cut_and_without_markup(
    project: Path, aws_account: Account
) -> None:
    s3 = aws_account.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    holder = {"command": "up [bold]x[/]", "pid": 7, "host": "box\n\x1b[2Jfake line" + "h" * 5000, "user": "u"}
    s3.put_object(Bucket=BUCKET, Key=LOCK_KEY, Body=json.dumps(holder))
    refused = run(project, "up", "--version", "1.0.0")
    assert refused.exit_code == 1
    assert_shown_not_obeyed(refused.stderr)
    assert "`up [bold]x[/]`" in refused.stderr and "on box\\n\\x1b[2Jfake line" in refused.stderr
    assert "h" * 201 not in refused.stderr  # the host is cut

    removed = run(project, "unlock", "--yes")
    assert removed.exit_code == 0, removed.stderr
    assert_shown_not_obeyed(removed.stderr)
    assert "removed the lock held by `up [bold]x[/]`" in removed.stderr  # markup shown, not applied
    assert "h" * 201 not in removed.stderr


def test_serve_shows_a_clients_path_and_the_functions_output_escaped(
    hostile_project: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    server = make_server(load_config(hostile_project / "deploy.toml"), "127.0.0.1", 0)
    with running(server), socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
        # Any client may send this (a browser page, curl): http.client refuses to, a raw socket does not.
        client.sendall(b"GET /\x1b]0;owned\x07\x1b[2J HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert client.recv(100).startswith(b"HTTP/1.1 200")
    printed = capfd.readouterr().err
    assert_shown_not_obeyed(printed)
    assert "GET /\\x1b]0;owned\\x07\\x1b[2J 200" in printed  # the request line
    assert "\\x1b[2J\\x1b]0;owned\\x07[bold red]printed[/]" in printed  # what the function printed


# ---- 11: an endpoint's password ----------------------------------------------------------------------------------


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused connection is tried three times; without botocore's back-off in between."""
    monkeypatch.setattr("deployer.aws.CONNECT_TIMEOUT", 0.3)
    monkeypatch.setattr("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda self, context: 0)


@pytest.mark.usefixtures("short_timeouts")
def test_an_endpoints_password_is_never_printed(cli, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    # botocore's EndpointConnectionError quotes the URL it could not reach, userinfo and all.
    refused = cli("up", "--version", "1.0.0", "--endpoint-url", f"http://deploy:s3cret@127.0.0.1:{port}", expect=1)
    assert "cannot reach AWS" in refused and f"http://***@127.0.0.1:{port}" in refused
    malformed = cli("plan", "--version", "1.0.0", "--endpoint-url", "ftp://deploy:s3cret@host", expect=2)
    assert "'ftp://***@host' is not an http:// or https:// URL" in malformed
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://deploy:s3cret@")
    from_the_environment = cli("plan", "--version", "1.0.0", expect=2)
    assert "s3cret" not in refused + malformed + from_the_environment


# ---- 12: an event file is read with a bound ----------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--event", "--data"])
@pytest.mark.parametrize("source", ["/dev/zero", "big"])
def test_an_event_or_body_over_lambdas_6_mb_is_refused_without_reading_it_all(
    cli, project: Path, monkeypatch: pytest.MonkeyPatch, option: str, source: str
) -> None:
    """/dev/zero has no size: it was read until the machine ran out of memory (22 GB, issue 20)."""
    from deployer import operate

    if source == "big":
        source = str(project / "big.json")
        with open(source, "wb") as big:
            big.truncate(operate.MAX_INVOKE_PAYLOAD + 1)  # sparse: its size says it all
    reads: list[int] = []
    real_open = Path.open

    def counted_open(self: Path, *arguments, **options):  # type: ignore[no-untyped-def]
        stream = real_open(self, *arguments, **options)
        if str(self) == source:
            real_read = stream.read
            stream.read = lambda size=-1: reads.append(size) or real_read(size)
        return stream

    monkeypatch.setattr(Path, "open", counted_open)
    monkeypatch.setattr("deployer.cli.common.connect", lambda *_: pytest.fail("AWS was called"))
    given = source if option == "--event" else f"@{source}"
    message = cli("invoke", option, given, expect=2)
    assert "is larger than 6 MB, Lambda's limit for an invocation's event" in message
    assert reads == ([operate.MAX_INVOKE_PAYLOAD + 1] if source == "/dev/zero" else [])


# ---- 2: the bucket bootstrap changes only a bucket deployer made -------------------------------------------------

KMS_ENCRYPTION = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]}


@pytest.mark.parametrize("backend", ["s3", "local"])
def test_a_refused_bucket_creation_leaves_no_note_and_someone_elses_bucket_keeps_its_settings(
    cli, project: Path, aws_account: Account, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    import boto3

    from tests.faults import fail

    if backend == "local":  # the artifact's upload makes the bucket, not the shared state's lock
        config = project / "deploy.toml"
        config.write_text(config.read_text() + '\n[state]\nbackend = "local"\n')
    session = boto3.Session()
    fail(session, "s3", "CreateBucket", "AccessDenied", "Access Denied", 403, times=99)
    monkeypatch.setattr("deployer.aws.boto3.Session", lambda: session)
    cli("up", "--version", "1.0.0", expect=1)
    assert not list((project / ".deployer").glob("unfinished-*"))

    # Someone else (in the same account) makes the bucket, with settings of their own; the next up uses it.
    s3 = aws_account.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration=KMS_ENCRYPTION)
    monkeypatch.setattr("deployer.aws.boto3.Session", boto3.Session)
    cli("up", "--version", "1.0.0", expect=0)
    rules = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert [rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for rule in rules] == ["aws:kms"]
    with pytest.raises(s3.exceptions.ClientError, match="NoSuchPublicAccessBlockConfiguration"):
        s3.get_public_access_block(Bucket=BUCKET)


@pytest.mark.parametrize("backend", ["s3", "local"])
def test_a_bucket_left_half_made_is_noted_the_same_way_whoever_made_it_and_the_next_up_finishes_it(
    cli, project: Path, aws_account: Account, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """The shared state's lock and the artifact's upload both make the bucket; a run stopped between CreateBucket
    and its settings leaves one note, a file beside the local state (the state cannot hold it: it may live in
    that very bucket), and the next up, of either backend, makes that bucket private and encrypted."""
    import boto3

    from tests.faults import fail

    if backend == "local":
        config = project / "deploy.toml"
        config.write_text(config.read_text() + '\n[state]\nbackend = "local"\n')
    session = boto3.Session()
    fail(session, "s3", "PutPublicAccessBlock", "AccessDenied", "Access Denied", 403, times=1)
    monkeypatch.setattr("deployer.aws.boto3.Session", lambda: session)
    cli("up", "--version", "1.0.0", expect=1)
    s3 = aws_account.client("s3")
    assert [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]] == [BUCKET]
    with pytest.raises(s3.exceptions.ClientError, match="NoSuchPublicAccessBlockConfiguration"):
        s3.get_public_access_block(Bucket=BUCKET)
    assert [note.name for note in (project / ".deployer").glob("unfinished-*")] == [f"unfinished-bucket-{BUCKET}"]

    monkeypatch.setattr("deployer.aws.boto3.Session", boto3.Session)
    cli("up", "--version", "1.0.0", expect=0)
    blocked = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert all(blocked.values())
    [rule] = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert list((project / ".deployer").glob("unfinished-*")) == []


# ---- 9: installs run without the caller's AWS credentials; npm's install scripts only when asked ----------------

# What a hostile install script (a setup.py, an npm postinstall) would steal: the variables and the shared files.
STEAL = """
import json, os, pathlib, sys
home = pathlib.Path.home()
found = {
    "variables": sorted(set(os.environ) & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}),
    "credentials": (home / ".aws" / "credentials").read_text() if (home / ".aws" / "credentials").is_file() else "",
    "shared": pathlib.Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", home / ".aws/credentials")).read_text()
    if pathlib.Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", home / ".aws/credentials")).is_file() else "",
}
pathlib.Path(sys.argv[1]).write_text(json.dumps(found))
"""


@pytest.fixture
def developers_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A developer's machine: keys in the environment and in ~/.aws/credentials."""
    home = tmp_path / "developer"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text("[default]\naws_secret_access_key = FILE-SECRET\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ENV-SECRET")
    monkeypatch.delenv("AWS_SHARED_CREDENTIALS_FILE")  # the default place, ~/.aws/credentials
    return home


def test_pip_and_npm_run_without_the_callers_aws_credentials(developers_credentials: Path, tmp_path: Path) -> None:
    """pip builds a source distribution or a local path by running its setup.py: any code, with this environment."""
    from deployer import dependencies

    stolen = tmp_path / "stolen.json"
    (tmp_path / "steal.py").write_text(STEAL)
    dependencies._run([sys.executable, str(tmp_path / "steal.py"), str(stolen)], cwd=tmp_path)
    found = json.loads(stolen.read_text())
    assert found == {"variables": [], "credentials": "", "shared": ""}
    assert (developers_credentials / ".aws" / "credentials").is_file()  # the developer's own file is left alone


NPM_SCRIPTS = {"postinstall": "node -e \"require('fs').writeFileSync(process.env.MARKER, 'ran')\""}


@pytest.mark.parametrize("scripts", [False, True])
def test_npm_runs_the_packages_install_scripts_only_when_deploy_toml_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scripts: bool
) -> None:
    """Observed with npm 9 and 10: `npm install` runs the root package's and every dependency's preinstall,
    install and postinstall scripts unless --ignore-scripts."""
    from deployer.config import load_config
    from deployer.dependencies import bundle_dependencies

    source = tmp_path / "function"
    source.mkdir()
    (source / "package.json").write_text(json.dumps({"name": "f", "version": "1.0.0", "scripts": NPM_SCRIPTS}))
    (source / "index.js").write_text("exports.handler = async () => ({statusCode: 200, body: 'ok'});\n")
    config = tmp_path / "deploy.toml"
    config.write_text(
        '[app]\nname = "Scripts"\n[artifact]\nbucket = "scripts-bucket"\n'
        '[function]\nruntime = "nodejs22.x"\nhandler = "index.handler"\n'
        + ("[dependencies]\nscripts = true\n" if scripts else "")
    )
    marker = tmp_path / "marker"
    monkeypatch.setenv("MARKER", str(marker))
    bundle_dependencies(load_config(config), tmp_path / "cache")
    assert marker.exists() == scripts


def test_an_unknown_dependencies_key_is_refused(tmp_path: Path) -> None:
    from deployer.config import load_config
    from deployer.errors import UsageError

    config = tmp_path / "deploy.toml"
    config.write_text('[app]\nname = "X"\n[artifact]\nbucket = "x-bucket"\n[dependencies]\nscript = true\n')
    with pytest.raises(UsageError, match="script"):
        load_config(config)


# ---- 15: uploads killed half-way are cleaned up ------------------------------------------------------------------


def test_a_killed_runs_unfinished_uploads_are_aborted_and_the_bucket_aborts_them_after_a_day(
    cli, aws_account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 keeps (and bills) the parts of a multipart upload nobody completes or aborts, forever
    (docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html); a killed `up` of a large zip leaves one."""
    from datetime import UTC, datetime, timedelta

    import boto3

    from tests.faults import rewrite

    cli("up", "--version", "0.9.0", expect=0)
    s3 = aws_account.client("s3")
    rules = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert [(rule["Status"], rule["AbortIncompleteMultipartUpload"]) for rule in rules] == [
        ("Enabled", {"DaysAfterInitiation": 1})
    ]

    # moto dates every upload 2010-11-10; S3 gives the time it began: these began just now.
    began = {key: datetime.now(UTC) for key in ("v1.0.0/example.zip", "v0.8.0/example.zip", "v1.0.0/other.zip")}
    for key in began:  # the last: another app's
        s3.create_multipart_upload(Bucket=BUCKET, Key=key)

    def as_s3_dates_them(answer: dict) -> None:
        for upload in answer.get("Uploads", []):
            upload["Initiated"] = began[upload["Key"]]

    session = boto3.Session()
    rewrite(session, "s3", "ListMultipartUploads", as_s3_dates_them)
    monkeypatch.setattr("deployer.aws.boto3.Session", lambda: session)

    def unfinished() -> list[str]:
        return sorted(upload["Key"] for upload in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))

    cli("up", "--version", "1.0.0", expect=0)
    # The key it uploads is aborted first; a recent one of another version may be another stage's, going on.
    assert unfinished() == ["v0.8.0/example.zip", "v1.0.0/other.zip"]

    began["v0.8.0/example.zip"] -= timedelta(hours=2)  # now it is a killed run's
    began["v1.0.0/other.zip"] -= timedelta(hours=2)
    cli("down", "--yes", expect=0)
    assert unfinished() == ["v1.0.0/other.zip"]  # another app's is never touched


def test_a_local_path_built_into_compiled_code_for_this_machine_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Observed with pip 24 and 25: `./localpkg` in requirements.txt is built on this machine even with
    --only-binary=:all: and --platform, and its wheel installed whatever its tag (here, pip's install is stood in
    for: the wheel it would leave, compiled for linux_x86_64)."""
    import subprocess

    from deployer import dependencies
    from deployer.config import Config
    from deployer.errors import DeployerError

    source = tmp_path / "function"
    source.mkdir()
    (source / "requirements.txt").write_text("./localpkg\n")
    config = Config(
        path=tmp_path / "deploy.toml", app_name="Local", region="us-east-1", bucket="local-bucket",
        artifact_name="f.zip", source=source, handler="main.handler", runtime="python3.13", memory=128,
        timeout=3, architecture="x86_64",
    )  # fmt: skip

    def pip_builds_it_here(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        target = Path(command[command.index("--target") + 1])
        info = target / "localpkg-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "WHEEL").write_text(f"Wheel-Version: 1.0\nTag: {tag}\n")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(dependencies, "_run", pip_builds_it_here)
    tag = "cp313-cp313-linux_x86_64"
    with pytest.raises(DeployerError, match=r"localpkg .* was built on this machine for linux_x86_64"):
        dependencies.bundle_dependencies(config, tmp_path / "cache")
    tag = "py3-none-any"  # pure Python: fine wherever it was built
    assert dependencies.bundle_dependencies(config, tmp_path / "cache") is not None
