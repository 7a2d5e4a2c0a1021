"""What to start on a device when it has room: the choice rule of longest-first dispatch.

The choice (`next_job`, and `dispatch.DynamicLPT.pick` which makes the same choice from an index):
1. Candidates in order of corrected predicted length, longest first: (runtime + load) times the prediction scale of
   the item's model. Starting the longest work first is LPT, within 4/3 of the optimal makespan and close to it when
   the tail is made of small items; deciding at dispatch time, not up front, lets the order absorb runtimes that
   differ from their predictions.
   An idle device weighs a pack of small items that can share it as one job (`pack_instead`): when they would
   take longer sharing it than the longest item takes alone, the longest of them goes first, and the device then
   takes the others beside it.
2. The first candidate that fits: an idle device takes the longest item it can hold at all (alone it overcommits
   nothing); a busy device only an item that fits its free memory with a margin (`placement.fits`,
   `memory_margin_gb`), so the predictions never overcommit it, and only if sharing it pays
   (`placement.should_colocate`), looking at no more than `MAX_SCAN` candidates. In a pool of unlike devices a slow
   device also skips an item it should leave to a faster one (`Context.leave`, `planning.speeds`).
3. Warm cache: when the device last ran model M and an admissible item of M is within `WARM_WINDOW` of that
   candidate's length, M's item goes instead: its weights may still be cached, and the order barely changes.
4. An empty device where nothing fits with the margin takes the longest item that fits it at all: such an item can
   never fit better, and leaving it queued forever would be worse than the risk.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from spectrabench.planning.placement import (
    MARGIN_FRACTION,
    MARGIN_GB,
    MAX_SHARING,
    RestOfRun,
    Running,
    can_share,
    fits,
    largest_fitting_mem_gb,
    may_share,
    memory_margin_gb,
    per_device_mem_gb,
    shared_finish_s,
    should_colocate,
)
from spectrabench.planning.queueindex import area_s
from spectrabench.planning.schedule import SlotState, WorkItem

# A warm item may be this much shorter than the longest candidate and still go first.
WARM_WINDOW = 0.1
# Candidates examined for sharing a busy device (and for a warm alternative) before giving up.
MAX_SCAN = 16
EPS = 1e-9

Candidates = Iterator[tuple[WorkItem, float]]  # items with their priority, highest first


@dataclass(frozen=True)
class Context:
    """What the choice needs to know about the device and the rest of the run."""

    slot: SlotState
    running: tuple[Running, ...]
    queued_work_s: float  # corrected predicted work of the whole queue
    n_devices: int
    to_seconds: float  # turns a priority into corrected seconds
    sharing: bool  # a busy slot may take another job at all
    busy: bool
    mem_cap_gb: float  # the largest per-device memory that fits with the margin
    # In a pool of unlike devices: whether this device should leave an item (of a corrected length) to a faster one.
    leave: Callable[[WorkItem, float], bool] | None = None
    # The other devices and the queue, in corrected seconds, when the device is busy (`placement.colocation_pays`).
    rest: RestOfRun | None = None
    # Whether a mid-size job may share this device (`placement.may_share`, `placement.shares_mid_size`).
    mid_size_allowed: bool = True


def make_context(slot: SlotState, running: Sequence[Running], queued_work_s: float, n_devices: int, to_seconds: float,
                 allowed: bool) -> Context:
    """The `Context` of one choice on `slot` (`allowed`: a busy slot may take another job at all)."""
    # Checks that hold for every candidate: each running job known and able to share, room for one more.
    sharing = (allowed and len(running) == len(slot.running) < MAX_SHARING
               and all(can_share(r.item) for r in running))
    busy = bool(slot.running)
    # Alone on a device a job overcommits nothing: the margin guards neighbours, so an idle device takes the
    # longest job that fits it at all. Holding a big model back until nothing else fits starts the longest work
    # last, the worst order there is.
    return Context(slot=slot, running=tuple(running), queued_work_s=queued_work_s, n_devices=n_devices,
                   to_seconds=to_seconds, sharing=sharing, busy=busy,
                   mem_cap_gb=largest_fitting_mem_gb(slot) if busy else slot.free_mem_gb)


def eligible_model(min_mem_gb: float, any_shareable: bool, ctx: Context) -> bool:
    """Whether any of a model's queued items (smallest memory `min_mem_gb`) could start: whole models that cannot
    are skipped without looking at their items, and candidates are only drawn from the others."""
    return min_mem_gb <= ctx.mem_cap_gb + EPS and (any_shareable or not ctx.busy)


def admissible(item: WorkItem, priority: float, ctx: Context) -> bool:
    """Whether `item` (of `priority`) may start on the context's device (step 2 of the module docstring)."""
    if ctx.leave is not None and ctx.leave(item, priority * ctx.to_seconds):
        return False
    if not ctx.busy:
        return per_device_mem_gb(item) <= ctx.mem_cap_gb + EPS
    # The cap comparison is the cheap, equivalent-up-to-rounding form of the `fits` check after it.
    if per_device_mem_gb(item) > ctx.mem_cap_gb + EPS or not fits(ctx.slot, item, memory_margin_gb(ctx.slot, item)):
        return False
    if not can_share(item):
        return False
    item_s = priority * ctx.to_seconds
    return should_colocate(item, ctx.slot, (), running=ctx.running, n_devices=ctx.n_devices, item_s=item_s,
                           queued_work_s=max(0.0, ctx.queued_work_s - item_s),
                           rest=None if ctx.rest is None else ctx.rest.without(item_s),
                           mid_size_allowed=ctx.mid_size_allowed)


def choose(candidates: Candidates, warm: Candidates | None, ctx: Context) -> WorkItem | None:
    """Steps 2 and 3 of the module docstring, over the items of eligible models, longest first.

    A busy device looks at `MAX_SCAN` candidates at most: sharing is an optional gain, not worth a long search.
    """
    if ctx.busy and not ctx.sharing:
        return None
    first: tuple[WorkItem, float] | None = None
    for seen, (item, priority) in enumerate(candidates):
        if ctx.busy and seen >= MAX_SCAN:
            return None
        if admissible(item, priority, ctx):
            first = (item, priority)
            break
    if first is None:
        return None
    if warm is not None and first[0].model != ctx.slot.last_model:
        for seen, (item, priority) in enumerate(warm):
            if (ctx.busy and seen >= MAX_SCAN) or priority < (1 - WARM_WINDOW) * first[1]:
                break
            if admissible(item, priority, ctx):
                return item
    return first[0]


def pack_instead(choice_s: float, shareable: Candidates, slot: SlotState, to_seconds: float, *,
                 mid_size_allowed: bool = True) -> WorkItem | None:
    """Step 1b: the longest item that can share, instead of an idle device's `choice` of `choice_s` corrected seconds
    that cannot, when it and the next ones that can share with them (`placement.may_share`; up to `MAX_SHARING`,
    fitting the device together with the margin), sharing the device, would take longer than `choice` alone:
    longest first weighs such a pack as one job.
    Started last, small models would share nothing (`placement.colocation_pays` finds no queue to cover them) and
    leave their throughput unused. None when no pack of two or more is longer.

    Args:
        choice_s: The corrected length of the item the device would take.
        shareable: Candidates, highest priority first, of models with items that can share.
        slot: The idle device.
        to_seconds: Turns a priority into corrected seconds.
        mid_size_allowed: Whether a mid-size item may share the device (`placement.shares_mid_size`).
    """
    pack: list[tuple[WorkItem, float]] = []
    used_gb = 0.0
    for seen, (item, priority) in enumerate(shareable):
        if len(pack) == MAX_SHARING or seen >= MAX_SCAN:
            break
        mem = per_device_mem_gb(item)
        if (may_share(item, (packed for packed, _ in pack), mid_size_allowed=mid_size_allowed)
                and (used_gb + mem) * (1 + MARGIN_FRACTION) + MARGIN_GB <= slot.free_mem_gb):
            pack.append((item, priority * to_seconds))
            used_gb += mem
    if len(pack) < 2 or shared_finish_s([s for _, s in pack]) <= choice_s:
        return None
    return pack[0][0]


def fallback(candidates: Candidates, slot: SlotState, leave: Callable[[WorkItem, float], bool] | None = None,
              to_seconds: float = 1.0) -> WorkItem | None:
    """Step 4: the longest item an empty device can hold at all (and need not leave to a faster device)."""
    return next((item for item, priority in candidates if per_device_mem_gb(item) <= slot.free_mem_gb
                 and (leave is None or not leave(item, priority * to_seconds))), None)


def next_job(queue: Sequence[WorkItem], slot: SlotState, predictions_scale: float | Mapping[str, float] = 1.0, *,
             running: Sequence[Running] = (), n_devices: int = 1, colocate: bool = True,
             rest: RestOfRun | None = None) -> WorkItem | None:
    """The item to start on `slot` now, or None (see the module docstring). Pure; O(n log n) in the queue.

    Args:
        queue: Items waiting to start, in profile order (which breaks ties).
        slot: The device asking.
        predictions_scale: Multiplier of predicted lengths, one for all or per model (missing models: 1.0).
        running: The items running on `slot`, with their predicted time left; co-location needs all of them.
        n_devices: Devices in the pool.
        colocate: Whether a busy device may take another job at all.
        rest: When busy: the other devices and the queue (`placement.colocation_pays`), `slot`'s candidate included
            in the queue.
    """
    def scale(model: str) -> float:
        if isinstance(predictions_scale, Mapping):
            return predictions_scale.get(model, 1.0)
        return predictions_scale

    ranked = sorted(((scale(item.model) * area_s(item), index, item) for index, item in enumerate(queue)),
                    key=lambda c: (-c[0], c[2].model, c[1]))
    ctx = dataclasses.replace(make_context(slot, running, sum(c[0] for c in ranked), n_devices, 1.0, colocate),
                              rest=rest)
    min_mem: dict[str, float] = {}
    shareable: set[str] = set()
    for item in queue:
        min_mem[item.model] = min(min_mem.get(item.model, math.inf), per_device_mem_gb(item))
        if can_share(item):
            shareable.add(item.model)
    eligible = {m for m in min_mem if eligible_model(min_mem[m], m in shareable, ctx)}

    def candidates(model: str | None = None) -> Candidates:
        return ((item, p) for p, _, item in ranked if (model is None or item.model == model) and item.model in eligible)

    warm = candidates(slot.last_model) if slot.last_model is not None else None
    choice = choose(candidates(), warm, ctx)
    if choice is not None and not ctx.busy and colocate and not may_share(choice, ()):
        choice = pack_instead(scale(choice.model) * area_s(choice),
                              ((item, p) for p, _, item in ranked if item.model in shareable), slot, 1.0) or choice
    if choice is None and not ctx.busy:
        choice = fallback(((item, p) for p, _, item in ranked), slot)
    return choice
