"""Planning a run on this machine's devices: a real mixed pool (read through NVML) gets each card's speed."""

from __future__ import annotations

from pathlib import Path

import pytest

from spectrabench.execution.runplan import RunOptions, plan_run, predicted_outlook
from spectrabench.profiles import load_profile
from spectrabench.settings import Settings
from tests.fakes import fake_pynvml

A100 = "NVIDIA A100-SXM4-80GB"
L4 = "NVIDIA L4"


def test_a_mixed_machine_is_planned_by_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTRABENCH_DATA_DIR", str(tmp_path / "data"))
    settings = Settings()
    with fake_pynvml() as fake:
        fake.configure(devices=[fake.FakeGpu(name=A100, total_gb=80), fake.FakeGpu(name=L4, total_gb=23),
                                fake.FakeGpu(name=L4, total_gb=23)])
        plan = plan_run(load_profile("standard", settings), RunOptions(devices="cuda"), settings)
    assert [d.name for d in plan.devices] == [A100, L4, L4]
    # An L4 has 121 dense bf16 TFLOP/s and 300 GB/s against the A100's 312 and 2,039: the predictor says slower.
    assert plan.speeds[A100] == 1.0 and 0.1 < plan.speeds[L4] < 0.7
    sized = {f.device for f in plan.forecasts.values()}
    assert sized == {A100, L4}, "each job is sized for the smallest card that holds it"
    outlook = predicted_outlook(plan)
    assert not outlook.unplaced and outlook.lower_bound_s <= outlook.makespan_s * (1 + 1e-9)
    on = {slot.job_key: slot.device for slot in outlook.schedule}
    for key, forecast in plan.forecasts.items():
        if forecast.device == A100:
            assert on[key] == "cuda:0", "a job only the A100 holds runs there"


def test_prompts_are_counted_with_each_models_own_tokenizer() -> None:
    from spectrabench.harness import models
    from tests.conftest import MODEL_CACHE

    settings = Settings()
    profile = load_profile("smoke", settings)
    for spec in profile.models:
        assert spec.builtin is not None
        models.provision(spec.builtin, MODEL_CACHE)
    plan = plan_run(profile, RunOptions(devices="cpu:1"), settings)
    tasks = {(f.model, t.task): t.features for f in plan.forecasts.values() for t in f.tasks}
    assert all(features.token_scale is not None for features in tasks.values())
    smol = next(m.name for m in profile.models if m.builtin == "smollm2-135m-instruct")
    tiny = next(m.name for m in profile.models if m.builtin == "tiny-llama-4m")
    # The same Korean documents: SmolLM2's English vocabulary makes far more tokens of them than the byte estimate.
    assert tasks[smol, "sb_ko"].prompt_tokens > 1.4 * tasks[tiny, "sb_ko"].prompt_tokens
    assert tasks[smol, "sb_facts"].prompt_tokens < tasks[tiny, "sb_facts"].prompt_tokens
