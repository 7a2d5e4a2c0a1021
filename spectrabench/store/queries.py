"""Reads from the store, for reports and for the driver's resume decisions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from spectrabench.errors import UserError, did_you_mean
from spectrabench.store.db import connect


class RunInfo(NamedTuple):
    """One row of the runs table."""

    run_id: str
    profile: str
    mode: str
    limit: int | None
    devices: str
    status: str
    started_at: Any
    finished_at: Any
    summary: dict[str, Any]


class ScoreEntry(NamedTuple):
    """A top-level score of one (model, task) pair as a run sees it (possibly measured by an earlier run)."""

    model: str
    task: str
    metric: str
    filter: str
    value: float
    stderr: float | None
    n_samples: int | None
    measured_in: str


class FailureEntry(NamedTuple):
    """A job of the run that failed, with its cause."""

    model: str
    tasks: list[str]
    error_kind: str
    error: str


def known_run_ids(db: Path) -> list[str]:
    """Every run id in the store, oldest first."""
    with connect(db, read_only=True) as con:
        return [row[0] for row in con.execute("SELECT run_id FROM runs ORDER BY started_at").fetchall()]


def resolve_run_id(db: Path, run: str) -> str:
    """Turn `latest` or a run id (or a unique prefix of one) into a run id."""
    ids = known_run_ids(db)
    if not ids:
        raise UserError(f"the store {db} holds no runs", hint="run `spectrabench run --profile smoke` first")
    if run == "latest":
        return ids[-1]
    matches = [i for i in ids if i.startswith(run)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UserError(f"run '{run}' is ambiguous ({len(matches)} runs start with it)",
                        hint="give more characters of the run id")
    raise UserError(f"no run '{run}' in {db}", hint=did_you_mean(run, ids[-10:], "recent runs"))


def run_info(db: Path, run_id: str) -> RunInfo:
    """The runs row of `run_id`."""
    with connect(db, read_only=True) as con:
        row = con.execute('SELECT run_id, profile, mode, "limit", devices, status, started_at, finished_at, '
                          "summary FROM runs WHERE run_id = ?", [run_id]).fetchone()
    if row is None:
        raise UserError(f"no run '{run_id}' in {db}")
    run_id_, profile, mode, limit, devices, status, started_at, finished_at, summary = row
    return RunInfo(run_id_, profile, mode, limit, devices, status, started_at, finished_at,
                   json.loads(summary) if summary else {})


def run_scores(db: Path, run_id: str) -> tuple[list[tuple[str, str]], list[ScoreEntry]]:
    """The run's (model, task) pairs in order, and the top-level scores behind each.

    A pair the run reused from an earlier run shows that run's measurement, since both share the task key.
    """
    with connect(db, read_only=True) as con:
        pairs = con.execute("SELECT model, task FROM run_tasks WHERE run_id = ? ORDER BY ordinal",
                            [run_id]).fetchall()
        rows = con.execute(
            """
            WITH latest AS (
                SELECT tr.task_key, tr.run_id, tr.harness_task,
                       row_number() OVER (PARTITION BY tr.task_key ORDER BY tr.finished_at DESC) AS rn
                FROM task_results tr JOIN run_tasks rt ON rt.task_key = tr.task_key AND rt.run_id = ?
            )
            SELECT s.model, s.task, s.metric, s.filter, s.value, s.stderr, s.n_samples, s.run_id
            FROM latest l JOIN scores s ON s.task_key = l.task_key AND s.run_id = l.run_id
            WHERE l.rn = 1 AND s.subtask = l.harness_task
            ORDER BY s.model, s.task, s.metric, s.filter
            """, [run_id]).fetchall()
    return [(m, t) for m, t in pairs], [ScoreEntry(*row) for row in rows]


def run_failures(db: Path, run_id: str) -> list[FailureEntry]:
    """Failed jobs of the run with their recorded causes."""
    with connect(db, read_only=True) as con:
        rows = con.execute("SELECT model, tasks, error_kind, error FROM jobs WHERE run_id = ? AND status = 'failed' "
                           "ORDER BY model", [run_id]).fetchall()
    return [FailureEntry(model, json.loads(tasks), kind or "", error or "") for model, tasks, kind, error in rows]


def table_counts(db: Path) -> dict[str, int]:
    """Row counts of the main tables (for status lines and checks)."""
    names = ("runs", "jobs", "attempts", "task_results", "scores", "samples", "resources", "predictors")
    with connect(db, read_only=True) as con:
        return {n: int(con.execute(f"SELECT count(*) FROM {n}").fetchone()[0]) for n in names}
