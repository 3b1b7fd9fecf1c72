"""`deployer build`: a byte-for-byte reproducible zip of the function folder (plus its dependencies).

Reproducible means the same source gives the same sha256 wherever it is built (zipwriter.py). This
package must not import boto3: `deployer build` has to start fast. Its parts, one job each:

- rules.py: what is never packed, and why (secrets by name and content, `[function] exclude`);
- walk.py: the source and dependency folders as the zip's entries, and the source's checks;
- zipwriter.py: the zip's bytes (compressed in parallel, unchanged entries reused from the previous zip),
  written as temp file, fsync, rename;
- lock.py: the build lock (deployer.filelock's kernel lock, re-entrant in a process);
- here: build() itself, the manifest that says whether the zip is stale, and the upload's read.

A build writes while it holds `build_lock` (a kernel lock per project), and writes the zip and its
manifest as temp file, fsync, rename: a reader sees an old pair or a new pair, never half of one.
`up` holds the same lock from the build through the upload, and uploads the bytes
`read_verified` returns, so S3 never gets bytes other than the ones whose digest it records.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from deployer.build.lock import build_lock
from deployer.build.rules import KEY_RULES, LeftOut, compile_exclude, left_out_line, sorted_left_out
from deployer.build.walk import Entry, Unchanged, check_source, zip_entries
from deployer.build.zipwriter import (
    BUILD_FORMAT,
    Previous,
    Recorded,
    compressor_name,
    load_previous,
    recorded_entries,
    remove_temporary_files,
    replaced,
    write_zip,
)
from deployer.config import Config
from deployer.dependencies import folder_blocker
from deployer.errors import DeployerError, UsageError

__all__ = [
    "Artifact",
    "LeftOut",
    "artifact_path",
    "build",
    "build_lock",
    "check_source",
    "compile_exclude",
    "left_out_line",
    "read_verified",
]

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024

Log = Callable[[str], None]


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str  # hex digest of the zip's bytes
    content_sha256: str  # hex digest of what the zip holds (names, modes, file bytes), whatever the compressor
    size: int
    rebuilt: bool
    left_out: tuple[LeftOut, ...] = ()  # sorted: secrets first, then by path

    def read_verified(self) -> bytes:
        """The zip's bytes, only if they are still the ones built (see `read_verified`)."""
        return read_verified(self.path, self.sha256)


def artifact_path(config: Config) -> Path:
    return config.root / "dist" / config.artifact_name


def read_verified(path: Path, sha256: str) -> bytes:
    """Read the zip whole and check its digest, so the uploader sends exactly the bytes it names.

    A build (or an editor) may have replaced the file since its digest was taken; uploading it under
    the old digest would put different bytes behind a published version."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DeployerError(f"{path} is gone since it was built; nothing was uploaded: run the command again") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise DeployerError(
            f"{path} changed since it was built (sha256 {actual[:12]}, built {sha256[:12]}); "
            "nothing was uploaded: run the command again to rebuild it"
        )
    return data


def _fingerprint(config: Config, entries: list[Entry]) -> str:
    """Cheap: names, sizes, modes and mtimes, no file contents. Decides whether the zip is stale."""
    digest = hashlib.sha256(f"{BUILD_FORMAT}\n".encode())
    for entry in entries:
        info = entry.stat() if entry.source else None
        digest.update(
            f"{entry.name}\0{info and info.st_size}\0{info and info.st_mtime_ns}\0{entry.executable}\n".encode()
        )
    return digest.hexdigest()


def _check_size(entries: list[Entry]) -> None:
    sizes: dict[str, int] = {}
    for entry in entries:
        if entry.source:
            parts = entry.name.split("/")
            # A package is a top-level entry, or one folder inside node_modules/.
            package = "/".join(parts[:2]) if parts[0] == "node_modules" and len(parts) > 2 else parts[0]
            sizes[package] = sizes.get(package, 0) + entry.stat().st_size
    total = sum(sizes.values())
    if total > LAMBDA_UNZIPPED_LIMIT:
        largest = sorted(sizes.items(), key=lambda item: -item[1])[:5]
        listing = ", ".join(f"{name} {size / 2**20:.0f} MB" for name, size in largest)
        raise DeployerError(
            f"the package is {total / 2**20:.0f} MB unzipped, over Lambda's 250 MB limit; largest: {listing}"
        )


# ---- where the zip goes ----------------------------------------------------------------------------------------


def _check_output_paths(config: Config) -> None:
    """dist/ and .deployer/ can hold what deployer writes there; checked before anything is written."""
    for folder, purpose in (
        (config.root / "dist", "the built zip"),
        (config.root / ".deployer" / "cache", "its state, locks and caches"),
    ):
        blocker = folder_blocker(folder)
        if blocker is not None:
            raise UsageError(
                f"{blocker} is a file, but deployer keeps {purpose} in a folder there; "
                "move or delete that file, then run again"
            )
    destination = artifact_path(config)
    for path in (destination, destination.with_name(destination.name + ".json")):
        if path.is_dir():
            raise UsageError(
                f"{path} is a folder, but deployer writes a file there; move that folder away, then run again"
            )


@dataclass(frozen=True)
class _Manifest:
    """dist/<name>.json: what the zip beside it was built from, and its digests."""

    fingerprint: str
    sha256: str
    content_sha256: str
    size: int
    # What the next build needs to reuse this zip's compressed entries (see zipwriter.Previous); a manifest
    # without them (an older deployer's) is still valid, its zip is just compressed afresh.
    compressor: str = ""
    entries: dict[str, list[object]] = field(default_factory=dict)
    # The zip's stat right after it was written (zipwriter.load_previous): while it holds, the zip is not read
    # whole to check its digest. Absent (an older deployer's manifest), the digest is checked.
    zip_seen: list[int] | None = None
    key_rules: str = ""  # rules.KEY_RULES of the build that wrote it: the same, and unchanged files are not sniffed


def _read_manifest(manifest: Path) -> _Manifest | None:
    """The recorded digests, or None when the manifest is missing or cannot be read (empty, truncated,
    hand-edited): then the zip is stale and is rebuilt."""
    try:
        recorded = json.loads(manifest.read_bytes())
        found = _Manifest(**recorded)
    except (OSError, ValueError, TypeError):
        return None
    texts = (found.fingerprint, found.sha256, found.content_sha256)
    if not all(isinstance(text, str) for text in texts) or type(found.size) is not int:
        return None
    return found


def _previous(destination: Path, recorded: _Manifest | None, packed: dict[str, Recorded]) -> Previous | None:
    """The zip being replaced, for its unchanged entries' compressed bytes; None when there is none to trust."""
    if recorded is None:
        return None
    return load_previous(destination, recorded.sha256, recorded.compressor, packed, recorded.zip_seen)


def _unchanged(recorded: _Manifest | None, packed: dict[str, Recorded]) -> Unchanged | None:
    """Which source files the previous build read, found free of keys and packed, and are unchanged since."""
    if recorded is None or recorded.key_rules != KEY_RULES:
        return None
    return lambda name, info: (known := packed.get(name)) is not None and known.holds(info)


# ---- build -----------------------------------------------------------------------------------------------------


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while the build runs (reference counting still frees everything):
    a build makes a few objects per file (entries, stats, records, the manifest's lists), none in a cycle, and
    the collector's passes over them took ~25 ms of a 250 ms rebuild of the benchmark tree (gc.callbacks)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@_collector_paused()
def build(config: Config, *, force: bool = False, log: Log = lambda _: None) -> Artifact:
    """Write dist/<name> unless an up-to-date one is there; return its path, digests, size and what it left out.

    Everything that can be refused is refused before anything is written. When it writes, it says in one
    line what it left out of the zip."""
    check_source(config)
    _check_output_paths(config)
    from deployer.dependencies import bundle_dependencies

    dependencies = bundle_dependencies(config, config.root / ".deployer" / "cache", log=log)
    with build_lock(config, log=log):
        destination = artifact_path(config)
        manifest = destination.with_name(destination.name + ".json")
        recorded = _read_manifest(manifest) if destination.is_file() else None
        packed = recorded_entries(recorded.entries) if recorded else {}
        found: list[LeftOut] = []
        entries = zip_entries(config, dependencies, found, _unchanged(recorded, packed))
        left_out = sorted_left_out(found)
        fingerprint = _fingerprint(config, entries)
        if (
            not force
            and recorded
            and recorded.fingerprint == fingerprint
            and recorded.size == destination.stat().st_size
        ):
            return Artifact(destination, recorded.sha256, recorded.content_sha256, recorded.size, False, left_out)
        _check_size(entries)
        destination.parent.mkdir(parents=True, exist_ok=True)
        remove_temporary_files(destination.parent)
        previous = _previous(destination, recorded, packed)  # read before the old manifest goes
        manifest.unlink(missing_ok=True)  # a zip never sits beside a manifest describing other bytes
        zipped = write_zip(entries, destination, previous)
        size = destination.stat().st_size
        written = _Manifest(
            fingerprint,
            zipped.sha256,
            zipped.content_sha256,
            size,
            compressor_name(),
            {name: entry.as_json() for name, entry in zipped.entries.items()},
            list(zipped.seen) if zipped.seen else None,
            KEY_RULES,
        )
        with replaced(manifest) as stream:
            stream.write(json.dumps(written.__dict__, separators=(",", ":")).encode())  # asdict would deep-copy
        if left_out:
            log(left_out_line(left_out))
        return Artifact(destination, zipped.sha256, zipped.content_sha256, size, True, left_out)
