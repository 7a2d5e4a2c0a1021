"""Strategies compared over seeds share one workload, one truth and one lower bound per seed."""

from __future__ import annotations

import pytest

from spectrabench.simulate.experiment import STRATEGIES, compare_strategies
from spectrabench.simulate.specs import parse_pool
from tests.simulate import bundled_profile


def test_every_strategy_is_measured_against_the_same_bound() -> None:
    stats = {s.strategy: s for s in compare_strategies(bundled_profile("standard"), parse_pool("2xA100-80GB"),
                                                       seeds=2, noise=0.2)}
    assert set(stats) == set(STRATEGIES)
    assert stats["sequential"].speedup_p50 == 1.0
    for s in stats.values():
        assert s.ratio_to_lb_p50 >= 1.0 and s.unfinished == 0
    # No policy beats the bound, so no speed-up exceeds sequential / LB (which can pass 2 on two GPUs: sequential
    # pays a load per task, the bound one per model); a policy using both GPUs beats one using one.
    assert stats["ours"].speedup_p50 <= stats["sequential"].ratio_to_lb_p50 + 1e-9
    assert stats["ours"].speedup_p50 > stats["per-model"].speedup_p50


def test_on_eight_gpus_a_dominant_group_runs_in_parts_and_the_bound_still_holds() -> None:
    from spectrabench.simulate.experiment import _ours
    from spectrabench.simulate.workload import build_workload

    standard = bundled_profile("standard")
    pool = parse_pool("8xH100-80GB")
    work = _ours(build_workload(standard, pool[0], seed=0, runtime_noise=0.2, fit_margin=0.1), pool)
    assert any("[" in task for item in work.items for task in item.tasks), "exaone-32b's kmmlu runs in parts"
    stats = {s.strategy: s for s in compare_strategies(standard, pool, seeds=2, noise=0.2,
                                                       strategies=("sequential", "ours"))}
    assert all(s.ratio_to_lb_p50 >= 1.0 and s.unfinished == 0 and s.oom_total == 0 for s in stats.values())


def test_the_oracle_is_told_exactly_what_the_truth_charges() -> None:
    from spectrabench.planning.baselines import make_policy
    from spectrabench.simulate.cluster import simulate
    from spectrabench.simulate.experiment import told_the_truth
    from spectrabench.simulate.truth import TruthConfig
    from spectrabench.simulate.workload import build_workload

    pool = parse_pool("H100-80GB")
    truth = TruthConfig(noise=0.5, outlier_rate=0.2)
    work = build_workload(bundled_profile("standard"), pool[0], seed=3, runtime_noise=0.5, fit_margin=0.1)
    told = told_the_truth(work, 3, truth)
    misses = 0
    for guessed, item in list(zip(work.items, told.items, strict=True))[:12]:
        alone = simulate([item], told.jobs, pool, make_policy("ours", n_devices=1), seed=3, truth=truth)
        assert alone.makespan_s == pytest.approx(item.predicted_load_s + item.predicted_runtime_s, rel=1e-9)
        misses += abs(guessed.predicted_runtime_s / item.predicted_runtime_s - 1) > 0.05
    assert misses > 6, "the workload's own predictions carry noise 0.5; the oracle's none"


def test_a_mixed_pool_sizes_jobs_for_the_small_cards_and_keeps_them_busy() -> None:
    from spectrabench.simulate.workload import build_workload

    standard = bundled_profile("standard")
    pool = parse_pool("2xA100-80GB,4xL4-24GB")
    work = build_workload(standard, pool[0], seed=0, runtime_noise=0.2, fit_margin=0.1, pool=pool)
    assert work.speeds is not None and work.speeds["A100-80GB"] == 1.0 and 0.2 < work.speeds["L4-24GB"] < 0.6
    l4 = pool[-1].total_mem_gb
    fit = [i for i in work.items if i.gpus == 1 and i.predicted_mem_gb <= 0.9 * l4]
    assert len(fit) > len(work.items) / 2, "most jobs are sized to fit an L4 with the margin"
    assert {i.model for i in work.items if i.predicted_mem_gb > l4} >= {"exaone-3.5-32b-instruct"}
    stats = {s.strategy: s for s in compare_strategies(standard, pool, seeds=3, noise=0.2,
                                                       strategies=("sequential", "ours"))}
    # The two A100s alone could not run the profile more than ~2x faster than one of them: the L4s take work.
    assert stats["ours"].speedup_p5 > 2.5 and stats["ours"].oom_total == 0 and stats["ours"].unfinished == 0


def test_a_mixed_pool_compares_the_same_however_it_is_listed() -> None:
    # The fastest kind is the reference and runs the sequential baseline, as in `plan`: listing the slow cards
    # first must not change a figure (it used to measure the sequential run on an L4).
    standard = bundled_profile("standard")
    stats = [compare_strategies(standard, parse_pool(pool), seeds=2, noise=0.2, strategies=("sequential", "ours"))
             for pool in ("2xA100-80GB,4xL4-24GB", "4xL4-24GB,2xA100-80GB")]
    assert stats[0] == stats[1]
