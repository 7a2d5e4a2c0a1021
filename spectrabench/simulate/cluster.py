"""A discrete-event replay of a policy on a device pool, against the truth model.

Whenever a device can take more work, the policy is asked what to start on it, seeing only predictions and a
`SlotState` whose free memory is the device's total minus the *predicted* peaks of what runs there. The
attempt then costs what the truth says: it loads (warm when the device ran the same model just before), and
runs; several attempts on one device share it, each slowed by the truth's co-location factor, re-rated
whenever one starts or ends. If the attempt's *true* peak exceeds the device's true free memory it dies of
OOM after its load and a tenth of its runtime, and is retried at half the batch at the front of the queue, as
the real driver does (at batch 1 with neighbours, it is retried alone; alone at batch 1 it fails). A finished
item's actual runtime goes back to the policy through `observe`.

The lower bound is one no schedule can beat under this truth, whatever the policy: the total device time
every item needs at the most efficient sharing allowed, over the devices; the longest item alone; and, with
more items than devices, the two smallest of the G + 1 largest items, since two of them share a device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from spectrabench.hardware import DeviceSpec
from spectrabench.planning.schedule import Policy, SlotState, WorkItem
from spectrabench.simulate.specs import hardware_for
from spectrabench.simulate.truth import (
    DEFAULT_TRUTH,
    SimJob,
    TruthConfig,
    colocation_slowdown,
    load_seconds,
    true_cost,
)

TruthFor = Mapping[str, SimJob] | Callable[[WorkItem], SimJob]

_DONE_EPS = 1e-9


class Segment(NamedTuple):
    """One attempt on one device: when it ran, with which batch, and how it ended ("ok" or "oom")."""

    key: str
    model: str
    start_s: float
    end_s: float
    attempt: int
    batch_size: int
    outcome: str
    warm: bool


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

    @property
    def ratio(self) -> float:
        """Makespan over the lower bound (>= 1; 1 is a perfect schedule)."""
        return self.makespan_s / self.lower_bound_s if self.lower_bound_s > 0 else 1.0


@dataclass
class _Attempt:
    item: WorkItem
    job: SimJob
    number: int
    start: float
    remaining: float  # seconds of solo work left
    runtime_share: float  # runtime / (load + runtime) of this attempt, to report the runtime part to `observe`
    held_gb: float  # true memory it holds
    oom: bool
    warm: bool
    crowded: bool  # other attempts ran on the device when it started
    rate: float = 1.0


@dataclass
class _Device:
    spec: DeviceSpec
    running: list[_Attempt] = field(default_factory=list)
    last_model: str | None = None
    busy_since: float = 0.0
    busy_s: float = 0.0
    timeline: list[Segment] = field(default_factory=list)


class _Run:
    """The mutable state of one simulation."""

    def __init__(self, items: Sequence[WorkItem], truth_for: TruthFor, devices: Sequence[DeviceSpec],
                 policy: Policy, seed: int, truth: TruthConfig, max_per_device: int, oom_waste: float,
                 max_attempts: int) -> None:
        self.truth_of = (lambda item: truth_for[item.key]) if isinstance(truth_for, Mapping) else truth_for
        self.devices = [_Device(d) for d in devices]
        self.policy, self.seed, self.truth = policy, seed, truth
        self.max_per_device, self.oom_waste, self.max_attempts = max_per_device, oom_waste, max_attempts
        self.queue: list[WorkItem] = list(items)
        self.view: tuple[WorkItem, ...] | None = None  # the queue as the policy sees it, rebuilt after changes
        self.batch = {item.key: self.truth_of(item).batch_size for item in items}
        self.attempts = dict.fromkeys(self.batch, 0)
        self.now = 0.0
        self.oom_count = self.cold = self.warm = 0
        self.completed: list[str] = []
        self.failed: list[str] = []

    def dispatch(self) -> None:
        for device in self.devices:
            while self.queue and len(device.running) < self.max_per_device:
                if self.view is None:
                    self.view = tuple(self.queue)
                predicted = sum(a.item.predicted_mem_gb for a in device.running)
                slot = SlotState(device_id=device.spec.id, total_mem_gb=device.spec.total_mem_gb,
                                 free_mem_gb=device.spec.total_mem_gb - predicted,
                                 running=tuple(a.item.key for a in device.running), last_model=device.last_model)
                pick = self.policy.pick(self.view, slot, self.now)
                if pick is None:
                    break
                queued = next((i for i, item in enumerate(self.queue) if item.key == pick.key), None)
                if queued is None:
                    raise ValueError(f"policy {self.policy.name!r} picked '{pick.key}', which is not queued")
                self.start(self.queue.pop(queued), device)
                self.view = None

    def start(self, item: WorkItem, device: _Device) -> None:
        job = self.truth_of(item)._replace(batch_size=self.batch[item.key])
        self.attempts[item.key] += 1
        warm = device.last_model == item.model
        # Luck per (model, task) and seed: every attempt, grouping and policy meets the same world.
        cost = true_cost(job, device.spec, 1, None, config=self.truth, warm=warm, luck=str(self.seed))
        free = device.spec.total_mem_gb - sum(a.held_gb for a in device.running)
        oom = cost.peak_mem_gb > free
        runtime = cost.runtime_s * (self.oom_waste if oom else 1.0)
        work = cost.load_s + runtime
        if warm:
            self.warm += 1
        else:
            self.cold += 1
        if not device.running:
            device.busy_since = self.now
        device.running.append(_Attempt(item, job, self.attempts[item.key], self.now, work,
                                       runtime / work if work > 0 else 0.0,
                                       max(0.0, min(cost.peak_mem_gb, free)), oom, warm, bool(device.running)))
        device.last_model = item.model
        self.rerate(device)

    def rerate(self, device: _Device) -> None:
        k = len(device.running)
        for attempt in device.running:
            attempt.rate = 1.0 / colocation_slowdown(attempt.job, device.spec, k)

    def advance(self) -> None:
        """Move time to the next end of an attempt and settle every attempt that ends then."""
        running = [(a, d) for d in self.devices for a in d.running]
        first, _ = min(running, key=lambda pair: pair[0].remaining / pair[0].rate)
        step = first.remaining / first.rate
        self.now += step
        ended: list[tuple[_Attempt, _Device]] = []
        for attempt, device in running:
            attempt.remaining -= step * attempt.rate
            if attempt is first or attempt.remaining <= _DONE_EPS:
                ended.append((attempt, device))
        for attempt, device in ended:
            self.finish(attempt, device)

    def finish(self, attempt: _Attempt, device: _Device) -> None:
        item = attempt.item
        device.running.remove(attempt)
        self.rerate(device)
        if not device.running:
            device.busy_s += self.now - device.busy_since
        device.timeline.append(Segment(item.key, item.model, attempt.start, self.now, attempt.number,
                                       attempt.job.batch_size, "oom" if attempt.oom else "ok", attempt.warm))
        if not attempt.oom:
            self.completed.append(item.key)
            self.policy.observe(item, (self.now - attempt.start) * attempt.runtime_share)
            return
        self.oom_count += 1
        batch = self.batch[item.key]
        if self.attempts[item.key] >= self.max_attempts or (batch == 1 and not attempt.crowded):
            self.failed.append(item.key)
            return
        if batch > 1:
            self.batch[item.key] = batch // 2
            retry = item
        else:  # it fits alone at batch 1, perhaps: ask for the whole device
            retry = item.model_copy(update={"predicted_mem_gb": max(item.predicted_mem_gb,
                                                                    device.spec.total_mem_gb)})
        self.queue.insert(0, retry)
        self.view = None


def simulate(items: Sequence[WorkItem], truth_for: TruthFor, devices: Sequence[DeviceSpec], policy: Policy,
             seed: int = 0, *, truth: TruthConfig = DEFAULT_TRUTH, max_per_device: int = 4, oom_waste: float = 0.1,
             max_attempts: int = 12) -> SimResult:
    """Replay `policy` on `devices` until every item has finished, failed, or been left unplaced.

    Args:
        items: The queue, in the order the policy first sees it; keys must be unique, one GPU per item.
        truth_for: The truth behind each item: a mapping by item key (`SimWorkload.jobs`) or a function.
        devices: The pool (e.g. from `specs.parse_pool`).
        policy: Decides what starts where; sees predictions only.
        seed: Seeds the truth's noise; the same seed gives every item the same luck under any policy.
        truth: Noise level and outliers of the truth.
        max_per_device: Attempts that may share one device at once.
        oom_waste: Share of its runtime an attempt spends before dying of OOM (after its full load).
        max_attempts: Attempts per item before it is given up.

    Returns:
        Makespan, lower bound, OOMs, loads, utilisation and each device's timeline.
    """
    keys = [item.key for item in items]
    if len(set(keys)) != len(keys):
        raise ValueError("item keys must be unique")
    if any(item.gpus != 1 for item in items):
        raise ValueError("the simulator places one GPU per item; multi-GPU items are not supported")
    if not devices:
        raise ValueError("the pool has no devices")
    if max_per_device < 1:
        raise ValueError(f"max_per_device must be >= 1, got {max_per_device}")
    run = _Run(items, truth_for, devices, policy, seed, truth, max_per_device, oom_waste, max_attempts)
    while True:
        run.dispatch()
        if not any(d.running for d in run.devices):
            break
        run.advance()
    done = set(run.completed)
    bound = lower_bound([i for i in items if i.key in done], run.truth_of, devices, seed, truth=truth,
                        max_per_device=max_per_device)
    busy = sum(d.busy_s for d in run.devices)
    return SimResult(
        policy=policy.name, makespan_s=run.now, lower_bound_s=bound, oom_count=run.oom_count,
        model_loads=run.cold, warm_loads=run.warm,
        utilisation=busy / (len(run.devices) * run.now) if run.now > 0 else 0.0,
        per_device_timeline={d.spec.id: sorted(d.timeline, key=lambda s: s.start_s) for d in run.devices},
        completed=len(run.completed), failed=tuple(run.failed), unplaced=tuple(i.key for i in run.queue))


def lower_bound(items: Sequence[WorkItem], truth_of: Callable[[WorkItem], SimJob], devices: Sequence[DeviceSpec],
                seed: int, *, truth: TruthConfig = DEFAULT_TRUTH, max_per_device: int = 4) -> float:
    """The makespan bound LB = max(total work / devices, longest item, G-th + (G+1)-th longest item).

    An item's work is what it really costs alone under the truth (same seed, so the same luck `simulate` draws),
    on its best device, with a warm load, at the best of its batch size and the halvings of it (retries halve,
    and a group runs its smallest); each model adds the gap between one cold and one warm load. With G devices,
    the G+1 longest items cannot all run side by side, so two of them share a device.

    Co-location is credited where memory allows it: k items sharing a device progress at k / slowdown(k) times
    the speed of one, so in the total an item counts `slowdown(k) / k` of its work, for the largest k
    (<= `max_per_device`) such that it and k - 1 of the smallest items (at batch 1) fit the device together. A
    big model that fills a GPU counts in full: the bound stays tight where sharing is impossible, valid where not.

    Args:
        items: The items that must run.
        truth_of: The truth behind an item.
        devices: The pool.
        seed: The seed `simulate` used.
        truth: The noise `simulate` used.
        max_per_device: The sharing cap `simulate` used.
    """
    if not items:
        return 0.0
    kinds = list({hardware_for(d): d for d in devices}.values())  # costs depend only on the hardware
    luck = str(seed)
    # Per item and device kind: (work, peak, cold-load gap, job) at its batch and at every halving of it that
    # fits the device alone; a schedule may run any of them (OOM retries halve, groups take their smallest).
    variants: list[list[list[tuple[float, float, float, SimJob]]]] = []
    for item in items:
        per_kind = []
        for device in kinds:
            job, options = truth_of(item), []
            while True:
                cost = true_cost(job, device, 1, None, config=truth, warm=True, luck=luck)
                if cost.peak_mem_gb <= device.total_mem_gb or job.batch_size == 1:
                    # The load's noise factor is the ratio of the noisy warm load to the noiseless one.
                    noise = cost.load_s / load_seconds(job, device, warm=True)
                    gap = (load_seconds(job, device, warm=False) - load_seconds(job, device, warm=True)) * noise
                    options.append((cost.load_s + cost.runtime_s, cost.peak_mem_gb, gap, job))
                if job.batch_size == 1:
                    break
                job = job._replace(batch_size=job.batch_size // 2)
            per_kind.append(options)
        variants.append(per_kind)
    smallest = [min(min(o[1] for o in v[k]) for v in variants) for k in range(len(kinds))]
    occupied: list[float] = []
    alone: list[float] = []
    cold_extra: dict[str, float] = {}
    for item, per_kind in zip(items, variants, strict=True):
        best_occupied = best_alone = extra = float("inf")
        for k, (device, options) in enumerate(zip(kinds, per_kind, strict=True)):
            for work, peak, cold_gap, job in options:
                room = device.total_mem_gb - peak
                sharing = max(1, min(max_per_device, 1 + math.floor(room / smallest[k]) if smallest[k] > 0 else 1))
                share = min(1.0, colocation_slowdown(job, device, sharing) / sharing)
                best_alone = min(best_alone, work)
                best_occupied = min(best_occupied, work * share)
                extra = min(extra, cold_gap * share)
        occupied.append(best_occupied)
        alone.append(best_alone)
        cold_extra[item.model] = min(cold_extra.get(item.model, float("inf")), extra)
    g = len(devices)
    ranked = sorted(alone, reverse=True)
    total = (sum(occupied) + sum(cold_extra.values())) / g
    pair = 0.0
    if len(occupied) > g:
        # Two of the G+1 longest share a device: side by side, or one after the other.
        by_occupancy = sorted(occupied, reverse=True)
        pair = by_occupancy[g - 1] + by_occupancy[g]
    return max(total, ranked[0], pair)


class FifoPolicy:
    """The first queued item whose predicted peak fits the slot's free memory; an idle device takes the head.

    Args:
        colocate: Start items next to running ones when they fit; False runs one item per device at a time.
    """

    def __init__(self, colocate: bool = True) -> None:
        self.colocate = colocate
        self.name = "fifo" if colocate else "fifo-exclusive"

    def pick(self, queue: Sequence[WorkItem], slot: SlotState, now: float) -> WorkItem | None:
        """See `Policy.pick`."""
        if slot.running and not self.colocate:
            return None
        fits = next((item for item in queue if item.predicted_mem_gb <= slot.free_mem_gb), None)
        if fits is None and not slot.running and queue:
            return queue[0]  # too big for any prediction: let it try alone rather than never run
        return fits

    def observe(self, item: WorkItem, actual_runtime_s: float) -> None:
        """FIFO learns nothing."""


class LongestFirstPolicy(FifoPolicy):
    """Like `FifoPolicy`, but the fitting item with the longest predicted load + runtime goes first (LPT)."""

    def __init__(self, colocate: bool = True) -> None:
        super().__init__(colocate)
        self.name = "lpt" if colocate else "lpt-exclusive"

    def pick(self, queue: Sequence[WorkItem], slot: SlotState, now: float) -> WorkItem | None:
        """See `Policy.pick`."""
        if slot.running and not self.colocate:
            return None
        fitting = [item for item in queue if item.predicted_mem_gb <= slot.free_mem_gb]
        if fitting:
            return max(fitting, key=lambda item: item.predicted_load_s + item.predicted_runtime_s)
        return queue[0] if queue and not slot.running else None
