"""A discrete-event replay of a policy on a device pool, against the truth model.

Whenever a device can take more work, the policy is asked what to start on it, seeing only predictions and a
`SlotState` whose free memory is the device's total minus the *predicted* peaks of what runs there. The
attempt then costs what the truth says: it loads (warm when the device ran the same model just before), and
runs; several attempts on one device share it, each slowed by the truth's co-location factor, re-rated
whenever one starts or ends. If the attempt's *true* peak exceeds the device's true free memory it dies of
OOM after its load and a tenth of its runtime, and is retried at the front of the queue with the batch of the task
it died in halved (a cap on every task's batch), as the real driver does (at batch 1 with neighbours, it is
retried alone; alone at batch 1 it fails). A finished item's actual runtime goes back to the policy through
`observe`.

The worker frees its cached memory between tasks, so an attempt holds the true peak of the task at hand, not of its
whole job, and the policy sees a running job's predicted peak of the tasks it has left (`WorkItem.mem_from`); the
run is looked at again at every task's end. Should a task that starts need more than its device then has (a
later task may be heavier, or a neighbour's truth larger than predicted), its attempt dies of OOM there and is
retried with the tasks it had not finished, as the real driver does.

With `max_tail_moves`, a device left idle with nothing to start asks `planning.tails.tail_move` whether a running
job's unstarted last tasks should move to it, as the real driver does: the policy sees each running job's progress
(tasks finished, time in the task at hand) and its corrected predictions; the job then keeps only its head, and the
tail starts on the idle device as a new item with a cold load. While a device so waits it asks again at the end of
every running task and at least once a simulated minute (the real driver looks every second), not only when an
attempt ends: a group's part that overruns makes its unstarted parts worth moving while no job ends.

Each result carries the lower bound of its completed items (`simulate.bound`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from spectrabench.hardware import DeviceSpec
from spectrabench.planning.placement import offerable
from spectrabench.planning.schedule import Policy, SlotState, WorkItem
from spectrabench.planning.tails import RunningJob, tail_move
from spectrabench.simulate.attempts import DONE_EPS, Attempt, PoolDevice, Segment
from spectrabench.simulate.bound import lower_bound
from spectrabench.simulate.truth import (
    DEFAULT_TRUTH,
    SimJob,
    TruthConfig,
    colocation_slowdown,
    true_cost,
)
from spectrabench.simulate.workload import item_key

TruthFor = Mapping[str, SimJob] | Callable[[WorkItem], SimJob]

# While a device idles for a tail to move, the run is looked at again at least this often (simulated seconds) and at
# the end of every running task: a task at hand that overruns its prediction makes its group's other parts look
# longer, and so a move worth its load.
_RECHECK_S = 60.0


class SimResult(NamedTuple):
    """What a simulated run did.

    Attributes:
        policy: The policy's name.
        makespan_s: When the last attempt ended.
        lower_bound_s: No schedule can finish the completed items sooner under this truth.
        oom_count: Attempts that died of OOM.
        model_loads: Cold loads (weights read from disk).
        warm_loads: Loads of the model the device ran just before (page cache).
        utilisation: Device-time with at least one attempt running, over devices x makespan.
        per_device_timeline: Each device's attempts in start order, by device id.
        completed: Items that finished.
        failed: Keys of items that gave up (OOM alone at batch 1, or too many attempts).
        unplaced: Keys of items the policy never started (it declined every idle device).
        tail_moves: Tails of running items moved to idle devices (each a cold load, counted in `model_loads`).
        peak_predicted_share: The most memory the policy ever committed on one device, over its memory: the predicted
            peaks of what ran there (of the tasks each had left, `WorkItem.mem_from`) when an attempt started. It
            can only fall between starts, so above 1 the policy overcommitted a device by its own predictions.
    """

    policy: str
    makespan_s: float
    lower_bound_s: float
    oom_count: int
    model_loads: int
    warm_loads: int
    utilisation: float
    per_device_timeline: dict[str, list[Segment]]
    completed: int
    failed: tuple[str, ...]
    unplaced: tuple[str, ...]
    tail_moves: int = 0
    peak_predicted_share: float = 0.0

    @property
    def ratio(self) -> float:
        """Makespan over the lower bound (>= 1; 1 is a perfect schedule)."""
        return self.makespan_s / self.lower_bound_s if self.lower_bound_s > 0 else 1.0


class _Run:
    """The mutable state of one simulation."""

    def __init__(self, items: Sequence[WorkItem], truth_for: TruthFor, devices: Sequence[DeviceSpec],
                 policy: Policy, seed: int, truth: TruthConfig, max_per_device: int, oom_waste: float,
                 max_attempts: int, max_tail_moves: int, speeds: Mapping[str, float] | None) -> None:
        given = (lambda item: truth_for[item.key]) if isinstance(truth_for, Mapping) else truth_for
        self.tails: dict[str, SimJob] = {}  # the truth of tails moved off running items, by their new key
        self.resumed: dict[str, SimJob] = {}  # the truth left to items that lost tasks (a tail moved, or done)
        self.given = given  # each item's whole truth, for the bound
        self.truth_of: Callable[[WorkItem], SimJob] = lambda item: (self.tails.get(item.key)
                                                                   or self.resumed.get(item.key) or given(item))
        self.moves_left = max_tail_moves
        self.moves = 0
        self.speeds = dict(speeds or {})  # predicted, by device kind
        self.devices = [PoolDevice(d) for d in devices]
        self.policy, self.seed, self.truth = policy, seed, truth
        self.max_per_device, self.oom_waste, self.max_attempts = max_per_device, oom_waste, max_attempts
        self.queue: list[WorkItem] = list(items)
        self.view: tuple[WorkItem, ...] | None = None  # the queue as the policy sees it, rebuilt after changes
        self.batch = {item.key: self.truth_of(item).batch_size for item in items}
        self.attempts = dict.fromkeys(self.batch, 0)
        self.now = 0.0
        self.oom_count = self.cold = self.warm = 0
        self.peak_committed = 0.0  # see SimResult.peak_predicted_share
        self.completed: list[str] = []
        self.failed: list[str] = []
        self.sharded = sum(item.gpus > 1 for item in items)  # sharded items queued: the view must be filtered

    def dispatch(self) -> None:
        for device in self.devices:
            if any(a.item.gpus > 1 for a in device.running):
                continue  # a sharded item owns its devices
            if not self.queue and self.moves_left and not device.running:
                self.move_tail(device)
            while self.queue and len(device.running) < self.max_per_device:
                partners = self.idle_like(device)
                if self.sharded:
                    # A sharded item is offered only when enough devices of this kind are idle to start it now:
                    # holding idle devices until others free up could waste a whole long job's time.
                    self.view = tuple(offerable(self.queue, len(partners)))
                elif self.view is None:
                    self.view = tuple(self.queue)
                predicted = sum(a.committed_gb() for a in device.running)
                slot = SlotState(device_id=device.spec.id, total_mem_gb=device.spec.total_mem_gb,
                                 free_mem_gb=device.spec.total_mem_gb - predicted,
                                 running=tuple(a.item.key for a in device.running), last_model=device.last_model)
                pick = self.policy.pick(self.view, slot, self.now)
                if pick is None:
                    if self.moves_left and not device.running:
                        self.move_tail(device)
                    break
                queued = next((i for i, item in enumerate(self.queue) if item.key == pick.key), None)
                if queued is None:
                    raise ValueError(f"policy {self.policy.name!r} picked '{pick.key}', which is not queued")
                item = self.queue.pop(queued)
                self.view = None
                self.start(item, [device, *partners[:item.gpus - 1]])
                if item.gpus > 1:
                    self.sharded -= 1
                    break

    def idle_like(self, device: PoolDevice) -> list[PoolDevice]:
        """The other idle devices of `device`'s kind (partners for a sharded item), none when `device` is busy."""
        if device.running:
            return []
        return [d for d in self.devices if d is not device and not d.running and d.spec.name == device.spec.name]

    def start(self, item: WorkItem, devices: list[PoolDevice]) -> None:
        device = devices[0]
        job = self.truth_of(item)._replace(batch_size=self.batch[item.key], gpus=len(devices))
        self.attempts[item.key] += 1
        warm = device.last_model == item.model
        # Luck per (model, task) and seed: every attempt, grouping and policy meets the same world.
        cost = true_cost(job, device.spec, 1, None, config=self.truth, warm=warm, luck=str(self.seed))
        free = min(d.spec.total_mem_gb - sum(a.held_now() for a in d.running) for d in devices)
        for held in devices:
            committed = sum(a.committed_gb() for a in held.running) + item.predicted_mem_gb / max(1, item.gpus)
            share = committed / held.spec.total_mem_gb
            self.peak_committed = max(self.peak_committed, share)
        oom = cost.peak_mem_gb > free
        failing = self.failing_batch(job, device.spec, free) if oom else 0
        runtime = cost.runtime_s * (self.oom_waste if oom else 1.0)
        work = cost.load_s + runtime
        # Each task's own seconds and peak, for the progress a tail move sees and the memory held as tasks end (the
        # same luck per task, so the seconds add up).
        alone = [true_cost(job._replace(tasks=(task,), task_batches=(job.batch_of(i),)), device.spec, 1, None,
                           config=self.truth, warm=warm, luck=str(self.seed),
                           built=frozenset(t.name for t in job.tasks[:i]))
                 for i, task in enumerate(job.tasks)] if len(job.tasks) > 1 else [cost]
        task_s = [c.runtime_s for c in alone]
        if warm:
            self.warm += 1
        else:
            self.cold += 1
        attempt = Attempt(item, job, self.attempts[item.key], self.now, work, runtime / work if work > 0 else 0.0,
                           max(0.0, min(cost.peak_mem_gb, free)), oom, warm, bool(device.running), failing,
                           cost.load_s, task_s, [c.peak_mem_gb for c in alone], devices)
        for held in devices:
            if not held.running:
                held.busy_since = self.now
            held.running.append(attempt)
            held.last_model = item.model
            self.rerate(held)

    def move_tail(self, device: PoolDevice) -> None:
        """Ask `tail_move` for a running job's tail and start it on the idle `device` (see the module docstring)."""
        kind = {id(a): d.spec.name for d in self.devices for a in d.running}
        running = [(a, RunningJob(a.item, finished, in_task, speed=self.speeds.get(kind[id(a)], 1.0), done_s=took))
                   for a in self.running_attempts() for finished, in_task, took in [a.progress()]]
        scale = getattr(self.policy, "scale_for", lambda _model: 1.0)
        partners = self.idle_like(device)
        move = tail_move([view for _, view in running], device.spec.total_mem_gb, scale, len(partners),
                         speed=self.speeds.get(device.spec.name, 1.0))
        if move is None:
            return
        attempt = next(a for a, view in running if view.item.key == move.key)
        n, count = len(attempt.item.tasks), move.n_tasks
        tail_item = attempt.item.tail(item_key(attempt.item.model, attempt.item.tasks[n - count:]), count)
        job = attempt.job
        batches = tuple(job.batch_of(i) for i in range(n))
        self.tails[tail_item.key] = job._replace(key=tail_item.key, tasks=job.tasks[n - count:],
                                                 task_batches=batches[n - count:])
        attempt.item = attempt.item.head(count)
        attempt.job = job._replace(tasks=job.tasks[:n - count], task_batches=batches[:n - count])
        self.resumed[attempt.item.key] = attempt.job  # a retry of the head runs the head only
        moved = attempt.task_s[n - count:]
        attempt.task_s = attempt.task_s[:n - count]
        attempt.task_peak = attempt.task_peak[:n - count]
        if not attempt.oom:  # a doomed attempt dies when it would have anyway; its retry keeps only the head
            attempt.remaining -= sum(moved)
            kept = sum(attempt.task_s)
            attempt.runtime_share = kept / (kept + attempt.load_s) if kept + attempt.load_s > 0 else 0.0
        self.batch[tail_item.key] = self.batch[attempt.item.key]
        self.attempts[tail_item.key] = 0
        self.moves += 1
        self.moves_left -= 1
        self.start(tail_item, [device, *partners[:tail_item.gpus - 1]])

    def running_attempts(self) -> list[Attempt]:
        """Every running attempt once (a sharded one is on several devices)."""
        return list({id(a): a for d in self.devices for a in d.running}.values())

    def failing_batch(self, job: SimJob, device: DeviceSpec, free_gb: float) -> int:
        """The batch of the first task of `job` whose own peak exceeds `free_gb`: the task a real attempt dies in,
        whose batch the retry halves (the rest are capped by it)."""
        for index, task in enumerate(job.tasks):
            alone = job._replace(tasks=(task,), task_batches=(job.batch_of(index),))
            cost = true_cost(alone, device, 1, None, config=self.truth, luck=str(self.seed))
            if cost.peak_mem_gb > free_gb:
                return job.batch_of(index)
        return max(job.batch_of(i) for i in range(len(job.tasks)))

    def rerate(self, device: PoolDevice) -> None:
        k = len(device.running)
        for attempt in device.running:
            attempt.rate = 1.0 / colocation_slowdown(attempt.job, device.spec, k)

    def advance(self) -> None:
        """Move time to the next end of an attempt and settle every attempt that ends then; while a device waits
        idle for a tail to move, stop sooner, at the next end of a running task or `_RECHECK_S` on, whichever
        comes first, so that the next `dispatch` asks again as the real driver does (it looks every second)."""
        running = self.running_attempts()
        first = min(running, key=lambda a: a.remaining / a.rate)
        step = first.remaining / first.rate
        ending: Attempt | None = first
        # A task's end may free memory (the next task needs less) or take more: look again there.
        boundary = min((a.to_next_task() / a.rate for a in running if a.has_next_task()), default=math.inf)
        if boundary < step:
            ending, step = None, boundary
        if self.moves_left and not self.queue and any(not d.running for d in self.devices):
            recheck = min([_RECHECK_S, *(a.to_next_task() / a.rate for a in running if not a.oom)])
            if recheck < step:
                ending, step = None, recheck
        before = {id(a): a.progress()[0] for a in running}
        self.now += step
        ended: list[Attempt] = []
        for attempt in running:
            attempt.remaining -= step * attempt.rate
            if attempt is ending or attempt.remaining <= DONE_EPS:
                ended.append(attempt)
        for attempt in ended:
            self.finish(attempt)
        for attempt in running:
            if attempt not in ended and attempt.progress()[0] > before[id(attempt)]:
                self.check_memory(attempt)

    def check_memory(self, attempt: Attempt) -> None:
        """`attempt` has just begun a task: it dies of OOM there if its devices cannot hold what it now needs."""
        if all(sum(a.held_now() for a in d.running) <= d.spec.total_mem_gb + DONE_EPS for d in attempt.devices):
            return
        finished = attempt.progress()[0]
        attempt.oom, attempt.kept = True, finished
        attempt.failing_batch = attempt.job.batch_of(min(finished, len(attempt.task_s) - 1))
        attempt.remaining = 0.0
        self.finish(attempt)

    def finish(self, attempt: Attempt) -> None:
        item = attempt.item
        for device in attempt.devices:
            device.running.remove(attempt)
            self.rerate(device)
            if not device.running:
                device.busy_s += self.now - device.busy_since
            device.timeline.append(Segment(item.key, item.model, attempt.start, self.now, attempt.number,
                                           attempt.job.batch_size, "oom" if attempt.oom else "ok", attempt.warm,
                                           item.tasks))
        device = attempt.devices[0]
        if not attempt.oom:
            self.completed.append(item.key)
            self.policy.observe(item, (self.now - attempt.start) * attempt.runtime_share)
            return
        self.oom_count += 1
        batch = attempt.failing_batch
        if self.attempts[item.key] >= self.max_attempts or (batch == 1 and not attempt.crowded):
            self.failed.append(item.key)
            return
        retry = self.rest_of(attempt)
        if batch > 1:
            self.batch[item.key] = batch // 2
        else:  # it fits alone at batch 1, perhaps: ask for the whole device
            retry = retry.model_copy(update={"predicted_mem_gb": max(retry.predicted_mem_gb,
                                                                     device.spec.total_mem_gb)})
        self.queue.insert(0, retry)
        self.sharded += retry.gpus > 1
        self.view = None

    def rest_of(self, attempt: Attempt) -> WorkItem:
        """What the retry of an attempt that died of OOM runs: the tasks it had not finished (the real worker wrote
        those it had, and the driver skips them), under the same key."""
        item, kept = attempt.item, attempt.kept
        if not kept or len(item.task_runtimes_s) != len(item.tasks):
            return item
        job = attempt.job
        self.resumed[item.key] = job._replace(tasks=job.tasks[kept:], task_batches=job.task_batches[kept:])
        return item.tail(item.key, len(item.tasks) - kept)


def simulate(items: Sequence[WorkItem], truth_for: TruthFor, devices: Sequence[DeviceSpec], policy: Policy,
             seed: int = 0, *, truth: TruthConfig = DEFAULT_TRUTH, max_per_device: int = 4, oom_waste: float = 0.1,
             max_attempts: int = 12, max_tail_moves: int = 0, speeds: Mapping[str, float] | None = None) -> SimResult:
    """Replay `policy` on `devices` until every item has finished, failed, or been left unplaced.

    Args:
        items: The queue, in the order the policy first sees it; keys must be unique. An item with `gpus` k > 1
            is offered to the policy only while k devices of one kind are idle, and starts on all k at once; its
            weights are split over them (as the real driver does).
        truth_for: The truth behind each item: a mapping by item key (`SimWorkload.jobs`) or a function.
        devices: The pool (e.g. from `specs.parse_pool`).
        policy: Decides what starts where; sees predictions only.
        seed: Seeds the truth's noise; the same seed gives every item the same luck under any policy.
        truth: Noise level and outliers of the truth.
        max_per_device: Attempts that may share one device at once.
        oom_waste: Share of its runtime an attempt spends before dying of OOM (after its full load).
        max_attempts: Attempts per item before it is given up.
        max_tail_moves: How many times an idle device may take the unstarted tail of a running item
            (`planning.tails`), as the real optimized run does within its load budget; 0 never.
        speeds: Each kind's *predicted* speed in a pool that mixes kinds (`SimWorkload.speeds`), which tail moves
            weigh as the real driver does; the truth charges every device its own cost whatever they say.

    Returns:
        Makespan, lower bound, OOMs, loads, utilisation and each device's timeline.
    """
    keys = [item.key for item in items]
    if len(set(keys)) != len(keys):
        raise ValueError("item keys must be unique")
    if not devices:
        raise ValueError("the pool has no devices")
    if max_per_device < 1:
        raise ValueError(f"max_per_device must be >= 1, got {max_per_device}")
    run = _Run(items, truth_for, devices, policy, seed, truth, max_per_device, oom_waste, max_attempts,
               max_tail_moves, speeds)
    while True:
        run.dispatch()
        if not any(d.running for d in run.devices):
            break
        run.advance()
    done = set(run.completed)
    bound = lower_bound([i for i in items if i.key in done], run.given, devices, seed, truth=truth,
                        max_per_device=max_per_device)
    busy = sum(d.busy_s for d in run.devices)
    return SimResult(
        policy=policy.name, makespan_s=run.now, lower_bound_s=bound, oom_count=run.oom_count,
        model_loads=run.cold, warm_loads=run.warm,
        utilisation=busy / (len(run.devices) * run.now) if run.now > 0 else 0.0,
        per_device_timeline={d.spec.id: sorted(d.timeline, key=lambda s: s.start_s) for d in run.devices},
        completed=len(run.completed), failed=tuple(run.failed),
        unplaced=tuple(i.key for i in run.queue),
        tail_moves=run.moves, peak_predicted_share=run.peak_committed)
