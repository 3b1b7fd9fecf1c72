"""Calm output: progress for people on stderr (one line per resource), results for scripts on stdout.

Rich is imported on first use, not at start-up: `deployer --help` must not pay for it.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from deployer.plan import Diff


@cache
def console() -> Console:
    from rich.console import Console

    # emoji=False: text from elsewhere keeps its words (`root:x:0:0` from a file is not `root❌0:0`).
    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


# C0 and C1 control characters (ESC, BEL, CR, LF, DEL, CSI...), the line and paragraph separators and the bidi
# overrides: what makes a terminal move, clear, retitle, answer (`ESC[6n` types into the prompt) or mislead.
# A tab moves nothing but the cursor: kept, Lambda's runtimes separate the fields of a log line with it.
CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
NAMED_CONTROLS = {"\n": "\\n", "\r": "\\r"}
FIELD_LIMIT = 200  # characters of one field of a state or lock object shown: a name, a host, a command


def untrusted(text: object, limit: int | None = None) -> str:
    """Text deployer did not write (function output, request paths, log events, state and lock fields, AWS's
    words), safe on a terminal: each control character shown as an escape (`\\x1b[2J`, `\\n`, `\\x07`), cut
    after `limit` characters. Print it as plain text (plain(), result(), or escape() inside markup)."""
    shown = str(text)
    if limit is not None and len(shown) > limit:
        shown = shown[:limit] + "…"
    return CONTROLS.sub(_control_escape, shown)


# The user:password@ of a URL (`--endpoint-url http://user:password@host`): botocore's errors quote the URL.
USERINFO = re.compile(r"(?<=://)[^/?#@\s'\"]*@")


def without_userinfo(text: str) -> str:
    """`text` with every URL's user and password replaced by `***`: a password is never printed."""
    return USERINFO.sub("***@", text)


def _control_escape(match: re.Match[str]) -> str:
    char = match[0]
    return NAMED_CONTROLS.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


PAST_TENSE = {
    "create": ("created", "green"),
    "update": ("updated", "yellow"),
    "unchanged": ("unchanged", "dim"),
    "delete": ("deleted", "red"),
    "absent": ("already gone", "dim"),
    "keep": ("kept", "dim"),
    "check": ("passed", "green"),
    "skip": ("skipped", "dim"),
    "inactive": ("not used", "dim"),
}
PLAN_WORDS = {
    "create": ("+ create", "green"),
    "update": ("~ update", "yellow"),
    "delete": ("- delete", "red"),
    "unchanged": ("  unchanged", "dim"),
    "check": ("? check", "cyan"),
    "skip": ("  skip", "dim"),
    "absent": ("  absent", "dim"),
    "keep": ("  keep", "dim"),
    "inactive": ("  not used", "dim"),
}


def describe_diffs(diffs: Sequence[Diff]) -> str:
    return ", ".join(f"{diff.field} {diff.old} → {diff.new}" for diff in diffs)


RESOURCE_COLUMN = len("base path mapping")  # the longest resource name: the columns after it stay aligned


def outcome_line(resource: str, name: str, action: str, seconds: float, diffs: Sequence[Diff], note: str = "") -> None:
    word, colour = PAST_TENSE[action]
    detail = describe_diffs(diffs) if diffs and action == "update" else note
    detail = f"  [dim]{escape(detail)}[/]" if detail else ""
    resource = f"{resource:<{RESOURCE_COLUMN}}"
    console().print(f"  {resource} {escape(name):<44} [{colour}]{word:<12}[/] {seconds:6.2f}s{detail}")


def plan_line(resource: str, name: str, action: str, diffs: Sequence[Diff], note: str = "") -> None:
    word, colour = PLAN_WORDS[action]
    detail = f"  {escape(describe_diffs(diffs) if diffs else note)}" if diffs or note else ""
    console().print(f"[{colour}]{word:<12}[/] {resource:<{RESOURCE_COLUMN}} {escape(name)}{detail}")


def info(message: str) -> None:
    console().print(message)


class UploadBar:
    """A large upload's progress bar (bytes, rate, time left) on stderr, on a terminal only: never on stdout,
    never in a pipe or a CI log."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, sent: int, total: int) -> None:
        if not console().is_terminal:
            return
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            columns = (TextColumn("  uploading"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
            self._progress = Progress(*columns, TimeRemainingColumn(), console=console(), transient=True)
            self._progress.start()
            self._task = self._progress.add_task("upload", total=total)
        self._progress.update(self._task, completed=sent)
        if sent >= total:
            self._progress.stop()
            self._progress = None


def plain(message: str) -> None:
    """A progress line holding names deployer did not write (file paths, a header, a log line): never as markup,
    control characters escaped."""
    console().print(escape(untrusted(without_userinfo(message))), soft_wrap=True)


HTML = re.compile(r"<!doctype|<html|<body|<head|</[a-z][a-z0-9]*>", re.I)


def one_line(text: str, limit: int = 300) -> str:
    """Text from elsewhere (an error page a proxy sent instead of AWS's answer) as one short line: tags gone,
    white space collapsed, cut at `limit` characters. (Only HTML loses its tags: `<app>.zip` is a word.)"""
    if HTML.search(text):
        text = re.sub(r"<(script|style)\b.*?</\1>|<[^>]*>", " ", text, flags=re.I | re.S)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error(message: str) -> None:
    """One line, whatever it quotes (AWS's words, a lock's holder, an endpoint): no markup, control characters
    escaped, no URL's password."""
    shown = untrusted(without_userinfo(one_line(message, limit=2000)))
    console().print(f"[bold red]error:[/] {escape(shown)}", soft_wrap=True)


def result(text: str) -> None:
    """The one thing a script wants (a URL, a path): plain, on stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def result_json(data: dict[str, Any]) -> None:
    result(json.dumps(data, indent=2, sort_keys=True, default=str))
