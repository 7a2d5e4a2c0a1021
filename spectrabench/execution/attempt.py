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


def start_worker(spec: WorkerSpec, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Write the spec and start the worker in its own process group, output to the attempt's log file."""
    attempt_dir = write_spec(spec)
    with (attempt_dir / LOG_FILE).open("wb") as log:
        # The child keeps its own copy of the log descriptor; ours closes on leaving the block.
        return subprocess.Popen(worker_argv(attempt_dir), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=dict(env), start_new_session=True)


def collect_outcome(spec: WorkerSpec, returncode: int | None, started: float, *, timeout_s: float | None = None,
                    cancelled: bool = False) -> AttemptOutcome:
    """Classify a finished worker from its exit code and the files it left.

    Args:
        spec: The attempt's spec (its out_dir holds progress, error and log files).
        returncode: The exit code, or None when the driver killed it at its timeout.
        started: When it started (epoch seconds).
        timeout_s: The timeout it was killed at, for the message.
        cancelled: The driver cancelled it (Ctrl-C, shutdown).
    """
    attempt_dir = Path(spec.out_dir)
    log_path = attempt_dir / LOG_FILE
    finished = time.time()
    progress = read_progress(attempt_dir) or {}
    if cancelled:
        return AttemptOutcome(returncode, ErrorKind.INTERRUPTED, "cancelled by the driver", progress, started,
                              finished, log_path)
    if returncode is None:
        return AttemptOutcome(None, ErrorKind.TIMEOUT, f"killed after {timeout_s or 0:.0f} s without finishing",
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
        if returncode == -signal.SIGKILL:
            message = "worker was killed by SIGKILL (the kernel's OOM killer, most likely)"
    return AttemptOutcome(returncode, kind, message, progress, started, finished, log_path)


def run_attempt(spec: WorkerSpec, env: Mapping[str, str], timeout_s: float | None = None) -> AttemptOutcome:
    """Run one worker to completion (or timeout) in the foreground and classify the result."""
    started = time.time()
    proc = start_worker(spec, env)
    try:
        returncode: int | None = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        returncode = None
    finally:
        kill_process_group(proc)
    return collect_outcome(spec, returncode, started, timeout_s=timeout_s)


def _last_log_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""
