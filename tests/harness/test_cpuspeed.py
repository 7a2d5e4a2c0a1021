"""CPU speed: measured for real in a subprocess, kept per machine, and carried by CPU slots only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spectrabench.hardware import DeviceSpec, cpu_slots
from spectrabench.harness import cpuspeed
from spectrabench.harness.cpuspeed import CACHE_FILE, cpu_gflops, machine_key, probe_gflops, with_cpu_speed

GPU = DeviceSpec(id="cuda:0", kind="cuda", index=0, name="NVIDIA H100 80GB HBM3", total_mem_gb=79.6,
                 free_mem_gb=79.0)


def test_the_probe_measures_a_plausible_gemm_speed() -> None:
    gflops = probe_gflops()
    # One core of any CPU that runs lm-eval: more than a GFLOP/s, less than a TFLOP/s.
    assert gflops is not None and 1 < gflops < 1000


def test_a_measurement_is_kept_per_machine_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / CACHE_FILE).write_text(json.dumps({"another machine": 12.0}))
    first = cpu_gflops(tmp_path)
    assert first is not None
    kept = json.loads((tmp_path / CACHE_FILE).read_text())
    assert kept == {"another machine": 12.0, machine_key(): round(first, 2)}

    def no_probe() -> float:
        raise AssertionError("a kept figure must not be measured again")

    monkeypatch.setattr(cpuspeed, "probe_gflops", no_probe)
    assert cpu_gflops(tmp_path) == round(first, 2)


def test_a_broken_cache_file_is_measured_again_and_replaced(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / CACHE_FILE).write_text("{not json")
    monkeypatch.setattr(cpuspeed, "probe_gflops", lambda: 77.0)
    assert cpu_gflops(tmp_path) == 77.0
    assert json.loads((tmp_path / CACHE_FILE).read_text()) == {machine_key(): 77.0}


def test_only_cpu_slots_carry_the_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpuspeed, "probe_gflops", lambda: 90.0)
    assert with_cpu_speed([GPU], tmp_path) == [GPU]
    assert not (tmp_path / CACHE_FILE).exists()  # nothing measured for a GPU-only pool
    slots = with_cpu_speed(cpu_slots(2), tmp_path)
    assert [s.cpu_gflops for s in slots] == [90.0, 90.0]
    mixed = with_cpu_speed([GPU, *cpu_slots(1)], tmp_path)
    assert mixed[0] == GPU and mixed[1].cpu_gflops == 90.0


def test_without_a_measurement_the_slots_keep_the_reference(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpuspeed, "probe_gflops", lambda: None)
    assert [s.cpu_gflops for s in with_cpu_speed(cpu_slots(1), tmp_path)] == [None]
    assert not (tmp_path / CACHE_FILE).exists()
