"""Cutting a large lm-eval group into parts (`taskparts`), so that one group can keep several devices busy.

Grouping (`planning.grouping`) never splits below a task: one model's largest group (a 32B model's kmmlu, 45
subjects) can alone outlast every other device's share of the work, and then it is the makespan. So before grouping,
each group whose predicted time exceeds `SPLIT_SHARE` of a device's share (all work, one load per model, over the
devices) is cut into parts of its leaf tasks, each predicted at its share of the leaves. Grouping then treats the
parts as tasks: it may run them in one worker or spread them. A group is never cut into more parts than it has
leaves or `MAX_PARTS`, and a model that grouping may not split keeps its groups whole. The cut grouping is kept
only when its makespan to expect under prediction error beats the uncut one by `grouping.MIN_GAIN`.

Then, on `MIN_DEVICES_FOR_TAILS` devices or more, every group in a job that is longer than `TAIL_SHARE` of a
device's share runs as parts in that job, one after another where the group stood (no extra load; the worker builds
the group once for all of them), and so does a part cut apart that holds several of those finer parts: a group that
runs far longer than predicted can then still give its unstarted parts to a device that fell idle
(`planning.tails`), where a whole group could give nothing. On fewer devices, parts in one job are joined back into
the whole group (one lm-eval call, as without cutting).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence

from spectrabench.planning.grouping import MIN_GAIN, group_and_score
from spectrabench.planning.schedule import WorkItem
from spectrabench.planning.speeds import DeviceRate
from spectrabench.taskparts import leaf_slice, parse_part, part_name, part_share

# A group longer than this share of one device's work is cut into parts no longer than it: grouping then has
# pieces small enough to balance the devices with. Simulated speed-up at p50 over 20 seeds on 8xH100-80GB
# (standard, noise 0.2 / 0.5; extended 0.2 / 0.5), with exact part counts: never cut 7.20 / 6.49 / 7.84 / 7.14;
# 0.5: 7.29 / 6.79 / 7.82 / 7.14; 0.25: 7.57 / 6.74 / 7.80 / 7.12; 0.15: 7.57 / 6.82 / 7.76 / 7.11; 0.1: 7.51 /
# 6.80 / 7.81 / 7.16. With counts on the power-of-two ladder below, 0.15: 7.58 / 6.68 / 7.76 / 7.06.
SPLIT_SHARE = 0.15
# At most this many parts per group. A worker builds a group once for all its parts (`harness.groupscores`), but a
# part that starts a worker (its own job, or a moved tail) builds the whole group (every leaf's dataset and config),
# which for kmmlu's 45 subjects costs tens of seconds. Simulated on 8xH100-80GB before workers built a group once
# (as above, ladder counts): at most 4 parts 7.61 / 6.64 / 7.76 / 7.06; 8: 7.58 / 6.72 / 7.76 / 7.06; 16 or no cap:
# 7.58 / 6.68 / 7.76 / 7.06. Since then 32 goes with `TAIL_SHARE` below.
MAX_PARTS = 32
# A group in a job longer than this share of one device's work runs in parts there, so that its tail can move. The
# worker builds the group once for all of them, so a part in a job costs only its own lm-eval call. Simulated on
# 8xH100-80GB (standard, noise 0.2 / 0.5; extended 0.2 / 0.5), speed-up at p50, then makespan / LB at p95, the
# benchmark's 20 seeds, `MAX_PARTS` 8 unless said:
# - while each part rebuilt its group: groups whole in their jobs 7.69x / 7.00x / 7.75x / 7.44x, 1.467 / 1.767 /
#   1.347 / 1.711; 0.05 7.69x / 7.31x / 7.84x / 7.51x, 1.283 / 1.397 / 1.245 / 1.404;
# - built once per worker: 0.05 7.77x / 7.37x / 7.85x / 7.51x, 1.269 / 1.389 / 1.244 / 1.403; 0.03 7.82x / 7.47x /
#   7.86x / 7.71x, 1.264 / 1.291 / 1.245 / 1.403; 0.02 with at most 16 parts 7.87x / 7.57x / 7.90x / 7.78x, 1.230 /
#   1.286 / 1.197 / 1.408; 0.02 with 32 the same; 0.01 with 32 7.84x / 7.59x / 7.94x / 7.88x, 1.230 / 1.287 /
#   1.198 / 1.300;
# - 0.01 with 32, parts cut apart refined too (`in_parts`), a further part paying its own call (2 s in the truth)
#   and none shorter than the model's load: 7.83x / 7.60x / 7.92x / 7.88x, 1.190 / 1.347 / 1.199 / 1.301. Over 60
#   seeds, without then with the refining: p95 1.286 -> 1.202 / 1.315 -> 1.347 / 1.196 -> 1.197 / 1.271 -> 1.270,
#   p50 7.84x -> 7.83x / 7.42x -> 7.52x / 7.95x -> 7.94x / 7.90x -> 7.89x.
TAIL_SHARE = 0.01
# On fewer devices, groups run whole in their jobs: with one other device to move a tail to, parts did not pay.
# Standard / extended on 2xA100-80GB over 60 seeds, makespan / LB p50 and p95 at noise 0.2 and 0.5: in parts
# 1.026 / 1.033 and 1.025 / 1.040 (standard), whole 1.023 / 1.031 and 1.023 / 1.037; extended the same either way.
MIN_DEVICES_FOR_TAILS = 3


def split_large_groups(items_by_model: Mapping[str, Sequence[WorkItem]], n_devices: int,
                       splittable: Callable[[str], bool] | None = None,
                       share: float = SPLIT_SHARE, in_job: bool = False) -> dict[str, list[WorkItem]]:
    """Each model's items, with every group item longer than `share` of a device's share cut into parts.

    Args:
        items_by_model: One item per (model, task), by model (as `grouping.group_jobs` takes them).
        n_devices: Devices the run will use.
        splittable: Whether a model's work may be split at all; every model may by default.
        share: Of one device's work (all work, one load per model, over the devices): the longest a group stays.
        in_job: The parts will run one after another in the group's own job, so they pay no load of their own:
            only the group's runtime counts against `share`, and no part is cut shorter than the model's load
            (what moving it to another device would cost).

    Returns:
        The same mapping; a cut item becomes `k` items named `task[i/k]`, keyed `key[i/k]`, each with its share of
        the predicted runtime and the whole item's load and memory.
    """
    if n_devices < 1:
        raise ValueError(f"need at least one device, got {n_devices}")
    loads = {m: max((i.predicted_load_s for i in items), default=0.0) for m, items in items_by_model.items()}
    total = sum(loads.values()) + sum(i.predicted_runtime_s for items in items_by_model.values() for i in items)
    target = share * total / n_devices
    result: dict[str, list[WorkItem]] = {}
    for model, items in items_by_model.items():
        allowed = splittable(model) if splittable else True
        result[model] = [p for item in items for p in (_parts(item, target, in_job) if allowed else [item])]
    return result


def _parts(item: WorkItem, target_s: float, in_job: bool = False) -> list[WorkItem]:
    """`item` cut into parts whose predicted time (load included, unless they run `in_job`) stays under `target_s`,
    as far as its leaves and `MAX_PARTS` allow, their count a power of two (or all its leaves); `[item]` when it
    is no group, runs several tasks, or fits already."""
    load = 0.0 if in_job else item.predicted_load_s
    if in_job:
        # A part is worth moving alone only if it outlasts the model load the move pays: no shorter parts.
        target_s = max(target_s, item.predicted_load_s)
    if item.subtasks < 2 or len(item.tasks) != 1 or load + item.predicted_runtime_s <= target_s:
        return [item]
    room = target_s - load
    needed = item.subtasks if room <= 0 else max(2, math.ceil(item.predicted_runtime_s / room))
    # Counts on a ladder of powers of two: a part's key names its count, so a resumed run whose predictions moved a
    # little (the predictor retrains after every run) still finds the parts the last run finished.
    count = min(item.subtasks, MAX_PARTS, 2 ** math.ceil(math.log2(needed)))
    task = item.tasks[0]
    parts = []
    for index in range(1, count + 1):
        runtime = item.predicted_runtime_s * part_share(item.subtasks, index, count)
        parts.append(item.model_copy(update={
            "key": f"{item.key}[{index}/{count}]", "tasks": (part_name(task, index, count),),
            "predicted_runtime_s": runtime, "task_runtimes_s": (runtime,), "subtasks": 1}))
    return parts


def rejoin_parts(item: WorkItem) -> WorkItem:
    """`item` with every group whose parts it holds all joined back into the whole group (at its first part's
    place): one worker runs it as one lm-eval call, as if it had never been cut."""
    found: dict[tuple[str, int], list[int]] = {}  # (task, parts) -> positions of its parts here
    for position, name in enumerate(item.tasks):
        part = parse_part(name)
        if part is not None:
            found.setdefault((part.task, part.parts), []).append(position)
    complete = {task: positions for (task, parts), positions in found.items() if len(positions) == parts}
    if not complete:
        return item
    known = len(item.task_runtimes_s) == len(item.tasks)
    mems_known = len(item.task_mems_gb) == len(item.tasks)
    tasks: list[str] = []
    runtimes: list[float] = []
    mems: list[float] = []
    for position, name in enumerate(item.tasks):
        part = parse_part(name)
        if part is None or part.task not in complete:
            tasks.append(name)
            runtimes.append(item.task_runtimes_s[position] if known else 0.0)
            mems.append(item.task_mems_gb[position] if mems_known else 0.0)
        elif position == complete[part.task][0]:
            tasks.append(part.task)
            runtimes.append(sum(item.task_runtimes_s[p] for p in complete[part.task]) if known else 0.0)
            mems.append(max(item.task_mems_gb[p] for p in complete[part.task]) if mems_known else 0.0)
    return item.model_copy(update={"tasks": tuple(tasks), "task_runtimes_s": tuple(runtimes) if known else (),
                                   "task_mems_gb": tuple(mems) if mems_known else ()})


def plan_pieces(items_by_model: Mapping[str, Sequence[WorkItem]], n_devices: int,
                splittable: Callable[[str], bool] | None = None, *, jobs_per_device: float = 1.0,
                pool: Sequence[DeviceRate] | None = None) -> list[WorkItem]:
    """The jobs an optimized run starts: every model's items grouped (`grouping.group_and_score`), with large groups
    cut into parts first (`split_large_groups`) where that shortens the makespan to expect under prediction error
    by more than `grouping.MIN_GAIN`; then each group longer than `TAIL_SHARE` of a device's share runs in parts
    within its job (`in_parts`). On fewer than `MIN_DEVICES_FOR_TAILS` devices, parts that share a job are joined
    back instead (`rejoin_parts`). `pool`: each device's speed and memory, where they differ
    (`grouping.group_and_score`)."""
    pieces, expected_s = group_and_score(items_by_model, n_devices, splittable, jobs_per_device=jobs_per_device,
                                         pool=pool)
    slots = max(n_devices, round(n_devices * jobs_per_device))
    split = split_large_groups(items_by_model, slots, splittable)
    if any(len(split[m]) != len(items) for m, items in items_by_model.items()):
        cut, cut_s = group_and_score(split, n_devices, splittable, jobs_per_device=jobs_per_device, pool=pool)
        if cut_s < expected_s * (1 - MIN_GAIN):
            pieces = cut
    if n_devices < MIN_DEVICES_FOR_TAILS:
        return [rejoin_parts(piece) for piece in pieces]
    parts_of: dict[tuple[str, str], list[WorkItem]] = {}
    for items in split_large_groups(items_by_model, slots, splittable, share=TAIL_SHARE,
                                    in_job=True).values():
        for item in items:
            part = parse_part(item.tasks[0])
            if part is not None:
                parts_of.setdefault((item.model, part.task), []).append(item)
    leaves = {(item.model, item.tasks[0]): item.subtasks for items in items_by_model.values() for item in items
              if len(item.tasks) == 1}
    return [in_parts(piece, parts_of, leaves) for piece in pieces]


def in_parts(piece: WorkItem, parts_of: Mapping[tuple[str, str], Sequence[WorkItem]],
             leaves: Mapping[tuple[str, str], int] | None = None) -> WorkItem:
    """`piece` with each whole group that `parts_of` cuts (by model and task) replaced by its parts, in their order,
    where the group stood; `piece` itself when it holds none.

    A part the grouping cut apart (`kmmlu[1/2]`) is replaced by the finer parts of `parts_of` that make it up
    (`kmmlu[1/32]` to `kmmlu[16/32]`) where they are finer: their leaf slices nest in it (`taskparts.leaf_slice`),
    `leaves` giving each (model, group)'s leaf count. Every part of the group is refined alike in every piece, so
    the group's parts keep one count, which its scores are aggregated over. A part cut apart can overrun as much as
    a whole group, and only finer parts can then move.
    """
    known = len(piece.task_runtimes_s) == len(piece.tasks)
    mems_known = len(piece.task_mems_gb) == len(piece.tasks)
    tasks: list[str] = []
    runtimes: list[float] = []
    mems: list[float] = []
    for position, name in enumerate(piece.tasks):
        parts = _finer(piece.model, name, parts_of, leaves or {})
        tasks += [part.tasks[0] for part in parts] or [name]
        runtimes += [part.predicted_runtime_s for part in parts] or [
            piece.task_runtimes_s[position] if known else 0.0]
        # A part needs what its whole group needs: one leaf may hold the group's longest documents.
        mems += [piece.task_mems_gb[position] if mems_known else 0.0] * max(1, len(parts))
    if len(tasks) == len(piece.tasks):
        return piece
    digest = hashlib.sha256("\n".join([piece.model, *tasks]).encode()).hexdigest()[:16]
    return piece.model_copy(update={"key": f"group-{digest}", "tasks": tuple(tasks),
                                    "task_runtimes_s": tuple(runtimes) if known else (),
                                    "task_mems_gb": tuple(mems) if mems_known else ()})


def _finer(model: str, name: str, parts_of: Mapping[tuple[str, str], Sequence[WorkItem]],
           leaves: Mapping[tuple[str, str], int]) -> Sequence[WorkItem]:
    """The parts of `parts_of` that make up task `name` of `model` (a whole group, or a coarser part of one), or
    none."""
    whole = parse_part(name)
    if whole is None:
        return parts_of.get((model, name), ())
    finer = [(part, parse_part(part.tasks[0])) for part in parts_of.get((model, whole.task), ())]
    n = leaves.get((model, whole.task), 0)
    counts = {fine.parts for _, fine in finer if fine is not None}
    if n < 1 or len(counts) != 1 or (count := counts.pop()) <= whole.parts:
        return ()
    # Refine only where every cut of the coarse count is a cut of the finer one (counts on the ladder always are):
    # that depends on the group alone, so all its coarse parts are refined alike and the group keeps one count.
    if not {i * n // whole.parts for i in range(whole.parts + 1)} <= {i * n // count for i in range(count + 1)}:
        return ()
    start, stop = leaf_slice(n, whole.position, whole.parts)
    return [part for part, fine in finer if fine is not None
            and start <= leaf_slice(n, fine.position, fine.parts)[0] < stop]
