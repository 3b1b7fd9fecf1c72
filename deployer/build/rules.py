"""What a build never packs, and why: the names every walk leaves out, secrets by name and by content,
and `[function] exclude` (gitignore patterns, matched by pathspec).

What is never packed (each left-out path is reported on the Artifact and in one log line):

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

`[function] exclude` holds gitignore patterns (git's own rules, as the `pathspec` library implements
them), matched against each path as it would be inside the zip ("/"-separated, relative to the zip's
root: a dependency's files too):

- `*` matches any characters but "/", `?` one character but "/", `[abc]`/`[!abc]` a class, `\\x` a
  literal x;
- a pattern with no "/" except a trailing one matches a name at any depth (`*.md`, `tests/`);
- a pattern with a "/" at its start or middle is anchored at the zip's root (`/setup.py`,
  `docs/*.txt`);
- `**` matches any number of folders, none included (`**/fixtures`, `docs/**`, `a/**/b`): so
  `docs/**` leaves out `docs/` whole;
- a trailing "/" matches folders only; a folder that matches is left out with everything in it;
- blanks at a pattern's end are dropped, as git drops them (`\\ ` keeps one);
- negation (`!pattern`) is not supported: list only what to leave out. A leading `#` is a literal
  character here, not a comment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from deployer.errors import UsageError

if TYPE_CHECKING:
    from pathspec import PathSpec

LEFT_OUT_SHOWN = 5  # paths named in the one "left out" line; the rest are counted

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
_SUFFIXES = tuple(NEVER_PACKED_SUFFIXES)  # for str.endswith, which costs less than splitext on every name
# A private key file starts with one of these (after blanks or a byte-order mark).
PRIVATE_KEY_START = re.compile(
    rb"(?:\xef\xbb\xbf)?\s*(?:-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|PuTTY-User-Key-File-)"
)
KEY_SNIFF_BYTES = 256
# What the sniff looks for, as a build records it: a file packed by a build that looked for the same is not read
# again while its stat is unchanged (see Rules.unchanged); a deployer that looks for more reads every file again.
KEY_RULES = f"{KEY_SNIFF_BYTES} {PRIVATE_KEY_START.pattern!r}"


@dataclass(frozen=True)
class LeftOut:
    """A path the zip does not carry, and why."""

    path: str  # as it would be inside the zip; folders end in "/"
    reason: str


@dataclass(frozen=True)
class Rules:
    """What a walk leaves out besides the names every walk leaves out."""

    exclude: PathSpec | None = None
    sniff_keys: bool = False  # read each file's first bytes for key material (the user's own files only)
    outputs: dict[Path, str] = field(default_factory=dict)  # real folders never packed -> why
    # Whether the file at this zip path, with this stat, is one the previous build read and packed (so it held
    # no key then) and has not changed since (zipwriter.Recorded.holds): then it is not sniffed again.
    unchanged: Callable[[str, os.stat_result], bool] = lambda name, info: False


def printable(text: str | Path) -> str:
    """A path as one printable line: bytes that are not UTF-8 as \\xNN, control characters escaped."""
    decoded = os.fsencode(text).decode("utf-8", "backslashreplace")
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in decoded)


def unreadable(path: str | Path, error: OSError) -> UsageError:
    return UsageError(
        f"cannot read {printable(path)}: {error.strerror or error}; "
        "fix its permissions, or leave it out with [function] exclude"
    )


def compile_exclude(patterns: tuple[str, ...] | list[str]) -> PathSpec | None:
    """[function] exclude as gitignore patterns (semantics: this module's docstring); a pattern it cannot
    honour is refused."""
    if not patterns:
        return None
    from pathspec import PathSpec  # here: a build without exclude patterns starts without it (~8 ms)

    for pattern in patterns:
        if not pattern.strip() or pattern.startswith("!"):
            why = "negation is not supported: list only what to leave out" if pattern.strip() else "is empty"
            raise UsageError(f"[function] exclude: pattern {pattern!r}: {why}")
        try:
            PathSpec.from_lines("gitignore", [pattern])
        except ValueError:  # pathspec's GitIgnorePatternError: a trailing "\\" escapes nothing
            raise UsageError(
                f"[function] exclude: pattern {pattern!r} is not a gitignore pattern (a lone \\ at its end?); "
                "fix it in deploy.toml"
            ) from None
    # git reads a leading "#" as a comment; in deploy.toml every pattern is meant, so it is a literal "#".
    return PathSpec.from_lines("gitignore", ["\\" + item if item.startswith("#") else item for item in patterns])


def reason_by_name(name: str, is_dir: bool, exclude: PathSpec | None) -> str | None:
    """Why the path `name` (inside the zip, no trailing "/") is never packed, judged by its name alone."""
    base = name.rsplit("/", 1)[-1]
    reason = NEVER_PACKED.get(base)
    if not reason and base.endswith(_SUFFIXES):
        reason = NEVER_PACKED_SUFFIXES.get(os.path.splitext(base)[1])
    if reason:
        return reason
    if base.startswith(".env"):
        return ENVIRONMENT_FILE
    if exclude is not None and exclude.match_file(f"{name}/" if is_dir else name):  # "/": folder-only patterns
        return EXCLUDED
    return None


def holds_private_key(path: str | Path) -> bool:
    """Whether the file starts like a private key; plain os calls, as this runs for every file of the source."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            head = os.read(descriptor, KEY_SNIFF_BYTES)
        finally:
            os.close(descriptor)
    except OSError as error:
        raise unreadable(path, error) from None
    return PRIVATE_KEY_START.match(head) is not None


def left_out_line(left_out: tuple[LeftOut, ...] | list[LeftOut]) -> str:
    """One line for the log: the first few paths with their reason, then how many more."""
    shown = ", ".join(f"{printable(item.path)} ({item.reason})" for item in left_out[:LEFT_OUT_SHOWN])
    more = len(left_out) - LEFT_OUT_SHOWN
    noun = "path" if len(left_out) == 1 else "paths"
    return f"left out {len(left_out)} {noun}: {shown}" + (f", and {more} more" if more > 0 else "")


def sorted_left_out(items: list[LeftOut]) -> tuple[LeftOut, ...]:
    """Secrets first (the ones worth reading when the line is cut short), then by path; each path once."""
    unique = {item.path: item for item in items}
    return tuple(sorted(unique.values(), key=lambda item: (not item.reason.startswith("secret"), item.path)))
