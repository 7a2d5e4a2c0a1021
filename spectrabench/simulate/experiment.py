"""Strategies compared in the simulator over many seeds: what `compare --simulate` and the benchmark report.

Every strategy faces the same workload and the same truth per seed (the truth's noise is drawn per item, so an
item has the same luck under any policy). The policies see predictions only, except "oracle": our policy told
the truth, each item's runtime and load predicted exactly as the truth will charge them (its noise and outliers
included). Its gap to ours is what prediction error costs; its gap to the bound is what the bound credits that
our policy cannot reach even knowing everything (co-location the planner does not use, parts no finer than
`planning.subtasks` cuts, one load per model).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

from pydantic import BaseModel

from spectrabench.hardware import DeviceSpec
from spectrabench.planning.baselines import make_policy
from spectrabench.planning.pieces import load_budget, worker_group
from spectrabench.planning.schedule import WorkItem
from spectrabench.planning.speeds import fastest_first, pool_rates
from spectrabench.planning.subtasks import plan_pieces
from spectrabench.profiles import Profile
from spectrabench.simulate.bound import lower_bound
from spectrabench.simulate.cluster import SimResult, simulate
from spectrabench.simulate.truth import SimJob, TruthConfig, true_cost
from spectrabench.simulate.workload import (
    SimWorkload,
    build_workload,
    group_by_model,
    group_items,
    item_key,
    with_parts,
)

STRATEGIES = ("sequential", "per-model", "round-robin", "ours", "oracle")


class StrategyStats(BaseModel):
    """One strategy over all seeds."""

    strategy: str
    seeds: int
    makespan_h_p50: float
    ratio_to_lb_p50: float
    ratio_to_lb_p95: float
    # Against the bound that credits no co-location: the best any schedule that shares no GPU can do.
    ratio_to_whole_lb_p50: float
    ratio_to_whole_lb_p95: float
    speedup_p50: float
    speedup_p5: float
    oom_total: int
    model_loads_p50: float
    utilisation_p50: float
    unfinished: int


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile of `values` (0.95: p95), inclusive method, as every figure of `StrategyStats` uses."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[max(0, min(98, round(q * 100) - 1))]


def _truth_lookup(workload: SimWorkload) -> Callable[[WorkItem], SimJob]:
    return lambda item: workload.jobs[item.key]


def _ours(workload: SimWorkload, devices: Sequence[DeviceSpec]) -> SimWorkload:
    by_model: dict[str, list[WorkItem]] = {}
    for item in workload.items:
        by_model.setdefault(worker_group(item.model, item.gpus), []).append(item)
    pieces = plan_pieces(by_model, len(devices), pool=pool_rates(devices, workload.speeds or {}))
    return group_items(with_parts(workload, pieces), [[item_key(p.model, [t]) for t in p.tasks] for p in pieces])


def told_the_truth(workload: SimWorkload, seed: int, truth: TruthConfig) -> SimWorkload:
    """`workload` with every item's predicted runtime and load replaced by what the truth charges for it on the
    reference device under `seed` (cold load, alone, at the item's batch): the predictions of a perfect predictor.
    A part is told its cost alone, with its group's setup, which it does not pay after a sibling in the same worker
    (seconds to a minute against hours). Memory predictions stay as they were."""
    items = []
    for item in workload.items:
        cost = true_cost(workload.jobs[item.key], workload.reference, 1, None, config=truth, warm=False,
                         luck=str(seed))
        items.append(item.model_copy(update={"predicted_runtime_s": cost.runtime_s, "predicted_load_s": cost.load_s,
                                             "task_runtimes_s": (cost.runtime_s,)}))
    return workload._replace(items=items)


def _run(strategy: str, workload: SimWorkload, devices: Sequence[DeviceSpec], seed: int,
         truth: TruthConfig) -> SimResult:
    if strategy == "sequential":
        work = workload
    elif strategy == "ours":
        work = _ours(workload, devices)
    elif strategy == "oracle":
        work = _ours(told_the_truth(workload, seed, truth), devices)
    else:
        work = group_by_model(workload)  # per-model and round-robin run one worker per model, as tools do
    speeds = workload.speeds or {}
    policy = make_policy("ours" if strategy == "oracle" else strategy, n_devices=len(devices),
                         pool=pool_rates(devices, speeds))
    # Ours moves the unstarted tail of a long-running job to an idle device, as the real optimized run does, with
    # the loads its grouping left unspent.
    moves = load_budget(len({i.model for i in workload.items}), len(devices)) - len(work.items)
    return simulate(work.items, work.jobs, devices, policy, seed, truth=truth,
                    max_tail_moves=max(0, moves) if strategy in ("ours", "oracle") else 0, speeds=speeds)


def compare_strategies(profile: Profile, devices: Sequence[DeviceSpec], *, seeds: int = 20, noise: float = 0.2,
                       memory_noise: float = 0.1, outliers: bool = True,
                       strategies: Sequence[str] = STRATEGIES) -> list[StrategyStats]:
    """Simulate each strategy on `devices` for `seeds` seeds and summarise.

    Args:
        profile: Models x tasks (catalog tasks).
        devices: The pool, e.g. from `simulate.specs.parse_pool("8xH100-80GB")`.
        seeds: Independent draws of prediction errors and truth noise.
        noise: Lognormal sigma of both the truth's noise and the runtime prediction error.
        memory_noise: Lognormal sigma of the peak-memory prediction error.
        outliers: Rare jobs take 3x their expected time (2% of them).
    """
    truth = TruthConfig(noise=noise, outlier_rate=0.02 if outliers else 0.0)
    devices = _fastest_first(profile, devices, memory_noise)
    results: dict[str, list[SimResult]] = {s: [] for s in strategies}
    bounds: list[float] = []
    whole_bounds: list[float] = []
    for seed in range(seeds):
        workload = _workload(profile, devices, seed, noise, memory_noise)
        # One bound per workload, from its finest (model, task) items with one load per model: a strategy that
        # groups coarsely must not get an easier bound for it.
        bounds.append(lower_bound(workload.items, _truth_lookup(workload), devices, seed, truth=truth))
        whole_bounds.append(lower_bound(workload.items, _truth_lookup(workload), devices, seed, truth=truth,
                                        max_per_device=1))
        for strategy in strategies:
            results[strategy].append(_run(strategy, workload, devices, seed, truth))
    sequential = results.get("sequential")
    stats = []
    for strategy, runs in results.items():
        speedups = [s.makespan_s / r.makespan_s for s, r in zip(sequential, runs, strict=True)] if sequential else [
            float("nan")]
        stats.append(StrategyStats(
            strategy=strategy, seeds=seeds, makespan_h_p50=percentile([r.makespan_s / 3600 for r in runs], 0.5),
            ratio_to_lb_p50=percentile([r.makespan_s / b for r, b in zip(runs, bounds, strict=True)], 0.5),
            ratio_to_lb_p95=percentile([r.makespan_s / b for r, b in zip(runs, bounds, strict=True)], 0.95),
            ratio_to_whole_lb_p50=percentile([r.makespan_s / b for r, b in zip(runs, whole_bounds, strict=True)], 0.5),
            ratio_to_whole_lb_p95=percentile([r.makespan_s / b for r, b in zip(runs, whole_bounds, strict=True)], 0.95),
            speedup_p50=percentile(speedups, 0.5), speedup_p5=percentile(speedups, 0.05),
            oom_total=sum(r.oom_count for r in runs),
            model_loads_p50=percentile([float(r.model_loads) for r in runs], 0.5),
            utilisation_p50=percentile([r.utilisation for r in runs], 0.5),
            unfinished=sum(len(r.failed) + len(r.unplaced) for r in runs)))
    return stats


def reachable_ratios(profile: Profile, devices: Sequence[DeviceSpec], *, apart_above_b: Sequence[float],
                     seeds: int = 20, noise: float = 0.2, memory_noise: float = 0.1,
                     outliers: bool = True) -> dict[float, list[float]]:
    """Per size in `apart_above_b` and per seed, the least makespan over the bound (`lower_bound`) that any schedule
    can reach if it never puts two models above that many billion parameters on one device
    (`configurations.configuration_bound`), told the truth or not: the same workloads, truth and bound as
    `compare_strategies` with the same arguments. Each seed's workload and bound are built once for all sizes.

    Args:
        profile: Models x tasks (catalog tasks).
        devices: The pool, of one kind of device.
        apart_above_b: The co-location rules' sizes.
        seeds: As `compare_strategies`.
        noise: As `compare_strategies`.
        memory_noise: As `compare_strategies`.
        outliers: As `compare_strategies`.
    """
    from spectrabench.simulate.configurations import configuration_bound

    truth = TruthConfig(noise=noise, outlier_rate=0.02 if outliers else 0.0)
    devices = _fastest_first(profile, devices, memory_noise)
    ratios: dict[float, list[float]] = {size: [] for size in apart_above_b}
    for seed in range(seeds):
        workload = _workload(profile, devices, seed, noise, memory_noise)
        bound = lower_bound(workload.items, _truth_lookup(workload), devices, seed, truth=truth)
        for size, per_seed in ratios.items():
            kept_apart = configuration_bound(workload.items, _truth_lookup(workload), devices, seed, truth=truth,
                                             apart_above_b=size)
            per_seed.append(max(bound, kept_apart) / bound if bound > 0 else 1.0)
    return ratios


def _fastest_first(profile: Profile, devices: Sequence[DeviceSpec], memory_noise: float) -> list[DeviceSpec]:
    """As `plan` does: the fastest kind first, the reference for predictions and the sequential baseline's device."""
    probe = build_workload(profile, devices[0], seed=0, runtime_noise=0.0, memory_noise=memory_noise, fit_margin=0.1,
                           pool=devices)
    return fastest_first(devices, probe.speeds or {})[0]


def _workload(profile: Profile, devices: Sequence[DeviceSpec], seed: int, noise: float,
              memory_noise: float) -> SimWorkload:
    return build_workload(profile, devices[0], seed=seed, runtime_noise=noise, memory_noise=memory_noise,
                          fit_margin=0.1, pool=devices)
