"""Settling groups that ran in parts (`taskparts`): the group's scores once every part has run, and its pair's
status in the run.

Each part is stored as a measurement of its own (its leaves' scores, under the group's task name). When a job with
parts ends, every group it ran parts of is looked at: if each part has a stored result (from this run or, on
resume, an earlier one), the group's scores are aggregated from the leaves' as lm-eval does
(`harness.groupscores`) and stored as the measurement of the whole group, so reports, resume and later runs see
the group as if it had run whole. Until then its pair is "partial" in this run, or "failed" when a part failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from pathlib import Path

from spectrabench.harness.groupscores import GROUPS_KEY, aggregate_groups, parse_structure
from spectrabench.harness.results import read_json_file
from spectrabench.harness.workerspec import write_json_atomic
from spectrabench.planning.jobs import Job, TaskRef
from spectrabench.store.history import History


def settle_groups(history: History, results_root: Path, run_id: str, job: Job, places: Mapping[str, int], *,
                  unfinished: Set[str] = frozenset()) -> dict[str, str]:
    """Aggregate and record every group `job` ran parts of.

    Args:
        history: The store.
        results_root: Where runs keep their files (the aggregated group's results go under the run's folder).
        run_id: This run.
        job: The job that just ended (completed, reused or failed).
        places: Each task's (model, task) position in the profile, by the job's task names.
        unfinished: Task keys of the job's parts that did not finish.

    Returns:
        The status recorded for each group (by its whole key): complete, reused, partial or failed.
    """
    groups: dict[str, list[TaskRef]] = {}
    for ref in job.tasks:
        if ref.part is not None and ref.whole_key is not None:
            groups.setdefault(ref.whole_key, []).append(ref)
    statuses = {}
    for whole_key, refs in groups.items():
        status = _aggregate(history, results_root, run_id, job, refs[0])
        if status is None:
            status = "failed" if any(ref.task_key in unfinished for ref in refs) else "partial"
        history.record_group_task(run_id, refs[0], job.job_key, job.model.name, status, places[refs[0].name],
                                  keep_existing=status == "partial")
        statuses[whole_key] = status
    return statuses


def _aggregate(history: History, results_root: Path, run_id: str, job: Job, ref: TaskRef) -> str | None:
    """Store the group's scores when every part has a result: "complete"; "reused" when none of them ran in this
    run and the group's scores are stored already; None while a part is missing (or its results file is gone)."""
    whole_key = ref.whole_key or ref.task_key
    keys = ref.sibling_keys()
    found = history.part_results(keys)
    stored_whole = bool(history.completed_task_keys([whole_key]))
    if len(found) < len(keys):
        return "reused" if stored_whole else None
    if stored_whole and all(r.run_id != run_id for r in found.values()):
        return "reused"  # nothing new since the group's scores were stored
    results = read_json_file(Path(found[keys[0]].results_path)) or {}
    try:
        structure = parse_structure(results.get(GROUPS_KEY))
    except ValueError:
        return "reused" if stored_whole else None
    rows = aggregate_groups(structure, [row for key in keys for row in found[key].scores])
    path = results_root / run_id / f"{job.model.name}--{whole_key}.group.json"
    write_json_atomic(path, {
        "group": ref.profile_task, "model": job.model.name,
        "results": {name: {f"{r.metric},{r.filter}": r.value for r in rows if r.subtask == name} for name in structure},
        "parts": [{"task_key": key, "run_id": found[key].run_id, "results": found[key].results_path} for key in keys],
        GROUPS_KEY: results[GROUPS_KEY],
    })
    history.record_group(run_id, job.model.name, ref, rows, limit=job.limit,
                         runtime_s=sum(r.runtime_s or 0.0 for r in found.values()),
                         n_samples=sum(r.n_samples or 0 for r in found.values()), results_path=path)
    return "complete"
