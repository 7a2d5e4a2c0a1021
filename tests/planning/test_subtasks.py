"""Cutting large lm-eval groups into parts before grouping, and joining parts that share a job back."""

from __future__ import annotations

import pytest

from spectrabench.planning.schedule import WorkItem
from spectrabench.planning.subtasks import (
    MAX_PARTS,
    MIN_DEVICES_FOR_TAILS,
    in_parts,
    plan_pieces,
    rejoin_parts,
    split_large_groups,
)
from spectrabench.taskparts import parse_part, part_share


def _item(model: str, task: str, runtime: float, *, subtasks: int = 1, load: float = 10.0) -> WorkItem:
    return WorkItem(key=f"{model}/{task}", model=model, tasks=(task,), params_b=7.0, predicted_runtime_s=runtime,
                    predicted_load_s=load, predicted_mem_gb=20.0, task_runtimes_s=(runtime,), subtasks=subtasks)


def _profile() -> dict[str, list[WorkItem]]:
    # One model's 45-subject group is half of all the work: whole, it alone outlasts every other device's share.
    big = [_item("big", "kmmlu", 8000.0, subtasks=45), _item("big", "arc", 400.0)]
    others = {f"m{i}": [_item(f"m{i}", "kmmlu", 150.0, subtasks=45), _item(f"m{i}", "arc", 200.0)] for i in range(6)}
    return {"big": big, **others}


def test_a_dominant_group_is_cut_and_small_or_plain_tasks_are_not() -> None:
    split = split_large_groups(_profile(), 8)
    parts = [i for i in split["big"] if parse_part(i.tasks[0])]
    assert 2 <= len(parts) <= MAX_PARTS and len(parts) & (len(parts) - 1) == 0, "a power of two: resume finds them"
    assert sum(p.predicted_runtime_s for p in parts) == pytest.approx(8000.0)
    assert {parse_part(p.tasks[0]).parts for p in parts} == {len(parts)}  # type: ignore[union-attr]
    assert all(p.predicted_load_s == 10.0 and p.predicted_mem_gb == 20.0 for p in parts)
    assert [i.tasks for i in split["big"] if not parse_part(i.tasks[0])] == [("arc",)]
    assert split["m0"] == _profile()["m0"]
    # A plain task never splits, however long; a model that may not split keeps its groups whole.
    assert split_large_groups({"x": [_item("x", "arc", 1e6)]}, 8)["x"][0].tasks == ("arc",)
    assert split_large_groups(_profile(), 8, lambda m: m != "big")["big"] == _profile()["big"]


def test_never_more_parts_than_leaves_or_the_cap() -> None:
    split = split_large_groups({"x": [_item("x", "haerae", 1e6, subtasks=5)], "y": [_item("y", "arc", 1.0)]}, 8)
    assert len(split["x"]) == 5
    split = split_large_groups({"x": [_item("x", "mmlu", 1e6, subtasks=57)], "y": [_item("y", "arc", 1.0)]}, 8)
    assert len(split["x"]) == MAX_PARTS


def test_parts_in_one_job_are_joined_back() -> None:
    parts = split_large_groups({"x": [_item("x", "mmlu", 1000.0, subtasks=57)], "y": [_item("y", "a", 1.0)]}, 4)
    cut = parts["x"]
    merged = cut[0].model_copy(update={"tasks": (*(t for p in cut for t in p.tasks), "arc"),
                                       "task_runtimes_s": (*(p.predicted_runtime_s for p in cut), 5.0)})
    joined = rejoin_parts(merged)
    assert joined.tasks == ("mmlu", "arc") and joined.task_runtimes_s == pytest.approx((1000.0, 5.0))
    mems = merged.model_copy(update={"task_mems_gb": (*(9.0 + i for i in range(len(cut))), 2.0)})
    assert rejoin_parts(mems).task_mems_gb == (9.0 + len(cut) - 1, 2.0), "a joined group needs its heaviest part's"
    some = merged.model_copy(update={"tasks": merged.tasks[:2], "task_runtimes_s": merged.task_runtimes_s[:2]})
    assert rejoin_parts(some) == some  # an incomplete set stays in parts


def test_plan_cuts_only_where_the_makespan_gains() -> None:
    pieces = plan_pieces(_profile(), 8)
    big_parts = [t for p in pieces if p.model == "big" for t in p.tasks if parse_part(t)]
    assert len(big_parts) >= 2, "the dominant group runs in parts"
    assert len({p.key for p in pieces if any(parse_part(t) for t in p.tasks)}) >= 2, "on more than one device"
    covered = sorted(t for p in pieces if p.model == "big" for t in p.tasks)
    assert all(parse_part(t) or t == "arc" for t in covered)
    # On one device nothing can run side by side: cutting would only add loads.
    assert all(not parse_part(t) for p in plan_pieces(_profile(), 1) for t in p.tasks)


def test_a_part_cut_apart_runs_as_finer_parts_with_one_count_for_the_whole_group() -> None:
    # The dominant group is cut across jobs; inside each job its coarse parts are replaced by the finer parts that
    # make them up, so an overrunning part can still give some away. Aggregation needs one count for all parts.
    pieces = plan_pieces(_profile(), 8)
    parts = [parse_part(t) for p in pieces if p.model == "big" for t in p.tasks if parse_part(t)]
    counts = {p.parts for p in parts if p}
    assert len(counts) == 1, counts
    count = counts.pop()
    assert sorted(p.position for p in parts if p) == list(range(1, count + 1)), "every leaf once"
    assert 2 <= sum(1 for p in pieces if p.model == "big") < count <= MAX_PARTS, "cut apart, then finer within"
    # A coarse part maps onto exactly the finer parts whose leaves it holds.
    refined = in_parts(_item("big", "kmmlu[2/4]", 1000.0), {("big", "kmmlu"): [
        _item("big", f"kmmlu[{i}/8]", 250.0) for i in range(1, 9)]}, {("big", "kmmlu"): 45})
    assert refined.tasks == ("kmmlu[3/8]", "kmmlu[4/8]")
    known = _item("big", "kmmlu[2/4]", 1000.0).model_copy(update={"task_mems_gb": (12.0,)})
    assert in_parts(known, {("big", "kmmlu"): [_item("big", f"kmmlu[{i}/8]", 250.0) for i in range(1, 9)]},
                    {("big", "kmmlu"): 45}).task_mems_gb == (12.0, 12.0), "each finer part needs what it did"
    assert in_parts(_item("big", "kmmlu[2/4]", 1000.0), {("big", "kmmlu"): [
        _item("big", f"kmmlu[{i}/2]", 250.0) for i in range(1, 3)]}, {("big", "kmmlu"): 45}).tasks == ("kmmlu[2/4]",)


def test_a_long_group_runs_in_parts_inside_its_job_so_its_tail_can_move() -> None:
    # Eight equal models on eight devices: one job each, nothing worth cutting apart. Each kmmlu is most of its job.
    profile = {f"m{i}": [_item(f"m{i}", "kmmlu", 1000.0, subtasks=45), _item(f"m{i}", "arc", 200.0)]
               for i in range(8)}
    pieces = plan_pieces(profile, 8)
    assert len(pieces) == 8, "one job (one load) per model"
    for piece in pieces:
        parts = [parse_part(t) for t in piece.tasks[:-1]]
        assert [(p.task, p.position) for p in parts if p] == [("kmmlu", i) for i in range(1, MAX_PARTS + 1)]
        assert piece.tasks[-1] == "arc", "the parts stand where the group stood, longest first"
        # Each part is predicted at its share of the leaves (45 leaves in 32 parts: one or two each).
        assert piece.task_runtimes_s[:-1] == pytest.approx(
            [1000.0 * part_share(45, i, MAX_PARTS) for i in range(1, MAX_PARTS + 1)])
        assert sum(piece.task_runtimes_s) == pytest.approx(piece.predicted_runtime_s)
    assert len({p.key for p in pieces}) == 8
    # A short group stays whole, and on fewer devices a group runs whole in its job: one other device to take a
    # tail did not pay for the parts' setup.
    short = {**profile, "m0": [_item("m0", "kmmlu", 10.0, subtasks=45), _item("m0", "arc", 200.0)]}
    assert next(p for p in plan_pieces(short, 8) if p.model == "m0").tasks == ("arc", "kmmlu")
    assert MIN_DEVICES_FOR_TAILS > 2
    two = {m: items for m, items in profile.items() if m in ("m0", "m1")}
    assert [p.tasks for p in plan_pieces(two, 2)] == [("kmmlu", "arc")] * 2
    assert all(not parse_part(t) for p in plan_pieces(profile, 1) for t in p.tasks)
