"""Real jobs as the scheduler sees them: `WorkItem`s from jobs and their forecasts, and jobs regrouped by them.

The optimized mode plans in two steps. First every (model, task) pair is its own job with its own forecast; the
grouping rule (`grouping.group_jobs`) then decides which pairs share a worker (one model load) on the run's
devices, and the pieces become the run's jobs. The dispatcher later sees each job as a `WorkItem`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from spectrabench.planning.forecast import JobForecast
from spectrabench.planning.grouping import group_jobs
from spectrabench.planning.jobs import Job, job_of
from spectrabench.planning.schedule import WorkItem


def work_item(job: Job, forecast: JobForecast | None, gpus: int = 1) -> WorkItem:
    """The scheduler's view of `job`: its tasks and predicted load, evaluation time and peak memory.

    A job without a forecast (none could be made) counts as short and small: it is started when nothing
    better is known, and never blocks a device on a guess.
    """
    if forecast is None:
        return WorkItem(key=job.job_key, model=job.model.name, tasks=tuple(job.task_names),
                        params_b=job.model.params_b, gpus=gpus, predicted_runtime_s=0.0, predicted_load_s=0.0,
                        predicted_mem_gb=0.0)
    return WorkItem(key=job.job_key, model=job.model.name, tasks=tuple(job.task_names), params_b=job.model.params_b,
                    gpus=gpus, predicted_runtime_s=max(0.0, forecast.runtime_s - forecast.load_s),
                    predicted_load_s=forecast.load_s, predicted_mem_gb=forecast.peak_mem_gb)


def regroup(pairs: Sequence[Job], forecasts: Mapping[str, JobForecast], n_devices: int) -> list[Job]:
    """Group one-task jobs into the jobs an optimized run starts (see `grouping.group_jobs`).

    Args:
        pairs: One job per (model, task), in profile order.
        forecasts: Each pair job's forecast, by job key.
        n_devices: Devices (or GPU groups) jobs run on at once.

    Returns:
        Jobs in profile order of their first task; a job's batch size is the smallest of its members' (one worker
        runs one batch size, and each member's was chosen to fit).
    """
    by_model: dict[str, list[WorkItem]] = {}
    for job in pairs:
        by_model.setdefault(job.model.name, []).append(work_item(job, forecasts.get(job.job_key)))
    by_task = {(job.model.name, job.task_names[0]): job for job in pairs}
    pieces = group_jobs(by_model, max(1, n_devices))
    grouped: list[Job] = []
    for piece in pieces:
        members = [by_task[piece.model, task] for task in piece.tasks]
        grouped.append(job_of(members[0].model, [m.tasks[0] for m in members], members[0].limit,
                              min(m.batch_size for m in members)))
    order = {job.job_key: index for index, job in enumerate(pairs)}
    return sorted(grouped, key=lambda job: order[by_task[job.model.name, job.task_names[0]].job_key])
