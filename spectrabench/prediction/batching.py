"""Batch sizes from predicted memory: the largest batch that fits the device with a safety margin.

Batch size never changes a score (lm-eval scores each request alone; padding is masked), so the scheduler is
free to pick it. On GPU a larger batch is faster until memory runs out; on CPU it buys little and the profile's
fixed value is kept, so CPU runs stay comparable with the baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from spectrabench.prediction.features import JobFeatures

DEFAULT_CANDIDATES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CPU_REASON = "CPU: fixed from the profile"


class BatchChoice(NamedTuple):
    """A batch size and why it was chosen."""

    batch_size: int
    reason: str


def choose_batch_size(features_for: Callable[[int], JobFeatures], predict_mem: Callable[[JobFeatures], float],
                      free_mem_gb: float, margin: float, candidates: Sequence[int] = DEFAULT_CANDIDATES,
                      cpu_default: int | None = None) -> BatchChoice:
    """The largest candidate batch whose predicted peak memory fits `free_mem_gb` with the safety margin.

    A batch fits when `predict_mem(features_for(b)) <= free_mem_gb * (1 - margin)`. Candidates are tried in
    increasing order and the search stops at the first that does not fit, so a prediction that is not monotone
    in the batch size can never skip over an overflow. Batches larger than the job's request count do the same
    work as one that holds every request, so the search stops there too.

    Args:
        features_for: The job's features at a given batch size.
        predict_mem: Predicted peak memory (GiB) of a job, e.g. the rules' or the blended prediction.
        free_mem_gb: Memory free on the device for this job.
        margin: Share of free memory held back for prediction error and fragmentation (0.1 = 10%).
        candidates: Batch sizes to consider.
        cpu_default: The profile's batch size; used as is when the job runs on a CPU.

    Returns:
        The choice; batch 1 with a reason starting "does not fit" when even one request overflows (the caller
        decides whether to run it anyway, move it, or skip it).
    """
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    sizes = sorted({c for c in candidates if c >= 1})
    if not sizes:
        raise ValueError("no batch size candidates >= 1")
    first = features_for(sizes[0])
    if first.device_kind == "cpu" and cpu_default is not None:
        return BatchChoice(cpu_default, CPU_REASON)
    budget = free_mem_gb * (1 - margin)
    chosen: tuple[int, float] | None = None
    for size in sizes:
        features = first if size == sizes[0] else features_for(size)
        needed = predict_mem(features)
        if needed > budget:
            break
        chosen = (size, needed)
        if size >= features.requests:
            return BatchChoice(size, f"all {features.requests} requests fit in one batch of {size} "
                                     f"({needed:.1f} of {budget:.1f} GiB usable)")
    if chosen is None:
        needed = predict_mem(features_for(1))
        return BatchChoice(1, f"does not fit: batch 1 needs {needed:.1f} GiB, {budget:.1f} of {free_mem_gb:.1f} GiB "
                              f"free is usable with a {margin:.0%} margin")
    size, needed = chosen
    return BatchChoice(size, f"largest batch that fits: {needed:.1f} of {budget:.1f} GiB usable "
                             f"({free_mem_gb:.1f} GiB free, {margin:.0%} margin)")
