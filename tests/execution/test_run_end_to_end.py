"""`spectrabench run` for real: worker subprocesses running lm-eval on a tiny model, recorded in DuckDB."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow

SECRET = "hf_test_secret_token_value_1234"


def _write_profile(tmp_path: Path, models: list[dict[str, object]], tasks: list[dict[str, object]]) -> str:
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump({"name": "mini", "limit": 3, "batch_size": 2,
                                    "task_paths": [str(REPO / "profiles" / "tasks")],
                                    "models": models, "tasks": tasks}))
    return str(path)


TINY = {"name": "tiny", "builtin": "tiny-llama-4m", "params_b": 0.004, "dtype": "float32"}
TASKS = [{"name": "sb_facts", "shots": 0}, {"name": "sb_ko", "shots": 1}]


def _count(db: Path, table: str) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        con.close()


def test_run_records_everything_then_resumes_then_forces(tmp_path: Path, data_dir: Path) -> None:
    profile = _write_profile(tmp_path, [TINY], TASKS)
    first = run_cli("run", "--profile", profile, "--json", env={"HF_TOKEN": SECRET})
    assert first.code == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout)
    # Optimized (the default) on one CPU device: both tasks in one worker, one model load.
    assert (summary["mode"], summary["jobs_total"], summary["jobs_completed"], summary["jobs_failed"]) == (
        "optimized", 1, 1, 0)
    db = data_dir / "spectrabench.duckdb"
    for table in ("runs", "jobs", "attempts", "scores", "samples", "task_results"):
        assert _count(db, table) > 0, table
    assert _count(db, "attempts") == 1
    con = duckdb.connect(str(db), read_only=True)
    # The attempt measured the machine while it ran: its own cores busy (the worker loading and evaluating) and the
    # other work beside it, on the cores it could use.
    own, other, cores = con.execute("SELECT own_cores, other_cores, cores FROM attempts").fetchone()
    assert own > 0.05 and other >= 0.0 and cores >= 1
    per_task = con.execute("SELECT task, n_samples, runtime_s FROM task_results ORDER BY task").fetchall()
    sample_docs = con.execute("SELECT task, count(DISTINCT doc_id) FROM samples GROUP BY task ORDER BY task").fetchall()
    con.close()
    assert [(t, n) for t, n, _ in per_task] == [("sb_facts", 3), ("sb_ko", 3)]
    assert all(runtime > 0 for _, _, runtime in per_task)
    assert sample_docs == [("sb_facts", 3), ("sb_ko", 3)]

    # Whatever order the worker ran them in (longest first), the leaderboard lists tasks as the profile does.
    md = run_cli("report", "--format", "md").stdout
    assert "| model | sb_facts | sb_ko |" in md, md

    second = run_cli("run", "--profile", profile)
    assert second.code == 0, second.stderr[-3000:]
    assert "all jobs are complete; no worker started" in second.stderr
    assert _count(db, "attempts") == 1

    report = run_cli("report", "--format", "json")
    board = json.loads(report.stdout)
    assert {(r["model"], r["task"]) for r in board["scores"] if r["value"] is not None} == {
        ("tiny", "sb_facts"), ("tiny", "sb_ko")}
    assert all(r["measured_in"] != board["run"]["run_id"] for r in board["scores"])

    # Baseline measures the same pairs one worker each: --force reruns both.
    forced = run_cli("run", "--profile", profile, "--force", "--mode", "baseline")
    assert forced.code == 0, forced.stderr[-3000:]
    assert _count(db, "attempts") == 3

    # The token reached the workers' environment only: nothing on disk holds it.
    for path in data_dir.rglob("*"):
        if path.is_file() and path.suffix != ".duckdb":
            assert SECRET not in path.read_text(errors="replace"), path
    assert SECRET.encode() not in db.read_bytes()


def test_failed_job_is_recorded_and_the_run_goes_on(tmp_path: Path, data_dir: Path) -> None:
    missing = {"name": "ghost", "pretrained": "no-such-org/no-such-model", "params_b": 7.0}
    profile = _write_profile(tmp_path, [missing, TINY], TASKS[:1])
    result = run_cli("run", "--profile", profile, "--json")
    assert result.code == 1
    summary = json.loads(result.stdout)
    assert (summary["jobs_completed"], summary["jobs_failed"]) == (1, 1)
    failure = summary["failures"][0]
    assert failure["model"] == "ghost" and failure["kind"] == "unavailable"
    assert "not reachable" in failure["message"]
    md = run_cli("report", "--format", "md").stdout
    assert "ghost x sb_facts: unavailable" in md
    assert "| tiny |" in md and "| ghost | - |" in md


def test_extended_profile_fails_fast_with_a_cause(data_dir: Path) -> None:
    dry = run_cli("run", "--profile", "extended", "--limit", "2", "--mode", "baseline", "--dry-run", "--json")
    assert dry.code == 0
    assert len(json.loads(dry.stdout)["jobs"]) == 462
    # Optimized (the default) groups the same 462 (model, task) pairs into fewer workers, each of one model.
    grouped = json.loads(run_cli("run", "--profile", "extended", "--limit", "2", "--dry-run", "--json").stdout)
    assert grouped["mode"] == "optimized" and len(grouped["jobs"]) < 462
    pairs = [(job["model"], task) for job in grouped["jobs"] for task in job["tasks"]]
    assert len(pairs) == len(set(pairs)) == 462
    assert not data_dir.exists()

    result = run_cli("run", "--profile", "extended", "--limit", "2", "--mode", "baseline", "--json", timeout=300)
    assert result.code == 1
    summary = json.loads(result.stdout)
    assert summary["jobs_failed"] == 462 and summary["jobs_completed"] == 0
    assert {f["kind"] for f in summary["failures"]} == {"unavailable"}
    assert _count(data_dir / "spectrabench.duckdb", "attempts") == 0, "no worker may start for unreachable models"
