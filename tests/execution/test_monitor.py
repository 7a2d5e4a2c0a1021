"""The resource monitor on real processes; GPUs through the fake NVML (this machine has none)."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType

import psutil
import pytest

from spectrabench.execution.monitor import AttemptUsage, Monitor
from spectrabench.hardware import DeviceSpec, cpu_slots
from tests.fakes import fake_pynvml

INTERVAL = 0.1
# Allocates 200 MiB that it really writes (so it is resident), says so, and waits to be measured.
ALLOC = "import time; block = b'x' * (200 * 1024**2); print('ready', flush=True); time.sleep(60)"
# Starts a grandchild that allocates, and stays small itself.
SPAWN = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {ALLOC!r}]); time.sleep(60)"
IDLE = "import time; print('ready', flush=True); time.sleep(60)"
BUSY = "print('ready', flush=True)\nwhile True: pass"

Spawn = Callable[[str], subprocess.Popen[str]]


def _gpu(index: int) -> DeviceSpec:
    return DeviceSpec(id=f"cuda:{index}", kind="cuda", index=index, name="NVIDIA H100 80GB HBM3", total_mem_gb=80,
                      free_mem_gb=80)


def _cpu(threads: int) -> DeviceSpec:
    return cpu_slots(1)[0].model_copy(update={"threads": threads})


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start `python -c CODE`, wait until it prints 'ready'; every process tree started is killed at the end."""
    procs: list[subprocess.Popen[str]] = []

    def start(code: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        return proc

    yield start
    for proc in procs:
        try:
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for p in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        # Only the direct child is ours to reap; grandchildren are reparented and reaped by init.
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def nvml() -> Iterator[ModuleType]:
    """The fake NVML, reset (configure it in the test)."""
    with fake_pynvml() as fake:
        yield fake


def _measure(monitor: Monitor, key: str, pid: int, devices: list[DeviceSpec], seconds: float = 0.5) -> AttemptUsage:
    monitor.watch(key, pid, devices)
    time.sleep(seconds)
    return monitor.unwatch(key)


def _monitor_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "spectrabench-monitor"]


def test_worker_memory_is_measured(spawn: Spawn) -> None:
    proc = spawn(ALLOC)
    with Monitor(interval_s=INTERVAL) as monitor:
        usage = _measure(monitor, "a1", proc.pid, [_cpu(2)])
    assert usage.peak_mem_gb is not None and 0.19 <= usage.peak_mem_gb < 0.5
    assert len(usage.samples) >= 4  # the watch sample, the thread's, and the unwatch sample
    assert {(s.key, s.device) for s in usage.samples} == {("a1", "cpu:0")}
    assert all(s.mem_gb == pytest.approx(usage.peak_mem_gb, rel=0.1) for s in usage.samples)
    times = [s.t for s in usage.samples]
    assert times == sorted(times) and abs(times[-1] - time.time()) < 5


def test_grandchild_memory_counts(spawn: Spawn) -> None:
    proc = spawn(SPAWN)
    assert psutil.Process(proc.pid).memory_info().rss / 1024**3 < 0.1  # the child alone would be too small
    with Monitor(interval_s=INTERVAL) as monitor:
        usage = _measure(monitor, "a1", proc.pid, [_cpu(2)])
    assert usage.peak_mem_gb is not None and usage.peak_mem_gb >= 0.19


def test_cpu_use_is_a_share_of_the_cores_given(spawn: Spawn) -> None:
    busy, idle = spawn(BUSY), spawn(IDLE)
    busy_proc = psutil.Process(busy.pid)
    with Monitor(interval_s=INTERVAL) as monitor:
        cpu_before, wall_before = sum(busy_proc.cpu_times()[:2]), time.monotonic()
        monitor.watch("busy", busy.pid, [_cpu(1)])
        monitor.watch("idle", idle.pid, [_cpu(1)])
        time.sleep(0.6)
        busy_usage, idle_usage = monitor.unwatch("busy"), monitor.unwatch("idle")
        cpu_after, wall_after = sum(busy_proc.cpu_times()[:2]), time.monotonic()
    # What the busy loop really got, which depends on the machine's load; one core given, so a share of one core.
    expected = 100 * (cpu_after - cpu_before) / (wall_after - wall_before)
    assert busy_usage.samples[0].util_pct is None  # nothing to take a rate from yet
    assert busy_usage.mean_util_pct is not None and idle_usage.mean_util_pct is not None
    assert busy_usage.mean_util_pct == pytest.approx(expected, abs=max(15, 0.35 * expected))
    assert idle_usage.mean_util_pct < 5 and busy_usage.mean_util_pct > 10


def test_watch_and_unwatch_sample_even_without_the_thread(spawn: Spawn) -> None:
    proc = spawn(ALLOC)
    monitor = Monitor(interval_s=60)
    monitor.watch("short", proc.pid, [_cpu(2)])
    usage = monitor.unwatch("short")
    assert len(usage.samples) == 2
    assert usage.peak_mem_gb is not None and usage.peak_mem_gb >= 0.19


def test_gone_or_unknown_attempts_measure_nothing(nvml: ModuleType) -> None:
    nvml.configure(devices=[nvml.FakeGpu(used_gb=3, processes={psutil.Process().pid: 3})])
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    monitor = Monitor(interval_s=INTERVAL)
    monitor.watch("gone", proc.pid, [_cpu(2)])
    assert monitor.unwatch("gone") == AttemptUsage(None, None, [])
    monitor.watch("gone-gpu", proc.pid, [_gpu(0)])
    assert monitor.unwatch("gone-gpu") == AttemptUsage(None, None, [])
    monitor.stop()
    assert monitor.unwatch("never-watched") == AttemptUsage(None, None, [])


def test_gpu_samples_report_the_workers_own_memory(spawn: Spawn, nvml: ModuleType) -> None:
    proc = spawn(SPAWN)
    (grandchild,) = psutil.Process(proc.pid).children()
    nvml.configure(devices=[
        # Another process we can see (the test itself) holds memory on GPU 0: it must not count.
        nvml.FakeGpu(used_gb=10, util_gpu=73, processes={proc.pid: 2.5, psutil.Process().pid: 7.5}),
        nvml.FakeGpu(used_gb=4, util_gpu=41, processes={grandchild.pid: 1.5}),
    ])
    with Monitor(interval_s=INTERVAL) as monitor:
        usage = _measure(monitor, "g1", proc.pid, [_gpu(0), _gpu(1)], seconds=0.35)
        assert nvml.state.init_count == 1  # NVML stays open between samples
    assert nvml.state.init_count == 0  # and is released by stop()
    by_device = {s.device: (s.mem_gb, s.util_pct) for s in usage.samples}
    assert by_device == {"cuda:0": (2.5, 73.0), "cuda:1": (1.5, 41.0)}
    assert len(usage.samples) >= 6
    assert usage.peak_mem_gb == pytest.approx(4.0)  # both GPUs at the same instant
    assert usage.mean_util_pct == pytest.approx(57.0)


def test_gpu_memory_falls_back_to_the_device_when_nvml_cannot_attribute(spawn: Spawn, nvml: ModuleType) -> None:
    proc = spawn(IDLE)
    foreign = next(pid for pid in range(4_000_000, 4_100_000) if not psutil.pid_exists(pid))
    nvml.configure(devices=[
        nvml.FakeGpu(used_gb=6, util_gpu=10, processes_supported=False),   # no process list (e.g. MIG)
        nvml.FakeGpu(used_gb=7, util_gpu=20, processes={foreign: 6.5}),   # pids from another PID namespace
        nvml.FakeGpu(used_gb=8, util_gpu=30, processes={proc.pid: None}),  # ours, but no per-process figure
    ])
    monitor = Monitor(interval_s=60)
    for index, expected in enumerate([6.0, 7.0, 8.0]):
        monitor.watch(f"g{index}", proc.pid, [_gpu(index)])
        usage = monitor.unwatch(f"g{index}")
        assert [s.mem_gb for s in usage.samples] == [expected, expected]
    monitor.stop()


@pytest.mark.parametrize("failure", ["fail_init", "fail_queries"])
def test_nvml_failing_leaves_cpu_sampling_working(spawn: Spawn, nvml: ModuleType, failure: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    nvml.configure(devices=[nvml.FakeGpu(used_gb=5)], **{failure: True})
    cpu_proc, gpu_proc = spawn(ALLOC), spawn(IDLE)
    with Monitor(interval_s=INTERVAL) as monitor:
        monitor.watch("gpu", gpu_proc.pid, [_gpu(0)])
        cpu_usage = _measure(monitor, "cpu", cpu_proc.pid, [_cpu(2)], seconds=0.35)
        gpu_usage = monitor.unwatch("gpu")
    assert cpu_usage.peak_mem_gb is not None and cpu_usage.peak_mem_gb >= 0.19
    assert gpu_usage == AttemptUsage(None, None, [])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "NVML" in warnings[0].getMessage()  # said once, not at every sample


def test_a_sampling_error_is_logged_once_and_sampling_goes_on(spawn: Spawn, caplog: pytest.LogCaptureFixture) -> None:
    proc = spawn(IDLE)
    with Monitor(interval_s=INTERVAL) as monitor:
        monitor.watch("broken", proc.pid, [])  # no device to report a sample under
        usage = _measure(monitor, "fine", proc.pid, [_cpu(2)], seconds=0.35)
        assert monitor.unwatch("broken") == AttemptUsage(None, None, [])
    assert len(usage.samples) >= 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "broken" in warnings[0].getMessage()


def test_start_and_stop_are_idempotent_and_stop_joins_the_thread() -> None:
    monitor = Monitor(interval_s=INTERVAL)
    monitor.stop()  # before any start
    monitor.start()
    monitor.start()
    assert len(_monitor_threads()) == 1 and _monitor_threads()[0].daemon
    monitor.stop()
    assert _monitor_threads() == []
    monitor.stop()
    with monitor:  # restartable, and a context manager
        assert len(_monitor_threads()) == 1
    assert _monitor_threads() == []


def test_the_real_pynvml_is_back_after_the_fake() -> None:
    with fake_pynvml() as fake:
        import pynvml
        assert pynvml is fake
    import pynvml
    assert not hasattr(pynvml, "configure") and "site-packages" in str(pynvml.__file__)


def test_gpu_memory_of_other_visible_processes_is_not_the_workers(spawn: Spawn, nvml: ModuleType) -> None:
    proc = spawn(IDLE)  # on the GPU but not using it yet; the test process holds the GPU's memory
    nvml.configure(devices=[nvml.FakeGpu(used_gb=9, util_gpu=50, processes={psutil.Process().pid: 8.5})])
    monitor = Monitor(interval_s=60)
    monitor.watch("g", proc.pid, [_gpu(0)])
    usage = monitor.unwatch("g")
    monitor.stop()
    assert [s.mem_gb for s in usage.samples] == [0.0, 0.0]
    assert usage.peak_mem_gb == 0.0 and usage.mean_util_pct == 50.0
