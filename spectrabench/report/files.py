"""Writing report files so that a failure leaves nothing half-written: temp file (or folder), then rename."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from spectrabench.errors import UserError


def _writable_folder(folder: Path, for_what: Path) -> None:
    if not folder.is_dir():
        raise UserError(f"cannot write '{for_what}': folder '{folder}' does not exist", hint="create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"cannot write '{for_what}': folder '{folder}' is not writable",
                        hint="choose a folder you can write to")


def check_file_target(path: Path) -> None:
    """Refuse, before any work, a file path that cannot be written: a missing or read-only folder, a folder."""
    if path.is_dir():
        raise UserError(f"cannot write '{path}': it is a folder", hint="give a file name, e.g. report.html")
    _writable_folder(path.parent if str(path.parent) else Path("."), path)


def check_folder_target(path: Path) -> None:
    """Refuse a folder path that cannot be written: an existing file, or a parent that is missing or read-only."""
    if path.exists() and not path.is_dir():
        raise UserError(f"cannot write into '{path}': it is a file, not a folder", hint="give a folder path")
    _writable_folder(path if path.is_dir() else path.parent, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (readers see the old file or the whole new one, never a part)."""
    check_file_target(path)
    temp: str | None = None
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        # mkstemp makes the file private (0600); a report is an ordinary file, readable as the umask allows.
        os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, path)
    except OSError as exc:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)
        raise UserError(f"cannot write '{path}': {exc.strerror or exc}") from None


def write_into_folder(folder: Path, produce: Callable[[Path], list[Path]]) -> list[Path]:
    """Let `produce` write files into a fresh temp folder, then move them all into `folder` (created if absent).

    Args:
        folder: Where the files end up; files of the same names are replaced, others are left alone.
        produce: Writes into the folder it is given and returns the paths it wrote.

    Returns:
        The final paths, in the order `produce` wrote them.
    """
    check_folder_target(folder)
    staging_parent = folder if folder.is_dir() else folder.parent
    try:
        staging = Path(tempfile.mkdtemp(prefix=".spectrabench-", dir=staging_parent))
    except OSError as exc:
        raise UserError(f"cannot write into '{folder}': {exc.strerror or exc}") from None
    try:
        written = produce(staging)
        if not folder.exists():
            # A new folder appears whole, in one rename; mkdtemp made it private (0700).
            staging.chmod(0o777 & ~_umask())
            staging.rename(folder)
            return [folder / p.name for p in written]
        final = []
        for path in written:
            os.replace(path, folder / path.name)
            final.append(folder / path.name)
        return final
    except OSError as exc:
        raise UserError(f"cannot write into '{folder}': {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_binary_files(folder: Path, files: dict[str, bytes]) -> list[Path]:
    """Write each `files[name]` to `folder/name` via `write_into_folder`."""
    def produce(staging: Path) -> list[Path]:
        paths = []
        for name, content in files.items():
            path = staging / name
            path.write_bytes(content)
            paths.append(path)
        return paths

    return write_into_folder(folder, produce)
