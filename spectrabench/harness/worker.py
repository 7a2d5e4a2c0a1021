"""The worker subprocess: load one model once, evaluate a job's tasks one after another through lm-eval's API.

Run as `python -m spectrabench.harness.worker <attempt folder>`. After each task it atomically writes that task's
results (lm-eval's own JSON layout) and per-sample records, and rewrites progress.json with timings and peak
memory, so a crash later in the job loses nothing that finished. It never touches the store: the driver parses
these files and is the only writer of DuckDB.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from spectrabench.harness import faults as injected
from spectrabench.harness.claims import claim_task
from spectrabench.harness.workerspec import (
    ERROR_FILE,
    EXIT_CODES,
    PROGRESS_FILE,
    SPEC_FILE,
    ErrorKind,
    WorkerSpec,
    task_results_file,
    task_samples_file,
    write_atomic,
    write_json_atomic,
)

_UNAVAILABLE_HINTS = (
    "couldn't connect", "could not connect", "offline mode", "is not a local folder", "not a valid model identifier",
    "repository not found", "does not appear to have", "gated repo", "401", "403", "connection", "couldn't find",
    "doesn't exist on the hub", "local_files_only", "cannot find the requested files", "not found on the hub",
)


def classify_exception(exc: BaseException, stage: str) -> ErrorKind:
    """Map an exception raised while loading (`stage="load"`) or evaluating (`"task"`) to an error kind."""
    name = type(exc).__name__
    text = f"{name}: {exc}".lower()
    if isinstance(exc, MemoryError) or name == "OutOfMemoryError" or "out of memory" in text:
        return ErrorKind.OOM
    if name in {"RepositoryNotFoundError", "GatedRepoError", "LocalEntryNotFoundError", "DatasetNotFoundError",
                "OfflineModeIsEnabled", "ConnectionError", "HfHubHTTPError"} or isinstance(exc, ConnectionError):
        return ErrorKind.UNAVAILABLE
    if isinstance(exc, OSError | ValueError) and any(h in text for h in _UNAVAILABLE_HINTS):
        return ErrorKind.UNAVAILABLE
    if stage == "load" and isinstance(exc, OSError | ValueError | ImportError):
        # A model folder without usable weights or config, or args the model class refuses: no retry can help.
        return ErrorKind.UNAVAILABLE
    if name == "PartError":  # a group that cannot run in parts: retrying changes nothing
        return ErrorKind.BAD_TASK
    if name == "UserError":
        return ErrorKind.UNAVAILABLE if stage == "load" else ErrorKind.BAD_TASK
    if stage == "task" and (isinstance(exc, KeyError) or "not found" in text or "unsafe" in text):
        return ErrorKind.BAD_TASK
    return ErrorKind.CRASH


def peak_memory_gb(device: str) -> float:
    """Peak memory of this attempt: CUDA max allocated on GPU, peak resident set size on CPU."""
    if device.startswith("cuda"):
        import torch

        return float(torch.cuda.max_memory_allocated()) / 1024**3
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB


class _Progress:
    """progress.json: what finished, how long it took, peak memory so far."""

    def __init__(self, out_dir: Path, spec: WorkerSpec) -> None:
        self._path = out_dir / PROGRESS_FILE
        self._device = spec.device
        self.data: dict[str, Any] = {"job_key": spec.job_key, "attempt": spec.attempt, "started_at": time.time(),
                                     "import_s": None, "provision_s": 0.0, "load_s": None, "tasks": {},
                                     "peak_mem_gb": 0.0, "device": spec.device, "batch_size": spec.batch_size,
                                     # what the executor (or Ray) made visible: shows which GPUs the attempt held
                                     "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def save(self, **fields: Any) -> None:
        self.data.update(fields)
        self.data["peak_mem_gb"] = peak_memory_gb(self._device)
        self.data["updated_at"] = time.time()
        write_json_atomic(self._path, self.data)


def _resolve_pretrained(spec: WorkerSpec) -> str:
    if spec.model.builtin:
        from spectrabench.harness.models import provision

        return str(provision(spec.model.builtin, Path(spec.model_cache_dir)))
    assert spec.model.pretrained is not None
    return spec.model.pretrained


def _release_cached_memory() -> None:
    """Give the memory the last task's batches took back to the GPU. PyTorch's allocator keeps freed blocks, which
    the device (and jobs beside this one) still count as used: without this a worker would hold its heaviest task's
    peak to its end, while the scheduler counts only the peak of the tasks it has left (`WorkItem.mem_from`)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        import gc

        gc.collect()  # tensors held only by reference cycles are freed here, so their blocks can go back too
        torch.cuda.empty_cache()


def _limit_gpu_memory(limit_gb: float) -> None:
    """Hold this process to `limit_gb` on every visible GPU: torch's allocator raises a real out-of-memory error
    beyond it, which the driver retries at a smaller batch like any other."""
    import torch

    for index in range(torch.cuda.device_count()):
        total_gb = torch.cuda.get_device_properties(index).total_memory / 1024**3
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit_gb / total_gb), index)


def _load_model(spec: WorkerSpec, pretrained: str) -> Any:
    from lm_eval.models.huggingface import HFLM

    args: dict[str, Any] = {"pretrained": pretrained, "revision": spec.model.revision, "dtype": spec.model.dtype,
                            "batch_size": spec.batch_size, "device": spec.device,
                            "trust_remote_code": spec.model.trust_remote_code}
    args.update(spec.model.model_args)
    return HFLM(**args)


def _evaluate_task(lm: Any, spec: WorkerSpec, task_index: int, task_manager: Any, groups: Any) -> dict[str, Any]:
    """Evaluate task `task_index` of the spec; `groups` (`groupscores.GroupBuilds`) holds the groups this worker
    has built for parts."""
    import lm_eval

    task = spec.tasks[task_index]
    tasks: list[Any] = [task.harness_name]
    structure = None
    if task.part is not None:
        # A part of a group: its slice of the leaves, built through the group once per worker
        # (`harness.groupscores`).
        tasks, structure = groups.part(task.harness_name, *task.part)
    limit, samples = spec.limit, None
    if spec.sampling == "random" and spec.limit is not None:
        from spectrabench.harness.sampling import leaf_samples, random_samples

        # A part draws from the leaves it holds, already built: building the group again per part would cost as
        # much as the part itself for a short one.
        limit, samples = None, (leaf_samples({t.task_name: t for t in tasks}, spec.limit, spec.sample_seed)
                                if structure is not None else
                                random_samples(task.harness_name, task_manager, spec.limit, spec.sample_seed))
    # One loaded model, each task at its own batch: HFLM reads batch_size_per_gpu at every call.
    batch = task.batch_under(spec.batch_size)
    lm.batch_size_per_gpu = batch
    results = lm_eval.simple_evaluate(
        model=lm, tasks=tasks, num_fewshot=task.shots, limit=limit, samples=samples,
        batch_size=batch, task_manager=task_manager, log_samples=True,
        confirm_run_unsafe_code=task.allow_code_execution, random_seed=spec.seed,
        numpy_random_seed=1234 + spec.seed, torch_random_seed=1234 + spec.seed,
        fewshot_random_seed=1234 + spec.seed,
    )
    if results is None:  # only on non-zero ranks in distributed runs, which we never start
        raise RuntimeError("lm-eval returned no results")
    if structure is not None:
        from spectrabench.harness.groupscores import GROUPS_KEY

        results = {**results, GROUPS_KEY: structure}
    return dict(results)


def _write_task_outputs(out_dir: Path, task_name: str, results: dict[str, Any], spec: WorkerSpec) -> int:
    from lm_eval.utils import handle_non_serializable

    samples = results.pop("samples", {}) or {}
    lines = []
    for subtask, records in samples.items():
        for record in records:
            lines.append(json.dumps({"task": subtask, **record}, default=handle_non_serializable))
    # Samples first, results last: the results file is what marks the task done.
    write_atomic(task_samples_file(out_dir, task_name), "\n".join(lines) + ("\n" if lines else ""))
    results["model_name"] = spec.model.name
    write_atomic(task_results_file(out_dir, task_name),
                 json.dumps(results, indent=2, default=handle_non_serializable))
    return len(lines)


def _fail(out_dir: Path, kind: ErrorKind, exc: BaseException, stage: str, task: str | None) -> int:
    message = f"{type(exc).__name__}: {exc}".strip()
    write_json_atomic(out_dir / ERROR_FILE, {"kind": kind.value, "stage": stage, "task": task,
                                             "message": message.splitlines()[0][:500] if message else ""})
    traceback.print_exc()
    return EXIT_CODES.get(kind, 1)


_PR_SET_PDEATHSIG = 1


def _die_with_driver() -> None:
    """Make sure this worker never outlives the driver that started it.

    The kernel sends SIGKILL when the parent dies (prctl PDEATHSIG); a watcher thread also kills the worker's
    whole process group if it is ever re-parented, which covers what PDEATHSIG misses.
    """
    driver = os.environ.get("SPECTRABENCH_DRIVER_PID")
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the watcher thread still covers it
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    parent = os.getppid()
    if driver is not None and parent != int(driver):
        os._exit(75)  # the driver died before we got here

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="driver-watch", daemon=True).start()


def run_worker(attempt_dir: Path) -> int:
    """Run one attempt described by `<attempt_dir>/spec.json`; returns the process exit code."""
    _die_with_driver()
    faults = injected.faults_from_env(os.environ)
    spec = WorkerSpec.model_validate_json((attempt_dir / SPEC_FILE).read_text(encoding="utf-8"))
    out_dir = Path(spec.out_dir)
    progress = _Progress(out_dir, spec)
    progress.save()
    try:
        # Start faults fire before any heavy import, as faults.py promises: torch alone takes seconds to import.
        injected.at_start(faults, spec.model.name, spec.attempt, spec.batch_size, out_dir)
        if spec.threads:
            import torch

            torch.set_num_threads(spec.threads)
        if spec.gpu_memory_limit_gb is not None:
            _limit_gpu_memory(spec.gpu_memory_limit_gb)
        # Imports alone take seconds on CPU; timing them apart keeps load_s about the model itself.
        started = time.perf_counter()
        import lm_eval.models.huggingface  # noqa: F401
        from lm_eval.tasks import TaskManager

        progress.save(import_s=time.perf_counter() - started)
        started = time.perf_counter()
        pretrained = _resolve_pretrained(spec)
        progress.save(provision_s=time.perf_counter() - started)
        started = time.perf_counter()
        lm = _load_model(spec, pretrained)
        progress.save(load_s=time.perf_counter() - started)
        task_manager = TaskManager(include_path=spec.include_paths or None, include_defaults=spec.include_defaults)
        from spectrabench.harness.groupscores import GroupBuilds

        groups = GroupBuilds(task_manager)
    except BaseException as exc:
        return _fail(out_dir, classify_exception(exc, "load"), exc, "load", None)

    for index, task in enumerate(spec.tasks):
        # The driver may have moved this task to another device (a tail move): whoever claims it first runs it.
        if not claim_task(out_dir, task.name, "worker", create=True):
            continue
        started = time.perf_counter()
        try:
            batch = task.batch_under(spec.batch_size)
            injected.before_task(faults, spec.model.name, spec.attempt, task.name, batch, out_dir)
            results = _evaluate_task(lm, spec, index, task_manager, groups)
            n_samples = _write_task_outputs(out_dir, task.name, results, spec)
            injected.after_task(faults, spec.model.name, spec.attempt, task.name, batch,
                                task_results_file(out_dir, task.name))
        except BaseException as exc:
            return _fail(out_dir, classify_exception(exc, "task"), exc, "task", task.name)
        tasks = dict(progress.data["tasks"])
        tasks[task.name] = {"seconds": time.perf_counter() - started, "n_samples": n_samples,
                            "finished_at": time.time(), "batch_size": batch}
        progress.save(tasks=tasks)
        _release_cached_memory()
    progress.save(finished_at=time.time())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m spectrabench.harness.worker ATTEMPT_DIR`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m spectrabench.harness.worker ATTEMPT_DIR", file=sys.stderr)
        return 2
    return run_worker(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
