"""Pools of unlike devices: a slow device leaves a job to a faster one only where it would end the run late."""

from __future__ import annotations

import pytest

from spectrabench.hardware import DeviceSpec
from spectrabench.planning.dispatch import DynamicLPT
from spectrabench.planning.schedule import SlotState, WorkItem
from spectrabench.planning.speeds import LATE_SLACK, DeviceRate, is_mixed, leave_to_faster, pool_rates
from spectrabench.planning.timeline import Pool, predicted_schedule


def item(key: str, runtime: float, mem: float = 10.0) -> WorkItem:
    return WorkItem(key=key, model=key, tasks=(key,), params_b=7.0, predicted_runtime_s=runtime,
                    predicted_load_s=0.0, predicted_mem_gb=mem)


def idle(device: str, total: float = 80.0) -> SlotState:
    return SlotState(device_id=device, total_mem_gb=total, free_mem_gb=total)


MIXED = [DeviceRate("fast", 80.0, 1.0), DeviceRate("slow", 80.0, 0.25)]


def test_leave_to_faster() -> None:
    # 100 s of reference work takes 200 s at half speed.
    assert not leave_to_faster(100.0, 0.5, fluid_left_s=200.0 / LATE_SLACK, faster=[(1.0, 0.0)]), "ends in time"
    assert leave_to_faster(100.0, 0.5, fluid_left_s=100.0, faster=[(1.0, 50.0)]), "the fast one ends it at 150 s"
    assert not leave_to_faster(100.0, 0.5, fluid_left_s=100.0, faster=[(1.0, 150.0)]), "the fast one: at 250 s"
    assert not leave_to_faster(100.0, 0.5, fluid_left_s=100.0, faster=[]), "no faster device can hold it"


def test_a_slow_device_leaves_the_longest_job_to_a_fast_one_and_takes_a_short_one() -> None:
    queue = [item("long", 100.0), item("short", 10.0), item("short2", 10.0)]
    policy = DynamicLPT(n_devices=2, pool=MIXED)
    # Fluid end: 120 s of work at 1.25 speed = 96 s; the long job would take 400 s here, 100 s on the idle fast one.
    assert policy.pick(queue, idle("slow"), 0.0) == queue[1]
    assert policy.pick([queue[0], queue[2]], idle("fast"), 0.0) == queue[0]
    # In a pool of one kind the same device takes the longest job, as longest-first dispatch does.
    for pool in ((), [DeviceRate("fast", 80.0), DeviceRate("slow", 80.0)]):
        assert DynamicLPT(n_devices=2, pool=pool).pick(queue, idle("slow"), 0.0) == queue[0]


def test_a_job_only_the_slow_device_can_hold_is_never_left() -> None:
    pool = [DeviceRate("fast", 24.0, 1.0), DeviceRate("slow", 80.0, 0.25)]
    queue = [item("big", 100.0, mem=40.0), item("small", 10.0)]
    assert DynamicLPT(n_devices=2, pool=pool).pick(queue, idle("slow"), 0.0) == queue[0]


def test_the_predicted_schedule_runs_each_device_at_its_speed() -> None:
    items = [item("long", 100.0), item("short", 10.0), item("short2", 10.0)]
    pool = [Pool(r.device_id, r.total_mem_gb, r.speed) for r in MIXED]
    schedule = predicted_schedule(items, pool, DynamicLPT(n_devices=2, pool=MIXED))
    ends = {p.key: (p.device_id, p.end_s) for p in schedule.placements}
    assert ends["long"] == ("fast", pytest.approx(100.0))
    assert {ends["short"][0], ends["short2"][0]} == {"slow"}, "the slow device keeps the short jobs"
    assert ends["short"][1] == pytest.approx(40.0) and ends["short2"][1] == pytest.approx(80.0)
    assert schedule.makespan_s == pytest.approx(100.0)
    # Without speeds the same policy would have put the long job on whichever device asked first.
    assert predicted_schedule(items, pool[::-1], DynamicLPT(n_devices=2, pool=MIXED)).makespan_s == pytest.approx(
        100.0)


def test_pool_rates() -> None:
    a100, l4 = (DeviceSpec(id=i, kind="cuda", index=n, name=name, total_mem_gb=mem, free_mem_gb=mem)
                for n, (i, name, mem) in enumerate([("a", "A100-80GB", 80.0), ("b", "L4-24GB", 22.5)]))
    rates = pool_rates([a100, l4], {"L4-24GB": 0.4})
    assert rates == [DeviceRate("a", 80.0, 1.0, "A100-80GB"), DeviceRate("b", 22.5, 0.4, "L4-24GB")] and is_mixed(rates)
    assert not is_mixed(pool_rates([a100], {}))
