"""How long a generation task's answers run, as a share of its cap, learned from finished records.

The rules decode every batch to `max_gen_toks`. Real answers stop earlier, and by how much depends on both the task
(short numbers against whole functions) and the model (a model that answers and stops, against random weights
that ramble to the cap). `AnswerShares` keeps the log share each record took, per model and per "answer kind" of a
task, and explains it as task effect + model effect (a two-way additive fit, the model effect shrunk towards 0),
so a pair that never ran gets its task's share moved by how its model answered elsewhere.

Batches matter: lm-eval (`MultiTokenEOSCriteria`) stops a batch only when every row has met the same stop string.
A task with one stop string stops a batch once its longest answer has; then a batch of any size runs about as a
batch of one (kind "one"). A task with several stop strings (HumanEval's "\\ndef", "\\nclass", ...) lets rows end
on different strings, so its larger batches run on towards the cap whatever the model: kind "many", where the
model effect does not apply.
"""

from __future__ import annotations

import math
from collections import defaultdict

# How many records of other tasks a model effect is worth against none (shrinkage towards 0).
ANSWER_PRIOR = 2.0
# How many records a task's pooled effect (both kinds of batch) is worth against those of one kind.
KIND_PRIOR = 2.0
_ITERATIONS = 8


def _task_of(kind: str) -> str:
    return kind.rsplit("|", 1)[0]


def answer_kind(task: str, batch_size: int, stop_sequences: int | None) -> str:
    """The key a record's answer share is kept under: the task, and whether its batches stop like a batch of one.

    Args:
        task: The task's name.
        batch_size: The batch the job ran at.
        stop_sequences: The task's stop strings (`until`); None when unknown (taken as several).
    """
    alone = batch_size <= 1 or stop_sequences == 1
    return f"{task}|{'one' if alone else 'many'}"


class AnswerShares:
    """Log answer shares per (model, kind), and their task + model fit."""

    def __init__(self) -> None:
        self._sums: dict[tuple[str, str], float] = defaultdict(float)
        self._counts: dict[tuple[str, str], int] = defaultdict(int)
        self._fit: tuple[dict[str, float], dict[str, float]] | None = None

    def add(self, model: str, kind: str, log_share: float) -> None:
        """Record one finished job's log share of the cap."""
        if math.isfinite(log_share):
            self._sums[model, kind] += log_share
            self._counts[model, kind] += 1
            self._fit = None

    def share(self, model: str, kind: str) -> float:
        """The log share expected of `model` on `kind`: the kind's effect plus the model's where it applies; the
        other kind of the same task stands in for a kind never seen; NaN when the task never ran."""
        task_effect, model_effect = self._fitted()
        effect = task_effect.get(kind)
        if effect is None:
            others = [v for k, v in task_effect.items() if _task_of(k) == _task_of(kind)]
            if not others:
                return math.nan
            effect = sum(others) / len(others)
        if kind.endswith("|one"):
            effect += model_effect.get(model, 0.0)
        return effect

    def _fitted(self) -> tuple[dict[str, float], dict[str, float]]:
        if self._fit is None:
            self._fit = self._solve()
        return self._fit

    def _solve(self) -> tuple[dict[str, float], dict[str, float]]:
        cells = {key: (self._sums[key] / n, float(n)) for key, n in self._counts.items() if n}
        kinds = {kind for _, kind in cells}
        # A task's plain mean over both kinds of batch: what kind "many", which no model moves, is shrunk towards.
        plain: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for (_, kind), (mean, n) in cells.items():
            plain[_task_of(kind)][0] += n * mean
            plain[_task_of(kind)][1] += n
        task_effect = dict.fromkeys(kinds, 0.0)
        model_effect = {model: 0.0 for model, _ in cells}
        # Alternating least squares, weighted by records; a few rounds settle the handful of cells a history has.
        for _ in range(_ITERATIONS):
            own: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # per kind: less the model effects
            for (model, kind), (mean, n) in cells.items():
                shift = model_effect[model] if kind.endswith("|one") else 0.0
                own[kind][0] += n * (mean - shift)
                own[kind][1] += n
            adjusted: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # per task: less the model effects
            for kind, (total, n) in own.items():
                adjusted[_task_of(kind)][0] += total
                adjusted[_task_of(kind)][1] += n
            # Each kind is shrunk towards its task's mean over both kinds: a few records of one kind of batch say
            # less than all of the task's.
            for kind, (total, n) in own.items():
                towards = adjusted[_task_of(kind)] if kind.endswith("|one") else plain[_task_of(kind)]
                task_effect[kind] = (total + KIND_PRIOR * towards[0] / towards[1]) / (n + KIND_PRIOR)
            by_model: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
            for (model, kind), (mean, n) in cells.items():
                if kind.endswith("|one"):
                    by_model[model][0] += n * (mean - task_effect[kind])
                    by_model[model][1] += n
            model_effect = {model: by_model[model][0] / (by_model[model][1] + ANSWER_PRIOR) for model in model_effect}
        return task_effect, model_effect
