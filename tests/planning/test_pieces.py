"""Pieces: one worker's model loaded once for its tasks, and the budget of loads a run may spend."""

from __future__ import annotations

import math

import pytest

from spectrabench.planning.pieces import (
    LOAD_BUDGET,
    grouping_budget,
    load_budget,
    merge_items,
    one_item_per_model,
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
