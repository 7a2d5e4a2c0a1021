"""Phase 1 reads each pair's largest evaluation and one primary metric per task from the store."""

from __future__ import annotations

from pathlib import Path

from spectrabench.store.experiment_queries import limit_samples

from .stores import write_samples


def test_each_pair_comes_from_its_largest_run_with_the_primary_metric(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    write_samples(db, "r1", "m", "facts", [1.0] * 8, finished=0)
    write_samples(db, "r2", "m", "facts", [1.0, 0.0] * 20, finished=1)
    write_samples(db, "r3", "m", "facts", [0.0] * 8, finished=2)  # newer but smaller: not chosen
    write_samples(db, "r2", "m", "arith", [1.0, 1.0, 0.0] * 10, metrics=[("exact_match", "first-integer")])
    pairs = {(p.model, p.task): p for p in limit_samples(db)}
    facts = pairs[("m", "facts")]
    assert (facts.run_id, facts.metric, facts.filter, len(facts.values)) == ("r2", "acc", "none", 40)
    assert sum(facts.values.values()) == 20  # acc, not acc_norm (the complement)
    assert facts.values[("facts", 0)] == 1.0
    arith = pairs[("m", "arith")]
    assert (arith.metric, arith.filter, len(arith.values)) == ("exact_match", "first-integer", 30)
