"""How fast this machine's CPU is, measured once and kept: what lets the rules' CPU constants travel between machines.

The rules' CPU figures (`prediction.rules.CPU`) were measured on one machine; on another, everything a worker does
(tokenizing, forward passes, decode steps, loading) runs faster or slower together. From one week's development machine
to the next, a newer EPYC ran every smoke job in half the time, and the rules' runtime error on a fresh `make history`
was 108%. So each machine's single-thread fp32 GEMM throughput is measured (`probe_gflops`: about half a second of 512 x
512 matmuls in a subprocess at one thread), kept beside the built models (`<model cache>/cpu_speed.json`, a cache of
this machine like them) under the processor's name, core count and torch version, and carried by each CPU slot
(`DeviceSpec.cpu_gflops`) into the features of the jobs it runs. The rules scale their CPU figures by its ratio to that
of the machine they were measured on (`prediction.rules.CPU_REFERENCE_GFLOPS`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from spectrabench.hardware import DeviceSpec

log = logging.getLogger(__name__)

CACHE_FILE = "cpu_speed.json"
# The best of several short windows: a window that another process disturbed runs slow, never fast.
_PROBE = """
import time, torch
torch.set_num_threads(1)
a, b = torch.randn(512, 512), torch.randn(512, 512)
for _ in range(5):
    a @ b
best = 0.0
for _ in range(5):
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 0.06:
        a @ b
        n += 1
    best = max(best, 2 * 512**3 * n / (time.perf_counter() - start) / 1e9)
print(best)
"""
_TIMEOUT_S = 120


def machine_key() -> str:
    """What a measurement belongs to: the processor's name, the core count and torch's version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "none"
    return f"{_cpu_name()}|{os.cpu_count()}|torch {torch_version}"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def probe_gflops() -> float | None:
    """Measure single-thread fp32 GEMM GFLOP/s now, in a subprocess (its thread setting stays its own).

    Returns:
        The figure, or None when the probe could not run (no torch, a crash, a time-out).
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env,
                             timeout=_TIMEOUT_S, check=True).stdout
        value = float(out.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        log.warning("could not measure this CPU's speed (%s); the rules keep their reference figures", exc)
        return None
    return value if value > 0 else None


def cpu_gflops(cache_dir: Path) -> float | None:
    """This machine's GEMM GFLOP/s: kept from an earlier measurement, else measured now and kept.

    Args:
        cache_dir: The model cache (`Settings.model_cache`); the figure is kept in its `cpu_speed.json`.
    """
    path = cache_dir / CACHE_FILE
    key = machine_key()
    known: dict[str, float] = {}
    try:
        loaded = json.loads(path.read_text())
        if isinstance(loaded, dict):
            known = {str(k): float(v) for k, v in loaded.items() if isinstance(v, int | float)}
    except (OSError, ValueError):
        pass
    if key in known:
        return known[key]
    value = probe_gflops()
    if value is not None:
        known[key] = round(value, 2)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(known, indent=1) + "\n")
            tmp.replace(path)  # whole or not at all: a reader never sees half a file
        except OSError as exc:
            log.warning("could not keep the CPU speed in %s: %s", path, exc)
    return value


def with_cpu_speed(devices: Sequence[DeviceSpec], cache_dir: Path) -> list[DeviceSpec]:
    """The devices with this machine's CPU speed on each CPU slot (GPUs unchanged; nothing measured without one)."""
    if not any(d.kind == "cpu" for d in devices):
        return list(devices)
    gflops = cpu_gflops(cache_dir)
    if gflops is None:
        return list(devices)
    return [d.model_copy(update={"cpu_gflops": gflops}) if d.kind == "cpu" else d for d in devices]
