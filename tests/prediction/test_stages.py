"""Stages follow the profile's thresholds, and the Predictor blends rules and learned estimates accordingly."""

from __future__ import annotations

import pytest

from spectrabench.prediction.learned import fit
from spectrabench.prediction.rules import estimate
from spectrabench.prediction.stages import Predictor, count_comparable, size_domain, stage_for
from spectrabench.profiles import SchedulerConfig

from . import CPU, features, synthetic_history

CFG = SchedulerConfig()  # 50 / 200 records; 75 / 300 above 8B


@pytest.mark.parametrize(("n", "params_b", "stage", "weight"), [
    (0, 7.0, "intelligent", 0.0), (49, 7.0, "intelligent", 0.0), (50, 7.0, "hybrid", 0.0),
    (125, 7.0, "hybrid", 0.5), (199, 7.0, "hybrid", 149 / 150), (200, 7.0, "adaptive", 1.0),
    (5000, 0.1, "adaptive", 1.0), (60, 8.0, "hybrid", 10 / 150),  # 8B is not above the 8B limit
    (74, 8.5, "intelligent", 0.0), (75, 70.0, "hybrid", 0.0), (150, 32.0, "hybrid", 1 / 3),
    (299, 32.0, "hybrid", 224 / 225), (300, 32.0, "adaptive", 1.0),
])
def test_stage_follows_the_thresholds(n: int, params_b: float, stage: str, weight: float) -> None:
    choice = stage_for(n, params_b, CFG)
    assert choice.stage == stage and choice.learned_weight == pytest.approx(weight)


def test_custom_thresholds_are_honoured() -> None:
    cfg = SchedulerConfig(min_learning_data=10, stable_learning_data=10, large_model_min_learning_data=20,
                          large_model_stable_learning_data=40, large_model_params_b=30.0)
    assert stage_for(9, 7, cfg).stage == "intelligent" and stage_for(10, 7, cfg).stage == "adaptive"
    assert stage_for(30, 32, cfg) == ("hybrid", 0.5)
    assert stage_for(30, 14, cfg).stage == "adaptive"  # 14B is not large under this profile


def test_comparable_means_same_device_kind_and_size_domain() -> None:
    history = synthetic_history(120)  # GPU records of 1.5B-14B models
    assert [size_domain(p, CFG) for p in (0.135, 1.0, 8.0, 8.1, 70)] == [0, 1, 1, 2, 2]
    mid = sum(1 for r in history if 1 <= r.features.params_b <= 8)
    assert count_comparable(history, "cuda", 7.0, CFG) == mid
    assert count_comparable(history, "cuda", 32.0, CFG) == 120 - mid
    assert count_comparable(history, "cpu", 7.0, CFG) == 0


def test_predictor_moves_from_rules_to_learned_as_history_grows() -> None:
    history = synthetic_history(240)
    learned = fit(history)
    job = features(3.0, "gsm8k", limit=40, name="qwen-3b").model_copy(update={"family": "qwen"})
    rules = estimate(job)

    no_model = Predictor(CFG, None, history).predict(job)
    assert (no_model.stage, no_model.runtime_s, no_model.peak_mem_gb) == ("intelligent", rules.runtime_s,
                                                                          rules.peak_mem_gb)
    on_cpu = Predictor(CFG, learned, history).predict(job.model_copy(update={"device_kind": "cpu",
                                                                            "device_name": "CPU"}))
    assert on_cpu.stage == "intelligent"  # no CPU records at all

    n_mid = count_comparable(history, "cuda", 3.0, CFG)
    assert 50 < n_mid < 200
    hybrid = Predictor(CFG, learned, history).predict(job)
    assert hybrid.stage == "hybrid" and hybrid.learned_weight == pytest.approx((n_mid - 50) / 150)
    alone = learned.predict(job, history)
    # Runtime lies between the two (geometric blend); memory never drops below either while mixing.
    low, high = sorted([rules.runtime_s, alone.runtime_s])
    assert low < hybrid.runtime_s < high
    assert hybrid.peak_mem_gb == max(rules.peak_mem_gb, alone.peak_mem_gb)

    relaxed = SchedulerConfig(min_learning_data=5, stable_learning_data=20)
    adaptive = Predictor(relaxed, learned, history).predict(job)
    assert adaptive.stage == "adaptive" and adaptive.runtime_s == pytest.approx(alone.runtime_s)
    assert adaptive.peak_mem_gb == pytest.approx(alone.peak_mem_gb)
    # A model above 8B counts only the >8B records (9B and 14B here) against the large-model thresholds.
    n_large = count_comparable(history, "cuda", 70.0, relaxed)
    assert 75 < n_large < 300 and n_large + n_mid == 240
    large = Predictor(relaxed, learned, history).predict(job, params_b=70.0)
    assert (large.stage, large.learned_weight) == ("hybrid", pytest.approx((n_large - 75) / 225))


def test_cpu_job_without_history_gets_the_rules() -> None:
    job = features(0.135, "arc_easy", limit=8, batch_size=4, device=CPU)
    predicted = Predictor(CFG, None, []).predict(job)
    assert predicted.stage == "intelligent" and predicted.learned_weight == 0.0
    assert (predicted.runtime_s, predicted.load_s, predicted.peak_mem_gb) == tuple(estimate(job))
