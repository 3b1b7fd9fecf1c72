"""`deployer build`: a byte-for-byte reproducible zip of the function folder (plus its dependencies).

Reproducible means the same source gives the same sha256 wherever it is built: entries sorted, one
fixed timestamp, permissions normalised to 644/755, Unix "made by", no extra attributes. This file
must not import boto3: `deployer build` has to start fast.

What is never packed, and why (each left-out path is reported on the Artifact and in one log line):

- the project's own `dist/` (the zips themselves: packing the last zip into the next would change
  every build's bytes) and `.deployer/` (state, locks, caches), wherever the source folder is;
- secrets, so that a function folder that is also a working folder cannot leak them to S3: private
  keys by name (`id_rsa`, `id_dsa`, `id_ecdsa`, `id_ed25519` and their `_sk` forms) and, in the
  source folder only, by content (a file starting with a PEM `-----BEGIN ... PRIVATE KEY-----` block
  or a PuTTY key); `.aws/`, `.ssh/`, `.docker/`, `.npmrc`, `.pypirc`, `.netrc`,
  `_netrc`, `.git-credentials` and `.env*`. `.npmrc` still reaches npm (deployer.dependencies copies
  it into its scratch install folder); it is only kept out of the zip;
- what never runs on Lambda: `.git/`, `__pycache__/`, `*.pyc`, `*.pyo`, `.DS_Store`;
- what `[function] exclude` names.

The installed dependencies (site-packages, node_modules) come from the package index, not from the
user's folder: they get the same rules by name, but are never read for key material (that would be
slow, and packages ship test keys that are not anybody's secret).

`[function] exclude` holds gitignore-like globs, matched against each path as it would be inside the
zip ("/"-separated, relative to the zip's root: a dependency's files too):

- `*` matches any characters but "/", `?` one character but "/", `[abc]`/`[!abc]` a class, `\\x` a
  literal x;
- a pattern with no "/" except a trailing one matches a name at any depth (`*.md`, `tests/`);
- a pattern with a "/" at its start or middle is anchored at the zip's root (`/setup.py`,
  `docs/*.txt`);
- `**` matches any number of folders, none included (`**/fixtures`, `docs/**`, `a/**/b`): so
  `docs/**` leaves out `docs/` whole;
- a trailing "/" matches folders only; a folder that matches is left out with everything in it;
- negation (`!pattern`) is not supported: list only what to leave out.

A build writes while it holds `build_lock` (a kernel lock per project), and writes the zip and its
manifest as temp file, fsync, rename: a reader sees an old pair or a new pair, never half of one.
`up` holds the same lock from the build through the upload, and uploads the bytes
`read_verified` returns, so S3 never gets bytes other than the ones whose digest it records.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import socket
import stat
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from deployer.config import Config
from deployer.dependencies import folder_blocker, make_folder
from deployer.errors import DeployerError, UsageError

FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
BUILD_FORMAT = 2  # bump when the zip layout changes, so cached builds are redone
COMPRESSION_LEVEL = 6
BUILD_LOCK_WAIT = 60.0  # seconds a build waits for another build or upload of the same project
BUILD_LOCK_POLL = 0.1
LEFT_OUT_SHOWN = 5  # paths named in the one "left out" line; the rest are counted
TEMPORARY_PREFIX = ".build-"

Log = Callable[[str], None]

# Reasons, as the "left out" line and Artifact.left_out give them.
BUILD_OUTPUT = "build output"
DEPLOYER_STATE = "deployer state"
EXCLUDED = "excluded by [function] exclude"
PRIVATE_KEY = "secret: private key"
ENVIRONMENT_FILE = "secret: environment file"

NEVER_PACKED: dict[str, str] = {
    ".deployer": DEPLOYER_STATE,
    ".git": "version control",
    "__pycache__": "bytecode",
    ".DS_Store": "Finder metadata",
    ".aws": "secret: AWS credentials",
    ".docker": "secret: Docker credentials",
    ".ssh": "secret: SSH keys",
    ".npmrc": "secret: registry token",
    ".pypirc": "secret: registry token",
    ".netrc": "secret: credentials",
    "_netrc": "secret: credentials",
    ".git-credentials": "secret: credentials",
    **{name: PRIVATE_KEY for name in ("id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk", "id_ed25519_sk")},
}
NEVER_PACKED_SUFFIXES = {".pyc": "bytecode", ".pyo": "bytecode"}
# A private key file starts with one of these (after blanks or a byte-order mark).
PRIVATE_KEY_START = re.compile(
    rb"(?:\xef\xbb\xbf)?\s*(?:-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|PuTTY-User-Key-File-)"
)
KEY_SNIFF_BYTES = 256


@dataclass(frozen=True)
class LeftOut:
    """A path the zip does not carry, and why."""

    path: str  # as it would be inside the zip; folders end in "/"
    reason: str


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


@dataclass(frozen=True)
class _Entry:
    name: str  # the path inside the zip, "/"-separated, directories ending in "/"
    source: Path | None  # None for directories
    executable: bool


@dataclass(frozen=True)
class _Glob:
    text: str
    regex: re.Pattern[str]
    folders_only: bool


@dataclass(frozen=True)
class _Rules:
    """What a walk leaves out besides the names every walk leaves out."""

    exclude: tuple[_Glob, ...] = ()
    sniff_keys: bool = False  # read each file's first bytes for key material (the user's own files only)
    outputs: dict[Path, str] = field(default_factory=dict)  # real folders never packed -> why


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


# ---- what is left out ------------------------------------------------------------------------------------------


def _printable(text: str | Path) -> str:
    """A path as one printable line: bytes that are not UTF-8 as \\xNN, control characters escaped."""
    decoded = os.fsencode(text).decode("utf-8", "backslashreplace")
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in decoded)


def _glob_segment(segment: str) -> str:
    """One path segment of a glob as a regex: `*` and `?` never cross a "/"."""
    out, index = [], 0
    while index < len(segment):
        char = segment[index]
        index += 1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and index < len(segment):
            out.append(re.escape(segment[index]))
            index += 1
        elif char == "[" and "]" in segment[index + 1 :]:
            end = segment.index("]", index + 1)
            body = segment[index:end]
            negated = body[:1] in ("!", "^")
            members = (body[1:] if negated else body).replace("\\", "\\\\")
            out.append("[^" + members + "]" if negated else "[" + members + "]")
            index = end + 1
        else:
            out.append(re.escape(char))
    return "".join(out)


def compile_exclude(patterns: tuple[str, ...] | list[str]) -> tuple[_Glob, ...]:
    """[function] exclude as regexes (semantics: this module's docstring); a pattern it cannot honour is refused."""
    compiled = []
    for pattern in patterns:
        if not pattern.strip() or pattern.startswith("!"):
            why = "negation is not supported: list only what to leave out" if pattern.strip() else "is empty"
            raise UsageError(f"[function] exclude: pattern {pattern!r}: {why}")
        body = pattern.rstrip("/")
        segments: list[str] = []
        for segment in body.lstrip("/").split("/"):
            if not (segment == "**" and segments and segments[-1] == "**"):
                segments.append(segment)
        regex = ""
        for index, segment in enumerate(segments):
            last = index == len(segments) - 1
            if segment == "**":
                regex += (".*" if last else "(?:.*/)?") if index == 0 else ("(?:/.*)?" if last else "/(?:.*/)?")
                continue
            if index > 0 and segments[index - 1] != "**":
                regex += "/"
            regex += _glob_segment(segment)
        anchored = "/" in body
        compiled.append(_Glob(pattern, re.compile(regex if anchored else f"(?:.*/)?{regex}"), pattern.endswith("/")))
    return tuple(compiled)


def _reason_by_name(name: str, is_dir: bool, exclude: tuple[_Glob, ...]) -> str | None:
    """Why the path `name` (inside the zip, no trailing "/") is never packed, judged by its name alone."""
    base = name.rsplit("/", 1)[-1]
    reason = NEVER_PACKED.get(base) or NEVER_PACKED_SUFFIXES.get(os.path.splitext(base)[1])
    if reason:
        return reason
    if base.startswith(".env"):
        return ENVIRONMENT_FILE
    if any(glob.regex.fullmatch(name) and (is_dir or not glob.folders_only) for glob in exclude):
        return EXCLUDED
    return None


def _holds_private_key(path: Path) -> bool:
    """Whether the file starts like a private key; plain os calls, as this runs for every file of the source."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            head = os.read(descriptor, KEY_SNIFF_BYTES)
        finally:
            os.close(descriptor)
    except OSError as error:
        raise _unreadable(path, error) from None
    return PRIVATE_KEY_START.match(head) is not None


def left_out_line(left_out: tuple[LeftOut, ...] | list[LeftOut]) -> str:
    """One line for the log: the first few paths with their reason, then how many more."""
    shown = ", ".join(f"{_printable(item.path)} ({item.reason})" for item in left_out[:LEFT_OUT_SHOWN])
    more = len(left_out) - LEFT_OUT_SHOWN
    noun = "path" if len(left_out) == 1 else "paths"
    return f"left out {len(left_out)} {noun}: {shown}" + (f", and {more} more" if more > 0 else "")


def _sorted_left_out(items: list[LeftOut]) -> tuple[LeftOut, ...]:
    """Secrets first (the ones worth reading when the line is cut short), then by path; each path once."""
    unique = {item.path: item for item in items}
    return tuple(sorted(unique.values(), key=lambda item: (not item.reason.startswith("secret"), item.path)))


# ---- the walk --------------------------------------------------------------------------------------------------


def _unreadable(path: Path, error: OSError) -> UsageError:
    return UsageError(
        f"cannot read {_printable(path)}: {error.strerror or error}; "
        "fix its permissions, or leave it out with [function] exclude"
    )


def _children(folder: Path) -> list[os.DirEntry[str]]:
    """A folder's entries by name; os.scandir knows each one's type without a stat of its own."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except OSError as error:
        raise _unreadable(folder, error) from None


def _link_target(link: Path) -> Path:
    """Where a symlink ends up; a loop or a missing target is a UsageError saying which link and what to do."""
    try:
        return Path(os.path.realpath(link, strict=True))
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UsageError(
                f"{_printable(link)} is a symlink that loops back on itself; remove it or point it at a real file"
            ) from None
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            raise UsageError(
                f"{_printable(link)} is a symlink to {_printable(os.readlink(link))}, which does not exist; "
                "remove the link or restore its target"
            ) from None
        raise _unreadable(link, error) from None


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _walk(root: Path, rules: _Rules, left_out: list[LeftOut]) -> Iterator[_Entry]:
    """Every file and folder under root that goes into the zip; what is left out is appended to `left_out`.

    Symlinks are followed while they stay inside root. Real paths are carried down the walk (a folder that is
    not a symlink lives at its parent's real path), so only symlinks cost a realpath."""
    real_root = Path(os.path.realpath(root))

    def visit(folder: Path, real_folder: Path, relative: str, ancestors: frozenset[Path]) -> Iterator[_Entry]:
        for child in _children(folder):
            name = f"{relative}{child.name}"
            is_dir = _is_dir(child)
            reason = _reason_by_name(name, is_dir, rules.exclude)
            if reason:
                left_out.append(LeftOut(f"{name}/" if is_dir else name, reason))
                continue
            path = Path(child.path)
            try:
                child.name.encode("utf-8")
            except UnicodeEncodeError:
                raise UsageError(
                    f"{_printable(path)}: its name is not valid UTF-8, which Lambda cannot unpack; "
                    "rename it, or leave it out with [function] exclude"
                ) from None
            real = None
            if child.is_symlink():
                real = _link_target(path)
                output = next((why for out, why in rules.outputs.items() if real.is_relative_to(out)), None)
                if output:
                    left_out.append(LeftOut(f"{name}/" if is_dir else name, output))
                    continue
                if not real.is_relative_to(real_root):
                    raise UsageError(
                        f"{_printable(path)} is a symlink to {_printable(real)}, outside the source folder; "
                        "copy the file into the source folder instead"
                    )
            try:
                mode = child.stat().st_mode
            except OSError as error:
                raise _unreadable(path, error) from None
            if stat.S_ISDIR(mode):
                real = real or real_folder / child.name
                if real in rules.outputs:
                    left_out.append(LeftOut(f"{name}/", rules.outputs[real]))
                    continue
                if real in ancestors:
                    raise UsageError(
                        f"{_printable(path)} is a symlink to {_printable(real)}, a folder that holds it, so the "
                        "zip would never end; remove the link"
                    )
                yield _Entry(f"{name}/", None, True)
                yield from visit(path, real, f"{name}/", ancestors | {real})
            elif stat.S_ISREG(mode):
                if rules.sniff_keys and _holds_private_key(path):
                    left_out.append(LeftOut(name, PRIVATE_KEY))
                    continue
                yield _Entry(name, path, bool(mode & 0o111))

    yield from visit(root, real_root, "", frozenset({real_root}))


def _source_rules(config: Config) -> _Rules:
    outputs = {
        Path(os.path.realpath(config.root / "dist")): BUILD_OUTPUT,
        Path(os.path.realpath(config.root / ".deployer")): DEPLOYER_STATE,
    }
    return _Rules(compile_exclude(config.exclude), sniff_keys=True, outputs=outputs)


def _handler_files(config: Config) -> list[str]:
    module = config.handler.rsplit(".", 1)[0]
    if config.is_python:
        return [f"{module.replace('.', '/')}.py"]
    return [f"{module}{suffix}" for suffix in (".js", ".mjs", ".cjs")]


def check_source(config: Config) -> None:
    """The source folder exists, holds files that go into the zip, and holds the handler's file."""
    source = config.source
    if not source.is_dir():
        raise UsageError(f"source folder {source} does not exist; set [function] source in {config.path.name}")
    rules = _source_rules(config)
    candidates = _handler_files(config)
    for candidate in candidates:
        reason = _handler_left_out(candidate, rules) if (source / candidate).is_file() else None
        if reason:
            raise UsageError(
                f"handler {config.handler!r} needs {candidate}, which the build leaves out ({reason}); "
                "change [function] exclude or the handler"
            )
    if not any(entry.source for entry in _walk(source, rules, [])):
        raise UsageError(f"source folder {source} is empty; put your handler there")
    if not any((source / candidate).is_file() for candidate in candidates):
        raise UsageError(
            f"handler {config.handler!r} needs {candidates[0]} in {source}, which is not there; "
            "fix [function] handler or add the file"
        )


def _handler_left_out(candidate: str, rules: _Rules) -> str | None:
    """Why the handler's file (which is there) would be left out of the zip, judged by the rules on names:
    a function whose handler is not in its zip cannot start."""
    parts = candidate.split("/")
    for depth in range(1, len(parts) + 1):
        reason = _reason_by_name("/".join(parts[:depth]), depth < len(parts), rules.exclude)
        if reason:
            return reason
    return None


def _entries(config: Config, dependencies: Path | None, left_out: list[LeftOut]) -> list[_Entry]:
    exclude = compile_exclude(config.exclude)
    entries = {entry.name: entry for entry in _walk(dependencies, _Rules(exclude), left_out)} if dependencies else {}
    # The source wins over a dependency of the same name.
    entries.update({entry.name: entry for entry in _walk(config.source, _source_rules(config), left_out)})
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


@contextmanager
def _replaced(destination: Path) -> Iterator[IO[bytes]]:
    """A temp file beside `destination`, fsynced and renamed over it when the block ends without error:
    readers see the old file or the new one, never part of one; a failure leaves no temp file."""
    handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=TEMPORARY_PREFIX, suffix=".tmp")
    try:
        with os.fdopen(handle, "w+b") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_zip(entries: list[_Entry], destination: Path) -> tuple[str, str]:
    """Write the zip; return the digest of its bytes (read back before the rename, so they are the bytes
    renamed into place) and the digest of its content, which another zlib cannot change."""
    content = hashlib.sha256(f"{BUILD_FORMAT}\n".encode())
    digest = hashlib.sha256()
    with _replaced(destination) as raw:
        with zipfile.ZipFile(raw, "w") as archive:
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
        raw.seek(0)
        for block in iter(lambda: raw.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest(), content.hexdigest()


@dataclass(frozen=True)
class _Manifest:
    """dist/<name>.json: what the zip beside it was built from, and its digests."""

    fingerprint: str
    sha256: str
    content_sha256: str
    size: int


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


def _remove_temporary_files(folder: Path) -> None:
    """Temp files of a build that was killed; under the build lock no other build is writing one."""
    for temporary in folder.glob(f"{TEMPORARY_PREFIX}*"):
        temporary.unlink(missing_ok=True)


# ---- the build lock --------------------------------------------------------------------------------------------


@dataclass
class _Hold:
    """This process's hold on one project's build lock: a thread lock (flock would not stop another thread of
    this process), the kernel lock's descriptor, and how many nested `build_lock` blocks hold it."""

    threads: threading.RLock = field(default_factory=threading.RLock)
    descriptor: int = -1
    depth: int = 0


_holds: dict[Path, _Hold] = {}
_holds_guard = threading.Lock()


def _holder(lock: Path) -> str:
    try:
        holder = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        holder = {}
    if not isinstance(holder, dict):
        holder = {}
    return (
        f"`{holder.get('command', '?')}` (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
        f"since {holder.get('since', '?')})"
    )


def _take(lock: Path, command: str, log: Log) -> int:
    """The kernel lock on `lock`, waiting up to BUILD_LOCK_WAIT; the file then names its holder."""
    make_folder(lock.parent, "its state, locks and caches")
    descriptor = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        deadline = time.monotonic() + BUILD_LOCK_WAIT
        told = False
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DeployerError(
                        f"another deployer run is building or uploading this project: {_holder(lock)}, still after "
                        f"{BUILD_LOCK_WAIT:.0f} s; wait for it to finish, or stop that process (its lock goes with it)"
                    ) from None
                if not told:
                    log(f"waiting for {_holder(lock)} to finish with dist/")
                    told = True
                time.sleep(BUILD_LOCK_POLL)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(holder).encode(), 0)
        return descriptor
    except BaseException:
        os.close(descriptor)  # releases the lock if it was taken
        raise


@contextmanager
def build_lock(config: Config, *, command: str | None = None, log: Log = lambda _: None) -> Iterator[None]:
    """Hold the project's build lock: one build or upload of dist/ at a time, across processes.

    An exclusive kernel lock (`flock`) on <project>/.deployer/build.lock, so it goes with its holder however
    that ends (SIGKILL included). It waits up to BUILD_LOCK_WAIT seconds for another holder, then fails
    naming it. Re-entrant within a process: `up` holds it around `build()`, which takes it again."""
    lock = config.root / ".deployer" / "build.lock"
    with _holds_guard:
        hold = _holds.setdefault(lock, _Hold())
    if not hold.threads.acquire(timeout=BUILD_LOCK_WAIT):
        raise DeployerError(
            f"another thread of this process is building or uploading this project, still after "
            f"{BUILD_LOCK_WAIT:.0f} s; wait for it to finish"
        )
    try:
        if hold.depth == 0:
            hold.descriptor = _take(lock, command or " ".join(["deployer", *sys.argv[1:]]), log)
        hold.depth += 1
        try:
            yield
        finally:
            hold.depth -= 1
            if hold.depth == 0:
                descriptor, hold.descriptor = hold.descriptor, -1
                try:
                    os.ftruncate(descriptor, 0)  # nobody holds it any more
                finally:
                    os.close(descriptor)  # releases the lock
    finally:
        hold.threads.release()


# ---- build -----------------------------------------------------------------------------------------------------


def build(config: Config, *, force: bool = False, log: Log = lambda _: None) -> Artifact:
    """Write dist/<name> unless an up-to-date one is there; return its path, digests, size and what it left out.

    Everything that can be refused is refused before anything is written. When it writes, it says in one
    line what it left out of the zip."""
    check_source(config)
    _check_output_paths(config)
    from deployer.dependencies import bundle_dependencies

    dependencies = bundle_dependencies(config, config.root / ".deployer" / "cache", log=log)
    with build_lock(config, log=log):
        found: list[LeftOut] = []
        entries = _entries(config, dependencies, found)
        left_out = _sorted_left_out(found)
        destination = artifact_path(config)
        manifest = destination.with_name(destination.name + ".json")
        fingerprint = _fingerprint(config, entries)
        recorded = None if force or not destination.is_file() else _read_manifest(manifest)
        if recorded and recorded.fingerprint == fingerprint and recorded.size == destination.stat().st_size:
            return Artifact(destination, recorded.sha256, recorded.content_sha256, recorded.size, False, left_out)
        _check_size(entries)
        destination.parent.mkdir(parents=True, exist_ok=True)
        _remove_temporary_files(destination.parent)
        manifest.unlink(missing_ok=True)  # a zip never sits beside a manifest describing other bytes
        sha256, content_sha256 = _write_zip(entries, destination)
        size = destination.stat().st_size
        with _replaced(manifest) as stream:
            stream.write(json.dumps(asdict(_Manifest(fingerprint, sha256, content_sha256, size))).encode())
        if left_out:
            log(left_out_line(left_out))
        return Artifact(destination, sha256, content_sha256, size, True, left_out)
