"""The reproducible zip, and the temp-file-then-rename that puts it (and its manifest) in place.

Reproducible means the same entries give the same sha256 wherever they are zipped: entries in the given
(sorted) order, one fixed timestamp, permissions normalised to 644/755, Unix "made by", no extra attributes.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from deployer.build.walk import Entry

FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
BUILD_FORMAT = 2  # bump when the zip layout changes, so cached builds are redone
COMPRESSION_LEVEL = 6
TEMPORARY_PREFIX = ".build-"


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


def write_zip(entries: list[Entry], destination: Path) -> tuple[str, str]:
    """Write the zip; return the digest of its bytes (read back before the rename, so they are the bytes
    renamed into place) and the digest of its content, which another zlib cannot change."""
    content = hashlib.sha256(f"{BUILD_FORMAT}\n".encode())
    digest = hashlib.sha256()
    with replaced(destination) as raw:
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


def remove_temporary_files(folder: Path) -> None:
    """Temp files of a build that was killed; under the build lock no other build is writing one."""
    for temporary in folder.glob(f"{TEMPORARY_PREFIX}*"):
        temporary.unlink(missing_ok=True)
