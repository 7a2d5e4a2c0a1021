"""Who runs a task of a running attempt: its worker, or another job it was moved to.

A worker claims each task just before starting it; the driver claims the unstarted tasks it moves to an idle
device (`planning.tails`). A claim is a file created with O_EXCL in the attempt's folder, so exactly one side
wins each task, without locks and without the two ever talking: the worker skips a task the driver claimed, and
the driver moves only tasks it claimed. A task therefore never runs twice, nor is lost.
"""

from __future__ import annotations

import os
from pathlib import Path

from spectrabench.taskparts import file_stem

CLAIMS_DIR = "claims"


def claim_task(attempt_dir: Path, task: str, owner: str, *, create: bool = False) -> bool:
    """Claim `task` of the attempt in `attempt_dir` for `owner`; False when someone claimed it first.

    Only the worker creates the claims folder (`create`), when it claims its first task: the driver can claim
    nothing before the worker has started (and nothing at all of a worker on another machine, whose folder it
    does not see), so a claim it wins is always one the worker will see.
    """
    folder = attempt_dir / CLAIMS_DIR
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        return False
    try:
        fd = os.open(folder / file_stem(task), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, owner.encode())
    finally:
        os.close(fd)
    return True


def claimed_by(attempt_dir: Path, task: str) -> str | None:
    """Who claimed `task` ("worker", "driver", ...), or None when nobody has yet."""
    path = attempt_dir / CLAIMS_DIR / file_stem(task)
    try:
        return path.read_text(encoding="utf-8") or "?"
    except FileNotFoundError:
        return None
