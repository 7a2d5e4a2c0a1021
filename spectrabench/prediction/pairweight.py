"""How far the learned runtime correction carries over to a (model, task) pair the history has never seen.

The trees learn what the rules get wrong from the pairs they have measured. For a pair they have not, that
correction may carry over (on the simulated GPU history the rules are 3-4x off for every pair, and the trees fix it)
or may not (on the smoke history the rules are within ~17% and the trees' corrections, learned from 12 pairs, add
errors of their own to the 4 held out: 23.7% against the rules' 17.4%). Which of the two a history is can be
measured on the history itself: its pairs are dealt into folds, each fold's records are predicted by trees that
never saw those pairs, and the weight on the trees' correction that predicts them best is the one used for new pairs
(`UNSEEN_PAIR_WEIGHTS`; pairs with history keep the whole correction). The score is the mean absolute log error, so
that over- and under-prediction by the same factor weigh the same for a scheduler.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

from spectrabench.prediction.features import HistoryRecord

# The weights tried, from the rules alone (0) to the trees alone (1).
UNSEEN_PAIR_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
FOLDS = 4
# Below this many distinct pairs, or records, the folds say too little: the trees' correction is used whole.
MIN_PAIRS = 2 * FOLDS
MIN_RECORDS = 40

# (actual runtime, the informed rules' runtime, the trees' runtime) of one held-out record.
Guess = tuple[float, float, float]
# Trains on the first records and predicts the second ones' `Guess`es, seeing none of their pairs.
FoldPredictor = Callable[[Sequence[HistoryRecord], Sequence[HistoryRecord]], list[Guess]]


def pair_folds(records: Sequence[HistoryRecord], folds: int = FOLDS, seed: int | None = None
               ) -> list[tuple[list[HistoryRecord], list[HistoryRecord]]]:
    """(train, test) per fold: the distinct (model, task) pairs, in sorted order (shuffled by `seed` when given),
    dealt round-robin into `folds`; each fold's records are its test, the rest (in their given order) its training."""
    pairs = sorted({(r.model, r.task) for r in records})
    if seed is not None:
        random.Random(seed).shuffle(pairs)
    out = []
    for fold in range(folds):
        held = set(pairs[fold::folds])
        out.append(([r for r in records if (r.model, r.task) not in held],
                    [r for r in records if (r.model, r.task) in held]))
    return out


def blended(rules_s: float, learned_s: float, weight: float) -> float:
    """The geometric blend of the informed rules and the trees at `weight` on the trees."""
    return math.exp((1 - weight) * math.log(max(rules_s, 1e-9)) + weight * math.log(max(learned_s, 1e-9)))


def best_weight(guesses: Sequence[Guess]) -> float:
    """The weight in `UNSEEN_PAIR_WEIGHTS` whose blend has the least mean absolute log error on `guesses` (ties go
    to the larger weight: the trees are what learning is for)."""
    usable = [g for g in guesses if g[0] > 0]
    if not usable:
        return 1.0

    def error(weight: float) -> float:
        return sum(abs(math.log(blended(rules, learned, weight) / actual)) for actual, rules, learned in usable)

    return min(reversed(UNSEEN_PAIR_WEIGHTS), key=error)


def unseen_pair_weight(records: Sequence[HistoryRecord], predict_fold: FoldPredictor) -> float:
    """The weight on the trees' runtime correction for pairs without history, measured on `records` by pair folds.

    Args:
        records: The training history.
        predict_fold: Fits on a fold's training records and returns its test records' guesses.
    """
    if len({(r.model, r.task) for r in records}) < MIN_PAIRS or len(records) < MIN_RECORDS:
        return 1.0
    guesses: list[Guess] = []
    for train, test in pair_folds(records):
        guesses.extend(predict_fold(train, test))
    return best_weight(guesses)
