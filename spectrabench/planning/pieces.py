"""What a piece of a grouping is, and how many a run may have.

A piece is one worker: a model loaded once and its tasks run in order (`merge_items`). Every piece pays a model load,
so a run's pieces, and the tails it moves to idle devices during the run (`planning.tails`), share one budget of
loads (`load_budget`), of which grouping may plan all but a reserve (`grouping_budget`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence

from spectrabench.planning.schedule import WorkItem

# Pieces (model loads) allowed, as a multiple of models + devices.
LOAD_BUDGET = 1.1
# Loads per device that grouping leaves unspent, for the run to move the tails of jobs that run long
# (`planning.tails`): a split decided from predictions is blind to which jobs will overrun, a tail moved at the end
# is not. Simulated makespan / LB over 40 seeds on standard 8xH100-80GB, mean (p95), noise 0.2 then 0.5: none kept
# 1.232 (1.487) and 1.358 (1.898); 3 kept 1.209 (1.391) and 1.356 (1.702); 4 kept (0.5 a device) 1.209 (1.467) and
# 1.330 (1.767); 6 kept 1.199 (1.467) and 1.365 (1.685). Extended 8xH100, 20 seeds, noise 0.5: none 1.349, 4 kept 1.315.
# Measured again once letter tasks cost one pass a document in the simulator's truth (the standard workload is then
# 2.5 h on 8xH100-80GB, in more and finer parts), 40 seeds, speed-up p50 and makespan / LB p95, standard noise 0.2 /
# 0.5 then extended 0.2 / 0.5: 0.5 kept 7.88x / 7.26x / 7.96x / 7.85x, 1.319 / 1.309 / 1.202 / 1.260; 0.75 7.87x /
# 7.54x / 7.97x / 7.83x, 1.197 / 1.295 / 1.206 / 1.261; 1.0 7.86x / 7.65x / 7.95x / 7.88x, 1.198 / 1.268 / 1.191 /
# 1.222; 1.5 (standard may then cut nothing) 6.86x / 7.07x / 7.95x / 7.90x, 1.607 / 1.629 / 1.192 / 1.213. 1.0 as a
# hard reserve is left out: on pools where grouping needs its cuts (130 (model, task) pairs of 13 models on 8 devices
# in tests/planning/test_baselines.py) it leaves too few, and the speed-up there fell from over 7x to 6.3x.
TAIL_RESERVE = 0.5
# Loads per device also left for tail moves unless cutting them is clearly worth more (`grouping.SPARE_GAIN`):
# the 1.0 above without the cost.
SPARE_RESERVE = 1.0
# Within a job, tasks whose predicted peaks lie within this factor of one another form a tier, counted down from the
# job's heaviest task; tiers run heaviest first (`run_order`).
MEMORY_TIER = 2.5


def worker_group(model: str, gpus: int) -> str:
    """The key under which `group_jobs` may merge items: one model on one device count. A task that must be split
    over more cards runs apart, since grouping it would split the model's every task."""
    return f"{model}@{gpus}"


def load_budget(n_models: int, n_devices: int) -> int:
    """Model loads a run may spend: `LOAD_BUDGET` x (models + devices). Grouping's pieces and the tails moved
    during the run (`planning.tails`) share it."""
    return math.floor(LOAD_BUDGET * (n_models + n_devices))


def grouping_budget(n_models: int, n_devices: int, tail_reserve: float = TAIL_RESERVE,
                    n_slots: int | None = None) -> int:
    """The pieces grouping may plan: the load budget (over `n_slots` where small jobs share devices) less
    `tail_reserve` loads per device kept for tail moves, never fewer than one piece per model."""
    return max(n_models, load_budget(n_models, n_slots or n_devices) - math.floor(tail_reserve * n_devices))


def run_order(items: Sequence[WorkItem]) -> list[WorkItem]:
    """The order one worker runs `items` in: memory tiers heaviest first (`MEMORY_TIER`), longest first within a
    tier, ties in the given order.

    The worker frees its cached memory between tasks, so once a job's heavy tasks are done it holds less, and small
    jobs can join it on its device (`WorkItem.mem_from`). Longest first within a tier leaves short tasks unstarted
    at the end, for an idle device to take (`planning.tails`), and shows a worker's slow start early. Simulated p95
    makespan / LB, with the job's whole peak held to its end and longest first -> this: extended 2xA100-80GB, seeds
    40-99, 1.041 -> 1.028 (noise 0.2) and 1.058 -> 1.041 (0.5); extended 8xH100-80GB, 60 seeds, 1.199 -> 1.180 and
    1.207 -> 1.200; standard 8xH100-80GB, 80 seeds, 1.225 -> 1.225 and 1.316 -> 1.307. Memory first outright cost
    the tails: standard 8xH100-80GB at noise 0.2, 20 seeds, 1.173 -> 1.305.
    """
    heaviest = max((i.predicted_mem_gb for i in items), default=0.0)

    def tier(item: WorkItem) -> int:
        if heaviest <= 0 or item.predicted_mem_gb <= 0:
            return 0
        return math.floor(math.log(heaviest / item.predicted_mem_gb) / math.log(MEMORY_TIER) + 1e-9)

    order = sorted(range(len(items)), key=lambda i: (tier(items[i]), -items[i].predicted_runtime_s, i))
    return [items[i] for i in order]


def merge_items(items: Sequence[WorkItem]) -> WorkItem:
    """One item that loads the model once and runs all `items`' tasks in order.

    Args:
        items: Items of one model (one or more tasks each), the load time repeated in each.

    Returns:
        `items[0]` itself when alone; otherwise an item whose key is a digest of the members' keys, runtime the
        sum, load and memory the largest of the members'.

    Raises:
        ValueError: `items` is empty or mixes models.
    """
    if not items:
        raise ValueError("cannot merge no items")
    if len({i.model for i in items}) > 1:
        raise ValueError(f"cannot merge items of different models: {sorted({i.model for i in items})}")
    if len(items) == 1:
        return items[0]
    digest = hashlib.sha256("\n".join(i.key for i in items).encode()).hexdigest()[:16]
    first = items[0]
    return WorkItem(key=f"group-{digest}", model=first.model, tasks=tuple(t for i in items for t in i.tasks),
                    params_b=first.params_b, gpus=max(i.gpus for i in items),
                    predicted_runtime_s=sum(i.predicted_runtime_s for i in items),
                    predicted_load_s=max(i.predicted_load_s for i in items),
                    predicted_mem_gb=max(i.predicted_mem_gb for i in items),
                    task_runtimes_s=_per_task(items, lambda i: i.task_runtimes_s, lambda i: i.predicted_runtime_s),
                    task_mems_gb=_per_task(items, lambda i: i.task_mems_gb, lambda i: i.predicted_mem_gb))


def _per_task(items: Sequence[WorkItem], figures: Callable[[WorkItem], tuple[float, ...]],
              whole: Callable[[WorkItem], float]) -> tuple[float, ...]:
    """One per-task figure of merged items, in task order: each member's own (`figures`), or a one-task member's
    `whole` figure where it has none; empty when a member of several tasks has none."""
    values: list[float] = []
    for item in items:
        own = figures(item)
        if own and len(own) == len(item.tasks):
            values.extend(own)
        elif len(item.tasks) == 1:
            values.append(whole(item))
        else:
            return ()
    return tuple(values)


def one_item_per_model(items_by_model: Mapping[str, Sequence[WorkItem]]) -> list[WorkItem]:
    """Each model's items merged into one (one load per model), in the mapping's order."""
    return [merge_items(items) for items in items_by_model.values() if items]
