"""Headless Chromium for tests: load a local page, return its DOM and every console message it logged."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

# Chromium logs each console message (console.error, uncaught exceptions, blocked loads) as INFO:CONSOLE.
_CONSOLE = re.compile(r":INFO:CONSOLE[^\]]*\] (.*)")


class PageLoad(NamedTuple):
    """What headless Chromium saw when it loaded a page."""

    dom: str
    console: list[str]


def chromium_binary() -> str | None:
    """The Chromium executable on PATH (Debian: `chromium`), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def _flags(profile_dir: Path) -> list[str]:
    # --no-sandbox: CI runs as root; its own profile folder keeps runs independent of the user's HOME.
    return ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile_dir}"]


def load_page(page: Path, profile_dir: Path, timeout: float = 60) -> PageLoad:
    """Load `page` from disk and dump its DOM, with console logging on stderr."""
    binary = chromium_binary()
    assert binary is not None
    proc = subprocess.run([binary, *_flags(profile_dir), "--enable-logging=stderr", "--v=0", "--dump-dom",
                           page.resolve().as_uri()], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return PageLoad(proc.stdout, [m.group(1) for m in _CONSOLE.finditer(proc.stderr)])


def screenshot(page: Path, target: Path, profile_dir: Path, size: str = "1400,4000", timeout: float = 60) -> None:
    """Save a PNG of `page` as a 1400 px wide window shows it."""
    binary = chromium_binary()
    assert binary is not None
    proc = subprocess.run([binary, *_flags(profile_dir), f"--screenshot={target}", f"--window-size={size}",
                           page.resolve().as_uri()], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0 and target.is_file(), proc.stderr[-3000:]
