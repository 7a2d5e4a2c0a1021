"""`spectrabench calibrate limit` and `calibrate thresholds` as a user runs them: files, JSON, bad input.

One test runs the real console process; the others call the same entry point in-process (same argument parsing,
error handling and exit codes) so that numpy, LightGBM and matplotlib are imported once for the whole file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from spectrabench.cli.app import main
from spectrabench.profiles import SchedulerConfig
from tests.conftest import CliResult, run_cli
from tests.experiments.stores import write_samples

Invoke = Callable[..., CliResult]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Invoke:
    """`spectrabench ARGS` in this process: exit code, stdout, stderr."""
    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        with pytest.raises(SystemExit) as stop:
            main(list(args))
        captured = capsys.readouterr()
        return CliResult(int(stop.value.code or 0), captured.out, captured.err)

    return invoke


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("spectrabench: error: "), stderr
    return lines[0]


def test_limit_without_a_store_fails_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    result = run_cli("calibrate", "limit", "--out", "out")
    assert result.code == 2
    assert "no store at" in _one_line_error(result.stderr)
    assert not (tmp_path / "out").exists()


def test_limit_refuses_an_epsilon_outside_0_1(data_dir: Path, cli: Invoke) -> None:
    for value in ("0", "1.5", "-0.1"):
        result = cli("calibrate", "limit", "--epsilon", value)
        assert result.code == 2 and "--epsilon" in _one_line_error(result.stderr)


def test_limit_needs_runs_with_enough_documents(data_dir: Path, tmp_path: Path, cli: Invoke) -> None:
    write_samples(data_dir / "spectrabench.duckdb", "r1", "m", "facts", [1.0, 0.0] * 4)
    result = cli("calibrate", "limit", "--out", "out")
    assert result.code == 2 and "20 or more documents" in _one_line_error(result.stderr)
    assert not (tmp_path / "out").exists()


def test_limit_writes_json_and_the_convergence_figure(data_dir: Path, tmp_path: Path, cli: Invoke) -> None:
    db = data_dir / "spectrabench.duckdb"
    write_samples(db, "r1", "always", "facts", [1.0] * 200)
    write_samples(db, "r1", "never", "facts", [0.0] * 200)
    write_samples(db, "r1", "half", "facts", [1.0, 0.0] * 100)
    write_samples(db, "r1", "half", "short", [1.0, 0.0] * 5)  # 10 documents: left out
    result = cli("calibrate", "limit", "--epsilon", "0.15", "--replicates", "300", "--out", "out")
    assert result.code == 0, result.stderr
    assert "overall recommended limit: 50" in result.stdout
    assert "left out (too few documents): half x short" in result.stdout
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["convergence.png", "limits.json"]
    assert (out / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    payload = json.loads((out / "limits.json").read_text())
    assert payload["skipped_pairs"] == ["half x short"]
    (task,) = payload["tasks"]
    assert task["task"] == "facts" and task["documents"] == 200 and task["metric"] == "acc"
    # Two of three models are constant (exact from 2 documents); the third needs 50 for 0.15 at 95%.
    assert task["share_meeting"]["20"] == 2 / 3 and task["share_meeting"]["50"] == 1.0
    assert task["recommended_limit"] == 50 and payload["recommended_limit"] == 50
    (tmp_path / "a-file").write_text("")
    refused = cli("calibrate", "limit", "--replicates", "300", "--out", "a-file/out")
    assert refused.code == 2 and "cannot write to a-file/out" in _one_line_error(refused.stderr)


def test_thresholds_without_enough_history_fail_in_one_line(data_dir: Path, tmp_path: Path, cli: Invoke) -> None:
    result = cli("calibrate", "thresholds", "--out", "out")
    assert result.code == 2 and "no store at" in _one_line_error(result.stderr)
    write_samples(data_dir / "spectrabench.duckdb", "r1", "m", "facts", [1.0] * 30)  # a store without attempts
    result = cli("calibrate", "thresholds", "--out", "out")
    assert result.code == 2 and "no domain has 30" in _one_line_error(result.stderr)
    assert not (tmp_path / "out").exists()


def test_thresholds_on_a_simulated_history_write_a_scheduler_section(tmp_path: Path, cli: Invoke) -> None:
    result = cli("calibrate", "thresholds", "--simulated", "--size", "80", "--out", "out", "--json")
    assert result.code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["records"] == 80 and payload["domains"]
    assert all(d["curve"] for d in payload["domains"])
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["learning_curve.png", "scheduler.yaml", "thresholds.json"]
    section = yaml.safe_load((out / "scheduler.yaml").read_text())["scheduler"]
    assert SchedulerConfig(**section).model_dump() == payload["scheduler"]
