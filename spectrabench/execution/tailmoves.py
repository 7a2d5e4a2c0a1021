"""The driver's side of a tail move (`planning.tails`): what a running attempt has done, and taking tasks back.

A worker writes its progress after every task (`progress.json`) and claims each task before starting it
(`harness.claims`). `running_view` reads the first for the dispatcher; `claim_tail` claims the last tasks of an
attempt for the driver, from the end backwards, stopping at the first one the worker already holds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from spectrabench.harness.claims import claim_task
from spectrabench.harness.workerspec import PROGRESS_FILE
from spectrabench.planning.jobs import TaskRef
from spectrabench.planning.schedule import WorkItem
from spectrabench.planning.tails import RunningJob


def running_view(item: WorkItem, attempt_dir: Path, started_at: float, now: float) -> RunningJob | None:
    """`item` (the attempt's tasks and predictions) with the progress its worker reported, or None when there is
    none to read here (not started yet, or a worker on another machine)."""
    try:
        progress = json.loads((attempt_dir / PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    tasks = progress.get("tasks") or {}
    finished = [tasks[name] for name in item.tasks if name in tasks]
    # The worker runs its tasks in order: those finished are a prefix of the attempt's list.
    ends = [float(t.get("finished_at") or started_at) for t in finished]
    last = max(ends, default=started_at)
    # What each finished task took: a part that ran long tells how long its group's other parts will run.
    took = tuple(max(0.0, end - start) for start, end in zip([started_at, *ends], ends, strict=False))
    return RunningJob(item, len(finished), max(0.0, now - last), done_s=took)


def claim_tail(attempt_dir: Path, todo: Sequence[TaskRef], count: int) -> list[TaskRef]:
    """Claim up to the last `count` tasks of `todo` for the driver, last first; the claimed ones, in order."""
    claimed: list[TaskRef] = []
    for ref in reversed(list(todo)[-count:]):
        if not claim_task(attempt_dir, ref.name, "driver"):
            break  # the worker has started this one, so every task before it too
        claimed.append(ref)
    return claimed[::-1]
