"""The per-model queues behind `dispatch.DynamicLPT`: each model's queued items longest first, kept so that the
policy can merge the models' heads lazily instead of sorting the whole queue at every choice."""

from __future__ import annotations

import bisect
import heapq
import math

from spectrabench.planning.placement import can_share, per_device_mem_gb, predicted_length_s
from spectrabench.planning.schedule import WorkItem


def area_s(item: WorkItem) -> float:
    """Device-seconds: a job split over k devices weighs k times its length, so it starts early, while the devices
    it needs are free together, and not last, when its length alone would stretch the end."""
    return predicted_length_s(item) * max(1, item.gpus)


class ModelBucket:
    """One model's queued items, longest first, with lazy removal (positions stay valid until compaction)."""

    __slots__ = ("base_sum", "entries", "mems", "pos", "removed", "shareable")

    def __init__(self) -> None:
        self.entries: list[tuple[float, int, WorkItem]] = []  # (-cold length, seq, item)
        self.removed: set[int] = set()
        self.pos = 0  # no live entry before this
        self.mems: list[tuple[float, int]] = []  # heap of (per-device memory, seq), removed ones cleaned lazily
        self.shareable = 0  # live items that could share a device
        self.base_sum = 0.0

    def add(self, item: WorkItem, seq: int) -> None:
        """Queue `item` under the policy's sequence number `seq` (ties go to the earlier one)."""
        base = area_s(item)
        index = bisect.bisect_left(self.entries, (-base, seq))
        self.entries.insert(index, (-base, seq, item))
        self.pos = min(self.pos, index)
        heapq.heappush(self.mems, (per_device_mem_gb(item), seq))
        self.shareable += can_share(item)
        self.base_sum += base

    def remove(self, item: WorkItem, seq: int) -> None:
        """Take `item` (queued as `seq`) out; the entries are compacted once most of them are removed."""
        self.removed.add(seq)
        self.base_sum -= area_s(item)
        self.shareable -= can_share(item)
        if len(self.removed) > 16 and 2 * len(self.removed) > len(self.entries):
            self.entries = [e for e in self.entries if e[1] not in self.removed]
            self.mems = [m for m in self.mems if m[1] not in self.removed]
            heapq.heapify(self.mems)
            self.removed.clear()
            self.pos = 0
        self.pos = self.next_live(self.pos)

    def min_mem(self) -> float:
        """The smallest per-device memory of the live items (inf when none is left)."""
        while self.mems and self.mems[0][1] in self.removed:
            heapq.heappop(self.mems)
        return self.mems[0][0] if self.mems else math.inf

    def next_live(self, index: int) -> int:
        """The first position at or after `index` that holds a live item (`len(entries)` when none does)."""
        while index < len(self.entries) and self.entries[index][1] in self.removed:
            index += 1
        return index
