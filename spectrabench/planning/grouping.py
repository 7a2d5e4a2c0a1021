"""Grouping: which (model, task) pairs share one worker, and so one model load.

Rule. By default a model's tasks form one item: the model loads once, its runtime is the sum of its tasks' runtimes
and its memory the largest of theirs. That alone can lose a lot of makespan: a model whose work exceeds
`total work / n_devices` keeps one device busy long after the others are done, and a few large items pack badly on
many devices (13 equal models on 8 GPUs take two rounds). So a model may also be split, by task, into pieces that
each pay their own load.

Candidate groupings:
- one item per model;
- common caps: every model cut into the fewest pieces (tasks packed longest-first, a load each) that stay under a
  cap C, for C on a geometric grid from the longest model down to the larger of a quarter of the ideal per-device
  share and the longest single-task piece (no split beats that one);
- wrap-around packings (McNaughton's rule with task boundaries as cut points and a load per piece) at the smallest
  per-device target that packs, found by bisection, and a few percent above it;
- the most promising of those, refined: while halving a piece that makes the makespan shortens it, do.
Each piece pays a model load, so a grouping may have at most `pieces.grouping_budget` pieces (a wrap-around packing
needs one extra piece per device at most); refining stops there and candidates past it are dropped.

Choice. A quick score ranks the candidates: the makespan of longest-first (LPT) list scheduling of the predicted
pieces, or the longest piece `PIECE_NOISE` late if that is worse. The best `_FINALISTS`, one-per-model and the best
few within the spare budget are then run through the dispatcher's rule (longest predicted first, on the first free
device) with every task's runtime drawn `RUNTIME_NOISE` off its prediction, the same draws for all: predictions are
wrong, and a packing that is perfect on them often leaves one device finishing late. Among finalists within
`MIN_GAIN` of the best mean makespan the one with the fewest pieces wins: a gain smaller than that is not worth a
load. Loads past the spare budget (`pieces.SPARE_RESERVE` a device kept for the run's tail moves) go to cuts only
when the best finalist that leaves them is more than `SPARE_GAIN` slower: a tail moved at the end sees which jobs
overran, a cut planned ahead does not. So a balanced profile stays at one item per model, and a dominant model is
cut into pieces smaller than a device's share. A piece never holds less than one task, and a model for which
`splittable` says False stays whole. The draws use a fixed seed: the same input always gives the same grouping.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence

from spectrabench.planning.draws import lognormal_draws
from spectrabench.planning.pieces import SPARE_RESERVE, TAIL_RESERVE, grouping_budget, merge_items, run_order
from spectrabench.planning.placement import lpt_end, per_device_mem_gb
from spectrabench.planning.schedule import WorkItem
from spectrabench.planning.speeds import DeviceRate, assign, is_mixed
from spectrabench.taskparts import whole_name

# A finer split must shorten the expected makespan by more than this to be worth its extra loads.
MIN_GAIN = 0.005
# Cuts that spend loads of the spare reserve (`pieces.SPARE_RESERVE`) must shorten the expected makespan by more
# than this: those loads move tails at the end, where the run knows which jobs overran. Simulated over seeds 40-99
# on 8xH100-80GB (speed-up p50, makespan / LB p95), standard noise 0.5 then extended noise 0.5: no spare reserve
# 7.44x, 1.451 and 7.89x, 1.240; 0.1 7.60x, 1.358 and 7.94x, 1.231; always kept (a tail reserve of 1.0) 7.67x, 1.282,
# but then 13 models on 8 devices with cuts that matter (tests/planning/test_baselines.py) fall from 7.6x to 6.3x.
SPARE_GAIN = 0.1
# How much longer than predicted the longest piece may well run: a piece that alone nearly fills a device's share
# becomes the makespan when it runs late, so it must be cut smaller than a perfect packing would.
PIECE_NOISE = 0.1
# The prediction error groupings are compared under: each task's runtime off by a lognormal factor of this sigma.
# The predictor's held-out error is nearer 0.3-0.45 (25-40% MAPE, `benchmarks/predictor_accuracy.py`), but assuming
# 0.4 here was a wash: simulated makespan / LB p50 on 8xH100-80GB over seeds 60-119, sigma 0.2 -> 0.4, standard
# noise 0.2 1.167 -> 1.159, noise 0.5 1.264 -> 1.247, extended 1.182 -> 1.184 and 1.263 -> 1.250; but the benchmark's
# seeds 0-19 put extended noise 0.5 at 7.44x -> 7.19x over sequential, and standard on 2xA100-80GB,4xL4-24GB lost
# 1-5% (3.40x -> 3.35x over seeds 20-79). 2xA100-80GB is the same either way.
RUNTIME_NOISE = 0.2
# Noisy draws per finalist: enough for a stable mean, fewer for huge profiles (task-draws per finalist).
_MIN_DRAWS, _MAX_DRAWS, _DRAW_BUDGET = 4, 16, 50_000
_FINALISTS = 12
# Ratio between successive caps tried.
_CAP_STEP = 0.95
# Caps below this share of the ideal per-device work only multiply loads.
_CAP_FLOOR = 0.25
# Halvings of the search for the tightest packing target (2**-20 of the initial gap).
_BISECTIONS = 20
# Packings a little looser than the tightest have fewer pieces and often pack as well.
_TARGET_SLACKS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05)
# Pieces cut after the fact, at most, to unstack what longest-first scheduling stacked.
_REFINE_STEPS = 16
_REFINED = 4
# Critical pieces tried per step, longest first: a short piece's halves rarely unstack anything, and each trial
# re-schedules every piece (this keeps planning thousands of jobs under a second).
_REFINE_TRIALS = 8


def lpt_makespan(lengths: Iterable[float], n_devices: int) -> float:
    """The makespan of longest-first list scheduling of `lengths` on `n_devices` identical devices."""
    if n_devices < 1:
        raise ValueError(f"need at least one device, got {n_devices}")
    return lpt_end([0.0] * n_devices, lengths)


def _noisy_runtimes(models: Mapping[str, _ModelSplits]) -> list[dict[str, list[float]]]:
    """Draws of every task's runtime with `RUNTIME_NOISE` error (a fixed seed: grouping stays deterministic).

    The parts of one group (`taskparts`) share one draw: a prediction is off for the whole group, not by part."""
    rng = random.Random(0)
    tasks = sum(len(s.items) for s in models.values())
    draws = max(_MIN_DRAWS, min(_MAX_DRAWS, _DRAW_BUDGET // tasks))
    # Per model: each item's index among the distinct groups (an item is its own group unless it is a part).
    slots: dict[str, list[int]] = {}
    distinct: dict[str, int] = {}
    for m, split in models.items():
        first: dict[str, int] = {}
        slots[m] = [first.setdefault(whole_name(i.tasks[0]) if len(i.tasks) == 1 else i.key, len(first))
                    for i in split.items]
        distinct[m] = len(first)
    noisy = []
    for _ in range(draws):
        draw = {}
        for m, split in models.items():
            factors = lognormal_draws(rng, distinct[m], RUNTIME_NOISE)
            draw[m] = [runtime * factors[j] for runtime, j in zip(split.runtimes, slots[m], strict=True)]
        noisy.append(draw)
    return noisy


def _expected_makespan(models: Mapping[str, _ModelSplits], parts: Mapping[str, list[list[int]]], n_devices: int,
                       noisy: Sequence[Mapping[str, list[float]]],
                       piece_sums: dict[tuple[str, tuple[int, ...]], list[float]],
                       pool: Sequence[DeviceRate] | None = None) -> float:
    """The mean makespan of dynamic LPT (longest predicted first, on the first free device) over `noisy` draws.

    In a pool of unlike devices (`pool`, one per device) each piece goes where it would finish first as predicted,
    among the devices that hold it, and runs there at that device's speed.
    `piece_sums` memoises each piece's noisy runtime in every draw: finalists share most of their pieces.
    """
    order = sorted(((models[m].length(b), m, b) for m in parts for b in parts[m]), key=lambda p: -p[0])
    pieces = []
    for length, model, piece in order:
        key = (model, tuple(piece))
        sums = piece_sums.get(key)
        if sums is None:
            sums = piece_sums[key] = [sum(draw[model][i] for i in piece) for draw in noisy]
        pieces.append((models[model].load_s, sums, length, models[model].mem(piece)))
    total = 0.0
    for d in range(len(noisy)):
        free = [0.0] * n_devices
        for load_s, sums, length, mem in pieces:
            if pool is None:
                heapq.heappush(free, heapq.heappop(free) + load_s + sums[d])
            else:
                assign(free, length, mem, pool, runs_s=load_s + sums[d])
        total += max(free)
    return total / len(noisy)


def _score(lengths: Sequence[float], n_devices: int, pool: Sequence[DeviceRate] | None = None,
           mems: Sequence[float] = ()) -> float:
    """The makespan to expect: longest-first on predictions, or the longest piece once it runs `PIECE_NOISE` late.
    In a pool of unlike devices, each piece on the device that would finish it first among those that hold it."""
    if pool is None:
        return max(lpt_makespan(lengths, n_devices), (1 + PIECE_NOISE) * max(lengths))
    free = [0.0] * len(pool)
    for length, mem in sorted(zip(lengths, mems, strict=True), reverse=True):
        assign(free, length, mem, pool)
    return max(max(free), (1 + PIECE_NOISE) * max(lengths))


class _ModelSplits:
    """The ways to cut one model's tasks into k pieces (longest task first into the emptiest piece), memoised."""

    def __init__(self, items: Sequence[WorkItem]) -> None:
        self.items = list(items)
        self.runtimes = [i.predicted_runtime_s for i in items]
        self.load_s = max(i.predicted_load_s for i in items)
        self.work_s = sum(self.runtimes)
        # Task indexes, longest task first (ties in profile order): the order every packing takes them in.
        self.longest_first = sorted(range(len(self.items)), key=lambda i: (-self.runtimes[i], i))
        self._bins: dict[int, list[list[int]]] = {}
        self._lengths: dict[tuple[int, ...], float] = {}
        self._mems = [per_device_mem_gb(i) for i in items]

    def mem(self, piece: Sequence[int]) -> float:
        """Predicted peak one device needs for the piece with these task indexes: the largest of its tasks'."""
        return max(self._mems[i] for i in piece)

    def length(self, piece: Sequence[int]) -> float:
        """Predicted length of the piece with these task indexes: one load plus their runtimes (memoised)."""
        key = tuple(piece)
        found = self._lengths.get(key)
        if found is None:
            found = self._lengths[key] = self.load_s + sum(self.runtimes[i] for i in key)
        return found

    def bins(self, k: int) -> list[list[int]]:
        """Task indexes of each of k pieces, each in profile order, pieces ordered by their first task."""
        if k not in self._bins:
            heap = [(0.0, b) for b in range(k)]
            bins: list[list[int]] = [[] for _ in range(k)]
            for index in self.longest_first:
                total, b = heapq.heappop(heap)
                bins[b].append(index)
                heapq.heappush(heap, (total + self.items[index].predicted_runtime_s, b))
            self._bins[k] = sorted((sorted(b) for b in bins if b), key=lambda b: b[0])
        return self._bins[k]

    def lengths(self, k: int) -> list[float]:
        """Predicted length of each of the k pieces, each paying the load."""
        return [self.length(b) for b in self.bins(k)]

    def pieces_under(self, cap: float) -> int:
        """The fewest pieces whose lengths all stay under `cap` (all tasks apart when none do)."""
        n = len(self.items)
        if cap <= self.load_s:
            return n
        k = min(n, max(1, math.ceil(self.work_s / (cap - self.load_s))))
        while k < n and max(self.lengths(k)) > cap:
            k += 1
        return k


def _pack(models: Mapping[str, _ModelSplits], can_split: Mapping[str, bool], n_devices: int,
          target_s: float) -> dict[str, list[list[int]]] | None:
    """Cut models into pieces that fill `n_devices` devices of `target_s` seconds each, or None when they can't.

    Longest model first: it goes whole into the tightest device that holds it; when none does, a piece of it
    (its load plus the longest tasks that still fit) fills the emptiest device, and the rest goes on the same way.
    This is McNaughton's wrap-around rule, with task boundaries as the only cut points and a load paid per piece.
    """
    free = [target_s] * n_devices
    parts: dict[str, list[list[int]]] = {}
    for model in sorted(models, key=lambda m: -(models[m].load_s + models[m].work_s)):
        split = models[model]
        runtime = split.runtimes
        remaining = split.longest_first
        pieces: list[list[int]] = []
        while remaining:
            length = split.load_s + sum(runtime[i] for i in remaining)
            tightest = min((d for d in range(n_devices) if free[d] >= length - 1e-9), key=free.__getitem__,
                           default=None)
            if tightest is not None:
                free[tightest] -= length
                pieces.append(sorted(remaining))
                break
            if not can_split[model]:
                return None
            device = max(range(n_devices), key=free.__getitem__)
            room = free[device] - split.load_s
            taken = []
            for index in remaining:
                if runtime[index] <= room + 1e-9:
                    taken.append(index)
                    room -= runtime[index]
            if not taken:
                return None
            free[device] = room
            pieces.append(sorted(taken))
            chosen = set(taken)
            remaining = [i for i in remaining if i not in chosen]
        parts[model] = sorted(pieces, key=lambda p: p[0])
    return parts


def _packed_options(models: Mapping[str, _ModelSplits], can_split: Mapping[str, bool], n_devices: int,
                    low_s: float, high_s: float) -> list[dict[str, list[list[int]]]]:
    """Packings at the smallest per-device target that packs (found by bisection), and a little above it."""
    if _pack(models, can_split, n_devices, high_s) is None:
        return []
    for _ in range(_BISECTIONS):
        middle = (low_s + high_s) / 2
        if _pack(models, can_split, n_devices, middle) is None:
            low_s = middle
        else:
            high_s = middle
    packs = (_pack(models, can_split, n_devices, high_s * (1 + slack)) for slack in _TARGET_SLACKS)
    return [p for p in packs if p is not None]


def _critical_pieces(models: Mapping[str, _ModelSplits], parts: Mapping[str, list[list[int]]],
                     n_devices: int, pool: Sequence[DeviceRate] | None = None
                     ) -> tuple[float, list[tuple[str, int]]]:
    """`_score` of `parts`, and the pieces (model, index) that make it: the longest, or those on the device that
    finishes last."""
    pieces = sorted(((models[m].length(b), m, k) for m in parts for k, b in enumerate(parts[m])),
                    key=lambda p: (-p[0], p[1], p[2]))
    held: list[list[tuple[float, str, int]]] = [[] for _ in range(n_devices)]
    if pool is None:
        devices: list[tuple[float, int]] = [(0.0, d) for d in range(n_devices)]
        for piece in pieces:
            end, device = heapq.heappop(devices)
            held[device].append(piece)
            heapq.heappush(devices, (end + piece[0], device))
        end, last = max(devices)
    else:
        free = [0.0] * n_devices
        for piece in pieces:
            held[assign(free, piece[0], models[piece[1]].mem(parts[piece[1]][piece[2]]), pool)].append(piece)
        end, last = max((f, d) for d, f in enumerate(free))
    critical = [(m, k) for _, m, k in sorted(held[last], reverse=True)]
    longest = pieces[0][0]
    if (1 + PIECE_NOISE) * longest > end:  # the longest piece is what to cut, wherever it runs
        return (1 + PIECE_NOISE) * longest, [(pieces[0][1], pieces[0][2]), *critical]
    return end, critical


def _refine(models: Mapping[str, _ModelSplits], can_split: Mapping[str, bool], parts: dict[str, list[list[int]]],
            n_devices: int, budget: int, pool: Sequence[DeviceRate] | None = None) -> dict[str, list[list[int]]]:
    """Halve a piece that makes the `_score` (the longest, or one on the device that finishes last) while that
    lowers it.

    Longest-first scheduling can stack a few large pieces on one device (a packing it did not choose); cutting one
    of them gives it smaller pieces to balance with.
    """
    makespan, critical = _critical_pieces(models, parts, n_devices, pool)
    for _ in range(min(_REFINE_STEPS, budget - sum(len(p) for p in parts.values()))):
        for model, index in critical[:_REFINE_TRIALS]:
            piece = parts[model][index]
            if not can_split[model] or len(piece) < 2:
                continue
            halves = _ModelSplits([models[model].items[i] for i in piece]).bins(2)
            trial = dict(parts)
            trial[model] = sorted([b for k, b in enumerate(parts[model]) if k != index]
                                  + [[piece[i] for i in half] for half in halves], key=lambda b: b[0])
            trial_makespan, trial_critical = _critical_pieces(models, trial, n_devices, pool)
            if trial_makespan < makespan * (1 - 1e-6):
                parts, makespan, critical = trial, trial_makespan, trial_critical
                break
        else:
            break
    return parts


def group_jobs(items_by_model: Mapping[str, Sequence[WorkItem]], n_devices: int,
               splittable: Callable[[str], bool] | None = None, *, jobs_per_device: float = 1.0,
               tail_reserve: float = TAIL_RESERVE, spare_reserve: float = SPARE_RESERVE,
               pool: Sequence[DeviceRate] | None = None) -> list[WorkItem]:
    """Group each model's (model, task) items into as few jobs as keep the predicted makespan short
    (`group_and_score` without the score)."""
    return group_and_score(items_by_model, n_devices, splittable, jobs_per_device=jobs_per_device,
                           tail_reserve=tail_reserve, spare_reserve=spare_reserve, pool=pool)[0]


def group_and_score(items_by_model: Mapping[str, Sequence[WorkItem]], n_devices: int,
                    splittable: Callable[[str], bool] | None = None, *, jobs_per_device: float = 1.0,
                    tail_reserve: float = TAIL_RESERVE, spare_reserve: float = SPARE_RESERVE,
                    pool: Sequence[DeviceRate] | None = None) -> tuple[list[WorkItem], float]:
    """Group each model's (model, task) items into as few jobs as keep the predicted makespan short.

    See the module docstring for the rule.

    Args:
        items_by_model: One item per (model, task), each with the model's load time, by model in profile order.
        n_devices: Devices the run will use.
        splittable: Whether a model may be split into several jobs; every model may by default.
        jobs_per_device: Jobs each device runs at once on average (`placement.jobs_per_device` where small models
            share GPUs): the pieces are packed for `round(n_devices * jobs_per_device)` slots, which a shared device
            runs side by side, each slower. Pieces finer than whole GPUs would need keep the shared tail short.
        tail_reserve: Loads per device (not per slot) left out of the load budget for the run's tail moves.
        spare_reserve: Loads per device left for tail moves too unless cutting them shortens the expected makespan
            by more than `SPARE_GAIN`; `tail_reserve` is kept whatever this says.
        pool: In a pool of unlike devices, each device's speed and memory (`speeds.pool_rates`): the groupings are
            then compared with each piece on the device that would finish it first among those that hold it, so
            the one that gives the slow cards pieces they finish in time wins, and no model is cut for cards that
            cannot hold it.

    Returns:
        The jobs, models in the mapping's order and each model's pieces in task order (of their first tasks);
        within a job, its tasks longest first; and the mean makespan they reach under prediction error.
    """
    if n_devices < 1:
        raise ValueError(f"need at least one device, got {n_devices}")
    if jobs_per_device < 1:
        raise ValueError(f"a device runs at least one job at a time, got {jobs_per_device}")
    devices, n_devices = n_devices, max(n_devices, round(n_devices * jobs_per_device))  # the second counts slots
    lanes = pool if pool is not None and is_mixed(pool) and len(pool) == n_devices else None
    models = {m: _ModelSplits(items) for m, items in items_by_model.items() if items}
    if not models:
        return [], 0.0
    can_split = {m: (splittable(m) if splittable else True) and len(s.items) > 1 for m, s in models.items()}

    def quick_score(parts: Mapping[str, list[list[int]]]) -> float:
        return _score([s.length(b) for m, s in models.items() for b in parts[m]], n_devices, lanes,
                      [s.mem(b) for m, s in models.items() for b in parts[m]])

    whole = {m: s.bins(1) for m, s in models.items()}
    longest = max(s.load_s + s.work_s for s in models.values())
    share = sum(s.load_s + s.work_s for s in models.values()) / n_devices
    # No split can beat the longest single task's piece: the makespan is at least that long anyway.
    unavoidable = max(s.load_s + max(i.predicted_runtime_s for i in s.items) for s in models.values())
    budget = grouping_budget(len(models), devices, tail_reserve, n_slots=n_devices)
    spare_budget = grouping_budget(len(models), devices, max(tail_reserve, spare_reserve), n_slots=n_devices)
    candidates = [whole]
    if any(can_split.values()):
        floor = max(_CAP_FLOOR * share, unavoidable)
        cap = longest * _CAP_STEP
        while cap > floor:
            candidates.append({m: s.bins(s.pieces_under(cap) if can_split[m] else 1) for m, s in models.items()})
            cap *= _CAP_STEP
        candidates += _packed_options(models, can_split, n_devices, max(share, unavoidable), quick_score(whole))
        # Refining is the costly step: only the most promising few get it.
        below_budget = (c for c in candidates[1:] if sum(map(len, c.values())) < budget)
        promising = sorted(below_budget, key=quick_score)[:_REFINED]
        candidates += [_refine(models, can_split, c, n_devices, b, lanes) for c in promising
                       for b in sorted({budget, spare_budget})]
    within = [c for c in candidates if sum(len(p) for p in c.values()) <= budget]
    # Simulating noise is the costly part: only the best few by the quick score, and one per model, get it.
    finalists = [whole, *sorted(within[1:], key=quick_score)[:_FINALISTS]]
    finalists += [c for c in sorted((c for c in within[1:] if sum(map(len, c.values())) <= spare_budget),
                                    key=quick_score)[:_REFINED] if c not in finalists]
    noisy = _noisy_runtimes(models)
    piece_sums: dict[tuple[str, tuple[int, ...]], list[float]] = {}
    options = [(_expected_makespan(models, c, n_devices, noisy, piece_sums, lanes), sum(len(p) for p in c.values()),
                c) for c in finalists]
    best = min(o[0] for o in options)
    # Loads past the spare budget are the run's tail moves: spend them on cuts only for a clear gain.
    spare = [o for o in options if o[1] <= spare_budget]
    if spare and min(o[0] for o in spare) <= best * (1 + SPARE_GAIN):
        options, best = spare, min(o[0] for o in spare)
    # Fewest pieces among the near-best; on equal counts one per model, then the better quick score, wins.
    expected, _, chosen = min((o for o in options if o[0] <= best * (1 + MIN_GAIN)), key=lambda o: o[1])
    # Inside a job the memory-heavy tasks run first, then the longest (`run_order`): what is left unstarted at the
    # end, for an idle device to take (`planning.tails`), is short (longest first against profile order, simulated:
    # p95 / LB 1.27 -> 1.24 on standard 8xH100-80GB, 1.34 -> 1.31 on extended).
    return [merge_items(run_order([s.items[i] for i in b])) for m, s in models.items() for b in chosen[m]], expected
