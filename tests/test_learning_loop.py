"""Learning with use: every run that records results retrains the predictor, and the next plan uses it."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow


def _profile(tmp_path: Path) -> str:
    path = tmp_path / "learn.yaml"
    path.write_text(yaml.safe_dump({
        "name": "learn", "batch_size": 2, "task_paths": [str(REPO / "profiles" / "tasks")],
        "models": [{"name": "tiny", "builtin": "tiny-llama-4m", "params_b": 0.004, "dtype": "float32"}],
        "tasks": [{"name": "sb_facts", "shots": 0}, {"name": "sb_ko", "shots": 0}, {"name": "sb_arith", "shots": 1},
                  {"name": "sb_humaneval", "shots": 0, "allow_code_execution": True}],
        "scheduler": {"min_learning_data": 4, "stable_learning_data": 8},
    }))
    return str(path)


def test_runs_train_the_predictor_and_plans_use_it(tmp_path: Path, data_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite runs two test processes on two cores: each run's attempts meet the other's work, and would be left
    # out of learning (tests/store/test_learning_store.py checks that) where this test counts records.
    monkeypatch.setenv("SPECTRABENCH_LEARN_FROM_BUSY_MACHINE", "1")
    profile = _profile(tmp_path)
    before = json.loads(run_cli("plan", "--profile", profile, "--limit", "2", "--json").stdout)
    assert before["predictor_version"] is None
    assert {job["stage"] for job in before["jobs"]} == {"intelligent"}

    summaries = []
    for limit in ("1", "2", "3"):
        result = run_cli("run", "--profile", profile, "--mode", "per-model", "--limit", limit, "--json")
        assert result.code == 0, result.stderr[-3000:]
        summaries.append(json.loads(result.stdout))
    assert summaries[0]["predictor_version"] is None and "not trained" in summaries[0]["training"]
    assert summaries[-1]["predictor_version"] is not None

    con = duckdb.connect(str(data_dir / "spectrabench.duckdb"), read_only=True)
    versions = con.execute("SELECT version, n_records FROM predictors ORDER BY version").fetchall()
    features = con.execute("SELECT features FROM task_results").fetchall()
    predicted = con.execute("SELECT count(*) FROM jobs WHERE predicted_runtime_s > 0 AND predicted_stage IS NOT NULL"
                            ).fetchone()[0]
    con.close()
    assert versions[-1][1] == 12
    assert all(json.loads(f)["model"] == "tiny" for (f,) in features)
    # Every record carries the CPU speed its runtimes were measured at (`harness.cpuspeed`).
    assert all(json.loads(f)["cpu_gflops"] > 0 for (f,) in features)
    assert predicted == 3

    after = json.loads(run_cli("plan", "--profile", profile, "--limit", "4", "--json").stdout)
    assert after["predictor_version"] == versions[-1][0]
    assert {job["stage"] for job in after["jobs"]} == {"adaptive"}

    calibrated = run_cli("calibrate", "predictor", "--profile", profile, "--json")
    assert calibrated.code == 0, calibrated.stderr
    report = json.loads(calibrated.stdout)
    assert report["records"] == 12 and report["version"] == versions[-1][0] + 1
    # Twelve records of four pairs are too few to measure how far corrections carry over: new pairs get all of it.
    assert report["unseen_pair_weight"] == 1.0
    assert set(report["cv"]) >= {"rules", "learned", "blend"}
    assert report["stages"][0]["stage"] == "adaptive"
