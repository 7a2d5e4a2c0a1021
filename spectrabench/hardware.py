"""The devices a run can use: GPUs found through NVML, or slots on this machine's CPU.

`parse_devices` turns the `--devices` text into `DeviceSpec`s; `visible_devices_env` is what a worker placed on
some of them gets in its environment, so that it sees those devices and nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from typing import Literal

import psutil
from pydantic import BaseModel

from spectrabench.errors import UserError, did_you_mean

log = logging.getLogger(__name__)

_GB = 1024**3
_KINDS = ("auto", "cpu", "cuda")
# Names people type for a GPU that difflib would match to "cpu" instead.
_ALIASES = {"gpu": "cuda", "gpus": "cuda", "nvidia": "cuda"}
# More CPU slots than this per core only adds contention: every slot would get a single thread on a shared core.
_MAX_SLOTS_PER_CORE = 4
_FORMS = "use auto, cpu, cpu:N, cuda or cuda:0,1"


class DeviceSpec(BaseModel, frozen=True):
    """One device a job can be placed on.

    Attributes:
        id: "cpu:0", "cuda:1".
        kind: "cpu" or "cuda".
        index: The slot number (CPU) or the NVML / CUDA index (GPU).
        name: "CPU", or the GPU's NVML name, e.g. "NVIDIA H100 80GB HBM3".
        total_mem_gb: Memory this device offers (a CPU slot's even share of RAM).
        free_mem_gb: Memory free when the device was discovered.
        threads: For CPU slots, the cores this slot may use, so parallel workers don't oversubscribe.
        cpu_gflops: For CPU slots, this machine's single-thread GEMM GFLOP/s (`harness.cpuspeed`), which the rules
            scale their CPU figures by; None where it was not measured.
    """

    id: str
    kind: Literal["cpu", "cuda"]
    index: int
    name: str
    total_mem_gb: float
    free_mem_gb: float
    threads: int | None = None
    cpu_gflops: float | None = None


def discover_gpus() -> list[DeviceSpec]:
    """Every GPU that NVML reports, in NVML index order.

    Returns:
        One `DeviceSpec` per GPU; an empty list when nvidia-ml-py is missing or NVML can't start (no driver, no GPU).
    """
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except (pynvml.NVMLError, OSError) as exc:
        log.debug("NVML unavailable: %s", exc)
        return []
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(DeviceSpec(id=f"cuda:{index}", kind="cuda", index=index,
                                   name=name.decode() if isinstance(name, bytes) else str(name),
                                   total_mem_gb=mem.total / _GB, free_mem_gb=mem.free / _GB))
        return gpus
    except pynvml.NVMLError as exc:
        # A GPU that fails mid-query (fallen off the bus, driver mismatch) makes the whole set untrustworthy.
        log.warning("NVML failed while listing GPUs, using none: %s", exc)
        return []
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def cpu_slots(n: int) -> list[DeviceSpec]:
    """Split this machine into `n` CPU slots with an even share of its cores and memory.

    Args:
        n: How many workers may run at once on the CPU (>= 1).

    Returns:
        Slots `cpu:0` .. `cpu:{n-1}`, each with `threads = max(1, cores // n)`.
    """
    if n < 1:
        raise ValueError(f"need at least one CPU slot, got {n}")
    cores = os.cpu_count() or 1
    mem = psutil.virtual_memory()
    return [DeviceSpec(id=f"cpu:{i}", kind="cpu", index=i, name="CPU", total_mem_gb=mem.total / _GB / n,
                       free_mem_gb=mem.available / _GB / n, threads=max(1, cores // n)) for i in range(n)]


def with_memory_limit(devices: Sequence[DeviceSpec], limit_gb: float | None) -> list[DeviceSpec]:
    """The devices as a worker held to `limit_gb` per GPU sees them: no GPU offers more than the limit.

    CPU slots are unchanged (the limit is a GPU one), and so is everything when `limit_gb` is None.
    """
    if limit_gb is None:
        return list(devices)
    return [d.model_copy(update={"total_mem_gb": min(d.total_mem_gb, limit_gb),
                                 "free_mem_gb": min(d.free_mem_gb, limit_gb)}) if d.kind == "cuda" else d
            for d in devices]


def parse_devices(text: str) -> list[DeviceSpec]:
    """Turn the `--devices` text into the devices a run may use.

    Args:
        text: "auto" (every GPU, else one CPU slot), "cpu" (= "cpu:1"), "cpu:N" (N parallel CPU slots),
            "cuda" (every GPU) or "cuda:0,1" (those GPUs).

    Returns:
        The devices, in the order given.

    Raises:
        UserError: The text names no valid device set on this machine.
    """
    spec = text.strip().lower()
    kind, sep, arg = (part.strip() for part in spec.partition(":"))
    if kind == "auto" and not sep:
        return discover_gpus() or cpu_slots(1)
    if kind == "cpu":
        return cpu_slots(_parse_slot_count(text, arg) if sep else 1)
    if kind == "cuda":
        return _pick_gpus(text, arg if sep else None)
    if not kind:
        raise UserError("--devices is empty", hint=_FORMS)
    if kind == "auto":
        raise UserError(f"--devices '{text}': auto takes no argument", hint="use auto")
    hint = f"did you mean '{_ALIASES[kind]}'? ({_FORMS})" if kind in _ALIASES else did_you_mean(kind, _KINDS, "kinds")
    raise UserError(f"--devices '{text}': unknown device kind '{kind}'", hint=hint)


def _parse_slot_count(text: str, arg: str) -> int:
    """The N of `cpu:N`, checked against this machine's cores."""
    cores = os.cpu_count() or 1
    limit = cores * _MAX_SLOTS_PER_CORE
    try:
        n = int(arg)
    except ValueError:
        raise UserError(f"--devices '{text}': '{arg}' is not a number of CPU slots",
                        hint=f"use cpu:N with N from 1 to {limit}, e.g. cpu:{max(1, cores // 2)}") from None
    if n < 1:
        raise UserError(f"--devices '{text}': a run needs at least one CPU slot", hint="use cpu:1 or more")
    if n > limit:
        raise UserError(f"--devices '{text}': {n} CPU slots on {cores} cores would thrash",
                        hint=f"use at most cpu:{limit}")
    return n


def _pick_gpus(text: str, arg: str | None) -> list[DeviceSpec]:
    """The GPUs `cuda` or `cuda:I,J` names, checked against what NVML reports."""
    gpus = discover_gpus()
    if not gpus:
        raise UserError(f"--devices '{text}': no GPU found (NVML reports none or is not available)",
                        hint="use cpu or cpu:N on this machine")
    if arg is None:
        return gpus
    indices: list[int] = []
    for part in arg.split(","):
        part = part.strip()
        if not part.isdigit():
            raise UserError(f"--devices '{text}': '{part}' is not a GPU index",
                            hint=f"use comma-separated indices, e.g. cuda:{','.join(str(g.index) for g in gpus)}")
        index = int(part)
        if index >= len(gpus):
            raise UserError(f"--devices '{text}': there is no GPU {index}",
                            hint=f"this machine has {len(gpus)} GPU(s): {', '.join(g.id for g in gpus)}")
        if index in indices:
            raise UserError(f"--devices '{text}': GPU {index} is listed twice", hint="name each GPU once")
        indices.append(index)
    return [gpus[i] for i in indices]


def visible_devices_env(devices: Sequence[DeviceSpec]) -> dict[str, str]:
    """The environment for a worker placed on `devices`, so it sees and uses only those.

    Args:
        devices: All CPU slots or all GPUs (not a mix).

    Returns:
        For GPUs `CUDA_VISIBLE_DEVICES="0,1"` with `CUDA_DEVICE_ORDER=PCI_BUS_ID`; for CPU slots
        `CUDA_VISIBLE_DEVICES=""` (hide every GPU) plus `OMP_NUM_THREADS` / `MKL_NUM_THREADS` set to the slots'
        threads.
    """
    kinds = {d.kind for d in devices}
    if len(kinds) != 1:
        raise ValueError(f"a worker needs devices of one kind, got {sorted(d.id for d in devices)}")
    if kinds == {"cuda"}:
        # CUDA numbers GPUs fastest-first by default, NVML by PCI bus: without this, "cuda:1" could be another card.
        return {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": ",".join(str(d.index) for d in devices)}
    threads = str(sum(d.threads or 1 for d in devices))
    return {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
