"""Random nested subsets of a task's documents: `run --limit N --sampling random`.

lm-eval's `--limit N` scores the first N documents, which for many datasets are not a fair sample (sorted by
subject, source or length). Instead each leaf task's documents are permuted once, by a seed and the task's name,
and a run scores the first N of that permutation through lm-eval's explicit sample ids (`samples=`). The same
seed gives the same permutation for every N, so a smaller sample is always nested in a larger one: what phase 1
(`calibrate limit`) needs to study how scores converge.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any


def nested_sample(n_docs: int, limit: int, seed: int, task: str) -> list[int]:
    """The first `limit` indexes of a seeded permutation of `range(n_docs)` (all of them when fewer).

    Args:
        n_docs: Documents the task has.
        limit: Documents to score.
        seed: Chooses the permutation; with the task's name, so tasks are not permuted alike.
        task: The leaf task's name.
    """
    order = list(range(n_docs))
    random.Random(f"{seed}/{task}").shuffle(order)
    return order[:limit]


def random_samples(task_name: str, task_manager: Any, limit: int, seed: int) -> dict[str, list[int]]:
    """lm-eval's `samples=` argument for `task_name`: every leaf task's nested sample of `limit` documents."""
    # `load` flattens groups: every leaf Task of the name, under its own name.
    return leaf_samples(task_manager.load([task_name])["tasks"], limit, seed)


def leaf_samples(leaves: Mapping[str, Any], limit: int, seed: int) -> dict[str, list[int]]:
    """lm-eval's `samples=` argument for leaf tasks already built (lm-eval `Task`s by name): each one's nested
    sample of `limit` documents. A part of a group (`harness.groupscores`) draws from the leaves it holds, the very
    samples the whole group draws for them, without building the group again."""
    # Sorted: lm-eval enumerates the chosen documents in dataset order and records `indices[k]` as the k-th one's
    # doc_id, which is its dataset index only when the indices are in that order too.
    return {name: sorted(nested_sample(len(task.eval_docs), limit, seed, name)) for name, task in leaves.items()}
