"""Real jobs as the scheduler sees them: a job's figures are its own tasks' from its forecast."""

from __future__ import annotations

from pathlib import Path

import pytest

from spectrabench.planning.workitems import work_item
from spectrabench.settings import Settings
from tests.threetasks import TASKS, plan_three_tasks


def test_a_job_left_with_fewer_tasks_than_its_forecast_is_predicted_from_its_own(tmp_path: Path,
                                                                                data_dir: Path) -> None:
    plan, job, by_task = plan_three_tasks(tmp_path, Settings(), "cpu:1")
    # Per-task figures that differ, so that the head's cannot be the whole job's by chance.
    parts = [by_task[name].model_copy(update={"runtime_s": 10.0 * (i + 1), "peak_mem_gb": 3.0 - i})
             for i, name in enumerate(TASKS)]
    forecast = plan.forecasts[plan.jobs[0].job.job_key].model_copy(update={
        "job_key": job.job_key, "load_s": 1.0, "runtime_s": 61.0, "peak_mem_gb": 3.0, "tasks": parts})

    whole = work_item(job, forecast)
    assert (whole.predicted_runtime_s, whole.task_runtimes_s) == (60.0, (10.0, 20.0, 30.0))
    assert (whole.predicted_mem_gb, whole.task_mems_gb) == (3.0, (3.0, 2.0, 1.0))
    # Its last task moved to another device (a tail move): the head is predicted from its own two.
    head = work_item(job.model_copy(update={"tasks": job.tasks[:2]}), forecast)
    assert head.tasks == TASKS[:2] and head.predicted_runtime_s == pytest.approx(30.0)
    assert head.task_runtimes_s == (10.0, 20.0) and head.task_mems_gb == (3.0, 2.0)
    tail = work_item(job.model_copy(update={"tasks": job.tasks[1:]}), forecast)
    assert (tail.predicted_runtime_s, tail.predicted_mem_gb) == (50.0, 2.0)
    # A forecast made for other tasks: its figures whole, the per-task ones unknown to the item.
    other = work_item(job.model_copy(update={"tasks": (job.tasks[0].model_copy(update={"name": "elsewhere"}),)}),
                      forecast)
    assert other.predicted_runtime_s == 60.0 and other.mem_from(1) == 3.0
