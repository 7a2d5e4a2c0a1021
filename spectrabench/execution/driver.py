"""The driver: turns a profile into jobs, runs them as worker subprocesses, and records everything in the store.

The driver is the only process that writes DuckDB. Each finished task is stored as soon as its attempt ends, so
an interrupted run loses at most the task in flight, and the next run skips every stored (model, task) key.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from spectrabench.errors import UserError
from spectrabench.execution.attempt import AttemptOutcome, run_attempt, worker_argv
from spectrabench.execution.preflight import unreachable_models
from spectrabench.harness.results import BadOutput, read_task_output
from spectrabench.harness.workerspec import ErrorKind, WorkerModel, WorkerSpec
from spectrabench.planning.jobs import Job, build_jobs
from spectrabench.profiles import ModelSpec, Profile
from spectrabench.settings import Settings
from spectrabench.store.history import AttemptRecord, History
from spectrabench.tasksources import TaskSources, lm_eval_version, resolve_task_sources

Mode = Literal["baseline", "per-model"]


class RunOptions(BaseModel):
    """What the user asked `run` to do, beyond the profile."""

    model_config = ConfigDict(frozen=True)

    mode: Mode = "baseline"
    limit: int | None = None
    batch_size: int | None = None
    device: str = "cpu"
    force: bool = False
    job_timeout_s: float | None = None


class JobFailure(BaseModel):
    """Why one job did not produce its scores."""

    job_key: str
    model: str
    tasks: list[str]
    kind: str
    message: str
    log_path: str | None = None


class RunSummary(BaseModel):
    """The outcome of a run, for the terminal and for `--json`."""

    run_id: str
    profile: str
    mode: str
    status: str
    jobs_total: int
    jobs_completed: int
    jobs_reused: int
    jobs_failed: int
    wall_s: float
    db_path: str
    failures: list[JobFailure] = Field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every job has its scores, 1 when some failed."""
        return 1 if self.jobs_failed else 0


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
    jobs: list[PlannedJob]


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a random suffix."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def _worker_model(model: ModelSpec, profile: Profile) -> WorkerModel:
    pretrained = model.pretrained
    if pretrained is not None and pretrained.startswith(("./", "../", "~")):
        path = Path(pretrained).expanduser()
        if not path.is_absolute() and profile.source_path is not None:
            path = profile.source_path.parent / path
        pretrained = str(path.resolve())
    return WorkerModel(name=model.name, pretrained=pretrained, builtin=model.builtin, revision=model.revision,
                       dtype=model.dtype, trust_remote_code=model.trust_remote_code,
                       model_args=dict(model.model_args))


def _attempt_spec(job: Job, attempt: int, run_id: str, profile: Profile, sources: TaskSources,
                  options: RunOptions, settings: Settings, batch_size: int) -> WorkerSpec:
    out_dir = settings.results_root / run_id / f"{job.model.name}--{job.job_key}" / f"attempt-{attempt}"
    return WorkerSpec(job_key=job.job_key, attempt=attempt, model=_worker_model(job.model, profile),
                      tasks=job.tasks, limit=job.limit, batch_size=batch_size, device=options.device,
                      include_paths=sources.include_paths, include_defaults=not sources.all_local,
                      model_cache_dir=str(settings.model_cache.resolve()), out_dir=str(out_dir.resolve()))


def plan_run(profile: Profile, options: RunOptions, settings: Settings) -> RunPlan:
    """Expand the profile into jobs and worker invocations, in the order they will run."""
    sources = resolve_task_sources(profile)
    limit = options.limit if options.limit is not None else profile.limit
    batch_size = options.batch_size or profile.batch_size
    jobs = build_jobs(profile, limit=limit, batch_size=batch_size, task_versions=sources.versions,
                      lm_eval_version=lm_eval_version(), group_by_model=options.mode == "per-model")
    run_id = new_run_id()
    planned = []
    for job in jobs:
        spec = _attempt_spec(job, 1, run_id, profile, sources, options, settings, batch_size)
        planned.append(PlannedJob(job=job, argv=worker_argv(Path(spec.out_dir)), spec=spec))
    return RunPlan(run_id=run_id, profile=profile, options=options.model_copy(update={"limit": limit}),
                   jobs=planned)


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


def worker_env(settings: Settings, threads: int | None = None) -> dict[str, str]:
    """The environment of every worker: ours plus the HF token, never written anywhere else."""
    env = dict(os.environ)
    env.update({"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"})
    if settings.hf_token is not None:
        env["HF_TOKEN"] = settings.hf_token.get_secret_value()
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
    return env


Reporter = Callable[[str], None]


class _JobRunner:
    """Runs one run's jobs in order and records each outcome."""

    def __init__(self, plan: RunPlan, settings: Settings, history: History, report: Reporter) -> None:
        self.plan = plan
        self.settings = settings
        self.history = history
        self.report = report
        self.env = worker_env(settings)
        # model name -> why it cannot be loaded; its jobs then fail at once, without starting a worker
        self.unavailable: dict[str, str] = unreachable_models(plan.profile.models, settings)
        self.completed: set[str] = history.completed_task_keys(
            [ref.task_key for planned in plan.jobs for ref in planned.job.tasks])

    def _store_finished_tasks(self, job: Job, attempt: int, outcome: AttemptOutcome, batch_size: int,
                              todo: list[str]) -> tuple[list[str], BadOutput | None]:
        done: list[str] = []
        timings = outcome.progress.get("tasks", {}) or {}
        for ref in job.tasks:
            if ref.name not in todo or ref.name not in timings:
                continue
            try:
                output = read_task_output(outcome.log_path.parent, ref.name)
            except BadOutput as exc:
                return done, exc
            self.history.record_task_output(self.plan.run_id, job, attempt, ref, output,
                                            runtime_s=timings[ref.name].get("seconds"), batch_size=batch_size)
            done.append(ref.name)
        return done, None

    def pending_tasks(self, job: Job) -> list[str]:
        """The job's tasks that still need a result (all of them with --force)."""
        if self.plan.options.force:
            return [ref.name for ref in job.tasks]
        return [ref.name for ref in job.tasks if ref.task_key not in self.completed]

    def settle_without_worker(self, planned: PlannedJob, ordinal: int) -> tuple[str, JobFailure | None] | None:
        """Record a job whose outcome is known without starting a worker; None when it needs one."""
        job = planned.job
        todo = self.pending_tasks(job)
        if not todo:
            self.history.record_job(self.plan.run_id, job, status="reused", devices=self.plan.options.device)
            self.history.record_run_tasks(self.plan.run_id, job, {ref.name: "reused" for ref in job.tasks},
                                          ordinal)
            return "reused", None
        if job.model.name in self.unavailable:
            statuses = {ref.name: ("reused" if ref.name not in todo else "failed") for ref in job.tasks}
            failure = JobFailure(job_key=job.job_key, model=job.model.name, tasks=todo,
                                 kind=ErrorKind.UNAVAILABLE.value, message=self.unavailable[job.model.name])
            self._record_failure(job, failure, statuses, ordinal)
            return "failed", failure
        return None

    def run_job(self, planned: PlannedJob, ordinal: int) -> tuple[str, JobFailure | None]:
        """Run the job's pending tasks in a worker (unless settled otherwise) and record the outcome."""
        settled = self.settle_without_worker(planned, ordinal)
        if settled is not None:
            return settled
        job = planned.job
        run_id = self.plan.run_id
        todo = self.pending_tasks(job)
        statuses = {ref.name: ("reused" if ref.name not in todo else "failed") for ref in job.tasks}
        attempt, batch_size = 1, job.batch_size
        remaining = [ref for ref in job.tasks if ref.name in todo]
        spec = planned.spec.model_copy(update={"tasks": tuple(remaining)})
        outcome = run_attempt(spec, self.env, self.plan.options.job_timeout_s)
        done, bad = self._store_finished_tasks(job, attempt, outcome, batch_size, todo)
        statuses.update({name: "complete" for name in done})
        kind = outcome.error_kind
        message = outcome.error
        if kind is None and bad is None and len(done) < len(todo):
            bad = BadOutput(outcome.log_path.parent, "worker exited 0 but reported unfinished tasks")
        if bad is not None:
            kind, message = ErrorKind.BAD_OUTPUT, f"{bad.path.name}: {bad.reason}"
        self.history.record_attempt(run_id, AttemptRecord(
            job_key=job.job_key, attempt=attempt, batch_size=batch_size, tasks=[r.name for r in remaining],
            started_at=outcome.started_at, finished_at=outcome.finished_at,
            status="complete" if kind is None else "failed", runtime_s=outcome.finished_at - outcome.started_at,
            load_s=outcome.progress.get("load_s"), provision_s=outcome.progress.get("provision_s"),
            peak_mem_gb=outcome.progress.get("peak_mem_gb"), returncode=outcome.returncode,
            error_kind=kind.value if kind else None, error=message, log_path=str(outcome.log_path),
            worker={key: outcome.progress.get(key) for key in ("device", "import_s", "tasks")}))
        if kind is None:
            self.history.record_job(run_id, job, status="complete", devices=self.plan.options.device)
            self.history.record_run_tasks(run_id, job, statuses, ordinal)
            return "complete", None
        failure = JobFailure(job_key=job.job_key, model=job.model.name,
                             tasks=[name for name in todo if name not in done], kind=kind.value,
                             message=message or kind.value, log_path=str(outcome.log_path))
        if kind is ErrorKind.UNAVAILABLE and outcome.progress.get("load_s") is None:
            self.unavailable[job.model.name] = f"{message} (first seen in job {job.job_key})"
        self._record_failure(job, failure, statuses, ordinal)
        return "failed", failure

    def _record_failure(self, job: Job, failure: JobFailure, statuses: dict[str, str], ordinal: int) -> None:
        self.history.record_job(self.plan.run_id, job, status="failed", devices=self.plan.options.device,
                                error_kind=failure.kind, error=failure.message)
        self.history.record_run_tasks(self.plan.run_id, job, statuses, ordinal)


def execute_run(plan: RunPlan, settings: Settings, report: Reporter = lambda _: None) -> RunSummary:
    """Run every job of `plan` one after another on one device, recording each outcome as it happens.

    Args:
        plan: From `plan_run`.
        settings: Where the store and results live.
        report: Receives one line per job as it finishes (progress for the terminal).
    """
    check_data_dir(settings)
    history = History(settings.db_file)
    options = plan.options
    history.start_run(plan.run_id, profile=plan.profile.name, mode=options.mode, limit=options.limit,
                      devices=options.device, backend="local", settings=_public_settings(settings),
                      versions=_versions())
    started = time.perf_counter()
    runner = _JobRunner(plan, settings, history, report)
    counts = {"complete": 0, "reused": 0, "failed": 0}
    failures: list[JobFailure] = []
    status = "interrupted"

    def account(index: int, planned: PlannedJob, outcome: str, failure: JobFailure | None) -> None:
        counts[outcome] += 1
        if failure is not None:
            failures.append(failure)
        label = f"[{index}/{len(plan.jobs)}] {planned.job.model.name} x {', '.join(planned.job.task_names)}"
        report(f"{label}: {outcome}" + (f" ({failure.kind}: {failure.message})" if failure else ""))

    try:
        # First settle, in one store session, every job that needs no worker (already complete, or its model
        # cannot be had); then run the rest. 462 unreachable jobs settle in about a second this way.
        needs_worker: list[tuple[int, PlannedJob]] = []
        with history.session():
            for index, planned in enumerate(plan.jobs, start=1):
                settled = runner.settle_without_worker(planned, index)
                if settled is None:
                    needs_worker.append((index, planned))
                else:
                    account(index, planned, *settled)
        for index, planned in needs_worker:
            account(index, planned, *runner.run_job(planned, index))
        status = "failed" if failures else "complete"
    finally:
        summary = RunSummary(run_id=plan.run_id, profile=plan.profile.name, mode=options.mode, status=status,
                             jobs_total=len(plan.jobs), jobs_completed=counts["complete"],
                             jobs_reused=counts["reused"], jobs_failed=counts["failed"],
                             wall_s=time.perf_counter() - started, db_path=str(settings.db_file),
                             failures=failures)
        history.finish_run(plan.run_id, status, summary.model_dump(mode="json"))
    return summary


def _public_settings(settings: Settings) -> dict[str, Any]:
    # The token never reaches the store: dump everything else.
    return settings.model_dump(mode="json", exclude={"hf_token"})


def _versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for package in ("spectrabench", "lm_eval", "transformers", "torch", "duckdb"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "missing"
    return versions
