"""Batch sizes: the largest that fits predicted memory with a margin; the profile's value on CPU."""

from __future__ import annotations

from collections.abc import Callable

from spectrabench.catalog import TASKS
from spectrabench.hardware import DeviceSpec
from spectrabench.prediction.batching import CPU_REASON, choose_batch_size
from spectrabench.prediction.features import JobFeatures, job_features, shape_from_facts
from spectrabench.prediction.rules import estimate

from . import CPU, model

GPU_80 = DeviceSpec(id="cuda:0", kind="cuda", index=0, name="NVIDIA H100 80GB HBM3", total_mem_gb=80.0,
                    free_mem_gb=80.0)


def _rules_memory(f: JobFeatures) -> float:
    return estimate(f).peak_mem_gb


def _features_for(params_b: float, task: str, device: DeviceSpec,
                  limit: int | None = None) -> Callable[[int], JobFeatures]:
    spec = model("qwen-32b", params_b, "Qwen/Qwen2.5-32B-Instruct")
    facts = TASKS[task]

    def build(batch: int) -> JobFeatures:
        return job_features(spec, shape_from_facts(facts), facts.default_shots, limit, batch, device)

    return build


def test_a_32b_model_on_80gb_is_never_given_a_batch_that_overflows() -> None:
    weights_only = 32e9 * 2 / 1024**3  # ~60 GiB (64 GB) before any batch
    for task in ("mmlu", "gsm8k", "arc_challenge", "humaneval", "mmlu_pro"):
        build = _features_for(32.0, task, GPU_80)
        assert _rules_memory(build(1)) > weights_only
        choice = choose_batch_size(build, _rules_memory, free_mem_gb=80.0, margin=0.1)
        if choice.reason.startswith("does not fit"):
            # Five-shot chain-of-thought prompts plus 2048 generated tokens: the KV cache alone (full
            # multi-head, as the rules assume) leaves no room for the margin. The caller decides.
            assert (task, choice.batch_size) == ("mmlu_pro", 1)
            assert _rules_memory(build(1)) > 80.0 * 0.9
            continue
        assert _rules_memory(build(choice.batch_size)) <= 80.0 * 0.9, (task, choice)
        assert choice.batch_size <= 16, (task, choice)
        assert _rules_memory(build(choice.batch_size * 2)) > 80.0 * 0.9, (task, choice)


def test_a_small_model_takes_a_large_batch_but_not_more_than_its_requests() -> None:
    build = _features_for(1.0, "arc_easy", GPU_80)
    assert choose_batch_size(build, _rules_memory, 80.0, 0.1).batch_size >= 64
    few = _features_for(1.0, "arc_easy", GPU_80, limit=5)  # 20 requests
    choice = choose_batch_size(few, _rules_memory, 80.0, 0.1)
    assert choice.batch_size == 32 and "all 20 requests" in choice.reason


def test_when_nothing_fits_batch_one_is_returned_with_the_reason() -> None:
    build = _features_for(70.0, "mmlu", GPU_80)  # 130 GiB of bf16 weights
    choice = choose_batch_size(build, _rules_memory, 80.0, 0.1)
    assert choice.batch_size == 1 and choice.reason.startswith("does not fit")


def test_cpu_keeps_the_profile_batch_size() -> None:
    build = _features_for(0.135, "arc_easy", CPU)
    assert choose_batch_size(build, _rules_memory, 10.0, 0.1, cpu_default=4) == (4, CPU_REASON)
    # Without a profile value the CPU is sized by memory like any device.
    assert choose_batch_size(build, _rules_memory, 10.0, 0.1).batch_size > 4


def test_a_prediction_that_dips_cannot_skip_an_overflow() -> None:
    build = _features_for(1.0, "arc_easy", GPU_80)
    dips = {1: 10.0, 2: 20.0, 4: 90.0, 8: 30.0, 16: 40.0}
    choice = choose_batch_size(build, lambda f: dips.get(f.batch_size, 500.0), 80.0, 0.0,
                               candidates=(1, 2, 4, 8, 16))
    assert choice.batch_size == 2
