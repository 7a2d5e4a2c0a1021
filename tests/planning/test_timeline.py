"""The predicted schedule: memory never overcommitted by predictions, sharing for small models (and one mid-size
model beside them) where it pays, the same schedule for the same input, and grouping for co-location."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import pytest

from spectrabench.planning.dispatch import DynamicLPT
from spectrabench.planning.grouping import group_jobs
from spectrabench.planning.placement import (
    MAX_SHARING,
    MID_MODEL_B,
    SMALL_MODEL_B,
    jobs_per_device,
    per_device_mem_gb,
)
from spectrabench.planning.schedule import WorkItem
from spectrabench.planning.speeds import DeviceRate
from spectrabench.planning.timeline import Placement, Pool, PredictedSchedule, predicted_schedule

POOL = [Pool(f"cuda:{d}", 80.0) for d in range(4)]


def pairs(n_models: int, n_tasks: int, sizes: Sequence[float], seed: int = 0) -> list[WorkItem]:
    """(model, task) items: memory grows with the model, runtimes and loads vary."""
    rng = random.Random(seed)
    items = []
    for m in range(n_models):
        size = sizes[m % len(sizes)]
        for t in range(n_tasks):
            items.append(WorkItem(key=f"m{m}/t{t}", model=f"m{m}", tasks=(f"t{t}",), params_b=size,
                                  predicted_runtime_s=rng.uniform(60, 3600), predicted_load_s=10 + 3 * size,
                                  predicted_mem_gb=min(75.0, 2.2 * size + rng.uniform(1, 25))))
    return items


def plan(items: list[WorkItem], pool: Sequence[Pool] = POOL, colocate: bool = True) -> PredictedSchedule:
    by_model: dict[str, list[WorkItem]] = {}
    for item in items:
        by_model.setdefault(item.model, []).append(item)
    per_device = jobs_per_device(items, pool[0].total_mem_gb) if colocate else 1.0
    jobs = group_jobs(by_model, len(pool), jobs_per_device=per_device)
    return predicted_schedule(jobs, pool, DynamicLPT(n_devices=len(pool), colocate=colocate))


def peak_predicted_gb(schedule: PredictedSchedule, mem: dict[str, float]) -> dict[str, float]:
    """The largest sum of predicted peaks running at once on each device (ends before starts at one instant)."""
    worst: dict[str, float] = {}
    by_device: dict[str, list[Placement]] = {}
    for p in schedule.placements:
        by_device.setdefault(p.device_id, []).append(p)
    for device, placements in by_device.items():
        events = sorted([(p.start_s, 1, p.key) for p in placements] + [(p.end_s, -1, p.key) for p in placements])
        used = 0.0
        for _, step, key in events:
            used += step * mem[key]
            worst[device] = max(worst.get(device, 0.0), used)
    return worst


@pytest.mark.parametrize("seed", range(6))
def test_co_location_never_overcommits_a_device_by_predictions(seed: int) -> None:
    items = pairs(14, 12, sizes=[0.5, 1.0, 1.5, 3.0, 8.0, 13.0], seed=seed)
    schedule = plan(items)
    assert not schedule.unplaced
    # A job's predicted peak is the largest of its tasks': read it off the same grouping `plan` made.
    by_model: dict[str, list[WorkItem]] = {}
    for item in items:
        by_model.setdefault(item.model, []).append(item)
    grouped = group_jobs(by_model, len(POOL), jobs_per_device=jobs_per_device(items, 80.0))
    mem = {job.key: per_device_mem_gb(job) for job in grouped}
    assert set(mem) == {p.key for p in schedule.placements}
    assert max(p.sharing for p in schedule.placements) >= 2, "small models with work queued should share"
    for device, peak in peak_predicted_gb(schedule, mem).items():
        assert peak <= 80.0 + 1e-9, f"{device} holds {peak:.1f} GB of predicted peaks"


def test_small_models_share_beside_one_mid_size_model_at_most_and_never_more_than_max_sharing() -> None:
    items = pairs(16, 10, sizes=[0.5, 2.0, 7.0, 13.0], seed=3)
    schedule = plan(items)
    size = {item.model: item.params_b for item in items}
    for p in schedule.placements:
        assert p.sharing <= MAX_SHARING
        if p.sharing > 1:
            assert size[p.model] <= MID_MODEL_B
    mid_size = [p for p in schedule.placements if size[p.model] > SMALL_MODEL_B]
    small = [p for p in schedule.placements if size[p.model] <= SMALL_MODEL_B]

    def together(a: Placement, b: Placement) -> bool:
        return a.device_id == b.device_id and a.start_s < b.end_s and b.start_s < a.end_s

    assert not any(together(a, b) for a, b in itertools.combinations(mid_size, 2))
    assert any(together(a, b) for a in mid_size for b in small), "a 7B job should take small ones beside it"


def test_a_large_model_mix_is_planned_exactly_as_without_co_location() -> None:
    items = pairs(12, 10, sizes=[7.0, 8.0, 13.0, 32.0], seed=4)
    assert jobs_per_device(items, 80.0) == 1.0
    colocated, whole = plan(items), plan(items, colocate=False)
    assert all(p.sharing == 1 for p in colocated.placements)
    assert colocated == whole


def test_co_location_shortens_a_small_model_plan_under_its_own_slowdown_model() -> None:
    items = pairs(20, 12, sizes=[0.5, 1.0, 1.5, 2.5], seed=5)
    colocated, whole = plan(items), plan(items, colocate=False)
    assert colocated.makespan_s < 0.9 * whole.makespan_s


def test_the_same_input_gives_the_same_plan() -> None:
    items = pairs(10, 8, sizes=[0.5, 3.0, 8.0], seed=6)
    first, second = plan(items), plan(list(items))
    assert first == second
    assert sorted(p.key for p in first.placements) == sorted(p.key for p in second.placements)


def test_every_item_runs_once_and_what_never_fits_is_left_unplaced() -> None:
    items = pairs(3, 4, sizes=[1.0])
    huge = WorkItem(key="huge/t0", model="huge", tasks=("t0",), params_b=70.0, predicted_runtime_s=100.0,
                    predicted_load_s=10.0, predicted_mem_gb=140.0)
    schedule = predicted_schedule([*items, huge], POOL, DynamicLPT(n_devices=len(POOL)))
    assert sorted(p.key for p in schedule.placements) == sorted(i.key for i in items)
    assert schedule.unplaced == ("huge/t0",)
    assert all(p.end_s > p.start_s for p in schedule.placements)
    with pytest.raises(ValueError, match="unique"):
        predicted_schedule([items[0], items[0]], POOL, DynamicLPT())


def test_grouping_for_shared_slots_cuts_finer_pieces() -> None:
    items = pairs(8, 12, sizes=[0.5, 1.0], seed=7)
    by_model: dict[str, list[WorkItem]] = {}
    for item in items:
        by_model.setdefault(item.model, []).append(item)
    whole = group_jobs(by_model, 4)
    assert group_jobs(by_model, 4, jobs_per_device=1.0) == whole
    shared = group_jobs(by_model, 4, jobs_per_device=MAX_SHARING)
    assert len(shared) > len(whole)
    with pytest.raises(ValueError, match="at least one job"):
        group_jobs(by_model, 4, jobs_per_device=0.5)


def test_a_sharded_job_starts_only_when_its_devices_are_idle_together_and_holds_them_all() -> None:
    pool = [Pool(f"cuda:{d}", 24.0) for d in range(3)]
    big = WorkItem(key="big/t", model="big", tasks=("t",), params_b=13.0, gpus=2, predicted_runtime_s=1000.0,
                   predicted_load_s=10.0, predicted_mem_gb=2 * 20.0)
    small = [WorkItem(key=f"s{i}/t", model=f"s{i}", tasks=("t",), params_b=1.0, predicted_runtime_s=300.0 * (i + 1),
                      predicted_load_s=5.0, predicted_mem_gb=4.0) for i in range(4)]
    schedule = predicted_schedule([*small, big], pool, DynamicLPT(n_devices=3, colocate=False))
    held = [p for p in schedule.placements if p.key == "big/t"]
    assert len(held) == 2 and len({p.device_id for p in held}) == 2
    assert len({(p.start_s, p.end_s) for p in held}) == 1
    start, end = held[0].start_s, held[0].end_s
    # Nothing else runs on its devices meanwhile, and it started at once: at time 0 all three were idle.
    for p in schedule.placements:
        if p.key != "big/t" and p.device_id in {h.device_id for h in held}:
            assert p.end_s <= start + 1e-6 or p.start_s >= end - 1e-6
    assert start == 0.0 and not schedule.unplaced
    # Three devices but a job needing four: never offered, never started.
    wide = big.model_copy(update={"key": "wide/t", "gpus": 4})
    assert predicted_schedule([wide, *small], pool, DynamicLPT(n_devices=3)).unplaced == ("wide/t",)


def test_a_mid_size_model_shares_only_cards_with_compute_to_spare() -> None:
    names = {"cuda:0": "NVIDIA H100 80GB HBM3", "cuda:1": "H100-80GB", "cuda:2": "NVIDIA A100-SXM4-80GB",
             "cuda:3": "A100-80GB"}
    pool = [Pool(device, 80.0) for device in names]
    items = pairs(16, 10, sizes=[0.5, 1.0, 2.0, 7.0], seed=5)
    size = {item.model: item.params_b for item in items}
    rates = [DeviceRate(p.device_id, p.total_mem_gb, p.speed, names[p.device_id]) for p in pool]
    schedule = predicted_schedule(items, pool, DynamicLPT(n_devices=len(pool), pool=rates))

    def together(a: Placement, b: Placement) -> bool:
        return a.device_id == b.device_id and a.start_s < b.end_s and b.start_s < a.end_s

    shared_mid = [(a, b) for a in schedule.placements for b in schedule.placements
                  if size[a.model] > SMALL_MODEL_B and a.key != b.key and together(a, b)]
    assert shared_mid, "a 7B job should take small ones beside it on an H100"
    assert all("H100" in names[a.device_id] for a, _ in shared_mid)
    assert any(p.sharing > 1 and "A100" in names[p.device_id] for p in schedule.placements), "A100s share too"
