"""The makespan no schedule can beat under the simulator's truth, whatever the policy.

It is the largest of: the total device time every item needs at the most efficient sharing allowed, on its
cheapest kind of device, over what the pool does of it per second (in a pool of unlike devices a slow one does
less); the longest item alone; and, with more items than devices, the two smallest of the G + 1 largest items,
since two of them share a device. An lm-eval group may run in parts (`planning.subtasks`), so for the last two
terms a group counts as its smallest part (one leaf's share of its work); in the total it counts whole, since
parts only add work.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

from spectrabench.hardware import DeviceSpec
from spectrabench.planning.schedule import WorkItem
from spectrabench.simulate.specs import hardware_for
from spectrabench.simulate.truth import DEFAULT_TRUTH, SimJob, TruthConfig, colocation_slowdown, load_seconds, true_cost
from spectrabench.simulate.workload import part_task


def lower_bound(items: Sequence[WorkItem], truth_of: Callable[[WorkItem], SimJob], devices: Sequence[DeviceSpec],
                seed: int, *, truth: TruthConfig = DEFAULT_TRUTH, max_per_device: int = 4) -> float:
    """The makespan bound LB = max(total work / devices, longest item, G-th + (G+1)-th longest item).

    An item's work is what its tasks really cost under the truth (same seed, so the same luck `simulate` draws),
    on its best device, at the best of its batch size and the halvings of it (retries halve, and a group runs its
    smallest); each model adds one cold load to the total, however many items it has (a schedule that runs all of
    them in one worker loads it once). An item alone includes its load. With G devices, the G+1 longest items
    cannot all run side by side, so two of them share a device.

    An item the planner sharded over k GPUs counts k devices' worth of its work in the total, or fewer where its
    truth fits fewer (a schedule may run it on fewer); a sharded item shares no device.

    Co-location is credited where memory allows it: k items sharing a device progress at k / slowdown(k) times
    the speed of one, so in the total an item counts `slowdown(k) / k` of its work, for the largest k
    (<= `max_per_device`) such that it and k - 1 of the smallest items (at batch 1) fit the device together. A
    big model that fills a GPU counts in full: the bound stays tight where sharing is impossible, valid where not.

    Args:
        items: The items that must run.
        truth_of: The truth behind an item.
        devices: The pool.
        seed: The seed `simulate` used.
        truth: The noise `simulate` used.
        max_per_device: The sharing cap `simulate` used.
    """
    if not items:
        return 0.0
    kinds = list({hardware_for(d): d for d in devices}.values())  # costs depend only on the hardware
    variants = item_variants(items, truth_of, kinds, seed, truth=truth)
    smallest = [min(min(o.peak_gb for o in v[k]) for v in variants) for k in range(len(kinds))]
    occupied: list[float] = []  # device-time
    paired: list[float] = []  # wall time at the best sharing
    alone: list[float] = []
    model_load: dict[str, float] = {}  # one cold load per model, at its cheapest
    per_item_kind: list[list[tuple[float, float]]] = []
    for item, per_kind in zip(items, variants, strict=True):
        best_paired = best_alone = float("inf")
        on_kind: list[tuple[float, float]] = []  # (work, load) at their cheapest on each kind
        fitting: list[tuple[float, float]] = []  # the same where the item fits the kind
        for k, (device, options) in enumerate(zip(kinds, per_kind, strict=True)):
            work = load = fit_work = fit_load = math.inf
            for runtime, warm_load, peak, cold_load, job, part_runtime in options:
                room = device.total_mem_gb - peak
                sharing = max(1, min(max_per_device, 1 + math.floor(room / smallest[k]) if smallest[k] > 0 else 1))
                share = min(1.0, colocation_slowdown(job, device, sharing) / sharing) if job.gpus == 1 else 1.0
                best_alone = min(best_alone, warm_load + part_runtime)
                work = min(work, runtime * share * job.gpus)
                best_paired = min(best_paired, (warm_load + part_runtime) * share)
                load = min(load, cold_load * share * job.gpus)
                if room >= 0:
                    fit_work, fit_load = min(fit_work, runtime * share * job.gpus), min(fit_load,
                                                                                        cold_load * share * job.gpus)
            on_kind.append((work, load))
            fitting.append((fit_work, fit_load))
        best_work, best_load = min(w for w, _ in on_kind), min(c for _, c in on_kind)
        # Across kinds an item counts only where it fits, unless it fits none (then it fails wherever it runs).
        per_item_kind.append(fitting if any(math.isfinite(w) for w, _ in fitting) else on_kind)
        occupied.append(best_work)
        paired.append(best_paired)
        alone.append(best_alone)
        model_load[item.model] = min(model_load.get(item.model, float("inf")), best_load)
    g = len(devices)
    ranked = sorted(alone, reverse=True)
    if len(kinds) > 1:
        counts = [sum(hardware_for(d) == hardware_for(kind) for d in devices) for kind in kinds]
        total = _mixed_total([i.model for i in items], per_item_kind, counts)
    else:
        total = (sum(occupied) + sum(model_load.values())) / g
    pair = 0.0
    if len(occupied) > g:
        # Two of the G+1 longest share a device: side by side, or one after the other.
        by_occupancy = sorted(paired, reverse=True)
        pair = by_occupancy[g - 1] + by_occupancy[g]
    return max(total, ranked[0], pair)


class Variant(NamedTuple):
    """One way an item may run under the truth: its batch or a halving of it, on some of its planned GPUs.

    Attributes:
        runtime_s: Its tasks' seconds, alone on the device, model loaded.
        warm_load_s: Its load from the page cache.
        peak_gb: Its true peak memory per device.
        cold_load_s: Its load from disk.
        job: The truth's job at this batch and GPU count.
        part_runtime_s: The seconds of its smallest part (one leaf's share of a group), or of all of it.
    """

    runtime_s: float
    warm_load_s: float
    peak_gb: float
    cold_load_s: float
    job: SimJob
    part_runtime_s: float


def item_variants(items: Sequence[WorkItem], truth_of: Callable[[WorkItem], SimJob], kinds: Sequence[DeviceSpec],
                  seed: int, *, truth: TruthConfig = DEFAULT_TRUTH) -> list[list[list[Variant]]]:
    """Per item and device kind, every way it may run that fits: at its batch and at every halving of it (OOM
    retries halve the batch), on 1 to its planned GPUs; at batch 1 on all its GPUs even where that does not fit
    (it then fails wherever it runs). The costs are the truth's, with the luck `simulate` draws for `seed`.

    Args:
        items: The items.
        truth_of: The truth behind an item.
        kinds: One device of each kind in the pool.
        seed: The seed `simulate` used.
        truth: The noise `simulate` used.
    """
    luck = str(seed)
    variants: list[list[list[Variant]]] = []
    for item in items:
        per_kind = []
        for device in kinds:
            options = []
            for gpus in range(1, max(1, item.gpus) + 1):
                job = truth_of(item)._replace(gpus=gpus)
                leaves = job.tasks[0].subtasks if len(job.tasks) == 1 and item.subtasks > 1 else 1
                while True:
                    cost = true_cost(job, device, 1, None, config=truth, warm=True, luck=luck)
                    if cost.peak_mem_gb <= device.total_mem_gb or (job.batch_size == 1 and gpus == item.gpus):
                        # The load's noise factor is the ratio of the noisy warm load to the noiseless one.
                        noise = cost.load_s / load_seconds(job, device, warm=True)
                        cold = load_seconds(job, device, warm=False) * noise
                        smallest_part = cost.runtime_s if leaves == 1 else true_cost(
                            job._replace(tasks=(part_task(job.tasks[0], 1 / leaves),)), device, 1, None,
                            config=truth, warm=True, luck=luck).runtime_s
                        options.append(Variant(cost.runtime_s, cost.load_s, cost.peak_mem_gb, cold, job, smallest_part))
                    if job.batch_size == 1:
                        break
                    job = job._replace(batch_size=job.batch_size // 2)
            per_kind.append(options)
        variants.append(per_kind)
    return variants


def _mixed_total(models: Sequence[str], costs: Sequence[Sequence[tuple[float, float]]], counts: Sequence[int]
                 ) -> float:
    """The total-work term on a pool of unlike kinds: the least T such that the items' work, each on a kind it fits,
    and one load per model, fit `counts[k]` devices of each kind k for T (a linear programme; an item may be split
    across kinds, so it bounds every real schedule, which splits none).

    Args:
        models: Each item's model.
        costs: Each item's (device-time of its work, of its model's cold load) per kind; inf where it does not fit.
        counts: Devices of each kind.
    """
    import numpy as np
    from scipy.optimize import linprog

    kinds = len(counts)
    names = sorted(set(models))
    loads = {(m, k): math.inf for m in names for k in range(kinds)}
    for model, per_kind in zip(models, costs, strict=True):
        for k, (_, load) in enumerate(per_kind):
            loads[model, k] = min(loads[model, k], load)
    # Variables: a share of each item on each kind it fits, a share of each model's load on each kind, then T.
    columns = [(0, i, k, work) for i, per_kind in enumerate(costs) for k, (work, _) in enumerate(per_kind)
               if math.isfinite(work)]
    columns += [(1, j, k, loads[m, k]) for j, m in enumerate(names) for k in range(kinds) if math.isfinite(loads[m, k])]
    n = len(columns) + 1
    a_eq = np.zeros((len(costs) + len(names), n))
    a_ub = np.zeros((kinds, n))
    for c, (what, index, k, cost) in enumerate(columns):
        a_eq[index if what == 0 else len(costs) + index, c] = 1.0
        a_ub[k, c] = cost
    a_ub[:, -1] = -np.asarray(counts, dtype=float)
    objective = np.zeros(n)
    objective[-1] = 1.0
    result = linprog(objective, A_ub=a_ub, b_ub=np.zeros(kinds), A_eq=a_eq, b_eq=np.ones(len(costs) + len(names)),
                     bounds=[(0.0, 1.0)] * (n - 1) + [(0.0, None)], method="highs")
    if not result.success:
        raise ValueError(f"the bound's linear programme failed: {result.message}")
    # HiGHS solves to a tolerance: a hair less keeps the bound a bound.
    return float(result.x[-1]) * (1 - 1e-7)
