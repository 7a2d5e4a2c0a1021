"""LocalExecutor: worker subprocesses on this machine, one per device slot, each in its own process group."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psutil

from spectrabench.execution.attempt import collect_outcome, kill_process_group, start_worker
from spectrabench.execution.executor import AttemptRequest, AttemptResult, check_devices
from spectrabench.execution.machineload import CpuSnapshot, background_between, cpu_snapshot
from spectrabench.execution.monitor import Monitor
from spectrabench.hardware import DeviceSpec, visible_devices_env

log = logging.getLogger(__name__)


@dataclass
class _Running:
    request: AttemptRequest
    proc: subprocess.Popen[bytes]
    started: float
    deadline: float | None
    process: psutil.Process | None  # the worker, for its CPU time while it runs
    clock: CpuSnapshot | None  # the machine's and the run's CPU time when it started
    cancelled: bool = False


class LocalExecutor:
    """Runs attempts as local subprocesses; enforces one attempt per device (or several that agreed to share a GPU);
    measures each with a Monitor (per process, so attempts sharing a GPU are measured apart), and the other work
    the machine did while it ran (`machineload`: every worker of this executor counts as the run's own).

    Args:
        devices: The device slots attempts may be placed on.
        base_env: The environment every worker starts from (the driver adds device visibility and threads).
        monitor_interval_s: How often the monitor samples memory and utilisation.
    """

    def __init__(self, devices: Sequence[DeviceSpec], base_env: Mapping[str, str],
                 monitor_interval_s: float = 1.0, poll_s: float = 0.05) -> None:
        self._devices = list(devices)
        self._base_env = dict(base_env)
        self._poll_s = poll_s
        self._running: dict[str, _Running] = {}
        self._busy: dict[str, list[AttemptRequest]] = {}
        self._monitor = Monitor(interval_s=monitor_interval_s)
        self._monitor.start()

    shares_devices = True

    def capacity(self) -> list[DeviceSpec]:
        """The device slots of this executor."""
        return list(self._devices)

    def submit(self, request: AttemptRequest) -> None:
        """Start the attempt now on its devices (DeviceBusy if one is taken by an attempt that does not share)."""
        check_devices(request, self._devices, self._busy)
        env = {**self._base_env, **request.env, **visible_devices_env(request.devices),
               "SPECTRABENCH_DRIVER_PID": str(os.getpid())}
        started = time.time()
        proc = start_worker(request.spec, env)
        deadline = time.monotonic() + request.timeout_s if request.timeout_s else None
        try:
            process: psutil.Process | None = psutil.Process(proc.pid)
        except psutil.Error:
            process = None  # already gone: its CPU time is waited-for time once reaped
        clock = self._clock([*self._live(), *([process] if process else [])])
        self._running[request.key] = _Running(request, proc, started, deadline, process, clock)
        for device in request.devices:
            self._busy.setdefault(device.id, []).append(request)
        self._monitor.watch(request.key, proc.pid, request.devices)

    def running(self) -> list[str]:
        """Keys of attempts in flight."""
        return list(self._running)

    def _finish(self, key: str, returncode: int | None) -> AttemptResult:
        entry = self._running.pop(key)
        # A worker that exited may leave children (e.g. a sandboxed program): kill the whole group either way.
        kill_process_group(entry.proc)
        for device in entry.request.devices:
            left = [r for r in self._busy.get(device.id, []) if r.key != key]
            if left:
                self._busy[device.id] = left
            else:
                self._busy.pop(device.id, None)
        usage = self._monitor.unwatch(key)
        # The worker is reaped by now (its time is waited-for time): the others still running count live.
        after = self._clock(self._live())
        background = background_between(entry.clock, after) if entry.clock and after else None
        outcome = collect_outcome(entry.request.spec, returncode, entry.started, timeout_s=entry.request.timeout_s,
                                  cancelled=entry.cancelled)
        return AttemptResult(entry.request, outcome, usage, background)

    @staticmethod
    def _clock(live: list[psutil.Process]) -> CpuSnapshot | None:
        """A snapshot of the machine's CPU time, or None: a figure that cannot be read never fails an attempt."""
        try:
            return cpu_snapshot(live)
        except (OSError, psutil.Error) as exc:
            log.debug("cannot read the machine's CPU time: %s", exc)
            return None

    def _live(self) -> list[psutil.Process]:
        """The workers still running, for the run's share of the machine's CPU time."""
        return [entry.process for entry in self._running.values() if entry.process is not None]

    def wait(self, timeout_s: float | None = None) -> list[AttemptResult]:
        """Block until at least one attempt finishes (or `timeout_s` passes); return the finished ones."""
        end = time.monotonic() + timeout_s if timeout_s is not None else None
        while True:
            finished: list[AttemptResult] = []
            now = time.monotonic()
            for key, entry in list(self._running.items()):
                returncode = entry.proc.poll()
                if entry.cancelled or returncode is not None:
                    finished.append(self._finish(key, returncode))
                elif entry.deadline is not None and now >= entry.deadline:
                    finished.append(self._finish(key, None))
            if finished or not self._running or (end is not None and time.monotonic() >= end):
                return finished
            time.sleep(self._poll_s)

    def cancel(self, key: str) -> None:
        """Kill the attempt's process group now; `wait` reports it as interrupted."""
        entry = self._running.get(key)
        if entry is None:
            return
        entry.cancelled = True
        kill_process_group(entry.proc)

    def close(self) -> None:
        """Kill everything still running and stop the monitor."""
        for key in list(self._running):
            self.cancel(key)
        self.wait(timeout_s=0)
        self._monitor.stop()
