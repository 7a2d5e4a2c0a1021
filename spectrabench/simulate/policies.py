"""Simple reference policies for the simulator: first-fit in queue order, and longest-first (LPT) with a memory check.

They see what `DynamicLPT` sees and nothing more; tests and the co-location benchmark measure ours against them.
"""

from __future__ import annotations

from collections.abc import Sequence

from spectrabench.planning.schedule import SlotState, WorkItem


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
