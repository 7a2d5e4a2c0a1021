"""The predictor's side of the store: history records to learn from, and trained predictor versions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from spectrabench.store.db import connect
from spectrabench.store.machineload import MachineLoad

if TYPE_CHECKING:
    from spectrabench.prediction.features import HistoryRecord, TokenCount
    from spectrabench.prediction.learned import LearnedPredictor


class StoredPredictor(NamedTuple):
    """A trained predictor version as stored."""

    version: int
    n_records: int
    cv_error: float | None
    predictor: LearnedPredictor


def load_history(db: Path, token_scales: Mapping[tuple[str, str], TokenCount] | None = None, *,
                 include_contended: bool = False) -> list[HistoryRecord]:
    """Every finished task with its features and costs, oldest first, but those timed while other work competed for
    the machine's cores (`timings_left_out`) unless `include_contended` (`Settings.learn_from_busy_machine`): their
    runtimes say more about the neighbours than about the task.

    A record's runtime is the task's own evaluation time; load time and peak memory are its attempt's. Records
    written before prompt tokens were counted get the counts in `token_scales` (`harness.tokencounts`), so that
    old and new records are described alike (`prediction.features.recounted`).
    """
    return history_and_left_out(db, token_scales, include_contended=include_contended)[0]


def history_and_left_out(db: Path, token_scales: Mapping[tuple[str, str], TokenCount] | None = None, *,
                         include_contended: bool = False) -> tuple[list[HistoryRecord], int]:
    """`load_history`'s records and `timings_left_out`'s count (0 with `include_contended`), from one read."""
    from spectrabench.prediction.features import HistoryRecord, JobFeatures, recounted

    tasks = _finished_tasks(db)
    rows = [row for row, contended in tasks if include_contended or not contended]
    records = recounted([HistoryRecord(JobFeatures.model_validate(json.loads(features)), float(runtime), load, peak,
                                       float(finished), model, task)
                         for features, runtime, load, peak, finished, model, task in rows], token_scales or {})
    return records, len(tasks) - len(rows)


def timings_left_out(db: Path) -> int:
    """How many finished tasks `load_history` leaves out because other work competed with their attempt for the
    machine's cores (`store.machineload.MachineLoad.contended`)."""
    return sum(contended for _, contended in _finished_tasks(db))


def _finished_tasks(db: Path) -> list[tuple[tuple[Any, ...], bool]]:
    """Each finished task's history columns, oldest first, with whether its attempt was contended."""
    if not db.exists():
        return []
    with connect(db) as con:
        rows = con.execute(
            """SELECT t.features, t.runtime_s, a.load_s, a.peak_mem_gb, epoch(t.finished_at), t.model, t.task,
                      a.other_cores, a.steal_cores, a.own_cores, a.cores
               FROM task_results t JOIN attempts a
                 ON a.job_key = t.job_key AND a.run_id = t.run_id AND a.attempt = t.attempt
               WHERE t.features IS NOT NULL AND t.runtime_s IS NOT NULL
               ORDER BY t.finished_at""").fetchall()
    tasks = []
    for row in rows:
        other, steal, own, cores = row[7:]  # NULL where not measured: older attempts and Ray's
        load = None if other is None else MachineLoad(other_cores=other, steal_cores=steal or 0.0, own_cores=own,
                                                      cores=cores or 1)
        tasks.append((tuple(row[:7]), load is not None and load.contended))
    return tasks


def latest_predictor(db: Path) -> StoredPredictor | None:
    """The newest trained predictor, loaded back; None before the first training or when it is of another format."""
    from spectrabench.prediction.learned import LearnedPredictor

    if not db.exists():
        return None
    with connect(db) as con:
        row = con.execute("SELECT version, n_records, cv_error, artifact FROM predictors "
                          "ORDER BY version DESC LIMIT 1").fetchone()
    if row is None:
        return None
    version, n_records, cv_error, artifact = row
    try:
        learned = LearnedPredictor.from_bytes(bytes(artifact))
    except ValueError:
        # Saved by another SpectraBench version (other feature columns): plan with the rules until the next
        # run or `calibrate predictor` retrains on the same history, which is all still here.
        return None
    return StoredPredictor(int(version), int(n_records), cv_error, learned)
