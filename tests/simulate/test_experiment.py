"""Strategies compared over seeds share one workload, one truth and one lower bound per seed."""

from __future__ import annotations

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
