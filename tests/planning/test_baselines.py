"""Baselines behave as named, and our grouping + dispatch beats them on the same event loop."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from spectrabench.errors import UserError
from spectrabench.planning.baselines import POLICY_NAMES, PerModel, RoundRobin, Sequential, make_policy
from spectrabench.planning.dispatch import DynamicLPT
from spectrabench.planning.grouping import group_jobs
from spectrabench.planning.schedule import Policy, SlotState, WorkItem
from tests.planning.test_dispatch import item, run_schedule

DEVICES = [("cuda:0", 80.0), ("cuda:1", 80.0)]


def trace(policy: Policy, items: Sequence[WorkItem], devices: Sequence[tuple[str, float]] = DEVICES,
          check_memory: bool = True) -> list[tuple[str, str, int]]:
    """(device, key, items already running there) for every start, in order."""
    starts: list[tuple[str, str, int]] = []

    def record(queue: Sequence[WorkItem], state: SlotState, now: float, chosen: WorkItem | None) -> None:
        if chosen is not None:
            starts.append((state.device_id, chosen.key, len(state.running)))

    run_schedule(policy, items, devices, on_pick=record, check_memory=check_memory)
    return starts


def profile_items() -> list[WorkItem]:
    """Profile order (models outer, tasks inner), lengths that LPT would reorder."""
    return [item(f"{m}/{t}", model=m, runtime=r) for m, runtimes in [("a", [5, 50]), ("b", [500, 7]), ("c", [60])]
            for t, r in enumerate(runtimes)]


def test_sequential_runs_one_item_at_a_time_on_the_first_device_in_profile_order() -> None:
    items = profile_items()
    starts = trace(Sequential(), items)
    assert [key for _, key, _ in starts] == [i.key for i in items]
    assert {device for device, _, _ in starts} == {"cuda:0"}
    assert all(sharing == 0 for _, _, sharing in starts)


def test_per_model_finishes_a_model_before_the_next_on_one_device() -> None:
    interleaved = [item("a/0", model="a"), item("b/0", model="b"), item("a/1", model="a"), item("b/1", model="b")]
    starts = trace(PerModel(), interleaved)
    assert [key for _, key, _ in starts] == ["a/0", "a/1", "b/0", "b/1"]
    assert {device for device, _, _ in starts} == {"cuda:0"}
    assert all(sharing == 0 for _, _, sharing in starts)


def test_round_robin_fills_every_idle_device_in_profile_order_without_memory_checks() -> None:
    items = profile_items()
    starts = trace(RoundRobin(), items)
    assert [key for _, key, _ in starts] == [i.key for i in items]
    assert {device for device, _, _ in starts} == {"cuda:0", "cuda:1"}
    assert all(sharing == 0 for _, _, sharing in starts)
    too_big = [item("huge", mem=120.0)]
    assert trace(RoundRobin(), too_big, check_memory=False) == [("cuda:0", "huge", 0)]


def test_make_policy() -> None:
    assert [make_policy(name).name for name in POLICY_NAMES] == list(POLICY_NAMES)
    assert POLICY_NAMES[0] == "ours"
    with pytest.raises(UserError, match="round-robin"):
        make_policy("round-robbin")


@pytest.mark.parametrize(("n_devices", "speedup"), [(2, 1.9), (8, 7.0)])
def test_ours_beats_the_baselines(n_devices: int, speedup: float) -> None:
    rng = random.Random(n_devices)
    by_model: dict[str, list[WorkItem]] = {}
    for m in range(13):
        size = rng.choice([0.5, 1.0, 7.0, 13.0])
        by_model[f"m{m}"] = [item(f"m{m}/t{t}", model=f"m{m}", runtime=size * rng.uniform(5, 60), load=20 + 4 * size,
                                  mem=2 + 1.5 * size, params_b=size) for t in range(10)]
    pairs = [i for items in by_model.values() for i in items]
    # ~20% prediction error per (model, task); a group's is its tasks', the same under any grouping.
    actual = {i.key: i.predicted_runtime_s * rng.lognormvariate(0, 0.2) for i in pairs}

    def ratio(work: WorkItem) -> float:  # `item` names each pair's only task after its key
        return sum(actual[t] for t in work.tasks) / work.predicted_runtime_s

    devices = [(f"cuda:{d}", 80.0) for d in range(n_devices)]
    sequential = run_schedule(Sequential(), pairs, devices, ratio=ratio)
    round_robin = run_schedule(RoundRobin(), pairs, devices, ratio=ratio, check_memory=False)
    ours = run_schedule(DynamicLPT(n_devices=n_devices), group_jobs(by_model, n_devices), devices, ratio=ratio)
    print(f"{n_devices} devices: sequential / ours = {sequential.makespan / ours.makespan:.2f}, "
          f"round-robin / ours = {round_robin.makespan / ours.makespan:.2f}, loads {ours.loads}")
    assert sequential.makespan / ours.makespan >= speedup
    assert ours.makespan < round_robin.makespan
    assert ours.loads <= 1.1 * (len(by_model) + n_devices)
