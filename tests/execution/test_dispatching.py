"""The dispatch loop on (fake) GPUs: a job split over k GPUs starts only on k free ones, and none is double-booked.

GPUs are what this machine lacks, so the executor here is a small fake that finishes attempts in the order they
started; the loop, the policy and the jobs are the real ones.
"""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace
from typing import Any

from spectrabench.execution.dispatching import run_queue
from spectrabench.hardware import DeviceSpec
from spectrabench.planning.jobs import Job, TaskRef, job_of
from spectrabench.planning.schedule import WorkItem
from spectrabench.profiles import load_profile
from spectrabench.settings import Settings

GPUS = [DeviceSpec(id=f"cuda:{i}", kind="cuda", index=i, name="NVIDIA L4", total_mem_gb=22.0, free_mem_gb=22.0)
        for i in range(3)]


class _Executor:
    def __init__(self) -> None:
        self.busy: dict[str, str] = {}
        self.order: list[Any] = []
        self.started: list[tuple[str, tuple[str, ...]]] = []
        self.waits = 0
        self.busy_at_start: list[int] = []  # devices busy right after each submit, before any wait

    def capacity(self) -> list[DeviceSpec]:
        return GPUS

    def submit(self, request: Any) -> None:
        for device in request.devices:
            assert device.id not in self.busy, f"{device.id} double-booked"
            self.busy[device.id] = request.key
        self.order.append(request)
        self.started.append((request.key, tuple(d.id for d in request.devices)))
        if not self.waits:
            self.busy_at_start.append(len(self.busy))

    def wait(self, timeout_s: float | None = None) -> list[Any]:
        self.waits += 1
        request = self.order.pop(0)
        for device in request.devices:
            del self.busy[device.id]
        outcome = SimpleNamespace(error_kind=None, progress={"tasks": {}})
        return [SimpleNamespace(request=request, outcome=outcome)]


class _Run:
    def __init__(self, jobs: list[Job]) -> None:
        self.executor = _Executor()
        self.unavailable: dict[str, str] = {}
        self.in_flight: dict[str, Any] = {}
        self.lengths = {job.job_key: 100.0 * (i + 1) for i, job in enumerate(jobs)}

    def submit(self, state: Any, devices: tuple[DeviceSpec, ...]) -> None:
        assert len(devices) == max(1, state.job.gpus)
        self.in_flight[state.job.job_key] = state
        self.executor.submit(SimpleNamespace(key=state.job.job_key, devices=devices))

    def handle(self, result: Any) -> None:
        self.in_flight.pop(result.request.key)

    def fail_unavailable(self, state: Any) -> None:
        raise AssertionError("no model is unavailable here")

    def item_for(self, state: Any) -> WorkItem:
        job = state.job
        return WorkItem(key=job.job_key, model=job.model.name, tasks=tuple(job.task_names), params_b=7.0,
                        gpus=job.gpus, predicted_runtime_s=self.lengths[job.job_key], predicted_load_s=1.0,
                        predicted_mem_gb=10.0 * job.gpus)

    def running_jobs(self) -> list[Any]:
        return []

    def move_tail(self, job_key: str, count: int, devices: tuple[DeviceSpec, ...]) -> None:
        return None


def test_split_jobs_take_their_gpus_together_and_nothing_is_double_booked() -> None:
    profile = load_profile("standard", Settings())
    task = profile.tasks[0]
    jobs = []
    for i, model in enumerate(profile.models[:6]):
        ref = TaskRef(name=task.name, harness_name=task.harness_name, shots=0, allow_code_execution=False,
                      version="1", task_key=f"k{i}")
        gpus = 3 if i == 0 else 2 if i in (1, 4) else 1
        jobs.append(job_of(model, [ref], None, 1).model_copy(update={"gpus": gpus}))
    run = _Run(jobs)
    # The queue's head needs all three GPUs: single-GPU jobs must still start around it.
    jobs.insert(0, jobs.pop(0))
    run_queue(run, deque(SimpleNamespace(job=job) for job in jobs), 1, longest_first=True)  # type: ignore[arg-type]
    started = dict(run.executor.started)
    assert set(started) == {job.job_key for job in jobs}
    for job in jobs:
        assert len(set(started[job.job_key])) == job.gpus
    # At the start every GPU got work although the head of the queue needs all three.
    assert run.executor.busy_at_start[-1] == len(GPUS)
