"""Headless Chromium, as the tests drive it: Debian's package, no network of its own, a fresh profile."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def chromium_page(url: str, profile: Path) -> str:
    """The page as headless Chromium renders it (its DOM)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail("Chromium is not installed: install it (Debian: apt-get install -y chromium) to run this test")
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--dump-dom",
        url,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"Chromium did not answer within 90 s: {' '.join(command)}")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
