"""Run progress on stderr: a live table on a terminal, one line per event elsewhere, nothing with --json."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from spectrabench.execution.outcomes import JobFailure, RunObserver
    from spectrabench.execution.runplan import RunPlan
    from spectrabench.hardware import DeviceSpec
    from spectrabench.planning.jobs import Job


def _label(job: Job) -> str:
    tasks = job.task_names
    return f"{job.model.name} x {', '.join(tasks) if len(tasks) <= 3 else f'{len(tasks)} tasks'}"


class LineObserver:
    """One line per finished job or retry: for logs and pipes."""

    def __init__(self, plan: RunPlan, stream: TextIO) -> None:
        self._total = len(plan.jobs)
        self._done = 0
        self._stream = stream

    def attempt_started(self, job: Job, attempt: int, devices: tuple[DeviceSpec, ...], batch_size: int) -> None:
        """Say nothing: starts are frequent and finishes carry the news."""

    def job_done(self, job: Job, outcome: str, failure: JobFailure | None) -> None:
        """Print the job's outcome with a running count."""
        self._done += 1
        why = f" ({failure.kind}: {failure.message})" if failure else ""
        print(f"[{self._done}/{self._total}] {_label(job)}: {outcome}{why}", file=self._stream, flush=True)

    def retrying(self, job: Job, reason: str) -> None:
        """Print why a job is being retried."""
        print(f"retrying {_label(job)}: {reason}", file=self._stream, flush=True)


class LiveObserver(LineObserver):
    """A live table: counts, elapsed time, and what each device is running."""

    def __init__(self, plan: RunPlan, stream: TextIO) -> None:
        super().__init__(plan, stream)
        self._devices = [d.id for d in plan.devices]
        self._occupancy: dict[str, str] = {}
        self._where: dict[str, list[str]] = {}
        self._failed = 0
        self._started = time.monotonic()
        # ETA only from learned predictions: the rules alone can be off by a large factor.
        self._predicted = {key: f.runtime_s for key, f in plan.forecasts.items() if f.stage != "intelligent"}
        self._learned = len(self._predicted) == len(plan.jobs) and bool(plan.jobs)
        self._finished: set[str] = set()
        self._console = Console(file=stream)
        self._live = Live(self._render(), console=self._console, refresh_per_second=2, transient=False,
                          get_renderable=self._render)

    def _render(self) -> Group:
        running = len(self._where)
        left = self._total - self._done - running
        elapsed = time.monotonic() - self._started
        eta = ""
        if self._learned:
            remaining = sum(s for key, s in self._predicted.items() if key not in self._finished)
            eta = f"    ETA {remaining / max(1, len(self._devices)):,.0f} s (predicted)"
        header = Text(f"jobs: {self._done - self._failed} done · {running} running · {self._failed} failed · "
                      f"{max(left, 0)} left    elapsed {elapsed:,.0f} s{eta}")
        table = Table(show_header=True, box=None, pad_edge=False)
        table.add_column("device")
        table.add_column("running")
        for device in self._devices:
            table.add_row(device, self._occupancy.get(device, "idle"))
        return Group(header, table)

    def attempt_started(self, job: Job, attempt: int, devices: tuple[DeviceSpec, ...], batch_size: int) -> None:
        """Show the job on its devices."""
        self._where[job.job_key] = [d.id for d in devices]
        for device in devices:
            self._occupancy[device.id] = f"{_label(job)} (attempt {attempt}, batch {batch_size})"

    def _release(self, job: Job) -> None:
        for device in self._where.pop(job.job_key, []):
            self._occupancy.pop(device, None)

    def job_done(self, job: Job, outcome: str, failure: JobFailure | None) -> None:
        """Free the job's devices and count it; failures are also printed above the table."""
        self._release(job)
        self._done += 1
        self._finished.add(job.job_key)
        if failure is not None:
            self._failed += 1
            self._console.print(f"failed: {_label(job)}: {failure.kind}: {failure.message}", highlight=False)

    def retrying(self, job: Job, reason: str) -> None:
        """Free the job's devices until the retry starts, and say why."""
        self._release(job)
        self._console.print(f"retrying {_label(job)}: {reason}", highlight=False)

    def __enter__(self) -> LiveObserver:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()


@contextmanager
def make_observer(plan: RunPlan, *, quiet: bool, stream: TextIO) -> Iterator[RunObserver]:
    """The right observer for where output goes: silent, line by line, or live."""
    from spectrabench.execution.outcomes import SilentObserver

    if quiet:
        yield SilentObserver()
    elif stream.isatty():
        with LiveObserver(plan, stream) as live:
            yield live
    else:
        yield LineObserver(plan, stream)
