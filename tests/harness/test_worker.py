"""Our worker gives exactly the scores that lm-eval's own simple_evaluate gives for the same model and task."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from spectrabench.execution.attempt import run_attempt
from spectrabench.harness.models import provision
from spectrabench.harness.results import read_task_output
from spectrabench.harness.workerspec import WorkerModel, WorkerSpec, task_results_file
from spectrabench.planning.jobs import TaskRef
from tests.conftest import MODEL_CACHE, REPO

pytestmark = pytest.mark.slow
TASKS_DIR = REPO / "profiles" / "tasks"


def _ref(name: str, shots: int) -> TaskRef:
    return TaskRef(name=name, harness_name=name, shots=shots, allow_code_execution=False, version="t",
                   task_key=f"key-{name}")


def test_worker_matches_simple_evaluate(tmp_path: Path) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    model_path = provision("tiny-llama-4m", MODEL_CACHE)
    tasks = (_ref("sb_facts", 0), _ref("sb_arith", 2))
    spec = WorkerSpec(job_key="parity", attempt=1, model=WorkerModel(name="tiny", builtin="tiny-llama-4m",
                                                                      dtype="float32"),
                      tasks=tasks, limit=4, batch_size=2, include_paths=[str(TASKS_DIR)], include_defaults=False,
                      model_cache_dir=str(MODEL_CACHE), out_dir=str(tmp_path / "attempt"))
    outcome = run_attempt(spec, dict(os.environ))
    assert outcome.error_kind is None, outcome.log_path.read_text()[-2000:]
    assert outcome.progress["load_s"] > 0 and outcome.progress["peak_mem_gb"] > 0
    assert set(outcome.progress["tasks"]) == {"sb_facts", "sb_arith"}

    for ref in tasks:
        ours = json.loads(task_results_file(tmp_path / "attempt", ref.name).read_text())
        assert {"results", "configs", "versions", "n-shot", "n-samples", "config"} <= set(ours)
        direct = lm_eval.simple_evaluate(
            model="hf", model_args={"pretrained": str(model_path), "dtype": "float32"}, tasks=[ref.name],
            num_fewshot=ref.shots, limit=4, batch_size=2, device="cpu", log_samples=True,
            task_manager=TaskManager(include_path=str(TASKS_DIR), include_defaults=False))
        assert direct is not None
        metrics = {k: v for k, v in direct["results"][ref.name].items() if k != "alias"}
        assert {k: ours["results"][ref.name][k] for k in metrics} == metrics
        assert ours["n-shot"][ref.name] == ref.shots
        ours_samples = {(s.doc_id, s.metric, s.filter): s.value
                        for s in read_task_output(tmp_path / "attempt", ref.name).samples}
        direct_samples = {(r["doc_id"], m, r["filter"]): float(r[m])
                          for r in direct["samples"][ref.name] for m in r["metrics"]}
        assert ours_samples == direct_samples
        assert len({doc for doc, _, _ in ours_samples}) == 4
