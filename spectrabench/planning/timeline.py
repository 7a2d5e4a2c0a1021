"""The predicted schedule: where and when every job would run if every prediction came true.

`predicted_schedule` replays a policy (normally `DynamicLPT`) on a pool, over predicted lengths only: whenever a
device can take more work, the policy is asked what to start there, with a `SlotState` whose free memory is the
device's total minus the predicted peaks of what runs on it. A job lasts its predicted load (none when the device
ran the same model just before) plus its predicted runtime, over the device's speed (`Pool.speed`: 1 unless the
pool mixes kinds); jobs sharing a device all progress at `1 / placement.colocation_slowdown(k)` of their speed alone
while k of them run. A job split over k devices
starts only while k devices of one size are idle (`placement.offerable`), and holds them all. Pure: no clock, no
I/O, the same input gives the same schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from spectrabench.planning.placement import colocation_slowdown, offerable, per_device_mem_gb
from spectrabench.planning.schedule import Policy, SlotState, WorkItem

_DONE_EPS = 1e-9


class Pool(NamedTuple):
    """One device as the predicted schedule sees it: a job predicted at L seconds takes L / speed there."""

    device_id: str
    total_mem_gb: float
    speed: float = 1.0


class Placement(NamedTuple):
    """One job in the predicted schedule."""

    key: str
    model: str
    device_id: str
    start_s: float
    end_s: float
    sharing: int  # jobs on the device when it started, itself included


class PredictedSchedule(NamedTuple):
    """Every placed job in start order, the predicted makespan, and the keys the policy never started."""

    placements: list[Placement]
    makespan_s: float
    unplaced: tuple[str, ...]


@dataclass
class _Device:
    spec: Pool
    running: dict[str, list[float]] = field(default_factory=dict)  # key -> [solo seconds left]
    items: dict[str, WorkItem] = field(default_factory=dict)
    last_model: str | None = None


def predicted_schedule(items: Sequence[WorkItem], devices: Sequence[Pool], policy: Policy) -> PredictedSchedule:
    """Replay `policy` on `devices` over predicted lengths until it starts nothing more (see the module docstring).

    Args:
        items: The queue, in the order the policy first sees it (profile order); keys must be unique.
        devices: The pool.
        policy: Decides what starts where; `observe` hears each job's predicted runtime as it ends.

    Raises:
        ValueError: Keys repeat, or the pool is empty.
    """
    if len({i.key for i in items}) != len(items):
        raise ValueError("item keys must be unique")
    if not devices:
        raise ValueError("the pool has no devices")
    pool = [_Device(d) for d in devices]
    queue = {item.key: item for item in items}
    view: list[WorkItem] | None = None
    placements: list[Placement] = []
    started: dict[str, list[int]] = {}  # key -> indexes in placements (one per device it holds)
    sharded = sum(item.gpus > 1 for item in items)  # while any is queued, the policy sees only what can start
    now = 0.0
    while True:
        for device in pool:
            if any(i.gpus > 1 for i in device.items.values()):
                continue  # a job split over several devices owns them
            while queue:
                partners = [] if device.running else [d for d in pool if d is not device and not d.running
                                                      and d.spec.total_mem_gb == device.spec.total_mem_gb]
                if sharded:
                    view = offerable(list(queue.values()), len(partners))
                elif view is None:
                    view = list(queue.values())
                used = sum(per_device_mem_gb(i) for i in device.items.values())
                slot = SlotState(device_id=device.spec.device_id, total_mem_gb=device.spec.total_mem_gb,
                                 free_mem_gb=device.spec.total_mem_gb - used, running=tuple(device.running),
                                 last_model=device.last_model)
                chosen = policy.pick(view, slot, now)
                if chosen is None:
                    break
                if queue.pop(chosen.key, None) is None:
                    raise ValueError(f"policy {policy.name!r} picked '{chosen.key}', which is not queued")
                view = None
                load = 0.0 if device.last_model == chosen.model else chosen.predicted_load_s
                for held in [device, *partners[:chosen.gpus - 1]]:
                    held.running[chosen.key] = [load + chosen.predicted_runtime_s]
                    held.items[chosen.key] = chosen
                    held.last_model = chosen.model
                    started.setdefault(chosen.key, []).append(len(placements))
                    placements.append(Placement(chosen.key, chosen.model, held.spec.device_id, now, now,
                                                len(held.running)))
                if chosen.gpus > 1:
                    sharded -= 1
                    break
        busy = [d for d in pool if d.running]
        if not busy:
            break
        # Next end: the job with the least solo work left on its device, at that device's shared speed.
        step = min(min(left[0] for left in d.running.values()) * colocation_slowdown(len(d.running)) / d.spec.speed
                   for d in busy)
        now += step
        ended: dict[str, WorkItem] = {}
        for device in busy:
            rate = device.spec.speed / colocation_slowdown(len(device.running))
            for key, left in list(device.running.items()):
                left[0] -= step * rate
                if left[0] <= _DONE_EPS * max(1.0, now):
                    del device.running[key]
                    ended[key] = device.items.pop(key)
                    for index in started[key]:
                        placements[index] = placements[index]._replace(end_s=now)
        for item in ended.values():  # a sharded job ends on all its devices, and is observed once
            policy.observe(item, item.predicted_runtime_s)
    return PredictedSchedule(placements, max((p.end_s for p in placements), default=0.0), tuple(queue))
