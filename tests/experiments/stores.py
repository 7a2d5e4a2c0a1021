"""Stores with per-sample records written straight into DuckDB, for phase 1 tests without lm-eval."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from spectrabench.store.db import connect


def write_samples(db: Path, run_id: str, model: str, task: str, values: Sequence[float], *,
                  metrics: Sequence[tuple[str, str]] = (("acc", "none"), ("acc_norm", "none")),
                  finished: int = 0) -> None:
    """One (model, task) evaluation of `len(values)` documents: a task_results row and its samples.

    Every metric in `metrics` gets the same values except `acc_norm`, which gets their complement (so a test can
    tell which metric was read).
    """
    task_key = f"{model}-{task}"
    with connect(db) as con:
        con.execute("INSERT INTO task_results (task_key, run_id, model, task, harness_task, n_samples, finished_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [task_key, run_id, model, task, task, len(values),
                     dt.datetime(2026, 1, 1) + dt.timedelta(minutes=finished)])
        rows = [(task_key, run_id, model, task, task, doc, metric, filter_,
                 1.0 - value if metric == "acc_norm" else value)
                for metric, filter_ in metrics for doc, value in enumerate(values)]
        con.executemany("INSERT INTO samples (task_key, run_id, model, task, subtask, doc_id, metric, filter, value) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
