"""`compare` for real: the same profile run the traditional way, then optimized, on the same devices; same scores?

Both runs use --force semantics (a run must not reuse the other's results, or there would be nothing to time)
and write the same store; the pair is recorded in the compares table, so `report` shows them side by side. How
busy the machine was with other work during each run is measured too (`machineload`): a speed-up timed on a busy
machine is reported as such.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager

from pydantic import BaseModel

from spectrabench.execution.driver import execute_run
from spectrabench.execution.machineload import background_between, cpu_snapshot
from spectrabench.execution.outcomes import RunObserver, RunSummary
from spectrabench.execution.runplan import RunOptions, RunPlan, plan_run
from spectrabench.profiles import Profile
from spectrabench.settings import Settings
from spectrabench.store.compares import busy_while_timed, record_compare_run
from spectrabench.store.machineload import MachineLoad
from spectrabench.store.parity import ParityReport, compare_runs

ObserverFactory = Callable[[RunPlan], AbstractContextManager[RunObserver]]


class CompareSummary(BaseModel):
    """Both runs, the ratio of their wall times, and whether they scored the same."""

    compare_id: str
    profile: str
    baseline: RunSummary
    optimized: RunSummary
    speedup: float
    parity: ParityReport
    # Other work on this machine while each run was timed (`machineload`), by role.
    background: dict[str, MachineLoad] = {}

    @property
    def noisy(self) -> bool:
        """Whether other work took enough of the machine during either run to make the speed-up suspect."""
        return busy_while_timed(self.background)

    @property
    def ok(self) -> bool:
        """Both runs complete and every score identical."""
        return self.baseline.status == self.optimized.status == "complete" and self.parity.identical


def run_compare(profile: Profile, options: RunOptions, settings: Settings, observe: ObserverFactory
                ) -> CompareSummary:
    """Run `profile` in baseline mode, then optimized, and compare wall times and scores.

    Args:
        profile: The profile.
        options: Limit, devices, backend and retries shared by both runs (mode and force are set here).
        settings: The store both runs write.
        observe: Makes the progress observer of each run.
    """
    compare_id = secrets.token_hex(6)
    summaries: dict[str, RunSummary] = {}
    background: dict[str, MachineLoad] = {}
    for role in ("baseline", "optimized"):
        plan = plan_run(profile, options.model_copy(update={"mode": role, "force": True}), settings)
        with observe(plan) as observer:
            before = cpu_snapshot()
            summaries[role] = execute_run(plan, settings, observer)
            background[role] = background_between(before, cpu_snapshot())
        record_compare_run(settings.db_file, compare_id, role, plan.run_id, background[role])
        if summaries[role].status == "interrupted":
            raise KeyboardInterrupt
    baseline, optimized = summaries["baseline"], summaries["optimized"]
    return CompareSummary(compare_id=compare_id, profile=profile.name, baseline=baseline, optimized=optimized,
                          speedup=baseline.wall_s / optimized.wall_s if optimized.wall_s > 0 else float("nan"),
                          parity=compare_runs(settings.db_file, baseline.run_id, optimized.run_id),
                          background=background)
