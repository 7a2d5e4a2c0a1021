"""RayExecutor: one Ray task per attempt, on whichever node of a Ray cluster has the attempt's GPUs and CPUs free.

Ray assigns the GPU ids (the task's CUDA_VISIBLE_DEVICES), places tasks across nodes, and retries a task whose Ray
worker or node was lost (`max_retries`; never for exceptions). On the node, the task supervises the usual worker
subprocess exactly as LocalExecutor does on this machine: own process group, killed on cancel or timeout, its
process tree measured by a Monitor. The worker writes into a node-local folder; the task sends its small files to
the driver while it runs (through one control actor, which also carries cancellations) and every file when it ends.
The driver writes them into the attempt's folder and classifies the outcome with `collect_outcome`, so the one retry
policy decides, and the driver alone writes DuckDB.

`ray` is imported inside functions only: the extra is optional and the CLI must start without it.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from spectrabench.execution.attempt import collect_outcome, kill_process_group, start_worker, write_spec
from spectrabench.execution.backends import connect
from spectrabench.execution.executor import AttemptRequest, AttemptResult, check_devices
from spectrabench.execution.monitor import AttemptUsage, Monitor
from spectrabench.hardware import DeviceSpec, discover_gpus
from spectrabench.harness.workerspec import ERROR_FILE, LOG_FILE, SPEC_FILE, WorkerSpec, write_json_atomic

log = logging.getLogger(__name__)

#: The file in each attempt's folder that says on which node it ran and which GPU ids Ray assigned.
NODE_FILE = "ray-node.json"
#: Ray re-runs a task this often when its worker process or node dies; any other failure is ours to retry.
SYSTEM_RETRIES = 3
#: CPUs a GPU attempt asks Ray for, besides its GPUs (tokenising and collating run on the CPU).
CPUS_PER_GPU_ATTEMPT = 1
#: How long a cancelled attempt may take to report before its Ray task is killed outright.
_CANCEL_GRACE_S = 15.0
#: Files larger than this travel only with the final result, not while the attempt runs.
_LIVE_MAX_BYTES = 1 << 20
#: Variables of the driver's environment that reach the worker on the node (the rest comes from the node itself:
#: PATH, HOME, a virtualenv of the driver's machine would be wrong there).
_FORWARD_PREFIXES = ("SPECTRABENCH_", "HF_", "HUGGING_FACE_", "TRANSFORMERS_", "TOKENIZERS_", "PYTHONUNBUFFERED",
                     "PYTHONHASHSEED")


# -- the node side -----------------------------------------------------------------------------------------------

class _NodeResult(NamedTuple):
    """What the task on the node sends back: the worker's exit, its files and its measured usage."""

    token: str
    returncode: int | None  # None: killed at its timeout
    cancelled: bool
    started: float
    files: dict[str, bytes]
    usage: AttemptUsage
    node: str


class _Control:
    """A small actor between the driver and its running tasks: cancellations one way, live files the other."""

    def __init__(self) -> None:
        self._cancelled: set[str] = set()
        self._updates: dict[str, tuple[str, dict[str, bytes]]] = {}

    def report(self, key: str, token: str, files: dict[str, bytes]) -> bool:
        """Take an attempt's changed files; return whether the driver cancelled it."""
        seen_token, pending = self._updates.get(key, (token, {}))
        # A new token means Ray re-ran the task: what the lost run sent is stale.
        self._updates[key] = (token, {**pending, **files} if seen_token == token else dict(files))
        return key in self._cancelled

    def cancel(self, key: str) -> None:
        """Ask the attempt's task to kill its worker and return."""
        self._cancelled.add(key)

    def pull(self, prefix: str) -> dict[str, tuple[str, dict[str, bytes]]]:
        """Every attempt's files received since the last pull, with the token of the run that sent them."""
        mine = {key: update for key, update in self._updates.items() if key.startswith(prefix)}
        for key in mine:
            del self._updates[key]
        return mine

    def forget(self, prefix: str) -> None:
        """Drop everything about one executor's attempts (it closed)."""
        self._cancelled = {key for key in self._cancelled if not key.startswith(prefix)}
        self._updates = {key: update for key, update in self._updates.items() if not key.startswith(prefix)}


def _changed_files(folder: Path, seen: dict[str, tuple[int, int]], *, live: bool) -> dict[str, bytes]:
    """Files of `folder` that changed since `seen` (updated); live sends skip the log and large files."""
    files: dict[str, bytes] = {}
    for path in folder.iterdir():
        # Dot files are the worker's half-written temporaries (write_atomic); the driver has its own spec.json.
        if path.name.startswith(".") or path.name == SPEC_FILE or not path.is_file():
            continue
        stat = path.stat()
        if live and (path.name == LOG_FILE or stat.st_size > _LIVE_MAX_BYTES):
            continue
        if seen.get(path.name) != (stat.st_size, stat.st_mtime_ns):
            try:
                files[path.name] = path.read_bytes()
            except OSError:
                continue  # replaced while reading: the next round sends it
            seen[path.name] = (stat.st_size, stat.st_mtime_ns)
    return files


def _node_cache(requested: str) -> str:
    """The driver's model cache when this node can write it (shared storage), else a node-local one."""
    try:
        Path(requested).mkdir(parents=True, exist_ok=True)
        if os.access(requested, os.W_OK):
            return requested
    except OSError:
        pass
    return str(Path(tempfile.gettempdir()) / "spectrabench-models")


def supervise(key: str, spec_json: str, env: dict[str, str], slots: list[str], timeout_s: float | None,
              control: Any, poll_s: float, monitor_interval_s: float) -> _NodeResult:
    """Run one attempt's worker on this node (the body of the Ray task); never lets the worker outlive the task.

    Args:
        key: The attempt's id.
        spec_json: The driver's WorkerSpec; its folders are replaced by node-local ones.
        env: The driver's variables to forward to the worker.
        slots: The driver's device ids, for the CPU samples.
        timeout_s: Kill the worker after this long.
        control: The executor's control actor.
        poll_s: How often to check the worker, send files and read the cancel flag.
        monitor_interval_s: How often to sample the worker's memory and utilisation.
    """
    import ray

    token, node = uuid.uuid4().hex, socket.gethostname()
    spec = WorkerSpec.model_validate_json(spec_json)
    base = Path(tempfile.gettempdir()) / "spectrabench-attempts"
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="a-", dir=base))
    gpu_ids = [str(i) for i in ray.get_gpu_ids()]
    cpus = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)) or 1
    worker_env = {**os.environ, **env, "SPECTRABENCH_DRIVER_PID": str(os.getpid())}
    update: dict[str, Any] = {"out_dir": str(folder), "model_cache_dir": _node_cache(spec.model_cache_dir)}
    real_gpus = [g for g in discover_gpus() if str(g.index) in gpu_ids] if gpu_ids else []
    if real_gpus:
        devices = [g.model_copy(update={"id": f"{node}/cuda:{g.index}"}) for g in real_gpus]
    else:
        # No GPU here (a CPU attempt, or GPUs that Ray was told about but this node lacks): run on the CPUs the task
        # holds. Ray's CUDA_VISIBLE_DEVICES stays in the environment, so the worker still records its GPU ids.
        update.update(device="cpu", threads=spec.threads or cpus)
        threads = str(update["threads"])
        worker_env.update({"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads})
        if not gpu_ids:
            worker_env["CUDA_VISIBLE_DEVICES"] = ""
        devices = [DeviceSpec(id=slots[0], kind="cpu", index=0, name="CPU", total_mem_gb=0.0, free_mem_gb=0.0,
                              threads=int(threads))]
    node_spec = spec.model_copy(update=update)
    # Where the attempt ran and what Ray gave it: the driver keeps this file with the attempt's other files.
    write_json_atomic(folder / NODE_FILE, {"node_id": ray.get_runtime_context().get_node_id(), "hostname": node,
                                           "gpu_ids": gpu_ids, "real_gpus": bool(real_gpus), "cpus": cpus,
                                           "device": node_spec.device, "pid": os.getpid()})
    seen: dict[str, tuple[int, int]] = {}
    monitor = Monitor(interval_s=monitor_interval_s)
    returncode: int | None = None
    cancelled = False
    started = time.time()
    if ray.get(control.report.remote(key, token, {})):
        cancelled = True  # cancelled while it waited for resources: start nothing
        usage = AttemptUsage(None, None, [])
    else:
        monitor.start()
        proc = start_worker(node_spec, worker_env)
        monitor.watch(key, proc.pid, devices)
        deadline = time.monotonic() + timeout_s if timeout_s else None
        try:
            while (returncode := proc.poll()) is None:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if ray.get(control.report.remote(key, token, _changed_files(folder, seen, live=True))):
                    cancelled = True
                    break
                time.sleep(poll_s)
        finally:
            # Also on ray.cancel (KeyboardInterrupt here) and any error: the worker's whole group goes with us.
            kill_process_group(proc)
            usage = monitor.unwatch(key)
            monitor.stop()
    files = _changed_files(folder, {}, live=False)
    shutil.rmtree(folder, ignore_errors=True)
    return _NodeResult(token, returncode, cancelled, started, files, usage, node)


# -- the driver side ---------------------------------------------------------------------------------------------

#: The control actor of this driver's current Ray job (Ray kills an actor once no handle to it is left).
_CONTROL: dict[str, Any] = {}


def _control_actor(ray: Any) -> Any:
    # Job ids restart at 01000000 in every new Ray instance; with the node id the key is one connection's.
    context = ray.get_runtime_context()
    job = f"{context.get_node_id()}/{context.get_job_id()}"
    if job not in _CONTROL:
        _CONTROL.clear()  # handles of an earlier connection are dead
        _CONTROL[job] = ray.remote(num_cpus=0)(_Control).remote()
    return _CONTROL[job]


@dataclass
class _Running:
    request: AttemptRequest
    ref: Any
    submitted: float
    token: str | None = None
    cancelled_at: float | None = None
    forced: bool = False


class RayExecutor:
    """Runs attempts as Ray tasks on a Ray cluster; enforces one attempt per device slot.

    A slot is a share of the cluster, not a particular device: a GPU slot asks Ray for one GPU (Ray picks which,
    on which node), a CPU slot for its `threads` CPUs. The driver's placement decides how many attempts run at once
    and how many GPUs each gets; Ray decides where. A thread mirrors the files of running attempts into their
    folders, as a local worker would write them.

    Args:
        devices: The slots (from the cluster's resources, see `backends.pool_devices`).
        base_env: The driver's environment; the worker gets the variables that concern it (HF_*, SPECTRABENCH_*).
        address: The cluster to connect to when this process is not connected yet (None: a new local Ray).
        monitor_interval_s: How often the node samples each worker's memory and utilisation.
        poll_s: How often nodes and driver exchange files, cancellations and results.
    """

    def __init__(self, devices: Sequence[DeviceSpec], base_env: Mapping[str, str], *, address: str | None = None,
                 monitor_interval_s: float = 1.0, poll_s: float = 0.2) -> None:
        self._ray = connect(address)
        self._devices = list(devices)
        self._env = {k: v for k, v in base_env.items() if k.startswith(_FORWARD_PREFIXES)}
        self._monitor_interval_s = monitor_interval_s
        self._poll_s = poll_s
        self._running: dict[str, _Running] = {}
        self._busy: dict[str, list[AttemptRequest]] = {}
        self._lock = threading.Lock()
        # Keys the control actor sees are prefixed with this executor's id: the actor is shared by every executor
        # of the process (starting one costs seconds), and two executors may use the same attempt keys.
        self._prefix = f"{uuid.uuid4().hex[:8]}/"
        self._control = _control_actor(self._ray)
        self._task = self._ray.remote(supervise)
        self._stopping = threading.Event()
        self._mirror = threading.Thread(target=self._mirror_loop, name="spectrabench-ray-files", daemon=True)
        self._mirror.start()

    # Ray hands each task whole GPUs (num_gpus=1): attempts on one slot would queue there, not run side by side.
    shares_devices = False

    def capacity(self) -> list[DeviceSpec]:
        """The slots of this executor."""
        return list(self._devices)

    def submit(self, request: AttemptRequest) -> None:
        """Queue the attempt's Ray task now (DeviceBusy if one of its slots is taken; Ray shares none)."""
        check_devices(request._replace(shared=False), self._devices, self._busy)
        gpus = sum(1 for d in request.devices if d.kind == "cuda")
        cpus = CPUS_PER_GPU_ATTEMPT if gpus else sum(d.threads or 1 for d in request.devices)
        write_spec(request.spec)  # the driver's record of what ran; the node gets its own copy
        task = self._task.options(num_gpus=gpus, num_cpus=cpus, max_retries=SYSTEM_RETRIES, retry_exceptions=False,
                                  name=f"spectrabench:{request.key}")
        ref = task.remote(self._prefix + request.key, request.spec.model_dump_json(), {**self._env, **request.env},
                          [d.id for d in request.devices], request.timeout_s, self._control, self._poll_s,
                          self._monitor_interval_s)
        with self._lock:
            self._running[request.key] = _Running(request, ref, time.time())
            for device in request.devices:
                self._busy[device.id] = [request]

    def running(self) -> list[str]:
        """Keys of attempts in flight."""
        with self._lock:
            return list(self._running)

    def _write_files(self, entry: _Running, token: str, files: Mapping[str, bytes]) -> None:
        """Mirror node files into the attempt's folder; a new token (Ray re-ran the task) starts it afresh."""
        folder = Path(entry.request.spec.out_dir)
        if entry.token is not None and token != entry.token:
            for stale in folder.iterdir():
                if stale.name != SPEC_FILE and stale.is_file():
                    stale.unlink()
        entry.token = token
        for name, data in files.items():
            if Path(name).name != name:
                continue  # only plain names in the attempt's folder
            tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, folder / name)

    def _pull_live(self) -> None:
        updates = self._ray.get(self._control.pull.remote(self._prefix))
        with self._lock:
            for key, (token, files) in updates.items():
                entry = self._running.get(key.removeprefix(self._prefix))
                if entry is not None:  # a finished attempt already has its final files
                    self._write_files(entry, token, files)

    def _mirror_loop(self) -> None:
        while not self._stopping.wait(self._poll_s):
            try:
                self._pull_live()
            except Exception as exc:  # a missed update only delays a file until the attempt's final result
                log.debug("could not pull live attempt files: %r", exc)

    def _finish(self, key: str) -> AttemptResult:
        ray = self._ray
        with self._lock:
            entry = self._running.pop(key)
            for device in entry.request.devices:
                self._busy.pop(device.id, None)
        spec = entry.request.spec
        cancelled = entry.cancelled_at is not None
        try:
            result: _NodeResult = ray.get(entry.ref)
        except ray.exceptions.RayError as exc:
            if cancelled:  # force-cancelled after the grace period, or before it ever started
                return AttemptResult(entry.request, collect_outcome(spec, None, entry.submitted, cancelled=True),
                                     AttemptUsage(None, None, []))
            # Ray gave up (its retries for lost workers are spent) or our task failed: a crash for our retry policy.
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            write_json_atomic(Path(spec.out_dir) / ERROR_FILE, {"kind": "crash", "stage": "ray", "task": None,
                                                               "message": f"Ray: {type(exc).__name__}: {first}"})
            return AttemptResult(entry.request, collect_outcome(spec, 1, entry.submitted),
                                 AttemptUsage(None, None, []))
        self._write_files(entry, result.token, result.files)
        outcome = collect_outcome(spec, result.returncode, result.started, timeout_s=entry.request.timeout_s,
                                  cancelled=cancelled or result.cancelled)
        return AttemptResult(entry.request, outcome, result.usage)

    def wait(self, timeout_s: float | None = None) -> list[AttemptResult]:
        """Block until at least one attempt finishes (or `timeout_s` passes); return the finished ones."""
        ray = self._ray
        end = time.monotonic() + timeout_s if timeout_s is not None else None
        while True:
            with self._lock:
                refs = {entry.ref: key for key, entry in self._running.items()}
            if not refs:
                return []
            left = self._poll_s if end is None else max(0.0, min(self._poll_s, end - time.monotonic()))
            ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=left)
            if ready:
                return [self._finish(refs[ref]) for ref in ready]
            self._force_stuck_cancels()
            if end is not None and time.monotonic() >= end:
                return []

    def _force_stuck_cancels(self) -> None:
        """Kill the Ray worker of a task that has not answered its cancel flag in time (stuck, or its node gone)."""
        now = time.monotonic()
        with self._lock:
            stuck = [e for e in self._running.values()
                     if e.cancelled_at is not None and not e.forced and now - e.cancelled_at > _CANCEL_GRACE_S]
        for entry in stuck:
            entry.forced = True
            self._ray.cancel(entry.ref, force=True)

    def cancel(self, key: str) -> None:
        """Ask the attempt's task to kill its worker's process group; `wait` reports it as interrupted."""
        with self._lock:
            entry = self._running.get(key)
            if entry is None or entry.cancelled_at is not None:
                return
            entry.cancelled_at = time.monotonic()
        self._ray.get(self._control.cancel.remote(self._prefix + key))

    def close(self) -> None:
        """Cancel everything in flight, wait for the tasks to report (bounded), and stop mirroring files."""
        for key in self.running():
            self.cancel(key)
        end = time.monotonic() + _CANCEL_GRACE_S + 5
        while self.running() and time.monotonic() < end:
            self.wait(timeout_s=1.0)
        self._stopping.set()
        self._mirror.join()
        with self._lock:
            for entry in self._running.values():
                self._ray.cancel(entry.ref, force=True)
            self._running.clear()
            self._busy.clear()
        self._ray.get(self._control.forget.remote(self._prefix))
