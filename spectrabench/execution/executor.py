"""The executor protocol: what the driver needs from a backend that runs attempts (local processes, Ray)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol

from spectrabench.execution.attempt import AttemptOutcome
from spectrabench.execution.monitor import AttemptUsage
from spectrabench.hardware import DeviceSpec
from spectrabench.harness.workerspec import WorkerSpec
from spectrabench.store.machineload import MachineLoad


class AttemptRequest(NamedTuple):
    """Run `spec` on exactly `devices`, killing it after `timeout_s`."""

    key: str
    spec: WorkerSpec
    devices: tuple[DeviceSpec, ...]
    timeout_s: float | None = None
    env: Mapping[str, str] = {}
    # May share its GPU with other attempts that may share too (co-location, which the optimized policy decides).
    shared: bool = False


class AttemptResult(NamedTuple):
    """A finished attempt: what the worker did, what the monitor measured, and how busy the machine was with other
    work while it ran (None where the backend cannot tell, as on Ray, whose workers are not the driver's)."""

    request: AttemptRequest
    outcome: AttemptOutcome
    usage: AttemptUsage
    background: MachineLoad | None = None


class DeviceBusy(Exception):
    """An attempt was submitted to a device that is already running one."""

    def __init__(self, device: str, running: str) -> None:
        super().__init__(f"device {device} is busy with attempt {running}")
        self.device = device
        self.running = running


def check_devices(request: AttemptRequest, devices: Sequence[DeviceSpec],
                  busy: Mapping[str, Sequence[AttemptRequest]]) -> None:
    """Check that each of the request's devices belongs to the executor (`devices`) and is free, or shared only by
    attempts that agreed to share it, as this one does.

    Args:
        request: The attempt about to start.
        devices: The executor's devices.
        busy: Device id -> the attempts running there.

    Raises:
        ValueError: A device is not one of `devices`.
        DeviceBusy: A device already runs an attempt, and one of the two does not share.
    """
    known = {d.id for d in devices}
    for device in request.devices:
        if device.id not in known:
            raise ValueError(f"device {device.id} is not part of this executor")
        occupants = busy.get(device.id, ())
        if occupants and not (request.shared and all(o.shared for o in occupants)):
            raise DeviceBusy(device.id, occupants[0].key)


class Executor(Protocol):
    """A backend that runs worker attempts on devices.

    The driver decides placement; the executor enforces it (one attempt per device at a time, or several that all
    agreed to share it where `shares_devices`), runs each attempt in isolation (own process group, only its devices
    visible), and reports results as attempts finish.
    """

    #: Whether attempts marked `shared` may run side by side on one GPU (co-location).
    shares_devices: bool

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
