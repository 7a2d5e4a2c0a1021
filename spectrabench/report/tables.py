"""The model x task leaderboard of a run, in the formats people and CI read."""

from __future__ import annotations

import csv
import io
from typing import Any, NamedTuple

from spectrabench.store.queries import FailureEntry, RunInfo, ScoreEntry

# The metric a leaderboard cell shows, in order of preference; lm-eval tasks report several.
PRIMARY_METRICS = ("acc", "exact_match", "pass@1", "acc_norm", "f1", "em", "mcc", "bleu")


class Leaderboard(NamedTuple):
    """A run's scores as a grid, plus what went wrong."""

    run: RunInfo
    models: list[str]
    tasks: list[str]
    cells: dict[tuple[str, str], ScoreEntry]
    failures: list[FailureEntry]


def _primary(entries: list[ScoreEntry]) -> ScoreEntry | None:
    for metric in PRIMARY_METRICS:
        candidates = [e for e in entries if e.metric == metric]
        if candidates:
            return candidates[0]
    return entries[0] if entries else None


def build_leaderboard(run: RunInfo, pairs: list[tuple[str, str]], scores: list[ScoreEntry],
                      failures: list[FailureEntry]) -> Leaderboard:
    """Pick each (model, task)'s primary metric and lay the run out as a grid."""
    models = list(dict.fromkeys(m for m, _ in pairs))
    tasks = list(dict.fromkeys(t for _, t in pairs))
    grouped: dict[tuple[str, str], list[ScoreEntry]] = {}
    for entry in scores:
        grouped.setdefault((entry.model, entry.task), []).append(entry)
    cells = {key: cell for key, entries in grouped.items() if (cell := _primary(entries)) is not None}
    return Leaderboard(run, models, tasks, cells, failures)


def cell_text(entry: ScoreEntry | None) -> str:
    """A leaderboard cell: the value with its stderr, or "-" when the pair has no score."""
    if entry is None:
        return "-"
    stderr = f" ±{entry.stderr:.3f}" if entry.stderr is not None else ""
    return f"{entry.value:.4f}{stderr}"


def to_markdown(board: Leaderboard) -> str:
    """GitHub-flavoured markdown: a header line, the grid, then failures."""
    run = board.run
    lines = [f"# Run {run.run_id} ({run.profile}, {run.mode}, limit {run.limit or 'all'}): {run.status}", ""]
    lines.append("| model | " + " | ".join(board.tasks) + " |")
    lines.append("|---|" + "---|" * len(board.tasks))
    for model in board.models:
        lines.append(f"| {model} | " + " | ".join(cell_text(board.cells.get((model, t))) for t in board.tasks) + " |")
    metrics = sorted({f"{c.task}: {c.metric} ({c.filter})" for c in board.cells.values()})
    if metrics:
        lines += ["", "Metrics: " + "; ".join(metrics)]
    if board.failures:
        lines += ["", f"## Failures ({len(board.failures)})", ""]
        lines += [f"- {f.model} x {', '.join(f.tasks)}: {f.error_kind}: {f.error}" for f in board.failures]
    return "\n".join(lines) + "\n"


def to_rows(board: Leaderboard) -> list[dict[str, Any]]:
    """One flat record per (model, task) of the run."""
    rows = []
    for model in board.models:
        for task in board.tasks:
            cell = board.cells.get((model, task))
            rows.append({"run_id": board.run.run_id, "model": model, "task": task,
                         "metric": cell.metric if cell else None, "filter": cell.filter if cell else None,
                         "value": cell.value if cell else None, "stderr": cell.stderr if cell else None,
                         "n_samples": cell.n_samples if cell else None,
                         "measured_in": cell.measured_in if cell else None})
    return rows


def to_csv(board: Leaderboard) -> str:
    """CSV of `to_rows`."""
    rows = to_rows(board)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["run_id"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
