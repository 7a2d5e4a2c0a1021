"""Phase 1 on synthetic per-sample data whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spectrabench.experiments.limits import (
    TaskSamples,
    align_documents,
    analyse_task,
    calibrate_limits,
    candidate_limits,
    kendall_tau_b,
)


def _half_correct(n_models: int, n_docs: int, seed: int) -> np.ndarray:
    """Each model right on exactly half of the documents (a different half each): every full score is 0.5."""
    rng = np.random.default_rng(seed)
    base = np.array([1.0] * (n_docs // 2) + [0.0] * (n_docs - n_docs // 2))
    return np.stack([rng.permutation(base) for _ in range(n_models)])


def test_candidate_limits_follow_the_1_2_5_series_below_the_documents() -> None:
    assert candidate_limits(236) == [2, 5, 10, 20, 50, 100, 200]
    assert candidate_limits(200) == [2, 5, 10, 20, 50, 100]
    assert candidate_limits(2) == []
    assert candidate_limits(1001)[-3:] == [200, 500, 1000]


def test_kendall_tau_b_matches_scipy_with_ties() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for _ in range(50):
        x, y = rng.integers(0, 4, 7).astype(float), rng.integers(0, 4, 7).astype(float)
        expected = stats.kendalltau(x, y).statistic
        got = kendall_tau_b(x, y)
        assert (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(expected)
    assert kendall_tau_b([1, 2, 3], [10, 20, 30]) == 1.0
    assert kendall_tau_b([1, 2, 3], [3, 2, 1]) == -1.0
    assert math.isnan(kendall_tau_b([1, 1, 1], [1, 2, 3]))


def test_intervals_of_a_score_of_one_half_shrink_as_one_over_sqrt_n() -> None:
    n_docs = 4000
    curve = analyse_task(TaskSamples("t", "acc", ("a", "b"), _half_correct(2, n_docs, 0)), replicates=3000,
                         rng=np.random.default_rng(1))
    assert curve.documents == n_docs
    for pair in curve.pairs:
        assert pair.full_score == 0.5
        for point in pair.points:
            if point.limit < 20:
                continue  # a handful of 0/1 values: the distribution is too discrete for a normal width
            # Sampling without replacement: sd = 0.5 / sqrt(n) * sqrt((N - n) / (N - 1)).
            sd = 0.5 / math.sqrt(point.limit) * math.sqrt((n_docs - point.limit) / (n_docs - 1))
            assert point.score_high - point.score_low == pytest.approx(2 * 1.96 * sd, rel=0.12), point
            assert point.p95_abs_error == pytest.approx(1.96 * sd, rel=0.12), point
            assert point.mean_abs_error == pytest.approx(sd * math.sqrt(2 / math.pi), rel=0.1), point
            assert point.score_low < 0.5 < point.score_high
    widths = {p.limit: p.score_high - p.score_low for p in curve.pairs[0].points}
    assert widths[50] / widths[200] == pytest.approx(2.0 * math.sqrt((n_docs - 50) / (n_docs - 200)), rel=0.15)


def test_constant_scores_need_two_documents_and_keep_their_ranking() -> None:
    values = np.stack([np.ones(100), np.zeros(100), np.full(100, 0.5)])
    curve = analyse_task(TaskSamples("t", "acc", ("best", "worst", "middle"), values), replicates=200)
    assert curve.recommended == 2 and curve.rank_limit == 2
    assert all(p.p95_abs_error == 0 and p.score_low == p.score_high for pair in curve.pairs for p in pair.points)
    assert all(t.mean == 1.0 and t.low == 1.0 and t.high == 1.0 for t in curve.tau)


def test_recommendation_is_the_smallest_limit_within_epsilon_at_95_percent() -> None:
    samples = TaskSamples("t", "acc", ("a", "b"), _half_correct(2, 236, 5))
    # sd at n = 20 of 236 is 0.107 (95% within ~0.21); at n = 50 it is 0.063 (~0.12).
    assert analyse_task(samples, epsilon=0.15, replicates=2000).recommended == 50
    # At n = 200 of 236, 95% of subsets are within ~0.027: 0.02 is never met below all documents.
    assert analyse_task(samples, epsilon=0.02, replicates=2000).recommended is None


def test_overall_recommendation_counts_pairs_across_tasks() -> None:
    easy = TaskSamples("easy", "acc", ("a", "b"), np.stack([np.ones(120), np.zeros(120)]))
    hard = TaskSamples("hard", "acc", ("a", "b"), _half_correct(2, 236, 7))
    report = calibrate_limits([easy, hard], epsilon=0.15, share=0.9, replicates=1000, seed=2)
    assert [t.recommended for t in report.tasks] == [2, 50]
    assert report.share_meeting[20] == 0.5 and report.share_meeting[50] == 1.0
    assert report.recommended == 50
    # A limit of 200 is past the easy task's 120 documents: its pairs are evaluated in full and count as met.
    assert report.share_meeting[200] == 1.0
    lenient = calibrate_limits([easy, hard], epsilon=0.15, share=0.5, replicates=1000, seed=2)
    assert lenient.recommended == 2


def test_same_seed_gives_the_same_numbers() -> None:
    samples = [TaskSamples("t", "acc", ("a", "b", "c"), _half_correct(3, 150, 9))]
    first = calibrate_limits(samples, replicates=300, seed=4)
    assert first == calibrate_limits(samples, replicates=300, seed=4)
    assert first != calibrate_limits(samples, replicates=300, seed=5)


def test_bad_parameters_are_refused() -> None:
    samples = [TaskSamples("t", "acc", ("a",), np.ones((1, 50)))]
    for kwargs in ({"epsilon": 0.0}, {"epsilon": 1.0}, {"share": 0.0}, {"replicates": 5}):
        with pytest.raises(ValueError):
            calibrate_limits(samples, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        calibrate_limits([])


def test_align_keeps_the_documents_every_model_shares_and_drops_short_runs() -> None:
    per_model = {"a": {d: 1.0 for d in range(30)}, "b": {d: 0.0 for d in range(5, 40)}, "c": {0: 1.0, 1: 0.0}}
    aligned, skipped = align_documents("t", "acc", per_model)
    assert skipped == ["c"]
    assert aligned is not None and aligned.models == ("a", "b") and aligned.values.shape == (2, 25)
    assert aligned.values[0].sum() == 25 and aligned.values[1].sum() == 0
    assert align_documents("t", "acc", {"a": {0: 1.0}})[0] is None


def test_a_subset_where_every_model_ties_counts_as_no_agreement() -> None:
    # One model right on one document in ten, two never right: on 2 documents all three usually tie at 0.
    values = np.stack([np.tile([1.0] + [0.0] * 9, 10), np.zeros(100), np.zeros(100)])
    curve = analyse_task(TaskSamples("t", "acc", ("some", "none1", "none2"), values), replicates=2000)
    at_two = curve.tau[0]
    assert at_two.limit == 2 and at_two.mean is not None
    # Both documents wrong with probability 90/100 * 89/99 = 0.81 (tau 0), else the order is right (tau 1).
    assert at_two.mean == pytest.approx(0.19, abs=0.05)
    flat = analyse_task(TaskSamples("t", "acc", ("a", "b"), np.zeros((2, 50))), replicates=100)
    assert all(p.mean is None for p in flat.tau) and flat.rank_limit is None
