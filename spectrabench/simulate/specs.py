"""What-if hardware for the simulator: datasheet figures of common GPUs, and pools written like `8xH100-80GB`.

Figures are the vendors' public datasheet numbers (dense bf16 Tensor Core throughput without sparsity, memory
bandwidth, host link per direction); memory is what `nvidia-smi` reports as total, in GiB, which is a little
less than the marketing GB for HBM3 parts. The simulator's truth model (`truth.py`) turns these into costs with
its own efficiency factors; nothing here is shared with the predictor.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

import psutil

from spectrabench.errors import UserError, did_you_mean
from spectrabench.hardware import DeviceSpec

_GIB = 1024**3


class HardwareSpec(NamedTuple):
    """Datasheet figures of one device model.

    Attributes:
        name: The spec name used in pools, e.g. "H100-80GB".
        memory_gib: Total device memory in GiB.
        bf16_tflops: Dense bf16 throughput in TFLOP/s (CPU: an fp32 estimate for all cores).
        hbm_gbps: Device memory bandwidth in GB/s.
        h2d_gbps: Host-to-device bandwidth in GB/s, one direction (CPU: page cache to process memory).
        kind: "cuda" or "cpu".
    """

    name: str
    memory_gib: float
    bf16_tflops: float
    hbm_gbps: float
    h2d_gbps: float
    kind: str = "cuda"


def _local_cpu() -> HardwareSpec:
    """This machine's CPU as one device: all its cores and RAM.

    A modern x86 core sustains roughly 50 GFLOP/s of fp32 GEMM with AVX2/AVX-512 FMA in PyTorch; DRAM streams
    at about 6 GB/s per core up to a socket's ~100 GB/s. Rough by design: the simulator is for GPUs.
    """
    cores = os.cpu_count() or 1
    return HardwareSpec("CPU", round(psutil.virtual_memory().total / _GIB, 1), 0.05 * cores,
                        min(6.0 * cores, 100.0), 8.0, kind="cpu")


DEVICE_SPECS: dict[str, HardwareSpec] = {spec.name: spec for spec in (
    # NVIDIA A100 Tensor Core GPU datasheet (2021), SXM4: 312 TFLOP/s bf16 dense; 1,555 GB/s HBM2 (40GB) and
    # 2,039 GB/s HBM2e (80GB); PCIe Gen4 x16, 32 GB/s per direction. nvidia-smi: 40,960 and 81,920 MiB.
    HardwareSpec("A100-40GB", 40.0, 312.0, 1555.0, 32.0),
    HardwareSpec("A100-80GB", 80.0, 312.0, 2039.0, 32.0),
    # NVIDIA H100 Tensor Core GPU datasheet (2023), SXM5: 989 TFLOP/s bf16 dense (1,979 with sparsity);
    # 3.35 TB/s HBM3; PCIe Gen5 x16, 64 GB/s per direction. nvidia-smi: 81,559 MiB.
    HardwareSpec("H100-80GB", 79.6, 989.0, 3350.0, 64.0),
    # NVIDIA H200 Tensor Core GPU datasheet (2024), SXM: 989 TFLOP/s bf16 dense; 141 GB HBM3e at 4.8 TB/s;
    # PCIe Gen5 x16. nvidia-smi: 143,771 MiB.
    HardwareSpec("H200-141GB", 140.4, 989.0, 4800.0, 64.0),
    # NVIDIA L4 Tensor Core GPU datasheet (2023): 121 TFLOP/s bf16 dense (242 with sparsity); 24 GB GDDR6 at
    # 300 GB/s; PCIe Gen4 x16. nvidia-smi: 23,034 MiB.
    HardwareSpec("L4-24GB", 22.5, 121.0, 300.0, 32.0),
    _local_cpu(),
)}

# What NVML calls these cards ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB", "NVIDIA L4"), checked in order.
_NVML_PATTERNS = (
    (re.compile(r"H200"), "H200-141GB"),
    (re.compile(r"H100"), "H100-80GB"),
    (re.compile(r"A100.*40\s*GB"), "A100-40GB"),
    (re.compile(r"A100"), "A100-80GB"),
    (re.compile(r"(?<![A-Z0-9])L4(?![0-9])"), "L4-24GB"),
)
_POOL_ITEM = re.compile(r"^(?:(\d+)\s*[x*]\s*)?([A-Za-z0-9.\-]+)$")
_MAX_POOL = 4096
_FORMS = "write a pool like 8xH100-80GB, 2xA100-80GB,4xL4-24GB or H200-141GB"


def hardware_for(device: DeviceSpec) -> HardwareSpec:
    """The datasheet figures for a device: a simulated one by its spec name, a real one by its NVML name.

    An unknown GPU is judged by its memory, erring towards the slower card, as a stand-in.

    Args:
        device: A device from `parse_pool` or from `spectrabench.hardware`.
    """
    if device.kind == "cpu":
        return DEVICE_SPECS["CPU"]
    if device.name in DEVICE_SPECS:
        return DEVICE_SPECS[device.name]
    upper = device.name.upper()
    for pattern, name in _NVML_PATTERNS:
        if pattern.search(upper):
            return DEVICE_SPECS[name]
    mem = device.total_mem_gb
    return DEVICE_SPECS["A100-80GB" if mem > 60 else "A100-40GB" if mem > 30 else "L4-24GB"]


def _suggest(name: str) -> str:
    """A hint for an unknown spec name; "H100" and "L4" are prefixes of a spec that difflib would not find."""
    starting = [spec for spec in DEVICE_SPECS if spec.lower().startswith(name.lower())]
    if len(starting) == 1:
        return f"did you mean '{starting[0]}'? (devices: {', '.join(sorted(DEVICE_SPECS))})"
    if starting:
        return f"did you mean one of {', '.join(starting)}?"
    return did_you_mean(name, DEVICE_SPECS, "devices")


def is_pool(text: str) -> bool:
    """Whether `--devices` text names a what-if pool (e.g. "8xH100-80GB", "2xA100-80GB,4xL4-24GB", "H200-141GB")
    rather than devices of this machine (auto, cpu:N, cuda, cuda:0,1)."""
    names = {name.lower() for name in DEVICE_SPECS} - {"cpu"}
    for entry in (part.strip() for part in text.split(",")):
        match = _POOL_ITEM.match(entry)
        if match and (match.group(1) or match.group(2).lower() in names):
            return True
    return False


def parse_pool(text: str) -> list[DeviceSpec]:
    """Turn a what-if pool such as "2xA100-80GB,4xL4-24GB" into simulated devices.

    Args:
        text: Comma-separated `[N x]NAME` entries; names are those of `DEVICE_SPECS`, in any case.

    Returns:
        Devices `sim:0`, `sim:1`, ... in the order written, each named by its spec, with all memory free.

    Raises:
        UserError: An entry is malformed, names an unknown device, or asks for no or absurdly many devices.
    """
    by_lower = {name.lower(): spec for name, spec in DEVICE_SPECS.items()}
    devices: list[DeviceSpec] = []
    entries = [part.strip() for part in text.split(",")]
    if not any(entries):
        raise UserError("the device pool is empty", hint=_FORMS)
    for entry in entries:
        match = _POOL_ITEM.match(entry)
        if not match:
            raise UserError(f"pool entry '{entry}' is not COUNTxNAME", hint=_FORMS)
        count = int(match.group(1)) if match.group(1) else 1
        spec = by_lower.get(match.group(2).lower())
        if spec is None:
            raise UserError(f"pool entry '{entry}': unknown device '{match.group(2)}'",
                            hint=_suggest(match.group(2)))
        if count < 1:
            raise UserError(f"pool entry '{entry}' asks for no devices", hint="use a count of 1 or more")
        if len(devices) + count > _MAX_POOL:
            raise UserError(f"pool '{text}' has more than {_MAX_POOL} devices", hint="simulate a smaller pool")
        for _ in range(count):
            index = len(devices)
            devices.append(DeviceSpec(id=f"sim:{index}", kind="cpu" if spec.kind == "cpu" else "cuda", index=index,
                                      name=spec.name, total_mem_gb=spec.memory_gib, free_mem_gb=spec.memory_gib,
                                      threads=os.cpu_count() if spec.kind == "cpu" else None))
    return devices
