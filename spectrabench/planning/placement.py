"""Where a job may go: how many GPUs its weights need, whether it fits a device now, and when sharing one pays.

Everything here reasons on predictions only. Memory is checked against the predicted peak (the quantile the predictor
gives) plus a margin that grows with what already runs on the device, because prediction errors of jobs sharing a
device add up.

Co-location model: jobs sharing one GPU share its compute. Each of `n` small jobs on one device runs
`1 + 0.6 * (n - 1)` times slower than alone while they share it, and at full speed again once it runs alone: two
together finish in 1.6 units instead of 2 (1.25x the throughput), four in 2.8 instead of 4 (1.43x). That only holds
where the jobs leave the GPU's compute idle between them: small models (up to `SMALL_MODEL_B`) do, so several may
share; a mid-size model (up to `MID_MODEL_B`) keeps most of it busy on its own, so it may share only beside small
ones, never beside another mid-size job, and only on a card with the compute to spare (`shares_mid_size`); a large
model already saturates a GPU, so sharing would only stretch both jobs; and a sharded (multi-GPU) job owns its
devices (`may_share`). Sharing also stretches the jobs involved, which costs makespan when they are the last to
finish: it pays only while the rest of the queue keeps every device busy for longer than the jobs sharing the device
take to finish together (`shared_finish_s`).
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from spectrabench.planning.schedule import SlotState, WorkItem

_BYTES_PER_GIB = 1024**3
# Weights may use this share of a device; the rest is for activations, KV cache and the CUDA context.
WEIGHT_FRACTION = 0.85
# Up to this size a model's batches leave most of a GPU's compute idle: several such jobs may share a device.
SMALL_MODEL_B = 3.0
# Up to this size a model leaves some compute idle, which small jobs beside it fill: it may share a device with small
# jobs only, one mid-size job per device, on cards of `MID_SIZE_CARDS`. Measured in the simulator
# (`benchmarks/simulated_makespan.py`, 20 seeds, makespan / LB p50 and p95, against sharing small models only): on
# 8xH100-80GB extended 1.132 / 1.180 -> 1.119 / 1.150 at noise 0.2 and 1.148 / 1.236 -> 1.134 / 1.194 at 0.5,
# standard 1.154 / 1.219 -> 1.143 / 1.211 at 0.5, the other cases within 0.01. Letting any two jobs up to 9B share
# gained as much on 8xH100 but made a mix of 7-32B models alone 5% slower (`benchmarks/colocation.py`, 40.60 ->
# 42.85 h p50); one mid-size job per device leaves that mix as it was.
MID_MODEL_B = 9.0
# GPU generations with the compute (750 dense bf16 TFLOP/s and more) that a mid-size model's batches leave partly
# idle. A mid-size model keeps an A100 (312) or an L4 (121) busy alone: on 2xA100-80GB,4xL4-24GB, letting it share
# the A100s made extended's makespan / LB 1.066 / 1.132 -> 1.084 / 1.280 at noise 0.2.
MID_SIZE_CARDS = ("h100", "h800", "h200", "gh200", "b100", "b200", "gb200")
# Extra slowdown each additional job sharing a GPU inflicts on every job there (small models). The same cases at 0.7
# or 0.75 moved by under 0.01 at p50 (the rules' runtime of a co-located attempt uses 0.7, `prediction.rules`).
SHARING_SLOWDOWN = 0.6
# More sharers add less and less throughput (n / slowdown: 1.25x for 2, 1.36x for 3, 1.43x for 4, 1.47x for 5)
# while their memory errors add up.
MAX_SHARING = 4
# Memory margin: a share of the predicted peaks on the device (this job's and those running) plus a constant.
MARGIN_FRACTION = 0.15
MARGIN_GB = 0.5


class Running(NamedTuple):
    """An item running on a device, with its predicted time left."""

    item: WorkItem
    remaining_s: float


def gpus_needed(params_b: float, dtype_bytes: float, device_mem_gb: float) -> int:
    """How many devices a model's weights must be sharded over.

    Weights take `params_b * 1e9 * dtype_bytes` bytes and may fill at most `WEIGHT_FRACTION` of each device
    (memory in GiB, as `DeviceSpec` reports it), leaving the rest for activations and the KV cache.

    Args:
        params_b: Parameters, in billions.
        dtype_bytes: Bytes per parameter (2 for bf16/fp16, 4 for fp32, 1 for int8).
        device_mem_gb: Total memory of one device, in GiB.

    Returns:
        The smallest k >= 1 whose k devices hold the weights with that headroom.

    Raises:
        ValueError: A size is not positive.
    """
    if params_b <= 0 or dtype_bytes <= 0 or device_mem_gb <= 0:
        raise ValueError(f"sizes must be positive: params_b={params_b}, dtype_bytes={dtype_bytes}, "
                         f"device_mem_gb={device_mem_gb}")
    weights_gib = params_b * 1e9 * dtype_bytes / _BYTES_PER_GIB
    # The epsilon keeps an exact fit (e.g. 2.0000000001 from float rounding) from asking for a spare device.
    return max(1, math.ceil(weights_gib / (WEIGHT_FRACTION * device_mem_gb) - 1e-9))


def colocation_slowdown(n_sharing: int) -> float:
    """How many times slower each of `n_sharing` small jobs on one GPU runs than it would alone.

    `1 + 0.6 * (n - 1)`: 1.0 alone, 1.6 each for two (1.25x the throughput of running them one after the other).

    Raises:
        ValueError: `n_sharing` < 1.
    """
    if n_sharing < 1:
        raise ValueError(f"a device is shared by at least one job, got {n_sharing}")
    return 1.0 + SHARING_SLOWDOWN * (n_sharing - 1)


def sharded_peak_gb(peak_gb: float, weights_gb: float, shards: int) -> float:
    """One device's part of a job's predicted peak when its weights are split over `shards` devices layer by layer
    (lm-eval's `parallelize=True`): its share of the weights plus the whole rest, since the last device holds the
    logits."""
    return peak_gb - weights_gb * (1 - 1 / max(1, shards))


def shards_needed(peak_gb: float, weights_gb: float, device_gb: float, most: int) -> int | None:
    """The fewest devices, 1 to `most`, over which a job's peak (`sharded_peak_gb`) fits `device_gb` on each;
    None when even `most` do not suffice."""
    return next((k for k in range(1, most + 1) if sharded_peak_gb(peak_gb, weights_gb, k) <= device_gb), None)


def offerable(queue: Sequence[WorkItem], idle_partners: int) -> list[WorkItem]:
    """The items a device may start now: a sharded item only when `idle_partners` other idle devices can join it.

    Holding idle devices until more free up could waste a long job's time on each, so a sharded item waits in the
    queue, unseen, until enough devices are idle at once (the start of a run, or its end).
    """
    return [item for item in queue if item.gpus <= 1 + idle_partners]


def per_device_mem_gb(item: WorkItem) -> float:
    """The predicted peak one device needs for `item`: a sharded item's peak is spread evenly over its devices."""
    return item.predicted_mem_gb / max(1, item.gpus)


def memory_margin_gb(slot: SlotState, item: WorkItem, fraction: float = MARGIN_FRACTION,
                     constant_gb: float = MARGIN_GB) -> float:
    """The memory to keep free beyond `item`'s predicted peak when starting it on `slot`.

    It covers the prediction error of this item and of those already running there, whose errors add up.
    """
    used = max(0.0, slot.total_mem_gb - slot.free_mem_gb)
    return constant_gb + fraction * (per_device_mem_gb(item) + used)


def largest_fitting_mem_gb(slot: SlotState, fraction: float = MARGIN_FRACTION,
                           constant_gb: float = MARGIN_GB) -> float:
    """The largest per-device predicted peak that `fits` `slot` with `memory_margin_gb` to spare.

    Solves `m + constant + fraction * (m + used) <= free` for m, so a scheduler can skip whole groups of items
    that cannot fit without asking about each.
    """
    used = max(0.0, slot.total_mem_gb - slot.free_mem_gb)
    return (slot.free_mem_gb - constant_gb - fraction * used) / (1.0 + fraction)


def fits(slot: SlotState, item: WorkItem, margin_gb: float) -> bool:
    """Whether `item`'s predicted per-device peak plus `margin_gb` is within `slot`'s free memory."""
    return per_device_mem_gb(item) + margin_gb <= slot.free_mem_gb


def can_share(item: WorkItem) -> bool:
    """Whether `item` may share a GPU at all: small or mid-size enough to leave compute idle, on a single device,
    and not barred from sharing (`WorkItem.shareable`). With whom it may share is `may_share`'s question."""
    return item.shareable and item.gpus == 1 and item.params_b <= MID_MODEL_B


def shares_mid_size(card_name: str) -> bool:
    """Whether a card (NVML's "NVIDIA H100 80GB HBM3", or a what-if pool's "H100-80GB") is of `MID_SIZE_CARDS`."""
    name = card_name.lower()
    return any(re.search(rf"(?<![a-z0-9]){card}(?![0-9])", name) for card in MID_SIZE_CARDS)


def is_mid_size(item: WorkItem) -> bool:
    """Whether `item`'s model is above `SMALL_MODEL_B`: if it shares at all, it shares only beside small jobs."""
    return item.params_b > SMALL_MODEL_B


def shares_freely(item: WorkItem) -> bool:
    """Whether `item` may share a GPU with any job that can share: a small model's."""
    return can_share(item) and not is_mid_size(item)


def may_share(item: WorkItem, neighbours: Iterable[WorkItem], *, mid_size_allowed: bool = True) -> bool:
    """Whether `item` may run on one GPU with `neighbours`: all of them can share, and at most one is mid-size, none
    where `mid_size_allowed` is False (a card a mid-size model keeps busy alone, `shares_mid_size`)."""
    together = [item, *neighbours]
    mid_size = sum(is_mid_size(i) for i in together)
    return all(can_share(i) for i in together) and mid_size <= (1 if mid_size_allowed else 0)


def predicted_length_s(item: WorkItem) -> float:
    """A cold start's predicted wall time: load plus evaluation."""
    return item.predicted_runtime_s + item.predicted_load_s


def shared_finish_s(lengths_s: Sequence[float]) -> float:
    """When the last of jobs started together on one device finishes, each with `lengths_s` of work alone.

    All progress at `1 / colocation_slowdown(k)` while k of them run; each finish speeds the rest up. The shortest
    job ends first, so the device is done after `sum over i of (l_i - l_(i-1)) * colocation_slowdown(n - i)`, the
    lengths sorted ascending (`l_0 = 0`): never more than running them one after another.
    """
    finish, done = 0.0, 0.0
    for sharing, length in zip(range(len(lengths_s), 0, -1), sorted(lengths_s), strict=True):
        finish += (length - done) * colocation_slowdown(sharing)
        done = length
    return finish


class RestOfRun(NamedTuple):
    """The rest of the run as a busy device sees it when weighing a job to share it.

    Attributes:
        others_free_s: When each other device is predicted to have finished all it runs (0 when idle).
        queued_s: The queued jobs' predicted lengths, the candidate's not among them; None when the queue is too
            long to weigh job by job (sharing is then judged by its total alone).
    """

    others_free_s: tuple[float, ...]
    queued_s: tuple[float, ...] | None = None

    def without(self, length_s: float) -> RestOfRun:
        """The same with one queued job of `length_s` (the candidate's) taken out."""
        if not self.queued_s:
            return self
        queued = self.queued_s
        index = min(range(len(queued)), key=lambda i: abs(queued[i] - length_s))
        return self._replace(queued_s=queued[:index] + queued[index + 1:])


def colocation_pays(item_s: float, running_remaining_s: Sequence[float], queued_work_s: float,
                    n_devices: int, rest: RestOfRun | None = None) -> bool:
    """Whether adding a job of `item_s` seconds next to jobs with `running_remaining_s` left shortens the run.

    Sharing raises throughput, but it stretches the new job and the running ones until the device is done with all
    of them (`shared_finish_s`). That is harmless while the rest of the queue keeps every device busy for longer
    (`queued_work_s / n_devices`), and lengthens the makespan when they are the tail. Near the end of a run, `rest`
    says more: sharing also pays when the device is done with them all before the new job could end otherwise
    (waiting for the first device to free up, then alone), or when the queue, placed longest first on the devices
    as they free up, ends sooner with the job shared here than with it queued. At the end of a run of small models
    that lets the last few share instead of queueing one by one.
    """
    n = len(running_remaining_s) + 1
    if n > MAX_SHARING or n / colocation_slowdown(n) <= 1.0:
        return False
    shared = shared_finish_s([item_s, *running_remaining_s])
    if shared <= queued_work_s / max(1, n_devices):
        return True
    if rest is None:
        return False
    own = max(running_remaining_s, default=0.0)
    if shared <= min((own, *rest.others_free_s)) + item_s:
        return True
    if rest.queued_s is None:
        return False
    # A gain under 0.1% is rounding, not worth stretching jobs for.
    return (lpt_end([shared, *rest.others_free_s], rest.queued_s)
            < (1 - 1e-3) * lpt_end([own, *rest.others_free_s], [item_s, *rest.queued_s]))


def lpt_end(free_at_s: Sequence[float], lengths_s: Iterable[float]) -> float:
    """When the last device is done if `lengths_s` go longest first (LPT list scheduling) to the first free of
    devices free at `free_at_s`."""
    ends = list(free_at_s)
    heapq.heapify(ends)
    for length in sorted(lengths_s, reverse=True):
        heapq.heappush(ends, heapq.heappop(ends) + length)
    return max(ends)


def jobs_per_device(items: Sequence[WorkItem], device_mem_gb: float) -> float:
    """How many jobs a device of `device_mem_gb` may run at once on average, for grouping to pack for.

    A typical small item (the median predicted peak of those that `shares_freely`) fits k times with the margin
    (`k` at most `MAX_SHARING`); small items count k slots and the others one, weighted by predicted length. A
    mid-size item shares only beside small ones, so it adds no slot of its own. 1.0 when no small item can share,
    so a profile of mid-size and large models is grouped exactly as without co-location.
    """
    shareable = sorted(per_device_mem_gb(i) for i in items if shares_freely(i))
    total_s = sum(predicted_length_s(i) for i in items)
    if not shareable or total_s <= 0:
        return 1.0
    typical = shareable[len(shareable) // 2]
    # k items of `typical` GiB with the margin for all of them: k * typical * (1 + fraction) + constant.
    room = (device_mem_gb - MARGIN_GB) / ((1.0 + MARGIN_FRACTION) * typical) if typical > 0 else MAX_SHARING
    k = max(1, min(MAX_SHARING, math.floor(room)))
    share = sum(predicted_length_s(i) for i in items if shares_freely(i)) / total_s
    return 1.0 + share * (k - 1)


def should_colocate(item: WorkItem, slot: SlotState, queue: Sequence[WorkItem], *, running: Sequence[Running] = (),
                    n_devices: int = 1, item_s: float | None = None, queued_work_s: float | None = None,
                    rest: RestOfRun | None = None, mid_size_allowed: bool = True) -> bool:
    """Whether starting `item` on `slot` next to what runs there pays (see the module docstring).

    An empty slot is no co-location: always True. Otherwise each job running there must be known (in `running`),
    the jobs must be allowed together (`may_share`), and `colocation_pays` must hold.

    Args:
        item: The candidate.
        slot: The device, possibly busy.
        queue: What waits to run (used for the queued work when `queued_work_s` is not given).
        running: The items running on `slot` with their predicted time left.
        n_devices: Devices in the pool.
        item_s: The candidate's (corrected) predicted length; its cold predicted length by default.
        queued_work_s: The queue's (corrected) predicted work without the candidate, when the caller keeps it.
        rest: The other devices and the queue, the candidate not in it (`colocation_pays`), when known.
        mid_size_allowed: Whether a mid-size job may share `slot` (`shares_mid_size`).
    """
    if not slot.running:
        return True
    if len(running) != len(slot.running) or len(slot.running) + 1 > MAX_SHARING:
        return False
    if not may_share(item, (r.item for r in running), mid_size_allowed=mid_size_allowed):
        return False
    length = predicted_length_s(item) if item_s is None else item_s
    if queued_work_s is None:
        queued_work_s = sum(predicted_length_s(q) for q in queue if q.key != item.key)
    return colocation_pays(length, [r.remaining_s for r in running], queued_work_s, n_devices, rest)
