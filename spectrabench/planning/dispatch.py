"""Dynamic longest-processing-time-first dispatch: `DynamicLPT`, the policy an optimized run uses.

It makes `choice.next_job`'s choice (longest corrected prediction first, memory-safe, warm models, sharing where it
pays) from an index kept across choices, and corrects the remaining predictions online from finished jobs.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Callable, Generator, Sequence

from spectrabench.planning.choice import (
    EPS,
    Candidates,
    Context,
    choose,
    eligible_model,
    fallback,
    make_context,
    pack_instead,
)
from spectrabench.planning.placement import (
    MAX_SHARING,
    RestOfRun,
    Running,
    can_share,
    may_share,
    per_device_mem_gb,
    shares_mid_size,
)
from spectrabench.planning.queueindex import ModelBucket, area_s
from spectrabench.planning.schedule import SlotState, WorkItem
from spectrabench.planning.speeds import DeviceRate, is_mixed, slow_device_rule

# How many observations of the global ratio a model's own ratio is worth before it has any (shrinkage).
PRIOR_WEIGHT = 2.0
# An actual/predicted ratio outside this range is an outlier (a hang, a crash), not a trend worth following.
RATIO_RANGE = (0.05, 20.0)
# How far the global log-ratio may drift before every model's relative scale is re-derived from it (~2%).
_RESHRINK_LOG = 0.02
# Up to this many queued items, sharing a device is weighed against the queue job by job (`placement.RestOfRun`).
REST_ITEMS = 64


class DynamicLPT:
    """Our policy: `choice.next_job`'s choice from an incrementally kept index, with online correction of predictions.

    The index holds one bucket per model, sorted by cold predicted length, and a heap of the buckets' heads; a
    choice merges the buckets lazily, so dispatching n items costs O(n log n) when the queue changes only by the
    items this policy picked (any other change is detected by the queue's length and resynced in O(n)). Item keys
    must be unique within a queue.

    Online correction: `observe` keeps the geometric mean of actual/predicted runtime, globally and per model (the
    model's mean shrunk towards the global one by `PRIOR_WEIGHT` observations), and scales every remaining
    prediction (runtime and load) by it. A model's correction relative to the global one is re-derived when that model
    is observed, and for every model whenever the global ratio has moved by more than ~2% since the last time.

    Unlike devices (`pool` with different speeds): a device slower than another that could hold an item leaves it
    to the faster one when it would otherwise end the run late (`planning.speeds`).

    Args:
        n_devices: Devices in the pool; when None, the devices seen so far, and no sharing before the first finish.
        colocate: Whether a busy device may take another job when `placement.should_colocate` says it pays.
        pool: Every device with its memory, speed and card (`speeds.pool_rates`). A pool whose speeds differ packs
            no small items first (`choice.pack_instead`): its slow cards are where small models go. Its cards'
            names say where a mid-size job may share (`placement.shares_mid_size`); without a pool, anywhere.
    """

    name = "ours"

    def __init__(self, *, n_devices: int | None = None, colocate: bool = True,
                 pool: Sequence[DeviceRate] = ()) -> None:
        self._n_devices = n_devices
        self._colocate = colocate
        self._rates = {rate.device_id: rate for rate in pool} if is_mixed(pool) else {}
        # The cards a mid-size job may share (`placement.shares_mid_size`); without a pool, any.
        self._mid_size_cards = {rate.device_id for rate in pool if shares_mid_size(rate.name)} if pool else None
        self._buckets: dict[str, ModelBucket] = {}
        self._heap: list[tuple[float, str, int]] = []  # (-priority of a bucket's head, model, version)
        self._share_heap: list[tuple[float, str, int]] = []  # the same, for buckets with items that can share
        self._version: dict[str, int] = {}
        self._pending: dict[str, tuple[WorkItem, int]] = {}  # key -> (item, seq)
        self._mem_heap: list[tuple[float, int]] = []  # (per-device memory, seq) of pending items, lazily cleaned
        self._share_mem_heap: list[tuple[float, int]] = []  # the same, for items that can share
        self._live: set[int] = set()
        self._seq = 0
        self._work_rel = 0.0  # sum over buckets of relative scale x cold length
        self._log_sum, self._log_n = 0.0, 0
        self._model_log: dict[str, tuple[float, int]] = {}
        self._rel: dict[str, float] = {}  # a model's scale relative to the global one
        self._rel_global_log = 0.0  # the global log-ratio when every model's relative scale was last derived
        self._started: dict[str, tuple[WorkItem, str, float]] = {}  # key -> (item, device, start)
        self._devices: dict[str, set[str]] = {}  # device -> keys believed running there
        self._finished_any = False

    def global_scale(self) -> float:
        """The geometric mean of every observed actual/predicted runtime ratio (1.0 before any)."""
        return math.exp(self._log_sum / self._log_n) if self._log_n else 1.0

    def scale_for(self, model: str) -> float:
        """The multiplier now applied to `model`'s predicted lengths."""
        return self.global_scale() * self._rel.get(model, 1.0)

    def corrected_length_s(self, item: WorkItem) -> float:
        """`item`'s cold predicted length (load + runtime) after online correction."""
        return self.global_scale() * self._priority(item)

    def pick(self, queue: Sequence[WorkItem], slot: SlotState, now: float) -> WorkItem | None:
        """The item to start on `slot` now (see the module docstring), or None."""
        self._devices[slot.device_id] = set(slot.running)
        if len(queue) != len(self._pending):
            self._sync(queue)
        if not self._pending or (slot.running and not self._sharing_allowed(slot)):
            return None
        ctx = self._context(slot, now)
        choice = None
        smallest = self._clean_min(self._share_mem_heap) if ctx.busy else self._clean_min(self._mem_heap)
        if smallest <= ctx.mem_cap_gb + EPS:
            walk = self._walk(ctx)
            last = slot.last_model
            warm = self._walk_model(last, ctx) if last is not None and last in self._buckets else None
            try:
                choice = choose(walk, warm, ctx)
            finally:
                walk.close()
        if (choice is not None and not ctx.busy and self._colocate and not self._rates
                and not may_share(choice, (), mid_size_allowed=ctx.mid_size_allowed)):
            choice = self._pack_first(choice, slot, ctx) or choice
        if choice is None and not ctx.busy and self._clean_min(self._mem_heap) <= slot.free_mem_gb:
            walk = self._walk(make_context(slot.model_copy(update={"free_mem_gb": math.inf}), (), 0.0, 1, 1.0, False))
            try:
                choice = fallback(walk, slot, ctx.leave, ctx.to_seconds)
            finally:
                walk.close()
        if choice is not None:
            self._take(choice)
            self._started[choice.key] = (choice, slot.device_id, now)
            self._devices[slot.device_id].add(choice.key)
        return choice

    def observe(self, item: WorkItem, actual_runtime_s: float) -> None:
        """Learn from a finished item: `actual_runtime_s` is its evaluation time, load excluded, like
        `predicted_runtime_s`."""
        started = self._started.pop(item.key, None)
        if started is not None:
            self._devices.get(started[1], set()).discard(item.key)
        self._finished_any = True
        if item.predicted_runtime_s <= 0 or actual_runtime_s <= 0:
            return
        low, high = RATIO_RANGE
        log_ratio = math.log(min(high, max(low, actual_runtime_s / item.predicted_runtime_s)))
        self._log_sum += log_ratio
        self._log_n += 1
        total, count = self._model_log.get(item.model, (0.0, 0))
        total, count = total + log_ratio, count + 1
        self._model_log[item.model] = (total, count)
        global_log = self._log_sum / self._log_n
        if abs(global_log - self._rel_global_log) > _RESHRINK_LOG:
            # Every model's shrunk ratio leans on the global one: re-derive them all when it has moved.
            self._rel_global_log = global_log
            for model in self._model_log:
                self._set_rel(model, global_log)
        else:
            self._set_rel(item.model, global_log)

    def _set_rel(self, model: str, global_log: float) -> None:
        total, count = self._model_log[model]
        rel = math.exp((total + PRIOR_WEIGHT * global_log) / (count + PRIOR_WEIGHT) - global_log)
        bucket = self._buckets.get(model)
        if bucket is not None:
            self._work_rel += (rel - self._rel.get(model, 1.0)) * bucket.base_sum
        self._rel[model] = rel
        if bucket is not None:
            self._refresh(model)

    # The index.

    def _priority(self, item: WorkItem) -> float:
        return self._rel.get(item.model, 1.0) * area_s(item)

    def _sharing_allowed(self, slot: SlotState) -> bool:
        """The policy's own conditions for sharing a busy device, checked before anything costly."""
        if not self._colocate or len(slot.running) >= MAX_SHARING:
            return False
        if self._n_devices is None and not self._finished_any:
            return False  # until the first finish, some devices may not have been offered work yet
        if not all(key in self._started and can_share(self._started[key][0]) for key in slot.running):
            return False
        # Sharing a device while another is idle would stretch jobs for nothing, unless the queue holds enough for
        # every idle device as well (the start of a run, when devices are offered work one after another).
        idle = max(0, (self._n_devices or 0) - len(self._devices))
        idle += sum(1 for device, keys in self._devices.items() if device != slot.device_id and not keys)
        return len(self._pending) > idle

    def _context(self, slot: SlotState, now: float) -> Context:
        scale = self.global_scale()
        running = tuple(Running(self._started[k][0], self._left_s(k, now, scale))
                        for k in slot.running if k in self._started)
        ctx = make_context(slot, running, max(0.0, scale * self._work_rel),
                       max(self._n_devices or 1, len(self._devices)), scale, allowed=True)
        leave = self._leave_rule(slot, now, scale)
        if leave is not None:
            ctx = dataclasses.replace(ctx, leave=leave)
        if self._mid_size_cards is not None:
            ctx = dataclasses.replace(ctx, mid_size_allowed=slot.device_id in self._mid_size_cards)
        if not ctx.busy:
            return ctx
        # The queue job by job only near the end: earlier its total says enough, and listing it costs O(n).
        queued = (tuple(scale * self._priority(item) for item, _ in self._pending.values())
                  if len(self._pending) <= REST_ITEMS else None)
        return dataclasses.replace(ctx, rest=RestOfRun(self._others_free_s(slot.device_id, now, scale), queued))

    def _pack_first(self, choice: WorkItem, slot: SlotState, ctx: Context) -> WorkItem | None:
        """`choice.pack_instead` over the pending items of models that can share, highest priority first."""
        walk = self._walk(dataclasses.replace(ctx, busy=True))  # the buckets with items that can share
        try:
            return pack_instead(self.global_scale() * self._priority(choice), walk, slot, ctx.to_seconds,
                                mid_size_allowed=ctx.mid_size_allowed)
        finally:
            walk.close()

    def _others_free_s(self, device_id: str, now: float, scale: float) -> tuple[float, ...]:
        """Corrected seconds until each other device is predicted to have finished all it is believed to run (0 for
        one idle or not seen yet)."""
        idle = (0.0,) * max(0, (self._n_devices or 0) - len(self._devices))
        return idle + tuple(max((self._left_s(k, now, scale) for k in keys if k in self._started), default=0.0)
                            for device, keys in self._devices.items() if device != device_id)

    def _left_s(self, key: str, now: float, scale: float) -> float:
        """Corrected seconds the started job `key` is predicted to run still on its device (never below 0)."""
        item, device, start = self._started[key]
        speed = self._rates[device].speed if device in self._rates else 1.0
        return max(0.0, scale * self._priority(item) / speed - (now - start))

    def _leave_rule(self, slot: SlotState, now: float, scale: float) -> Callable[[WorkItem, float], bool] | None:
        """In a pool of unlike devices, `speeds.leave_to_faster` for `slot`, from what runs where now."""
        if slot.device_id not in self._rates:
            return None
        running = [(item, device, scale * self._priority(item), start)
                   for item, device, start in self._started.values()]
        return slow_device_rule(slot.device_id, self._rates, running, scale * self._work_rel, now)

    def _sync(self, queue: Sequence[WorkItem]) -> None:
        present = {item.key: item for item in queue}
        for key, (item, _) in list(self._pending.items()):
            if present.get(key) is not item and present.get(key) != item:
                self._take(item)
        for key, item in present.items():
            if key not in self._pending:
                self._add(item)

    def _add(self, item: WorkItem) -> None:
        seq = self._seq
        self._seq += 1
        bucket = self._buckets.setdefault(item.model, ModelBucket())
        bucket.add(item, seq)
        self._pending[item.key] = (item, seq)
        self._live.add(seq)
        heapq.heappush(self._mem_heap, (per_device_mem_gb(item), seq))
        if can_share(item):
            heapq.heappush(self._share_mem_heap, (per_device_mem_gb(item), seq))
        self._work_rel += self._priority(item)
        self._refresh(item.model)

    def _take(self, item: WorkItem) -> None:
        _, seq = self._pending.pop(item.key)
        self._live.discard(seq)
        self._buckets[item.model].remove(item, seq)
        self._work_rel -= self._priority(item)
        self._refresh(item.model)

    def _refresh(self, model: str) -> None:
        """Re-enter `model`'s head in the heap after its head or scale changed (older entries go stale)."""
        version = self._version.get(model, 0) + 1
        self._version[model] = version
        bucket = self._buckets[model]
        if bucket.pos < len(bucket.entries):
            entry = (-(self._rel.get(model, 1.0) * -bucket.entries[bucket.pos][0]), model, version)
            heapq.heappush(self._heap, entry)
            if bucket.shareable:
                heapq.heappush(self._share_heap, entry)

    def _clean_min(self, heap: list[tuple[float, int]]) -> float:
        while heap and heap[0][1] not in self._live:
            heapq.heappop(heap)
        return heap[0][0] if heap else math.inf

    def _walk(self, ctx: Context) -> Generator[tuple[WorkItem, float], None, None]:
        """Pending items of eligible models, highest priority first: a lazy merge of the buckets' heads. Heap entries
        taken out on the way are put back when the walk is closed."""
        # A busy device only takes items that can share: walking the buckets that have some skips the others.
        heap = self._share_heap if ctx.busy else self._heap
        frontier: list[tuple[float, str, int]] = []
        taken_out: list[tuple[float, str, int]] = []
        try:
            while True:
                while heap:
                    negative, model, version = heap[0]
                    if self._version.get(model) != version:
                        heapq.heappop(heap)
                        continue
                    if frontier and (negative, model) > frontier[0][:2]:
                        break
                    taken_out.append(heapq.heappop(heap))
                    bucket = self._buckets[model]
                    if eligible_model(bucket.min_mem(), bucket.shareable > 0, ctx):
                        heapq.heappush(frontier, (negative, model, bucket.pos))
                if not frontier:
                    return
                negative, model, index = heapq.heappop(frontier)
                bucket = self._buckets[model]
                item = bucket.entries[index][2]
                following = bucket.next_live(index + 1)
                if following < len(bucket.entries):
                    rel = self._rel.get(model, 1.0)
                    heapq.heappush(frontier, (-(rel * -bucket.entries[following][0]), model, following))
                yield item, -negative
        finally:
            for entry in taken_out:
                heapq.heappush(heap, entry)

    def _walk_model(self, model: str, ctx: Context) -> Candidates:
        """`model`'s pending items, highest priority first, if the model is eligible."""
        bucket, rel = self._buckets[model], self._rel.get(model, 1.0)
        if not eligible_model(bucket.min_mem(), bucket.shareable > 0, ctx):
            return
        index = bucket.pos
        while index < len(bucket.entries):
            negative_base, _, item = bucket.entries[index]
            yield item, rel * -negative_base
            index = bucket.next_live(index + 1)
