"""Predicted cost of each job and the batch size it gets: pure, from features, a predictor and a device."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from spectrabench.hardware import DeviceSpec
from spectrabench.planning.jobs import Job
from spectrabench.prediction.batching import choose_batch_size
from spectrabench.prediction.features import JobFeatures, TaskShape, TokenCount, job_features
from spectrabench.prediction.stages import Predictor

_STAGE_ORDER = ("intelligent", "hybrid", "adaptive")


class TaskForecast(BaseModel):
    """One task of a job: its features and predicted cost."""

    model_config = ConfigDict(frozen=True)

    task: str
    features: JobFeatures
    runtime_s: float
    peak_mem_gb: float
    stage: str
    batch_size: int = 0  # the batch this task runs at (0 in forecasts written before per-task batches)


class JobForecast(BaseModel):
    """A job's predicted wall time (one load plus its tasks), peak memory, batch size and why."""

    model_config = ConfigDict(frozen=True)

    job_key: str
    model: str
    batch_size: int
    batch_reason: str
    load_s: float
    runtime_s: float
    peak_mem_gb: float
    stage: str
    tasks: list[TaskForecast]
    device: str = ""  # the kind of device it was made for (`DeviceSpec.name`)


def forecast_job(job: Job, shapes: Mapping[str, TaskShape], device: DeviceSpec, predictor: Predictor,
                 memory_margin: float, token_scales: Mapping[tuple[str, str], TokenCount] | None = None) -> JobForecast:
    """Pick the job's batch size and predict its cost on `device`.

    On GPU each task's batch is the largest whose predicted peak memory (the quantile, when learned) fits the
    device's free memory with `memory_margin` to spare, and the job's batch (the attempt's cap) the largest of
    them: the worker runs each task at its own (`TaskForecast.batch_size`); on CPU every task runs at the profile's
    fixed batch. A task whose `TaskRef.batch_size` is set keeps it (capped by the job's batch). `token_scales`
    corrects a (model, task)'s prompt length to its tokenizer's real count (`harness.tokencounts`).
    """
    scales = token_scales or {}

    def features(task_index: int, batch: int) -> JobFeatures:
        ref = job.tasks[task_index]
        shape = shapes[ref.profile_task]
        # A part of a group is its share of the group's leaves (`taskparts`).
        count = scales.get((job.model.name, ref.profile_task))
        return job_features(job.model, shape.part(*ref.part) if ref.part else shape, ref.shots, job.limit, batch,
                            device, token_scale=count.scale if count else None,
                            pass_share=count.passes if count else None)

    batch, reason = job.batch_size, "CPU: fixed from the profile"
    batches = [ref.batch_under(batch) for ref in job.tasks]
    if device.kind == "cuda":
        # Every task already carries the batch sized for it when the tasks were planned apart (then grouped).
        reason = (f"per task {min(batches)}..{max(batches)}: as sized for each task" if len(set(batches)) > 1
                  else "as sized for its task")
    if device.kind == "cuda" and any(ref.batch_size is None for ref in job.tasks):
        choices = [choose_batch_size(lambda b, i=i: features(i, b),  # type: ignore[misc]
                                     lambda f: predictor.predict(f).peak_mem_gb, device.free_mem_gb,
                                     memory_margin) for i in range(len(job.tasks))]
        batches = [c.batch_size for c in choices]
        largest = max(choices, key=lambda c: c.batch_size)
        smallest = min(choices, key=lambda c: c.batch_size)
        batch = largest.batch_size
        reason = smallest.reason if smallest is largest or len(job.tasks) == 1 else (
            f"per task {smallest.batch_size}..{largest.batch_size}: {smallest.reason}")
    tasks = []
    load_s = 0.0
    for index, ref in enumerate(job.tasks):
        f = features(index, batches[index])
        prediction = predictor.predict(f)
        load_s = max(load_s, prediction.load_s)
        tasks.append(TaskForecast(task=ref.name, features=f, runtime_s=prediction.runtime_s,
                                  peak_mem_gb=prediction.peak_mem_gb, stage=prediction.stage,
                                  batch_size=batches[index]))
    stage = min((t.stage for t in tasks), key=_STAGE_ORDER.index)
    return JobForecast(job_key=job.job_key, model=job.model.name, batch_size=batch, batch_reason=reason,
                       load_s=load_s, runtime_s=load_s + sum(t.runtime_s for t in tasks),
                       peak_mem_gb=max(t.peak_mem_gb for t in tasks), stage=stage, tasks=tasks, device=device.name)


def device_speeds(sized: Sequence[tuple[Job, JobForecast]], shapes: Mapping[str, TaskShape],
                  devices: Sequence[DeviceSpec], predictor: Predictor, memory_margin: float,
                  token_scales: Mapping[tuple[str, str], TokenCount] | None = None) -> dict[str, float]:
    """Each kind of device's predicted speed relative to the first device of a pool that mixes kinds (empty for a
    pool of one kind): the jobs' total predicted time on the first device over their total on the kind, each job
    at the batches it was sized for (`planning.speeds`)."""
    kinds = list({d.name: d for d in devices}.values())
    if len(kinds) < 2:
        return {}
    fixed = [job.model_copy(update={"tasks": tuple(ref.model_copy(update={"batch_size": task.batch_size or
                                                                          job.batch_size})
                                                   for ref, task in zip(job.tasks, forecast.tasks, strict=True))})
             for job, forecast in sized]
    totals = [sum(forecast_job(job, shapes, kind, predictor, memory_margin, token_scales).runtime_s for job in fixed)
              for kind in kinds]
    return {kind.name: totals[0] / max(total, 1e-9) for kind, total in zip(kinds, totals, strict=True)}
