"""The executor protocol: what the driver needs from a backend that runs attempts (local processes, Ray)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol

from spectrabench.execution.attempt import AttemptOutcome
from spectrabench.execution.monitor import AttemptUsage
from spectrabench.hardware import DeviceSpec
from spectrabench.harness.workerspec import WorkerSpec


class AttemptRequest(NamedTuple):
    """Run `spec` on exactly `devices`, killing it after `timeout_s`."""

    key: str
    spec: WorkerSpec
    devices: tuple[DeviceSpec, ...]
    timeout_s: float | None = None
    env: Mapping[str, str] = {}


class AttemptResult(NamedTuple):
    """A finished attempt: what the worker did, and what the monitor measured."""

    request: AttemptRequest
    outcome: AttemptOutcome
    usage: AttemptUsage


class DeviceBusy(Exception):
    """An attempt was submitted to a device that is already running one."""

    def __init__(self, device: str, running: str) -> None:
        super().__init__(f"device {device} is busy with attempt {running}")
        self.device = device
        self.running = running


def check_devices(request: AttemptRequest, devices: Sequence[DeviceSpec], busy: Mapping[str, str]) -> None:
    """Check that each of the request's devices belongs to the executor (`devices`) and is free.

    Args:
        request: The attempt about to start.
        devices: The executor's devices.
        busy: Device id -> key of the attempt running there.

    Raises:
        ValueError: A device is not one of `devices`.
        DeviceBusy: A device already runs an attempt.
    """
    known = {d.id for d in devices}
    for device in request.devices:
        if device.id not in known:
            raise ValueError(f"device {device.id} is not part of this executor")
        if device.id in busy:
            raise DeviceBusy(device.id, busy[device.id])


class Executor(Protocol):
    """A backend that runs worker attempts on devices.

    The driver decides placement; the executor enforces it (one attempt per device at a time), runs each attempt
    in isolation (own process group, only its devices visible), and reports results as attempts finish.
    """

    def capacity(self) -> list[DeviceSpec]:
        """The devices attempts can be placed on."""
        ...

    def submit(self, request: AttemptRequest) -> None:
        """Start an attempt now. Raises DeviceBusy when one of its devices is in use."""
        ...

    def wait(self, timeout_s: float | None = None) -> list[AttemptResult]:
        """Block until at least one attempt finishes (or timeout); return every finished one."""
        ...

    def running(self) -> list[str]:
        """Keys of the attempts in flight."""
        ...

    def cancel(self, key: str) -> None:
        """Kill an attempt and everything it started; its result arrives as interrupted."""
        ...

    def close(self) -> None:
        """Cancel everything in flight and release resources."""
        ...
