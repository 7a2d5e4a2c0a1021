"""Device discovery and `--devices` parsing, with a fake NVML (this machine has no GPU)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from types import ModuleType

import psutil
import pytest

from spectrabench.errors import UserError
from spectrabench.hardware import (
    DeviceSpec,
    cpu_slots,
    discover_gpus,
    parse_devices,
    visible_devices_env,
    with_memory_limit,
)
from tests.fakes import fake_pynvml

CORES = os.cpu_count() or 1


@pytest.fixture
def nvml() -> Iterator[ModuleType]:
    """The fake NVML with two GPUs."""
    with fake_pynvml() as fake:
        fake.configure(devices=[fake.FakeGpu(name="NVIDIA H100 80GB HBM3", total_gb=80, used_gb=20),
                                fake.FakeGpu(name="NVIDIA H100 80GB HBM3", total_gb=80)])
        yield fake


@pytest.fixture
def no_gpu() -> Iterator[ModuleType]:
    """NVML installed but failing to start, as on a machine without an NVIDIA driver."""
    with fake_pynvml() as fake:
        fake.configure(devices=[fake.FakeGpu()], fail_init=True)
        yield fake


def test_discover_gpus_reads_nvml_and_shuts_it_down(nvml: ModuleType) -> None:
    gpus = discover_gpus()
    assert [g.id for g in gpus] == ["cuda:0", "cuda:1"]
    assert gpus[0] == DeviceSpec(id="cuda:0", kind="cuda", index=0, name="NVIDIA H100 80GB HBM3", total_mem_gb=80.0,
                                 free_mem_gb=60.0)
    assert gpus[1].free_mem_gb == 80.0
    assert nvml.state.init_count == 0 and nvml.state.shutdown_calls == 1


def test_discover_gpus_is_empty_without_nvml(no_gpu: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    assert discover_gpus() == []
    assert no_gpu.state.init_calls == 1
    monkeypatch.setitem(sys.modules, "pynvml", None)  # as if nvidia-ml-py were not installed
    assert discover_gpus() == []


def test_discover_gpus_is_empty_when_a_gpu_fails_mid_query(nvml: ModuleType) -> None:
    nvml.state.fail_queries = True
    assert discover_gpus() == []
    assert nvml.state.init_count == 0


def test_auto_takes_every_gpu(nvml: ModuleType) -> None:
    assert [d.id for d in parse_devices("auto")] == ["cuda:0", "cuda:1"]
    assert [d.id for d in parse_devices(" AUTO ")] == ["cuda:0", "cuda:1"]


def test_auto_falls_back_to_one_cpu_slot(no_gpu: ModuleType) -> None:
    (slot,) = parse_devices("auto")
    assert (slot.id, slot.kind, slot.index, slot.name, slot.threads) == ("cpu:0", "cpu", 0, "CPU", CORES)


def test_cpu_means_one_slot_with_every_core(no_gpu: ModuleType) -> None:
    assert parse_devices("cpu") == parse_devices("cpu:1")
    (slot,) = parse_devices("cpu")
    assert slot.threads == CORES
    assert slot.total_mem_gb == pytest.approx(psutil.virtual_memory().total / 1024**3)


def test_cpu_slots_share_cores_and_memory() -> None:
    slots = parse_devices("CPU:2")
    assert [s.id for s in slots] == ["cpu:0", "cpu:1"]
    assert [s.index for s in slots] == [0, 1]
    assert all(s.threads == max(1, CORES // 2) for s in slots)
    total = psutil.virtual_memory().total / 1024**3
    assert sum(s.total_mem_gb for s in slots) == pytest.approx(total)
    assert all(0 < s.free_mem_gb <= s.total_mem_gb for s in slots)
    assert [s.threads for s in cpu_slots(4 * CORES)] == [1] * (4 * CORES)  # never zero threads


def test_cpu_slots_are_capped_at_four_per_core() -> None:
    assert len(parse_devices(f"cpu:{4 * CORES}")) == 4 * CORES
    with pytest.raises(UserError, match="would thrash") as err:
        parse_devices(f"cpu:{4 * CORES + 1}")
    assert err.value.hint == f"use at most cpu:{4 * CORES}"


def test_cuda_takes_all_or_the_named_gpus(nvml: ModuleType) -> None:
    assert [d.id for d in parse_devices("cuda")] == ["cuda:0", "cuda:1"]
    assert [d.id for d in parse_devices("cuda:1")] == ["cuda:1"]
    assert [d.id for d in parse_devices("cuda:1,0")] == ["cuda:1", "cuda:0"]
    assert [d.id for d in parse_devices("cuda: 0, 1")] == ["cuda:0", "cuda:1"]


@pytest.mark.parametrize(("text", "message", "hint"), [
    ("cpu:0", "at least one CPU slot", "cpu:1 or more"),
    ("cpu:-1", "at least one CPU slot", "cpu:1 or more"),
    ("cpu:x", "'x' is not a number of CPU slots", "cpu:N with N from 1"),
    ("cpu:", "'' is not a number of CPU slots", "cpu:N"),
    ("cuda:7", "there is no GPU 7", "2 GPU(s): cuda:0, cuda:1"),
    ("cuda:0,0", "GPU 0 is listed twice", "name each GPU once"),
    ("cuda:1,a", "'a' is not a GPU index", "e.g. cuda:0,1"),
    ("cuda:", "'' is not a GPU index", "comma-separated"),
    ("cuda:-1", "'-1' is not a GPU index", "comma-separated"),
    ("tpu:1", "unknown device kind 'tpu'", "did you mean 'cpu'?"),
    ("cdua", "unknown device kind 'cdua'", "did you mean 'cuda'?"),
    ("gpu:0", "unknown device kind 'gpu'", "did you mean 'cuda'?"),
    ("", "--devices is empty", "auto, cpu, cpu:N, cuda or cuda:0,1"),
    ("auto:2", "auto takes no argument", "use auto"),
])
def test_bad_device_text_is_a_user_error(nvml: ModuleType, text: str, message: str, hint: str) -> None:
    with pytest.raises(UserError) as err:
        parse_devices(text)
    assert message in err.value.message
    assert err.value.hint is not None and hint in err.value.hint
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_is_a_user_error(no_gpu: ModuleType, text: str) -> None:
    with pytest.raises(UserError, match="no GPU found") as err:
        parse_devices(text)
    assert err.value.hint == "use cpu or cpu:N on this machine"


def test_visible_devices_env_for_gpus(nvml: ModuleType) -> None:
    env = visible_devices_env(parse_devices("cuda:1,0"))
    assert env == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "1,0"}


def test_visible_devices_env_for_cpu_hides_gpus_and_caps_threads() -> None:
    slot = cpu_slots(2)[1]
    threads = str(max(1, CORES // 2))
    assert visible_devices_env([slot]) == {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": threads,
                                           "MKL_NUM_THREADS": threads}


def test_visible_devices_env_refuses_mixed_or_no_devices(nvml: ModuleType) -> None:
    with pytest.raises(ValueError, match="one kind"):
        visible_devices_env([*parse_devices("cuda:0"), *cpu_slots(1)])
    with pytest.raises(ValueError, match="one kind"):
        visible_devices_env([])


def test_a_memory_limit_caps_gpus_and_leaves_cpu_slots(nvml: ModuleType) -> None:
    gpus = parse_devices("cuda")  # 60 and 80 GB free
    capped = with_memory_limit([*gpus], 70)
    assert [(d.total_mem_gb, round(d.free_mem_gb)) for d in capped] == [(70, 60), (70, 70)]
    assert with_memory_limit(gpus, None) == gpus
    slot = cpu_slots(1)
    assert with_memory_limit(slot, 0.5) == slot
