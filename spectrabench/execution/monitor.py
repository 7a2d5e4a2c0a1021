"""Memory and utilisation of running attempts, sampled by a thread in the driver.

The driver calls `watch` when it starts a worker and `unwatch` when the worker ends; in between a daemon thread
samples every `interval_s`: on CPU slots the RSS and CPU use of the worker's whole process tree (psutil), on GPUs
the worker's memory and the device's utilisation (NVML). Nothing here raises into the driver: a measurement that
fails is logged once and skipped, because a missing figure must never fail a job.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType, TracebackType
from typing import Any, NamedTuple

import psutil

from spectrabench.execution.machineload import process_tree
from spectrabench.hardware import DeviceSpec

log = logging.getLogger(__name__)

_GB = 1024**3


class ResourceSample(NamedTuple):
    """One measurement of one attempt on one device (a row of the resources table)."""

    key: str
    t: float
    device: str
    mem_gb: float
    util_pct: float | None


class AttemptUsage(NamedTuple):
    """What one attempt used, from all its samples."""

    peak_mem_gb: float | None
    mean_util_pct: float | None
    samples: list[ResourceSample]


@dataclass
class _Watch:
    key: str
    root: psutil.Process | None
    devices: tuple[DeviceSpec, ...]
    samples: list[ResourceSample] = field(default_factory=list)
    # pid -> (CPU seconds, monotonic time) at the previous sample: CPU use is a rate between two readings.
    cpu_seen: dict[int, tuple[float, float]] = field(default_factory=dict)

    @property
    def on_gpu(self) -> bool:
        return any(d.kind == "cuda" for d in self.devices)

    @property
    def cores(self) -> int:
        # The cores the worker was given (its slots' threads), so 100% means "using all it may use".
        return sum(d.threads or 0 for d in self.devices if d.kind == "cpu") or os.cpu_count() or 1


class _GpuReading(NamedTuple):
    used_gb: float
    util_pct: float | None
    procs: dict[int, float | None] | None  # pid -> GB; None when NVML can't list processes on this device


class Monitor:
    """Samples the resources of watched attempts in a background thread.

    Usable as a context manager (`with Monitor() as monitor:`); `start` and `stop` may be called more than once.

    Args:
        interval_s: Seconds between two samples.
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._watches: dict[str, _Watch] = {}
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._nvml: ModuleType | None = None
        self._nvml_failed = False
        self._warned: set[str] = set()

    def __enter__(self) -> Monitor:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Start the sampling thread (no-op when it is running)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stopping,), name="spectrabench-monitor",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the sampling thread, wait for it, and release NVML (no-op when stopped)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping.set()
        if thread is not None:
            thread.join()
        with self._lock:
            self._close_nvml()

    def watch(self, key: str, pid: int, devices: Sequence[DeviceSpec]) -> None:
        """Start measuring the worker `pid` (and every process it starts), placed on `devices`.

        Args:
            key: The attempt's id; `unwatch(key)` returns what was measured.
            pid: The worker process.
            devices: Where the worker runs; CPU samples are reported under the first one's id.
        """
        try:
            root: psutil.Process | None = psutil.Process(pid)
        except psutil.Error:
            root = None  # already gone: the attempt simply gets no samples
        with self._lock:
            if key in self._watches:
                self._warn_once(f"rewatch:{key}", "attempt %s was watched twice; its earlier samples are dropped", key)
            watch = _Watch(key=key, root=root, devices=tuple(devices))
            self._watches[key] = watch
            self._sample([watch])  # so even an attempt shorter than one interval gets a figure

    def unwatch(self, key: str) -> AttemptUsage:
        """Stop measuring an attempt and return what it used.

        Args:
            key: The id given to `watch`.

        Returns:
            Peak memory (GB; summed over the attempt's devices at each instant), mean utilisation (percent of the
            cores or GPUs it was given) and every sample; `None` figures when nothing could be measured.
        """
        with self._lock:
            watch = self._watches.pop(key, None)
            if watch is None:
                return AttemptUsage(None, None, [])
            self._sample([watch])
        return _usage(watch.samples)

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.wait(self.interval_s):
            with self._lock:
                self._sample(list(self._watches.values()))

    def _sample(self, watches: list[_Watch]) -> None:
        """Take one sample of each watch; the caller holds the lock. Never raises."""
        try:
            t, now = time.time(), time.monotonic()
            gpu_watches = [w for w in watches if w.on_gpu]
            readings = self._read_gpus({d.index for w in gpu_watches for d in w.devices if d.kind == "cuda"})
            for watch in watches:
                try:
                    if watch.on_gpu:
                        self._sample_gpu(watch, t, readings)
                    else:
                        self._sample_cpu(watch, t, now)
                except Exception as exc:
                    self._warn_once(f"sample:{type(exc).__name__}", "could not sample attempt %s: %r",
                                    watch.key, exc, exc_info=True)
        except Exception as exc:
            self._warn_once(f"tick:{type(exc).__name__}", "resource sampling failed: %r", exc, exc_info=True)

    def _sample_cpu(self, watch: _Watch, t: float, now: float) -> None:
        """RSS of the worker's process tree, and its CPU use since the previous sample."""
        rss, busy, measured = 0, 0.0, False
        seen: dict[int, tuple[float, float]] = {}
        for proc in process_tree(watch.root):
            try:
                with proc.oneshot():
                    mem = proc.memory_info().rss
                    times = proc.cpu_times()
            except psutil.Error:
                continue  # exited (or became a zombie) while we read the tree
            rss += mem
            cpu_s = times.user + times.system
            seen[proc.pid] = (cpu_s, now)
            previous = watch.cpu_seen.get(proc.pid)
            # A process seen for the first time has no earlier reading to take a rate from; its share starts next
            # sample. (psutil's create_time is only accurate to the second, too coarse to serve as the baseline.)
            if previous is not None and now > previous[1]:
                busy += max(0.0, cpu_s - previous[0]) / (now - previous[1])
                measured = True
        if not seen:
            return
        watch.cpu_seen = seen
        util = 100.0 * busy / watch.cores if measured else None
        watch.samples.append(ResourceSample(watch.key, t, watch.devices[0].id, rss / _GB, util))

    def _sample_gpu(self, watch: _Watch, t: float, readings: dict[int, _GpuReading]) -> None:
        """The worker's memory on each of its GPUs, with each GPU's utilisation."""
        pids = {proc.pid for proc in process_tree(watch.root)}
        if not pids:
            return  # the worker has exited: what the GPU holds now belongs to someone else
        for device in watch.devices:
            reading = readings.get(device.index)
            if reading is not None and device.kind == "cuda":
                watch.samples.append(ResourceSample(watch.key, t, device.id, _attributed_gb(reading, pids),
                                                    reading.util_pct))

    def _read_gpus(self, indices: set[int]) -> dict[int, _GpuReading]:
        """One NVML reading per GPU index; GPUs that can't be read are left out."""
        nvml = self._open_nvml() if indices else None
        if nvml is None:
            return {}
        readings = {}
        for index in sorted(indices):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                used_gb = nvml.nvmlDeviceGetMemoryInfo(handle).used / _GB
            except nvml.NVMLError as exc:
                self._warn_once(f"gpu:{index}", "cannot read GPU %d through NVML: %s", index, exc)
                continue
            util: float | None
            try:
                util = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except nvml.NVMLError:
                util = None  # not supported on some devices (MIG slices)
            procs: dict[int, float | None] | None
            try:
                procs = {p.pid: None if p.usedGpuMemory is None else p.usedGpuMemory / _GB
                         for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle)}
            except nvml.NVMLError:
                procs = None
            readings[index] = _GpuReading(used_gb, util, procs)
        return readings

    def _open_nvml(self) -> Any:
        """The initialised `pynvml` module, or None (logged once) when there is no NVML to talk to."""
        if self._nvml is not None or self._nvml_failed:
            return self._nvml
        try:
            import pynvml
        except ImportError:
            self._nvml_failed = True
            self._warn_once("nvml", "nvidia-ml-py is not installed: no GPU samples")
            return None
        try:
            pynvml.nvmlInit()
        except (pynvml.NVMLError, OSError) as exc:
            self._nvml_failed = True
            self._warn_once("nvml", "NVML did not start (%s): no GPU samples", exc)
            return None
        self._nvml = pynvml
        return pynvml

    def _close_nvml(self) -> None:
        nvml, self._nvml, self._nvml_failed = self._nvml, None, False
        if nvml is not None:
            try:
                nvml.nvmlShutdown()
            except nvml.NVMLError as exc:
                log.debug("nvmlShutdown failed: %s", exc)

    def _warn_once(self, what: str, message: str, *args: object, exc_info: bool = False) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning(message, *args, exc_info=exc_info)


def _attributed_gb(reading: _GpuReading, pids: set[int]) -> float:
    """The GPU memory that belongs to the worker's processes, as far as NVML lets us tell."""
    if not reading.procs:
        return reading.used_gb
    mine = [gb for pid, gb in reading.procs.items() if pid in pids]
    if mine:
        return reading.used_gb if None in mine else sum(gb for gb in mine if gb is not None)
    # Processes we can see hold this GPU's memory, so none of it is ours (yet). If we see none of NVML's pids, they
    # come from another PID namespace (a container): we can't attribute, and the whole device is the safe figure.
    if any(psutil.pid_exists(pid) for pid in reading.procs):
        return 0.0
    return reading.used_gb


def _usage(samples: list[ResourceSample]) -> AttemptUsage:
    """Peak memory (summed over devices sampled at the same instant), mean utilisation, and the samples."""
    if not samples:
        return AttemptUsage(None, None, [])
    at: defaultdict[float, float] = defaultdict(float)
    for sample in samples:
        at[sample.t] += sample.mem_gb
    utils = [s.util_pct for s in samples if s.util_pct is not None]
    return AttemptUsage(max(at.values()), sum(utils) / len(utils) if utils else None, list(samples))
