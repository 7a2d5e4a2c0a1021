"""The contract every executor backend must keep. Parametrised by backend: a new backend adds itself here."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from spectrabench.execution.executor import AttemptRequest, AttemptResult, DeviceBusy, Executor
from spectrabench.execution.local import LocalExecutor
from spectrabench.hardware import DeviceSpec, cpu_slots
from spectrabench.harness.workerspec import ErrorKind, WorkerModel, WorkerSpec
from spectrabench.planning.jobs import TaskRef
from tests.execution.rayenv import local_ray

BACKENDS = ["local", pytest.param("ray", marks=pytest.mark.ray)]


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One local Ray for the module, with fake GPUs: Ray hands out GPU ids that this CPU machine does not have."""
    with local_ray(tmp_path_factory.mktemp("ray-home"), num_cpus=2, num_gpus=4):
        yield


def _make_executor(backend: str, devices: list[DeviceSpec], env: dict[str, str]) -> Executor:
    if backend == "local":
        return LocalExecutor(devices, env, monitor_interval_s=0.1)
    if backend == "ray":
        from spectrabench.execution.ray import RayExecutor

        return RayExecutor(devices, env, monitor_interval_s=0.1, poll_s=0.1)
    raise AssertionError(backend)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "ray":
        request.getfixturevalue("ray_session")
    return str(request.param)


@pytest.fixture
def devices() -> list[DeviceSpec]:
    return cpu_slots(2)


@pytest.fixture
def executor(backend: str, devices: list[DeviceSpec], tmp_path: Path) -> Iterator[Executor]:
    # Faults fire at worker start, before any heavy import, so every attempt here takes about a second.
    env = {**os.environ, "SPECTRABENCH_FAULT": "hang:model=hanging;crash:model=crashing"}
    made = _make_executor(backend, devices, env)
    yield made
    made.close()


def _request(tmp_path: Path, key: str, model: str, device: DeviceSpec, timeout_s: float | None = None
             ) -> AttemptRequest:
    ref = TaskRef(name="sb_facts", harness_name="sb_facts", shots=0, allow_code_execution=False, version="v",
                  task_key="k")
    spec = WorkerSpec(job_key=key, attempt=1, model=WorkerModel(name=model, builtin="tiny-llama-4m"),
                      tasks=(ref,), limit=1, batch_size=1, model_cache_dir=str(tmp_path / "models"),
                      out_dir=str(tmp_path / key))
    return AttemptRequest(key=key, spec=spec, devices=(device,), timeout_s=timeout_s)


def _collect(executor: Executor, keys: set[str], within_s: float) -> dict[str, AttemptResult]:
    results: dict[str, AttemptResult] = {}
    end = time.monotonic() + within_s
    while time.monotonic() < end and not keys <= set(results):
        results.update((r.request.key, r) for r in executor.wait(timeout_s=0.5))
    assert keys <= set(results), f"{keys - set(results)} did not finish within {within_s} s"
    return results


def _wait_for(executor: Executor, key: str, within_s: float) -> AttemptResult:
    return _collect(executor, {key}, within_s)[key]


def _wait_file(path: Path, within_s: float = 20) -> None:
    end = time.monotonic() + within_s
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def test_capacity_is_the_devices(executor: Executor, devices: list[DeviceSpec]) -> None:
    assert [d.id for d in executor.capacity()] == [d.id for d in devices]


def test_one_attempt_per_device_and_concurrency(executor: Executor, devices: list[DeviceSpec],
                                                tmp_path: Path) -> None:
    executor.submit(_request(tmp_path, "a", "hanging", devices[0]))
    with pytest.raises(DeviceBusy):
        executor.submit(_request(tmp_path, "b", "hanging", devices[0]))
    executor.submit(_request(tmp_path, "c", "hanging", devices[1]))
    assert sorted(executor.running()) == ["a", "c"]
    for key in ("a", "c"):
        executor.cancel(key)
    # A freed device takes the next attempt.
    _collect(executor, {"a", "c"}, 20)
    executor.submit(_request(tmp_path, "d", "hanging", devices[0]))
    assert executor.running() == ["d"]


def test_a_device_is_shared_only_where_the_executor_can_and_every_attempt_agreed(
        executor: Executor, devices: list[DeviceSpec], tmp_path: Path) -> None:
    executor.submit(_request(tmp_path, "a", "hanging", devices[0])._replace(shared=True))
    running = {"a"}
    if executor.shares_devices:
        executor.submit(_request(tmp_path, "b", "hanging", devices[0])._replace(shared=True))
        running.add("b")
        with pytest.raises(DeviceBusy):  # one that does not share cannot join
            executor.submit(_request(tmp_path, "c", "hanging", devices[0]))
    else:
        with pytest.raises(DeviceBusy):
            executor.submit(_request(tmp_path, "b", "hanging", devices[0])._replace(shared=True))
    assert sorted(executor.running()) == sorted(running)
    for key in running:
        executor.cancel(key)
    _collect(executor, running, 20)
    # Once its sharers are gone, the device takes an attempt that shares nothing.
    executor.submit(_request(tmp_path, "d", "hanging", devices[0]))
    assert executor.running() == ["d"]


def test_cancel_kills_the_whole_process_tree(executor: Executor, devices: list[DeviceSpec], tmp_path: Path) -> None:
    executor.submit(_request(tmp_path, "tree", "hanging", devices[0]))
    _wait_file(tmp_path / "tree" / "hang-child.pid")
    child = int((tmp_path / "tree" / "hang-child.pid").read_text())
    assert psutil.pid_exists(child)
    executor.cancel("tree")
    result = _wait_for(executor, "tree", 20)
    assert result.outcome.error_kind is ErrorKind.INTERRUPTED
    time.sleep(0.2)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def test_failing_attempt_says_why(executor: Executor, devices: list[DeviceSpec], tmp_path: Path) -> None:
    executor.submit(_request(tmp_path, "boom", "crashing", devices[1]))
    result = _wait_for(executor, "boom", 30)
    assert result.outcome.error_kind is ErrorKind.CRASH
    assert result.outcome.returncode == 70 and result.outcome.error
    assert result.outcome.log_path.exists()


def test_timeout_kills_and_reports(executor: Executor, devices: list[DeviceSpec], tmp_path: Path) -> None:
    started = time.monotonic()
    executor.submit(_request(tmp_path, "slow", "hanging", devices[0], timeout_s=2))
    result = _wait_for(executor, "slow", 30)
    assert result.outcome.error_kind is ErrorKind.TIMEOUT
    assert time.monotonic() - started < 15
    child = int((tmp_path / "slow" / "hang-child.pid").read_text())
    time.sleep(0.2)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def test_usage_is_measured(executor: Executor, backend: str, devices: list[DeviceSpec], tmp_path: Path) -> None:
    executor.submit(_request(tmp_path, "measured", "hanging", devices[0]))
    _wait_file(tmp_path / "measured" / "hang-child.pid")
    time.sleep(0.5)
    executor.cancel("measured")
    result = _wait_for(executor, "measured", 20)
    assert result.usage.peak_mem_gb is not None and result.usage.peak_mem_gb > 0.005
    assert result.usage.samples
    # The machine's other work while it ran: measured where the backend's workers are the driver's own processes
    # (local), else unknown (Ray's run under its raylet), never made up.
    if backend == "local":
        assert result.background is not None and result.background.cores >= 1
        assert result.background.own_cores is not None and result.background.other_cores >= 0.0
    else:
        assert result.background is None
