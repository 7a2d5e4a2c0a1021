"""Simulated workloads: items with noisy predictions over a hidden truth, and grouping a model's tasks."""

from __future__ import annotations

import math

import pytest

from spectrabench.errors import UserError
from spectrabench.profiles import TaskSpec
from spectrabench.simulate.specs import parse_pool
from spectrabench.simulate.truth import expected_cost
from spectrabench.simulate.workload import build_workload, group_by_model, group_items, item_key, sim_task
from tests.simulate import bundled_profile

H100 = parse_pool("H100-80GB")[0]
EXTENDED = bundled_profile("extended")


def test_one_item_per_pair_with_its_truth() -> None:
    workload = build_workload(EXTENDED, H100, seed=0)
    assert len(workload.items) == 22 * 21 == len(workload.jobs)
    assert workload.items[0].key == "llama-3.1-8b/kmmlu" and workload.items[1].key == "llama-3.1-8b/kmmlu_hard"
    assert {item.key for item in workload.items} == set(workload.jobs)
    belebele = workload.jobs["llama-3.1-8b/belebele"]
    assert belebele.tasks[0].name == "belebele_kor_Hang" and belebele.tasks[0].requests == 3600
    assert belebele.batch_size == EXTENDED.batch_size and belebele.dtype_bytes == 2
    assert workload.jobs["gemma-3-12b-it/mmlu"].vocab == 262208
    item = workload.items[0]
    assert (item.model, item.tasks, item.params_b, item.gpus) == ("llama-3.1-8b", ("kmmlu",), 8.03, 1)


def test_without_noise_predictions_are_the_truths_expectation() -> None:
    workload = build_workload(EXTENDED, H100, runtime_noise=0.0, memory_noise=0.0)
    for item in workload.items[::17]:
        expected = expected_cost(workload.jobs[item.key], H100)
        assert math.isclose(item.predicted_runtime_s, expected.runtime_s)
        assert math.isclose(item.predicted_load_s, expected.load_s)
        assert math.isclose(item.predicted_mem_gb, expected.peak_mem_gb)


def test_prediction_errors_are_seeded_and_separate_for_runtime_and_memory() -> None:
    a, b = build_workload(EXTENDED, H100, seed=5), build_workload(EXTENDED, H100, seed=5)
    assert a.items == b.items and a.jobs == b.jobs
    other = build_workload(EXTENDED, H100, seed=6)
    assert [i.predicted_runtime_s for i in a.items] != [i.predicted_runtime_s for i in other.items]
    assert a.jobs == other.jobs  # the truth does not depend on the prediction seed
    exact_runtime = build_workload(EXTENDED, H100, seed=5, runtime_noise=0.0)
    exact_memory = build_workload(EXTENDED, H100, seed=5, memory_noise=0.0)
    assert [i.predicted_mem_gb for i in exact_runtime.items] == [i.predicted_mem_gb for i in a.items]
    assert [i.predicted_runtime_s for i in exact_memory.items] == [i.predicted_runtime_s for i in a.items]
    errors = [math.log(i.predicted_runtime_s / expected_cost(a.jobs[i.key], H100).runtime_s) for i in a.items]
    spread = math.sqrt(sum(e * e for e in errors) / len(errors))
    assert 0.15 < spread < 0.5  # sigma 0.3, of which model and task parts are shared by many items
    loads = {i.predicted_load_s for i in a.items if i.model == "qwen3-8b"}
    assert len(loads) == 1  # one load prediction per model


def test_memory_scale_biases_memory_predictions() -> None:
    exact = build_workload(EXTENDED, H100, memory_noise=0.0)
    low = build_workload(EXTENDED, H100, memory_noise=0.0, memory_scale=0.5)
    for e, lo in zip(exact.items, low.items, strict=True):
        # The predictor knows the weights (parameters x bytes); the bias falls on the rest of the peak.
        job = exact.jobs[e.key]
        weights = job.params_b * 1e9 * job.dtype_bytes / 1024**3
        assert math.isclose(lo.predicted_mem_gb - weights, 0.5 * (e.predicted_mem_gb - weights))


def test_limit_and_batch_size_reach_the_truth() -> None:
    workload = build_workload(EXTENDED, H100, limit=10, batch_size=2)
    mmlu = workload.jobs["qwen3-8b/mmlu"]
    # lm-eval applies the limit per subject: 57 subjects x 10 documents x 4 options.
    assert mmlu.tasks[0].documents == 570 and mmlu.tasks[0].requests == 2280 and mmlu.batch_size == 2
    assert workload.jobs["qwen3-8b/arc_easy"].tasks[0].documents == 10
    full = build_workload(EXTENDED, H100)
    assert full.jobs["qwen3-8b/mmlu"].tasks[0].documents == 14042


def test_fit_margin_sizes_batches_to_the_predicted_memory() -> None:
    l4 = parse_pool("L4-24GB")[0]
    at = {b: build_workload(EXTENDED, l4, batch_size=b, seed=2) for b in (32, 16, 8, 4, 2, 1)}
    fitted = build_workload(EXTENDED, l4, batch_size=32, seed=2, fit_margin=0.1)
    batches = {fitted.jobs[i.key].batch_size for i in fitted.items}
    assert 32 in batches and 1 in batches and len(batches) >= 4
    for index, item in enumerate(fitted.items):
        batch, gpus = fitted.jobs[item.key].batch_size, item.gpus
        if gpus == 1:  # the same prediction as a workload built at that batch
            assert item == at[batch].items[index].model_copy(update={"gpus": 1})
        # Each device's part fits with the margin, or the job runs alone at batch 1 on devices it fits at all.
        assert item.predicted_mem_gb / gpus <= 0.9 * l4.total_mem_gb or (
            batch == 1 and item.predicted_mem_gb / gpus <= l4.total_mem_gb)
        if batch < 32 and gpus == 1:  # halved only as far as needed
            assert at[batch * 2].items[index].predicted_mem_gb > 0.9 * l4.total_mem_gb


def test_a_task_outside_the_catalog_is_a_user_error() -> None:
    profile = EXTENDED.model_copy(update={"tasks": [TaskSpec(name="my_local_task", shots=0)]})
    with pytest.raises(UserError, match="my_local_task"):
        build_workload(profile, H100)


def test_grouping_by_model_loads_once_and_sums_the_tasks() -> None:
    workload = build_workload(EXTENDED, H100, seed=3)
    grouped = group_by_model(workload)
    assert len(grouped.items) == 22 == len(grouped.jobs)
    item = grouped.items[0]
    assert item.model == "llama-3.1-8b" and item.tasks == tuple(t.name for t in EXTENDED.tasks)
    assert item.key == item_key("llama-3.1-8b", item.tasks)
    parts = [i for i in workload.items if i.model == "llama-3.1-8b"]
    assert math.isclose(item.predicted_runtime_s, sum(p.predicted_runtime_s for p in parts))
    assert item.predicted_mem_gb == max(p.predicted_mem_gb for p in parts)
    truth = expected_cost(grouped.jobs[item.key], H100)
    singles = [expected_cost(workload.jobs[p.key], H100) for p in parts]
    assert math.isclose(truth.runtime_s, sum(s.runtime_s for s in singles))
    assert truth.load_s == singles[0].load_s  # one load, not 21
    assert len(grouped.jobs[item.key].tasks) == 21


def test_partial_groups_keep_order_and_the_rest() -> None:
    workload = build_workload(EXTENDED, H100)
    grouped = group_items(workload, [["qwen3-8b/gsm8k", "qwen3-8b/mmlu"]])
    assert len(grouped.items) == len(workload.items) - 1
    keys = [i.key for i in grouped.items]
    assert "qwen3-8b/gsm8k+mmlu" in keys and "qwen3-8b/mmlu" not in keys and "qwen3-8b/gsm8k" not in keys
    # The group takes the place of its first member in the queue (gsm8k, after bbh).
    original = [i.key for i in workload.items]
    assert keys[keys.index("qwen3-8b/gsm8k+mmlu") - 1] == original[original.index("qwen3-8b/gsm8k") - 1]
    assert set(keys) == set(grouped.jobs)


def test_bad_groups_are_rejected() -> None:
    workload = build_workload(EXTENDED, H100)
    with pytest.raises(ValueError, match="mixes models"):
        group_items(workload, [["qwen3-8b/mmlu", "llama-3.1-8b/mmlu"]])
    with pytest.raises(ValueError, match="two groups"):
        group_items(workload, [["qwen3-8b/mmlu"], ["qwen3-8b/mmlu", "qwen3-8b/gsm8k"]])
    with pytest.raises(ValueError, match="no item"):
        group_items(workload, [["qwen3-8b/nothing"]])


def test_a_group_in_parts_keeps_its_work_and_its_luck() -> None:
    from spectrabench.planning.schedule import WorkItem
    from spectrabench.simulate.truth import TruthConfig, true_cost
    from spectrabench.simulate.workload import with_parts

    standard = bundled_profile("standard")
    workload = build_workload(standard, H100, seed=3, runtime_noise=0.3)
    whole = next(i for i in workload.items if i.key == "exaone-3.5-32b-instruct/kmmlu")
    assert whole.subtasks == 45
    names = ("kmmlu[1/3]", "kmmlu[2/3]", "kmmlu[3/3]")
    pieces = [WorkItem(key="p", model=whole.model, tasks=names[:2], params_b=32.0, predicted_runtime_s=1.0,
                       predicted_load_s=1.0, predicted_mem_gb=1.0),
              WorkItem(key="q", model=whole.model, tasks=names[2:], params_b=32.0, predicted_runtime_s=1.0,
                       predicted_load_s=1.0, predicted_mem_gb=1.0)]
    cut = with_parts(workload, pieces)
    assert whole.key not in cut.jobs and all(i.key != whole.key for i in cut.items)
    parts = [next(i for i in cut.items if i.tasks == (name,)) for name in names]
    assert sum(p.predicted_runtime_s for p in parts) == pytest.approx(whole.predicted_runtime_s)
    truths = [cut.jobs[p.key] for p in parts]
    group = workload.jobs[whole.key].tasks[0]
    assert abs(sum(t.tasks[0].documents for t in truths) - group.documents) <= 3
    # A part draws its group's noise (same stream), so cutting a group changes where its work runs, not how much.
    truth = TruthConfig(noise=0.3, outlier_rate=0.0)
    luck = {round(true_cost(job, H100, 1, None, config=truth, luck="7").runtime_s / expected_cost(job, H100).runtime_s,
                  9) for job in [workload.jobs[whole.key], *truths]}
    assert len(luck) == 1


def test_only_bare_letter_tasks_are_scored_one_pass_a_document() -> None:
    # The catalog's letter tasks (checked against lm-eval's yamls in tests/test_catalog.py) share one pass per
    # document in lm-eval; tasks whose options are whole answers pay a pass per option.
    flags = {name: sim_task(TaskSpec(name=name, shots=0), 10).one_pass for name in ("mmlu", "kmmlu", "hellaswag")}
    assert flags == {"mmlu": True, "kmmlu": True, "hellaswag": False}
