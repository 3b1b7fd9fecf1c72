"""The walk: every file and folder of the function's source (and its installed dependencies) that goes into
the zip, in the zip's order, with what the rules leave out recorded on the way."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from deployer.build.rules import (
    BUILD_OUTPUT,
    DEPLOYER_STATE,
    PRIVATE_KEY,
    LeftOut,
    Rules,
    compile_exclude,
    holds_private_key,
    printable,
    reason_by_name,
    unreadable,
)
from deployer.config import Config
from deployer.errors import UsageError

Unchanged = Callable[[str, os.stat_result], bool]


class Entry(NamedTuple):
    """One entry of the zip. (A NamedTuple, its source a str: the walk makes one per file, and a frozen dataclass
    and a Path each cost more to make than the file's stat.)"""

    name: str  # the path inside the zip, "/"-separated, directories ending in "/"
    source: str | Path | None  # None for directories
    executable: bool
    # The file's stat as the walk saw it (following symlinks), so the build's later steps need no stat of
    # their own: the staleness fingerprint, the size check and the zip writer's unchanged-file check.
    info: os.stat_result | None = None

    def stat(self) -> os.stat_result:
        assert self.source is not None
        return self.info or os.stat(self.source)


def _children(folder: str) -> list[os.DirEntry[str]]:
    """A folder's entries by name; os.scandir knows each one's type without a stat of its own."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except OSError as error:
        raise unreadable(folder, error) from None


def _link_target(link: str) -> Path:
    """Where a symlink ends up; a loop or a missing target is a UsageError saying which link and what to do."""
    try:
        return Path(os.path.realpath(link, strict=True))
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UsageError(
                f"{printable(link)} is a symlink that loops back on itself; remove it or point it at a real file"
            ) from None
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            raise UsageError(
                f"{printable(link)} is a symlink to {printable(os.readlink(link))}, which does not exist; "
                "remove the link or restore its target"
            ) from None
        raise unreadable(link, error) from None


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def walk(root: Path, rules: Rules, left_out: list[LeftOut]) -> Iterator[Entry]:
    """Every file and folder under root that goes into the zip; what is left out is appended to `left_out`.

    Symlinks are followed while they stay inside root. Real paths are carried down the walk (a folder that is
    not a symlink lives at its parent's real path), so only symlinks cost a realpath."""
    real_root = Path(os.path.realpath(root))

    def visit(folder: str, real_folder: Path, relative: str, ancestors: frozenset[Path]) -> Iterator[Entry]:
        for child in _children(folder):
            name = f"{relative}{child.name}"
            is_dir = _is_dir(child)
            reason = reason_by_name(name, is_dir, rules.exclude)
            if reason:
                left_out.append(LeftOut(f"{name}/" if is_dir else name, reason))
                continue
            path = child.path
            try:
                child.name.encode("utf-8")
            except UnicodeEncodeError:
                raise UsageError(
                    f"{printable(path)}: its name is not valid UTF-8, which Lambda cannot unpack; "
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
                        f"{printable(path)} is a symlink to {printable(real)}, outside the source folder; "
                        "copy the file into the source folder instead"
                    )
            try:
                info = child.stat()
            except OSError as error:
                raise unreadable(path, error) from None
            mode = info.st_mode
            if stat.S_ISDIR(mode):
                real = real or real_folder / child.name
                if real in rules.outputs:
                    left_out.append(LeftOut(f"{name}/", rules.outputs[real]))
                    continue
                if real in ancestors:
                    raise UsageError(
                        f"{printable(path)} is a symlink to {printable(real)}, a folder that holds it, so the "
                        "zip would never end; remove the link"
                    )
                yield Entry(f"{name}/", None, True)
                yield from visit(path, real, f"{name}/", ancestors | {real})
            elif stat.S_ISREG(mode):
                if rules.sniff_keys and not rules.unchanged(name, info) and holds_private_key(path):
                    left_out.append(LeftOut(name, PRIVATE_KEY))
                    continue
                yield Entry(name, path, bool(mode & 0o111), info)

    yield from visit(str(root), real_root, "", frozenset({real_root}))


def _source_rules(config: Config, unchanged: Unchanged | None = None) -> Rules:
    outputs = {
        Path(os.path.realpath(config.root / "dist")): BUILD_OUTPUT,
        Path(os.path.realpath(config.root / ".deployer")): DEPLOYER_STATE,
    }
    rules = Rules(compile_exclude(config.exclude), sniff_keys=True, outputs=outputs)
    return replace(rules, unchanged=unchanged) if unchanged else rules


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
    if not any(entry.source for entry in walk(source, rules, [])):
        raise UsageError(f"source folder {source} is empty; put your handler there")
    if not any((source / candidate).is_file() for candidate in candidates):
        raise UsageError(
            f"handler {config.handler!r} needs {candidates[0]} in {source}, which is not there; "
            "fix [function] handler or add the file"
        )


def _handler_left_out(candidate: str, rules: Rules) -> str | None:
    """Why the handler's file (which is there) would be left out of the zip, judged by the rules on names:
    a function whose handler is not in its zip cannot start."""
    parts = candidate.split("/")
    for depth in range(1, len(parts) + 1):
        reason = reason_by_name("/".join(parts[:depth]), depth < len(parts), rules.exclude)
        if reason:
            return reason
    return None


def zip_entries(
    config: Config, dependencies: Path | None, left_out: list[LeftOut], unchanged: Unchanged | None = None
) -> list[Entry]:
    """The zip's entries, sorted; `unchanged` (see Rules.unchanged) spares the source's unchanged files the sniff."""
    exclude = compile_exclude(config.exclude)
    entries = {entry.name: entry for entry in walk(dependencies, Rules(exclude), left_out)} if dependencies else {}
    # The source wins over a dependency of the same name.
    entries.update({entry.name: entry for entry in walk(config.source, _source_rules(config, unchanged), left_out)})
    return [entries[name] for name in sorted(entries)]
