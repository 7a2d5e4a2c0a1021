"""Trained predictors survive the store: a version saved by one process predicts the same after reloading."""

from __future__ import annotations

import json
from pathlib import Path

from spectrabench.prediction.learned import LearnedPredictor, history_index
from spectrabench.store.history import History
from spectrabench.store.learning import latest_predictor
from tests.prediction import synthetic_history


def test_saved_version_reloads_from_duckdb_and_predicts_identically(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    history = synthetic_history(60)
    trained = LearnedPredictor.fit(history)
    assert latest_predictor(db) is None
    first = History(db).save_predictor(trained.to_bytes(), n_records=len(history), cv_error=0.12)
    second = History(db).save_predictor(trained.to_bytes(), n_records=len(history), cv_error=0.11)
    assert (first, second) == (1, 2)

    stored = latest_predictor(db)
    assert stored is not None and stored.version == 2 and stored.n_records == 60 and stored.cv_error == 0.11
    index = history_index(history)
    for record in history[:10]:
        assert stored.predictor.predict_indexed(record.features, index) == trained.predict_indexed(record.features,
                                                                                                   index)
    assert json.loads(json.dumps(stored.predictor.targets)) == trained.targets


def test_history_leaves_out_tasks_timed_while_other_work_competed_for_the_cores(tmp_path: Path) -> None:
    from spectrabench.profiles import SchedulerConfig
    from spectrabench.store.db import connect
    from spectrabench.store.learning import load_history, timings_left_out
    from spectrabench.training import train_predictor

    db = tmp_path / "s.duckdb"
    records = synthetic_history(3)
    # Attempt 1 predates the measurement (or ran on Ray), 2 ran on a quiet machine, 3 beside a neighbour that took
    # most of a 2-core machine.
    loads = [(None, None, None, None), (0.02, 0.0, 1.9, 2), (0.9, 0.0, 1.1, 2)]
    with connect(db) as con:
        for attempt, (record, load) in enumerate(zip(records, loads, strict=True), start=1):
            con.execute("INSERT INTO attempts (job_key, run_id, attempt, status, runtime_s, load_s, peak_mem_gb, "
                        "other_cores, steal_cores, own_cores, cores) VALUES ('j', 'r', ?, 'complete', ?, ?, ?, ?, ?, "
                        "?, ?)", [attempt, record.runtime_s, record.load_s, record.peak_mem_gb, *load])
            con.execute("INSERT INTO task_results (task_key, run_id, job_key, attempt, model, task, runtime_s, "
                        "finished_at, features) VALUES (?, 'r', 'j', ?, ?, ?, ?, to_timestamp(?), ?)",
                        [f"t{attempt}", attempt, record.model, record.task, record.runtime_s, record.finished_at,
                         record.features.model_dump_json()])
    kept = load_history(db)
    assert [r.runtime_s for r in kept] == [r.runtime_s for r in records[:2]]
    assert timings_left_out(db) == 1
    report = train_predictor(db, SchedulerConfig(), with_cv=False)
    assert (report.records, report.left_out_busy, report.version) == (2, 1, None)
