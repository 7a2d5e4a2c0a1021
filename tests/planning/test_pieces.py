"""Pieces: one worker's model loaded once for its tasks, and the budget of loads a run may spend."""

from __future__ import annotations

import math

import pytest

from spectrabench.planning.pieces import (
    LOAD_BUDGET,
    MEMORY_TIER,
    grouping_budget,
    load_budget,
    merge_items,
    one_item_per_model,
    run_order,
    worker_group,
)
from tests.planning.test_grouping import pairs


def test_merge_loads_once_and_keeps_the_largest_memory() -> None:
    items = pairs("m", [10.0, 20.0, 30.0], load=50.0, mems=[4.0, 9.0, 6.0])
    merged = merge_items(items)
    assert merged.tasks == ("t0", "t1", "t2")
    assert merged.predicted_runtime_s == 60.0
    assert merged.predicted_load_s == 50.0
    assert merged.predicted_mem_gb == 9.0
    assert merged.key != items[0].key and merged.key == merge_items(items).key
    assert merge_items(items[:1]) is items[0]
    with pytest.raises(ValueError, match="different models"):
        merge_items([*items, *pairs("n", [1.0])])
    assert [g.model for g in one_item_per_model({"m": items, "n": pairs("n", [5.0])})] == ["m", "n"]


def test_grouping_leaves_half_a_load_per_device_of_the_budget_and_never_fewer_pieces_than_models() -> None:
    assert load_budget(13, 8) == math.floor(LOAD_BUDGET * 21)
    assert grouping_budget(13, 8) == load_budget(13, 8) - 4
    assert grouping_budget(13, 2) == math.floor(LOAD_BUDGET * 15) - 1
    assert grouping_budget(3, 8, tail_reserve=10) == 3, "never fewer pieces than models"
    assert grouping_budget(13, 2, n_slots=4) == load_budget(13, 4) - 1, "shared devices: the budget counts slots"


def test_a_model_split_over_more_cards_groups_apart() -> None:
    assert worker_group("m", 1) != worker_group("m", 2)
    assert worker_group("m", 1) == worker_group("m", 1)


def test_a_merged_job_holds_only_what_its_tasks_left_need() -> None:
    merged = merge_items(pairs("m", [10.0, 20.0, 30.0], mems=[9.0, 4.0, 6.0]))
    assert merged.task_mems_gb == (9.0, 4.0, 6.0)
    assert [merged.mem_from(done) for done in range(4)] == [9.0, 6.0, 6.0, 0.0]
    # A tail moved off keeps its tasks' peaks; the head keeps the rest.
    tail, head = merged.tail("m/tail", 1), merged.head(1)
    assert (tail.predicted_mem_gb, tail.mem_from(0)) == (6.0, 6.0)
    assert (head.predicted_mem_gb, head.task_mems_gb) == (9.0, (9.0, 4.0))
    # Unknown per-task peaks (or ones that no longer match the tasks): the whole job's, to its end.
    unknown = merged.model_copy(update={"task_mems_gb": ()})
    stale = merged.model_copy(update={"tasks": ("t0", "t1")})
    assert unknown.mem_from(2) == 9.0 and stale.mem_from(1) == 9.0


def test_a_worker_runs_its_memory_heavy_tasks_first_and_the_longest_first_within_a_tier() -> None:
    heavy = 20.0
    tier = MEMORY_TIER
    mems = [heavy / tier / 1.1, heavy, heavy / tier / tier / 1.1, heavy * 0.9, heavy / tier / 1.05]
    items = pairs("m", [50.0, 10.0, 90.0, 30.0, 70.0], mems=mems)
    # Tier 0, within the factor of the heaviest: t3 (30 s), t1 (10 s); then t4, t0 (70 s, 50 s); then t2, the
    # longest task of all, last.
    assert [i.tasks[0] for i in run_order(items)] == ["t3", "t1", "t4", "t0", "t2"]
    same = pairs("m", [5.0, 9.0, 7.0], mems=[10.0, 10.0, 10.0])
    assert [i.tasks[0] for i in run_order(same)] == ["t1", "t2", "t0"], "one tier: longest first"
    unknown = pairs("m", [5.0, 9.0], mems=[0.0, 0.0])
    assert [i.tasks[0] for i in run_order(unknown)] == ["t1", "t0"]
