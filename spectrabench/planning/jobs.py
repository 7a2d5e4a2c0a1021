"""Jobs: what one worker subprocess does (one model, a list of tasks), and the keys that make resume exact."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from spectrabench.profiles import ModelSpec, Profile, TaskSpec
from spectrabench.taskparts import part_name, whole_name

DEFAULT_SEED = 0


class TaskRef(BaseModel):
    """One (model, task) measurement inside a job, with the key that identifies it across runs."""

    model_config = ConfigDict(frozen=True)

    name: str
    harness_name: str
    shots: int
    allow_code_execution: bool
    version: str
    task_key: str
    # The batch this task runs at inside its job, capped by the attempt's batch; None: the job's batch. A grouped
    # job keeps each member's own batch (chosen to fit for that task alone) instead of its smallest member's.
    batch_size: int | None = None
    # A part of an lm-eval group (`taskparts`): (position, parts), and the key of the whole group's measurement,
    # which is complete once every part is and the group's scores are aggregated from theirs.
    part: tuple[int, int] | None = None
    whole_key: str | None = None

    def batch_under(self, cap: int) -> int:
        """The batch this task runs at in an attempt whose batch (cap) is `cap`."""
        return max(1, min(self.batch_size or cap, cap))

    @property
    def profile_task(self) -> str:
        """The profile's task this measures (a part's group)."""
        return whole_name(self.name) if self.part is not None else self.name

    def sibling_keys(self) -> list[str]:
        """The task keys of every part of this part's group (its own included), in order; `[task_key]` for a
        whole task."""
        if self.part is None or self.whole_key is None:
            return [self.task_key]
        return [part_key(self.whole_key, index, self.part[1]) for index in range(1, self.part[1] + 1)]


class Job(BaseModel):
    """One worker subprocess: load `model` once, evaluate `tasks` one after another."""

    model_config = ConfigDict(frozen=True)

    job_key: str
    model: ModelSpec
    tasks: tuple[TaskRef, ...]
    limit: int | None
    batch_size: int
    gpus: int = 1  # GPUs its model is split over (lm-eval's parallelize=True) when one cannot hold it

    @property
    def task_names(self) -> list[str]:
        """The profile names of the job's tasks, in order."""
        return [t.name for t in self.tasks]


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def measurement_key(model: ModelSpec, task: TaskSpec, limit: int | None, task_version: str,
                    lm_eval_version: str, seed: int = DEFAULT_SEED, sample_seed: int | None = None) -> str:
    """Hash everything that defines a score: model identity and args, task and version, limit, shots, seed,
    and which documents (`sample_seed`: a random nested sample under that seed; None: lm-eval's first `limit`).

    Batch size, placement and order are deliberately absent: they must not change a score, so a result
    measured under one schedule is reused under any other.
    """
    payload: dict[str, Any] = {
        "model": [model.source, model.revision, model.dtype, model.trust_remote_code, model.model_args],
        "task": [task.harness_name, task_version, task.shots],
        "limit": limit, "seed": seed, "lm_eval": lm_eval_version,
    }
    if sample_seed is not None and limit is not None:  # first-N keys stay as they always were
        payload["sampling"] = ["random", sample_seed]
    return _digest(payload)


def part_key(whole_key: str, index: int, count: int) -> str:
    """The task key of part `index` of `count` of the group measured under `whole_key`."""
    return _digest({"whole": whole_key, "part": [index, count]})


def part_ref(ref: TaskRef, index: int, count: int) -> TaskRef:
    """The reference to part `index` of `count` of the group `ref` measures whole (`taskparts`)."""
    return ref.model_copy(update={"name": part_name(ref.name, index, count), "part": (index, count),
                                  "whole_key": ref.task_key, "task_key": part_key(ref.task_key, index, count)})


def build_jobs(profile: Profile, *, limit: int | None, batch_size: int, task_versions: dict[str, str],
               lm_eval_version: str, group_by_model: bool = False, sample_seed: int | None = None) -> list[Job]:
    """Expand a profile into jobs, in profile order (models outer, tasks inner).

    Args:
        profile: The validated profile.
        limit: Documents per task (None for all).
        batch_size: The explicit batch size every worker uses.
        task_versions: Content version of each task by profile name (see `harness.taskids`).
        lm_eval_version: Installed lm-eval version; part of every key.
        group_by_model: One job per model with all its tasks (one model load), instead of one per pair.
        sample_seed: Score a random nested sample of `limit` documents under this seed (None: the first ones).
    """
    jobs: list[Job] = []
    for model in profile.models:
        refs = [
            TaskRef(name=t.name, harness_name=t.harness_name, shots=t.shots,
                    allow_code_execution=t.allow_code_execution, version=task_versions[t.name],
                    task_key=measurement_key(model, t, limit, task_versions[t.name], lm_eval_version,
                                             sample_seed=sample_seed))
            for t in profile.tasks
        ]
        groups = [refs] if group_by_model else [[r] for r in refs]
        jobs.extend(job_of(model, group, limit, batch_size) for group in groups)
    return jobs


def job_of(model: ModelSpec, tasks: Sequence[TaskRef], limit: int | None, batch_size: int) -> Job:
    """The job that runs `tasks` of `model` in one worker, keyed by its tasks' keys and its batch size."""
    payload: dict[str, Any] = {"tasks": [r.task_key for r in tasks], "batch": batch_size}
    if any(r.batch_size not in (None, batch_size) for r in tasks):  # keys of uniform jobs stay as they were
        payload["task_batches"] = [r.batch_size for r in tasks]
    key = _digest(payload)
    return Job(job_key=key, model=model, tasks=tuple(tasks), limit=limit, batch_size=batch_size)
