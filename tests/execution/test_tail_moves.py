"""A real optimized run moves the unstarted tail of a long job to an idle CPU slot: every task is scored once."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import yaml

from spectrabench.execution.attempt import worker_argv
from spectrabench.execution.driver import execute_run
from spectrabench.execution.runplan import PlannedJob, attempt_spec
from spectrabench.harness.claims import claimed_by
from spectrabench.harness.faults import FAULT_ENV
from spectrabench.settings import Settings
from tests.threetasks import TASKS, plan_three_tasks

pytestmark = pytest.mark.slow



def test_an_idle_slot_takes_the_tail_and_the_worker_skips_it(tmp_path: Path, data_dir: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    # One job holding the model's three tasks, each predicted at 100 s after a 1 s load (a group that will run
    # long), on a pool of two slots: the second slot has nothing queued from the start.
    plan, job, by_task = plan_three_tasks(tmp_path, settings, "cpu:2")
    parts = [by_task[name].model_copy(update={"runtime_s": 100.0}) for name in TASKS]
    plan.forecasts = {job.job_key: plan.forecasts[plan.jobs[0].job.job_key].model_copy(update={
        "job_key": job.job_key, "load_s": 1.0, "runtime_s": 301.0, "tasks": parts, "stage": "intelligent"})}
    spec = attempt_spec(plan, job, 1, job.tasks, 2, tuple(plan.devices[:1]), settings)
    plan.jobs = [PlannedJob(job=job, argv=worker_argv(Path(spec.out_dir)), spec=spec)]
    # The first task runs 10 s late, so the driver sees the worker at it while the rest are unstarted.
    monkeypatch.setenv(FAULT_ENV, "slow:task=sb_facts")

    summary = execute_run(plan, settings)

    assert summary.status == "complete", summary.failures
    assert (summary.jobs_total, summary.jobs_completed, summary.tail_moves) == (2, 2, 1)
    con = duckdb.connect(str(settings.db_file), read_only=True)
    try:
        scored = con.execute("SELECT task, count(*) FROM task_results GROUP BY task ORDER BY task").fetchall()
        attempts = con.execute("SELECT tasks, devices, log_path FROM attempts ORDER BY started_at").fetchall()
        run_tasks = con.execute("SELECT task, status FROM run_tasks ORDER BY task").fetchall()
    finally:
        con.close()
    assert scored == [(t, 1) for t in sorted(TASKS)]
    assert run_tasks == [(t, "complete") for t in sorted(TASKS)]
    assert len(attempts) == 2
    (first_tasks, first_device, first_dir), (tail_tasks, tail_device, _) = attempts
    assert (first_device, tail_device) == ("cpu:0", "cpu:1")
    # The attempt was recorded with all three tasks; the tail took the last, which the worker then left alone.
    assert yaml.safe_load(tail_tasks) == ["sb_arith"] and len(yaml.safe_load(first_tasks)) == 3
    assert claimed_by(Path(first_dir), "sb_arith") == "driver"
    assert claimed_by(Path(first_dir), "sb_ko") == "worker"
