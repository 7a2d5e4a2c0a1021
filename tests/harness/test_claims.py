"""Claims: exactly one of the worker and the driver wins each task of an attempt."""

from __future__ import annotations

from pathlib import Path

from spectrabench.harness.claims import claim_task, claimed_by


def test_the_first_claim_wins_and_the_driver_never_claims_before_the_worker_started(tmp_path: Path) -> None:
    assert not claim_task(tmp_path, "sb_ko", "driver")  # no claims folder yet: the worker has not started
    assert claimed_by(tmp_path, "sb_ko") is None
    assert claim_task(tmp_path, "sb_facts", "worker", create=True)
    assert claim_task(tmp_path, "sb_ko", "driver")
    assert not claim_task(tmp_path, "sb_ko", "worker", create=True)
    assert not claim_task(tmp_path, "sb_facts", "driver")
    assert (claimed_by(tmp_path, "sb_facts"), claimed_by(tmp_path, "sb_ko")) == ("worker", "driver")
