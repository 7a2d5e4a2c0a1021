"""`spectrabench compare`: strategies simulated on what-if hardware and the bad inputs there; how a real
comparison reports a machine busy with other work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spectrabench.cli import render
from spectrabench.execution.comparison import CompareSummary
from spectrabench.execution.outcomes import RunSummary
from spectrabench.store.machineload import MachineLoad
from spectrabench.store.parity import ParityReport
from tests.conftest import run_cli


def test_simulated_comparison_reports_every_strategy(data_dir: Path) -> None:
    result = run_cli("compare", "--profile", "standard", "--simulate", "--seeds", "1", "--devices",
                     "2xA100-80GB,1xL4-24GB", "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [s["strategy"] for s in report["strategies"]] == ["sequential", "per-model", "round-robin", "ours",
                                                            "oracle"]
    assert not data_dir.exists(), "a simulation writes nothing"


@pytest.mark.parametrize(("args", "needle"), [
    (["--devices", "8xH100"], "did you mean 'H100-80GB'"),
    (["--seeds", "0"], "--seeds"),
    (["--noise", "-1"], "--noise"),
])
def test_bad_simulation_inputs(args: list[str], needle: str, data_dir: Path) -> None:
    result = run_cli("compare", "--profile", "standard", "--simulate", *args)
    assert result.code == 2 and result.stderr.count("\n") == 1 and needle in result.stderr, result.stderr



def _summary(other_cores: float) -> CompareSummary:
    def run(mode: str, wall_s: float) -> RunSummary:
        return RunSummary(run_id=f"run-{mode}", profile="p", mode=mode, devices="cpu:0,cpu:1", status="complete",
                          jobs_total=2, jobs_completed=2, jobs_reused=0, jobs_failed=0, attempts=2, retries=0,
                          wall_s=wall_s, db_path="x.duckdb")

    loads = {role: MachineLoad(other_cores=load, steal_cores=0.0, cores=2)
             for role, load in (("baseline", other_cores), ("optimized", 0.01))}
    return CompareSummary(compare_id="c", profile="p", baseline=run("baseline", 20.0), optimized=run("optimized", 10.0),
                          speedup=2.0, parity=ParityReport(samples_compared=4, scores_compared=2, max_score_diff=0.0,
                                                           mismatches=[]), background=loads)


def test_a_speed_up_timed_on_a_busy_machine_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    render.comparison(_summary(0.9), as_json=False)
    loud = capsys.readouterr().out
    assert "cores busy with other work: baseline 0.90, optimized 0.01 (of 2 cores)" in loud
    assert "not a clean measurement" in loud
    render.comparison(_summary(0.02), as_json=False)
    quiet = capsys.readouterr().out
    assert "baseline 0.02" in quiet and "not a clean measurement" not in quiet
    render.comparison(_summary(0.9), as_json=True)
    as_json = json.loads(capsys.readouterr().out)
    assert as_json["noisy"] is True and as_json["background"]["baseline"]["other_cores"] == 0.9
