"""An optimized run cuts a dominant lm-eval group into parts on two devices, scores exactly as the baseline that
runs it whole, and resumes a lost part alone."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml

from tests.conftest import REPO, run_cli
from tests.groups import GROUP, LEAVES, write_pair_group

pytestmark = pytest.mark.slow


def test_a_group_in_parts_scores_as_the_whole_and_a_lost_part_reruns_alone(tmp_path: Path,
                                                                           data_dir: Path) -> None:
    folder = write_pair_group(tmp_path / "groups")
    profile = tmp_path / "pair.yaml"
    profile.write_text(yaml.safe_dump({
        "name": "pair", "limit": 4, "batch_size": 2, "task_paths": [str(REPO / "profiles" / "tasks"), str(folder)],
        "models": [{"name": "tiny", "builtin": "tiny-llama-4m", "params_b": 0.004, "dtype": "float32"}],
        "tasks": [{"name": GROUP, "shots": 0}]}))
    plan = run_cli("plan", "--profile", str(profile), "--devices", "cpu:2", "--json")
    assert plan.code == 0, plan.stderr
    planned = [task for job in json.loads(plan.stdout)["jobs"] for task in job["tasks"]]
    assert sorted(planned) == [f"{GROUP}[1/2]", f"{GROUP}[2/2]"], "one model, one group, two devices: two parts"

    result = run_cli("compare", "--profile", str(profile), "--devices", "cpu:2", "--json")
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["identical"], summary["parity"]
    assert summary["parity"]["samples_compared"] > 0
    optimized = summary["optimized"]["run_id"]

    db = data_dir / "spectrabench.duckdb"
    con = duckdb.connect(str(db))
    try:
        # Both runs stored the group's own score (lm-eval's aggregate, recomputed from the parts), under one key.
        rows = con.execute("SELECT run_id, task_key, value FROM scores WHERE subtask = ? AND metric = 'acc' "
                           "ORDER BY run_id", [GROUP]).fetchall()
        assert len(rows) == 2 and rows[0][1:] == rows[1][1:]
        status = con.execute("SELECT task, status FROM run_tasks WHERE run_id = ?", [optimized]).fetchall()
        assert status == [(GROUP, "complete")]
        # Lose one part's result (and the group's): the next run reruns that part alone and scores the group again.
        found = con.execute("SELECT task_key FROM scores WHERE run_id = ? AND subtask = ?",
                            [optimized, LEAVES[1]]).fetchone()
        assert found is not None
        lost = found[0]
        whole = rows[1][1]
        for table in ("task_results", "scores", "samples"):
            con.execute(f"DELETE FROM {table} WHERE task_key IN (?, ?)", [lost, whole])
    finally:
        con.close()
    again = run_cli("run", "--profile", str(profile), "--devices", "cpu:2", "--json")
    assert again.code == 0, again.stderr
    run = json.loads(again.stdout)
    assert (run["jobs_completed"], run["jobs_reused"], run["attempts"]) == (1, 1, 1)
    con = duckdb.connect(str(db), read_only=True)
    try:
        value = con.execute("SELECT value FROM scores WHERE run_id = ? AND subtask = ? AND metric = 'acc'",
                            [run["run_id"], GROUP]).fetchone()
    finally:
        con.close()
    assert value is not None and value[0] == rows[0][2]
    report = run_cli("report", "--run", run["run_id"], "--format", "json")
    assert report.code == 0, report.stderr
    assert GROUP in report.stdout


def test_a_group_in_parts_within_one_job_scores_as_the_whole(tmp_path: Path, data_dir: Path) -> None:
    # Three small models on three devices: where the group outlasts the model's load it runs in its job as its
    # parts, one after another (`planning.subtasks.MIN_DEVICES_FOR_TAILS`).
    folder = write_pair_group(tmp_path / "groups")
    profile = tmp_path / "three.yaml"
    profile.write_text(yaml.safe_dump({
        "name": "three", "limit": 16, "batch_size": 2,
        "task_paths": [str(REPO / "profiles" / "tasks"), str(folder)],
        "models": [{"name": name, "builtin": name, "params_b": params_b, "dtype": "float32"}
                   for name, params_b in (("tiny-llama-4m", 0.004), ("tiny-llama-15m", 0.015),
                                          ("tiny-llama-40m", 0.04))],
        "tasks": [{"name": GROUP, "shots": 0}, {"name": "sb_arith", "shots": 0}]}))
    plan = run_cli("plan", "--profile", str(profile), "--devices", "cpu:3", "--json")
    assert plan.code == 0, plan.stderr
    jobs = json.loads(plan.stdout)["jobs"]
    # Each model's group runs once: whole, or as both parts, in one job or two.
    for model in ("tiny-llama-4m", "tiny-llama-15m", "tiny-llama-40m"):
        held = sorted(task for job in jobs if job["model"] == model for task in job["tasks"] if GROUP in task)
        assert held in ([GROUP], [f"{GROUP}[1/2]", f"{GROUP}[2/2]"]), jobs
    assert any({f"{GROUP}[1/2]", f"{GROUP}[2/2]"} <= set(job["tasks"]) for job in jobs), jobs

    result = run_cli("compare", "--profile", str(profile), "--devices", "cpu:3", "--json")
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["identical"], summary["parity"]
    con = duckdb.connect(str(data_dir / "spectrabench.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT run_id, model, value FROM scores WHERE subtask = ? AND metric = 'acc' "
                           "ORDER BY model, run_id", [GROUP]).fetchall()
    finally:
        con.close()
    assert len(rows) == 6, "each model's group scored by both runs"
    assert all(rows[i][2] == rows[i + 1][2] for i in (0, 2, 4))


def test_a_group_in_parts_scores_the_random_sample_the_whole_group_scores(tmp_path: Path, data_dir: Path) -> None:
    # `--sampling random`: each part draws its leaves' samples from the leaves it built, not from a new build of the
    # whole group; the documents and their scores are those of the baseline, which runs the group whole.
    folder = write_pair_group(tmp_path / "groups")
    profile = tmp_path / "pair.yaml"
    profile.write_text(yaml.safe_dump({
        "name": "pair", "batch_size": 2, "task_paths": [str(REPO / "profiles" / "tasks"), str(folder)],
        "models": [{"name": "tiny", "builtin": "tiny-llama-4m", "params_b": 0.004, "dtype": "float32"}],
        "tasks": [{"name": GROUP, "shots": 0}]}))
    plan = run_cli("plan", "--profile", str(profile), "--devices", "cpu:2", "--limit", "4", "--json")
    assert plan.code == 0, plan.stderr
    planned = [task for job in json.loads(plan.stdout)["jobs"] for task in job["tasks"]]
    assert sorted(planned) == [f"{GROUP}[1/2]", f"{GROUP}[2/2]"], "the optimized run runs it in parts"
    runs = {}
    for mode in ("baseline", "optimized"):
        result = run_cli("run", "--profile", str(profile), "--devices", "cpu:2", "--mode", mode, "--limit", "4",
                         "--sampling", "random", "--seed", "11", "--force", "--json")
        assert result.code == 0, result.stderr
        runs[mode] = json.loads(result.stdout)["run_id"]
    con = duckdb.connect(str(data_dir / "spectrabench.duckdb"), read_only=True)
    try:
        scored = {mode: con.execute("SELECT subtask, doc_id, metric, value FROM samples WHERE run_id = ? "
                                    "ORDER BY ALL", [run_id]).fetchall() for mode, run_id in runs.items()}
    finally:
        con.close()
    assert scored["optimized"] == scored["baseline"] and scored["baseline"]
    ids = {(leaf, doc) for leaf, doc, _, _ in scored["baseline"]}
    assert all(len([d for leaf_, d in ids if leaf_ == leaf]) == 4 for leaf in LEAVES)
    assert ids != {(leaf, doc) for leaf in LEAVES for doc in range(4)}, "a random sample, not the first documents"
