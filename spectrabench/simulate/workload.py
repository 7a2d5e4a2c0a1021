"""Simulated workloads: a profile's (model, task) pairs as work items with predictions, and their hidden truth.

Each item carries what a policy may see (`WorkItem`: predicted runtime, load and memory), and `SimWorkload.jobs`
holds what only the simulator may use (`SimJob`: the truth model's inputs). Predictions are the truth's
noiseless expectation on a reference device, bent by prediction errors that look like a real predictor's: a
part shared by every job of the same model, a part shared by every job of the same task, and a part of the
pair's own (each a third of the variance), so a policy that learns from finished jobs has something to learn.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from statistics import NormalDist
from typing import NamedTuple

from spectrabench.catalog import task_facts
from spectrabench.errors import UserError
from spectrabench.hardware import DeviceSpec
from spectrabench.planning.pieces import merge_items
from spectrabench.planning.schedule import WorkItem
from spectrabench.profiles import ModelSpec, Profile, TaskSpec
from spectrabench.simulate.truth import SimJob, SimTask, expected_cost, true_vocab
from spectrabench.taskparts import parse_part, part_share

_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "auto": 2}
_KEY_SEPARATOR = "/"
_TASK_JOINER = "+"


class SimWorkload(NamedTuple):
    """Work items in profile order, the truth behind each (by item key), the device predictions are for, and in a
    pool of unlike devices each kind's predicted speed relative to it (`planning.speeds`; empty otherwise)."""

    items: list[WorkItem]
    jobs: dict[str, SimJob]
    reference: DeviceSpec
    speeds: dict[str, float] | None = None


class _Errors:
    """Seeded log-space prediction errors, split into model, task and pair parts of equal variance."""

    def __init__(self, seed: int, what: str, sigma: float) -> None:
        self.seed, self.what, self.part = seed, what, sigma / math.sqrt(3)

    def _draw(self, *names: str) -> float:
        # A generator per name keeps one model's error the same whatever else the profile contains.
        return random.Random(_KEY_SEPARATOR.join((str(self.seed), self.what, *names))).gauss(0.0, self.part)

    def factor(self, model: str, task: str | None = None) -> float:
        """exp(model part [+ task part + pair part]): for a load only the model part applies."""
        log = self._draw("model", model)
        if task is not None:
            log += self._draw("task", task) + self._draw("pair", model, task)
        return math.exp(log)


def sim_task(task: TaskSpec, limit: int | None) -> SimTask:
    """The truth's view of one profile task, from the catalog's facts.

    Args:
        task: The profile task (its shots are used).
        limit: Documents per task, or None for all.

    Raises:
        UserError: The catalog has no facts for the task, so its size is unknown.
    """
    facts = task_facts(task.harness_name)
    if facts is None:
        raise UserError(f"task '{task.name}' ({task.harness_name}) is not in the catalog, so it cannot be simulated",
                        hint="simulate profiles of catalog tasks (e.g. standard or extended)")
    # lm-eval applies --limit to every leaf subtask: a group of k subtasks scores up to k x limit documents.
    documents = min(facts.documents, limit * facts.subtasks) if limit is not None else facts.documents
    return SimTask(name=facts.lm_eval_task, request_type=facts.request_type, documents=documents,
                   requests=round(documents * facts.choices_per_doc), prompt_tokens=facts.prompt_tokens(task.shots),
                   max_gen_toks=facts.max_gen_toks, subtasks=facts.subtasks, one_pass=facts.letter_choices)


def item_key(model: str, tasks: Sequence[str]) -> str:
    """The key of the item that runs `tasks` of `model`, e.g. "qwen3-8b/mmlu" or "qwen3-8b/mmlu+gsm8k"."""
    return f"{model}{_KEY_SEPARATOR}{_TASK_JOINER.join(tasks)}"


def build_workload(profile: Profile, reference: DeviceSpec, *, seed: int = 0, runtime_noise: float = 0.3,
                   memory_noise: float = 0.1, memory_scale: float = 1.0, batch_size: int | None = None,
                   limit: int | None = None, fit_margin: float | None = None,
                   memory_quantile: float | None = 0.95, pool: Sequence[DeviceSpec] = ()) -> SimWorkload:
    """One item per (model, task) of `profile`, with predictions for `reference` and the truth behind them.

    Args:
        profile: Models x tasks; every task must be in the catalog.
        reference: The device the predictions are made for (a policy sees one prediction per item).
        seed: Seeds the prediction errors; the same seed gives the same predictions.
        runtime_noise: Lognormal sigma of the runtime and load prediction errors (0 = perfect predictions).
        memory_noise: Lognormal sigma of the peak-memory prediction error, drawn separately.
        memory_scale: Multiplies every predicted peak: below 1 the predictor underestimates memory (OOMs follow).
        batch_size: Batch size of every job; the profile's by default.
        limit: Documents per task; the profile's by default (None = all).
        memory_quantile: The predicted peaks are this quantile of the memory prediction (None: its median).
        fit_margin: When given, size batches as the planner does: halve each job's batch until its *predicted*
            peak leaves this share of the reference device's memory free (or the batch is 1).
        pool: With `fit_margin`, a pool of unlike devices: each job is sized, as the planner does, for the
            smallest kind that holds it, so it may run on any kind at least that big; predictions stay for
            `reference`, and the workload carries each kind's predicted speed.

    Returns:
        Items in profile order (models outer, tasks inner), keyed `model/task`.
    """
    batch = batch_size if batch_size is not None else profile.batch_size
    docs = limit if limit is not None else profile.limit
    if batch < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch}")
    runtime_errors = _Errors(seed, "runtime", runtime_noise)
    load_errors = _Errors(seed, "load", runtime_noise)
    memory_errors = _Errors(seed, "memory", memory_noise)
    # The predictor's memory figure is a quantile (`prediction.learned`): its error's upper tail is priced in.
    quantile = math.exp(NormalDist().inv_cdf(memory_quantile) * memory_noise) if memory_quantile else 1.0
    tasks = [(task, sim_task(task, docs)) for task in profile.tasks]
    kinds = sorted({d.name: d for d in pool}.values(), key=lambda d: d.total_mem_gb) if len(
        {d.name for d in pool}) > 1 else []
    items: list[WorkItem] = []
    jobs: dict[str, SimJob] = {}
    for model in profile.models:
        load = None
        for task, truth_task in tasks:
            key = item_key(model.name, [task.name])
            mem_error = memory_errors.factor(model.name, task.name) * memory_scale
            job = sim_job_for(model, (truth_task,), batch, key)
            if fit_margin is not None:
                job = _sized(job, reference, kinds, mem_error * quantile, fit_margin)
            expected = expected_cost(job, reference)
            if load is None:  # one load prediction per model: the same weights whatever the task
                load = expected.load_s * load_errors.factor(model.name)
            runtime = expected.runtime_s * runtime_errors.factor(model.name, task.name)
            items.append(WorkItem(
                key=key, model=model.name, tasks=(task.name,), params_b=model.params_b, gpus=job.gpus,
                predicted_runtime_s=runtime, predicted_load_s=load, task_runtimes_s=(runtime,),
                subtasks=truth_task.subtasks,
                # A sharded item's prediction is per device, times its devices (`placement.per_device_mem_gb`).
                predicted_mem_gb=predicted_peak_gb(job, expected.peak_mem_gb, mem_error * quantile) * job.gpus))
            jobs[key] = job
    return SimWorkload(items, jobs, reference, predicted_speeds(list(jobs.values()), reference, kinds) or None)


def predicted_speeds(jobs: Sequence[SimJob], reference: DeviceSpec, kinds: Sequence[DeviceSpec]) -> dict[str, float]:
    """Each kind's speed relative to `reference` as a predictor would put it: the jobs' total expected runtime on
    the reference over their total on the kind (empty for fewer than two kinds)."""
    if len(kinds) < 2:
        return {}
    on_reference = sum(expected_cost(job._replace(gpus=1), reference).runtime_s for job in jobs)
    return {kind.name: on_reference / max(1e-9, sum(expected_cost(job._replace(gpus=1), kind).runtime_s
                                                    for job in jobs)) for kind in kinds}


def _sized(job: SimJob, reference: DeviceSpec, kinds: Sequence[DeviceSpec], error: float,
           fit_margin: float) -> SimJob:
    """`job` sized for the smallest of `kinds` that holds it alone on one device at a batch that fits with the
    margin (as `execution.runplan` sizes jobs in a mixed pool), else for the largest kind; for `reference` when
    there are no kinds."""
    for kind in kinds[:-1]:
        fitted = _fitted(job, kind, error, (1 - fit_margin) * kind.total_mem_gb)
        if fitted.gpus == 1 and predicted_peak_gb(fitted, expected_cost(fitted, kind).peak_mem_gb, error) <= (
                1 - fit_margin) * kind.total_mem_gb:
            return fitted
    target = kinds[-1] if kinds else reference
    return _fitted(job, target, error, (1 - fit_margin) * target.total_mem_gb)


_MAX_SHARDS = 8


def predicted_peak_gb(job: SimJob, expected_gb: float, error: float) -> float:
    """What the predictor says one device of `job` needs when the truth's expectation is `expected_gb`: its
    weights exactly (parameters x bytes, which the predictor knows), everything else off by `error`."""
    weights = job.params_b * 1e9 * job.dtype_bytes / max(1, job.gpus) / 1024**3
    return weights + max(0.0, expected_gb - weights) * error


def _fitted(job: SimJob, reference: DeviceSpec, error: float, cap_gb: float) -> SimJob:
    """`job` as the planner sizes it (`planning.placement.shards_needed`): at the largest batch (halving the
    profile's) whose predicted peak fits `cap_gb` on one device; at batch 1 alone on one device when that fits the
    device at all (the margin guards neighbours, and it has none); else split over the fewest devices that hold it.
    """
    def predicted(candidate: SimJob) -> float:
        return predicted_peak_gb(candidate, expected_cost(candidate, reference).peak_mem_gb, error)

    for gpus in range(1, _MAX_SHARDS + 1):
        fitted = job._replace(gpus=gpus)
        while fitted.batch_size > 1 and predicted(fitted) > cap_gb:
            fitted = fitted._replace(batch_size=fitted.batch_size // 2)
        if predicted(fitted) <= max(cap_gb if fitted.batch_size > 1 else 0.0, reference.total_mem_gb):
            return fitted
    return job._replace(batch_size=1)


def sim_job_for(model: ModelSpec, tasks: tuple[SimTask, ...], batch: int, key: str | None = None) -> SimJob:
    """The truth's view of one worker running `tasks` of `model` at `batch`."""
    key = key or item_key(model.name, [task.name for task in tasks])
    return SimJob(key=key, model=model.name, params_b=model.params_b, dtype_bytes=_DTYPE_BYTES[model.dtype],
                  vocab=true_vocab(model.pretrained or model.name), tasks=tasks, batch_size=batch)


def group_items(workload: SimWorkload, groups: Iterable[Sequence[str]]) -> SimWorkload:
    """Merge items of one model into single items: one worker, one load, the tasks one after another.

    A merged item's predicted runtime is the sum of its parts', its load and memory the largest of theirs; its
    truth runs every task at the part's own batch, as the real worker does. Items in no group stay as they are, and the
    result keeps the workload's order (a group takes the place of its first member).

    Args:
        workload: From `build_workload` (or an earlier grouping).
        groups: Lists of item keys; each list must name items of one model, and no key may appear twice.

    Raises:
        ValueError: A key is unknown or repeated, or a group mixes models.
    """
    by_key = {item.key: item for item in workload.items}
    first_of: dict[str, list[WorkItem]] = {}
    grouped: set[str] = set()
    for group in groups:
        missing = [key for key in group if key not in by_key]
        if missing:
            raise ValueError(f"no item '{missing[0]}' in the workload")
        members = [by_key[key] for key in group]
        if not members:
            continue
        if len({m.model for m in members}) > 1:
            raise ValueError(f"a group mixes models: {sorted({m.model for m in members})}")
        for member in members:
            if member.key in grouped:
                raise ValueError(f"item '{member.key}' is in two groups")
            grouped.add(member.key)
        first_of[members[0].key] = members
    items: list[WorkItem] = []
    jobs = dict(workload.jobs)
    for item in workload.items:
        if item.key in first_of:
            merged, job = _merge(first_of[item.key], workload.jobs)
            for member in first_of[item.key]:
                jobs.pop(member.key)
            items.append(merged)
            jobs[merged.key] = job
        elif item.key not in grouped:
            items.append(item)
    return SimWorkload(items, jobs, workload.reference, workload.speeds)


def part_task(task: SimTask, share: float) -> SimTask:
    """The truth's view of a part of group `task` holding `share` of its leaves: that share of its documents and
    requests. Name and leaf count stay the group's: the noise of a part is its group's (same stream), and a worker
    running a part still builds the whole group (`harness.worker`), so it pays every leaf's setup."""
    return task._replace(documents=max(1, round(task.documents * share)),
                         requests=max(1, round(task.requests * share)))


def with_parts(workload: SimWorkload, pieces: Iterable[WorkItem]) -> SimWorkload:
    """`workload` with each group that `pieces` run in parts (`taskparts`) replaced by those parts: the truth of
    each is `part_task`, its prediction its share of the group's (as `planning.subtasks` predicted it).

    Raises:
        KeyError: A piece names a part of a (model, task) the workload does not have.
    """
    by_key = {item.key: item for item in workload.items}
    jobs = dict(workload.jobs)
    added: list[WorkItem] = []
    cut: set[str] = set()
    for piece in pieces:
        for name in piece.tasks:
            part = parse_part(name)
            key = item_key(piece.model, [name])
            if part is None or key in jobs:
                continue
            whole = by_key[item_key(piece.model, [part.task])]
            share = part_share(whole.subtasks, part.position, part.parts)
            runtime = whole.predicted_runtime_s * share
            added.append(whole.model_copy(update={"key": key, "tasks": (name,), "predicted_runtime_s": runtime,
                                                  "task_runtimes_s": (runtime,), "subtasks": 1}))
            truth = jobs[whole.key]
            jobs[key] = truth._replace(key=key, tasks=(part_task(truth.tasks[0], share),))
            cut.add(whole.key)
    for key in cut:
        jobs.pop(key)
    return SimWorkload([i for i in workload.items if i.key not in cut] + added, jobs, workload.reference,
                       workload.speeds)


def group_by_model(workload: SimWorkload) -> SimWorkload:
    """Every model's items merged into one item (one load per model), the coarsest grouping."""
    models: dict[str, list[str]] = {}
    for item in workload.items:
        models.setdefault(item.model, []).append(item.key)
    return group_items(workload, models.values())


def _merge(members: list[WorkItem], jobs: dict[str, SimJob]) -> tuple[WorkItem, SimJob]:
    merged = merge_items(members)  # what the real planner makes of them, under the simulator's key
    key = item_key(merged.model, merged.tasks)
    item = merged.model_copy(update={"key": key})
    truths = [jobs[m.key] for m in members]
    # One worker, each task at the batch chosen for it alone (the real worker sets the batch per task).
    job = truths[0]._replace(key=key, tasks=tuple(t for j in truths for t in j.tasks),
                             batch_size=max(j.batch_size for j in truths),
                             task_batches=tuple(j.batch_of(i) for j in truths for i in range(len(j.tasks))),
                             gpus=max(j.gpus for j in truths))
    return item, job
