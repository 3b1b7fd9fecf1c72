"""Dependency bundling against the real registries (PyPI, npm); installs are shared per module to stay fast.

The tests that install are marked `network`; the rest (cache hits on a faked install, refusals found
before pip or npm asks a registry) run offline.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deployer.config import Config
from deployer.dependencies import bundle_dependencies
from deployer.errors import DeployerError, UsageError

APPS = Path(__file__).parent / "apps"
REAL_RUN = subprocess.run


def make_config(source: Path, runtime: str = "python3.13", architecture: str = "x86_64") -> Config:
    return Config(
        path=source.parent / "deploy.toml",
        app_name="DepsTest",
        region="us-east-1",
        bucket="deps-test-bucket",
        artifact_name="function.zip",
        source=source.resolve(),
        handler="main.handler",
        runtime=runtime,
        memory=128,
        timeout=3,
        architecture=architecture,
    )


def copy_app(name: str, destination: Path) -> Path:
    """A private copy of tests/apps/<name>/function, so a test can check (or change) the source folder."""
    return Path(shutil.copytree(APPS / name / "function", destination / "function"))


def tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


class Spy:
    """Stands in for subprocess.run: records each command, then runs it for real."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], *args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.commands.append([str(part) for part in command])
        return REAL_RUN(command, *args, **kwargs)


def no_subprocess(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    raise AssertionError(f"a cache hit must not run anything: {args} {kwargs}")


def bundle_with_spy(config: Config, cache_root: Path) -> tuple[Path, Spy]:
    spy = Spy()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess, "run", spy)
        folder = bundle_dependencies(config, cache_root)
    assert folder is not None
    return folder, spy


# ---- python ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def python_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_app("deps_python", tmp_path_factory.mktemp("python-app"))


@pytest.fixture(scope="module")
def python_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("python-cache") / ".deployer" / "cache"


@pytest.fixture(scope="module")
def python_bundle(python_source: Path, python_cache: Path) -> tuple[Path, Spy]:
    return bundle_with_spy(make_config(python_source), python_cache)


@pytest.fixture(scope="module")
def six_only_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("six-app") / "function"
    source.mkdir()
    (source / "requirements.txt").write_text("six==1.17.0\n")
    return source


@pytest.mark.network
def test_python_requirements_are_installed_at_the_folder_root(python_bundle: tuple[Path, Spy]) -> None:
    folder, spy = python_bundle
    names = {path.name for path in folder.iterdir()}
    assert {"six.py", "six-1.17.0.dist-info", "docopt.py", "docopt-0.6.2.dist-info"} <= names
    install = next(command for command in spy.commands if "install" in command)
    assert install[1:3] == ["-m", "pip"]
    assert {"--only-binary=:all:", "manylinux2014_x86_64", "manylinux_2_28_x86_64", "3.13"} <= set(install)


@pytest.mark.network
def test_python_bundle_holds_no_host_specific_files(python_bundle: tuple[Path, Spy]) -> None:
    folder, _ = python_bundle
    files = listing(folder)
    assert not [name for name in files if "__pycache__" in name or name.endswith((".pyc", "direct_url.json"))]
    assert (folder / "pycodestyle.py").is_file()
    assert not (folder / "bin").exists(), "console scripts name this machine's python"
    record = (folder / "pycodestyle-2.12.1.dist-info" / "RECORD").read_text()
    assert "pycodestyle.py," in record and "../" not in record
    here = sys.prefix.encode()
    assert not [path for path in folder.rglob("*") if path.is_file() and here in path.read_bytes()]


@pytest.mark.network
def test_source_only_pure_python_package_is_built_into_a_wheel(python_bundle: tuple[Path, Spy]) -> None:
    folder, spy = python_bundle
    assert any(command[3] == "wheel" and "docopt==0.6.2" in command for command in spy.commands)
    wheel = (folder / "docopt-0.6.2.dist-info" / "WHEEL").read_text()
    assert "Root-Is-Purelib: true" in wheel and "py3-none-any" in wheel


@pytest.mark.network
def test_second_call_is_a_cache_hit_that_runs_no_pip(
    python_bundle: tuple[Path, Spy], python_source: Path, python_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = python_bundle
    monkeypatch.setattr(subprocess, "run", no_subprocess)
    messages: list[str] = []
    assert bundle_dependencies(make_config(python_source), python_cache, messages.append) == folder
    assert messages == [f"dependencies: cached in {folder}"]


@pytest.mark.network
def test_changed_requirements_miss_the_cache_and_clear_stale_scratch(
    python_bundle: tuple[Path, Spy], six_only_source: Path, python_cache: Path
) -> None:
    folder, _ = python_bundle
    stale = python_cache / "dependencies" / ".scratch-killed"
    stale.mkdir()
    os.utime(stale, (0, 0))
    changed, spy = bundle_with_spy(make_config(six_only_source), python_cache)
    assert changed != folder and folder.is_dir()
    assert spy.commands, "a changed requirements.txt must run pip"
    assert (changed / "six.py").is_file() and not (changed / "docopt.py").exists()
    assert not stale.exists()


@pytest.mark.network
def test_architectures_have_their_own_cache_entries(six_only_source: Path, python_cache: Path) -> None:
    x86, _ = bundle_with_spy(make_config(six_only_source, architecture="x86_64"), python_cache)
    arm, spy = bundle_with_spy(make_config(six_only_source, architecture="arm64"), python_cache)
    assert arm != x86
    assert "manylinux2014_aarch64" in spy.commands[0] and "manylinux2014_x86_64" not in spy.commands[0]


@pytest.mark.network
def test_same_inputs_give_the_same_files_in_another_cache(
    python_bundle: tuple[Path, Spy], python_source: Path, tmp_path: Path
) -> None:
    folder, _ = python_bundle
    again = bundle_dependencies(make_config(python_source), tmp_path / "cache")
    assert again is not None and again.name == folder.name
    assert listing(again) == listing(folder)
    assert tree_hash(again) == tree_hash(folder)


@pytest.mark.network
@pytest.mark.parametrize(
    ("requirement", "built_from_source"),
    [
        # compiled packages whose wheels stop at python 3.12: refused without building anything
        ("markupsafe==2.1.5", False),
        ("ruamel-yaml-clib==0.2.8", False),
        # a source distribution only, with a C extension: built, found not to be pure Python, refused
        ("crcmod==1.7", True),
    ],
)
def test_dependency_without_a_lambda_wheel_fails_naming_it(
    requirement: str, built_from_source: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "function"
    source.mkdir()
    (source / "requirements.txt").write_text(f"{requirement}\n")
    cache = tmp_path / "cache"
    spy = Spy()
    monkeypatch.setattr(subprocess, "run", spy)
    with pytest.raises(DeployerError, match=r"no wheel of '[^']+' for python3\.13 on manylinux x86_64") as raised:
        bundle_dependencies(make_config(source), cache)
    message = str(raised.value)
    assert f"no wheel of {requirement!r}" in message and "\n" not in message
    assert ("not pure Python" in message) == built_from_source
    assert any(command[3] == "wheel" for command in spy.commands) == built_from_source
    assert list((cache / "dependencies").iterdir()) == [], "a failed install must leave no cache entry"


def test_pip_error_is_one_line(tmp_path: Path) -> None:
    source = tmp_path / "function"
    source.mkdir()
    (source / "requirements.txt").write_text("this is not === a requirement\n")
    expected = r"pip could not install .*requirements\.txt: Invalid requirement"
    with pytest.raises(DeployerError, match=expected) as raised:
        bundle_dependencies(make_config(source), tmp_path / "cache")
    assert "\n" not in str(raised.value)


def test_interrupted_install_leaves_no_half_cache(
    six_only_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(command: list[str], *args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        target = Path(command[command.index("--target") + 1])
        (target / "half.py").write_text("# half written\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(subprocess, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bundle_dependencies(make_config(six_only_source), tmp_path / "cache")
    assert list((tmp_path / "cache" / "dependencies").iterdir()) == []


@pytest.mark.parametrize("runtime", ["python3.13", "nodejs22.x"])
def test_function_without_declared_dependencies_gives_none(
    runtime: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "function"
    source.mkdir()
    (source / "main.py").write_text("def handler(event, context):\n    return {}\n")
    (source / "requirements.txt" if runtime.startswith("node") else source / "package.json").write_text("{}\n")
    monkeypatch.setattr(subprocess, "run", no_subprocess)
    assert bundle_dependencies(make_config(source, runtime=runtime), tmp_path / "cache") is None
    assert not (tmp_path / "cache").exists()


@pytest.fixture
def pip_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """pip with none of this machine's settings (pip.conf, PIP_* variables); the test sets the index."""
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    return monkeypatch


def requirements_source(tmp_path: Path, text: str) -> Path:
    source = tmp_path / "function"
    source.mkdir()
    (source / "requirements.txt").write_text(text)
    return source


def assert_nothing_cached(cache: Path) -> None:
    assert not (cache / "dependencies").exists() or list((cache / "dependencies").iterdir()) == []


def test_a_requirement_the_index_does_not_have_is_named_as_missing(tmp_path: Path, pip_settings) -> None:
    index = tmp_path / "index"  # a package index in a folder: it holds no project at all
    index.mkdir()
    pip_settings.setenv("PIP_INDEX_URL", index.as_uri())
    source = requirements_source(tmp_path, "No_Such.Project-zz[extra]==1.0\n")
    spy = Spy()
    pip_settings.setattr(subprocess, "run", spy)
    expected = r"^'No_Such\.Project-zz' does not exist on the package index; check its name in requirements\.txt$"
    with pytest.raises(DeployerError, match=expected):
        bundle_dependencies(make_config(source), tmp_path / "cache")
    assert not any(command[3] == "wheel" for command in spy.commands), "nothing to build from source"
    assert_nothing_cached(tmp_path / "cache")


def test_a_project_the_index_has_without_a_lambda_wheel_is_not_called_missing(tmp_path: Path, pip_settings) -> None:
    index = tmp_path / "index"
    (index / "tinypkg").mkdir(parents=True)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "tinypkg-1.0.tar.gz").write_bytes(b"not really a source distribution")
    (index / "tinypkg" / "index.html").write_text('<a href="../../files/tinypkg-1.0.tar.gz">tinypkg-1.0.tar.gz</a>')
    pip_settings.setenv("PIP_INDEX_URL", index.as_uri())
    source = requirements_source(tmp_path, "tinypkg==1.0\n")
    with pytest.raises(DeployerError, match=r"^no wheel of 'tinypkg==1\.0' for python3\.13 on manylinux x86_64"):
        bundle_dependencies(make_config(source), tmp_path / "cache")
    assert_nothing_cached(tmp_path / "cache")


def test_an_index_that_cannot_be_reached_is_named_instead_of_the_requirement(tmp_path: Path, pip_settings) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pip_settings.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{port}/simple/")
    pip_settings.setenv("PIP_RETRIES", "0")
    pip_settings.setenv("PIP_TIMEOUT", "5")
    source = requirements_source(tmp_path, "six==1.17.0\n")
    expected = (
        rf"^pip could not reach the package index for 'six==1\.17\.0' \(http://127\.0\.0\.1:{port}/simple/six/: "
        r"connection error\); check the network, or the index settings \(pip\.conf, PIP_INDEX_URL\)$"
    )
    with pytest.raises(DeployerError, match=expected):
        bundle_dependencies(make_config(source), tmp_path / "cache")
    assert_nothing_cached(tmp_path / "cache")


@pytest.mark.network
def test_a_requirement_pypi_does_not_have_is_named_as_missing(tmp_path: Path) -> None:
    source = requirements_source(tmp_path, "deployer-test-no-such-project-7f3a9c==1.0\n")
    expected = r"^'deployer-test-no-such-project-7f3a9c' does not exist on the package index; check its name in"
    with pytest.raises(DeployerError, match=expected) as raised:
        bundle_dependencies(make_config(source), tmp_path / "cache")
    assert "\n" not in str(raised.value)
    assert_nothing_cached(tmp_path / "cache")


@pytest.mark.parametrize("blocker", [".deployer", ".deployer/cache"])
def test_a_file_where_the_cache_folder_goes_is_a_one_line_usage_error(
    blocker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = requirements_source(tmp_path, "six==1.17.0\n")
    (tmp_path / blocker).parent.mkdir(exist_ok=True)
    (tmp_path / blocker).write_text("not a folder")
    monkeypatch.setattr(subprocess, "run", no_subprocess)
    expected = rf"^{tmp_path / blocker} is a file, but deployer keeps its dependency cache in a folder there; move or"
    with pytest.raises(UsageError, match=expected) as raised:
        bundle_dependencies(make_config(source), tmp_path / ".deployer" / "cache")
    assert "\n" not in str(raised.value) and raised.value.exit_code == 2
    assert (tmp_path / blocker).read_text() == "not a folder"


# ---- node ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_app("deps_node", tmp_path_factory.mktemp("node-app"))


@pytest.fixture(scope="module")
def node_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("node-cache")


@pytest.fixture(scope="module")
def node_bundle(node_source: Path, node_cache: Path) -> Iterator[tuple[Path, Spy, list[str]]]:
    before = listing(node_source)
    folder, spy = bundle_with_spy(make_config(node_source, runtime="nodejs22.x"), node_cache)
    yield folder, spy, before


@pytest.mark.network
def test_node_production_dependencies_are_installed_with_npm_ci(node_bundle: tuple[Path, Spy, list[str]]) -> None:
    folder, spy, _ = node_bundle
    assert [path.name for path in folder.iterdir()] == ["node_modules"]
    assert (folder / "node_modules" / "is-number" / "index.js").is_file()
    assert not (folder / "node_modules" / "isobject").exists(), "devDependencies must be left out"
    assert spy.commands[0][1:3] == ["ci", "--omit=dev"]
    assert "--cpu=x64" in spy.commands[0] and "--os=linux" in spy.commands[0]


@pytest.mark.network
def test_node_install_leaves_the_source_folder_untouched(
    node_bundle: tuple[Path, Spy, list[str]], node_source: Path
) -> None:
    _, _, before = node_bundle
    assert listing(node_source) == before
    assert not (node_source / "node_modules").exists()


@pytest.mark.network
def test_node_cache_hit_runs_no_npm(
    node_bundle: tuple[Path, Spy, list[str]], node_source: Path, node_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _, _ = node_bundle
    monkeypatch.setattr(subprocess, "run", no_subprocess)
    assert bundle_dependencies(make_config(node_source, runtime="nodejs22.x"), node_cache) == folder


@pytest.mark.network
def test_node_without_lockfile_uses_npm_install_and_is_reproducible(
    node_bundle: tuple[Path, Spy, list[str]], tmp_path: Path
) -> None:
    locked, _, _ = node_bundle
    source = copy_app("deps_node", tmp_path)
    (source / "package-lock.json").unlink()
    before = listing(source)
    first, spy = bundle_with_spy(make_config(source, runtime="nodejs22.x"), tmp_path / "one")
    second = bundle_dependencies(make_config(source, runtime="nodejs22.x"), tmp_path / "two")
    assert spy.commands[0][1:3] == ["install", "--omit=dev"]
    assert second is not None and first != locked
    assert tree_hash(first) == tree_hash(second)
    assert not (first / "node_modules" / "isobject").exists()
    assert listing(source) == before, "npm install must not write a lockfile into the source folder"


@pytest.mark.network
def test_npm_error_is_one_line(tmp_path: Path) -> None:
    source = tmp_path / "function"
    source.mkdir()
    (source / "package.json").write_text('{"name": "broken", "version": "1.0.0", "dependencies": {"is-number": "99"}}')
    with pytest.raises(DeployerError, match=r"npm install failed for .*package\.json: .*is-number@99") as raised:
        bundle_dependencies(make_config(source, runtime="nodejs22.x"), tmp_path / "cache")
    assert "\n" not in str(raised.value)


def test_an_install_says_how_long_it_took_and_where_it_is_cached(tmp_path: Path, monkeypatch) -> None:
    source = tmp_path / "function"
    source.mkdir()
    (source / "requirements.txt").write_text("six==1.17.0\n")
    monkeypatch.setattr("deployer.dependencies._install_python", lambda config, target, scratch, log: log("ran pip"))
    messages: list[str] = []
    folder = bundle_dependencies(make_config(source), tmp_path / "cache", messages.append)
    assert messages[0] == "ran pip"
    assert re.fullmatch(rf"dependencies: installed in \d+\.\ds, cached in {re.escape(str(folder))}", messages[1])
