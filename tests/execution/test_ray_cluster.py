"""RayExecutor on a two-node Ray cluster with two fake GPUs per node, for real: GPU ids, plan-time refusal,
lost Ray workers, and scores that match the local backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psutil
import pytest
import yaml

from spectrabench.execution.backends import pool_devices
from spectrabench.execution.ray import NODE_FILE, RayExecutor
from spectrabench.harness.workerspec import PROGRESS_FILE
from tests.conftest import REPO, run_cli
from tests.execution.rayenv import two_node_cluster
from tests.execution.test_contract import _collect, _request

pytestmark = pytest.mark.ray

TINY = {"name": "tiny", "builtin": "tiny-llama-4m", "params_b": 0.004, "dtype": "float32"}


class Cluster:
    """The test cluster: its address, and the HOME its auth token lives in (CLI subprocesses need it)."""

    def __init__(self, address: str, home: Path) -> None:
        self.address, self.home = address, home


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("ray-home")
    with two_node_cluster(home) as address:
        yield Cluster(address, home)


def _profile(tmp_path: Path, models: list[dict[str, Any]], tasks: list[str], limit: int) -> str:
    path = tmp_path / "ray.yaml"
    path.write_text(yaml.safe_dump({"name": "ray", "limit": limit, "batch_size": 2,
                                    "task_paths": [str(REPO / "profiles" / "tasks")], "models": models,
                                    "tasks": [{"name": t, "shots": 0} for t in tasks]}))
    return str(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def test_concurrent_attempts_never_share_a_gpu(cluster: Cluster, tmp_path: Path) -> None:
    devices = pool_devices("ray", "cuda")
    assert [d.id for d in devices] == ["ray-gpu:0", "ray-gpu:1", "ray-gpu:2", "ray-gpu:3"]
    executor = RayExecutor(devices, {**os.environ, "SPECTRABENCH_FAULT": "hang:model=hanging"},
                           monitor_interval_s=0.2, poll_s=0.1)
    keys = [f"g{i}" for i in range(len(devices))]
    try:
        for key, device in zip(keys, devices, strict=True):
            executor.submit(_request(tmp_path, key, "hanging", device))
        # Every worker hangs until cancelled: once all four have started, all four hold their GPU at once.
        held: dict[str, tuple[str, str]] = {}
        end = time.monotonic() + 90
        while len(held) < len(keys):
            assert time.monotonic() < end, f"only {sorted(held)} started"
            for key in keys:
                node, progress = _read_json(tmp_path / key / NODE_FILE), _read_json(tmp_path / key / PROGRESS_FILE)
                if node and progress and (tmp_path / key / "hang-child.pid").exists():
                    held[key] = (node["node_id"], progress["cuda_visible_devices"])
                    assert node["gpu_ids"] == [progress["cuda_visible_devices"]], "the worker sees what Ray gave"
            time.sleep(0.2)
        assert sorted(executor.running()) == keys
        for key in keys:
            executor.cancel(key)
        results = _collect(executor, set(keys), 60)
    finally:
        executor.close()
    assert len(set(held.values())) == 4, held
    assert len({node for node, _ in held.values()}) == 2, "two nodes, two GPUs each"
    assert {gpu for _, gpu in held.values()} == {"0", "1"}
    assert all(r.outcome.error_kind is not None and r.outcome.error_kind.value == "interrupted"
               for r in results.values())


def test_job_no_node_can_hold_is_refused_at_plan_time(cluster: Cluster, tmp_path: Path, data_dir: Path) -> None:
    profile = _profile(tmp_path, [TINY], ["sb_facts"], 1)
    args = ["plan", "--profile", profile, "--backend", "ray", "--ray-address", cluster.address, "--devices", "cuda"]
    refused = run_cli(*args, "--gpus-per-job", "4", env={"HOME": str(cluster.home)}, timeout=120)
    assert refused.code == 2, refused.stderr[-2000:]
    assert "Traceback" not in refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("spectrabench: error: a job needs 4 GPUs on one machine") and "has 2" in line, line
    # Two GPUs fit on either node.
    fits = run_cli(*args, "--gpus-per-job", "2", "--json", env={"HOME": str(cluster.home)}, timeout=120)
    assert fits.code == 0, fits.stderr[-2000:]
    assert [d["id"] for d in json.loads(fits.stdout)["devices"]][:2] == ["ray-gpu:0", "ray-gpu:1"]


def _kill_first_ray_worker(model: str, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the Ray worker process (the task's host) of the first worker subprocess running `model`."""
    while not stop.is_set() and not killed:
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = proc.info["cmdline"] or []
            if "spectrabench.harness.worker" not in cmdline:
                continue
            spec = _read_json(Path(cmdline[-1]) / "spec.json")
            if spec and spec["model"]["name"] == model:
                host = proc.parent()
                assert host is not None and "ray::" in " ".join(host.cmdline()), host
                killed.extend([proc.pid, host.pid])
                os.kill(host.pid, signal.SIGKILL)
                return
        time.sleep(0.1)


def test_lost_ray_worker_is_rerun_by_ray_and_a_killed_worker_by_our_policy(
        cluster: Cluster, tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from spectrabench.execution.driver import execute_run
    from spectrabench.execution.runplan import RunOptions, plan_run
    from spectrabench.profiles import load_profile
    from spectrabench.settings import Settings

    # `selfkill` SIGKILLs itself at its first attempt (what the kernel's OOM killer does): our policy halves its
    # batch. `tiny` loses the Ray worker that hosts its task: Ray runs the task again, our policy never sees it.
    monkeypatch.setenv("SPECTRABENCH_FAULT", "kill:model=selfkill,attempt=1")
    # Different builtins: a job's key hashes the model's source, not its name.
    profile = _profile(tmp_path, [TINY, {**TINY, "name": "selfkill", "builtin": "tiny-llama-15m"}], ["sb_facts"], 1)
    settings = Settings()
    plan = plan_run(load_profile(profile, settings),
                    RunOptions(mode="parallel", devices="cuda", batch_size=2, backend="ray"), settings)
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_ray_worker, args=("tiny", killed, stop), daemon=True)
    killer.start()
    try:
        summary = execute_run(plan, settings)
    finally:
        stop.set()
        killer.join()
    assert killed, "the Ray worker was never killed"
    assert (summary.status, summary.jobs_completed, summary.jobs_failed) == ("complete", 2, 0), summary
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE
    con = duckdb.connect(str(settings.db_file), read_only=True)
    rows = con.execute("SELECT j.model, a.attempt, a.batch_size, a.error_kind FROM attempts a JOIN jobs j "
                       "USING (job_key, run_id) ORDER BY j.model, a.attempt").fetchall()
    backend = con.execute("SELECT backend FROM runs").fetchall()
    con.close()
    assert rows == [("selfkill", 1, 2, "oom"), ("selfkill", 2, 1, None), ("tiny", 1, 2, None)]
    assert backend == [("ray",)]


def _scores(db: Path) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT model, task, metric, filter, value, stderr FROM scores "
                           "ORDER BY model, task, metric, filter").fetchall()
    finally:
        con.close()


def _start_cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "spectrabench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **env})


def test_ray_backend_scores_match_the_local_backend(cluster: Cluster, tmp_path: Path) -> None:
    # One job of two tasks each way, both runs at once: this keeps the Ray tests within the suite's time budget.
    profile = _profile(tmp_path, [TINY], ["sb_facts", "sb_ko"], 2)
    args = ["run", "--profile", profile, "--mode", "parallel", "--devices", "cpu:1", "--json"]
    local = _start_cli(*args, env={"SPECTRABENCH_DATA_DIR": str(tmp_path / "local")})
    on_ray = _start_cli(*args, "--backend", "ray", "--ray-address", cluster.address,
                        env={"SPECTRABENCH_DATA_DIR": str(tmp_path / "ray"), "HOME": str(cluster.home)})
    (local_out, local_err), (ray_out, ray_err) = local.communicate(timeout=300), on_ray.communicate(timeout=300)
    assert local.returncode == 0, local_err[-3000:]
    assert on_ray.returncode == 0, ray_err[-3000:]
    assert json.loads(ray_out)["devices"] == "ray-cpu:0" and json.loads(local_out)["devices"] == "cpu:0"
    expected = _scores(tmp_path / "local" / "spectrabench.duckdb")
    assert expected and _scores(tmp_path / "ray" / "spectrabench.duckdb") == expected
    # A random-init model scores 0 on most docs, so compare what lm-eval measured per document too: the
    # log-likelihood of every choice, to the last bit.
    assert _loglikelihoods(tmp_path / "ray") == _loglikelihoods(tmp_path / "local") != {}


def _loglikelihoods(data_dir: Path) -> dict[tuple[str, int], Any]:
    found = {}
    for path in data_dir.glob("results/*/*/attempt-*/*.samples.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            found[(record["task"], record["doc_id"])] = record["filtered_resps"]
    return found
