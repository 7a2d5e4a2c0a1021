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
from spectrabench.planning.placement import may_share, offerable, shares_mid_size
from spectrabench.planning.schedule import SlotState, WorkItem
from spectrabench.planning.speeds import pool_rates
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

    def submit(self, state: S, devices: tuple[DeviceSpec, ...], *, shared: bool = False) -> None:
        """Start the next attempt of `state` on `devices` (`shared`: it may run beside others on its GPU)."""
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


def _slot(device: DeviceSpec, keys: list[str], items: Mapping[str, WorkItem], last_model: str | None,
          finished: Mapping[str, int] | None = None) -> SlotState:
    """`device` as the policy sees it: what runs there, and its memory less their predicted peaks, each of the
    tasks a job has left (`finished`: tasks done so far by job key; its worker frees its cache between tasks)."""
    done = finished or {}
    used = sum(items[key].mem_from(done.get(key, 0)) / max(1, items[key].gpus) for key in keys if key in items)
    return SlotState(device_id=device.id, total_mem_gb=device.total_mem_gb,
                     free_mem_gb=max(0.0, device.free_mem_gb - used), running=tuple(keys), last_model=last_model)


def run_queue(run: RunLoop[S], queue: deque[S], need: int, *, longest_first: bool, max_tail_moves: int = 0,
              speeds: Mapping[str, float] | None = None) -> None:
    """Start and settle jobs until the queue is empty and nothing runs.

    Args:
        run: The run: records results, decides retries.
        queue: Jobs in plan order.
        need: Devices one job takes at once (`--gpus-per-job` on GPUs, 1 on CPU slots).
        longest_first: Let `DynamicLPT` choose (optimized mode); otherwise plan order, retries first.
        max_tail_moves: With `longest_first`, how many times a device left idle may take the unstarted tail of a
            running job (`planning.tails`): the model loads the plan left unspent.
        speeds: In a pool that mixes kinds, each kind's predicted speed (`planning.speeds`): a slow device leaves
            a job to a faster one where it would end the run late.
    """
    devices = run.executor.capacity()
    on_gpu = bool(devices) and devices[0].kind == "cuda"
    # Several small jobs may share a GPU where the executor runs them side by side and the policy finds that it pays
    # (`placement.should_colocate`); CPU slots are already shares of the machine.
    colocate = longest_first and need == 1 and on_gpu and run.executor.shares_devices
    occupants: dict[str, list[str]] = {d.id: [] for d in devices}  # job keys running on each device
    last_model: dict[str, str | None] = dict.fromkeys((d.id for d in devices), None)
    rates = pool_rates(devices, speeds) if need == 1 else []
    policy = DynamicLPT(n_devices=max(1, len(devices) // need), colocate=colocate,
                        pool=rates) if longest_first else None
    items: dict[str, WorkItem] = {}
    t0 = time.monotonic()
    while queue or run.in_flight:
        while queue:
            free = [d for d in devices if not occupants[d.id]]
            state = queue[0]
            chosen: tuple[DeviceSpec, ...] = ()
            if policy is not None and need == 1:
                view = [items.setdefault(s.job.job_key, run.item_for(s)) for s in queue]
                # Memory a busy device frees as its jobs finish their heavy tasks (`WorkItem.mem_from`).
                finished = {job.item.key: job.finished for job in run.running_jobs()} if colocate and not free else {}
                pick, chosen = _pick(policy, view, free, devices if colocate else [], occupants, items, last_model,
                                     time.monotonic() - t0, finished)
                if pick is None:
                    break
                state = next(s for s in queue if s.job.job_key == pick.key)
            elif len(free) < _need(state.job, need, on_gpu):
                break  # in plan order the head waits for its devices
            queue.remove(state)
            if state.job.model.name in run.unavailable:
                run.fail_unavailable(state)
                continue
            chosen = chosen or tuple(free[:_need(state.job, need, on_gpu)])
            # The executor lets a job run beside others only where the policy could put one there.
            shared = colocate and all(may_share(items[state.job.job_key], (), mid_size_allowed=shares_mid_size(d.name))
                                      for d in chosen)
            run.submit(state, chosen, shared=shared)
            for device in chosen:
                occupants[device.id].append(state.job.job_key)
                last_model[device.id] = state.job.model.name
        if policy is not None and need == 1 and not queue and max_tail_moves > 0:
            # Nothing left to start: an idle device may take the unstarted tail of a job that will end last.
            speed_of = {rate.device_id: rate.speed for rate in rates}
            while free := sorted((d for d in devices if not occupants[d.id]), key=lambda d: -speed_of.get(d.id, 1.0)):
                where = {key: device for device, keys in occupants.items() for key in keys}
                running = [job._replace(speed=speed_of.get(where.get(job.item.key, ""), 1.0))
                           for job in run.running_jobs()]
                move = tail_move(running, free[0].free_mem_gb, policy.scale_for,
                                 idle_partners=len(free) - 1 if on_gpu else 0, speed=speed_of.get(free[0].id, 1.0))
                if move is None:
                    break
                parent = next(s for s in run.in_flight.values() if s.job.job_key == move.key)
                moved = run.move_tail(move.key, move.n_tasks, tuple(free[:_need(parent.job, need, on_gpu)]))
                if moved is None:
                    break
                items[move.key] = run.item_for(parent)  # what it predicts now that the tail is gone
                items[moved.job.job_key] = run.item_for(moved)
                for device in free[:_need(moved.job, need, on_gpu)]:
                    occupants[device.id].append(moved.job.job_key)
                    last_model[device.id] = moved.job.model.name
                max_tail_moves -= 1
                if not max_tail_moves:
                    break
        for result in run.executor.wait(timeout_s=1.0):
            key = result.request.key.split("#")[0]
            for device in result.request.devices:
                if key in occupants[device.id]:
                    occupants[device.id].remove(key)
            retry = run.handle(result)
            if retry is not None:
                queue.appendleft(retry)
                items.pop(key, None)  # its remaining tasks may be fewer now
            elif policy is not None and key in items and result.outcome.error_kind is None:
                tasks = result.outcome.progress.get("tasks", {}) or {}
                evaluated = sum(float(t.get("seconds") or 0.0) for t in tasks.values())
                policy.observe(items.pop(key), evaluated)


def _pick(policy: DynamicLPT, queue: list[WorkItem], free: list[DeviceSpec], shareable: list[DeviceSpec],
          occupants: Mapping[str, list[str]], items: Mapping[str, WorkItem], last_model: Mapping[str, str | None],
          now: float, finished: Mapping[str, int] | None = None) -> tuple[WorkItem | None, tuple[DeviceSpec, ...]]:
    """What the policy starts next and on which devices: on a free device, the first that takes something (with
    free partners for a job split over k GPUs, which is offered only while k are free: `placement.offerable`; a
    slow card of a mixed pool may leave every job to a faster one), or, with none free, beside the jobs on a busy
    device in `shareable`, the least shared first (`finished`: the tasks each running job has done)."""
    view = offerable(queue, len(free) - 1) if free else []
    for index, device in enumerate(free if view else []):
        pick = policy.pick(view, _slot(device, [], items, last_model.get(device.id)), now)
        if pick is not None:
            return pick, (device, *(free[:index] + free[index + 1:])[:max(1, pick.gpus) - 1])
    if free:
        return None, ()
    view = offerable(queue, 0)
    for device in sorted(shareable, key=lambda d: len(occupants[d.id])):
        pick = policy.pick(view, _slot(device, occupants[device.id], items, last_model.get(device.id), finished),
                           now)
        if pick is not None:
            return pick, (device,)
    return None, ()
