"""The plan's Gantt chart: jobs sharing a GPU get rows of their own within the device's lane."""

from __future__ import annotations

from pathlib import Path

from spectrabench.planning.outlook import PlanOutlook, Slot, device_rows
from spectrabench.report.plan_gantt import write_plan_gantt


def _slot(key: str, device: str, start: float, end: float) -> Slot:
    return Slot(job_key=key, model=key, tasks=["t"], device=device, start_s=start, end_s=end)


def test_sharing_jobs_take_separate_rows_and_later_jobs_reuse_them(tmp_path: Path) -> None:
    schedule = [_slot("a", "g0", 0, 10), _slot("b", "g0", 0, 6), _slot("c", "g0", 6, 12), _slot("d", "g0", 12, 14),
                _slot("e", "g1", 0, 14)]
    outlook = PlanOutlook(devices=["g0", "g1"], makespan_s=14, lower_bound_s=13, sequential_s=40, speedup=40 / 14,
                          schedule=schedule, unplaced=[], shares_gpus=True)
    assert device_rows(outlook.schedule) == [0, 1, 1, 0, 0]
    chart = tmp_path / "plan.png"
    write_plan_gantt(outlook, chart, title="shared")
    assert chart.read_bytes().startswith(b"\x89PNG")
