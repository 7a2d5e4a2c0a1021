"""The dispatch loop on (fake) GPUs: a job split over k GPUs starts only on k free ones, none is double-booked, and
small models share a GPU only where the executor allows it and their predicted peaks fit.

GPUs are what this machine lacks, so the executor here is a small fake that finishes attempts in the order they
started; the loop, the policy and the jobs are the real ones.
"""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest

from spectrabench.execution.dispatching import run_queue
from spectrabench.hardware import DeviceSpec
from spectrabench.planning.jobs import Job, TaskRef, job_of
from spectrabench.planning.schedule import WorkItem
from spectrabench.profiles import load_profile
from spectrabench.settings import Settings

GPUS = [DeviceSpec(id=f"cuda:{i}", kind="cuda", index=i, name="NVIDIA L4", total_mem_gb=22.0, free_mem_gb=22.0)
        for i in range(3)]


class _Executor:
    shares_devices = False

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


class _SharingExecutor(_Executor):
    """Like the local executor: a GPU takes several attempts when every one of them agreed to share it."""

    shares_devices = True

    def __init__(self, mem_gb: dict[str, float]) -> None:
        super().__init__()
        self.on: dict[str, list[Any]] = {d.id: [] for d in GPUS}
        self.mem_gb = mem_gb
        self.most_sharing = 0

    def submit(self, request: Any) -> None:
        for device in request.devices:
            there = self.on[device.id]
            assert not there or (request.shared and all(r.shared for r in there)), f"{device.id} double-booked"
            there.append(request)
            # The dispatcher never puts more on a GPU than its predicted peaks fit.
            assert sum(self.mem_gb[r.key] for r in there) <= device.total_mem_gb
            self.most_sharing = max(self.most_sharing, len(there))
        self.order.append(request)
        self.started.append((request.key, tuple(d.id for d in request.devices)))

    def wait(self, timeout_s: float | None = None) -> list[Any]:
        request = self.order.pop(0)
        for device in request.devices:
            self.on[device.id].remove(request)
        outcome = SimpleNamespace(error_kind=None, progress={"tasks": {}})
        return [SimpleNamespace(request=request, outcome=outcome)]


class _Run:
    def __init__(self, jobs: list[Job], *, params_b: float = 7.0, mem_gb: float = 10.0, share: bool = False,
                 shareable: bool = True) -> None:
        self.shareable = shareable
        self.mem_gb = {job.job_key: mem_gb * job.gpus for job in jobs}
        self.executor = _SharingExecutor(self.mem_gb) if share else _Executor()
        self.unavailable: dict[str, str] = {}
        self.in_flight: dict[str, Any] = {}
        self.lengths = {job.job_key: 100.0 * (i + 1) for i, job in enumerate(jobs)}
        self.params_b = params_b

    def submit(self, state: Any, devices: tuple[DeviceSpec, ...], *, shared: bool = False) -> None:
        assert len(devices) == max(1, state.job.gpus)
        self.in_flight[state.job.job_key] = state
        self.executor.submit(SimpleNamespace(key=state.job.job_key, devices=devices, shared=shared))

    def handle(self, result: Any) -> None:
        self.in_flight.pop(result.request.key)

    def fail_unavailable(self, state: Any) -> None:
        raise AssertionError("no model is unavailable here")

    def item_for(self, state: Any) -> WorkItem:
        job = state.job
        return WorkItem(key=job.job_key, model=job.model.name, tasks=tuple(job.task_names), params_b=self.params_b,
                        gpus=job.gpus, predicted_runtime_s=self.lengths[job.job_key], predicted_load_s=1.0,
                        predicted_mem_gb=self.mem_gb[job.job_key], shareable=self.shareable)

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


def _single_gpu_jobs(n: int) -> list[Job]:
    profile = load_profile("standard", Settings())
    jobs = []
    for i in range(n):
        task = profile.tasks[i % len(profile.tasks)]
        ref = TaskRef(name=task.name, harness_name=task.harness_name, shots=0, allow_code_execution=False,
                      version="1", task_key=f"k{i}")
        jobs.append(job_of(profile.models[i % len(profile.models)], [ref], None, 1))
    return jobs


def _run_small(*, share: bool, params_b: float, mem_gb: float, shareable: bool = True) -> _Run:
    jobs = _single_gpu_jobs(12)
    run = _Run(jobs, params_b=params_b, mem_gb=mem_gb, share=share, shareable=shareable)
    run_queue(run, deque(SimpleNamespace(job=job) for job in jobs), 1, longest_first=True)  # type: ignore[arg-type]
    assert {key for key, _ in run.executor.started} == {job.job_key for job in jobs}
    return run


def test_small_models_share_a_gpu_within_their_predicted_memory() -> None:
    run = _run_small(share=True, params_b=1.5, mem_gb=6.0)
    assert isinstance(run.executor, _SharingExecutor) and run.executor.most_sharing >= 2


def test_no_sharing_for_large_models_full_cards_executors_that_cannot_or_jobs_barred_from_it() -> None:
    cases = ((True, 7.0, 6.0, True), (True, 1.5, 15.0, True), (False, 1.5, 6.0, True), (True, 1.5, 6.0, False))
    for share, params_b, mem_gb, shareable in cases:
        run = _run_small(share=share, params_b=params_b, mem_gb=mem_gb, shareable=shareable)
        most = run.executor.most_sharing if isinstance(run.executor, _SharingExecutor) else 1
        assert most == 1, (share, params_b, mem_gb, shareable)


class _CardsExecutor(_SharingExecutor):
    """A sharing executor on GPUs of one card, which records whether each attempt agreed to share."""

    def __init__(self, mem_gb: dict[str, float], card: str) -> None:
        super().__init__(mem_gb)
        self.cards = [gpu.model_copy(update={"name": card}) for gpu in GPUS]
        self.shared: list[bool] = []

    def capacity(self) -> list[DeviceSpec]:
        return self.cards

    def submit(self, request: Any) -> None:
        self.shared.append(request.shared)
        super().submit(request)


@pytest.mark.parametrize(("card", "shared"), [("NVIDIA H100 80GB HBM3", True), ("NVIDIA L4", False)])
def test_a_mid_size_job_agrees_to_share_an_h100_but_not_an_l4(card: str, shared: bool) -> None:
    jobs = _single_gpu_jobs(4)
    run = _Run(jobs, params_b=7.0, mem_gb=6.0)
    run.executor = executor = _CardsExecutor(run.mem_gb, card)
    run_queue(run, deque(SimpleNamespace(job=job) for job in jobs), 1, longest_first=True)  # type: ignore[arg-type]
    assert executor.shared and all(flag is shared for flag in executor.shared)


def test_in_a_mixed_pool_a_slow_card_leaves_the_longest_job_to_a_fast_one() -> None:
    l4 = DeviceSpec(id="cuda:0", kind="cuda", index=0, name="NVIDIA L4", total_mem_gb=22.0, free_mem_gb=22.0)
    a100 = DeviceSpec(id="cuda:1", kind="cuda", index=1, name="NVIDIA A100-SXM4-80GB", total_mem_gb=80.0,
                      free_mem_gb=80.0)
    profile = load_profile("standard", Settings())
    task = profile.tasks[0]
    jobs = [job_of(model, [TaskRef(name=task.name, harness_name=task.harness_name, shots=0,
                                   allow_code_execution=False, version="1", task_key=f"k{i}")], None, 1)
            for i, model in enumerate(profile.models[:3])]  # predicted 100, 200 and 300 s

    def started(speeds: dict[str, float] | None) -> dict[str, tuple[str, ...]]:
        run = _Run(jobs)
        run.executor.capacity = lambda: [l4, a100]  # type: ignore[method-assign]
        run_queue(run, deque(SimpleNamespace(job=job) for job in jobs), 1, longest_first=True,  # type: ignore[arg-type]
                  speeds=speeds)
        return dict(run.executor.started)

    # The L4 is asked first. At a quarter of the A100's speed the 300 s job would take it 1,200 s, where the whole
    # pool needs 480 s for everything: it starts the 100 s job, and the A100 the longest.
    mixed = started({"NVIDIA L4": 0.25, "NVIDIA A100-SXM4-80GB": 1.0})
    assert mixed[jobs[2].job_key] == ("cuda:1",) and mixed[jobs[0].job_key] == ("cuda:0",)
    assert started(None)[jobs[2].job_key] == ("cuda:0",), "without speeds the first free card takes the longest"


def test_a_busy_gpu_frees_the_memory_of_the_heavy_tasks_its_jobs_have_done() -> None:
    from spectrabench.execution.dispatching import _slot

    job = WorkItem(key="j", model="m", tasks=("heavy", "light"), params_b=1.0, predicted_runtime_s=10.0,
                   predicted_load_s=1.0, predicted_mem_gb=15.0, task_mems_gb=(15.0, 4.0))
    sharded = job.model_copy(update={"key": "s", "gpus": 2, "predicted_mem_gb": 30.0, "task_mems_gb": (30.0, 8.0)})
    items = {"j": job, "s": sharded}
    gpu = GPUS[0]
    assert _slot(gpu, ["j"], items, None).free_mem_gb == 22.0 - 15.0
    assert _slot(gpu, ["j"], items, None, {"j": 1}).free_mem_gb == 22.0 - 4.0
    assert _slot(gpu, ["s"], items, None, {"s": 1}).free_mem_gb == 22.0 - 4.0, "its share of a split job's"
