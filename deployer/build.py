"""`deployer build`: a byte-for-byte reproducible zip of the function folder (plus its dependencies).

Reproducible means the same source gives the same sha256 wherever it is built: entries sorted, one
fixed timestamp, permissions normalised to 644/755, Unix "made by", no extra attributes. This file
must not import boto3: `deployer build` has to start fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from deployer.config import Config
from deployer.errors import DeployerError, UsageError

FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
EXCLUDED_NAMES = {".git", ".deployer", "__pycache__", ".DS_Store"}
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
BUILD_FORMAT = 2  # bump when the zip layout changes, so cached builds are redone
COMPRESSION_LEVEL = 6


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str  # hex digest of the zip's bytes
    content_sha256: str  # hex digest of what the zip holds (names, modes, file bytes), whatever the compressor
    size: int
    rebuilt: bool


@dataclass(frozen=True)
class _Entry:
    name: str  # the path inside the zip, "/"-separated, directories ending in "/"
    source: Path | None  # None for directories
    executable: bool


def artifact_path(config: Config) -> Path:
    return config.root / "dist" / config.artifact_name


def _excluded(name: str) -> bool:
    return name in EXCLUDED_NAMES or name.startswith(".env") or name.endswith(EXCLUDED_SUFFIXES)


def _walk(root: Path, prefix: str = "") -> Iterator[_Entry]:
    """Every file and folder under root, symlinks followed only while they stay inside root."""
    real_root = root.resolve()
    seen_dirs: set[Path] = set()

    def visit(folder: Path, relative: str) -> Iterator[_Entry]:
        real = folder.resolve()
        if real in seen_dirs:  # a symlink loop inside the tree
            return
        seen_dirs.add(real)
        for child in sorted(folder.iterdir(), key=lambda path: path.name):
            if _excluded(child.name):
                continue
            name = f"{relative}{child.name}"
            if child.is_symlink():
                target = child.resolve()
                if not target.is_relative_to(real_root):
                    raise UsageError(
                        f"{child} is a symlink to {target}, outside the source folder; "
                        "copy the file into the source folder instead"
                    )
            mode = child.stat().st_mode
            if stat.S_ISDIR(mode):
                yield _Entry(f"{name}/", None, True)
                yield from visit(child, f"{name}/")
            elif stat.S_ISREG(mode):
                yield _Entry(name, child, bool(mode & 0o111))

    yield from visit(root, prefix)


def check_source(config: Config) -> None:
    """The source folder exists, holds files, and holds the handler's file."""
    source = config.source
    if not source.is_dir():
        raise UsageError(f"source folder {source} does not exist; set [function] source in {config.path.name}")
    if not any(entry.source for entry in _walk(source)):
        raise UsageError(f"source folder {source} is empty; put your handler there")
    module = config.handler.rsplit(".", 1)[0]
    if config.is_python:
        candidates = [f"{module.replace('.', '/')}.py"]
    else:
        candidates = [f"{module}{suffix}" for suffix in (".js", ".mjs", ".cjs")]
    if not any((source / candidate).is_file() for candidate in candidates):
        raise UsageError(
            f"handler {config.handler!r} needs {candidates[0]} in {source}, which is not there; "
            "fix [function] handler or add the file"
        )


def _entries(config: Config, dependencies: Path | None) -> list[_Entry]:
    entries = {entry.name: entry for entry in _walk(dependencies)} if dependencies else {}
    entries.update({entry.name: entry for entry in _walk(config.source)})  # the source wins over a dependency
    return [entries[name] for name in sorted(entries)]


def _fingerprint(config: Config, entries: list[_Entry]) -> str:
    """Cheap: names, sizes, modes and mtimes, no file contents. Decides whether the zip is stale."""
    digest = hashlib.sha256(f"{BUILD_FORMAT}\n".encode())
    for entry in entries:
        info = entry.source.stat() if entry.source else None
        digest.update(
            f"{entry.name}\0{info and info.st_size}\0{info and info.st_mtime_ns}\0{entry.executable}\n".encode()
        )
    return digest.hexdigest()


def _check_size(entries: list[_Entry]) -> None:
    sizes: dict[str, int] = {}
    for entry in entries:
        if entry.source:
            parts = entry.name.split("/")
            # A package is a top-level entry, or one folder inside node_modules/.
            package = "/".join(parts[:2]) if parts[0] == "node_modules" and len(parts) > 2 else parts[0]
            sizes[package] = sizes.get(package, 0) + entry.source.stat().st_size
    total = sum(sizes.values())
    if total > LAMBDA_UNZIPPED_LIMIT:
        largest = sorted(sizes.items(), key=lambda item: -item[1])[:5]
        listing = ", ".join(f"{name} {size / 2**20:.0f} MB" for name, size in largest)
        raise DeployerError(
            f"the package is {total / 2**20:.0f} MB unzipped, over Lambda's 250 MB limit; largest: {listing}"
        )


def _write_zip(entries: list[_Entry], destination: Path) -> str:
    """Write the zip; return the digest of its content, which another zlib cannot change."""
    content = hashlib.sha256(f"{BUILD_FORMAT}\n".encode())
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=".build-", suffix=".zip")
    try:
        with os.fdopen(handle, "wb") as raw, zipfile.ZipFile(raw, "w") as archive:
            for entry in entries:
                info = zipfile.ZipInfo(entry.name, date_time=FIXED_TIMESTAMP)
                info.create_system = 3  # Unix, wherever it is built
                if entry.source is None:
                    info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10  # 0x10: MS-DOS directory flag
                    archive.writestr(info, b"")
                    content.update(f"{entry.name}\0\n".encode())
                    continue
                info.external_attr = (stat.S_IFREG | (0o755 if entry.executable else 0o644)) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                data = entry.source.read_bytes()
                archive.writestr(info, data, compresslevel=COMPRESSION_LEVEL)
                content.update(f"{entry.name}\0{entry.executable}\0{hashlib.sha256(data).hexdigest()}\n".encode())
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return content.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(config: Config, *, force: bool = False, log: Callable[[str], None] = lambda _: None) -> Artifact:
    """Write dist/<name> unless an up-to-date one is there; return its path, sha256 and size."""
    check_source(config)
    from deployer.dependencies import bundle_dependencies

    dependencies = bundle_dependencies(config, config.root / ".deployer" / "cache", log=log)
    entries = _entries(config, dependencies)
    destination = artifact_path(config)
    manifest = destination.with_name(destination.name + ".json")
    fingerprint = _fingerprint(config, entries)
    if not force and destination.is_file() and manifest.is_file():
        recorded = json.loads(manifest.read_text())
        if recorded.get("fingerprint") == fingerprint and recorded.get("size") == destination.stat().st_size:
            return Artifact(destination, recorded["sha256"], recorded["content_sha256"], recorded["size"], False)
    _check_size(entries)
    content_sha256 = _write_zip(entries, destination)
    artifact = Artifact(destination, _sha256(destination), content_sha256, destination.stat().st_size, rebuilt=True)
    recorded = {"fingerprint": fingerprint, "sha256": artifact.sha256, "content_sha256": content_sha256}
    manifest.write_text(json.dumps({**recorded, "size": artifact.size}))
    return artifact
