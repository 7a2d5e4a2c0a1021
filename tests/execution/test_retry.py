"""The retry policy, decided from error kinds alone."""

from __future__ import annotations

from spectrabench.execution.retry import decide_retry
from spectrabench.harness.worker import classify_exception
from spectrabench.harness.workerspec import ErrorKind as K


def test_oom_halves_down_to_one_then_stops() -> None:
    batches, earlier, batch = [], [], 16
    while (decision := decide_retry(K.OOM, batch, earlier)).retry:
        earlier.append(K.OOM)
        batch = decision.batch_size
        batches.append(batch)
    assert batches == [8, 4, 2, 1]
    assert "batch size 1" in decision.reason


def test_crash_and_bad_output_share_max_retries() -> None:
    assert decide_retry(K.CRASH, 4, [], max_retries=2).retry
    assert decide_retry(K.BAD_OUTPUT, 4, [K.CRASH], max_retries=2).retry
    assert not decide_retry(K.CRASH, 4, [K.CRASH, K.BAD_OUTPUT], max_retries=2).retry
    assert not decide_retry(K.CRASH, 4, [], max_retries=0).retry
    assert decide_retry(K.CRASH, 4, [K.OOM, K.OOM], max_retries=1).retry, "oom retries are not counted"


def test_timeout_is_retried_once() -> None:
    assert decide_retry(K.TIMEOUT, 4, []).retry
    assert not decide_retry(K.TIMEOUT, 4, [K.TIMEOUT]).retry


def test_final_kinds_are_never_retried() -> None:
    for kind in (K.UNAVAILABLE, K.BAD_TASK, K.INTERRUPTED):
        assert not decide_retry(kind, 4, []).retry


def test_classification_of_exceptions() -> None:
    import torch

    assert classify_exception(torch.OutOfMemoryError("CUDA out of memory"), "task") is K.OOM
    assert classify_exception(MemoryError(), "task") is K.OOM
    assert classify_exception(OSError("We couldn't connect to 'https://huggingface.co'"), "load") is K.UNAVAILABLE
    assert classify_exception(ValueError("Unrecognized model in /x"), "load") is K.UNAVAILABLE
    assert classify_exception(KeyError("no_such_task"), "task") is K.BAD_TASK
    assert classify_exception(RuntimeError("boom"), "task") is K.CRASH


def test_an_oom_beside_other_jobs_is_retried_alone_at_the_same_batch_first() -> None:
    decision = decide_retry(K.OOM, 16, [], beside_others=True)
    assert decision.retry and decision.batch_size == 16 and "alone" in decision.reason
    # Alone, the next OOM halves as usual.
    assert decide_retry(K.OOM, 16, [K.OOM]).batch_size == 8
    # Only memory is about neighbours: a crash beside others counts as any crash.
    assert not decide_retry(K.CRASH, 16, [K.CRASH, K.CRASH], beside_others=True).retry
