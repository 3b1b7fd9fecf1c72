"""`deployer build`: the same source gives the same bytes, and the zip carries only what it should."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deployer.build import LeftOut, build, build_lock, check_source
from deployer.config import load_config
from deployer.errors import DeployerError, UsageError
from tests.support import run_deployer


def names(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return archive.namelist()


def test_building_twice_and_in_another_folder_gives_the_same_sha256(project: Path, tmp_path_factory) -> None:
    first = build(load_config(project / "deploy.toml"), force=True)
    second = build(load_config(project / "deploy.toml"), force=True)
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "checkout"
    shutil.copytree(project, elsewhere, ignore=shutil.ignore_patterns("dist", ".deployer"))
    # Another checkout: other mtimes, other umask-given modes.
    os.utime(elsewhere / "function" / "main.py", (1_000_000_000, 1_000_000_000))
    (elsewhere / "function" / "main.py").chmod(0o600)
    third = build(load_config(elsewhere / "deploy.toml"), force=True)
    assert first.sha256 == second.sha256 == third.sha256
    assert first.path.read_bytes() == third.path.read_bytes()


def test_entries_are_sorted_with_fixed_times_and_normalised_modes(project: Path) -> None:
    source = project / "function"
    (source / "pkg").mkdir()
    (source / "pkg" / "b.py").write_text("B = 1\n")
    (source / "pkg" / "a.py").write_text("A = 1\n")
    (source / "run.sh").write_text("#!/bin/sh\n")
    (source / "run.sh").chmod(0o700)
    artifact = build(load_config(project / "deploy.toml"), force=True)
    with zipfile.ZipFile(artifact.path) as archive:
        infos = archive.infolist()
    assert [info.filename for info in infos] == ["main.py", "pkg/", "pkg/a.py", "pkg/b.py", "run.sh"]
    modes = {info.filename: stat.S_IMODE(info.external_attr >> 16) for info in infos}
    assert modes == {"main.py": 0o644, "pkg/": 0o755, "pkg/a.py": 0o644, "pkg/b.py": 0o644, "run.sh": 0o755}
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.create_system for info in infos} == {3}
    assert all(info.extra == b"" for info in infos)


def test_the_zip_never_carries_git_state_caches_or_env_files(project: Path) -> None:
    source = project / "function"
    for junk in (".git/config", ".deployer/test.json", "__pycache__/main.cpython-313.pyc", "stale.pyc"):
        (source / junk).parent.mkdir(parents=True, exist_ok=True)
        (source / junk).write_text("x")
    (source / ".env").write_text("SECRET=1")
    (source / ".env.production").write_text("SECRET=2")
    artifact = build(load_config(project / "deploy.toml"), force=True)
    assert names(artifact.path) == ["main.py"]


def test_a_symlink_inside_the_source_is_followed(project: Path) -> None:
    source = project / "function"
    (source / "alias.py").symlink_to(source / "main.py")
    artifact = build(load_config(project / "deploy.toml"), force=True)
    with zipfile.ZipFile(artifact.path) as archive:
        assert archive.read("alias.py") == archive.read("main.py")


def test_a_symlink_leaving_the_source_folder_is_refused(project: Path, tmp_path_factory) -> None:
    secret = tmp_path_factory.mktemp("outside") / "id_rsa"
    secret.write_text("private key")
    (project / "function" / "key").symlink_to(secret)
    with pytest.raises(UsageError, match=r"symlink to .* outside the source folder"):
        build(load_config(project / "deploy.toml"), force=True)


def test_an_unchanged_source_is_not_rebuilt_and_an_edit_is(project: Path) -> None:
    config = load_config(project / "deploy.toml")
    first = build(config)
    assert build(config).rebuilt is False
    main = project / "function" / "main.py"
    main.write_text(main.read_text().replace("Hello", "Hi"))
    changed = build(config)
    assert changed.rebuilt and changed.sha256 != first.sha256


def test_a_missing_or_empty_source_folder_or_handler_file_is_a_usage_error(project: Path) -> None:
    config = load_config(project / "deploy.toml")
    (project / "function" / "main.py").rename(project / "function" / "app.py")
    with pytest.raises(UsageError, match=r"handler 'main.handler' needs main.py"):
        check_source(config)
    (project / "function" / "app.py").unlink()
    with pytest.raises(UsageError, match="is empty"):
        check_source(config)
    shutil.rmtree(project / "function")
    with pytest.raises(UsageError, match="does not exist; set \\[function\\] source"):
        check_source(config)


def test_a_package_over_lambdas_unzipped_limit_is_refused_before_upload(project: Path, monkeypatch) -> None:
    monkeypatch.setattr("deployer.build.LAMBDA_UNZIPPED_LIMIT", 1000)
    (project / "function" / "big.bin").write_bytes(b"\0" * 5000)
    with pytest.raises(Exception, match=r"over Lambda's 250 MB limit; largest: big\.bin"):
        build(load_config(project / "deploy.toml"), force=True)


@pytest.mark.network  # installs six from PyPI
def test_declared_dependencies_are_bundled_at_the_zip_root_reproducibly(project: Path) -> None:
    (project / "function" / "requirements.txt").write_text("six==1.17.0\n")
    config = load_config(project / "deploy.toml")
    first = build(config, force=True)
    assert {"main.py", "requirements.txt", "six.py"} <= set(names(first.path))
    shutil.rmtree(project / ".deployer" / "cache")  # a fresh install of the same inputs: the same bytes
    assert build(config, force=True).sha256 == first.sha256


def test_over_the_limit_the_largest_node_packages_are_named(project: Path, tmp_path_factory, monkeypatch) -> None:
    bundled = tmp_path_factory.mktemp("bundle")
    for package, size in (("left-pad", 10), ("huge-sdk", 3000), ("medium", 900)):
        (bundled / "node_modules" / package).mkdir(parents=True)
        (bundled / "node_modules" / package / "index.js").write_bytes(b"/" * size)
    monkeypatch.setattr("deployer.dependencies.bundle_dependencies", lambda *_, **__: bundled)
    monkeypatch.setattr("deployer.build.LAMBDA_UNZIPPED_LIMIT", 1000)
    with pytest.raises(Exception, match=r"largest: node_modules/huge-sdk .*, node_modules/medium"):
        build(load_config(project / "deploy.toml"), force=True)


# ---- what goes into the zip -------------------------------------------------------------------------------------

PEM_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def set_function_keys(project: Path, **keys: Any) -> None:
    """Rewrite [function] keys in the scratch project's deploy.toml (values as TOML literals via json)."""
    lines = []
    for line in (project / "deploy.toml").read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if key not in keys:
            lines.append(line)
        if line.strip() == "[function]":
            lines += [f"{name} = {json.dumps(value)}" for name, value in keys.items()]
    (project / "deploy.toml").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("layout", ["source is the project folder", "source holds the project folder"])
def test_a_source_holding_the_project_never_packs_dist_or_deployer_state_and_rebuilds_the_same_bytes(
    project: Path, layout: str
) -> None:
    if layout == "source is the project folder":
        shutil.move(project / "function" / "main.py", project / "main.py")
        shutil.rmtree(project / "function")
        set_function_keys(project, source=".")
        inside = ""
    else:  # the app's folder is one level down; the source is the folder above it
        app = project / "app"
        app.mkdir()
        shutil.move(project / "deploy.toml", app / "deploy.toml")
        shutil.move(project / "function" / "main.py", project / "main.py")
        shutil.rmtree(project / "function")
        set_function_keys(app, source="..")
        project, inside = app, "app/"
    config = load_config(project / "deploy.toml")
    first = build(config, force=True)
    second = build(config, force=True)  # dist/ now holds the first zip, .deployer/ the build lock
    assert second.sha256 == first.sha256
    packed = names(second.path)
    assert not [name for name in packed if name.startswith((f"{inside}dist/", f"{inside}.deployer/"))]
    assert f"{inside}deploy.toml" in packed and "main.py" in packed
    assert LeftOut(f"{inside}dist/", "build output") in second.left_out
    assert LeftOut(f"{inside}.deployer/", "deployer state") in second.left_out


def test_secret_material_is_never_packed_and_the_build_says_so_in_one_line(project: Path) -> None:
    source = project / "function"
    secrets = {
        "id_rsa": "x",
        "keys/id_ed25519": "x",
        "deploy-key": PEM_KEY,  # a private key by its content, whatever its name
        "certs/server.pem": "\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\n",
        ".aws/credentials": "[default]\naws_secret_access_key = x\n",
        ".npmrc": "//registry.npmjs.org/:_authToken=x\n",
        ".pypirc": "[pypi]\npassword = x\n",
        ".netrc": "machine example.com password x\n",
        ".git-credentials": "https://user:x@example.com\n",
        ".docker/config.json": '{"auths": {}}',
        ".env.local": "SECRET=1\n",
    }
    kept = {"id_rsa.pub": "ssh-ed25519 AAAA", "certs/server.crt": "-----BEGIN CERTIFICATE-----\n", "notes.txt": "hi"}
    for name, text in {**secrets, **kept}.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    messages: list[str] = []
    artifact = build(load_config(project / "deploy.toml"), force=True, log=messages.append)
    assert names(artifact.path) == ["certs/", "certs/server.crt", "id_rsa.pub", "keys/", "main.py", "notes.txt"]
    assert {item.path: item.reason for item in artifact.left_out} == {
        ".aws/": "secret: AWS credentials",
        ".docker/": "secret: Docker credentials",
        ".env.local": "secret: environment file",
        ".git-credentials": "secret: credentials",
        ".netrc": "secret: credentials",
        ".npmrc": "secret: registry token",
        ".pypirc": "secret: registry token",
        "certs/server.pem": "secret: private key",
        "deploy-key": "secret: private key",
        "id_rsa": "secret: private key",
        "keys/id_ed25519": "secret: private key",
    }
    (line,) = [message for message in messages if message.startswith("left out")]
    assert line == (
        "left out 11 paths: .aws/ (secret: AWS credentials), .docker/ (secret: Docker credentials), "
        ".env.local (secret: environment file), .git-credentials (secret: credentials), "
        ".netrc (secret: credentials), and 6 more"
    )


def test_exclude_globs_match_paths_inside_the_zip_like_gitignore(project: Path) -> None:
    source = project / "function"
    for name in (
        "README.md", "pkg/NOTES.md", "tests/test_main.py", "pkg/tests/test_pkg.py", "docs/a/b.txt",
        "pkg/docs/kept.txt", "setup.cfg", "pkg/setup.cfg", "pkg/tests.py", "pkg/__init__.py",
    ):  # fmt: skip
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("x")
    set_function_keys(project, exclude=["*.md", "tests/", "docs/**", "/setup.cfg"])
    messages: list[str] = []
    artifact = build(load_config(project / "deploy.toml"), force=True, log=messages.append)
    assert names(artifact.path) == [
        "main.py", "pkg/", "pkg/__init__.py", "pkg/docs/", "pkg/docs/kept.txt", "pkg/setup.cfg", "pkg/tests.py",
    ]  # fmt: skip
    excluded = "excluded by [function] exclude"
    assert artifact.left_out == tuple(
        LeftOut(path, excluded) for path in ("README.md", "docs/", "pkg/NOTES.md", "pkg/tests/", "setup.cfg", "tests/")
    )
    assert messages[-1] == (
        f"left out 6 paths: README.md ({excluded}), docs/ ({excluded}), pkg/NOTES.md ({excluded}), "
        f"pkg/tests/ ({excluded}), setup.cfg ({excluded}), and 1 more"
    )


def test_dependencies_are_filtered_by_name_and_exclude_but_never_read_for_keys(
    project: Path, tmp_path_factory, monkeypatch
) -> None:
    bundled = tmp_path_factory.mktemp("bundle")
    for name, text in (("pkg/__init__.py", ""), ("pkg/README.md", "x"), ("pkg/.env", "A=1"),
                       ("pkg/tests/id_rsa", "x"), ("pkg/tests/test_key.pem", PEM_KEY)):  # fmt: skip
        (bundled / name).parent.mkdir(parents=True, exist_ok=True)
        (bundled / name).write_text(text)
    monkeypatch.setattr("deployer.dependencies.bundle_dependencies", lambda *_, **__: bundled)
    set_function_keys(project, exclude=["*.md"])
    artifact = build(load_config(project / "deploy.toml"), force=True)
    assert names(artifact.path) == ["main.py", "pkg/", "pkg/__init__.py", "pkg/tests/", "pkg/tests/test_key.pem"]
    assert [item.path for item in artifact.left_out] == ["pkg/.env", "pkg/tests/id_rsa", "pkg/README.md"]


def test_an_npmrc_reaches_npm_but_never_the_zip(project: Path, monkeypatch) -> None:
    source = project / "function"
    (source / "main.py").unlink()
    (source / "index.js").write_text("exports.handler = async () => ({statusCode: 200});\n")
    (source / "package.json").write_text('{"name": "app", "version": "1.0.0", "dependencies": {"x": "1"}}')
    (source / ".npmrc").write_text("//registry.example/:_authToken=secret\n")
    set_function_keys(project, runtime="nodejs22.x", handler="index.handler")
    seen: list[str] = []

    def npm(command: list[str], cwd: Path, **_: Any) -> subprocess.CompletedProcess[str]:
        seen.append((cwd / ".npmrc").read_text())
        (cwd / "node_modules" / "x").mkdir(parents=True)
        (cwd / "node_modules" / "x" / "index.js").write_text("module.exports = 1;\n")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr("deployer.dependencies.subprocess.run", npm)
    artifact = build(load_config(project / "deploy.toml"), force=True)
    assert seen == ["//registry.example/:_authToken=secret\n"]
    assert names(artifact.path) == ["index.js", "node_modules/", "node_modules/x/", "node_modules/x/index.js",
                                    "package.json"]  # fmt: skip
    assert LeftOut(".npmrc", "secret: registry token") in artifact.left_out


@pytest.mark.parametrize(
    ("exclude", "message"),
    [
        (["!keep.py"], r"pattern '!keep\.py': negation is not supported: list only what to leave out"),
        (["tests\\"], r"pattern 'tests\\\\' is not a gitignore pattern \(a lone \\ at its end\?\); fix it in"),
        (["*.py"], r"handler 'main\.handler' needs main\.py, which the build leaves out .*change \[function\] exclude"),
    ],
)
def test_an_exclude_that_cannot_work_is_refused_before_anything_is_written(
    project: Path, exclude: list[str], message: str
) -> None:
    set_function_keys(project, exclude=exclude)
    with pytest.raises(UsageError, match=message) as raised:
        build(load_config(project / "deploy.toml"), force=True)
    assert "\n" not in str(raised.value)
    assert not (project / "dist").exists()


# ---- clear one-line errors --------------------------------------------------------------------------------------


def assert_refused(project: Path, message: str) -> UsageError:
    """build() refuses with one UsageError line matching `message` (exit code 2) and writes no zip."""
    with pytest.raises(UsageError, match=message) as raised:
        build(load_config(project / "deploy.toml"), force=True)
    assert "\n" not in str(raised.value) and raised.value.exit_code == 2
    assert not (project / "dist" / "example.zip").exists()
    assert not list((project / "dist").glob(".build-*")) if (project / "dist").is_dir() else True
    return raised.value


def test_a_symlink_loop_is_a_one_line_usage_error(project: Path) -> None:
    source = project / "function"
    (source / "a").symlink_to(source / "b")
    (source / "b").symlink_to(source / "a")
    assert_refused(project, r"function/a is a symlink that loops back on itself; remove it or point it at a real file")


def test_a_folder_symlink_to_its_own_parent_is_a_one_line_usage_error(project: Path) -> None:
    (project / "function" / "pkg").mkdir()
    (project / "function" / "pkg" / "up").symlink_to(project / "function")
    assert_refused(project, r"pkg/up is a symlink to .*/function, a folder that holds it, .*; remove the link")


def test_a_folder_reached_twice_through_a_symlink_is_packed_twice(project: Path) -> None:
    (project / "function" / "vendor" / "lib").mkdir(parents=True)
    (project / "function" / "vendor" / "lib" / "util.py").write_text("X = 1\n")
    (project / "function" / "lib").symlink_to(project / "function" / "vendor" / "lib")
    artifact = build(load_config(project / "deploy.toml"), force=True)
    assert {"lib/util.py", "vendor/lib/util.py"} <= set(names(artifact.path))


def test_a_dangling_symlink_is_a_one_line_usage_error(project: Path) -> None:
    (project / "function" / "config.json").symlink_to(project / "nowhere.json")
    assert_refused(project, r"function/config\.json is a symlink to .*nowhere\.json, which does not exist; remove the")


def test_a_file_name_that_is_not_utf8_is_a_one_line_usage_error(project: Path) -> None:
    (project / "function" / os.fsdecode(b"caf\xe9.txt")).write_text("x")
    error = assert_refused(project, r"caf\\xe9\.txt: its name is not valid UTF-8, which Lambda cannot unpack; rename")
    str(error).encode("utf-8")  # printable on any terminal: no undecodable bytes in the message


def test_the_cli_reports_a_broken_source_in_one_line_without_a_traceback(project: Path) -> None:
    (project / "function" / "loop").symlink_to(project / "function" / "loop")
    result = run_deployer(project, "build")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "loops back on itself" in result.stderr and not (project / "dist").exists()


@pytest.mark.parametrize(
    ("blocker", "purpose"), [("dist", "the built zip"), (".deployer", "its state, locks and caches")]
)
def test_a_file_where_deployer_needs_a_folder_is_a_one_line_usage_error(
    project: Path, blocker: str, purpose: str
) -> None:
    (project / blocker).write_text("not a folder")
    assert_refused(project, rf"{blocker} is a file, but deployer keeps {purpose} in a folder there; move or delete")
    assert (project / blocker).read_text() == "not a folder"
    assert not (project / "dist").is_dir() and not (project / ".deployer").is_dir()


@pytest.mark.parametrize("manifest", ["", '{"fingerprint": "ab', "[]", '{"sha256": 1}'])
def test_an_unreadable_manifest_is_stale_and_the_zip_is_rebuilt(project: Path, manifest: str) -> None:
    config = load_config(project / "deploy.toml")
    first = build(config)
    (project / "dist" / "example.zip.json").write_text(manifest)
    again = build(config)
    assert again.rebuilt and again.sha256 == first.sha256
    assert json.loads((project / "dist" / "example.zip.json").read_text())["sha256"] == first.sha256
    assert build(config).rebuilt is False


# ---- the bytes hashed are the bytes uploaded ---------------------------------------------------------------------


def test_a_build_interrupted_before_its_manifest_never_leaves_one_naming_other_bytes(
    project: Path, monkeypatch
) -> None:
    config = load_config(project / "deploy.toml")
    build(config)
    main = project / "function" / "main.py"
    main.write_text(main.read_text().replace("Hello", "Hi"))
    real_dumps = json.dumps

    def killed_at_the_manifest(data: Any, *args: Any, **kwargs: Any) -> str:
        if isinstance(data, dict) and "fingerprint" in data:
            raise KeyboardInterrupt
        return real_dumps(data, *args, **kwargs)

    monkeypatch.setattr("deployer.build.json.dumps", killed_at_the_manifest)
    with pytest.raises(KeyboardInterrupt):
        build(config)
    monkeypatch.undo()
    zip_path, manifest = project / "dist" / "example.zip", project / "dist" / "example.zip.json"
    # The old manifest went before the new zip was written, and the new one was never finished: no manifest
    # names bytes other than the zip's, so the next build cannot take the zip for up to date.
    assert zip_path.is_file() and not manifest.exists()
    assert sorted(path.name for path in (project / "dist").iterdir()) == ["example.zip"]
    assert build(config).rebuilt


def test_temp_files_of_a_killed_build_are_removed_by_the_next_one(project: Path) -> None:
    (project / "dist").mkdir()
    for name in (".build-k1ll3d.zip", ".build-k1ll3d.tmp"):
        (project / "dist" / name).write_bytes(b"half a zip")
    build(load_config(project / "deploy.toml"), force=True)
    assert sorted(path.name for path in (project / "dist").iterdir()) == ["example.zip", "example.zip.json"]


def test_read_verified_gives_the_built_bytes_and_refuses_a_zip_changed_since(project: Path) -> None:
    config = load_config(project / "deploy.toml")
    artifact = build(config)
    assert artifact.read_verified() == artifact.path.read_bytes()
    main = project / "function" / "main.py"
    main.write_text(main.read_text().replace("Hello", "Hi"))
    build(config)  # another build replaced dist/example.zip behind the first one's back
    with pytest.raises(DeployerError, match=r"example\.zip changed since it was built .*nothing was uploaded"):
        artifact.read_verified()


HOLD_THE_BUILD_LOCK = """
import sys, time
from pathlib import Path
from deployer.build import build_lock
from deployer.config import load_config
with build_lock(load_config(Path(sys.argv[1])), command="up --version 1.0.0"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def hold_build_lock(project: Path) -> Iterator[Any]:
    """Start a process that holds the project's build lock for `seconds`; it is stopped after the test."""
    holders: list[subprocess.Popen[str]] = []

    def hold(seconds: float) -> subprocess.Popen[str]:
        command = [sys.executable, "-c", HOLD_THE_BUILD_LOCK, str(project / "deploy.toml"), str(seconds)]
        holder = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        holders.append(holder)
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        return holder

    yield hold
    for holder in holders:
        holder.kill()
        holder.wait()


def test_a_build_waits_for_another_holder_of_the_build_lock_then_names_it(
    project: Path, hold_build_lock, monkeypatch
) -> None:
    monkeypatch.setattr("deployer.build.lock.BUILD_LOCK_WAIT", 0.5)
    holder = hold_build_lock(30)
    with pytest.raises(DeployerError, match=rf"`up --version 1\.0\.0` \(pid {holder.pid} on .*wait for it to finish"):
        build(load_config(project / "deploy.toml"), force=True)
    assert not (project / "dist").exists()
    holder.kill()
    holder.wait()
    assert build(load_config(project / "deploy.toml"), force=True).rebuilt  # the lock went with its holder


def test_a_build_proceeds_once_the_holder_is_done(project: Path, hold_build_lock) -> None:
    holder = hold_build_lock(0.5)
    messages: list[str] = []
    assert build(load_config(project / "deploy.toml"), log=messages.append).rebuilt
    assert messages[0].startswith(f"waiting for `up --version 1.0.0` (pid {holder.pid} on ")


def test_up_can_hold_the_build_lock_around_build(project: Path, monkeypatch) -> None:
    monkeypatch.setattr("deployer.build.lock.BUILD_LOCK_WAIT", 0.5)
    config = load_config(project / "deploy.toml")
    with build_lock(config, command="up --version 1.0.0"):
        artifact = build(config)
        assert artifact.read_verified()
        lock = json.loads((project / ".deployer" / "build.lock").read_text())
        assert lock["command"] == "up --version 1.0.0" and lock["pid"] == os.getpid()
    assert (project / ".deployer" / "build.lock").read_text() == ""  # held by nobody now


def test_a_build_without_exclude_patterns_does_not_import_pathspec(project: Path) -> None:
    """A fast start: pathspec costs ~8 ms to import, and only [function] exclude needs it."""
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from deployer.build import build\n"
        "from deployer.config import load_config\n"
        "build(load_config(Path('deploy.toml')))\n"
        "print('pathspec' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=project, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "False"
    assert (project / "dist" / "example.zip").is_file()
