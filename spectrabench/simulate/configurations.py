"""The makespan bound for schedules that keep some models apart: a linear programme over device configurations.

`bound.lower_bound` credits every item with its best sharing, as if partners that fit beside it were always at
hand. This bound asks instead which sets of jobs can really run together on one device: at most `max_per_device`
of them, their smallest true peaks within its memory, and, under a co-location rule, no two models above a size.
It then finds the least time the pool needs when each device runs such sets one after another and every model's
work is done at the speeds the truth gives each job in each set (`truth.colocation_slowdown`).

A schedule of whole jobs is one such sequence of sets, so none that obeys the rule ends sooner, even told the truth.
Kept apart above 7B (the large-model mix of `benchmarks/colocation.py`, where co-location must do nothing), it says
how close to `lower_bound` such a schedule can come at all: the part of the gap no dispatcher can close.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

from spectrabench.hardware import DeviceSpec
from spectrabench.planning.schedule import WorkItem
from spectrabench.simulate.bound import item_variants
from spectrabench.simulate.specs import hardware_for
from spectrabench.simulate.truth import DEFAULT_TRUTH, SimJob, TruthConfig, colocation_slowdown


def configuration_bound(items: Sequence[WorkItem], truth_of: Callable[[WorkItem], SimJob],
                        devices: Sequence[DeviceSpec], seed: int, *, truth: TruthConfig = DEFAULT_TRUTH,
                        max_per_device: int = 4, apart_above_b: float | None = None) -> float:
    """The least makespan of any schedule that never puts two jobs of models above `apart_above_b` billion
    parameters on one device (None: no such rule), on a pool of one kind of device.

    Each item counts at its cheapest way to run (`bound.item_variants`: its batch or a halving, on one GPU or its
    planned ones), each model one cold load, and every job of a model fits beside others with the smallest peak
    any of its items has: all in the schedule's favour, so the bound stays a bound. An item planned over several
    GPUs that fits none alone shares nothing. Only the total-work side of the makespan is bounded here: take the
    larger of this and `lower_bound` for the whole bound.

    Args:
        items: The items that must run.
        truth_of: The truth behind an item.
        devices: The pool, every device of one kind.
        seed: The seed `simulate` used.
        truth: The noise `simulate` used.
        max_per_device: The sharing cap `simulate` used.
        apart_above_b: Models above this size never share a device with each other (nor with a second worker of
            their own); 0 keeps every job alone.

    Raises:
        ValueError: The pool mixes kinds of device, or the linear programme fails.
    """
    if not items:
        return 0.0
    kinds = list({hardware_for(d): d for d in devices}.values())
    if len(kinds) > 1:
        raise ValueError("the configuration bound takes a pool of one kind of device")
    device = kinds[0]
    work: dict[str, float] = {}  # each model's shareable work, alone, in seconds
    peak: dict[str, float] = {}  # the least memory one of its jobs holds
    job_of: dict[str, SimJob] = {}
    load: dict[str, float] = {}  # one cold load per model, at its cheapest
    fixed = 0.0  # device-time of items that share nothing (split over GPUs)
    for item, per_kind in zip(items, item_variants(items, truth_of, kinds, seed, truth=truth), strict=True):
        options = per_kind[0]
        cheapest = min(o.runtime_s * o.job.gpus for o in options)
        load[item.model] = min(load.get(item.model, math.inf), min(o.cold_load_s * o.job.gpus for o in options))
        single = [o for o in options if o.job.gpus == 1]
        if not single:
            fixed += cheapest
            continue
        work[item.model] = work.get(item.model, 0.0) + cheapest
        peak[item.model] = min(peak.get(item.model, math.inf), min(o.peak_gb for o in single))
        job_of[item.model] = single[0].job
    for model, seconds in load.items():
        if model in work:
            work[model] += seconds
        else:
            fixed += seconds
    return _least_makespan(work, peak, job_of, device, len(devices), fixed, max_per_device, apart_above_b)


def _least_makespan(work: dict[str, float], peak: dict[str, float], job_of: dict[str, SimJob], device: DeviceSpec,
                    n_devices: int, fixed_s: float, max_per_device: int, apart_above_b: float | None) -> float:
    """min T such that device-seconds x_c in each allowed set c do every model's work and, with `fixed_s`, fit
    `n_devices` x T."""
    import numpy as np
    from scipy.optimize import linprog
    from scipy.sparse import lil_matrix

    models = sorted(work)
    if not models:
        return fixed_s / n_devices

    def big(index: int) -> bool:
        return apart_above_b is not None and job_of[models[index]].params_b > apart_above_b

    sets = [combo for k in range(1, max(1, max_per_device) + 1)
            for combo in itertools.combinations_with_replacement(range(len(models)), k)
            if k == 1 or (sum(peak[models[i]] for i in combo) <= device.total_mem_gb
                          and sum(big(i) for i in combo) <= 1)]
    # Variables: device-seconds in each set, then T. Rows: each model's progress (>= its work), then the pool's time.
    n = len(sets) + 1
    a_ub = lil_matrix((len(models) + 1, n))
    for column, combo in enumerate(sets):
        for index in set(combo):
            a_ub[index, column] = -combo.count(index) / colocation_slowdown(job_of[models[index]], device, len(combo))
        a_ub[len(models), column] = 1.0
    a_ub[len(models), n - 1] = -float(n_devices)
    b_ub = np.array([-work[m] for m in models] + [-fixed_s])
    objective = np.zeros(n)
    objective[-1] = 1.0
    result = linprog(objective, A_ub=a_ub.tocsr(), b_ub=b_ub, bounds=[(0.0, None)] * n, method="highs")
    if not result.success:
        raise ValueError(f"the configuration bound's linear programme failed: {result.message}")
    # HiGHS solves to a tolerance: a hair less keeps the bound a bound.
    return float(result.x[-1]) * (1 - 1e-7)
