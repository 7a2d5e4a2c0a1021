"""Real jobs as the scheduler sees them: `WorkItem`s from jobs and their forecasts, and jobs regrouped by them.

The optimized mode plans in two steps. First every (model, task) pair is its own job with its own forecast; the
grouping rule (`grouping.group_jobs`) then decides which pairs share a worker (one model load) on the run's
devices, and the pieces become the run's jobs. The dispatcher later sees each job as a `WorkItem`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from spectrabench.planning.forecast import JobForecast
from spectrabench.planning.jobs import Job, job_of, part_ref
from spectrabench.planning.pieces import worker_group
from spectrabench.planning.placement import sharded_peak_gb
from spectrabench.planning.schedule import WorkItem
from spectrabench.planning.speeds import DeviceRate
from spectrabench.planning.subtasks import plan_pieces
from spectrabench.prediction.features import weights_gb
from spectrabench.taskparts import parse_part, whole_name


def work_item(job: Job, forecast: JobForecast | None, gpus: int | None = None, subtasks: int = 1,
              speeds: Mapping[str, float] | None = None) -> WorkItem:
    """The scheduler's view of `job`: its tasks and predicted load, evaluation time and peak memory.

    In a pool that mixes kinds (`speeds`, by kind), times are turned into the first device's seconds: the forecast
    was made for the kind the job was sized for, which runs at `speeds[kind]` of the first device.

    A job without a forecast (none could be made) counts as short and small: it is started when nothing
    better is known, and never blocks a device on a guess. A job holding fewer tasks than its forecast (a tail moved
    off, a retry that skips finished tasks) is predicted from its own tasks' figures. A sharded job's memory is its
    per-device part times its devices (`placement.per_device_mem_gb` divides it back). `subtasks`: the leaf tasks of
    its one task when that is an lm-eval group, which may then be cut into parts (`planning.subtasks`).
    """
    gpus = gpus or job.gpus
    speed = (speeds or {}).get(forecast.device, 1.0) if forecast is not None else 1.0
    if forecast is None:
        return WorkItem(key=job.job_key, model=job.model.name, tasks=tuple(job.task_names),
                        params_b=job.model.params_b, gpus=gpus, predicted_runtime_s=0.0, predicted_load_s=0.0,
                        predicted_mem_gb=0.0)
    weights = weights_gb(job.model)
    # The forecast's tasks that the job still holds (fewer once a tail moved off, or a retry skips finished ones).
    by_name = {t.task: t for t in forecast.tasks}
    if all(name in by_name for name in job.task_names):
        tasks = [by_name[name] for name in job.task_names]
        runtime, peak = sum(t.runtime_s for t in tasks), max((t.peak_mem_gb for t in tasks), default=0.0)
    else:  # a forecast made for other tasks: its figures whole
        tasks, runtime, peak = list(forecast.tasks), forecast.runtime_s - forecast.load_s, forecast.peak_mem_gb
    return WorkItem(key=job.job_key, model=job.model.name, tasks=tuple(job.task_names), params_b=job.model.params_b,
                    gpus=gpus, predicted_runtime_s=max(0.0, runtime) * speed, predicted_load_s=forecast.load_s * speed,
                    predicted_mem_gb=sharded_peak_gb(peak, weights, gpus) * gpus,
                    task_runtimes_s=tuple(t.runtime_s * speed for t in tasks), subtasks=subtasks,
                    task_mems_gb=tuple(sharded_peak_gb(t.peak_mem_gb, weights, gpus) * gpus for t in tasks))


def regroup(pairs: Sequence[Job], forecasts: Mapping[str, JobForecast], n_devices: int,
            subtasks: Mapping[str, int] | None = None, speeds: Mapping[str, float] | None = None,
            pool: Sequence[DeviceRate] | None = None) -> list[Job]:
    """Group one-task jobs into the jobs an optimized run starts (see `subtasks.plan_pieces`).

    Args:
        pairs: One job per (model, task), in profile order.
        forecasts: Each pair job's forecast, by job key.
        n_devices: Devices (or GPU groups) jobs run on at once.
        subtasks: Leaf tasks of each profile task that is an lm-eval group the worker can run in parts (by task
            name); other tasks stay whole.
        speeds: In a pool that mixes kinds, each kind's speed (`work_item`).
        pool: Each device's speed and memory there (`speeds.pool_rates`), which the grouping packs for.

    Returns:
        Jobs in profile order of their first task; each task keeps the batch chosen for it alone
        (`TaskRef.batch_size`, the worker sets it per task) and the job's batch is the largest of them. A group cut
        into parts has one `TaskRef` per part (`jobs.part_ref`).
    """
    leaves = subtasks or {}
    by_model: dict[str, list[WorkItem]] = {}
    for job in pairs:
        by_model.setdefault(worker_group(job.model.name, job.gpus), []).append(
            work_item(job, forecasts.get(job.job_key), subtasks=leaves.get(job.task_names[0], 1), speeds=speeds))
    by_task = {(job.model.name, job.task_names[0]): job for job in pairs}
    pieces = plan_pieces(by_model, max(1, n_devices), pool=pool)
    grouped: list[Job] = []
    for piece in pieces:
        members = [by_task[piece.model, whole_name(task)] for task in piece.tasks]
        refs = []
        for task, member in zip(piece.tasks, members, strict=True):
            ref = member.tasks[0].model_copy(update={"batch_size": member.batch_size})
            part = parse_part(task)
            refs.append(part_ref(ref, part.position, part.parts) if part is not None else ref)
        grouped.append(job_of(members[0].model, refs, members[0].limit, max(m.batch_size for m in members))
                       .model_copy(update={"gpus": piece.gpus}))
    order = {job.job_key: index for index, job in enumerate(pairs)}
    return sorted(grouped, key=lambda job: order[by_task[job.model.name, job.tasks[0].profile_task].job_key])
