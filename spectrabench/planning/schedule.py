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
    shareable: bool = True  # False: never beside another job on a GPU (e.g. after running out of memory beside one)
    subtasks: int = 1  # leaf tasks of its one task when that is an lm-eval group: it may be cut into this many parts

    def tail(self, key: str, count: int) -> WorkItem:
        """The item that runs this item's last `count` tasks alone (a tail moved to another device)."""
        if not 0 < count < len(self.tasks) or len(self.task_runtimes_s) != len(self.tasks):
            raise ValueError(f"cannot take {count} of {len(self.tasks)} tasks with per-task predictions")
        runtimes = self.task_runtimes_s[-count:]
        return self.model_copy(update={"key": key, "tasks": self.tasks[-count:], "task_runtimes_s": runtimes,
                                       "predicted_runtime_s": sum(runtimes)})

    def head(self, count: int) -> WorkItem:
        """This item without its last `count` tasks (same key): what is left after a tail moved."""
        if not 0 < count < len(self.tasks) or len(self.task_runtimes_s) != len(self.tasks):
            raise ValueError(f"cannot keep all but {count} of {len(self.tasks)} tasks with per-task predictions")
        runtimes = self.task_runtimes_s[:-count]
        return self.model_copy(update={"tasks": self.tasks[:-count], "task_runtimes_s": runtimes,
                                       "predicted_runtime_s": sum(runtimes)})


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
