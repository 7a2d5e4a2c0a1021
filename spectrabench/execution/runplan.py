"""What a run will do, computed before anything runs: jobs, devices, and the worker spec of each attempt."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from spectrabench.errors import UserError
from spectrabench.execution.attempt import worker_argv
from spectrabench.execution.backends import Backend, pool_devices
from spectrabench.hardware import DeviceSpec, with_memory_limit
from spectrabench.harness.cpuspeed import with_cpu_speed
from spectrabench.harness.tokencounts import profile_token_scales
from spectrabench.harness.workerspec import WorkerModel, WorkerSpec
from spectrabench.planning.forecast import JobForecast, device_speeds, forecast_job
from spectrabench.planning.jobs import Job, TaskRef, build_jobs
from spectrabench.planning.outlook import PairCost, PlanOutlook, plan_outlook
from spectrabench.planning.placement import shards_needed
from spectrabench.planning.speeds import fastest_first, pool_rates
from spectrabench.planning.workitems import regroup, work_item
from spectrabench.prediction.features import TokenCount, weights_gb
from spectrabench.prediction.stages import Predictor
from spectrabench.profiles import ModelSpec, Profile, local_model_path
from spectrabench.settings import Settings
from spectrabench.simulate.specs import is_pool, parse_pool
from spectrabench.tasksources import TaskSources, lm_eval_version, resolve_task_sources, task_shapes

Mode = Literal["optimized", "parallel", "baseline", "per-model"]
MODES: tuple[str, ...] = ("optimized", "baseline", "per-model", "parallel")
# Modes that spread jobs over every device of the pool; the others run one job at a time, as tools traditionally do.
_POOLED_MODES = ("optimized", "parallel")


class RunOptions(BaseModel):
    """What the user asked `run` to do, beyond the profile.

    Modes: `optimized` (the default) groups each model's tasks into as few workers as keep the predicted
    makespan short (`planning.grouping`) and starts the longest predicted job first on every free device,
    correcting predictions as jobs finish (`planning.dispatch`); `baseline` is the traditional run (one device,
    one (model, task) per worker, profile order); `per-model` is one worker per model, sequential on one device;
    `parallel` is one worker per model with all its tasks, started in profile order on every free device.
    """

    model_config = ConfigDict(frozen=True)

    mode: Mode = "optimized"
    limit: int | None = None
    batch_size: int | None = None
    devices: str = "auto"
    force: bool = False
    job_timeout_s: float | None = None
    max_retries: int = 2
    sampling: Literal["first", "random"] = "first"
    sample_seed: int = 0
    backend: Backend = "local"
    ray_address: str | None = None
    gpus_per_job: int = 1


class PlannedJob(BaseModel):
    """A job and the exact worker invocation that would run its first attempt."""

    job: Job
    argv: list[str]
    spec: WorkerSpec


class RunPlan(BaseModel):
    """Everything `run` will do, computed without running anything."""

    run_id: str
    profile: Profile
    options: RunOptions
    devices: list[DeviceSpec]
    sources: TaskSources
    jobs: list[PlannedJob]
    forecasts: dict[str, JobForecast] = {}
    predictor_version: int | None = None
    # Leaf tasks of each profile task that is an lm-eval group (by task name): what it may be cut into.
    group_leaves: dict[str, int] = {}
    # A pool that mixes kinds: each kind's predicted speed relative to the first device (`planning.speeds`).
    speeds: dict[str, float] = {}

    @property
    def devices_label(self) -> str:
        """The devices as one string for the store, e.g. 'cpu:0,cpu:1'."""
        return ",".join(d.id for d in self.devices)


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a random suffix."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def _worker_model(model: ModelSpec, profile: Profile) -> WorkerModel:
    local = local_model_path(model, profile.source_path)
    pretrained = str(local) if local is not None else model.pretrained
    return WorkerModel(name=model.name, pretrained=pretrained, builtin=model.builtin, revision=model.revision,
                       dtype=model.dtype, trust_remote_code=model.trust_remote_code,
                       model_args=dict(model.model_args))


def attempt_spec(plan: RunPlan, job: Job, attempt: int, tasks: tuple[TaskRef, ...], batch_size: int,
                 devices: tuple[DeviceSpec, ...], settings: Settings) -> WorkerSpec:
    """The worker spec of one attempt of `job` on `devices`; on several GPUs the model is split over them layer by
    layer (lm-eval's `parallelize=True`), which changes no score."""
    out_dir = settings.results_root / plan.run_id / f"{job.model.name}--{job.job_key}" / f"attempt-{attempt}"
    on_gpu = devices[0].kind == "cuda"
    model = _worker_model(job.model, plan.profile)
    if on_gpu and len(devices) > 1:
        model = model.model_copy(update={"model_args": {"parallelize": True, **model.model_args}})
    return WorkerSpec(job_key=job.job_key, attempt=attempt, model=model,
                      tasks=tasks, limit=job.limit, batch_size=batch_size, device="cuda:0" if on_gpu else "cpu",
                      threads=None if on_gpu else devices[0].threads,
                      include_paths=plan.sources.include_paths, include_defaults=not plan.sources.all_local,
                      model_cache_dir=str(settings.model_cache.resolve()), out_dir=str(out_dir.resolve()),
                      sampling=plan.options.sampling, sample_seed=plan.options.sample_seed,
                      gpu_memory_limit_gb=settings.gpu_memory_limit_gb if on_gpu else None)


def plan_run(profile: Profile, options: RunOptions, settings: Settings) -> RunPlan:
    """Expand the profile into jobs, pick the devices, and write down each first attempt's worker invocation."""
    sources = resolve_task_sources(profile)
    limit = options.limit if options.limit is not None else profile.limit
    if options.sampling == "random" and limit is None:
        raise UserError("--sampling random needs --limit (or a limit in the profile)",
                        hint="add e.g. --limit 50: without a limit every document is scored, so there is no sample")
    batch_size = options.batch_size or profile.batch_size

    def pool(text: str) -> list[DeviceSpec]:
        return pool_devices(options.backend, text, ray_address=options.ray_address,
                            gpus_per_job=options.gpus_per_job)

    text = options.devices if options.devices != "auto" else profile.device
    # A what-if pool (8xH100-80GB) plans for hardware this machine does not have; `run` refuses it.
    devices = parse_pool(text) if is_pool(text) else pool(text)
    devices = with_memory_limit(devices, settings.gpu_memory_limit_gb)
    if options.mode not in _POOLED_MODES:
        # The sequential modes use one device, as the traditional run did; on CPU that one worker gets every core.
        devices = pool("cpu:1") if devices[0].kind == "cpu" and not is_pool(text) else devices[:options.gpus_per_job]
    if not is_pool(text) and options.backend == "local":
        # This machine's CPU slots carry its measured speed, which the rules' CPU figures scale by (Ray's nodes may
        # be other machines: their slots keep the reference figures).
        devices = with_cpu_speed(devices, settings.model_cache)
    jobs = build_jobs(profile, limit=limit, batch_size=batch_size, task_versions=sources.versions,
                      lm_eval_version=lm_eval_version(),
                      group_by_model=options.mode in ("parallel", "per-model"),
                      sample_seed=options.sample_seed if options.sampling == "random" else None)
    scales = profile_token_scales(profile.models, sources, settings.model_cache)
    predictor, version = load_predictor(profile, settings, scales)
    shapes = task_shapes(profile, sources)
    plan = RunPlan(run_id=new_run_id(), profile=profile, options=options.model_copy(update={"limit": limit}),
                   devices=devices, sources=sources, jobs=[], predictor_version=version)

    # In a mixed pool a job is sized for the smallest device that holds it, so that it can run on any device at
    # least that big (an 8B model fits an L4 at a small batch; a 32B model only the A100s).
    kinds = sorted({d.name: d for d in devices}.values(), key=lambda d: d.free_mem_gb)

    def sized(job: Job) -> tuple[Job, JobForecast]:
        # The forecast picks the batch that fits the device, unless the user gave one.
        for device in kinds:
            forecast = forecast_job(job, shapes, device, predictor, settings.memory_margin, scales)
            if forecast.peak_mem_gb <= device.free_mem_gb * (1 - settings.memory_margin):
                break
        # A card of unknown memory (0: a Ray GPU without NVML) gives batch 1 and is never reason to split a model.
        if job.gpus > 1 or (device.kind == "cuda" and options.gpus_per_job == 1
                            and 0 < device.free_mem_gb < forecast.peak_mem_gb):
            shards = job.gpus if job.gpus > 1 else _shards(job, forecast, device,
                                                           sum(d.name == device.name for d in devices))
            # Split over k cards, each holds a k-th of the weights: the batch is sized for what that frees.
            spare = weights_gb(job.model) * (1 - 1 / shards)
            wider = device.model_copy(update={"free_mem_gb": device.free_mem_gb + spare,
                                              "total_mem_gb": device.total_mem_gb + spare})
            forecast = forecast_job(job, shapes, wider, predictor, settings.memory_margin, scales)
            forecast = forecast.model_copy(update={"batch_reason": f"split over {shards} GPUs: "
                                                                   f"{forecast.batch_reason}"})
            job = job.model_copy(update={"gpus": shards})
        if options.batch_size is None:
            refs = job.tasks
            if len({t.batch_size for t in forecast.tasks}) > 1:  # the worker runs each task at its own batch
                refs = tuple(r.model_copy(update={"batch_size": t.batch_size})
                             for r, t in zip(job.tasks, forecast.tasks, strict=True))
            if forecast.batch_size != job.batch_size or refs != job.tasks:
                job = job.model_copy(update={"batch_size": forecast.batch_size, "tasks": refs})
        elif options.batch_size is not None:
            forecast = forecast.model_copy(update={"batch_size": job.batch_size, "batch_reason": "--batch-size"})
        return job, forecast

    # Every lm-eval group (built-in, or local with local leaves) may run in parts; the worker builds the group and
    # runs its slice of the leaves.
    plan.group_leaves = {name: shape.subtasks for name, shape in shapes.items() if shape.subtasks > 1}
    if options.mode == "optimized":
        pairs = [sized(job) for job in jobs]
        speeds = device_speeds(pairs, shapes, devices, predictor, settings.memory_margin, scales)
        devices, plan.speeds = fastest_first(devices, speeds)
        plan.devices = devices
        jobs = regroup([job for job, _ in pairs], {job.job_key: forecast for job, forecast in pairs},
                       max(1, len(devices) // options.gpus_per_job), plan.group_leaves, plan.speeds,
                       pool_rates(devices, plan.speeds))
    final = [sized(job) for job in jobs]
    if options.mode != "optimized":
        plan.speeds = device_speeds(final, shapes, devices, predictor, settings.memory_margin, scales)
    for job, forecast in final:
        plan.forecasts[job.job_key] = forecast
        spec = attempt_spec(plan, job, 1, job.tasks, job.batch_size,
                            tuple(devices[:max(options.gpus_per_job, job.gpus)]), settings)
        plan.jobs.append(PlannedJob(job=job, argv=worker_argv(Path(spec.out_dir)), spec=spec))
    return plan


def _shards(job: Job, forecast: JobForecast, device: DeviceSpec, available: int) -> int:
    """The fewest GPUs of `device`'s kind that hold `job`'s predicted peak at batch 1 split layer by layer (the
    forecast keeps the whole peak; `workitems.work_item` turns it into each device's part).

    Raises:
        UserError: Not even all `available` GPUs of that kind hold it.
    """
    weights = weights_gb(job.model)
    shards = shards_needed(forecast.peak_mem_gb, weights, device.free_mem_gb, available)
    if shards is None:
        raise UserError(f"model '{job.model.name}' is predicted to need {forecast.peak_mem_gb:.0f} GiB at batch 1, "
                        f"more than {available} x {device.name} ({device.free_mem_gb:.0f} GiB free each) can hold "
                        f"even split layer by layer",
                        hint="add GPUs, pick larger ones, or remove the model from the profile")
    return shards


def load_predictor(profile: Profile, settings: Settings,
                   token_scales: Mapping[tuple[str, str], TokenCount] | None = None) -> tuple[Predictor, int | None]:
    """The predictor for this profile: rules, plus the newest trained model and the history it stands on (with the
    prompt lengths of records written before tokens were counted recounted by `token_scales`)."""
    from spectrabench.store.learning import latest_predictor, load_history

    stored = latest_predictor(settings.db_file)
    history = (load_history(settings.db_file, token_scales, include_contended=settings.learn_from_busy_machine)
               if stored is not None else [])
    learned = stored.predictor if stored is not None else None
    return Predictor(profile.scheduler, learned, history), stored.version if stored else None


def check_data_dir(settings: Settings) -> None:
    """Fail before anything runs when the data dir cannot be written."""
    probe = settings.data_dir / ".write-probe"
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to data dir '{settings.data_dir}': {exc.strerror or exc}",
                        hint="set SPECTRABENCH_DATA_DIR to a writable folder") from None


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment every worker starts from: ours plus the HF token, which is never written anywhere else."""
    env = dict(os.environ)
    env.update({"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"})
    if settings.hf_token is not None:
        env["HF_TOKEN"] = settings.hf_token.get_secret_value()
    return env


def predicted_outlook(planned: RunPlan) -> PlanOutlook:
    """The plan's predicted schedule, bound and sequential time (see `planning.outlook`)."""
    items = []
    # The sequential baseline runs a group whole: its parts (in any jobs) add up to one pair with one load.
    pair_costs: dict[tuple[str, str], tuple[float, float]] = {}
    for job in planned.jobs:
        forecast = planned.forecasts.get(job.job.job_key)
        items.append(work_item(job.job, forecast, speeds=planned.speeds))
        if forecast is not None:
            speed = planned.speeds.get(forecast.device, 1.0)  # in the first device's seconds, as the items
            for ref, task in zip(job.job.tasks, forecast.tasks, strict=True):
                load, runtime = pair_costs.get((job.job.model.name, ref.profile_task), (0.0, 0.0))
                pair_costs[job.job.model.name, ref.profile_task] = (max(load, forecast.load_s * speed),
                                                                    runtime + task.runtime_s * speed)
    pairs = [PairCost(model=model, load_s=load, runtime_s=runtime, subtasks=planned.group_leaves.get(task, 1))
             for (model, task), (load, runtime) in pair_costs.items()]
    slots = planned.devices[::planned.options.gpus_per_job] or planned.devices
    options = planned.options
    # As `execution.dispatching` runs it: small models share GPUs in optimized mode on the local backend.
    colocate = (options.mode == "optimized" and options.backend == "local" and options.gpus_per_job == 1
                and bool(slots) and slots[0].kind == "cuda")
    return plan_outlook(items, pairs, slots, colocate=colocate, speeds=planned.speeds)
