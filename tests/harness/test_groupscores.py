"""A group run in parts scores exactly as lm-eval scores it whole: each leaf, and the group's aggregate."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from spectrabench.execution.attempt import run_attempt
from spectrabench.harness.groupscores import GROUPS_KEY, aggregate_groups, parse_structure
from spectrabench.harness.localtasks import group_leaves, index_local
from spectrabench.harness.models import provision
from spectrabench.harness.results import parse_scores, read_task_output
from spectrabench.harness.workerspec import WorkerModel, WorkerSpec, task_results_file
from spectrabench.planning.jobs import TaskRef, part_ref
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
    import lm_eval
    from lm_eval.tasks import TaskManager

    folder = write_pair_group(tmp_path / "groups")
    whole = TaskRef(name=GROUP, harness_name=GROUP, shots=0, allow_code_execution=False, version="t",
                    task_key="key-pair")
    parts = (part_ref(whole, 1, 2), part_ref(whole, 2, 2))
    spec = WorkerSpec(job_key="parts", attempt=1, model=WorkerModel(name="tiny", builtin="tiny-llama-4m",
                                                                     dtype="float32"),
                      tasks=parts, limit=5, batch_size=2, include_paths=[str(TASKS_DIR), str(folder)],
                      include_defaults=False, model_cache_dir=str(MODEL_CACHE), out_dir=str(tmp_path / "attempt"))
    outcome = run_attempt(spec, dict(os.environ))
    assert outcome.error_kind is None, outcome.log_path.read_text()[-2000:]

    direct = lm_eval.simple_evaluate(
        model="hf", model_args={"pretrained": str(provision("tiny-llama-4m", MODEL_CACHE)), "dtype": "float32"},
        tasks=[GROUP], num_fewshot=0, limit=5, batch_size=2, device="cpu", log_samples=True,
        task_manager=TaskManager(include_path=[str(TASKS_DIR), str(folder)], include_defaults=False))
    assert direct is not None
    expected = {(r.subtask, r.metric, r.filter): (r.value, r.stderr) for r in parse_scores(direct)}
    leaf_rows = []
    for ref, leaf in zip(parts, LEAVES, strict=True):
        output = read_task_output(tmp_path / "attempt", ref.name)
        assert {r.subtask for r in output.scores} == {leaf}, "each part runs its own slice of the leaves"
        leaf_rows += output.scores
        samples = {(s.subtask, s.doc_id, s.metric): s.value for s in output.samples}
        assert samples == {(leaf, r["doc_id"], m): float(r[m]) for r in direct["samples"][leaf] for m in r["metrics"]}
    assert {(r.subtask, r.metric, r.filter): (r.value, r.stderr) for r in leaf_rows} == {
        k: v for k, v in expected.items() if k[0] in LEAVES}
    structure = parse_structure(json.loads(task_results_file(tmp_path / "attempt", parts[0].name).read_text())
                                [GROUPS_KEY])
    assert structure[GROUP].leaves == LEAVES
    group_rows = aggregate_groups(structure, leaf_rows)
    assert {(r.subtask, r.metric, r.filter): (r.value, r.stderr) for r in group_rows} == {
        k: v for k, v in expected.items() if k[0] == GROUP}
    assert group_rows and all(r.n_samples == 10 for r in group_rows)


def test_aggregation_weights_by_size_or_not_and_discovers_filters() -> None:
    from spectrabench.harness.groupscores import GroupSpec
    from spectrabench.harness.results import ScoreRow

    rows = [ScoreRow("a", "acc", "none", 1.0, 0.1, 30), ScoreRow("b", "acc", "none", 0.0, 0.2, 10),
            ScoreRow("a", "em", "strict", 0.5, None, 30), ScoreRow("b", "em", "strict", 0.25, 0.1, 10)]
    groups = {"g": GroupSpec(("a", "b"), (("acc", None, True), ("em", ("strict",), False)))}
    by_metric = {r.metric: r for r in aggregate_groups(groups, rows)}
    assert by_metric["acc"].value == pytest.approx(0.75) and by_metric["acc"].n_samples == 40
    assert by_metric["em"].value == pytest.approx(0.375) and by_metric["em"].stderr is None  # one leaf had none
