"""One attempt: start a worker subprocess in its own process group, wait for it, read what it left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from spectrabench.harness.results import read_error, read_progress
from spectrabench.harness.workerspec import (
    EXIT_CODES,
    LOG_FILE,
    SPEC_FILE,
    ErrorKind,
    WorkerSpec,
    write_atomic,
)


class AttemptOutcome(NamedTuple):
    """What the driver learns from one finished worker process."""

    returncode: int | None
    error_kind: ErrorKind | None
    error: str | None
    progress: dict[str, Any]
    started_at: float
    finished_at: float
    log_path: Path


def worker_argv(attempt_dir: Path) -> list[str]:
    """The exact command that runs a worker for the attempt in `attempt_dir`."""
    return [sys.executable, "-m", "spectrabench.harness.worker", str(attempt_dir)]


def write_spec(spec: WorkerSpec) -> Path:
    """Write spec.json into the attempt folder (created) and return the folder."""
    attempt_dir = Path(spec.out_dir)
    attempt_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(attempt_dir / SPEC_FILE, spec.model_dump_json(indent=2))
    return attempt_dir


def _kind_from_exit(returncode: int) -> ErrorKind:
    if returncode == -signal.SIGKILL:
        # The kernel's OOM killer sends SIGKILL; a timeout kill is classified by the caller before this.
        return ErrorKind.OOM
    for kind, code in EXIT_CODES.items():
        if code == returncode and kind is not ErrorKind.CRASH:
            return kind
    return ErrorKind.CRASH


def kill_process_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the worker and everything it started; never wait on a hung worker."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_attempt(spec: WorkerSpec, env: Mapping[str, str], timeout_s: float | None = None) -> AttemptOutcome:
    """Run one worker to completion (or timeout) and classify the result.

    Args:
        spec: The attempt to run; its `out_dir` receives spec.json, the log and the results.
        env: The worker's complete environment.
        timeout_s: Kill the whole process group after this many seconds.
    """
    attempt_dir = write_spec(spec)
    log_path = attempt_dir / LOG_FILE
    started = time.time()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(worker_argv(attempt_dir), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=dict(env), start_new_session=True)
        try:
            returncode: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_process_group(proc)
            returncode = None
        except BaseException:
            kill_process_group(proc)
            raise
    finished = time.time()
    progress = read_progress(attempt_dir) or {}
    if returncode is None:
        return AttemptOutcome(None, ErrorKind.TIMEOUT, f"killed after {timeout_s:.0f} s without finishing",
                              progress, started, finished, log_path)
    if returncode == 0:
        return AttemptOutcome(0, None, None, progress, started, finished, log_path)
    error = read_error(attempt_dir)
    if error is not None:
        kind = ErrorKind(error.get("kind", ErrorKind.CRASH))
        message = str(error.get("message", ""))
    else:
        kind = _kind_from_exit(returncode)
        message = _last_log_line(log_path) or f"worker exited with code {returncode}"
    return AttemptOutcome(returncode, kind, message, progress, started, finished, log_path)


def _last_log_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""
