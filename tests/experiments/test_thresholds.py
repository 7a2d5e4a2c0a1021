"""Phase 2 on histories whose answer is known by construction."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from spectrabench.experiments.thresholds import (
    CurvePoint,
    Predict,
    calibrate_thresholds,
    choose_thresholds,
    lightgbm_learner,
    scheduler_yaml,
)
from spectrabench.prediction.features import HistoryRecord
from spectrabench.profiles import SchedulerConfig
from tests.prediction import CPU, features, synthetic_history

K = 60  # the learned predictor beats the rules from this many records on, by construction


def _real_runtime(record: HistoryRecord) -> float:
    return 0.1 * record.features.documents


def _history(n: int) -> list[HistoryRecord]:
    """Small CPU jobs whose true runtime is 0.1 s per document."""
    records = []
    for i in range(n):
        f = features(0.1, "arc_easy", limit=10 + (i * 7) % 90, batch_size=4, device=CPU, name="tiny")
        records.append(HistoryRecord(f, 0.1 * f.documents, 1.0, 0.5, 1_000.0 + i, "tiny", "arc_easy"))
    return records


def _rules(records: Sequence[HistoryRecord]) -> list[float]:
    return [2 * _real_runtime(r) for r in records]  # off by a factor of 2: error log 2 = 0.69


def _constructed_learner(train: Sequence[HistoryRecord]) -> Predict:
    """Off by e^1 below K training records; from K on off by e^0.5, improving by 0.01 per record to e^0.05."""
    n = len(train)
    error = 1.0 if n < K else max(0.05, 0.5 - 0.01 * (n - K))

    def predict(records: Sequence[HistoryRecord]) -> list[float]:
        return [_real_runtime(r) * math.exp(error) for r in records]

    return predict


def test_thresholds_come_from_the_data_where_the_answer_is_known() -> None:
    report = calibrate_thresholds(_history(240), learner=_constructed_learner, rules=_rules)
    (domain,) = report.domains
    assert (domain.device_kind, domain.size_domain, domain.records, domain.window) == ("cpu", 0, 240, 30)
    assert [p.n for p in domain.curve][:3] == [6, 12, 18]
    # Training sizes are multiples of 6: learned first beats the rules at K = 60 exactly.
    assert domain.min_learning_data == K
    # The error reaches within 10% of its floor (0.055) at n = K + 45 = 105: the next step is 108.
    assert domain.stable_learning_data == 108
    assert report.config.min_learning_data == K and report.config.stable_learning_data == 108
    # No record of a large model: those thresholds stay as they were, and the report says so.
    assert report.config.large_model_min_learning_data == SchedulerConfig().large_model_min_learning_data
    assert "kept" in report.notes["large_model_min_learning_data"]
    assert "measured" in report.notes["min_learning_data"]
    point = domain.curve[0]
    assert point.rules_error == pytest.approx(math.log(2)) and point.learned_error == pytest.approx(1.0)
    assert point.learned_wins == 0.0


def test_a_predictor_that_never_beats_the_rules_changes_nothing() -> None:
    base = SchedulerConfig(min_learning_data=40, stable_learning_data=90)
    report = calibrate_thresholds(_history(120), base, learner=lambda train: lambda rs: _rules(rs) * 1,
                                  rules=_rules)
    assert report.domains[0].min_learning_data is None and report.domains[0].stable_learning_data is None
    assert report.config == base
    assert all("kept" in note for note in report.notes.values())
    text = scheduler_yaml(report, "a test")
    assert "scheduler:\n  min_learning_data: 40\n  stable_learning_data: 90\n" in text


def _point(n: int, rules: float, learned: float) -> CurvePoint:
    return CurvePoint(n, n, 10, rules, learned, 0.5)


def test_one_late_loss_means_not_consistently_better() -> None:
    curve = [_point(10, 1, 0.5), _point(20, 1, 0.4), _point(30, 1, 1.2), _point(40, 1, 0.3), _point(50, 1, 0.3),
             _point(60, 1, 0.3), _point(70, 1, 0.3), _point(80, 1, 0.3)]
    low, stable = choose_thresholds(curve)
    assert low == 40 and stable == 40
    assert choose_thresholds([*curve[:-1], _point(80, 0.2, 0.3)]) == (None, None)


def test_a_curve_still_improving_at_the_end_has_no_stable_point() -> None:
    curve = [_point(10 * i, 1.0, 0.9 - 0.1 * i) for i in range(1, 9)]
    assert choose_thresholds(curve) == (10, None)


def test_too_few_records_are_refused() -> None:
    with pytest.raises(ValueError, match="no domain has 30"):
        calibrate_thresholds(_history(20), learner=_constructed_learner, rules=_rules)


def test_lightgbm_learns_a_family_factor_the_rules_miss() -> None:
    # Runtime is the rules' estimate times 0.4-2.5 by family: the real learner must get ahead of the rules.
    report = calibrate_thresholds(synthetic_history(80, seed=1))
    assert report.domains, report
    for domain in report.domains:
        assert domain.min_learning_data is not None, domain
        late = domain.curve[-1]
        assert late.learned_error < 0.6 * late.rules_error, domain


def test_the_lightgbm_learner_sees_only_its_training_records() -> None:
    history = synthetic_history(40, seed=2)
    predict = lightgbm_learner(history[:30])
    first = predict(history[30:])
    assert len(first) == 10 and all(v > 0 for v in first)
    assert predict(history[30:]) == first
