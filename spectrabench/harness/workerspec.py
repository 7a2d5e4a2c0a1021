"""The contract between the driver and a worker subprocess: the spec it reads and the files it writes.

Both sides import this module and nothing heavier, so the file names and error kinds are defined once.
"""

from __future__ import annotations

import json
import os
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from spectrabench.planning.jobs import TaskRef
from spectrabench.taskparts import file_stem

SPEC_FILE = "spec.json"
PROGRESS_FILE = "progress.json"
ERROR_FILE = "error.json"
LOG_FILE = "worker.log"


class ErrorKind(StrEnum):
    """Why an attempt failed; the retry policy decides from this alone."""

    OOM = "oom"
    TIMEOUT = "timeout"
    CRASH = "crash"
    BAD_OUTPUT = "bad_output"
    UNAVAILABLE = "unavailable"
    BAD_TASK = "bad_task"
    INTERRUPTED = "interrupted"


#: Worker exit codes, so the driver can classify even when error.json is missing.
EXIT_CODES: dict[ErrorKind, int] = {
    ErrorKind.UNAVAILABLE: 3, ErrorKind.BAD_TASK: 4, ErrorKind.OOM: 5, ErrorKind.CRASH: 1,
}


class WorkerModel(BaseModel):
    """How the worker loads the model: a resolved path or hub id, or a builtin to provision first."""

    model_config = ConfigDict(frozen=True)

    name: str
    pretrained: str | None = None
    builtin: str | None = None
    revision: str = "main"
    dtype: str = "bfloat16"
    trust_remote_code: bool = False
    model_args: dict[str, Any] = Field(default_factory=dict)


class WorkerSpec(BaseModel):
    """Everything one attempt needs, written by the driver as spec.json in the attempt's folder."""

    model_config = ConfigDict(frozen=True)

    job_key: str
    attempt: int
    model: WorkerModel
    tasks: tuple[TaskRef, ...]
    limit: int | None
    batch_size: int
    device: str = "cpu"
    threads: int | None = None
    include_paths: list[str] = Field(default_factory=list)
    include_defaults: bool = True
    model_cache_dir: str
    out_dir: str
    seed: int = 0
    # "first": lm-eval's first `limit` documents; "random": a nested random sample of them (harness.sampling).
    sampling: Literal["first", "random"] = "first"
    sample_seed: int = 0
    # At most this much memory on each visible GPU (Settings.gpu_memory_limit_gb); None: the whole card.
    gpu_memory_limit_gb: float | None = None


def task_results_file(out_dir: Path, task: str) -> Path:
    """Where the worker writes one task's lm-eval results (lm-eval's own JSON layout)."""
    return out_dir / f"{file_stem(task)}.results.json"


def task_samples_file(out_dir: Path, task: str) -> Path:
    """Where the worker writes one task's per-sample records (one lm-eval sample dict per line)."""
    return out_dir / f"{file_stem(task)}.samples.jsonl"


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see the old content or the new, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any) -> None:
    """Atomically write `payload` as JSON."""
    write_atomic(path, json.dumps(payload, indent=2, default=str))
