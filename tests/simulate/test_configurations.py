"""The configuration bound: what a schedule that keeps some models apart can reach, whatever it knows."""

from __future__ import annotations

import pytest

from spectrabench.simulate.bound import lower_bound
from spectrabench.simulate.configurations import configuration_bound
from spectrabench.simulate.experiment import _run, _truth_lookup, reachable_ratios
from spectrabench.simulate.specs import parse_pool
from spectrabench.simulate.truth import TruthConfig
from spectrabench.simulate.workload import build_workload
from tests.simulate import bundled_profile

TRUTH = TruthConfig(noise=0.2, outlier_rate=0.02)


def _standard_on(pool: str, seed: int):  # type: ignore[no-untyped-def]
    devices = parse_pool(pool)
    return devices, build_workload(bundled_profile("standard"), devices[0], seed=seed, runtime_noise=0.2,
                                   memory_noise=0.1, fit_margin=0.1, pool=devices)


def test_keeping_every_job_alone_gives_the_whole_gpu_total() -> None:
    # Two A100s: the total work dominates the bound, so the whole-GPU bound is its total term.
    devices, work = _standard_on("2xA100-80GB", seed=1)
    alone = configuration_bound(work.items, _truth_lookup(work), devices, 1, truth=TRUTH, apart_above_b=0.0)
    whole = lower_bound(work.items, _truth_lookup(work), devices, 1, truth=TRUTH, max_per_device=1)
    assert alone == pytest.approx(whole, rel=1e-6)


def test_the_stricter_the_rule_the_later_the_best_schedule_ends() -> None:
    devices, work = _standard_on("8xH100-80GB", seed=0)
    bounds = [configuration_bound(work.items, _truth_lookup(work), devices, 0, truth=TRUTH, apart_above_b=size)
              for size in (None, 7.0, 3.0, 0.0)]
    assert bounds == sorted(bounds)
    free = lower_bound(work.items, _truth_lookup(work), devices, 0, truth=TRUTH)
    # Free to share, it finds about the bound's own co-location credit; keeping 8-32B models apart costs a few
    # percent of it, and sharing nothing costs it all.
    assert bounds[0] == pytest.approx(free, rel=0.01)
    assert bounds[1] > 1.02 * bounds[0]
    assert bounds[3] == pytest.approx(lower_bound(work.items, _truth_lookup(work), devices, 0, truth=TRUTH,
                                                  max_per_device=1), rel=1e-6)


@pytest.mark.parametrize("strategy", ["ours", "oracle"])
def test_no_run_of_ours_beats_the_bound_of_its_own_rule(strategy: str) -> None:
    # Ours never puts two models above 3B on one GPU (`placement.may_share`), told the truth or not.
    for seed in (0, 1):
        devices, work = _standard_on("8xH100-80GB", seed)
        bound = configuration_bound(work.items, _truth_lookup(work), devices, seed, truth=TRUTH, apart_above_b=3.0)
        result = _run(strategy, work, devices, seed, TRUTH)
        assert bound <= result.makespan_s
        assert bound > lower_bound(work.items, _truth_lookup(work), devices, seed, truth=TRUTH)


def test_reachable_ratios_are_per_seed_and_never_below_one() -> None:
    by_size = reachable_ratios(bundled_profile("standard"), parse_pool("8xH100-80GB"), apart_above_b=(7.0, 3.0),
                               seeds=2)
    assert set(by_size) == {7.0, 3.0}
    for ratios in by_size.values():
        assert len(ratios) == 2 and all(r > 1.0 for r in ratios)


def test_a_mixed_pool_is_refused() -> None:
    _, work = _standard_on("2xA100-80GB", seed=0)
    with pytest.raises(ValueError, match="one kind"):
        configuration_bound(work.items, _truth_lookup(work), parse_pool("1xA100-80GB,1xL4-24GB"), 0, truth=TRUTH)
