"""Placement: GPUs a model needs, memory fit with a margin, and when sharing a GPU pays."""

from __future__ import annotations

import random

import pytest

from spectrabench.planning.placement import (
    MAX_SHARING,
    RestOfRun,
    Running,
    colocation_pays,
    colocation_slowdown,
    fits,
    gpus_needed,
    jobs_per_device,
    largest_fitting_mem_gb,
    may_share,
    memory_margin_gb,
    per_device_mem_gb,
    shared_finish_s,
    shares_mid_size,
    should_colocate,
)
from spectrabench.planning.schedule import SlotState, WorkItem


def work(key: str, mem: float = 5.0, params_b: float = 0.5, runtime: float = 100.0, gpus: int = 1) -> WorkItem:
    return WorkItem(key=key, model="m", tasks=(key,), params_b=params_b, gpus=gpus, predicted_runtime_s=runtime,
                    predicted_load_s=0.0, predicted_mem_gb=mem)


def slot(free: float = 80.0, total: float = 80.0, running: tuple[str, ...] = ()) -> SlotState:
    return SlotState(device_id="cuda:0", total_mem_gb=total, free_mem_gb=free, running=running)


@pytest.mark.parametrize(("params_b", "dtype_bytes", "device_gb", "expected"), [
    (7.0, 2, 24.0, 1),     # 13 GiB of bf16 weights on a 24 GB card
    (13.0, 2, 24.0, 2),    # 24.2 GiB: no headroom left on one card
    (70.0, 2, 80.0, 2),    # 130 GiB over two 80 GB cards, 65 each (< 85%)
    (70.0, 4, 80.0, 4),    # fp32 doubles it
    (405.0, 2, 80.0, 12),  # 754 GiB at 68 per card
    (0.135, 4, 4.0, 1),
])
def test_gpus_needed(params_b: float, dtype_bytes: int, device_gb: float, expected: int) -> None:
    assert gpus_needed(params_b, dtype_bytes, device_gb) == expected


def test_gpus_needed_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        gpus_needed(0.0, 2, 80.0)
    with pytest.raises(ValueError):
        gpus_needed(7.0, 2, 0.0)


def test_colocation_slowdown() -> None:
    assert colocation_slowdown(1) == 1.0
    assert colocation_slowdown(2) == pytest.approx(1.6)
    assert 2 / colocation_slowdown(2) > 1.0  # two small jobs together beat them one after the other
    with pytest.raises(ValueError):
        colocation_slowdown(0)


def test_fits_counts_the_margin_and_sharded_memory_per_device() -> None:
    assert fits(slot(free=10.0), work("a", mem=9.0), margin_gb=1.0)
    assert not fits(slot(free=10.0), work("a", mem=9.0), margin_gb=1.01)
    assert fits(slot(free=50.0), work("a", mem=90.0, params_b=70, gpus=2), margin_gb=5.0)
    assert per_device_mem_gb(work("a", mem=90.0, gpus=2)) == 45.0
    # The margin grows with what already runs on the device: their errors add up.
    assert memory_margin_gb(slot(free=40.0), work("a")) > memory_margin_gb(slot(free=80.0), work("a"))


def test_largest_fitting_memory_agrees_with_fits() -> None:
    rng = random.Random(0)
    for _ in range(500):
        total = rng.choice([16.0, 40.0, 80.0])
        state = slot(free=rng.uniform(0, total), total=total)
        cap = largest_fitting_mem_gb(state)
        below, above = work("a", mem=max(0.0, cap - 1e-6)), work("b", mem=cap + 1e-6)
        if cap > 0:
            assert fits(state, below, memory_margin_gb(state, below))
        assert not fits(state, above, memory_margin_gb(state, above))


def test_sharing_pays_only_while_the_queue_keeps_every_device_busy() -> None:
    assert colocation_pays(100.0, [50.0], queued_work_s=1000.0, n_devices=2)
    # Both at 1/1.6 speed until the 50 s one ends (80 s), then 50 s alone: done at 130 s.
    assert colocation_pays(100.0, [50.0], queued_work_s=260.0, n_devices=2)
    assert not colocation_pays(100.0, [50.0], queued_work_s=250.0, n_devices=2)  # 130 s > 125 s left
    assert not colocation_pays(100.0, [500.0], queued_work_s=1000.0, n_devices=2)  # the running one is the tail
    assert not colocation_pays(1.0, [1.0] * MAX_SHARING, queued_work_s=1e9, n_devices=1)
    # Nothing else queued: sharing pays when the device is done with both (130 s) before the job, waiting for a
    # device to free up and then running alone, would end.
    assert colocation_pays(100.0, [50.0], queued_work_s=0.0, n_devices=2, rest=RestOfRun((40.0,), ()))
    assert not colocation_pays(100.0, [50.0], queued_work_s=0.0, n_devices=2, rest=RestOfRun((20.0,), ()))
    assert not colocation_pays(100.0, [500.0], queued_work_s=0.0, n_devices=2, rest=RestOfRun((100.0,), ()))
    # A 50 s job beside 200 s left, the other device free at 100 s and a 100 s job queued: queued longest first,
    # the 100 s job ends at 200 s and this one at 250 s; shared here (done at 230 s), the other ends at 200 s.
    assert colocation_pays(50.0, [200.0], queued_work_s=100.0, n_devices=2, rest=RestOfRun((100.0,), (100.0,)))
    assert not colocation_pays(50.0, [200.0], queued_work_s=100.0, n_devices=2, rest=RestOfRun((100.0,)))
    assert not colocation_pays(50.0, [200.0], queued_work_s=100.0, n_devices=2)
    # One device: nothing else frees up, so the job would wait for this one (done at 74 s shared, 90 s in turn).
    assert colocation_pays(40.0, [50.0], queued_work_s=0.0, n_devices=1, rest=RestOfRun((), ()))


def test_jobs_sharing_a_device_finish_sooner_together_than_in_turn_but_later_than_alone() -> None:
    assert shared_finish_s([100.0]) == 100.0
    assert shared_finish_s([50.0, 100.0]) == pytest.approx(50.0 * colocation_slowdown(2) + 50.0)
    assert shared_finish_s([30.0, 30.0, 30.0]) == pytest.approx(30.0 * colocation_slowdown(3))
    rng = random.Random(3)
    for _ in range(200):
        lengths = [rng.uniform(1, 100) for _ in range(rng.randint(1, MAX_SHARING))]
        assert max(lengths) - 1e-9 <= shared_finish_s(lengths) <= sum(lengths) + 1e-9


def test_jobs_per_device_counts_shared_slots_only_for_small_models_that_fit() -> None:
    small = [work(f"s{i}", mem=8.0) for i in range(10)]
    large = [work(f"l{i}", mem=20.0, params_b=8.0) for i in range(10)]
    assert jobs_per_device(small, 80.0) == MAX_SHARING
    assert jobs_per_device(large, 80.0) == 1.0  # nothing may share: grouped as without co-location
    assert jobs_per_device([work(f"s{i}", mem=30.0) for i in range(4)], 80.0) == 2.0  # two fit with the margin
    assert jobs_per_device([*small, *large], 80.0) == pytest.approx(1 + (MAX_SHARING - 1) / 2)  # half the work


def test_a_mid_size_model_shares_only_beside_small_ones_and_only_where_allowed() -> None:
    small, mid, large = work("s", params_b=1.5), work("m", params_b=8.0), work("l", params_b=13.0)
    assert may_share(small, [small, small])
    assert may_share(mid, [small, small]) and may_share(small, [mid, small])
    assert not may_share(mid, [mid]) and not may_share(small, [mid, mid])  # two mid-size jobs fill the GPU
    assert not may_share(large, [small]) and not may_share(small, [large])
    assert not may_share(mid, [small], mid_size_allowed=False) and may_share(small, [small], mid_size_allowed=False)
    barred = work("b", params_b=0.5).model_copy(update={"shareable": False})
    assert not may_share(barred, [small]) and not may_share(small, [barred])
    queue = [work(f"q{i}") for i in range(20)]
    busy = slot(free=60.0, running=("r",))
    beside_mid = [Running(work("r", params_b=8.0), 50.0)]
    assert should_colocate(queue[0], busy, queue, running=beside_mid, n_devices=2)
    assert not should_colocate(queue[0], busy, queue, running=beside_mid, n_devices=2, mid_size_allowed=False)
    assert not should_colocate(mid, busy, queue, running=beside_mid, n_devices=2)


@pytest.mark.parametrize(("card", "expected"), [
    ("NVIDIA H100 80GB HBM3", True), ("H100-80GB", True), ("NVIDIA H200", True), ("H200-141GB", True),
    ("NVIDIA GH200 480GB", True), ("NVIDIA B200", True), ("NVIDIA H800", True), ("NVIDIA H20", False),
    ("NVIDIA A100-SXM4-80GB", False), ("A100-40GB", False),
    ("NVIDIA L4", False), ("L4-24GB", False), ("CPU", False), ("", False), ("NVIDIA H1000", False),
])
def test_mid_size_models_share_only_cards_with_compute_to_spare(card: str, expected: bool) -> None:
    assert shares_mid_size(card) is expected


def test_should_colocate() -> None:
    queue = [work(f"q{i}") for i in range(20)]
    busy = slot(free=70.0, running=("r",))
    small = [Running(work("r"), 50.0)]
    assert should_colocate(queue[0], slot(), queue)  # an empty device is no sharing
    assert should_colocate(queue[0], busy, queue, running=small, n_devices=2)
    assert not should_colocate(queue[0], busy, queue[:2], running=small, n_devices=2)  # the tail
    assert not should_colocate(queue[0], busy, queue, running=(), n_devices=2)  # unknown neighbour
    assert not should_colocate(queue[0], busy, queue, running=[Running(work("r", params_b=13.0), 50.0)], n_devices=2)
    assert not should_colocate(work("big", params_b=34.0), busy, queue, running=small, n_devices=2)
    assert not should_colocate(work("tp", gpus=2), busy, queue, running=small, n_devices=2)
    assert should_colocate(queue[0], busy, [], running=small, n_devices=2, queued_work_s=2000.0)


def test_a_sharded_job_needs_the_fewest_devices_that_hold_its_share_and_the_whole_rest() -> None:
    from spectrabench.planning.placement import offerable, sharded_peak_gb, shards_needed

    # 60 GiB of weights and 10 GiB of activations and logits: each of k devices holds 60/k + 10.
    assert sharded_peak_gb(70.0, 60.0, 1) == pytest.approx(70.0)
    assert sharded_peak_gb(70.0, 60.0, 3) == pytest.approx(30.0)
    assert shards_needed(70.0, 60.0, 80.0, 8) == 1
    assert shards_needed(70.0, 60.0, 40.0, 8) == 2  # 40 each
    assert shards_needed(70.0, 60.0, 24.0, 8) == 5  # 22 each; 4 would need 25
    assert shards_needed(70.0, 60.0, 24.0, 4) is None
    assert shards_needed(70.0, 60.0, 9.0, 64) is None  # the unsplit part alone overflows
    items = [WorkItem(key=f"k{g}", model="m", tasks=("t",), params_b=1.0, gpus=g, predicted_runtime_s=1.0,
                      predicted_load_s=1.0, predicted_mem_gb=1.0) for g in (1, 2, 4)]
    assert [i.key for i in offerable(items, 0)] == ["k1"]
    assert [i.key for i in offerable(items, 1)] == ["k1", "k2"]
    assert [i.key for i in offerable(items, 3)] == ["k1", "k2", "k4"]
