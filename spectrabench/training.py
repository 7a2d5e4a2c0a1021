"""Training the predictor from the store's history: after every run, and on `spectrabench calibrate predictor`."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from spectrabench.profiles import SchedulerConfig

if TYPE_CHECKING:
    from spectrabench.prediction.features import TokenCount

MIN_TRAINING_RECORDS = 10  # fewer, and a LightGBM fit learns nothing the rules don't already say


class StageCount(BaseModel):
    """How far one model-size domain has come: its comparable records and the stage they earn."""

    device_kind: str
    domain: str
    records: int
    stage: str
    learned_weight: float


class TrainingReport(BaseModel):
    """What a training found and stored."""

    records: int
    version: int | None
    seconds: float
    cv: dict[str, Any] | None
    stages: list[StageCount]
    skipped: str | None = None
    # Finished tasks left out because other work competed with them for the machine's cores (`store.machineload`).
    left_out_busy: int = 0
    # The share of the learned runtime correction a (model, task) pair without history gets (`prediction.pairweight`).
    unseen_pair_weight: float | None = None


_DOMAINS = ("under 1B", "1B to large", "large")


def train_predictor(db: Path, cfg: SchedulerConfig, *, with_cv: bool = True,
                    token_scales: Mapping[tuple[str, str], TokenCount] | None = None,
                    include_contended: bool = False) -> TrainingReport:
    """Fit the learned predictor on every history record, score it in time order, and store a new version.

    Args:
        db: The store.
        cfg: Thresholds that decide each domain's stage.
        with_cv: Also run the time-ordered cross-validation (its error is stored with the version).
        token_scales: Real token counts of (model, task) pairs (`harness.tokencounts`), for records written before
            they were counted (`store.learning.load_history`).
        include_contended: Learn from tasks timed while other work competed for the machine's cores too
            (`Settings.learn_from_busy_machine`).
    """
    from spectrabench.prediction.learned import LearnedPredictor, time_ordered_cv
    from spectrabench.prediction.stages import size_domain, stage_for
    from spectrabench.store.history import History
    from spectrabench.store.learning import history_and_left_out

    started = time.perf_counter()
    history, left_out = history_and_left_out(db, token_scales, include_contended=include_contended)
    counts: dict[tuple[str, int], tuple[int, float]] = {}
    for record in history:
        key = (record.features.device_kind, size_domain(record.features.params_b, cfg))
        n, params = counts.get(key, (0, record.features.params_b))
        counts[key] = (n + 1, max(params, record.features.params_b))
    stages = []
    for (kind, domain), (n, params) in sorted(counts.items()):
        choice = stage_for(n, params, cfg)
        stages.append(StageCount(device_kind=kind, domain=_DOMAINS[min(domain, 2)], records=n, stage=choice.stage,
                                 learned_weight=choice.learned_weight))
    if len(history) < MIN_TRAINING_RECORDS:
        return TrainingReport(records=len(history), version=None, seconds=time.perf_counter() - started, cv=None,
                              stages=stages, skipped=f"{len(history)} records; training starts at "
                                                    f"{MIN_TRAINING_RECORDS}", left_out_busy=left_out)
    cv: dict[str, Any] | None = None
    if with_cv and len(history) >= 12:
        report = time_ordered_cv(history, folds=min(5, len(history) // 6))
        cv = {"folds": report.folds, "n_test": report.n_test, "blend_weight": report.blend_weight,
              "rules": report.rules._asdict(), "learned": report.learned._asdict(), "blend": report.blend._asdict()}
    predictor = LearnedPredictor.fit(history)
    error = cv["learned"]["runtime_mape"] if cv else None
    version = History(db).save_predictor(predictor.to_bytes(), n_records=len(history),
                                         cv_error=None if error is None or math.isnan(error) else error)
    return TrainingReport(records=len(history), version=version, seconds=time.perf_counter() - started, cv=cv,
                          stages=stages, unseen_pair_weight=predictor.unseen_pair_weight, left_out_busy=left_out)
