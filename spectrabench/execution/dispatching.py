"""When and where queued jobs start: in plan order (the traditional modes) or longest predicted first (optimized).

Both loops ask the executor for finished attempts, hand each to the run (which records it and says whether to
retry), and start queued jobs on devices that are free. They differ only in which job a free device takes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Protocol, TypeVar

from spectrabench.execution.executor import AttemptResult, Executor
from spectrabench.hardware import DeviceSpec
from spectrabench.planning.dispatch import DynamicLPT
from spectrabench.planning.jobs import Job
from spectrabench.planning.placement import offerable
from spectrabench.planning.schedule import SlotState, WorkItem
from spectrabench.planning.tails import RunningJob, tail_move


class QueuedJob(Protocol):
    """A job waiting for (another) attempt."""

    @property
    def job(self) -> Job:
        """The job."""
        ...


S = TypeVar("S", bound=QueuedJob)


class RunLoop(Protocol[S]):
    """What the dispatch loops need from a run."""

    @property
    def executor(self) -> Executor:
        """Where attempts run."""
        ...

    @property
    def unavailable(self) -> Mapping[str, str]:
        """Models known to be unreachable, with why."""
        ...

    @property
    def in_flight(self) -> Mapping[str, S]:
        """Attempts running, by key."""
        ...

    def submit(self, state: S, devices: tuple[DeviceSpec, ...]) -> None:
        """Start the next attempt of `state` on `devices`."""
        ...

    def handle(self, result: AttemptResult) -> S | None:
        """Record a finished attempt; the job's state when it should be retried."""
        ...

    def fail_unavailable(self, state: S) -> None:
        """Fail a job whose model is known to be unreachable, without a worker."""
        ...

    def item_for(self, state: S) -> WorkItem:
        """The scheduler's view of a queued job (its forecast)."""
        ...

    def running_jobs(self) -> list[RunningJob]:
        """Jobs in flight with their progress, for tail moves."""
        ...

    def move_tail(self, job_key: str, count: int, devices: tuple[DeviceSpec, ...]) -> S | None:
        """Move the last `count` unstarted tasks of a running job to a new job started on `devices`."""
        ...


def _need(job: Job, need: int, on_gpu: bool) -> int:
    """Devices `job` takes at once: the run's `--gpus-per-job`, or the GPUs its model is split over."""
    return max(need, job.gpus) if on_gpu else need


def run_queue(run: RunLoop[S], queue: deque[S], need: int, *, longest_first: bool, max_tail_moves: int = 0) -> None:
    """Start and settle jobs until the queue is empty and nothing runs.

    Args:
        run: The run: records results, decides retries.
        queue: Jobs in plan order.
        need: Devices one job takes at once (`--gpus-per-job` on GPUs, 1 on CPU slots).
        longest_first: Let `DynamicLPT` choose (optimized mode); otherwise plan order, retries first.
        max_tail_moves: With `longest_first`, how many times a device left idle may take the unstarted tail of a
            running job (`planning.tails`): the model loads the plan left unspent.
    """
    devices = run.executor.capacity()
    on_gpu = bool(devices) and devices[0].kind == "cuda"
    busy: dict[str, str] = {}
    last_model: dict[str, str | None] = dict.fromkeys((d.id for d in devices), None)
    # One job per device: co-locating jobs on a GPU needs an executor that shares devices, which none does yet.
    policy = DynamicLPT(n_devices=max(1, len(devices) // need), colocate=False) if longest_first else None
    items: dict[str, WorkItem] = {}
    t0 = time.monotonic()
    while queue or run.in_flight:
        while queue:
            free = [d for d in devices if d.id not in busy]
            state = queue[0]
            # In plan order the head waits for its devices; the policy sees only what the free devices can start.
            if len(free) < (1 if policy is not None and need == 1 else _need(state.job, need, on_gpu)):
                break
            if policy is not None and need == 1:
                # A job split over k GPUs is offered only while k are free (placement.offerable).
                view = offerable([items.setdefault(s.job.job_key, run.item_for(s)) for s in queue], len(free) - 1)
                slot = SlotState(device_id=free[0].id, total_mem_gb=free[0].total_mem_gb,
                                 free_mem_gb=free[0].free_mem_gb, last_model=last_model.get(free[0].id))
                pick = policy.pick(view, slot, time.monotonic() - t0) if view else None
                if pick is None:
                    break
                state = next(s for s in queue if s.job.job_key == pick.key)
            queue.remove(state)
            if state.job.model.name in run.unavailable:
                run.fail_unavailable(state)
                continue
            chosen = tuple(free[:_need(state.job, need, on_gpu)])
            run.submit(state, chosen)
            for device in chosen:
                busy[device.id] = state.job.job_key
                last_model[device.id] = state.job.model.name
        if policy is not None and need == 1 and not queue and max_tail_moves > 0:
            # Nothing left to start: an idle device may take the unstarted tail of a job that will end last.
            while free := [d for d in devices if d.id not in busy]:
                move = tail_move(run.running_jobs(), free[0].free_mem_gb, policy.scale_for,
                                 idle_partners=len(free) - 1 if on_gpu else 0)
                if move is None:
                    break
                parent = next(s for s in run.in_flight.values() if s.job.job_key == move.key)
                moved = run.move_tail(move.key, move.n_tasks, tuple(free[:_need(parent.job, need, on_gpu)]))
                if moved is None:
                    break
                items[move.key] = run.item_for(parent)  # what it predicts now that the tail is gone
                items[moved.job.job_key] = run.item_for(moved)
                for device in free[:_need(moved.job, need, on_gpu)]:
                    busy[device.id] = moved.job.job_key
                    last_model[device.id] = moved.job.model.name
                max_tail_moves -= 1
                if not max_tail_moves:
                    break
        for result in run.executor.wait(timeout_s=1.0):
            for device in result.request.devices:
                busy.pop(device.id, None)
            retry = run.handle(result)
            key = result.request.key.split("#")[0]
            if retry is not None:
                queue.appendleft(retry)
                items.pop(key, None)  # its remaining tasks may be fewer now
            elif policy is not None and key in items and result.outcome.error_kind is None:
                tasks = result.outcome.progress.get("tasks", {}) or {}
                evaluated = sum(float(t.get("seconds") or 0.0) for t in tasks.values())
                policy.observe(items.pop(key), evaluated)
