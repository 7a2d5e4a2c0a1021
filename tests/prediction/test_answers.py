"""Answer shares: task effect plus model effect, and which batches stop like a batch of one."""

from __future__ import annotations

import math

import pytest

from spectrabench.prediction.answers import AnswerShares, answer_kind


@pytest.mark.parametrize(("batch", "stops", "kind"), [
    (1, None, "t|one"), (1, 5, "t|one"), (8, 1, "t|one"), (8, 5, "t|many"), (8, None, "t|many"),
])
def test_only_batches_of_one_and_tasks_with_one_stop_string_stop_like_a_single_answer(
        batch: int, stops: int | None, kind: str) -> None:
    assert answer_kind("t", batch, stops) == kind


def _history() -> AnswerShares:
    """Random weights ramble to the cap (log share 0) on both tasks; the real model answered `short` in a fifth."""
    shares = AnswerShares()
    for model in ("random1", "random2"):
        for kind in ("short|one", "short|many", "code|one", "code|many"):
            for _ in range(3):
                shares.add(model, kind, 0.0)
    for _ in range(3):
        shares.add("real", "short|one", math.log(0.2))
        shares.add("real", "short|many", 0.0)
    return shares


def test_a_model_that_stops_early_on_one_task_is_expected_to_on_another_and_ramblers_are_not() -> None:
    shares = _history()
    # `code` never ran on the real model: its batch of one is expected well under the cap, moved by how it
    # answered `short`, shrunk a little towards no effect.
    assert math.log(0.2) < shares.share("real", "code|one") < math.log(0.4)
    assert shares.share("random1", "code|one") == pytest.approx(0.0, abs=0.05)
    # Larger batches of a task with several stop strings run on whatever the model: no model effect.
    assert shares.share("real", "code|many") == pytest.approx(0.0, abs=1e-9)


def test_a_kind_never_seen_borrows_its_tasks_other_kind_and_an_unknown_task_has_no_share() -> None:
    shares = AnswerShares()
    shares.add("a", "gen|one", math.log(0.5))
    assert shares.share("b", "gen|many") == pytest.approx(math.log(0.5))
    assert math.isnan(shares.share("a", "other|one"))
    shares.add("a", "x|one", float("nan"))  # an unmeasurable record is ignored
    assert math.isnan(shares.share("a", "x|one"))
