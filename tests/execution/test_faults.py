"""Failure handling with real workers: each fault is injected into real subprocesses running real lm-eval, and
in every case the other jobs of the run complete and keep their scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow

FAULTY = {"name": "faulty", "builtin": "tiny-llama-4m", "params_b": 0.004, "dtype": "float32"}
HEALTHY = {"name": "healthy", "builtin": "tiny-llama-15m", "params_b": 0.015, "dtype": "float32"}
TASKS = [{"name": "sb_facts", "shots": 0}, {"name": "sb_ko", "shots": 0}]


def _profile(tmp_path: Path, models: list[dict[str, Any]]) -> str:
    path = tmp_path / "faults.yaml"
    path.write_text(yaml.safe_dump({"name": "faults", "limit": 2, "batch_size": 4,
                                    "task_paths": [str(REPO / "profiles" / "tasks")],
                                    "models": models, "tasks": TASKS}))
    return str(path)


def _run(tmp_path: Path, fault: str, *extra: str, models: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    result = run_cli("run", "--profile", _profile(tmp_path, models or [FAULTY, HEALTHY]), "--mode", "parallel",
                     "--devices", "cpu:2", "--json", *extra, env={"SPECTRABENCH_FAULT": fault})
    assert result.code in (0, 1), result.stderr[-3000:]
    return dict(json.loads(result.stdout))


def _attempts(data_dir: Path, model: str) -> list[tuple[int, int, str | None, list[str]]]:
    con = duckdb.connect(str(data_dir / "spectrabench.duckdb"), read_only=True)
    rows = con.execute("SELECT a.attempt, a.batch_size, a.error_kind, a.tasks FROM attempts a JOIN jobs j "
                       "USING (job_key, run_id) WHERE j.model = ? ORDER BY a.attempt", [model]).fetchall()
    con.close()
    return [(attempt, batch, kind, json.loads(tasks)) for attempt, batch, kind, tasks in rows]


def _scored(data_dir: Path) -> set[tuple[str, str]]:
    con = duckdb.connect(str(data_dir / "spectrabench.duckdb"), read_only=True)
    rows = con.execute("SELECT DISTINCT model, task FROM task_results").fetchall()
    con.close()
    return {(m, t) for m, t in rows}


def _healthy_complete(data_dir: Path) -> None:
    assert {("healthy", "sb_facts"), ("healthy", "sb_ko")} <= _scored(data_dir)


def test_oom_is_retried_with_half_the_batch(tmp_path: Path, data_dir: Path) -> None:
    # One halving is enough here (each attempt is a worker start); tests/execution/test_retry.py walks the whole
    # ladder down to batch 1 without workers.
    summary = _run(tmp_path, "oom:model=faulty,task=sb_facts,batch_gt=2")
    assert summary["jobs_failed"] == 0
    assert [(a, b, k) for a, b, k, _ in _attempts(data_dir, "faulty")] == [(1, 4, "oom"), (2, 2, None)]
    assert {("faulty", "sb_facts"), ("faulty", "sb_ko")} <= _scored(data_dir)
    _healthy_complete(data_dir)


def test_crash_is_retried_and_finished_tasks_are_kept(tmp_path: Path, data_dir: Path) -> None:
    summary = _run(tmp_path, "crash:model=faulty,attempt=1,task=sb_ko")
    assert summary["jobs_failed"] == 0 and summary["retries"] == 1
    attempts = _attempts(data_dir, "faulty")
    assert [(a, k) for a, _, k, _ in attempts] == [(1, "crash"), (2, None)]
    assert attempts[0][3] == ["sb_facts", "sb_ko"] and attempts[1][3] == ["sb_ko"], "the retry runs only the rest"
    _healthy_complete(data_dir)


def test_hang_is_killed_at_the_timeout(tmp_path: Path, data_dir: Path) -> None:
    # The timeout bounds every job of the run, healthy ones too: 60 s leaves them room while `make test` runs two
    # test processes side by side on two cores.
    summary = _run(tmp_path, "hang:model=faulty,attempt=1", "--job-timeout", "60")
    assert summary["jobs_failed"] == 0
    assert [(a, k) for a, _, k, _ in _attempts(data_dir, "faulty")] == [(1, "timeout"), (2, None)]
    child = next(data_dir.rglob("hang-child.pid"))
    import psutil

    pid = int(child.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    _healthy_complete(data_dir)


def test_corrupt_results_are_bad_output(tmp_path: Path, data_dir: Path) -> None:
    summary = _run(tmp_path, "corrupt:model=faulty,task=sb_facts", "--max-retries", "1")
    assert summary["jobs_failed"] == 1
    failure = summary["failures"][0]
    assert (failure["model"], failure["kind"]) == ("faulty", "bad_output")
    assert [(a, k) for a, _, k, _ in _attempts(data_dir, "faulty")] == [(1, "bad_output"), (2, "bad_output")]
    _healthy_complete(data_dir)


def test_unavailable_model_gets_one_attempt(tmp_path: Path, data_dir: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "README.md").write_text("no weights here")
    ghost = {"name": "ghost", "pretrained": str(broken), "params_b": 1.0, "dtype": "float32"}
    summary = _run(tmp_path, "", models=[ghost, HEALTHY])
    assert summary["jobs_failed"] == 1 and summary["failures"][0]["kind"] == "unavailable"
    assert [(a, k) for a, _, k, _ in _attempts(data_dir, "ghost")] == [(1, "unavailable")]
    _healthy_complete(data_dir)
