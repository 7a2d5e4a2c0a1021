"""One run per data dir at a time.

Two drivers on one data dir would both write DuckDB (which allows one writer process) and both mark the other's
attempts as lost on start. We refuse the second run with a clear message rather than make it wait.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spectrabench.errors import UserError

LOCK_FILE = "run.lock"


@contextmanager
def run_lock(data_dir: Path) -> Iterator[None]:
    """Hold the data dir's run lock for the duration of a run; the OS releases it if the driver dies."""
    path = data_dir / LOCK_FILE
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise UserError(f"another spectrabench run (pid {holder}) is using data dir '{data_dir}'",
                            hint="wait for it to finish, or set SPECTRABENCH_DATA_DIR to another folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()
