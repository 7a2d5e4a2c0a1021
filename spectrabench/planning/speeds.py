"""Pools of unlike devices (e.g. `2xA100-80GB,4xL4-24GB`): how fast each device runs a job, and when a slow device
should leave a job to a faster one.

Predictions are made for one reference device. Every device has a speed relative to it: a job predicted at L
seconds takes L / speed there. Longest-first dispatch alone would hand the longest job to whichever device frees
first, and on an L4 a job that an A100 runs in 10 hours takes 26: the run ends when that job does. So a device
that is slower than another able to hold the job starts it only when it is not the cause of a late end:
- it finishes the job no later than `LATE_SLACK` times the time the whole pool would need for the work left
  working together (the fluid end: work queued and running, over the sum of speeds), or
- no faster device able to hold it would finish it sooner, even after what it runs now.
Otherwise the job waits for a faster device and the slow one looks at shorter jobs, which cost it less extra time.
In a pool of one kind every speed is 1 and nothing here changes a choice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from spectrabench.hardware import DeviceSpec
from spectrabench.planning.placement import per_device_mem_gb
from spectrabench.planning.schedule import WorkItem

# How far past the fluid end a slow device may still finish a job it starts. Predictions err, and a device left
# idle loses time for certain where a late end is only predicted: in the simulator (`compare --simulate`, 20 seeds,
# standard and extended on 2xA100-80GB,4xL4-24GB and standard on 4xH100-80GB,4xA100-40GB, noise 0.2 and 0.5) the
# mean speed-up over sequential was 3.73x never leaving a job, 3.75x at 1.0, 3.83x at 1.15, 3.80x at 1.3,
# 3.77x at 1.5.
LATE_SLACK = 1.2


class DeviceRate(NamedTuple):
    """One device of a pool as a scheduler weighs it: its memory, its speed relative to the reference device that
    predictions are made for, and its card's name (`DeviceSpec.name`; "" where unknown)."""

    device_id: str
    total_mem_gb: float
    speed: float = 1.0
    name: str = ""


def is_mixed(pool: Sequence[DeviceRate]) -> bool:
    """Whether the pool's devices run at different speeds."""
    return len({rate.speed for rate in pool}) > 1


def earliest_finish(free: Sequence[float], length_s: float, mem_gb: float, pool: Sequence[DeviceRate]) -> int:
    """The index of the device of `pool` that finishes a job of `length_s` reference seconds first, each starting
    it when it is `free`, among those whose memory holds `mem_gb` (all of them when none does)."""
    able = [d for d, rate in enumerate(pool) if rate.total_mem_gb >= mem_gb] or list(range(len(pool)))
    return min(able, key=lambda d: (free[d] + length_s / pool[d].speed, d))


def assign(free: list[float], length_s: float, mem_gb: float, pool: Sequence[DeviceRate],
           runs_s: float | None = None) -> int:
    """Put a job of `length_s` predicted reference seconds on the device `earliest_finish` picks, move that
    device's `free` time on by its run there (`runs_s` reference seconds, default `length_s`, at its speed), and
    return the device's index."""
    device = earliest_finish(free, length_s, mem_gb, pool)
    free[device] += (length_s if runs_s is None else runs_s) / pool[device].speed
    return device


def pool_rates(devices: Sequence[DeviceSpec], speeds: Mapping[str, float] | None) -> list[DeviceRate]:
    """The `DeviceRate` of each device, its speed that of its kind (`DeviceSpec.name`) in `speeds` (1.0 where the
    kind is not listed)."""
    return [DeviceRate(d.id, d.total_mem_gb, (speeds or {}).get(d.name, 1.0), d.name) for d in devices]


def fastest_first(devices: Sequence[DeviceSpec], speeds: Mapping[str, float]
                  ) -> tuple[list[DeviceSpec], dict[str, float]]:
    """The pool with its fastest kind first (listing order otherwise kept), and each kind's speed relative to it.

    Predictions are in the first device's seconds and the sequential baseline runs on it: putting the fastest card
    first makes a plan the same however the user lists the pool, and its speed-up one over the best single card.
    """
    if not speeds:
        return list(devices), {}
    top = max(speeds.get(d.name, 1.0) for d in devices)
    ordered = sorted(devices, key=lambda d: -speeds.get(d.name, 1.0))
    return ordered, {kind: speed / top for kind, speed in speeds.items()}


def leave_to_faster(length_s: float, speed: float, fluid_left_s: float,
                    faster: Sequence[tuple[float, float]]) -> bool:
    """Whether a device of `speed` should leave a job of `length_s` (reference seconds) to a faster device.

    Args:
        length_s: The job's predicted length on the reference device.
        speed: The asking device's speed.
        fluid_left_s: When the pool would finish the work left if it were spread evenly by speed.
        faster: (speed, seconds until it is free) of each faster device able to hold the job.
    """
    here = length_s / speed
    if here <= fluid_left_s * LATE_SLACK:
        return False
    return any(busy_s + length_s / other < here for other, busy_s in faster)


def slow_device_rule(device_id: str, rates: Mapping[str, DeviceRate],
                     running: Sequence[tuple[WorkItem, str, float, float]], queued_s: float,
                     now: float) -> Callable[[WorkItem, float], bool] | None:
    """Whether the device `device_id` should leave an item (of a given corrected length, in reference seconds) to a
    faster device, as `leave_to_faster` decides it from what runs where now; None when no device is faster.

    Args:
        device_id: The asking device.
        rates: Every device of the pool, by id.
        running: (item, device id, its corrected length in reference seconds, start) of each running item.
        queued_s: The corrected length of everything queued, in reference seconds.
        now: The time the starts are measured on.
    """
    rate = rates[device_id]
    faster = [r for r in rates.values() if r.speed > rate.speed]
    if not faster:
        return None
    busy: dict[str, float] = {}  # device -> seconds until it is free
    running_s = 0.0  # reference seconds left of every running item
    for item, device, length_s, start in running:
        speed = rates[device].speed if device in rates else 1.0
        gpus = max(1, item.gpus)
        left = max(0.0, length_s / gpus - (now - start) * speed)
        running_s += left * gpus
        busy[device] = max(busy.get(device, 0.0), left / speed)
    fluid_s = (queued_s + running_s) / sum(r.speed for r in rates.values())

    def leave(item: WorkItem, corrected_s: float) -> bool:
        mem = per_device_mem_gb(item)
        able = [(r.speed, busy.get(r.device_id, 0.0)) for r in faster if r.total_mem_gb >= mem]
        return bool(able) and leave_to_faster(corrected_s / max(1, item.gpus), rate.speed, fluid_s, able)

    return leave
