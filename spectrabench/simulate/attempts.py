"""The moving parts of a simulated run (`simulate.cluster`): attempts on the pool's devices, and what they did.

An attempt knows its work left in seconds alone and where that puts it among its tasks (`Attempt.progress`), which
gives the memory it holds now: the worker frees its cache between tasks, so that is the peak of the task at hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from spectrabench.hardware import DeviceSpec
from spectrabench.planning.schedule import WorkItem
from spectrabench.simulate.truth import SimJob

DONE_EPS = 1e-9
BOUNDARY_S = 1e-6  # a hair past a task's end, so that it counts as finished


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
    tasks: tuple[str, ...] = ()  # the tasks it ran (fewer than its key names once a tail moved off)



@dataclass
class Attempt:
    """One attempt of an item on the pool: its truth, its work left, and the memory it holds as its tasks pass."""

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
    failing_batch: int  # when `oom`: the batch of the task it dies in
    load_s: float  # its load, alone
    task_s: list[float]  # each task's seconds alone, in order
    task_peak: list[float]  # each task's true peak, in order
    devices: list[PoolDevice] = field(default_factory=list)  # all it holds (several for a sharded item)
    rate: float = 1.0
    kept: int = 0  # tasks it finished before it died of OOM at a later one's start

    def held_now(self) -> float:
        """True memory it holds now: the peak of the task at hand (its whole job's while it dies of OOM)."""
        if self.oom or not self.task_peak:
            return self.held_gb
        finished, _, _ = self.progress()
        return self.task_peak[min(finished, len(self.task_peak) - 1)]

    def committed_gb(self) -> float:
        """What the policy counts it holding on each of its devices: the predicted peak of the tasks it has left."""
        return self.item.mem_from(self.progress()[0]) / max(1, self.item.gpus)

    def has_next_task(self) -> bool:
        """Whether a task of its own follows the one at hand (its memory may change when that one ends)."""
        return not self.oom and self.progress()[0] < len(self.task_s) - 1

    def to_next_task(self) -> float:
        """Seconds of work alone until the task at hand finishes (a hair past it, so that it counts as finished)."""
        finished, in_task, _ = self.progress()
        if finished >= len(self.task_s):
            return self.remaining
        at_hand = self.task_s[finished] + (self.load_s if finished == 0 else 0.0)
        return max(0.0, at_hand - in_task) + BOUNDARY_S

    def progress(self) -> tuple[int, float, tuple[float, ...]]:
        """Tasks finished so far, seconds of work since the last one finished (or since the start), and the seconds
        each finished task took (the first with the load)."""
        done = sum(self.task_s) + self.load_s - self.remaining if not self.oom else 0.0
        finished, edge = 0, 0.0
        took: list[float] = []
        for index, seconds in enumerate(self.task_s):
            end = edge + seconds + (self.load_s if index == 0 else 0.0)
            if end > done + DONE_EPS:
                break
            finished, edge = index + 1, end
            took.append(seconds + (self.load_s if index == 0 else 0.0))
        return finished, max(0.0, done - edge), tuple(took)


@dataclass
class PoolDevice:
    """One device of the pool: what runs there, what it ran last, and for how long it was busy."""

    spec: DeviceSpec
    running: list[Attempt] = field(default_factory=list)
    last_model: str | None = None
    busy_since: float = 0.0
    busy_s: float = 0.0
    timeline: list[Segment] = field(default_factory=list)
