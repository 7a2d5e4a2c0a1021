"""Phase 1: how many documents a task needs before its score stops moving, measured on real per-sample records.

For every (model, task) that was evaluated on many documents, the full-run score is the reference. For every
candidate limit n (2, 5, 10, 20, 50, 100, 200, 500, ... below the documents available) we draw `replicates` random
orders of the task's documents and take the first n of each: nested subsets, the same documents for every model of
the task (as one `--limit` run would give every model the same documents). From the resampled scores we measure

- the absolute error of the subset score against the full score: its mean and its 95th percentile;
- the 95% interval of the subset score (2.5th and 97.5th percentiles of the resampling distribution);
- the rank agreement of the task's models (Kendall's tau-b between the subset scores and the full scores; a
  subset on which all models tie counts as 0).

A pair meets the target at n when 95% of its subsets of n documents land within `epsilon` of its full score.
Sampling is without replacement from the documents at hand, so the error reaches 0 at n = all documents; a limit at
or above a task's size evaluates everything and always meets the target. "Most pairs" is `share` (default 90%) of
them. The recommended limit is the smallest candidate from which on, at every larger candidate too, that share
meets the target: per task over its models, and overall over every (model, task) pair. None means no candidate
below all documents does: run without a limit.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np

DEFAULT_EPSILON = 0.02
DEFAULT_SHARE = 0.9
DEFAULT_REPLICATES = 2000
Document = TypeVar("Document", bound=Hashable)
MIN_DOCUMENTS = 20  # a pair evaluated on fewer documents says nothing about limits worth choosing
TAU_TARGET = 0.9  # mean Kendall tau at which a limit is said to keep the task's ranking
_CHUNK = 256  # replicates resampled at once: bounds memory at chunk x documents indices


class TaskSamples(NamedTuple):
    """Per-sample values of one task's metric: one row per model, one column per document, the same documents
    in the same order for every model."""

    task: str
    metric: str
    models: tuple[str, ...]
    values: np.ndarray


class LimitPoint(NamedTuple):
    """What n random documents give one (model, task), over the resampling replicates."""

    limit: int
    mean_abs_error: float
    p95_abs_error: float
    score_low: float  # 2.5th percentile of the subset score
    score_high: float  # 97.5th percentile


class PairCurve(NamedTuple):
    """The convergence of one (model, task) towards its full score."""

    model: str
    full_score: float
    points: list[LimitPoint]


class TauPoint(NamedTuple):
    """Rank agreement of a task's models at one limit: Kendall tau-b of subset scores against full scores."""

    limit: int
    mean: float | None  # None where the full scores all tie (no ranking to agree with)
    low: float | None
    high: float | None


class TaskCurve(NamedTuple):
    """Phase 1 for one task: every model's curve, the ranking curve and the recommendation."""

    task: str
    metric: str
    documents: int
    pairs: list[PairCurve]
    tau: list[TauPoint]
    share_meeting: dict[int, float]  # candidate limit -> share of the task's models within epsilon
    recommended: int | None  # None: no candidate below all documents meets the target
    rank_limit: int | None  # smallest limit from which the mean tau stays >= TAU_TARGET


class LimitReport(NamedTuple):
    """Phase 1 over every task, with the overall recommendation."""

    epsilon: float
    share: float
    replicates: int
    seed: int
    tasks: list[TaskCurve]
    share_meeting: dict[int, float]  # over every (model, task) pair
    recommended: int | None


def candidate_limits(documents: int) -> list[int]:
    """The 1-2-5 series from 2 (2, 5, 10, 20, 50, 100, 200, 500, ...) below `documents`."""
    out: list[int] = []
    decade = 1
    while True:
        for step in (2, 5, 10):
            value = step * decade
            if value >= documents:
                return out
            if not out or value > out[-1]:
                out.append(value)
        decade *= 10


def align_documents(task: str, metric: str, per_model: Mapping[str, Mapping[Document, float]],
                    min_documents: int = MIN_DOCUMENTS) -> tuple[TaskSamples | None, list[str]]:
    """Lay out one task's per-sample values as models x common documents.

    Models evaluated on fewer than `min_documents` documents are left out; the others keep the documents they
    all share, so every model is scored on the same subsets (as one `--limit` run would do).

    Returns:
        The aligned samples (None when fewer than `min_documents` common documents remain), and the models
        left out.
    """
    kept = {m: v for m, v in sorted(per_model.items()) if len(v) >= min_documents}
    skipped = sorted(set(per_model) - set(kept))
    if not kept:
        return None, skipped
    common = set.intersection(*(set(v) for v in kept.values()))
    if len(common) < min_documents:
        return None, sorted(per_model)
    documents = sorted(common, key=repr)
    values = np.asarray([[kept[m][d] for d in documents] for m in kept], dtype=float)
    return TaskSamples(task, metric, tuple(kept), values), skipped


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of two rankings (ties count in neither direction); NaN when either is all ties."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    i, j = np.triu_indices(len(xs), k=1)
    sx, sy = np.sign(xs[i] - xs[j]), np.sign(ys[i] - ys[j])
    denominator = float(np.sqrt(np.count_nonzero(sx) * np.count_nonzero(sy)))
    return float(np.sum(sx * sy)) / denominator if denominator > 0 else float("nan")


def _subset_sums(values: np.ndarray, limits: Sequence[int], replicates: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Sums of each model's values over the first n documents of `replicates` random orders: (R, models, limits).

    Sums rather than means so that two models with the same number of correct answers tie exactly.
    """
    n_models, n_docs = values.shape
    top = max(limits)
    columns = np.asarray(limits) - 1
    out = np.empty((replicates, n_models, len(limits)))
    for start in range(0, replicates, _CHUNK):
        size = min(_CHUNK, replicates - start)
        orders = rng.permuted(np.tile(np.arange(n_docs), (size, 1)), axis=1)[:, :top]
        for m in range(n_models):
            out[start:start + size, m, :] = np.cumsum(values[m][orders], axis=1)[:, columns]
    return out


def _tau_points(sums: np.ndarray, full_sums: np.ndarray, limits: Sequence[int]) -> list[TauPoint]:
    n_models = full_sums.shape[0]
    if n_models < 2:
        return [TauPoint(n, None, None, None) for n in limits]
    i, j = np.triu_indices(n_models, k=1)
    sx = np.sign(sums[:, i, :] - sums[:, j, :])  # (R, pairs, limits)
    sy = np.sign(full_sums[i] - full_sums[j])  # (pairs,)
    numerator = np.einsum("rpl,p->rl", sx, sy)
    denominator = np.sqrt(np.count_nonzero(sx, axis=1) * np.count_nonzero(sy))
    # A subset on which every model ties (e.g. all score 0 on two documents) says nothing about the order: that
    # counts as tau 0, not as a missing value, or small limits would look better than they are. Tau is undefined
    # only where the full scores all tie.
    untied_full = np.count_nonzero(sy) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1),
                       0.0 if untied_full else np.nan)
    points = []
    for k, n in enumerate(limits):
        defined = tau[:, k][~np.isnan(tau[:, k])]
        if defined.size == 0:
            points.append(TauPoint(n, None, None, None))
        else:
            low, high = np.quantile(defined, [0.025, 0.975])
            points.append(TauPoint(n, float(defined.mean()), float(low), float(high)))
    return points


def _smallest_stable(flags: dict[int, bool]) -> int | None:
    """The smallest key from which every larger key is True too; None if the largest is False."""
    best = None
    for limit in sorted(flags, reverse=True):
        if not flags[limit]:
            break
        best = limit
    return best


def analyse_task(samples: TaskSamples, *, epsilon: float = DEFAULT_EPSILON, share: float = DEFAULT_SHARE,
                 replicates: int = DEFAULT_REPLICATES, rng: np.random.Generator | None = None) -> TaskCurve:
    """Resample one task's documents and measure error, intervals and rank agreement at every candidate limit.

    Args:
        samples: The task's per-sample values, models x documents.
        epsilon: The tolerated absolute error of a score.
        share: The share of models that must meet `epsilon` for a limit to be recommended.
        replicates: Random document orders drawn.
        rng: The random generator (seeded by the caller for reproducible numbers).
    """
    values = np.asarray(samples.values, dtype=float)
    n_docs = values.shape[1]
    rng = rng if rng is not None else np.random.default_rng(0)
    limits = candidate_limits(n_docs)
    full_sums = values.sum(axis=1)
    full = full_sums / n_docs
    if not limits:
        return TaskCurve(samples.task, samples.metric, n_docs,
                         [PairCurve(m, float(full[k]), []) for k, m in enumerate(samples.models)], [], {}, None, None)
    sums = _subset_sums(values, limits, replicates, rng)
    scores = sums / np.asarray(limits, dtype=float)
    errors = np.abs(scores - full[None, :, None])
    mean_err = errors.mean(axis=0)
    p95_err = np.quantile(errors, 0.95, axis=0)
    low, high = np.quantile(scores, [0.025, 0.975], axis=0)
    pairs = [PairCurve(model, float(full[m]), [
        LimitPoint(n, float(mean_err[m, k]), float(p95_err[m, k]), float(low[m, k]), float(high[m, k]))
        for k, n in enumerate(limits)]) for m, model in enumerate(samples.models)]
    meets = p95_err <= epsilon + 1e-12  # (models, limits)
    share_meeting = {n: float(meets[:, k].mean()) for k, n in enumerate(limits)}
    tau = _tau_points(sums, full_sums, limits)
    recommended = _smallest_stable({n: s >= share for n, s in share_meeting.items()})
    rank_limit = _smallest_stable({p.limit: p.mean is not None and p.mean >= TAU_TARGET for p in tau})
    return TaskCurve(samples.task, samples.metric, n_docs, pairs, tau, share_meeting, recommended, rank_limit)


def calibrate_limits(tasks: Sequence[TaskSamples], *, epsilon: float = DEFAULT_EPSILON,
                     share: float = DEFAULT_SHARE, replicates: int = DEFAULT_REPLICATES,
                     seed: int = 0) -> LimitReport:
    """Phase 1 over several tasks: per-task curves and the overall recommendation.

    A limit at or above a task's document count evaluates the whole task, so its pairs meet the target there.

    Raises:
        ValueError: epsilon outside (0, 1), share outside (0, 1], fewer than 10 replicates, or no tasks.
    """
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    if replicates < 10:
        raise ValueError(f"need at least 10 replicates, got {replicates}")
    if not tasks:
        raise ValueError("no tasks to calibrate")
    rng = np.random.default_rng(seed)
    curves = [analyse_task(t, epsilon=epsilon, share=share, replicates=replicates, rng=rng) for t in tasks]
    all_limits = sorted({n for c in curves for n in c.share_meeting})
    overall: dict[int, float] = {}
    for n in all_limits:
        met = total = 0.0
        for curve in curves:
            total += len(curve.pairs)
            # A limit that is not a candidate of this task is at or above its size: the whole task, no error.
            met += len(curve.pairs) * curve.share_meeting.get(n, 1.0)
        overall[n] = met / total if total else 0.0
    recommended = _smallest_stable({n: s >= share for n, s in overall.items()})
    return LimitReport(epsilon, share, replicates, seed, curves, overall, recommended)


def report_json(report: LimitReport) -> dict[str, Any]:
    """The report as plain JSON-ready values."""
    return {
        "epsilon": report.epsilon, "share": report.share, "replicates": report.replicates, "seed": report.seed,
        "criterion": "a (model, task) meets the target at n when the 95th percentile of |subset score - full score| "
                     "over the replicates is <= epsilon; a limit is recommended when at least `share` of the pairs "
                     "meet it there and at every larger candidate; null means all documents",
        "recommended_limit": report.recommended,
        "share_meeting": {str(n): s for n, s in report.share_meeting.items()},
        "tasks": [{
            "task": c.task, "metric": c.metric, "documents": c.documents, "recommended_limit": c.recommended,
            "rank_limit": c.rank_limit, "tau_target": TAU_TARGET,
            "share_meeting": {str(n): s for n, s in c.share_meeting.items()},
            "kendall_tau": [p._asdict() for p in c.tau],
            "models": [{"model": p.model, "full_score": p.full_score, "points": [q._asdict() for q in p.points]}
                       for p in c.pairs],
        } for c in report.tasks],
    }
