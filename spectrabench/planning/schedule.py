"""The scheduler's vocabulary, shared by the real driver and the simulator: work items, device slots, policies.

A policy sees predictions only, never the truth: the simulator keeps its ground truth to itself, and the driver
only learns actual runtimes after the fact (which a policy may use to correct the rest online).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict


class WorkItem(BaseModel):
    """One job as a scheduler sees it: what it is, and what it is predicted to cost."""

    model_config = ConfigDict(frozen=True)

    key: str
    model: str
    tasks: tuple[str, ...]
    params_b: float
    gpus: int = 1
    predicted_runtime_s: float  # evaluation time of all its tasks, load excluded
    predicted_load_s: float
    predicted_mem_gb: float  # the memory quantile: what must be free to start it
    task_runtimes_s: tuple[float, ...] = ()  # each task's share of predicted_runtime_s, in `tasks` order (or unknown)
    # Each task's own predicted peak, in `tasks` order (or unknown), on the scale of predicted_mem_gb: the worker
    # frees its cached memory between tasks, so a job holds only what its tasks still to run need (`mem_from`).
    task_mems_gb: tuple[float, ...] = ()
    shareable: bool = True  # False: never beside another job on a GPU (e.g. after running out of memory beside one)
    subtasks: int = 1  # leaf tasks of its one task when that is an lm-eval group: it may be cut into this many parts

    def tail(self, key: str, count: int) -> WorkItem:
        """The item that runs this item's last `count` tasks alone (a tail moved to another device)."""
        if not 0 < count < len(self.tasks) or len(self.task_runtimes_s) != len(self.tasks):
            raise ValueError(f"cannot take {count} of {len(self.tasks)} tasks with per-task predictions")
        runtimes = self.task_runtimes_s[-count:]
        return self.model_copy(update={"key": key, "tasks": self.tasks[-count:], "task_runtimes_s": runtimes,
                                       "predicted_runtime_s": sum(runtimes), **self._mems_of(slice(-count, None))})

    def head(self, count: int) -> WorkItem:
        """This item without its last `count` tasks (same key): what is left after a tail moved."""
        if not 0 < count < len(self.tasks) or len(self.task_runtimes_s) != len(self.tasks):
            raise ValueError(f"cannot keep all but {count} of {len(self.tasks)} tasks with per-task predictions")
        runtimes = self.task_runtimes_s[:-count]
        return self.model_copy(update={"tasks": self.tasks[:-count], "task_runtimes_s": runtimes,
                                       "predicted_runtime_s": sum(runtimes), **self._mems_of(slice(None, -count))})

    def mem_from(self, finished: int) -> float:
        """The predicted memory this item still holds once its first `finished` tasks are done: the largest
        predicted peak of the tasks left (the one at hand included), never more than `predicted_mem_gb`; that
        figure itself when the per-task peaks are unknown."""
        mems = self._known_mems()
        if not mems:
            return self.predicted_mem_gb
        return min(self.predicted_mem_gb, max(mems[max(0, finished):], default=0.0))

    def _known_mems(self) -> tuple[float, ...]:
        return self.task_mems_gb if len(self.task_mems_gb) == len(self.tasks) else ()

    def _mems_of(self, tasks: slice) -> dict[str, object]:
        """The per-task peaks of `tasks` and, where known, their largest as the peak of an item holding just those."""
        mems = self._known_mems()[tasks]
        return {"task_mems_gb": mems, "predicted_mem_gb": max(mems)} if mems else {"task_mems_gb": ()}


class SlotState(BaseModel):
    """One device at the moment a policy is asked what to start on it."""

    model_config = ConfigDict(frozen=True)

    device_id: str
    total_mem_gb: float
    free_mem_gb: float  # total minus the predicted peaks of what runs on it now
    running: tuple[str, ...] = ()  # keys of the items running on it
    last_model: str | None = None  # the model it ran last: its weights may still be warm


class Policy(Protocol):
    """Chooses what to start when a device has room. Pure: no I/O, no clocks other than `now`."""

    name: str

    def pick(self, queue: Sequence[WorkItem], slot: SlotState, now: float) -> WorkItem | None:
        """The item to start on `slot` now, or None to leave it as it is."""
        ...

    def observe(self, item: WorkItem, actual_runtime_s: float) -> None:
        """Learn from a finished item (e.g. scale the remaining predictions by actual/predicted)."""
        ...
