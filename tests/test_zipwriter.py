"""deployer's own zip writer: zips that zipfile and Info-ZIP read and check, and rebuilds that reuse the previous
zip's compressed bytes yet give exactly the bytes of a clean build."""

from __future__ import annotations

import gc
import json
import os
import shutil
import stat
import subprocess
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from deployer.build import build, walk, zipwriter
from deployer.build.walk import Entry
from deployer.config import load_config


def unzip_test(path: Path) -> str:
    """Info-ZIP's own check of every entry (CRC included); its output names what failed."""
    result = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def fresh_build(project: Path) -> bytes:
    """The bytes of a clean build: nothing to reuse."""
    shutil.rmtree(project / "dist", ignore_errors=True)
    return build(load_config(project / "deploy.toml"), force=True).path.read_bytes()


@pytest.fixture
def compressed(monkeypatch) -> list[int]:
    """Counts the files the writer deflates (rather than reuses)."""
    calls: list[int] = []
    real = zlib.compressobj

    def counting(*args: Any) -> Any:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(zipwriter.zlib, "compressobj", counting)
    return calls


@pytest.fixture
def everything_settled(monkeypatch) -> None:
    """The writer trusts a file's recorded times only once they are older than the build by SETTLE_NS; files a
    test has just written are not. This moves the writer's clock ahead so they are."""
    real = zipwriter.time.time_ns
    monkeypatch.setattr(zipwriter.time, "time_ns", lambda: real() + 10 * zipwriter.SETTLE_NS)


def add_tree(source: Path) -> None:
    (source / "pkg").mkdir()
    (source / "pkg" / "text.py").write_text("VALUE = 'text'\n" * 2000)
    (source / "pkg" / "noise.bin").write_bytes(os.urandom(300_000))  # deflates to more than it is
    (source / "pkg" / "empty.py").write_bytes(b"")
    (source / "pkg" / "données.txt").write_text("non-ASCII name\n")
    (source / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (source / "run.sh").chmod(0o755)


def test_every_entry_reads_back_with_its_crc_in_zipfile_and_info_zip(project: Path) -> None:
    add_tree(project / "function")
    artifact = build(load_config(project / "deploy.toml"), force=True)
    with zipfile.ZipFile(artifact.path) as archive:
        assert archive.testzip() is None  # every entry decompressed and its CRC checked
        contents = {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}
        modes = {info.filename: stat.S_IMODE(info.external_attr >> 16) for info in archive.infolist()}
    source = project / "function"
    assert contents == {name: (source / name).read_bytes() for name in contents}
    assert set(contents) == {"main.py", "pkg/text.py", "pkg/noise.bin", "pkg/empty.py", "pkg/données.txt", "run.sh"}
    assert modes["run.sh"] == 0o755 and modes["pkg/"] == 0o755 and modes["pkg/text.py"] == 0o644
    checked = unzip_test(artifact.path)
    assert "No errors detected" in checked and "pkg/noise.bin" in checked


def test_the_bytes_are_those_zipfile_writes_for_the_same_entries(tmp_path: Path) -> None:
    """The layout is zipfile's writestr layout: artifacts built before this writer keep their sha256."""
    add_tree(tmp_path)
    entries = [
        Entry("pkg/", None, True),
        *(Entry(f"pkg/{path.name}", path, False) for path in sorted((tmp_path / "pkg").iterdir())),
        Entry("run.sh", tmp_path / "run.sh", True),
    ]
    ours = zipwriter.write_zip(entries, tmp_path / "ours.zip")
    with zipfile.ZipFile(tmp_path / "reference.zip", "w") as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            if entry.source is None:
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                archive.writestr(info, b"")
                continue
            info.external_attr = (stat.S_IFREG | (0o755 if entry.executable else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entry.source.read_bytes(), compresslevel=zipwriter.COMPRESSION_LEVEL)
    assert (tmp_path / "ours.zip").read_bytes() == (tmp_path / "reference.zip").read_bytes()
    assert set(ours.entries) == {entry.name for entry in entries if entry.source}


def test_more_entries_than_the_classic_end_record_holds_get_zip64_end_records(tmp_path: Path) -> None:
    count = 0xFFFF + 10
    entries = [Entry(f"d{index:06d}/", None, True) for index in range(count)]
    zipwriter.write_zip(entries, tmp_path / "many.zip")
    with zipfile.ZipFile(tmp_path / "many.zip") as archive:
        assert len(archive.infolist()) == count
    assert "No errors detected" in unzip_test(tmp_path / "many.zip")


def test_a_rebuild_after_one_change_compresses_only_that_file_and_equals_a_clean_build(
    project: Path, compressed: list[int]
) -> None:
    add_tree(project / "function")
    config = load_config(project / "deploy.toml")
    build(config, force=True)
    assert len(compressed) == 6
    compressed.clear()
    (project / "function" / "pkg" / "text.py").write_text("VALUE = 'changed'\n" * 2000)
    incremental = build(config)
    assert incremental.rebuilt and len(compressed) == 1
    assert incremental.path.read_bytes() == fresh_build(project)
    assert incremental.sha256 == build(config, force=True).sha256


def test_a_changed_file_mode_removed_and_added_file_are_all_in_the_rebuilt_zip(project: Path) -> None:
    source = project / "function"
    add_tree(source)
    config = load_config(project / "deploy.toml")
    build(config, force=True)
    (source / "pkg" / "text.py").write_text("VALUE = 'text'\n" * 1999 + "VALUE = 'last'\n")  # same size
    (source / "run.sh").chmod(0o644)
    (source / "pkg" / "noise.bin").unlink()
    (source / "pkg" / "added.py").write_text("ADDED = True\n")
    incremental = build(config)
    with zipfile.ZipFile(incremental.path) as archive:
        assert archive.testzip() is None
        assert archive.read("pkg/text.py") == (source / "pkg" / "text.py").read_bytes()
        assert archive.read("pkg/added.py") == b"ADDED = True\n"
        assert "pkg/noise.bin" not in archive.namelist()
        assert stat.S_IMODE(archive.getinfo("run.sh").external_attr >> 16) == 0o644
    assert incremental.path.read_bytes() == fresh_build(project)


def test_an_unchanged_file_whose_times_settled_is_reused_without_being_read(
    project: Path, compressed: list[int], everything_settled: None, monkeypatch
) -> None:
    source = project / "function"
    add_tree(source)
    config = load_config(project / "deploy.toml")
    first = build(config, force=True)
    read: list[Path] = []
    real_read_bytes = Path.read_bytes

    def counting(path: Path) -> bytes:
        read.append(path)
        return real_read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", counting)
    compressed.clear()
    (source / "pkg" / "added.py").write_text("ADDED = True\n")
    again = build(config, force=True)
    assert [path for path in read if path.is_relative_to(source)] == [source / "pkg" / "added.py"]
    assert len(compressed) == 1
    with zipfile.ZipFile(again.path) as archive:
        assert archive.testzip() is None
        assert archive.read("pkg/text.py") == (source / "pkg" / "text.py").read_bytes()
    assert again.content_sha256 != first.content_sha256


def test_a_previous_zip_that_is_not_the_one_its_manifest_names_is_not_reused(
    project: Path, compressed: list[int]
) -> None:
    add_tree(project / "function")
    config = load_config(project / "deploy.toml")
    artifact = build(config, force=True)
    data = bytearray(artifact.path.read_bytes())
    data[100] ^= 0xFF  # inside main.py's compressed bytes or pkg/'s header: either way not the recorded zip
    artifact.path.write_bytes(bytes(data))
    compressed.clear()
    rebuilt = build(config, force=True)
    assert len(compressed) == 6
    assert rebuilt.path.read_bytes() == fresh_build(project)


def test_a_hand_edited_manifest_entry_is_not_trusted(project: Path, compressed: list[int]) -> None:
    add_tree(project / "function")
    config = load_config(project / "deploy.toml")
    build(config, force=True)
    manifest_path = project / "dist" / "example.zip.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["entries"]["pkg/text.py"][3] ^= 1  # its CRC no longer matches the zip's local header
    manifest["entries"]["run.sh"] = "not a record"
    manifest_path.write_text(json.dumps(manifest))
    compressed.clear()
    rebuilt = build(config, force=True)
    assert len(compressed) == 2
    assert rebuilt.path.read_bytes() == fresh_build(project)


def test_another_compression_level_compresses_everything_again(
    project: Path, compressed: list[int], monkeypatch
) -> None:
    add_tree(project / "function")
    config = load_config(project / "deploy.toml")
    build(config, force=True)
    monkeypatch.setattr(zipwriter, "COMPRESSION_LEVEL", 1)
    compressed.clear()
    rebuilt = build(config, force=True)
    assert len(compressed) == 6
    assert rebuilt.path.read_bytes() == fresh_build(project)


@pytest.fixture
def hashed_sizes(monkeypatch) -> list[int]:
    """The length of every buffer handed to sha256 whole, so a test can see whether the previous zip was hashed."""
    sizes: list[int] = []
    real = zipwriter.hashlib.sha256

    def spying(data: Any = b"", **options: Any) -> Any:
        sizes.append(len(data))
        return real(data, **options)

    monkeypatch.setattr(zipwriter.hashlib, "sha256", spying)
    return sizes


def test_a_previous_zip_whose_stat_is_the_recorded_one_is_not_read_whole(
    project: Path, compressed: list[int], hashed_sizes: list[int]
) -> None:
    add_tree(project / "function")
    config = load_config(project / "deploy.toml")
    first = build(config, force=True)
    hashed_sizes.clear()
    compressed.clear()
    (project / "function" / "pkg" / "text.py").write_text("VALUE = 'changed'\n" * 2000)
    rebuilt = build(config)  # at once: no need to wait for the zip's times to settle
    assert first.size not in hashed_sizes
    assert len(compressed) == 1
    assert rebuilt.path.read_bytes() == fresh_build(project)


def test_a_previous_zip_edited_in_place_under_the_same_size_is_checked_and_not_reused(
    project: Path, compressed: list[int], hashed_sizes: list[int]
) -> None:
    """Guards the trust above: a write straight after the build, same file, same size, is seen."""
    add_tree(project / "function")
    config = load_config(project / "deploy.toml")
    artifact = build(config, force=True)
    descriptor = os.open(artifact.path, os.O_WRONLY)
    try:
        os.pwrite(descriptor, b"\xff", 100)  # inside main.py's compressed bytes or pkg/'s header
    finally:
        os.close(descriptor)
    hashed_sizes.clear()
    compressed.clear()
    rebuilt = build(config, force=True)
    assert artifact.size in hashed_sizes  # the full check ran: its digest is not the recorded one
    assert len(compressed) == 6
    assert rebuilt.path.read_bytes() == fresh_build(project)


def test_a_manifest_without_the_zips_stat_still_lets_a_rebuild_reuse_entries(
    project: Path, compressed: list[int], hashed_sizes: list[int]
) -> None:
    """A manifest an older deployer wrote: the previous zip is checked by its digest, then reused."""
    add_tree(project / "function")
    config = load_config(project / "deploy.toml")
    artifact = build(config, force=True)
    manifest_path = project / "dist" / "example.zip.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["zip_seen"], manifest["key_rules"]
    manifest_path.write_text(json.dumps(manifest))
    hashed_sizes.clear()
    compressed.clear()
    (project / "function" / "pkg" / "text.py").write_text("VALUE = 'changed'\n" * 2000)
    rebuilt = build(config)
    assert artifact.size in hashed_sizes
    assert len(compressed) == 1
    assert rebuilt.path.read_bytes() == fresh_build(project)


@pytest.fixture
def sniffed(monkeypatch) -> list[str]:
    """The names of the files the walk reads for key material."""
    names: list[str] = []
    real = walk.holds_private_key

    def counting(path: str | Path) -> bool:
        names.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(walk, "holds_private_key", counting)
    return names


KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def test_a_rebuild_sniffs_only_the_source_files_changed_since_the_last_build(
    project: Path, everything_settled: None, sniffed: list[str]
) -> None:
    source = project / "function"
    add_tree(source)
    config = load_config(project / "deploy.toml")
    build(config, force=True)
    sniffed.clear()
    (source / "pkg" / "added.py").write_text("ADDED = True\n")
    (source / "pkg" / "text.py").write_text(KEY)  # a packed file that now holds a key is read, and left out
    rebuilt = build(config)
    # main.py once: check_source's walk, which stops at the first file the zip would hold
    assert sorted(sniffed) == ["added.py", "main.py", "text.py"]
    assert "pkg/text.py" not in names_in(rebuilt.path)
    assert [item.path for item in rebuilt.left_out] == ["pkg/text.py"]


def test_a_manifest_from_a_build_with_other_key_rules_has_every_file_sniffed_again(
    project: Path, everything_settled: None, sniffed: list[str]
) -> None:
    add_tree(project / "function")
    config = load_config(project / "deploy.toml")
    build(config, force=True)
    manifest_path = project / "dist" / "example.zip.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["key_rules"] = "an older deployer's"
    manifest_path.write_text(json.dumps(manifest))
    sniffed.clear()
    build(config, force=True)
    assert sorted(sniffed) == sorted(
        ["main.py", "main.py", "données.txt", "empty.py", "noise.bin", "text.py", "run.sh"]
    )


def names_in(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def test_a_rebuild_runs_no_garbage_collection_pass_and_leaves_the_collector_on(project: Path) -> None:
    """A build makes a few objects per file and no cycles: the collector's passes over them only cost time."""
    source = project / "function"
    add_tree(source)
    for index in range(800):  # enough new objects to set off the collector, were it on
        (source / "pkg" / f"module_{index}.py").write_text(f"VALUE = {index}\n")
    config = load_config(project / "deploy.toml")
    build(config, force=True)
    passes: list[int] = []

    def counting(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    (source / "pkg" / "text.py").write_text("VALUE = 'changed'\n")
    gc.callbacks.append(counting)
    try:
        build(config)
    finally:
        gc.callbacks.remove(counting)
    assert passes in ([], [0])  # at most the one young-generation pass owed when the collector is back on
    assert gc.isenabled()


def test_a_file_system_that_refuses_to_set_the_zips_times_only_costs_the_next_build_a_digest_check(
    project: Path, compressed: list[int], hashed_sizes: list[int], monkeypatch
) -> None:
    add_tree(project / "function")
    config = load_config(project / "deploy.toml")

    def refusing(*args: Any, **options: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    with monkeypatch.context() as patched:
        patched.setattr(zipwriter.os, "utime", refusing)
        artifact = build(config, force=True)
    assert json.loads((project / "dist" / "example.zip.json").read_text())["zip_seen"] is None
    hashed_sizes.clear()
    compressed.clear()
    rebuilt = build(config, force=True)
    assert artifact.size in hashed_sizes and len(compressed) == 0
    assert rebuilt.path.read_bytes() == artifact.path.read_bytes()
