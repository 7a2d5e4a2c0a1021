"""One tiny model's three smoke tasks held by one job, with per-task forecasts to set, for tests of what the driver
and the scheduler make of a job's tasks."""

from __future__ import annotations

from pathlib import Path

import yaml

from spectrabench.execution.runplan import RunOptions, RunPlan, plan_run
from spectrabench.planning.forecast import TaskForecast
from spectrabench.planning.jobs import Job, job_of
from spectrabench.profiles import load_profile
from spectrabench.settings import Settings
from tests.conftest import REPO

TASKS = ("sb_facts", "sb_ko", "sb_arith")


def plan_three_tasks(folder: Path, settings: Settings, devices: str) -> tuple[RunPlan, Job, dict[str, TaskForecast]]:
    """The plan of a profile of tiny-llama-4m and `TASKS` (limit 3, batch 2) on `devices`, one job holding all
    three tasks in `TASKS` order (not in the plan: the caller places it), and each task's forecast by name."""
    path = folder / "three.yaml"
    path.write_text(yaml.safe_dump({
        "name": "three", "limit": 3, "batch_size": 2, "task_paths": [str(REPO / "profiles" / "tasks")],
        "models": [{"name": "tiny", "builtin": "tiny-llama-4m", "params_b": 0.004, "dtype": "float32"}],
        "tasks": [{"name": t, "shots": 0} for t in TASKS]}))
    plan = plan_run(load_profile(str(path), settings), RunOptions(devices=devices), settings)
    refs = sorted((ref for p in plan.jobs for ref in p.job.tasks), key=lambda r: TASKS.index(r.name))
    by_task = {t.task: t for p in plan.jobs for t in plan.forecasts[p.job.job_key].tasks}
    return plan, job_of(plan.jobs[0].job.model, refs, plan.jobs[0].job.limit, 2), by_task
