"""Everything a full report shows about one run, read from the store once and shared by every format."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from spectrabench.report.tables import Leaderboard, build_leaderboard
from spectrabench.store.compares import busy_while_timed
from spectrabench.store.machineload import MachineLoad
from spectrabench.store.queries import RunInfo
from spectrabench.store.report_queries import AttemptRow, JobOutcome, ResourceSample


class RunSide(NamedTuple):
    """One run of a comparison, reduced to what the comparison shows."""

    run: RunInfo
    wall_s: float | None
    jobs: int
    attempts: int
    failed_jobs: int
    ooms: int
    board: Leaderboard


class Parity(NamedTuple):
    """Whether the optimized run scored every (model, task) exactly as the baseline did."""

    compared: int
    identical: int
    max_abs_diff: float
    differing: list[tuple[str, str, float, float]]


class CompareView(NamedTuple):
    """A baseline-vs-optimized comparison the run belongs to; a side is None when its run is not in the store."""

    compare_id: str
    baseline: RunSide | None
    optimized: RunSide | None
    speedup: float | None
    parity: Parity | None
    loads: dict[str, MachineLoad]  # other work on the machine while each side was timed, where measured

    @property
    def noisy(self) -> bool:
        """Whether other work took enough of the machine while a side was timed to make the speed-up suspect."""
        return busy_while_timed(self.loads)


# What every format says of a speed-up timed while other work took much of the machine (`CompareView.noisy`).
BUSY_MACHINE_WARNING = ("The machine was busy with other work while it was timed: the speed-up is not a clean "
                        "measurement; rerun the compare on an idle machine.")


def contended_attempts_note(summary: Mapping[str, Any]) -> str | None:
    """What every format says of a run some of whose attempts other work competed with for the machine's cores
    (`RunSummary.contended_attempts`), or None when none did (or the run predates the measurement)."""
    count = summary.get("contended_attempts") or 0
    if not count:
        return None
    peak = summary.get("other_cores_max") or 0.0
    return (f"Other work took up to {peak:.1f} cores of the machine while {count} attempt(s) ran: their scores stand, "
            "but their measured times are not clean and the predictor does not learn from them (run on an idle "
            "machine to teach it).")


def busy_with_other_work(loads: Mapping[str, MachineLoad]) -> str:
    """The cores other work kept busy while each run was timed, e.g. "baseline 0.90, optimized 0.01 (of 2 cores)",
    with what the hypervisor stole where it stole any."""
    parts = [f"{role} {load.other_cores:.2f}" + (f" (+{load.steal_cores:.2f} stolen by the hypervisor)"
                                                 if load.steal_cores >= 0.01 else "") for role, load in loads.items()]
    return f"{', '.join(parts)} (of {max((load.cores for load in loads.values()), default=0)} cores)"


class ReportData(NamedTuple):
    """A run's leaderboard, attempts, predictions, resource samples and comparison."""

    board: Leaderboard
    attempts: list[AttemptRow]
    jobs: list[JobOutcome]
    resources: list[ResourceSample]
    compare: CompareView | None

    @property
    def run(self) -> RunInfo:
        """The run the report is about."""
        return self.board.run


def wall_seconds(run: RunInfo) -> float | None:
    """The run's wall time: the driver's own measure when it finished, else its recorded start and end."""
    wall = run.summary.get("wall_s")
    if isinstance(wall, int | float):
        return float(wall)
    if run.started_at is not None and run.finished_at is not None:
        return float((run.finished_at - run.started_at).total_seconds())
    return None


def _board(db: Path, run_id: str) -> Leaderboard:
    from spectrabench.store.queries import run_failures, run_info, run_scores

    pairs, scores = run_scores(db, run_id)
    return build_leaderboard(run_info(db, run_id), pairs, scores, run_failures(db, run_id))


def _side(db: Path, run_id: str) -> RunSide:
    from spectrabench.store.report_queries import run_attempts, run_job_outcomes

    board = _board(db, run_id)
    attempts = run_attempts(db, run_id)
    jobs = run_job_outcomes(db, run_id)
    return RunSide(board.run, wall_seconds(board.run), len(jobs), len(attempts),
                   sum(1 for j in jobs if j.status == "failed"),
                   sum(1 for a in attempts if a.error_kind == "oom"), board)


def score_parity(baseline: Leaderboard, optimized: Leaderboard) -> Parity:
    """Compare the primary score of every (model, task) both runs have; a scheduler must not change any."""
    differing = []
    compared = identical = 0
    max_diff = 0.0
    for key, base in baseline.cells.items():
        other = optimized.cells.get(key)
        if other is None or other.metric != base.metric:
            continue
        compared += 1
        diff = abs(other.value - base.value)
        max_diff = max(max_diff, diff)
        if diff == 0:
            identical += 1
        else:
            differing.append((key[0], key[1], base.value, other.value))
    return Parity(compared, identical, max_diff, differing)


def load_compare(db: Path, run_id: str) -> CompareView | None:
    """The comparison `run_id` belongs to, with both sides, the speed-up and score parity; None if none."""
    from spectrabench.store.compares import find_compare
    from spectrabench.store.queries import known_run_ids

    pair = find_compare(db, run_id)
    if pair is None:
        return None
    known = set(known_run_ids(db))
    sides = [_side(db, r) if r is not None and r in known else None
             for r in (pair.baseline_run_id, pair.optimized_run_id)]
    baseline, optimized = sides
    speedup = parity = None
    if baseline is not None and optimized is not None:
        if baseline.wall_s and optimized.wall_s:
            speedup = baseline.wall_s / optimized.wall_s
        parity = score_parity(baseline.board, optimized.board)
    return CompareView(pair.compare_id, baseline, optimized, speedup, parity, pair.loads)


def load_report(db: Path, run_id: str) -> ReportData:
    """Read everything the report shows about `run_id`.

    Args:
        db: The store.
        run_id: A run id as `resolve_run_id` returns it.
    """
    from spectrabench.store.report_queries import run_attempts, run_job_outcomes, run_resources

    return ReportData(_board(db, run_id), run_attempts(db, run_id), run_job_outcomes(db, run_id),
                      run_resources(db, run_id), load_compare(db, run_id))
