"""A group run in parts scores exactly as lm-eval scores it whole: each leaf, and the group's aggregate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spectrabench.harness.groupscores import (
    GroupBuilds,
    PartError,
    aggregate_groups,
    parse_structure,
    part_of_group,
)
from spectrabench.harness.localtasks import group_leaves, index_local
from spectrabench.harness.models import provision
from spectrabench.harness.results import parse_scores
from tests.conftest import MODEL_CACHE, REPO
from tests.groups import GROUP, LEAVES, write_pair_group

TASKS_DIR = REPO / "profiles" / "tasks"


def test_a_local_group_is_indexed_with_its_leaves(tmp_path: Path) -> None:
    folder = write_pair_group(tmp_path / "groups")
    tasks, groups = index_local([TASKS_DIR, folder])
    assert groups[GROUP].members == LEAVES and GROUP not in tasks
    assert [leaf.name for leaf in group_leaves(GROUP, tasks, groups) or []] == list(LEAVES)
    # A member that is not local (a built-in task, a tag) leaves the group to lm-eval alone.
    assert group_leaves(GROUP, {"sb_facts": tasks["sb_facts"]}, groups) is None


@pytest.mark.slow
def test_parts_give_lm_evals_leaf_and_group_scores(tmp_path: Path) -> None:
    # In one process with one loaded model, as the worker runs them (the worker's own path is covered end to end
    # in tests/execution/test_group_parts.py).
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    folder = write_pair_group(tmp_path / "groups")
    lm = HFLM(pretrained=str(provision("tiny-llama-4m", MODEL_CACHE)), dtype="float32", batch_size=2, device="cpu")

    def evaluate(tasks: list[Any]) -> dict[str, Any]:
        manager = TaskManager(include_path=[str(TASKS_DIR), str(folder)], include_defaults=False)
        found = lm_eval.simple_evaluate(model=lm, tasks=tasks, num_fewshot=0, limit=5, batch_size=2,
                                        task_manager=manager, log_samples=True)
        assert found is not None
        return dict(found)

    direct = evaluate([GROUP])
    expected = {(r.subtask, r.metric, r.filter): (r.value, r.stderr) for r in parse_scores(direct)}
    leaf_rows = []
    structure = {}
    # One worker running every part builds the group once and takes each part's leaves from that build.
    counting = _CountingLoads(TaskManager(include_path=[str(TASKS_DIR), str(folder)], include_defaults=False))
    builds = GroupBuilds(counting)
    for index, leaf in enumerate(LEAVES, start=1):
        tasks, raw = builds.part(GROUP, index, len(LEAVES))
        structure = parse_structure(raw)
        part = evaluate(tasks)
        rows = parse_scores(part)
        assert {r.subtask for r in rows} == {leaf}, "each part runs its own slice of the leaves"
        leaf_rows += rows
        samples = {(leaf, r["doc_id"], m): float(r[m]) for r in part["samples"][leaf] for m in r["metrics"]}
        assert samples == {(leaf, r["doc_id"], m): float(r[m]) for r in direct["samples"][leaf] for m in r["metrics"]}
    assert {(r.subtask, r.metric, r.filter): (r.value, r.stderr) for r in leaf_rows} == {
        k: v for k, v in expected.items() if k[0] in LEAVES}
    assert structure[GROUP].leaves == LEAVES
    group_rows = aggregate_groups(structure, leaf_rows)
    assert {(r.subtask, r.metric, r.filter): (r.value, r.stderr) for r in group_rows} == {
        k: v for k, v in expected.items() if k[0] == GROUP}
    assert group_rows and all(r.n_samples == 10 for r in group_rows)
    assert counting.loads == 1


class _CountingLoads:
    """A task manager that counts the groups it builds."""

    def __init__(self, manager: Any) -> None:
        self.manager, self.loads = manager, 0

    def load(self, names: list[str]) -> Any:
        self.loads += 1
        return self.manager.load(names)

    def __getattr__(self, name: str) -> Any:  # the rest of TaskManager, for lm-eval itself
        return getattr(self.manager, name)


@pytest.mark.slow
def test_parts_score_the_same_random_sample_as_the_whole_group(tmp_path: Path) -> None:
    # `run --sampling random` with a group in parts: the worker draws each part's nested samples from the leaves
    # the part holds (`harness.worker`); each part must score the very documents the whole group scores.
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from spectrabench.harness.sampling import leaf_samples, random_samples

    folder = write_pair_group(tmp_path / "groups")
    lm = HFLM(pretrained=str(provision("tiny-llama-4m", MODEL_CACHE)), dtype="float32", batch_size=2, device="cpu")

    def manager() -> Any:
        return TaskManager(include_path=[str(TASKS_DIR), str(folder)], include_defaults=False)

    def evaluate(tasks: list[Any], samples: dict[str, list[int]]) -> dict[str, Any]:
        found = lm_eval.simple_evaluate(model=lm, tasks=tasks, num_fewshot=0, limit=None, samples=samples,
                                        batch_size=2, task_manager=manager(), log_samples=True)
        assert found is not None
        return dict(found)

    drawn = random_samples(GROUP, manager(), 4, 11)
    assert set(drawn) == set(LEAVES) and all(len(ids) == 4 for ids in drawn.values())
    direct = evaluate([GROUP], drawn)
    # Each part draws from the leaves it holds, built once for all of them, the very documents the group draws.
    counting = _CountingLoads(manager())
    builds = GroupBuilds(counting)
    for index, leaf in enumerate(LEAVES, start=1):
        tasks, _ = builds.part(GROUP, index, len(LEAVES))
        own = leaf_samples({t.task_name: t for t in tasks}, 4, 11)
        assert own == {leaf: drawn[leaf]}
        part = evaluate(tasks, own)
        scored = {(r["doc_id"], m): float(r[m]) for r in part["samples"][leaf] for m in r["metrics"]}
        assert sorted({d for d, _ in scored}) == drawn[leaf], "the part scores the drawn documents, not the first"
        assert scored == {(r["doc_id"], m): float(r[m]) for r in direct["samples"][leaf] for m in r["metrics"]}
        assert part["results"][leaf] == direct["results"][leaf]
    assert counting.loads == 1


def test_a_task_that_is_no_group_cannot_run_in_parts() -> None:
    from lm_eval.tasks import TaskManager

    with pytest.raises(PartError, match="not an lm-eval group"):
        part_of_group(TaskManager(include_path=[str(TASKS_DIR)], include_defaults=False), "sb_facts", 1, 2)


def test_aggregation_weights_by_size_or_not_and_discovers_filters() -> None:
    from spectrabench.harness.groupscores import GroupSpec
    from spectrabench.harness.results import ScoreRow

    rows = [ScoreRow("a", "acc", "none", 1.0, 0.1, 30), ScoreRow("b", "acc", "none", 0.0, 0.2, 10),
            ScoreRow("a", "em", "strict", 0.5, None, 30), ScoreRow("b", "em", "strict", 0.25, 0.1, 10)]
    groups = {"g": GroupSpec(("a", "b"), (("acc", None, True), ("em", ("strict",), False)))}
    by_metric = {r.metric: r for r in aggregate_groups(groups, rows)}
    assert by_metric["acc"].value == pytest.approx(0.75) and by_metric["acc"].n_samples == 40
    assert by_metric["em"].value == pytest.approx(0.375) and by_metric["em"].stderr is None  # one leaf had none


@pytest.mark.slow
def test_a_worker_draws_random_samples_for_its_parts_from_one_build_of_the_group(tmp_path: Path) -> None:
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from spectrabench.harness.worker import _evaluate_task
    from spectrabench.harness.workerspec import WorkerModel, WorkerSpec
    from spectrabench.planning.jobs import TaskRef, part_ref

    folder = write_pair_group(tmp_path / "groups")
    lm = HFLM(pretrained=str(provision("tiny-llama-4m", MODEL_CACHE)), dtype="float32", batch_size=2, device="cpu")
    whole = TaskRef(name=GROUP, harness_name=GROUP, shots=0, allow_code_execution=False, version="t", task_key="g")
    builds = {}
    for sampling in ("first", "random"):
        spec = WorkerSpec(job_key="parts", attempt=1, model=WorkerModel(name="tiny", builtin="tiny-llama-4m",
                                                                         dtype="float32"),
                          tasks=tuple(part_ref(whole, i, len(LEAVES)) for i in range(1, len(LEAVES) + 1)), limit=4,
                          batch_size=2, sampling=sampling, sample_seed=11, model_cache_dir=str(MODEL_CACHE),
                          out_dir=str(tmp_path / sampling))
        counting = _CountingLoads(TaskManager(include_path=[str(TASKS_DIR), str(folder)], include_defaults=False))
        groups = GroupBuilds(counting)
        for index in range(len(LEAVES)):
            _evaluate_task(lm, spec, index, counting, groups)
        builds[sampling] = counting.loads
    assert builds["random"] == builds["first"], "drawing the sample builds nothing more"
