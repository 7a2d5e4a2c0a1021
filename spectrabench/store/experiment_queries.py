"""Reads for the calibration experiments: per-sample records for phase 1 (the history for phase 2 is
`store.learning.load_history`)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

from spectrabench.store.db import connect

# The metric phase 1 studies when a task reports several, in order of preference (a leaderboard's choice too).
PRIMARY_METRICS = ("acc", "exact_match", "pass@1", "acc_norm", "f1", "em", "mcc", "bleu")


class PairSamples(NamedTuple):
    """Per-sample values of one (model, task) from the one run that evaluated it on the most documents.

    `values` maps a document, as (subtask, doc_id) since a group's subtasks number their documents apart, to
    the sample's metric value.
    """

    model: str
    task: str
    metric: str
    filter: str
    run_id: str
    values: dict[tuple[str, int], float]


def _primary(metrics: set[tuple[str, str]]) -> tuple[str, str]:
    """The (metric, filter) to study: the preferred metric, unfiltered ("none") when lm-eval reports that."""
    for metric in PRIMARY_METRICS:
        filters = sorted(f for m, f in metrics if m == metric)
        if filters:
            return metric, "none" if "none" in filters else filters[0]
    return min(metrics)


def limit_samples(db: Path) -> list[PairSamples]:
    """For every (model, task) in the store, its per-sample values from its largest evaluation.

    The task's primary metric is chosen once per task (the same for all its models). Among runs of a pair, the
    one with the most documents wins; ties go to the one that finished last.
    """
    with connect(db, read_only=True) as con:
        metric_rows = con.execute("SELECT DISTINCT task, metric, filter FROM samples").fetchall()
        by_task: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for task, metric, filter_ in metric_rows:
            by_task[task].add((metric, filter_))
        chosen = {task: _primary(metrics) for task, metrics in by_task.items()}
        # By run, not by task key: a group run in parts stores each part's leaves under the part's key, and one
        # run measures a (model, task) pair once.
        runs = con.execute(
            """SELECT s.model, s.task, s.metric, s.filter, s.run_id, count(*) AS n, max(tr.finished_at) AS finished
               FROM samples s LEFT JOIN task_results tr ON tr.task_key = s.task_key AND tr.run_id = s.run_id
               GROUP BY ALL""").fetchall()
        best: dict[tuple[str, str], tuple[int, str, str]] = {}
        for model, task, metric, filter_, run_id, n, finished in runs:
            if chosen.get(task) != (metric, filter_):
                continue
            rank = (int(n), str(finished or ""), run_id)
            if (model, task) not in best or rank > best[(model, task)]:
                best[(model, task)] = rank
        out = []
        for (model, task), (_, _, run_id) in sorted(best.items()):
            metric, filter_ = chosen[task]
            rows = con.execute(
                "SELECT subtask, doc_id, value FROM samples WHERE model = ? AND task = ? AND run_id = ? "
                "AND metric = ? AND filter = ? AND value IS NOT NULL", [model, task, run_id, metric, filter_]
            ).fetchall()
            values = {(str(subtask), int(doc_id)): float(value) for subtask, doc_id, value in rows}
            out.append(PairSamples(model, task, metric, filter_, run_id, values))
    return out
