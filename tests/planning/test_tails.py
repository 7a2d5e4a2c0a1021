"""Tail moves: which unstarted tasks of a running job an idle device takes, from predictions and progress."""

from __future__ import annotations

import pytest

from spectrabench.planning.schedule import WorkItem
from spectrabench.planning.tails import MIN_GAIN, RunningJob, tail_move, time_left_s


def _item(key: str, runtimes: list[float], load: float = 10.0, mem: float = 20.0, model: str = "m") -> WorkItem:
    return WorkItem(key=key, model=model, tasks=tuple(f"t{i}" for i in range(len(runtimes))), params_b=7.0,
                    predicted_runtime_s=sum(runtimes), predicted_load_s=load, predicted_mem_gb=mem,
                    task_runtimes_s=tuple(runtimes))


def test_an_idle_device_takes_the_tail_that_balances_the_two_ends() -> None:
    job = RunningJob(_item("a", [100.0] * 4), finished=0, in_task_s=10.0)  # loaded, at the first task
    move = tail_move([job], free_mem_gb=80.0)
    # Left: 100 + 300 = 400 s. Moving 2 tasks: max(200, 10 + 200) = 210; 1 task: 300; 3 cannot (one is at hand).
    assert move is not None and (move.key, move.n_tasks) == ("a", 2)
    assert move.gain_s == pytest.approx(400.0 - 210.0)


def test_in_a_mixed_pool_the_tail_is_weighed_at_each_devices_speed() -> None:
    # The same job on a device at half speed: 200 + 600 = 800 s left there.
    slow = RunningJob(_item("a", [100.0] * 4), finished=0, in_task_s=10.0, speed=0.5)
    assert time_left_s(slow, 1.0) == pytest.approx(2 * 110.0 - 10.0 + 600.0)
    to_fast = tail_move([slow], free_mem_gb=80.0)
    assert to_fast is not None and to_fast.n_tasks == 3, "to a full-speed card: the two ends at 210 s and 310 s"
    # To a card a quarter as fast as the reference, one task is the most worth moving: 2 would take it 840 s.
    to_slower = tail_move([slow], free_mem_gb=80.0, speed=0.25)
    assert to_slower is not None and to_slower.n_tasks == 1
    fast = RunningJob(_item("a", [100.0] * 4), finished=0, in_task_s=10.0)
    assert tail_move([fast], free_mem_gb=80.0, speed=0.25) is None, "400 s left here; anything moved ends later"


def test_the_task_at_hand_and_those_finished_never_move() -> None:
    assert tail_move([RunningJob(_item("a", [100.0, 100.0]), finished=1, in_task_s=5.0)], 80.0) is None
    assert tail_move([RunningJob(_item("a", [100.0]), finished=0, in_task_s=5.0)], 80.0) is None
    two_left = tail_move([RunningJob(_item("a", [100.0] * 4), finished=2, in_task_s=0.0)], 80.0)
    assert two_left is not None and two_left.n_tasks == 1


def test_no_move_when_the_gain_is_within_the_predictions_error_or_memory_lacks() -> None:
    # A load as long as the tail: moving gains nothing worth a load.
    assert tail_move([RunningJob(_item("a", [100.0, 10.0], load=10.0), 1 - 1, 10.0)], 80.0) is None
    gain_share = (110.0 - max(100.0, 10.0 + 10.0)) / 110.0
    assert gain_share < MIN_GAIN
    assert tail_move([RunningJob(_item("a", [100.0] * 4, mem=60.0), 0, 10.0)], free_mem_gb=40.0) is None
    # Without per-task predictions nothing can be weighed.
    blind = _item("a", [100.0] * 4).model_copy(update={"task_runtimes_s": ()})
    assert tail_move([RunningJob(blind, 0, 10.0)], 80.0) is None


def test_the_job_that_gains_most_is_split_and_predictions_are_corrected_per_model() -> None:
    short = RunningJob(_item("short", [50.0] * 4, model="fast"), 0, 10.0)
    long = RunningJob(_item("long", [100.0] * 4, model="slow"), 0, 10.0)
    move = tail_move([short, long], 80.0)
    assert move is not None and move.key == "long"
    # The fast model turns out 4x slower than predicted: its job is now the long one.
    corrected = tail_move([short, long], 80.0, scale=lambda model: 4.0 if model == "fast" else 1.0)
    assert corrected is not None and corrected.key == "short"


def test_time_left_never_counts_an_overrunning_task_below_zero() -> None:
    job = RunningJob(_item("a", [100.0, 50.0]), finished=0, in_task_s=500.0)
    assert time_left_s(job, 1.0) == pytest.approx(50.0)
    assert time_left_s(RunningJob(_item("a", [100.0, 50.0]), 0, 0.0), 2.0) == pytest.approx(2 * (10 + 150))
    assert time_left_s(RunningJob(_item("a", [100.0, 50.0]), 2, 0.0), 1.0) == 0.0


def test_items_split_into_head_and_tail_with_their_predictions() -> None:
    item = _item("a", [1.0, 2.0, 3.0])
    tail, head = item.tail("a~tail", 2), item.head(2)
    assert (tail.key, tail.tasks, tail.predicted_runtime_s) == ("a~tail", ("t1", "t2"), 5.0)
    assert (head.key, head.tasks, head.predicted_runtime_s) == ("a", ("t0",), 1.0)
    with pytest.raises(ValueError):
        item.tail("x", 3)


def test_a_split_jobs_tail_moves_only_when_enough_devices_are_idle_to_hold_it() -> None:
    split = RunningJob(_item("a", [100.0] * 4).model_copy(update={"gpus": 2}), finished=0, in_task_s=10.0)
    assert tail_move([split], 80.0) is None
    move = tail_move([split], 80.0, idle_partners=1)
    assert move is not None and (move.key, move.n_tasks) == ("a", 2)


def test_a_part_that_ran_long_says_its_groups_other_parts_will_too() -> None:
    parts = WorkItem(key="g", model="m", tasks=("kmmlu[1/4]", "kmmlu[2/4]", "kmmlu[3/4]", "kmmlu[4/4]"),
                     params_b=7.0, predicted_runtime_s=400.0, predicted_load_s=10.0, predicted_mem_gb=20.0,
                     task_runtimes_s=(100.0,) * 4)
    # The first part took 300 s after a 10 s load: the other three will take about 300 s each, not 100.
    slow = RunningJob(parts, finished=1, in_task_s=0.0, done_s=(310.0,))
    assert time_left_s(slow, 1.0) == pytest.approx(900.0)
    move = tail_move([slow], free_mem_gb=80.0)
    assert move is not None and move.n_tasks == 1 and move.gain_s == pytest.approx(300.0)
    # Without the evidence the same job seems to have a third as long left, and the move to gain a third as much.
    blind = slow._replace(done_s=())
    assert time_left_s(blind, 1.0) == pytest.approx(300.0)
    assert tail_move([blind], free_mem_gb=80.0) == (move.key, 1, pytest.approx(100.0))
    # The part at hand running past its prediction counts too, before any part has finished: 300 s into a part
    # predicted at 100, the other three are expected at that pace.
    overrun = RunningJob(parts, finished=0, in_task_s=310.0)
    assert time_left_s(overrun, 1.0) == pytest.approx(3 * 300.0)
    # Tasks of other groups keep their predictions.
    mixed = parts.model_copy(update={"tasks": ("kmmlu[1/2]", "kmmlu[2/2]", "arc", "mmlu")})
    assert time_left_s(RunningJob(mixed, finished=1, in_task_s=0.0, done_s=(310.0,)), 1.0) == pytest.approx(500.0)
