"""What a plan should take: predicted makespan on the pool, its lower bound, the sequential time, per-device order.

Everything here is a prediction: the schedule replays the run's dispatcher (`DynamicLPT`) over predicted lengths
(`timeline.predicted_schedule`), the sequential time is the traditional run (one (model, task) per worker, one
device, each paying its model load), and the lower bound is the issue's LB over the finest (model, task) pairs:
max(total work with one load per model / devices, longest pair, G-th + (G+1)-th longest pair).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from spectrabench.hardware import DeviceSpec
from spectrabench.planning.dispatch import DynamicLPT
from spectrabench.planning.schedule import WorkItem
from spectrabench.planning.speeds import pool_rates
from spectrabench.planning.timeline import Placement, Pool, predicted_schedule


class PairCost(BaseModel):
    """One (model, task) pair's predicted cost alone: its model's load and its evaluation."""

    model: str
    load_s: float
    runtime_s: float
    subtasks: int = 1  # leaf tasks of an lm-eval group, which may run in as many parts (`planning.subtasks`)


class Slot(BaseModel):
    """One job on one device in the predicted schedule (a job split over k GPUs has a slot on each)."""

    job_key: str
    model: str
    tasks: list[str]
    device: str
    start_s: float
    end_s: float
    gpus: int = 1


class PlanOutlook(BaseModel):
    """The predicted run on a pool of devices."""

    devices: list[str]
    makespan_s: float
    lower_bound_s: float
    sequential_s: float
    speedup: float
    schedule: list[Slot]
    unplaced: list[str]
    # Small models may share GPUs in this schedule, which the bound (whole devices) does not credit.
    shares_gpus: bool = False


def lower_bound(pairs: Sequence[PairCost], n_devices: int, speeds: Sequence[float] = ()) -> float:
    """LB over the finest pairs: total work (one load per model) / devices, longest pair, G-th + (G+1)-th longest;
    for the last two a group counts as its smallest possible part (one leaf's share of its runtime).

    With `speeds` (each device's, where the pool mixes kinds) the total is over their sum and the other two terms
    run on the fastest device."""
    if not pairs:
        return 0.0
    capacity, fastest = (sum(speeds), max(speeds)) if speeds else (float(n_devices), 1.0)
    loads: dict[str, float] = {}
    for pair in pairs:
        loads[pair.model] = max(loads.get(pair.model, 0.0), pair.load_s)
    total = (sum(p.runtime_s for p in pairs) + sum(loads.values())) / capacity
    lengths = sorted((p.load_s + p.runtime_s / max(1, p.subtasks) for p in pairs), reverse=True)
    two = lengths[n_devices - 1] + lengths[n_devices] if len(lengths) > n_devices else 0.0
    return max(total, lengths[0] / fastest, two / fastest)


def plan_outlook(items: Sequence[WorkItem], pairs: Sequence[PairCost], devices: Sequence[DeviceSpec], *,
                 colocate: bool = False, speeds: Mapping[str, float] | None = None) -> PlanOutlook:
    """Predict the run of `items` (the plan's jobs) on `devices`.

    Args:
        items: The jobs as the dispatcher sees them, in plan order.
        pairs: Every (model, task) pair's own predicted cost, for the sequential time and the bound.
        devices: The pool (real devices, or a what-if pool from `simulate.specs.parse_pool`).
        colocate: Let jobs share a GPU where the dispatcher finds it pays, as an optimized run on the local
            backend does.
        speeds: In a pool that mixes kinds, each kind's speed relative to the first device, whose seconds the
            items and pairs are in (`planning.speeds`).
    """
    rates = pool_rates(devices, speeds)
    policy = DynamicLPT(n_devices=len(devices), colocate=colocate, pool=rates)
    schedule = predicted_schedule(items, [Pool(r.device_id, r.total_mem_gb, r.speed) for r in rates], policy)
    tasks = {item.key: list(item.tasks) for item in items}
    gpus = {item.key: item.gpus for item in items}
    sequential = sum(p.load_s + p.runtime_s for p in pairs)
    return PlanOutlook(
        devices=[d.id for d in devices], makespan_s=schedule.makespan_s,
        lower_bound_s=lower_bound(pairs, len(devices), [r.speed for r in rates] if speeds else ()),
        sequential_s=sequential,
        speedup=sequential / schedule.makespan_s if schedule.makespan_s > 0 else float("nan"),
        schedule=[Slot(job_key=p.key, model=p.model, tasks=tasks[p.key], device=p.device_id, start_s=p.start_s,
                       end_s=p.end_s, gpus=gpus[p.key]) for p in schedule.placements],
        unplaced=list(schedule.unplaced),
        shares_gpus=colocate and any(device_rows(schedule.placements)))


def device_rows(placements: Sequence[Placement | Slot]) -> list[int]:
    """Each placement's row on its device: 0, or the lowest row free when it starts while others still run there
    (1 and up only for jobs that share a GPU)."""
    ends: dict[str, list[float]] = {}
    rows = [0] * len(placements)
    for index in sorted(range(len(placements)), key=lambda i: placements[i].start_s):
        placement = placements[index]
        device = placement.device_id if isinstance(placement, Placement) else placement.device
        lane = ends.setdefault(device, [])
        row = next((r for r, end in enumerate(lane) if end <= placement.start_s + 1e-9), len(lane))
        if row == len(lane):
            lane.append(placement.end_s)
        else:
            lane[row] = placement.end_s
        rows[index] = row
    return rows
