"""One retry policy for every backend: what to do after a failed attempt, decided from its error kind alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from spectrabench.harness.workerspec import ErrorKind

#: Kinds that no retry can fix: the model or data cannot be had, or the task config is wrong.
FINAL_KINDS = frozenset({ErrorKind.UNAVAILABLE, ErrorKind.BAD_TASK, ErrorKind.INTERRUPTED})


class RetryDecision(NamedTuple):
    """Whether to try again, with which batch size, and why (shown to the user and stored)."""

    retry: bool
    batch_size: int
    reason: str


def decide_retry(kind: ErrorKind, batch_size: int, earlier_kinds: Sequence[ErrorKind],
                 max_retries: int = 2, *, beside_others: bool = False) -> RetryDecision:
    """Decide what follows a failed attempt.

    Args:
        kind: Why the attempt just failed.
        batch_size: The batch size it ran with.
        earlier_kinds: Error kinds of the job's earlier failed attempts (not including this one).
        max_retries: Retries allowed for crashes and bad output together.
        beside_others: The attempt shared its GPU with other jobs at some point (co-location).

    oom halves the batch down to 1 (those retries are bounded by the halving, not by max_retries), except that an
    attempt that shared its GPU is first retried alone at the same batch: its neighbours may have taken the memory
    (the caller then never lets it share again, so this happens once); a timeout is retried once; crash and
    bad_output up to max_retries; unavailable and bad_task never.
    """
    if kind in FINAL_KINDS:
        return RetryDecision(False, batch_size, f"{kind.value} is not retried")
    if kind is ErrorKind.OOM:
        if beside_others:
            return RetryDecision(True, batch_size, f"out of memory at batch {batch_size} beside other jobs on its "
                                                   "GPU: retrying alone")
        if batch_size <= 1:
            return RetryDecision(False, batch_size, "out of memory at batch size 1")
        return RetryDecision(True, max(1, batch_size // 2), f"out of memory at batch {batch_size}: halving")
    if kind is ErrorKind.TIMEOUT:
        if ErrorKind.TIMEOUT in earlier_kinds:
            return RetryDecision(False, batch_size, "timed out twice")
        return RetryDecision(True, batch_size, "timed out: retrying once")
    used = sum(1 for k in earlier_kinds if k in (ErrorKind.CRASH, ErrorKind.BAD_OUTPUT))
    if used >= max_retries:
        return RetryDecision(False, batch_size, f"{kind.value} after {used} retries")
    return RetryDecision(True, batch_size, f"{kind.value}: retry {used + 1} of {max_retries}")
