"""Writes to the store. Called only by the driver, which is the single writer of DuckDB."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from spectrabench.harness.results import ScoreRow, TaskOutput
from spectrabench.planning.jobs import Job, TaskRef
from spectrabench.store.db import connect
from spectrabench.store.machineload import MachineLoad


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _ts(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None) if epoch else None


class AttemptRecord(NamedTuple):
    """How one try at a job ended, as the attempts table stores it."""

    job_key: str
    attempt: int
    finished_at: float
    status: str
    runtime_s: float
    load_s: float | None
    provision_s: float | None
    peak_mem_gb: float | None
    mean_util_pct: float | None
    returncode: int | None
    error_kind: str | None
    error: str | None
    worker: dict[str, Any]
    background: MachineLoad | None = None  # other work on the machine while it ran, where measured


class PartResult(NamedTuple):
    """The newest stored result of one part of a group (`taskparts`), with its leaves' scores."""

    task_key: str
    run_id: str
    results_path: str
    runtime_s: float | None
    n_samples: int | None
    scores: list[ScoreRow]


class History:
    """The run history in one DuckDB file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._con: Any = None

    @contextmanager
    def session(self) -> Iterator[Any]:
        """Keep one connection open for a burst of writes (opening one costs tens of milliseconds)."""
        if self._con is not None:
            yield self._con
            return
        with connect(self.path) as con:
            self._con = con
            try:
                yield con
            finally:
                self._con = None

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self.session() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def start_run(self, run_id: str, *, profile: str, mode: str, limit: int | None, devices: str,
                  backend: str, settings: dict[str, Any], versions: dict[str, str], sampling: str = "first") -> None:
        """Record that a run began (`sampling`: "first", or "random:<seed>" for a nested random sample)."""
        with self._transaction() as con:
            con.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 'running', ?, ?, NULL, ?)",
                        [run_id, profile, mode, limit, devices, backend, _now(),
                         json.dumps(settings, default=str), json.dumps(versions), sampling])

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any]) -> None:
        """Record how a run ended."""
        with self._transaction() as con:
            con.execute("UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE run_id = ?",
                        [_now(), status, json.dumps(summary), run_id])

    def record_job(self, run_id: str, job: Job, *, status: str, devices: str, error_kind: str | None = None,
                   error: str | None = None, prediction: tuple[float, float, str] | None = None) -> None:
        """Insert or update a job's row for this run, and its (model, task) pairs."""
        with self._transaction() as con:
            con.execute("DELETE FROM jobs WHERE job_key = ? AND run_id = ?", [job.job_key, run_id])
            runtime_s, mem_gb, stage = prediction or (None, None, None)
            con.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [job.job_key, run_id, job.model.name, json.dumps(job.task_names), job.limit,
                         json.dumps({t.name: t.shots for t in job.tasks}), job.batch_size, devices,
                         runtime_s, mem_gb, stage, status, error_kind, error])

    def record_run_tasks(self, run_id: str, job: Job, statuses: dict[str, str], places: Mapping[str, int]) -> None:
        """Record the status of each (model, task) pair of `job` within this run, at its place in the profile
        (`places`: task name -> its pair's position, so reports list pairs as the profile does, whatever order
        the workers ran them in)."""
        with self._transaction() as con:
            for ref in job.tasks:
                if ref.part is not None:
                    continue  # a part's pair is its group's, recorded by `record_group_task`
                con.execute("DELETE FROM run_tasks WHERE run_id = ? AND task_key = ?", [run_id, ref.task_key])
                con.execute("INSERT INTO run_tasks VALUES (?, ?, ?, ?, ?, ?, ?)",
                            [run_id, ref.task_key, job.job_key, job.model.name, ref.name, statuses[ref.name],
                             places[ref.name]])

    def start_attempt(self, run_id: str, job_key: str, attempt: int, *, batch_size: int, tasks: list[str],
                      devices: str, started_at: float, log_path: str) -> None:
        """Insert an attempt as running before its worker starts, so a driver crash leaves a trace."""
        with self._transaction() as con:
            con.execute("INSERT INTO attempts (job_key, run_id, attempt, batch_size, tasks, started_at, status, "
                        "devices, log_path) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                        [job_key, run_id, attempt, batch_size, json.dumps(tasks), _ts(started_at), devices,
                         log_path])

    def finish_attempt(self, run_id: str, record: AttemptRecord, samples: list[tuple[float, str, float,
                                                                                     float | None]]) -> None:
        """Record how an attempt ended, with its resource samples (t, device, mem_gb, util_pct)."""
        with self._transaction() as con:
            con.execute(
                "UPDATE attempts SET finished_at = ?, status = ?, runtime_s = ?, load_s = ?, provision_s = ?, "
                "peak_mem_gb = ?, mean_util_pct = ?, returncode = ?, error_kind = ?, error = ?, worker = ?, "
                "other_cores = ?, steal_cores = ?, own_cores = ?, cores = ? "
                "WHERE job_key = ? AND run_id = ? AND attempt = ?",
                [_ts(record.finished_at), record.status, record.runtime_s, record.load_s, record.provision_s,
                 record.peak_mem_gb, record.mean_util_pct, record.returncode, record.error_kind, record.error,
                 json.dumps(record.worker, default=str),
                 *((load.other_cores, load.steal_cores, load.own_cores, load.cores) if (load := record.background)
                   else (None, None, None, None)),
                 record.job_key, run_id, record.attempt])
            if samples:
                con.executemany("INSERT INTO resources VALUES (?, ?, ?, ?, ?, ?, ?)",
                                [[record.job_key, run_id, record.attempt, t, device, mem, util]
                                 for t, device, mem, util in samples])

    def mark_lost(self, status: str = "lost", reason: str = "the driver died while this attempt ran") -> int:
        """Mark attempts (and runs) still 'running' as `status`; returns how many attempts.

        Called at the start of a run, under the run lock, for what a dead driver left behind; and at the end of
        an interrupted run for the attempts it cut off.
        """
        if not self.path.exists():
            return 0
        with self._transaction() as con:
            count = con.execute("SELECT count(*) FROM attempts WHERE status = 'running'").fetchone()[0]
            con.execute("UPDATE attempts SET status = ?, error_kind = ?, error = ? WHERE status = 'running'",
                        [status, status, reason])
            if status == "lost":
                con.execute("UPDATE runs SET status = 'lost' WHERE status = 'running'")
        return int(count)

    def record_task_output(self, run_id: str, job: Job, attempt: int, ref: TaskRef, output: TaskOutput,
                           *, runtime_s: float | None, batch_size: int, features: dict[str, Any] | None = None
                           ) -> None:
        """Store one finished task's timing, scores and per-sample values in one transaction (a part of a group
        under its group's task name: its leaves are the group's)."""
        model, task = job.model.name, ref.profile_task
        with self._transaction() as con:
            for table in ("task_results", "scores", "samples"):
                con.execute(f"DELETE FROM {table} WHERE task_key = ? AND run_id = ?", [ref.task_key, run_id])
            con.execute("INSERT INTO task_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [ref.task_key, run_id, job.job_key, attempt, model, task, ref.harness_name,
                         job.limit, ref.shots, batch_size, runtime_s, output.n_samples,
                         str(output.results_path), _now(), json.dumps(features) if features else None])
            con.executemany("INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [[ref.task_key, run_id, model, task, s.subtask, s.metric, s.filter, s.value,
                              s.stderr, s.n_samples] for s in output.scores])
            if output.samples:
                _insert_samples(con, ref.task_key, run_id, model, task, output)

    def part_results(self, keys: list[str]) -> dict[str, PartResult]:
        """The newest stored result of each of `keys` (parts of one group) that has one, by key."""
        if not keys or not self.path.exists():
            return {}
        marks = ", ".join("?" for _ in keys)
        with self.session() as con:
            rows = con.execute(
                f"""SELECT task_key, run_id, results_path, runtime_s, n_samples FROM (
                        SELECT *, row_number() OVER (PARTITION BY task_key ORDER BY finished_at DESC) AS rn
                        FROM task_results WHERE task_key IN ({marks})) WHERE rn = 1""", keys).fetchall()
            found = {}
            for key, run_id, path, runtime_s, n_samples in rows:
                scores = con.execute("SELECT subtask, metric, filter, value, stderr, n_samples FROM scores "
                                     "WHERE task_key = ? AND run_id = ?", [key, run_id]).fetchall()
                found[key] = PartResult(key, run_id, path, runtime_s, n_samples, [ScoreRow(*r) for r in scores])
        return found

    def record_group(self, run_id: str, model: str, ref: TaskRef, rows: list[ScoreRow], *, limit: int | None,
                     runtime_s: float, n_samples: int, results_path: Path) -> None:
        """Store a group's scores, aggregated from its parts, as the measurement of the whole group (its
        `whole_key`): a later run finds the group complete, and reports read it like any task's."""
        key, task = ref.whole_key or ref.task_key, ref.profile_task
        with self._transaction() as con:
            for table in ("task_results", "scores"):
                con.execute(f"DELETE FROM {table} WHERE task_key = ? AND run_id = ?", [key, run_id])
            # No job, attempt or features: it ran as its parts, which the predictor learns from.
            con.execute("INSERT INTO task_results VALUES (?, ?, NULL, NULL, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, NULL)",
                        [key, run_id, model, task, ref.harness_name, limit, ref.shots, runtime_s, n_samples,
                         str(results_path), _now()])
            con.executemany("INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [[key, run_id, model, task, r.subtask, r.metric, r.filter, r.value, r.stderr,
                              r.n_samples] for r in rows])

    def record_group_task(self, run_id: str, ref: TaskRef, job_key: str, model: str, status: str, place: int,
                          *, keep_existing: bool = False) -> None:
        """Record the status of the (model, group) pair a part belongs to within this run; with `keep_existing`,
        only when no other part's job has recorded one yet."""
        key = ref.whole_key or ref.task_key
        with self._transaction() as con:
            if keep_existing and con.execute("SELECT 1 FROM run_tasks WHERE run_id = ? AND task_key = ?",
                                             [run_id, key]).fetchone():
                return
            con.execute("DELETE FROM run_tasks WHERE run_id = ? AND task_key = ?", [run_id, key])
            con.execute("INSERT INTO run_tasks VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [run_id, key, job_key, model, ref.profile_task, status, place])

    def save_predictor(self, artifact: bytes, *, n_records: int, cv_error: float | None) -> int:
        """Store a trained predictor as the next version; returns the version."""
        with self._transaction() as con:
            row = con.execute("SELECT coalesce(max(version), 0) FROM predictors").fetchone()
            version = int(row[0]) + 1
            con.execute("INSERT INTO predictors VALUES (?, 'all', ?, ?, ?, ?)",
                        [version, _now(), n_records, cv_error, artifact])
        return version

    def completed_task_keys(self, keys: list[str]) -> set[str]:
        """Which of `keys` already have a stored result (from any run)."""
        if not keys or not self.path.exists():
            return set()
        with self.session() as con:
            rows = con.execute("SELECT DISTINCT task_key FROM task_results WHERE task_key IN "
                               f"({', '.join('?' for _ in keys)})", keys).fetchall()
        return {row[0] for row in rows}


def _insert_samples(con: Any, task_key: str, run_id: str, model: str, task: str, output: TaskOutput) -> None:
    """Bulk-insert per-sample rows through Arrow: row-by-row inserts take seconds for a large task."""
    import pyarrow as pa

    n = len(output.samples)
    table = pa.table({
        "task_key": [task_key] * n, "run_id": [run_id] * n, "model": [model] * n, "task": [task] * n,
        "subtask": [s.subtask for s in output.samples],
        "doc_id": pa.array([s.doc_id for s in output.samples], type=pa.int32()),
        "metric": [s.metric for s in output.samples], "filter": [s.filter for s in output.samples],
        "value": pa.array([s.value for s in output.samples], type=pa.float64()),
    })
    con.register("_new_samples", table)
    try:
        con.execute("INSERT INTO samples SELECT * FROM _new_samples")
    finally:
        con.unregister("_new_samples")
