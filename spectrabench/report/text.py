"""The full report as markdown (for people and PR comments) and JSON (for CI): leaderboard, jobs, attempts, compare."""

from __future__ import annotations

import json
from typing import Any

from spectrabench.report.data import (
    BUSY_MACHINE_WARNING,
    CompareView,
    ReportData,
    RunSide,
    busy_with_other_work,
    contended_attempts_note,
)
from spectrabench.report.tables import to_markdown, to_rows


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    def clean(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    return (["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            + ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows])


def to_report_markdown(data: ReportData) -> str:
    """The leaderboard (as `tables.to_markdown`), then predictions, attempts and the comparison."""
    lines = [to_markdown(data.board).rstrip("\n")]
    if data.jobs:
        lines += ["", "## Predicted vs measured", ""]
        lines += _md_table(["model", "tasks", "stage", "predicted s", "measured s", "predicted GB", "measured GB",
                            "attempts", "status"],
                           [[j.model, ", ".join(j.tasks), j.stage or "-", _num(j.predicted_runtime_s, 1),
                             _num(j.actual_runtime_s, 1), _num(j.predicted_mem_gb), _num(j.actual_mem_gb),
                             str(j.attempts), j.status] for j in data.jobs])
    if data.attempts:
        lines += ["", f"## Attempts ({len(data.attempts)})", ""]
        lines += _md_table(["model", "tasks", "try", "batch", "device", "runtime s", "peak GB", "other cores",
                            "status", "cause"],
                           [[a.model, ", ".join(a.tasks), str(a.attempt), str(a.batch_size or "-"),
                             ", ".join(a.devices), _num(a.runtime_s, 1), _num(a.peak_mem_gb), _num(a.other_cores),
                             a.status,
                             f"{a.error_kind}: {a.error}" if a.error_kind else ""] for a in data.attempts])
    if note := contended_attempts_note(data.run.summary):
        lines += ["", f"**{note}**"]
    lines += ["", "## Baseline vs optimized", ""]
    lines += _compare_markdown(data.compare)
    return "\n".join(lines) + "\n"


def _compare_markdown(view: CompareView | None) -> list[str]:
    if view is None:
        return ["This run was not part of a compare."]
    rows = []
    for role, side in (("baseline", view.baseline), ("optimized", view.optimized)):
        rows.append([role, "not in the store", "-", "-", "-"] if side is None else
                    [role, side.run.run_id, side.run.mode, _num(side.wall_s, 1), str(side.attempts)])
    lines = [f"Compare {view.compare_id}:", "", *_md_table(["role", "run", "mode", "wall s", "attempts"], rows)]
    if view.speedup is not None:
        lines += ["", f"Speed-up: {view.speedup:.2f}x"]
    if view.loads:
        lines += ["", f"Cores busy with other work while timed: {busy_with_other_work(view.loads)}"]
    if view.noisy:
        lines += ["", f"**{BUSY_MACHINE_WARNING}**"]
    if view.parity is not None:
        lines += ["", f"Score parity: {view.parity.identical} of {view.parity.compared} pairs identical"
                      f" (max |diff| {view.parity.max_abs_diff:.4g})"]
    return lines


def _side_json(side: RunSide | None) -> dict[str, Any] | None:
    if side is None:
        return None
    return {"run_id": side.run.run_id, "mode": side.run.mode, "devices": side.run.devices,
            "status": side.run.status, "wall_s": side.wall_s, "jobs": side.jobs, "attempts": side.attempts,
            "failed_jobs": side.failed_jobs, "ooms": side.ooms}


def to_report_json(data: ReportData) -> str:
    """JSON with the run, scores and failures (the leaderboard's keys), plus jobs, attempts and the compare."""
    run, board, view = data.run, data.board, data.compare
    compare = None if view is None else {
        "compare_id": view.compare_id, "baseline": _side_json(view.baseline),
        "optimized": _side_json(view.optimized), "speedup": view.speedup,
        "machine_load": {role: load.model_dump() for role, load in view.loads.items()}, "noisy": view.noisy,
        "parity": view.parity._asdict() if view.parity else None}
    return json.dumps({
        "run": {"run_id": run.run_id, "profile": run.profile, "mode": run.mode, "limit": run.limit,
                "devices": run.devices, "status": run.status, "started_at": str(run.started_at),
                "finished_at": str(run.finished_at), "summary": run.summary},
        "scores": to_rows(board),
        "failures": [f._asdict() for f in board.failures],
        "jobs": [j._asdict() for j in data.jobs],
        "attempts": [a._asdict() for a in data.attempts],
        "compare": compare,
    }, indent=2, default=str)
