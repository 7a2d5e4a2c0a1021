"""What a plan should take: predicted makespan on the pool, its lower bound, the sequential time, per-device order.

Everything here is a prediction: the schedule replays the run's dispatcher (`DynamicLPT`) over predicted lengths
(`timeline.predicted_schedule`), the sequential time is the traditional run (one (model, task) per worker, one
device, each paying its model load), and the lower bound is the issue's LB over the finest (model, task) pairs:
max(total work with one load per model / devices, longest pair, G-th + (G+1)-th longest pair).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from spectrabench.hardware import DeviceSpec
from spectrabench.planning.dispatch import DynamicLPT
from spectrabench.planning.schedule import WorkItem
from spectrabench.planning.timeline import Placement, Pool, predicted_schedule


class PairCost(BaseModel):
    """One (model, task) pair's predicted cost alone: its model's load and its evaluation."""

    model: str
    load_s: float
    runtime_s: float


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


def lower_bound(pairs: Sequence[PairCost], n_devices: int) -> float:
    """LB over the finest pairs: total work (one load per model) / devices, longest pair, G-th + (G+1)-th longest."""
    if not pairs:
        return 0.0
    loads: dict[str, float] = {}
    for pair in pairs:
        loads[pair.model] = max(loads.get(pair.model, 0.0), pair.load_s)
    total = (sum(p.runtime_s for p in pairs) + sum(loads.values())) / n_devices
    lengths = sorted((p.load_s + p.runtime_s for p in pairs), reverse=True)
    two = lengths[n_devices - 1] + lengths[n_devices] if len(lengths) > n_devices else 0.0
    return max(total, lengths[0], two)


def plan_outlook(items: Sequence[WorkItem], pairs: Sequence[PairCost], devices: Sequence[DeviceSpec], *,
                 colocate: bool = False) -> PlanOutlook:
    """Predict the run of `items` (the plan's jobs) on `devices`.

    Args:
        items: The jobs as the dispatcher sees them, in plan order.
        pairs: Every (model, task) pair's own predicted cost, for the sequential time and the bound.
        devices: The pool (real devices, or a what-if pool from `simulate.specs.parse_pool`).
        colocate: Let jobs share a GPU where the dispatcher finds it pays, as an optimized run on the local
            backend does.
    """
    policy = DynamicLPT(n_devices=len(devices), colocate=colocate)
    schedule = predicted_schedule(items, [Pool(d.id, d.total_mem_gb) for d in devices], policy)
    tasks = {item.key: list(item.tasks) for item in items}
    gpus = {item.key: item.gpus for item in items}
    sequential = sum(p.load_s + p.runtime_s for p in pairs)
    return PlanOutlook(
        devices=[d.id for d in devices], makespan_s=schedule.makespan_s,
        lower_bound_s=lower_bound(pairs, len(devices)), sequential_s=sequential,
        speedup=sequential / schedule.makespan_s if schedule.makespan_s > 0 else float("nan"),
        schedule=[Slot(job_key=p.key, model=p.model, tasks=tasks[p.key], device=p.device_id, start_s=p.start_s,
                       end_s=p.end_s, gpus=gpus[p.key]) for p in schedule.placements],
        unplaced=list(schedule.unplaced), shares_gpus=colocate and _any_overlap(schedule.placements))


def _any_overlap(placements: Sequence[Placement]) -> bool:
    """Whether two jobs run on one device at the same time anywhere in the schedule."""
    by_device: dict[str, list[tuple[float, float]]] = {}
    for p in placements:
        by_device.setdefault(p.device_id, []).append((p.start_s, p.end_s))
    return any(later[0] < earlier[1] - 1e-9 for spans in by_device.values()
               for earlier, later in zip(sorted(spans), sorted(spans)[1:], strict=False))
