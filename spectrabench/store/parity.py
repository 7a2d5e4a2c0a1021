"""Whether two runs scored the same: every per-sample value and every aggregate score, side by side."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from spectrabench.store.db import connect

SCORE_TOLERANCE = 1e-4


class Mismatch(BaseModel):
    """One value that differs between the runs (None: the other run has no such row)."""

    model: str
    task: str
    what: str  # "sample <subtask>/<doc>/<metric>/<filter>" or "score <subtask>/<metric>/<filter>"
    baseline: float | None
    optimized: float | None


class ParityReport(BaseModel):
    """Per-sample values compared exactly, aggregate scores within `SCORE_TOLERANCE`."""

    samples_compared: int
    scores_compared: int
    max_score_diff: float
    mismatches: list[Mismatch]

    @property
    def identical(self) -> bool:
        """Every sample equal and every score within tolerance, and something was compared."""
        return not self.mismatches and self.samples_compared > 0


_SAMPLES = """
    SELECT coalesce(b.model, o.model), coalesce(b.task, o.task),
           concat_ws('/', coalesce(b.subtask, o.subtask), coalesce(b.doc_id, o.doc_id), coalesce(b.metric, o.metric),
                     coalesce(b.filter, o.filter)),
           b.value, o.value
    FROM (SELECT * FROM samples WHERE run_id = ?) b
    FULL OUTER JOIN (SELECT * FROM samples WHERE run_id = ?) o
      ON b.model = o.model AND b.task = o.task AND b.subtask IS NOT DISTINCT FROM o.subtask AND b.doc_id = o.doc_id
         AND b.metric = o.metric AND b.filter IS NOT DISTINCT FROM o.filter
"""
_SCORES = """
    SELECT coalesce(b.model, o.model), coalesce(b.task, o.task),
           concat_ws('/', coalesce(b.subtask, o.subtask), coalesce(b.metric, o.metric), coalesce(b.filter, o.filter)),
           b.value, o.value
    FROM (SELECT * FROM scores WHERE run_id = ?) b
    FULL OUTER JOIN (SELECT * FROM scores WHERE run_id = ?) o
      ON b.model = o.model AND b.task = o.task AND b.subtask IS NOT DISTINCT FROM o.subtask AND b.metric = o.metric
         AND b.filter IS NOT DISTINCT FROM o.filter
"""


def _differs(a: float | None, b: float | None, tolerance: float) -> bool:
    if a is None or b is None:
        return a is not b
    if a != a or b != b:  # NaN (e.g. an undefined stderr-free metric) equals only NaN
        return not (a != a and b != b)
    return abs(a - b) > tolerance


def compare_runs(db: Path, baseline_run: str, optimized_run: str) -> ParityReport:
    """Compare two runs of the same (model, task) measurements, matched by model, task, subtask, document, metric
    and filter (not by task key: a group run in parts stores each part's leaves under the part's key).

    Args:
        db: The store both runs wrote.
        baseline_run: Run id of the baseline.
        optimized_run: Run id of the optimized run.
    """
    mismatches: list[Mismatch] = []
    with connect(db, read_only=True) as con:
        samples = con.execute(_SAMPLES, [baseline_run, optimized_run]).fetchall()
        scores = con.execute(_SCORES, [baseline_run, optimized_run]).fetchall()
    for model, task, what, b, o in samples:
        if _differs(b, o, 0.0):
            mismatches.append(Mismatch(model=model, task=task, what=f"sample {what}", baseline=b, optimized=o))
    diffs = [abs(b - o) for *_, b, o in scores if b is not None and o is not None and b == b and o == o]
    for model, task, what, b, o in scores:
        if _differs(b, o, SCORE_TOLERANCE):
            mismatches.append(Mismatch(model=model, task=task, what=f"score {what}", baseline=b, optimized=o))
    return ParityReport(samples_compared=len(samples), scores_compared=len(scores),
                        max_score_diff=max(diffs, default=0.0), mismatches=mismatches)
