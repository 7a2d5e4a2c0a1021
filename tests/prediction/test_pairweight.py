"""Unseen pairs: the learned runtime correction reaches a new (model, task) pair only as far as pair folds showed
that it carries over."""

from __future__ import annotations

import random

from spectrabench.prediction.features import HistoryRecord
from spectrabench.prediction.learned import fit
from spectrabench.prediction.pairweight import best_weight, pair_folds, unseen_pair_weight
from spectrabench.prediction.rules import estimate

from . import synthetic_history


def test_the_weight_follows_whichever_side_predicts_held_out_pairs() -> None:
    # (actual, informed rules, trees)
    assert best_weight([(10.0, 10.0, 20.0), (5.0, 5.0, 2.0)]) == 0.0
    assert best_weight([(10.0, 30.0, 10.0), (5.0, 1.0, 5.0)]) == 1.0
    assert best_weight([(10.0, 5.0, 20.0)]) == 0.5  # halfway in log terms
    assert best_weight([(10.0, 10.0, 10.0)]) == 1.0  # a tie goes to the trees
    assert best_weight([]) == 1.0


def test_every_pair_is_held_out_once_and_never_trained_on() -> None:
    records = synthetic_history(120)
    folds = pair_folds(records)
    held = [(r.model, r.task) for _, test in folds for r in test]
    assert sorted(set(held)) == sorted({(r.model, r.task) for r in records})
    assert len(held) == len(records)
    for train, test in folds:
        assert not {(r.model, r.task) for r in train} & {(r.model, r.task) for r in test}


def test_too_few_pairs_keep_the_whole_correction() -> None:
    records = [r for r in synthetic_history(200) if r.task in ("arc_easy", "piqa")]
    few = [r for r in records if r.model in sorted({x.model for x in records})[:3]]
    assert len({(r.model, r.task) for r in few}) < 8

    def never(*_: object) -> list[tuple[float, float, float]]:
        raise AssertionError("folds need at least 8 pairs")

    assert unseen_pair_weight(few, never) == 1.0


def _per_pair_quirks(records: list[HistoryRecord], seed: int = 1) -> list[HistoryRecord]:
    """The same jobs, each pair's runtime the rules' times a factor of its own (0.5x-2x, drawn per pair): nothing a
    new pair could inherit."""
    rng = random.Random(seed)
    factor: dict[tuple[str, str], float] = {}
    out = []
    for r in records:
        quirk = factor.setdefault((r.model, r.task), rng.lognormvariate(0, 0.5))
        out.append(r._replace(runtime_s=estimate(r.features).runtime_s * quirk * rng.lognormvariate(0, 0.05)))
    return out


def test_a_per_pair_quirk_is_not_passed_on_but_a_family_factor_is() -> None:
    family = synthetic_history(240)
    # The family factor (0.4x-2.5x) holds for every task of a model: it carries over to its new pairs.
    assert fit(family).unseen_pair_weight >= 0.75
    # Quirks of each pair do not: the trees fit them on the pairs they saw, and new pairs get the rules.
    quirky = _per_pair_quirks(family)
    trained = fit(quirky)
    assert trained.unseen_pair_weight <= 0.25
    # Pairs with history still get the whole correction: a pair seen before is predicted near its own factor.
    counts: dict[tuple[str, str], int] = {}
    for r in quirky:
        counts[r.model, r.task] = counts.get((r.model, r.task), 0) + 1
    seen = next(r for r in reversed(quirky) if counts[r.model, r.task] >= 3)
    others = [r for r in quirky if r is not seen]
    ratio = trained.predict(seen.features, others).runtime_s / estimate(seen.features).runtime_s
    own = seen.runtime_s / estimate(seen.features).runtime_s
    assert own / 1.5 < ratio < own * 1.5, (own, ratio)
