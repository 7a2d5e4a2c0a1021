"""`spectrabench compare` for real: baseline then optimized on cpu:2, same scores, recorded as a pair."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml

from spectrabench.store.parity import compare_runs
from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow

MODELS = [{"name": "tiny", "builtin": "tiny-llama-4m", "params_b": 0.004, "dtype": "float32"},
          {"name": "small", "builtin": "tiny-llama-15m", "params_b": 0.016, "dtype": "float32"}]
TASKS = [{"name": "sb_facts", "shots": 0}, {"name": "sb_arith", "shots": 2}]


def test_compare_runs_both_modes_and_finds_identical_scores(tmp_path: Path, data_dir: Path) -> None:
    profile = tmp_path / "pair.yaml"
    profile.write_text(yaml.safe_dump({"name": "pair", "limit": 2, "batch_size": 2,
                                       "task_paths": [str(REPO / "profiles" / "tasks")],
                                       "models": MODELS, "tasks": TASKS}))
    result = run_cli("compare", "--profile", str(profile), "--devices", "cpu:2", "--json")
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["ok"] and summary["identical"]
    baseline, optimized = summary["baseline"], summary["optimized"]
    assert (baseline["mode"], optimized["mode"]) == ("baseline", "optimized")
    assert baseline["jobs_completed"] == 4, "baseline: one worker per (model, task)"
    assert optimized["jobs_completed"] < 4 and optimized["devices"] == "cpu:0,cpu:1"
    parity = summary["parity"]
    assert parity["samples_compared"] > 0 and parity["scores_compared"] > 0 and parity["mismatches"] == []
    # Other work on the machine is measured while each run is timed, and flagged when it is much.
    loads = summary["background"]
    assert set(loads) == {"baseline", "optimized"}
    assert all(load["other_cores"] >= 0 and load["steal_cores"] >= 0 and load["cores"] >= 1
               for load in loads.values())
    assert summary["noisy"] == any(max(load["other_cores"], load["steal_cores"]) > 0.1 * load["cores"]
                                   for load in loads.values())

    db = data_dir / "spectrabench.duckdb"
    con = duckdb.connect(str(db))
    try:
        roles = dict(con.execute("SELECT role, run_id FROM compares WHERE compare_id = ?",
                                 [summary["compare_id"]]).fetchall())
        assert roles == {"baseline": baseline["run_id"], "optimized": optimized["run_id"]}
        # The check can fail: change one per-sample value of the optimized run and it is caught.
        con.execute("UPDATE samples SET value = value + 1 WHERE rowid = (SELECT min(rowid) FROM samples "
                    "WHERE run_id = ?)", [optimized["run_id"]])
    finally:
        con.close()
    changed = compare_runs(db, baseline["run_id"], optimized["run_id"])
    assert not changed.identical and len(changed.mismatches) == 1
    assert changed.mismatches[0].what.startswith("sample ")

    report = run_cli("report", "--run", optimized["run_id"], "--format", "md")
    assert report.code == 0, report.stderr
