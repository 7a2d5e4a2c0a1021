"""How `run` ends on the terminal: a run some of whose attempts met other work on the machine says so."""

from __future__ import annotations

import json

import pytest

from spectrabench.cli import render
from spectrabench.execution.outcomes import RunSummary


def _summary(contended: int) -> RunSummary:
    return RunSummary(run_id="r", profile="p", mode="optimized", devices="cpu:0,cpu:1", status="complete",
                      jobs_total=2, jobs_completed=2, jobs_reused=0, jobs_failed=0, attempts=2, retries=0, wall_s=9.0,
                      db_path="x.duckdb", training="predictor v3 trained on 12 records (2 more left out: timed on a "
                                                   "busy machine) in 0.4 s",
                      contended_attempts=contended, other_cores_max=0.93 if contended else None)


def test_a_run_whose_attempts_met_other_work_says_their_timings_are_not_learned(
        capsys: pytest.CaptureFixture[str]) -> None:
    render.run_summary(_summary(2), as_json=False)
    loud = capsys.readouterr().err
    assert "Other work took up to 0.9 cores of the machine while 2 attempt(s) ran" in loud
    assert "the predictor does not learn from them" in loud and "2 more left out" in loud
    render.run_summary(_summary(0), as_json=False)
    assert "Other work" not in capsys.readouterr().err
    render.run_summary(_summary(2), as_json=True)
    as_json = json.loads(capsys.readouterr().out)
    assert (as_json["contended_attempts"], as_json["other_cores_max"]) == (2, 0.93)
