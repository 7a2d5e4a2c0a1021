"""Moving a running job's unstarted tasks to a device that fell idle with nothing left to start.

Grouping decides before the run which tasks share a worker, from predictions. A group that runs long (a task far
slower than predicted, an OOM retry at a smaller batch) then keeps one device busy while the others idle at the
end. A worker evaluates its tasks one after another, so those it has not started can still move: the idle device
takes the last few as a new job and pays a model load for them, which costs nothing while it would otherwise wait.

`tail_move` makes the choice, purely, from predictions corrected by what finished so far and from each running
job's progress (tasks finished, time in the task at hand). The executor then takes back from the worker only
tasks it has not claimed yet (`harness.claims`), so a task never runs twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from spectrabench.planning.placement import per_device_mem_gb
from spectrabench.planning.schedule import WorkItem
from spectrabench.taskparts import parse_part

# A move must bring the running job's predicted end closer by this share of its time left: a smaller gain is within
# the predictions' error and would still cost a model load.
MIN_GAIN = 0.1


class RunningJob(NamedTuple):
    """A job running on some device, as the dispatcher knows it.

    Attributes:
        item: Its tasks still assigned to it, with per-task predictions (`WorkItem.task_runtimes_s`).
        finished: How many of `item.tasks` have finished (the worker's progress).
        in_task_s: Seconds since the last task finished, or since the attempt started (load included) when none has.
        speed: Its device's speed relative to the device the predictions are for (`planning.speeds`; 1 unless the
            pool mixes kinds).
        done_s: Seconds each finished task took, in order (the first from the attempt's start, so with the load);
            empty when unknown.
    """

    item: WorkItem
    finished: int
    in_task_s: float
    speed: float = 1.0
    done_s: tuple[float, ...] = ()


class TailMove(NamedTuple):
    """Move the last `n_tasks` tasks of the running job `key` to the idle device; its predicted end comes `gain_s`
    sooner."""

    key: str
    n_tasks: int
    gain_s: float


def expected_runtimes_s(job: RunningJob, scale: float) -> list[float]:
    """Each task's runtime to expect on the job's device: its prediction x `scale`, and for a part of a group
    (`taskparts`) whose earlier parts in this job ran long or short, x the ratio they ran at, counting the part at
    hand once it has outrun its prediction. The parts of one group share its documents' lengths and the model's
    speed on them: one that ran 3x long says its siblings will too."""
    item = job.item
    runtimes = [scale * r / job.speed for r in item.task_runtimes_s]
    load = scale * item.predicted_load_s / job.speed
    actual: dict[str, float] = {}
    predicted: dict[str, float] = {}
    for index, seconds in enumerate(job.done_s[:job.finished]):
        group = _group_of(item.tasks[index])
        if group is not None:
            actual[group] = actual.get(group, 0.0) + max(0.0, seconds - (load if index == 0 else 0.0))
            predicted[group] = predicted.get(group, 0.0) + runtimes[index]
    ratio = {group: actual[group] / predicted[group] for group in actual if predicted[group] > 0}
    if job.finished < len(runtimes):
        group = _group_of(item.tasks[job.finished])
        at_hand = runtimes[job.finished]
        spent = max(0.0, job.in_task_s - (load if job.finished == 0 else 0.0))
        if group is not None and at_hand > 0 and spent > at_hand:
            overrun = (actual.get(group, 0.0) + spent) / (predicted.get(group, 0.0) + at_hand)
            ratio[group] = max(ratio.get(group, 1.0), overrun)
    return [r * ratio.get(_group_of(name) or "", 1.0) for name, r in zip(item.tasks, runtimes, strict=False)]


def _group_of(name: str) -> str | None:
    part = parse_part(name)
    return part.task if part is not None else None


def time_left_s(job: RunningJob, scale: float) -> float:
    """The job's predicted time left on its device: the task at hand (never below zero when it overruns) and those
    after it, each as `expected_runtimes_s` expects it."""
    item = job.item
    runtimes = expected_runtimes_s(job, scale)
    if job.finished >= len(runtimes):
        return 0.0
    at_hand = (scale * item.predicted_load_s / job.speed if job.finished == 0 else 0.0) + runtimes[job.finished]
    return max(0.0, at_hand - job.in_task_s) + sum(runtimes[job.finished + 1:])


def tail_move(running: Sequence[RunningJob], free_mem_gb: float,
              scale: Callable[[str], float] = lambda _model: 1.0, idle_partners: int = 0,
              speed: float = 1.0) -> TailMove | None:
    """The tail worth moving to an idle device with `free_mem_gb` free, or None.

    For each running job with per-task predictions and at least one task not started after the one at hand, every
    tail (its last k tasks) is weighed: the job then ends when its kept tasks do, the tail when the idle device has
    loaded the model and run it. The best tail over all jobs wins if it brings its job's end `MIN_GAIN` closer.

    Args:
        running: Jobs running on other devices.
        free_mem_gb: What the idle device can hold; a job whose predicted peak exceeds it is not split onto it.
        scale: The online correction of a model's predictions (`DynamicLPT.scale_for`).
        idle_partners: Other idle devices like the asking one: a job split over k devices can move its tail
            only when k - 1 of them join the asking device.
        speed: The idle device's speed (`RunningJob.speed`): a tail moved to a slower device takes longer there.
    """
    best: TailMove | None = None
    for job in running:
        item = job.item
        n = len(item.tasks)
        movable = n - job.finished - 1
        if (movable < 1 or len(item.task_runtimes_s) != n or item.gpus > 1 + idle_partners
                or per_device_mem_gb(item) > free_mem_gb):
            continue
        factor = scale(item.model)
        runtimes = [r * job.speed for r in expected_runtimes_s(job, factor)]
        load = factor * item.predicted_load_s
        left = time_left_s(job, factor)
        end, count = left, 0
        tail = 0.0
        for k in range(1, movable + 1):
            tail += runtimes[n - k]
            candidate = max(left - tail / job.speed, (load + tail) / speed)
            if candidate < end:
                end, count = candidate, k
        gain = left - end
        if count and gain > MIN_GAIN * left and (best is None or gain > best.gain_s):
            best = TailMove(item.key, count, gain)
    return best
