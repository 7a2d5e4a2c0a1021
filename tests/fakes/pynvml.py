"""A fake `pynvml` (nvidia-ml-py) for machines without a GPU: the subset SpectraBench calls, with state set by tests.

Put `tests/fakes` first on `sys.path` and drop any cached `pynvml` from `sys.modules`; `import pynvml` then finds
this module. Like the real library it counts nvmlInit / nvmlShutdown and refuses device calls before init.

    pynvml.configure(devices=[FakeGpu(used_gb=3, processes={pid: 2.5})])
    pynvml.configure(fail_init=True)        # as on a machine without a driver
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_GPU_IS_LOST = 15
_GB = 1024**3


class NVMLError(Exception):
    """An NVML failure, carrying its error code as `.value` like the real class."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return f"NVML Error with code {self.value}"


@dataclass
class FakeGpu:
    """One fake GPU. Memory in GB; `processes` maps a pid to its GB, None where NVML can't tell (as under MIG)."""

    name: str = "NVIDIA H100 80GB HBM3"
    total_gb: float = 80.0
    used_gb: float = 0.0
    util_gpu: int = 0
    util_memory: int = 0
    processes: dict[int, float | None] = field(default_factory=dict)
    processes_supported: bool = True


@dataclass
class _State:
    devices: list[FakeGpu] = field(default_factory=list)
    fail_init: bool = False
    fail_queries: bool = False
    init_count: int = 0
    init_calls: int = 0
    shutdown_calls: int = 0


@dataclass(frozen=True)
class _Handle:
    index: int


class _Memory(NamedTuple):
    total: int
    free: int
    used: int


class _Utilization(NamedTuple):
    gpu: int
    memory: int


class _Process(NamedTuple):
    pid: int
    usedGpuMemory: int | None  # the real field's name


state = _State()


def configure(devices: list[FakeGpu] | None = None, *, fail_init: bool = False, fail_queries: bool = False) -> _State:
    """Reset the fake: these GPUs, init failing (no driver) or every device call failing (GPU lost)."""
    global state
    state = _State(devices=list(devices or []), fail_init=fail_init, fail_queries=fail_queries)
    return state


def nvmlInit() -> None:
    """Start NVML; raises as without a driver when configured with `fail_init`."""
    state.init_calls += 1
    if state.fail_init:
        raise NVMLError(NVML_ERROR_DRIVER_NOT_LOADED)
    state.init_count += 1


def nvmlShutdown() -> None:
    """Release one nvmlInit; raises when NVML is not initialised."""
    state.shutdown_calls += 1
    if state.init_count == 0:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)
    state.init_count -= 1


def _check() -> None:
    if state.init_count == 0:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)
    if state.fail_queries:
        raise NVMLError(NVML_ERROR_GPU_IS_LOST)


def _gpu(handle: _Handle) -> FakeGpu:
    _check()
    return state.devices[handle.index]


def nvmlDeviceGetCount() -> int:
    """How many fake GPUs there are."""
    _check()
    return len(state.devices)


def nvmlDeviceGetHandleByIndex(index: int) -> _Handle:
    """A handle on GPU `index`."""
    _check()
    if not 0 <= index < len(state.devices):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return _Handle(index)


def nvmlDeviceGetName(handle: _Handle) -> str:
    """The GPU's product name."""
    return _gpu(handle).name


def nvmlDeviceGetMemoryInfo(handle: _Handle) -> _Memory:
    """Total, free and used memory in bytes."""
    gpu = _gpu(handle)
    total, used = int(gpu.total_gb * _GB), int(gpu.used_gb * _GB)
    return _Memory(total=total, free=total - used, used=used)


def nvmlDeviceGetUtilizationRates(handle: _Handle) -> _Utilization:
    """GPU and memory utilisation in percent."""
    gpu = _gpu(handle)
    return _Utilization(gpu=gpu.util_gpu, memory=gpu.util_memory)


def nvmlDeviceGetComputeRunningProcesses(handle: _Handle) -> list[_Process]:
    """The compute processes on the GPU, with their memory in bytes (None where unknown)."""
    gpu = _gpu(handle)
    if not gpu.processes_supported:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    return [_Process(pid, None if gb is None else int(gb * _GB)) for pid, gb in gpu.processes.items()]
