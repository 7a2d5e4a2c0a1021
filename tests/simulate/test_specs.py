"""What-if pools: parsing `8xH100-80GB`-style text, and mapping devices to datasheet figures."""

from __future__ import annotations

import pytest

from spectrabench.errors import UserError
from spectrabench.hardware import DeviceSpec
from spectrabench.simulate.specs import DEVICE_SPECS, hardware_for, parse_pool


def test_a_uniform_pool() -> None:
    pool = parse_pool("8xH100-80GB")
    assert [d.id for d in pool] == [f"sim:{i}" for i in range(8)]
    assert [d.index for d in pool] == list(range(8))
    assert {(d.kind, d.name, d.total_mem_gb, d.free_mem_gb) for d in pool} == {("cuda", "H100-80GB", 79.6, 79.6)}


def test_a_mixed_pool_keeps_the_written_order() -> None:
    pool = parse_pool("2xA100-80GB,4xL4-24GB")
    assert [d.name for d in pool] == ["A100-80GB"] * 2 + ["L4-24GB"] * 4
    assert [d.id for d in pool] == [f"sim:{i}" for i in range(6)]
    assert pool[0].total_mem_gb == 80.0 and pool[-1].total_mem_gb == 22.5


@pytest.mark.parametrize("text", ["H200-141GB", "1xH200-141GB", " 1 x h200-141gb ", "1*H200-141GB"])
def test_one_device_in_any_case_and_spacing(text: str) -> None:
    (device,) = parse_pool(text)
    assert (device.id, device.name, device.kind, device.total_mem_gb) == ("sim:0", "H200-141GB", "cuda", 140.4)


def test_the_local_cpu_is_a_cpu_device() -> None:
    (device,) = parse_pool("CPU")
    assert device.kind == "cpu" and device.threads is not None and device.total_mem_gb > 0


@pytest.mark.parametrize(("text", "message", "hint"), [
    ("8xH100", "unknown device 'H100'", "did you mean 'H100-80GB'?"),
    ("2xA100-80GB,4xL4", "unknown device 'L4'", "did you mean 'L4-24GB'?"),
    ("0xH100-80GB", "asks for no devices", "1 or more"),
    ("", "empty", "8xH100-80GB"),
    ("8xH100-80GB,,", "is not COUNTxNAME", "2xA100-80GB,4xL4-24GB"),
    ("eight x H100-80GB", "is not COUNTxNAME", "8xH100-80GB"),
    ("5000xL4-24GB", "more than 4096 devices", "smaller pool"),
])
def test_bad_pools_are_user_errors_with_a_hint(text: str, message: str, hint: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_pool(text)
    assert message in caught.value.message
    assert caught.value.hint is not None and hint in caught.value.hint


@pytest.mark.parametrize(("name", "mem", "expected"), [
    ("NVIDIA H100 80GB HBM3", 79.6, "H100-80GB"),
    ("NVIDIA H200", 140.4, "H200-141GB"),
    ("NVIDIA A100-SXM4-40GB", 40.0, "A100-40GB"),
    ("NVIDIA A100-SXM4-80GB", 80.0, "A100-80GB"),
    ("NVIDIA L4", 22.5, "L4-24GB"),
    ("NVIDIA L40S", 45.0, "A100-40GB"),  # unknown: judged by memory, not taken for an L4
    ("Some Future GPU", 16.0, "L4-24GB"),
])
def test_real_gpus_map_to_specs_by_nvml_name(name: str, mem: float, expected: str) -> None:
    device = DeviceSpec(id="cuda:0", kind="cuda", index=0, name=name, total_mem_gb=mem, free_mem_gb=mem)
    assert hardware_for(device).name == expected


def test_specs_follow_the_datasheets_ordering() -> None:
    a100, h100, h200, l4 = (DEVICE_SPECS[n] for n in ("A100-80GB", "H100-80GB", "H200-141GB", "L4-24GB"))
    assert l4.bf16_tflops < a100.bf16_tflops < h100.bf16_tflops == h200.bf16_tflops
    assert l4.hbm_gbps < DEVICE_SPECS["A100-40GB"].hbm_gbps < a100.hbm_gbps < h100.hbm_gbps < h200.hbm_gbps
    assert l4.memory_gib < DEVICE_SPECS["A100-40GB"].memory_gib < h100.memory_gib < a100.memory_gib < h200.memory_gib
    cpu = hardware_for(parse_pool("CPU")[0])
    assert cpu.kind == "cpu" and cpu.bf16_tflops < l4.bf16_tflops


def test_an_ambiguous_prefix_lists_the_candidates() -> None:
    with pytest.raises(UserError) as caught:
        parse_pool("2xA100")
    assert caught.value.hint == "did you mean one of A100-40GB, A100-80GB?"
