"""The reproducible zip, written by our own small writer, and the temp-file-then-rename that puts it in place.

Reproducible means the same entries give the same sha256 wherever they are zipped: entries in the given
(sorted) order, one fixed timestamp, permissions normalised to 644/755, Unix "made by", no extra fields.
The layout is the one Python's `zipfile` writes for `writestr` to a seekable file (sizes and CRC in the
local header, no data descriptor), so an artifact keeps its bytes across this writer's introduction.

Our own writer, rather than `zipfile`, for two reasons:
- files are compressed in parallel (zlib, hashlib and file reads release the GIL, so threads use every core);
- a rebuild reuses the raw deflate stream of every unchanged entry from the previous zip, mapped (not read
  whole), and writes runs of adjacent reused entries as one slice of it: changing one file of a 100 MB
  dependency tree costs a walk of the tree and a write and hash of the zip, not a recompression. An entry is
  reused only when its name, size, mode and sha256 all match what the previous build recorded, the
  compressor (zlib version and level) is the same, its local header is the one this writer would write, and
  the previous zip is still the one its manifest names: its stat is the one recorded after it was written
  (its modification time set back, see `_backdate`), or else its bytes have the recorded digest. The result
  is byte-identical to a clean build.
  A file whose modification time, change time and inode are the ones recorded when it was last read (and
  had settled, see SETTLE_NS) is not read again: no write leaves its change time alone, so its recorded
  sha256 still holds (git's index trusts the same). The walk trusts the same to skip the key sniff.

Zip64 is written only for more than 65,535 entries (as `zipfile` does); a file or a zip over 4 GB is
refused, as Lambda takes at most 250 MB unzipped.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import stat
import struct
import tempfile
import time
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

from deployer.build.walk import Entry
from deployer.errors import DeployerError

BUILD_FORMAT = 2  # bump when what the content digest covers changes (it names published versions)
COMPRESSION_LEVEL = 6
TEMPORARY_PREFIX = ".build-"

# 1980-01-01 00:00:00, the earliest time a zip entry can hold, as MS-DOS date and time.
DOS_DATE = (1980 - 1980) << 9 | 1 << 5 | 1
DOS_TIME = 0
VERSION = 20  # "2.0": deflate, folders; what zipfile writes as made-by and needed-to-extract
UNIX = 3
DEFLATED = 8
UTF8_NAME = 0x800  # general purpose flag bit 11: the name is UTF-8 (set only when it is not ASCII)
MSDOS_DIRECTORY = 0x10
ZIP32_LIMIT = 0xFFFFFFFF
ENTRY_COUNT_LIMIT = 0xFFFF

LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
CENTRAL_HEADER = struct.Struct("<4s4B4HL2L5H2L")
END_RECORD = struct.Struct("<4s4H2LH")
ZIP64_END_RECORD = struct.Struct("<4sQ2H2L4Q")
ZIP64_END_LOCATOR = struct.Struct("<4sLQL")

WORKERS = min(8, os.cpu_count() or 1)
# A file's timestamps are trusted to say it is unchanged only if they are older than the build by this much:
# file systems stamp times at a coarse grain (a kernel tick), so a write just after a read can keep them.
SETTLE_NS = 2_000_000_000
BATCH_BYTES = 1 << 20  # a worker's task: consecutive entries of about this many bytes, or BATCH_ENTRIES of them
BATCH_ENTRIES = 256
BATCHES_AHEAD_PER_WORKER = 4  # tasks queued ahead of the writer per worker: bounds the memory held at once
BLOCK_BYTES = 1 << 20  # what the writer gathers small pieces into (see _Output)


def compressor_name() -> str:
    """What decides the compressed bytes besides the input: reused bytes must come from the same one."""
    return f"zlib {zlib.ZLIB_RUNTIME_VERSION} raw deflate level {COMPRESSION_LEVEL}"


@contextmanager
def replaced(destination: Path) -> Iterator[IO[bytes]]:
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


def remove_temporary_files(folder: Path) -> None:
    """Temp files of a build that was killed; under the build lock no other build is writing one."""
    for temporary in folder.glob(f"{TEMPORARY_PREFIX}*"):
        temporary.unlink(missing_ok=True)


# ---- what a build records per entry, and the previous zip it can reuse ------------------------------------------


class Recorded(NamedTuple):
    """One file entry as written: the manifest keeps these so the next build can reuse its compressed bytes.
    (A NamedTuple: a build makes one per file, and a frozen dataclass costs three times as much to make.)"""

    size: int
    executable: bool
    sha256: str
    crc: int
    compressed_size: int
    offset: int  # of its local header in the zip
    # The file's (mtime_ns, ctime_ns, inode) when it was read, if it had settled by then (see `_settled`).
    # The same triple later means the same bytes (no write leaves ctime alone), so the sha256 above is known
    # without reading the file; anything else, and the file is read and hashed again.
    seen: tuple[int, int, int] | None = None

    def as_json(self) -> list[Any]:
        return [*self[:6], list(self.seen) if self.seen else None]

    @classmethod
    def from_json(cls, value: object) -> Recorded | None:
        """None for anything but the exact shape `as_json` writes (the manifest may have been edited)."""
        if type(value) is not list or len(value) != 7:
            return None
        size, executable, sha256, crc, compressed_size, offset, seen = value
        numbers = [size, crc, compressed_size, offset]
        if seen is not None:
            if type(seen) is not list or len(seen) != 3:
                return None
            numbers += seen
        # map(type, ...), not a generator per number: this runs for every file of the previous build
        if set(map(type, numbers)) != {int} or min(numbers) < 0:
            return None
        if type(executable) is not bool or type(sha256) is not str:
            return None
        return cls(size, executable, sha256, crc, compressed_size, offset, tuple(seen) if seen else None)

    def holds(self, info: os.stat_result) -> bool:
        """Whether the file with this stat still holds the recorded bytes: it had settled when it was read, and
        its times and inode are the same since (see `seen`)."""
        return self.seen is not None and self.seen == _seen(info) and self.size == info.st_size


def recorded_entries(entries: object) -> dict[str, Recorded]:
    """A manifest's file entries as written by `Recorded.as_json`; anything else in it is dropped."""
    if not isinstance(entries, dict):
        return {}
    recorded = {name: Recorded.from_json(value) for name, value in entries.items() if isinstance(name, str)}
    return {name: value for name, value in recorded.items() if value is not None}


@dataclass(frozen=True)
class Previous:
    """The previous zip's bytes (mapped, not copied), and what its manifest recorded for each of its file entries."""

    data: memoryview
    entries: dict[str, Recorded]

    def reusable(self, name: str, size: int, executable: bool, sha256: str) -> memoryview | None:
        """The raw deflate stream of `name` in the previous zip if it holds exactly these bytes under this mode."""
        recorded = self.entries.get(name)
        if recorded is None or (recorded.size, recorded.executable, recorded.sha256) != (size, executable, sha256):
            return None
        encoded = name.encode()
        start = recorded.offset + LOCAL_HEADER.size + len(encoded)
        end = start + recorded.compressed_size
        if end > len(self.data):
            return None
        expected = _local_header(encoded, recorded.crc, recorded.compressed_size, size, DEFLATED)
        if self.data[recorded.offset : start] != expected:
            return None
        return self.data[start:end]


def _zip_seen(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)


def load_previous(
    zip_path: Path, sha256: str, compressor: str, entries: dict[str, Recorded], seen: object = None
) -> Previous | None:
    """The previous build's zip, if it is still the one its manifest names and was compressed by the same
    compressor as this build would use; otherwise None (everything is compressed afresh).

    The zip is still the one named when its stat is `seen`, the one `write_zip` recorded (see `_backdate`):
    then it is not read whole. Otherwise its sha256 is checked. Either way it is mapped, not copied: only
    the reused entries' pages are read. (A zip truncated by another program while this build maps it would
    stop the build with SIGBUS; nothing is lost: the old manifest is already gone, the next build starts
    afresh.)"""
    if compressor != compressor_name():
        return None
    try:
        with open(zip_path, "rb") as stream:
            info = os.fstat(stream.fileno())
            data = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # ValueError: an empty file cannot be mapped
        return None
    unchanged = isinstance(seen, list) and tuple(seen) == _zip_seen(info)
    if not unchanged and hashlib.sha256(data).hexdigest() != sha256:
        return None
    return Previous(memoryview(data), entries)


def _backdate(descriptor: int) -> os.stat_result | None:
    """Set the written zip's modification time SETTLE_NS into the past, and return its stat (None where the
    file system refuses: then the next build checks the zip's digest).

    Any later write to the file stamps the time of that write, which cannot equal this one: so a zip whose
    stat is still the recorded one holds the bytes written (`load_previous` trusts it without reading it),
    however soon the next build runs. Its change time could not serve: a write in the same clock tick as the
    rename keeps it. (Only a program that sets this very modification time back by hand could fool it.)"""
    now = time.time_ns()
    try:
        os.utime(descriptor, ns=(now, now - SETTLE_NS))
        return os.fstat(descriptor)
    except OSError:
        return None


def _recorded_seen(path: Path, written: os.stat_result | None) -> tuple[int, int, int, int] | None:
    """The zip's stat after its rename (which changes its change time), if it is still the file written."""
    if written is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    if (info.st_ino, info.st_size, info.st_mtime_ns) != (written.st_ino, written.st_size, written.st_mtime_ns):
        return None
    return _zip_seen(info)


# ---- the zip's records ------------------------------------------------------------------------------------------


def _flags(encoded: bytes) -> int:
    return 0 if encoded.isascii() else UTF8_NAME


def _local_header(encoded: bytes, crc: int, compressed_size: int, size: int, method: int) -> bytes:
    fields = (VERSION, 0, _flags(encoded), method, DOS_TIME, DOS_DATE, crc, compressed_size, size, len(encoded), 0)
    return LOCAL_HEADER.pack(b"PK\x03\x04", *fields) + encoded


class _Written(NamedTuple):
    """An entry ready to write: its name, external attributes, method, CRC, sizes, sha256 and deflate stream."""

    name: str
    attributes: int
    method: int
    crc: int
    size: int
    sha256: str
    stream: bytes | memoryview
    seen: tuple[int, int, int] | None  # see Recorded.seen
    reused_at: int | None = None  # where its local header is in the previous zip, when its bytes come from there

    @property
    def executable(self) -> bool:
        return bool(self.attributes >> 16 & 0o111)


def _directory(entry: Entry) -> _Written:
    attributes = (stat.S_IFDIR | 0o755) << 16 | MSDOS_DIRECTORY
    return _Written(entry.name, attributes, 0, 0, 0, "", b"", None)


def _seen(info: os.stat_result) -> tuple[int, int, int]:
    return (info.st_mtime_ns, info.st_ctime_ns, info.st_ino)


def _file(entry: Entry, previous: Previous | None, level: int, settled_before: int) -> _Written:
    """Read, hash and compress one file, or take its compressed bytes from the previous zip when its bytes are
    the ones recorded there. Runs in a worker thread: the read, sha256, crc32 and deflate all release the GIL."""
    assert entry.source is not None
    attributes = (stat.S_IFREG | (0o755 if entry.executable else 0o644)) << 16
    info = entry.stat()  # before the read: a write after it changes ctime, and the next build reads the file again
    seen = _seen(info)
    known = previous.entries.get(entry.name) if previous else None
    if known and known.holds(info) and known.executable == entry.executable:
        reused = previous.reusable(entry.name, known.size, known.executable, known.sha256)  # type: ignore[union-attr]
        if reused is not None:
            return _Written(
                entry.name, attributes, DEFLATED, known.crc, known.size, known.sha256, reused, seen, known.offset
            )
    data = Path(entry.source).read_bytes()
    if len(data) > ZIP32_LIMIT:
        raise DeployerError(f"{entry.name} is over 4 GB; Lambda takes at most 250 MB unzipped")
    sha256 = hashlib.sha256(data).hexdigest()
    # A file changed within the file system's timestamp grain of this read could keep its ctime: not recorded.
    settled = seen if max(info.st_mtime_ns, info.st_ctime_ns) < settled_before else None
    reused = previous.reusable(entry.name, len(data), entry.executable, sha256) if previous else None
    if reused is not None:
        recorded = previous.entries[entry.name]  # type: ignore[union-attr]
        return _Written(
            entry.name, attributes, DEFLATED, recorded.crc, len(data), sha256, reused, settled, recorded.offset
        )
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    stream = compressor.compress(data) + compressor.flush()
    return _Written(entry.name, attributes, DEFLATED, zlib.crc32(data), len(data), sha256, stream, settled)


def _batches(entries: list[Entry]) -> Iterator[list[Entry]]:
    """Runs of consecutive entries of about BATCH_BYTES together: one task per small file would cost more in
    the pool's bookkeeping (under the GIL) than the file costs to hash."""
    batch: list[Entry] = []
    size = 0
    for entry in entries:
        batch.append(entry)
        size += entry.stat().st_size if entry.source else 0
        if size >= BATCH_BYTES or len(batch) >= BATCH_ENTRIES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _prepare(batch: list[Entry], previous: Previous | None, level: int, settled_before: int) -> list[_Written]:
    return [
        _directory(entry) if entry.source is None else _file(entry, previous, level, settled_before) for entry in batch
    ]


def _prepared(entries: list[Entry], previous: Previous | None) -> Iterator[_Written]:
    """The entries ready to write, in order, prepared by a thread pool a bounded number of batches ahead."""
    level = COMPRESSION_LEVEL
    settled_before = time.time_ns() - SETTLE_NS
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="zip") as pool:
        pending: deque[Future[list[_Written]]] = deque()
        batches = _batches(entries)
        try:
            for batch in batches:
                pending.append(pool.submit(_prepare, batch, previous, level, settled_before))
                if len(pending) >= WORKERS * BATCHES_AHEAD_PER_WORKER:
                    break
            while pending:
                yield from pending.popleft().result()
                following = next(batches, None)  # a name of its own: `batch` above is never None
                if following is not None:
                    pending.append(pool.submit(_prepare, following, previous, level, settled_before))
        finally:
            for waiting in pending:
                waiting.cancel()


def _end_records(count: int, directory_offset: int, directory_size: int) -> bytes:
    """The end of central directory record, after zip64's end record and locator when there are too many
    entries for the classic one (as zipfile writes them)."""
    records = b""
    if count > ENTRY_COUNT_LIMIT:
        zip64_end = directory_offset + directory_size
        records += ZIP64_END_RECORD.pack(
            b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, directory_size, directory_offset
        )
        records += ZIP64_END_LOCATOR.pack(b"PK\x06\x07", 0, zip64_end, 1)
    return records + END_RECORD.pack(
        b"PK\x05\x06", 0, 0, min(count, ENTRY_COUNT_LIMIT), min(count, ENTRY_COUNT_LIMIT),
        directory_size, directory_offset, 0,
    )  # fmt: skip


def _central_header(item: _Written, encoded: bytes, compressed_size: int, offset: int) -> bytes:
    # fmt: off
    fields = (
        VERSION, UNIX, VERSION, 0, _flags(encoded), item.method, DOS_TIME, DOS_DATE, item.crc, compressed_size,
        item.size, len(encoded), 0, 0, 0, 0, item.attributes, offset,
    )
    # fmt: on
    return CENTRAL_HEADER.pack(b"PK\x01\x02", *fields) + encoded


@dataclass(frozen=True)
class Zipped:
    sha256: str  # of the zip's bytes
    content_sha256: str  # of what it holds (names, modes, file bytes), whatever the compressor
    entries: dict[str, Recorded]  # every file entry, for the next build to reuse
    seen: tuple[int, int, int, int] | None  # the zip's (size, mtime_ns, ctime_ns, inode), see `load_previous`


class _Output:
    """The zip's bytes, in order, to the file and to its sha256, in blocks of about BLOCK_BYTES: small pieces
    gathered (a write and a hash update per header would cost more), a larger one cut (a block hashed while it
    is still in the CPU's cache). Hashing in a thread of its own did not pay: measured slower on 2 busy cores."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()
        self.pending: list[bytes | memoryview] = []
        self.pending_size = 0

    def put(self, piece: bytes | memoryview) -> None:
        if len(piece) >= BLOCK_BYTES:
            self.flush()
            view = memoryview(piece)
            for start in range(0, len(view), BLOCK_BYTES):
                self._write(view[start : start + BLOCK_BYTES])
            return
        self.pending.append(piece)
        self.pending_size += len(piece)
        if self.pending_size >= BLOCK_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            block = b"".join(self.pending)
            self.pending.clear()
            self.pending_size = 0
            self._write(block)

    def _write(self, block: bytes | memoryview) -> None:
        self.stream.write(block)
        self.digest.update(block)

    def sha256(self) -> str:
        self.flush()
        return self.digest.hexdigest()


def write_zip(entries: Iterable[Entry], destination: Path, previous: Previous | None = None) -> Zipped:
    """Write the zip (temp file, fsync, rename); return the digest of the bytes written, the digest of its
    content (which another zlib cannot change) and what the next build needs to reuse its entries.

    Entries reused from adjacent places of the previous zip (most of them, on a rebuild) are written as one
    slice of it, local headers included: `Previous.reusable` checked each header is the one this writer
    would write."""
    content = hashlib.sha256(f"{BUILD_FORMAT}\n".encode())
    recorded: dict[str, Recorded] = {}
    central: list[bytes] = []
    offset = 0
    run_start = run_end = -1  # the slice of the previous zip holding the reused entries not yet put

    with replaced(destination) as stream:
        output = _Output(stream)

        def put_run() -> None:
            nonlocal run_start, run_end
            if previous is not None and run_end > run_start:
                output.put(previous.data[run_start:run_end])
            run_start = run_end = -1

        for item in _prepared(list(entries), previous):
            encoded = item.name.encode()
            compressed_size = len(item.stream)
            if offset > ZIP32_LIMIT or compressed_size > ZIP32_LIMIT:
                raise DeployerError("the zip would be over 4 GB; Lambda takes at most 250 MB unzipped")
            central.append(_central_header(item, encoded, compressed_size, offset))
            if item.sha256:
                recorded[item.name] = Recorded(
                    item.size, item.executable, item.sha256, item.crc, compressed_size, offset, item.seen
                )
                content.update(f"{item.name}\0{item.executable}\0{item.sha256}\n".encode())
            else:
                content.update(f"{item.name}\0\n".encode())
            length = LOCAL_HEADER.size + len(encoded) + compressed_size
            if item.reused_at is not None:
                if item.reused_at != run_end:
                    put_run()
                    run_start = item.reused_at
                run_end = item.reused_at + length
            else:
                put_run()
                output.put(_local_header(encoded, item.crc, compressed_size, item.size, item.method))
                output.put(item.stream)
            offset += length
        put_run()
        if offset > ZIP32_LIMIT:
            raise DeployerError("the zip would be over 4 GB; Lambda takes at most 250 MB unzipped")
        directory = b"".join(central)
        output.put(directory)
        output.put(_end_records(len(central), offset, len(directory)))
        sha256 = output.sha256()
        stream.flush()  # before the times are set: a later write would stamp them again
        written = _backdate(stream.fileno())
    return Zipped(sha256, content.hexdigest(), recorded, _recorded_seen(destination, written))
