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


PAST_TENSE = {
    "create": ("created", "green"),
    "update": ("updated", "yellow"),
    "unchanged": ("unchanged", "dim"),
    "delete": ("deleted", "red"),
    "absent": ("already gone", "dim"),
    "keep": ("kept", "dim"),
    "check": ("passed", "green"),
    "skip": ("skipped", "dim"),
}
PLAN_WORDS = {
    "create": ("+ create", "green"),
    "update": ("~ update", "yellow"),
    "delete": ("- delete", "red"),
    "unchanged": ("  unchanged", "dim"),
    "check": ("? check", "cyan"),
    "skip": ("  skip", "dim"),
}


def describe_diffs(diffs: Sequence[Diff]) -> str:
    return ", ".join(f"{diff.field} {diff.old} → {diff.new}" for diff in diffs)


def outcome_line(resource: str, name: str, action: str, seconds: float, diffs: Sequence[Diff], note: str = "") -> None:
    word, colour = PAST_TENSE[action]
    detail = describe_diffs(diffs) if diffs and action == "update" else note
    detail = f"  [dim]{escape(detail)}[/]" if detail else ""
    console().print(f"  {resource:<12} {escape(name):<44} [{colour}]{word:<12}[/] {seconds:6.2f}s{detail}")


def plan_line(resource: str, name: str, action: str, diffs: Sequence[Diff]) -> None:
    word, colour = PLAN_WORDS[action]
    detail = f"  {escape(describe_diffs(diffs))}" if diffs else ""
    console().print(f"[{colour}]{word:<12}[/] {resource:<12} {escape(name)}{detail}")


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
    """A progress line holding names deployer did not write (file paths): printed as is, never as markup."""
    console().print(escape(message), soft_wrap=True)


HTML = re.compile(r"<!doctype|<html|<body|<head|</[a-z][a-z0-9]*>", re.I)


def one_line(text: str, limit: int = 300) -> str:
    """Text from elsewhere (an error page a proxy sent instead of AWS's answer) as one short line: tags gone,
    white space collapsed, cut at `limit` characters. (Only HTML loses its tags: `<app>.zip` is a word.)"""
    if HTML.search(text):
        text = re.sub(r"<(script|style)\b.*?</\1>|<[^>]*>", " ", text, flags=re.I | re.S)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error(message: str) -> None:
    console().print(f"[bold red]error:[/] {escape(one_line(message, limit=2000))}", soft_wrap=True)


def result(text: str) -> None:
    """The one thing a script wants (a URL, a path): plain, on stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def result_json(data: dict[str, Any]) -> None:
    result(json.dumps(data, indent=2, sort_keys=True, default=str))
