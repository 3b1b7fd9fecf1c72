"""`deployer build`: the same source gives the same bytes, and the zip carries only what it should."""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from deployer.build import build, check_source
from deployer.config import load_config
from deployer.errors import UsageError


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
