"""Grouping: one job per model when that packs well, split pieces when one model would dominate."""

from __future__ import annotations

import math
import random

import pytest

from spectrabench.planning.grouping import group_jobs, lpt_makespan
from spectrabench.planning.pieces import (
    LOAD_BUDGET,
    SPARE_RESERVE,
    TAIL_RESERVE,
    grouping_budget,
    one_item_per_model,
)
from spectrabench.planning.placement import predicted_length_s
from spectrabench.planning.schedule import WorkItem


def pairs(model: str, runtimes: list[float], load: float = 60.0, mems: list[float] | None = None,
          params_b: float = 7.0) -> list[WorkItem]:
    """One item per (model, task), the load repeated in each, as the grouping receives them."""
    return [WorkItem(key=f"{model}/t{i}", model=model, tasks=(f"t{i}",), params_b=params_b,
                     predicted_runtime_s=r, predicted_load_s=load,
                     predicted_mem_gb=mems[i] if mems else 10.0) for i, r in enumerate(runtimes)]


def makespan(items: list[WorkItem], n_devices: int) -> float:
    return lpt_makespan([predicted_length_s(i) for i in items], n_devices)


def assert_partition(groups: list[WorkItem], by_model: dict[str, list[WorkItem]]) -> None:
    """Every (model, task) in exactly one group, no group empty or mixing models."""
    seen = sorted((g.model, t) for g in groups for t in g.tasks)
    assert seen == sorted((m, t) for m, items in by_model.items() for i in items for t in i.tasks)
    assert all(g.tasks for g in groups)


def test_a_balanced_profile_gets_one_job_per_model() -> None:
    by_model = {f"m{j}": pairs(f"m{j}", [50.0] * 10) for j in range(16)}
    groups = group_jobs(by_model, 8)
    assert [g.model for g in groups] == list(by_model)
    assert all(len(g.tasks) == 10 for g in groups)
    # Unequal models that pair up evenly on 2 devices stay whole too.
    by_model = {"a": pairs("a", [100.0] * 6), "b": pairs("b", [50.0] * 12), "c": pairs("c", [30.0] * 10),
                "d": pairs("d", [100.0] * 3)}
    groups = group_jobs(by_model, 2)
    assert len(groups) == 4
    assert makespan(groups, 2) == 1020.0  # a + c, b + d: the ideal split


def test_one_huge_model_on_8_devices_is_split_into_balanced_pieces() -> None:
    by_model = {"huge": pairs("huge", [100.0] * 40)} | {f"s{j}": pairs(f"s{j}", [20.0] * 5) for j in range(7)}
    whole = one_item_per_model(by_model)
    # Packing alone: every load of the budget may be planned.
    groups = group_jobs(by_model, 8, tail_reserve=0, spare_reserve=0)
    assert_partition(groups, by_model)
    huge = [predicted_length_s(g) for g in groups if g.model == "huge"]
    assert len(huge) >= 6
    assert max(huge) <= 1.25 * min(huge)
    ideal = sum(predicted_length_s(g) for g in groups) / 8
    assert makespan(groups, 8) <= 1.05 * ideal
    assert makespan(groups, 8) < 0.2 * makespan(whole, 8)
    assert len(groups) <= LOAD_BUDGET * (len(by_model) + 8)


def test_equal_models_that_pack_badly_are_split_a_little() -> None:
    # 13 equal models on 8 devices take two full rounds whole; a few cut pieces fill the second round's gaps.
    by_model = {f"m{j}": pairs(f"m{j}", [50.0] * 10) for j in range(13)}
    groups = group_jobs(by_model, 8)
    assert_partition(groups, by_model)
    assert makespan(groups, 8) < 0.9 * makespan(one_item_per_model(by_model), 8)
    assert 13 < len(groups) <= LOAD_BUDGET * (13 + 8)


def test_never_splits_below_one_task_or_an_unsplittable_model() -> None:
    by_model = {"big": pairs("big", [1000.0, 900.0, 800.0]), "small": pairs("small", [10.0])}
    groups = group_jobs(by_model, 8)
    assert_partition(groups, by_model)
    assert sorted(len(g.tasks) for g in groups if g.model == "big") == [1, 1, 1]
    kept = group_jobs(by_model, 8, splittable=lambda m: m != "big")
    assert [len(g.tasks) for g in kept if g.model == "big"] == [3]


def test_random_profiles_pack_close_to_the_bound_within_the_load_budget() -> None:
    rng = random.Random(3)
    for n_devices, n_models, n_tasks in [(2, 13, 10), (8, 13, 10), (8, 22, 21)]:
        by_model = {}
        for j in range(n_models):
            size = rng.choice([0.5, 1.0, 7.0, 13.0, 70.0])
            by_model[f"m{j}"] = pairs(f"m{j}", [size * rng.uniform(5, 60) for _ in range(n_tasks)],
                                      load=20 + 4 * size)
        groups = group_jobs(by_model, n_devices, tail_reserve=0, spare_reserve=0)  # packing alone
        assert_partition(groups, by_model)
        whole = one_item_per_model(by_model)
        bound = max(sum(predicted_length_s(g) for g in whole) / n_devices,
                    max(i.predicted_load_s + i.predicted_runtime_s for items in by_model.values() for i in items))
        assert makespan(groups, n_devices) <= 1.08 * bound
        assert makespan(groups, n_devices) <= makespan(whole, n_devices)
        assert len(groups) <= LOAD_BUDGET * (n_models + n_devices)


def test_half_a_load_per_device_is_left_for_tail_moves() -> None:
    by_model = {"huge": pairs("huge", [100.0] * 40)} | {f"s{j}": pairs(f"s{j}", [20.0] * 5) for j in range(7)}
    budget = math.floor(LOAD_BUDGET * (len(by_model) + 8))
    assert grouping_budget(len(by_model), 8) == budget - 4
    packed = group_jobs(by_model, 8, tail_reserve=0, spare_reserve=0)
    assert len(packed) > budget - 4, "packing alone would spend more loads"
    groups = group_jobs(by_model, 8)
    assert_partition(groups, by_model)
    assert len(groups) <= budget - 4


def test_cuts_spend_the_spare_reserve_only_for_a_clear_gain() -> None:
    # Twelve models on 8 devices: two more cuts pack about 9% shorter on predictions, less than SPARE_GAIN, so
    # those loads stay with the run's tail moves.
    by_model = {f"m{j}": pairs(f"m{j}", [50.0 + 5 * j] * 10) for j in range(12)}
    spare = grouping_budget(len(by_model), 8, SPARE_RESERVE)
    assert len(group_jobs(by_model, 8, spare_reserve=TAIL_RESERVE)) > spare, "without a spare reserve it cuts more"
    groups = group_jobs(by_model, 8)
    assert_partition(groups, by_model)
    assert len(groups) <= spare
    # One model that would dominate: cutting it is worth every load grouping may plan.
    by_model = {"huge": pairs("huge", [100.0] * 40)} | {f"s{j}": pairs(f"s{j}", [20.0] * 5) for j in range(7)}
    assert len(group_jobs(by_model, 8)) > grouping_budget(len(by_model), 8, SPARE_RESERVE)


def test_rejects_no_devices() -> None:
    with pytest.raises(ValueError):
        group_jobs({"m": pairs("m", [1.0])}, 0)
    assert group_jobs({}, 2) == []


def test_on_a_mixed_pool_a_model_is_not_cut_for_cards_that_cannot_hold_it() -> None:
    """One fast card that holds a 70 GB model and three slow ones that do not: packed as if all four were alike,
    its tasks are spread over four pieces (four loads); packed for the real pool, where every piece of it runs on
    the one card, cutting it only adds loads, so it stays whole."""
    from spectrabench.planning.speeds import DeviceRate

    pool = [DeviceRate("sim:0", 80.0)] + [DeviceRate(f"sim:{d}", 24.0, 0.25) for d in range(1, 4)]
    by_model = {"big": pairs("big", [1000.0] * 8, mems=[70.0] * 8)}
    assert len(group_jobs(by_model, 4)) > 1
    aware = group_jobs(by_model, 4, pool=pool)
    assert [len(g.tasks) for g in aware] == [8]
    # A pool of one kind groups as without it.
    same = [DeviceRate(f"sim:{d}", 80.0) for d in range(4)]
    assert group_jobs(by_model, 4, pool=same) == group_jobs(by_model, 4)
