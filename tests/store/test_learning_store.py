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
