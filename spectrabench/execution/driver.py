"""The driver: runs a plan's jobs on an executor, retries what can be retried, and records everything.

The driver is the only process that writes DuckDB. Each finished task is stored as soon as its attempt ends, so
an interrupted run loses at most the tasks in flight, and the next run skips every stored (model, task) key.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from spectrabench.execution.backends import make_executor
from spectrabench.execution.dispatching import run_queue
from spectrabench.execution.executor import AttemptRequest, AttemptResult, Executor
from spectrabench.execution.groupparts import settle_groups
from spectrabench.execution.outcomes import JobFailure, RunObserver, RunSummary, SilentObserver
from spectrabench.execution.preflight import unreachable_models
from spectrabench.execution.retry import decide_retry
from spectrabench.execution.runlock import run_lock
from spectrabench.execution.runplan import RunPlan, attempt_spec, check_data_dir, worker_env
from spectrabench.execution.tailmoves import claim_tail, running_view
from spectrabench.hardware import DeviceSpec
from spectrabench.harness.results import BadOutput, read_task_output
from spectrabench.harness.workerspec import ErrorKind
from spectrabench.planning.jobs import Job, TaskRef, job_of
from spectrabench.planning.pieces import load_budget
from spectrabench.planning.schedule import WorkItem
from spectrabench.planning.tails import RunningJob
from spectrabench.planning.workitems import work_item
from spectrabench.settings import Settings
from spectrabench.store.history import AttemptRecord, History
from spectrabench.store.machineload import MachineLoad


@dataclass
class _JobState:
    job: Job
    todo: list[TaskRef]
    batch_size: int
    attempt: int = 0
    co_located: int = 1  # attempts on its GPU when the latest attempt started, itself included
    device: DeviceSpec | None = None  # where the latest attempt runs (its first device)
    solo: bool = False  # ran out of memory beside other jobs: from then on it runs alone
    failed_kinds: list[ErrorKind] = field(default_factory=list)
    done: list[str] = field(default_factory=list)


class _Run:
    """One execution of a plan: the queue, the executor, and the bookkeeping."""

    def __init__(self, plan: RunPlan, settings: Settings, history: History, executor: Executor,
                 observer: RunObserver) -> None:
        self.plan, self.settings, self.history, self.executor, self.observer = (
            plan, settings, history, executor, observer)
        self.counts = {"complete": 0, "reused": 0, "failed": 0}
        self.failures: list[JobFailure] = []
        self.attempts = 0
        self.retries = 0
        self.contended: list[MachineLoad] = []  # attempts that other work on the machine competed with
        self.in_flight: dict[str, _JobState] = {}
        self._attempt_dirs: dict[str, tuple[Path, float]] = {}  # in-flight key -> (attempt folder, wall start)
        self._placed: dict[str, frozenset[str]] = {}  # in-flight key -> its device ids
        self._beside_others: set[str] = set()  # in-flight keys that shared a device with another attempt
        self.tail_moves = 0
        # model name -> why it cannot be loaded; its jobs then fail at once, without starting a worker
        self.unavailable = unreachable_models(plan.profile.models, settings)

    # -- settling jobs that need no worker -------------------------------------------------------------------
    def initial_states(self) -> deque[_JobState]:
        """Settle every job whose outcome is known without a worker; queue the rest in plan order."""
        # A part of a group is done when it is, or when the whole group is (measured whole, or aggregated).
        keys = [key for planned in self.plan.jobs for ref in planned.job.tasks
                for key in (ref.task_key, ref.whole_key) if key is not None]
        completed = set() if self.plan.options.force else self.history.completed_task_keys(keys)
        queue: deque[_JobState] = deque()
        with self.history.session():  # one connection for a burst of small writes
            for planned in self.plan.jobs:
                job = planned.job
                todo = [ref for ref in job.tasks if ref.task_key not in completed and ref.whole_key not in completed]
                state = _JobState(job, todo, job.batch_size)
                if not todo:
                    self._finish_job(state, "reused")
                elif job.model.name in self.unavailable:
                    self.fail_job(state, ErrorKind.UNAVAILABLE.value, self.unavailable[job.model.name], None)
                else:
                    queue.append(state)
        return queue

    # -- recording -------------------------------------------------------------------------------------------
    def _statuses(self, state: _JobState, final: str) -> dict[str, str]:
        todo = {ref.name for ref in state.todo} | set(state.done)
        return {ref.name: ("reused" if ref.name not in todo else "complete" if ref.name in state.done else final)
                for ref in state.job.tasks}

    def _prediction(self, state: _JobState) -> tuple[float, float, str] | None:
        """The job's predicted wall time, peak and stage, the time for the card its latest attempt ran on (in a
        mixed pool the forecast is for the smallest card that holds it: `RunPlan.speeds` turns one into the other)."""
        forecast = self.plan.forecasts.get(state.job.job_key)
        if forecast is None:
            return None
        speeds = self.plan.speeds
        ran_on = speeds.get(state.device.name, 1.0) if state.device is not None else speeds.get(forecast.device, 1.0)
        runtime = forecast.runtime_s * speeds.get(forecast.device, 1.0) / ran_on
        return runtime, forecast.peak_mem_gb, forecast.stage

    def _timeout(self, job: Job) -> float | None:
        """The user's --job-timeout, else a generous multiple of a learned prediction, else none."""
        if self.plan.options.job_timeout_s is not None:
            return self.plan.options.job_timeout_s
        forecast = self.plan.forecasts.get(job.job_key)
        if forecast is None or forecast.stage == "intelligent":
            return None  # rules alone are too rough to kill a job on
        # In a mixed pool the attempt may land on the slowest card: never kill it for being slower than a fast one.
        speeds = self.plan.speeds
        stretch = speeds.get(forecast.device, 1.0) / min(speeds.values()) if speeds else 1.0
        return max(300.0, self.settings.timeout_factor * forecast.runtime_s * stretch)

    def _places(self, job: Job) -> dict[str, int]:
        """Each task's (model, task) position in the profile: model index x 1000 + task index."""
        models = [m.name for m in self.plan.profile.models]
        tasks = [t.name for t in self.plan.profile.tasks]
        model = models.index(job.model.name) if job.model.name in models else len(models)
        return {ref.name: model * 1000 + (tasks.index(ref.profile_task) if ref.profile_task in tasks else len(tasks))
                for ref in job.tasks}

    def _features(self, job: Job, task: str, batch_size: int, co_located: int = 1,
                  device: DeviceSpec | None = None) -> dict[str, Any] | None:
        forecast = self.plan.forecasts.get(job.job_key)
        for item in forecast.tasks if forecast else []:
            if item.task == task:
                # What it really ran at, where, and beside how many others, is what the predictor must learn from
                # (in a mixed pool the forecast was for the smallest card that holds the job, not the one it got).
                update: dict[str, Any] = {"batch_size": batch_size, "co_located": co_located}
                if device is not None:
                    update |= {"device_kind": device.kind, "device_name": device.name,
                               "device_mem_gb": device.total_mem_gb, "threads": device.threads}
                return item.features.model_copy(update=update).model_dump(mode="json")
        return None

    def _finish_job(self, state: _JobState, outcome: str) -> None:
        run_id, devices = self.plan.run_id, self.plan.devices_label
        self.history.record_job(run_id, state.job, status=outcome, devices=devices,
                                prediction=self._prediction(state))
        self.history.record_run_tasks(run_id, state.job, self._statuses(state, outcome), self._places(state.job))
        settle_groups(self.history, self.settings.results_root, run_id, state.job, self._places(state.job))
        self.counts[outcome] += 1
        self.observer.job_done(state.job, outcome, None)

    def fail_job(self, state: _JobState, kind: str, message: str, log_path: str | None) -> None:
        failure = JobFailure(job_key=state.job.job_key, model=state.job.model.name,
                             tasks=[ref.name for ref in state.todo], kind=kind, message=message, log_path=log_path)
        self.history.record_job(self.plan.run_id, state.job, status="failed", devices=self.plan.devices_label,
                                error_kind=kind, error=message, prediction=self._prediction(state))
        self.history.record_run_tasks(self.plan.run_id, state.job, self._statuses(state, "failed"),
                                      self._places(state.job))
        settle_groups(self.history, self.settings.results_root, self.plan.run_id, state.job, self._places(state.job),
                      unfinished={ref.task_key for ref in state.todo})
        self.counts["failed"] += 1
        self.failures.append(failure)
        self.observer.job_done(state.job, "failed", failure)

    def fail_unavailable(self, state: _JobState) -> None:
        """Fail a job whose model turned out unreachable while it waited."""
        self.fail_job(state, ErrorKind.UNAVAILABLE.value, self.unavailable[state.job.model.name], None)

    def item_for(self, state: _JobState) -> WorkItem:
        """The dispatcher's view of a queued job: its forecast, scaled to the tasks it still has to run."""
        left = state.job.model_copy(update={"tasks": tuple(state.todo)})
        return work_item(left, self.plan.forecasts.get(state.job.job_key), speeds=self.plan.speeds).model_copy(
            update={"shareable": not state.solo})

    # -- attempts --------------------------------------------------------------------------------------------
    def submit(self, state: _JobState, devices: tuple[DeviceSpec, ...], *, shared: bool = False) -> None:
        """Start the next attempt of `state` on `devices` (`shared`: it may run beside others on its GPU)."""
        state.attempt += 1
        self.attempts += 1
        spec = attempt_spec(self.plan, state.job, state.attempt, tuple(state.todo), state.batch_size, devices,
                            self.settings)
        key = f"{state.job.job_key}#{state.attempt}"
        self._attempt_dirs[key] = (Path(spec.out_dir), time.time())
        self.history.start_attempt(self.plan.run_id, state.job.job_key, state.attempt, batch_size=state.batch_size,
                                   tasks=[ref.name for ref in state.todo],
                                   devices=",".join(d.id for d in devices),
                                   started_at=time.time(), log_path=str(spec.out_dir))
        self.in_flight[key] = state
        ids = frozenset(d.id for d in devices)
        neighbours = [other for other, taken in self._placed.items() if taken & ids]
        state.co_located = 1 + len(neighbours)
        state.device = devices[0]
        if neighbours:
            self._beside_others.update([key, *neighbours])
        self._placed[key] = ids
        self.executor.submit(AttemptRequest(key=key, spec=spec, devices=devices,
                                            timeout_s=self._timeout(state.job), shared=shared))
        self.observer.attempt_started(state.job, state.attempt, devices, state.batch_size)

    def _store_finished_tasks(self, state: _JobState, result: AttemptResult) -> BadOutput | None:
        outcome = result.outcome
        timings = outcome.progress.get("tasks", {}) or {}
        for ref in list(state.todo):
            if ref.name not in timings:
                continue
            try:
                output = read_task_output(outcome.log_path.parent, ref.name)
            except BadOutput as exc:
                return exc
            self.history.record_task_output(self.plan.run_id, state.job, state.attempt, ref, output,
                                            runtime_s=timings[ref.name].get("seconds"),
                                            batch_size=ref.batch_under(state.batch_size),
                                            features=self._features(state.job, ref.name,
                                                                    ref.batch_under(state.batch_size),
                                                                    state.co_located, state.device))
            state.todo.remove(ref)
            state.done.append(ref.name)
        return None

    def running_jobs(self) -> list[RunningJob]:
        """The attempts in flight as `planning.tails` sees them (those whose progress can be read here)."""
        now, views = time.time(), []
        for key, state in self.in_flight.items():
            folder, started = self._attempt_dirs[key]
            view = running_view(self.item_for(state), folder, started, now)
            if view is not None:
                views.append(view)
        return views

    def move_tail(self, job_key: str, count: int, devices: tuple[DeviceSpec, ...]) -> _JobState | None:
        """Take the last `count` unstarted tasks of the running job `job_key` back from its worker and start them
        as a new job on `devices`; the new job's state, or None when the worker had started them all."""
        key, state = next(((k, s) for k, s in self.in_flight.items() if s.job.job_key == job_key), (None, None))
        if key is None or state is None:
            return None
        moved = claim_tail(self._attempt_dirs[key][0], state.todo, count)
        if not moved:
            return None
        names = {ref.name for ref in moved}
        state.todo = [ref for ref in state.todo if ref.name not in names]
        state.job = state.job.model_copy(update={"tasks": tuple(r for r in state.job.tasks if r.name not in names)})
        tail = job_of(state.job.model, moved, state.job.limit, state.batch_size).model_copy(
            update={"gpus": state.job.gpus})
        forecast = self.plan.forecasts.get(job_key)
        if forecast is not None:
            parts = [t for t in forecast.tasks if t.task in names]
            self.plan.forecasts[tail.job_key] = forecast.model_copy(update={
                "job_key": tail.job_key, "tasks": parts,
                "runtime_s": forecast.load_s + sum(t.runtime_s for t in parts)})
        tail_state = _JobState(tail, list(moved), state.batch_size)
        self.tail_moves += 1
        self.submit(tail_state, devices)
        return tail_state

    def handle(self, result: AttemptResult) -> _JobState | None:
        """Record a finished attempt; return the job's state when it should be retried."""
        state = self.in_flight.pop(result.request.key)
        self._attempt_dirs.pop(result.request.key, None)
        self._placed.pop(result.request.key, None)
        beside_others = result.request.key in self._beside_others
        self._beside_others.discard(result.request.key)
        outcome = result.outcome
        bad = self._store_finished_tasks(state, result)
        kind, message = outcome.error_kind, outcome.error
        if kind is None and bad is None and state.todo:
            bad = BadOutput(outcome.log_path.parent, "worker exited 0 but left tasks unfinished")
        if bad is not None and kind in (None, ErrorKind.CRASH):
            kind, message = ErrorKind.BAD_OUTPUT, f"{bad.path.name}: {bad.reason}"
        usage = result.usage
        progress = outcome.progress
        if result.background is not None and result.background.contended:
            self.contended.append(result.background)
        # On CPU the worker's own peak RSS catches spikes between monitor samples; on GPU the monitor's NVML
        # figure is what the device really held (torch's max_memory_allocated stays in the worker record).
        on_gpu = result.request.devices[0].kind == "cuda"
        peaks = [p for p in (usage.peak_mem_gb, None if on_gpu else progress.get("peak_mem_gb")) if p is not None]
        self.history.finish_attempt(self.plan.run_id, AttemptRecord(
            job_key=state.job.job_key, attempt=state.attempt, finished_at=outcome.finished_at,
            status="complete" if kind is None else "failed", runtime_s=outcome.finished_at - outcome.started_at,
            load_s=progress.get("load_s"), provision_s=progress.get("provision_s"),
            peak_mem_gb=max(peaks) if peaks else None, mean_util_pct=usage.mean_util_pct,
            returncode=outcome.returncode, error_kind=kind.value if kind else None, error=message,
            worker={k: progress.get(k) for k in ("device", "import_s", "tasks", "peak_mem_gb")},
            background=result.background),
            [(s.t, s.device, s.mem_gb, s.util_pct) for s in usage.samples])
        if kind is None:
            self._finish_job(state, "complete")
            return None
        if kind is ErrorKind.UNAVAILABLE and progress.get("load_s") is None:
            self.unavailable[state.job.model.name] = f"{message} (first seen in job {state.job.job_key})"
        # The task it died in is the first one left: its batch is what an OOM retry halves (and caps the rest by).
        batch = state.todo[0].batch_under(state.batch_size) if state.todo else state.batch_size
        decision = decide_retry(kind, batch, state.failed_kinds, self.plan.options.max_retries,
                                beside_others=beside_others and not state.solo)
        state.failed_kinds.append(kind)
        if decision.retry and state.todo:
            if kind is ErrorKind.OOM and beside_others and not state.solo:
                state.solo = True  # the same batch, alone: its neighbours may have taken the memory
            elif kind is ErrorKind.OOM:  # other retries keep the cap: only an OOM says the batch was too big
                state.batch_size = decision.batch_size
            self.retries += 1
            self.observer.retrying(state.job, decision.reason)
            return state
        self.fail_job(state, kind.value, message or kind.value, str(outcome.log_path))
        return None


def execute_run(plan: RunPlan, settings: Settings, observer: RunObserver | None = None,
                executor: Executor | None = None) -> RunSummary:
    """Run every job of `plan`, dispatching to free devices, and record each outcome as it happens.

    Args:
        plan: From `plan_run`.
        settings: Where the store and results live.
        observer: Receives progress events.
        executor: The backend; by default the plan's (`--backend`) on the plan's devices.

    On Ctrl-C every worker is killed, finished tasks stay stored, and the summary says "interrupted".
    """
    check_data_dir(settings)
    observer = observer or SilentObserver()
    with run_lock(settings.data_dir):
        history = History(settings.db_file)
        history.mark_lost()
        options = plan.options
        history.start_run(plan.run_id, profile=plan.profile.name, mode=options.mode, limit=options.limit,
                          devices=plan.devices_label, backend=options.backend, settings=_public_settings(settings),
                          versions=_versions(),
                          sampling=f"random:{options.sample_seed}" if options.sampling == "random" else "first")
        started = time.perf_counter()
        executor = executor or make_executor(options.backend, plan.devices, worker_env(settings),
                                             ray_address=options.ray_address)
        run = _Run(plan, settings, history, executor, observer)
        status = "interrupted"
        version, training = plan.predictor_version, None
        try:
            queue = run.initial_states()
            devices = executor.capacity()
            # A GPU job takes --gpus-per-job devices at once; a CPU job one slot.
            need = options.gpus_per_job if devices and devices[0].kind == "cuda" else 1
            models = len({planned.job.model.name for planned in plan.jobs})
            spare_loads = load_budget(models, max(1, len(devices) // need)) - len(plan.jobs)
            run_queue(run, queue, need, longest_first=options.mode == "optimized", max_tail_moves=max(0, spare_loads),
                      speeds=plan.speeds)
            status = "failed" if run.failures else "complete"
            if run.counts["complete"]:
                version, training = _learn(settings, plan)
        except KeyboardInterrupt:
            pass
        finally:
            executor.close()
            summary = RunSummary(run_id=plan.run_id, profile=plan.profile.name, mode=options.mode,
                                 devices=plan.devices_label, status=status, jobs_total=len(plan.jobs) + run.tail_moves,
                                 jobs_completed=run.counts["complete"], jobs_reused=run.counts["reused"],
                                 jobs_failed=run.counts["failed"], attempts=run.attempts, retries=run.retries,
                                 wall_s=time.perf_counter() - started, db_path=str(settings.db_file),
                                 predictor_version=version, training=training, failures=run.failures,
                                 tail_moves=run.tail_moves, contended_attempts=len(run.contended),
                                 other_cores_max=max((b.other_cores for b in run.contended), default=None))
            history.mark_lost("interrupted", "the run was interrupted before this attempt finished")
            history.finish_run(plan.run_id, status, summary.model_dump(mode="json"))
    return summary


def _learn(settings: Settings, plan: RunPlan) -> tuple[int | None, str]:
    """Retrain the predictor on the history this run extended; a failure here never fails the run."""
    from spectrabench.harness.tokencounts import profile_token_scales
    from spectrabench.training import train_predictor

    try:
        # Counted again rather than taken from the plan: a builtin model built during this run has a tokenizer now.
        scales = profile_token_scales(plan.profile.models, plan.sources, settings.model_cache)
        report = train_predictor(settings.db_file, plan.profile.scheduler, token_scales=scales,
                                 include_contended=settings.learn_from_busy_machine)
    except Exception as exc:  # the run's results are stored; learning can wait for the next run
        return plan.predictor_version, f"predictor training failed: {type(exc).__name__}: {exc}"
    busy = f" ({report.left_out_busy} more left out: timed on a busy machine)" if report.left_out_busy else ""
    if report.version is None:
        return plan.predictor_version, f"predictor not trained: {report.skipped}{busy}"
    return report.version, (f"predictor v{report.version} trained on {report.records} records{busy} in "
                            f"{report.seconds:.1f} s")


def _public_settings(settings: Settings) -> dict[str, Any]:
    # The token never reaches the store: dump everything else.
    return settings.model_dump(mode="json", exclude={"hf_token"})


def _versions() -> dict[str, str]:
    versions = {}
    for package in ("spectrabench", "lm_eval", "transformers", "torch", "duckdb"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "missing"
    return versions
