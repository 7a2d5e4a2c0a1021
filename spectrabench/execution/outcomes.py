"""What a run tells the outside: its summary, why a job failed, and the progress events the CLI renders."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from spectrabench.hardware import DeviceSpec
from spectrabench.planning.jobs import Job


class JobFailure(BaseModel):
    """Why one job did not produce its scores."""

    job_key: str
    model: str
    tasks: list[str]
    kind: str
    message: str
    log_path: str | None = None


class RunSummary(BaseModel):
    """The outcome of a run, for the terminal and for `--json`."""

    run_id: str
    profile: str
    mode: str
    devices: str
    status: str
    jobs_total: int
    jobs_completed: int
    jobs_reused: int
    jobs_failed: int
    attempts: int
    retries: int
    wall_s: float
    db_path: str
    predictor_version: int | None = None
    training: str | None = None
    failures: list[JobFailure] = Field(default_factory=list)
    tail_moves: int = 0  # unstarted tails of running jobs moved to idle devices (each a job of its own)
    # Attempts that other work on the machine competed with (`store.machineload`): their timings stay in the store
    # but the predictor does not learn from them. The most cores that other work took during one of them.
    contended_attempts: int = 0
    other_cores_max: float | None = None

    @property
    def exit_code(self) -> int:
        """0 when every job has its scores, 1 when some failed, 130 when interrupted."""
        if self.status == "interrupted":
            return 130
        return 1 if self.jobs_failed else 0


class RunObserver(Protocol):
    """Receives progress events (the CLI renders them; tests may record them)."""

    def attempt_started(self, job: Job, attempt: int, devices: tuple[DeviceSpec, ...], batch_size: int) -> None:
        """An attempt's worker was started."""
        ...

    def job_done(self, job: Job, outcome: str, failure: JobFailure | None) -> None:
        """A job ended: complete, reused or failed."""
        ...

    def retrying(self, job: Job, reason: str) -> None:
        """A failed attempt will be retried."""
        ...


class SilentObserver:
    """Ignores every event."""

    def attempt_started(self, job: Job, attempt: int, devices: tuple[DeviceSpec, ...], batch_size: int) -> None:
        """Ignore."""

    def job_done(self, job: Job, outcome: str, failure: JobFailure | None) -> None:
        """Ignore."""

    def retrying(self, job: Job, reason: str) -> None:
        """Ignore."""
