"""Reads behind the full report: attempts on a timeline, predictions next to what happened, resource samples,
and the export of a run's rows to Parquet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from spectrabench.store.compares import has_compares_table
from spectrabench.store.db import connect, has_column

# The store tables a run writes rows to, exported one Parquet file each (predictors belong to no run).
RUN_TABLES = ("runs", "jobs", "attempts", "run_tasks", "task_results", "scores", "samples", "resources")


class AttemptRow(NamedTuple):
    """One try at a job, with its times in seconds since the run started."""

    job_key: str
    model: str
    tasks: list[str]
    attempt: int
    batch_size: int | None
    devices: list[str]
    start_s: float | None
    end_s: float | None
    status: str
    runtime_s: float | None
    load_s: float | None
    peak_mem_gb: float | None
    mean_util_pct: float | None
    error_kind: str | None
    error: str | None
    # Cores other work kept busy while it ran (`store.machineload`); None where not measured (Ray, older stores).
    other_cores: float | None = None


class JobOutcome(NamedTuple):
    """A job's prediction (and the stage that made it) next to what its attempts measured.

    `actual_runtime_s` is the final attempt's model load plus the evaluation time of every task the job finished in
    this run: the quantity the predictor estimates (worker start-up and imports are not part of it).
    `actual_mem_gb` is the peak of the final attempt.
    """

    job_key: str
    model: str
    tasks: list[str]
    status: str
    batch_size: int | None
    predicted_runtime_s: float | None
    predicted_mem_gb: float | None
    stage: str | None
    actual_runtime_s: float | None
    actual_mem_gb: float | None
    attempts: int
    error_kind: str | None
    error: str | None


class ResourceSample(NamedTuple):
    """One monitor reading of one device during one attempt, `t_s` seconds after the run started."""

    t_s: float
    device: str
    job_key: str
    attempt: int
    mem_gb: float | None
    util_pct: float | None


def split_devices(devices: str | None) -> list[str]:
    """`cuda:0,1` or `cuda:0,cuda:1` -> ["cuda:0", "cuda:1"]; `cpu:0` -> ["cpu:0"]."""
    names: list[str] = []
    kind = ""
    for part in (devices or "").split(","):
        part = part.strip()
        if not part:
            continue
        if ":" in part:
            kind = part.split(":", 1)[0]
            names.append(part)
        else:
            names.append(f"{kind}:{part}" if kind else part)
    return names


def run_attempts(db: Path, run_id: str) -> list[AttemptRow]:
    """Every attempt of the run in start order."""
    with connect(db, read_only=True) as con:
        rows = con.execute(
            f"""
            SELECT a.job_key, coalesce(j.model, a.job_key), a.tasks, a.attempt, a.batch_size, a.devices,
                   epoch(a.started_at) - epoch(r.started_at), epoch(a.finished_at) - epoch(r.started_at),
                   a.status, a.runtime_s, a.load_s, a.peak_mem_gb, a.mean_util_pct, a.error_kind, a.error,
                   {"a.other_cores" if has_column(con, "attempts", "other_cores") else "NULL"}
            FROM attempts a JOIN runs r ON r.run_id = a.run_id
            LEFT JOIN jobs j ON j.job_key = a.job_key AND j.run_id = a.run_id
            WHERE a.run_id = ? ORDER BY a.started_at, a.job_key, a.attempt
            """, [run_id]).fetchall()
    return [AttemptRow(key, model, json.loads(tasks) if tasks else [], attempt, batch, split_devices(devices),
                       start, end, status, *rest)
            for key, model, tasks, attempt, batch, devices, start, end, status, *rest in rows]


def run_job_outcomes(db: Path, run_id: str) -> list[JobOutcome]:
    """Each job of the run with its prediction and the measured runtime and peak memory of its final attempt."""
    with connect(db, read_only=True) as con:
        rows = con.execute(
            """
            WITH last AS (SELECT job_key, max(attempt) AS attempt, count(*) AS n FROM attempts
                          WHERE run_id = $run GROUP BY job_key),
                 evaluated AS (SELECT job_key, sum(runtime_s) AS task_s FROM task_results
                               WHERE run_id = $run GROUP BY job_key)
            SELECT j.job_key, j.model, j.tasks, j.status, j.batch_size, j.predicted_runtime_s, j.predicted_mem_gb,
                   j.predicted_stage,
                   CASE WHEN j.status = 'complete' AND e.task_s IS NOT NULL
                        THEN coalesce(a.load_s, 0) + e.task_s END,
                   a.peak_mem_gb, coalesce(l.n, 0), j.error_kind, j.error
            FROM jobs j LEFT JOIN last l ON l.job_key = j.job_key
            LEFT JOIN attempts a ON a.run_id = j.run_id AND a.job_key = j.job_key AND a.attempt = l.attempt
            LEFT JOIN evaluated e ON e.job_key = j.job_key
            WHERE j.run_id = $run ORDER BY j.model, j.job_key
            """, {"run": run_id}).fetchall()
    return [JobOutcome(key, model, json.loads(tasks) if tasks else [], *rest)
            for key, model, tasks, *rest in rows]


def run_resources(db: Path, run_id: str) -> list[ResourceSample]:
    """The run's monitor samples in time order."""
    with connect(db, read_only=True) as con:
        rows = con.execute(
            """
            SELECT s.t - epoch(r.started_at), s.device, s.job_key, s.attempt, s.mem_gb, s.util_pct
            FROM resources s JOIN runs r ON r.run_id = s.run_id
            WHERE s.run_id = ? ORDER BY s.t
            """, [run_id]).fetchall()
    return [ResourceSample(*row) for row in rows]


def _quoted(path: Path) -> str:
    # COPY takes its target as a literal, not a parameter.
    return "'" + str(path).replace("'", "''") + "'"


def export_run_parquet(db: Path, run_id: str, folder: Path, extra: dict[str, Any] | None = None) -> list[Path]:
    """Write the run's rows of each store table, and each `extra` table, to `folder/<table>.parquet`.

    Args:
        db: The store.
        run_id: The run whose rows are exported (rows that other runs wrote, e.g. reused scores, are not).
        folder: An existing, empty folder.
        extra: Further tables by name, as anything DuckDB can scan (a pyarrow Table, for instance).
    """
    written = []
    with connect(db, read_only=True) as con:
        tables = [*RUN_TABLES, "compares"] if has_compares_table(con) else list(RUN_TABLES)
        for name in tables:
            target = folder / f"{name}.parquet"
            # Only this driver's code names the tables, so formatting the name into SQL is safe.
            query = (f"SELECT * FROM {name} WHERE compare_id IN (SELECT compare_id FROM compares WHERE run_id = ?)"
                     if name == "compares" else f"SELECT * FROM {name} WHERE run_id = ?")
            con.execute(f"COPY ({query}) TO {_quoted(target)} (FORMAT parquet)", [run_id])
            written.append(target)
        for name, table in (extra or {}).items():
            con.register("_export", table)
            try:
                target = folder / f"{name}.parquet"
                con.execute(f"COPY (SELECT * FROM _export) TO {_quoted(target)} (FORMAT parquet)")
                written.append(target)
            finally:
                con.unregister("_export")
    return written
