"""Crash safety: a driver killed with SIGKILL leaves no worker behind and the rerun finishes the job exactly once;
Ctrl-C stops cleanly; a second run on the same data dir is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psutil
import pytest
import yaml

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow

MODELS = [{"name": "tiny-a", "builtin": "tiny-llama-4m", "params_b": 0.004, "dtype": "float32"},
          {"name": "tiny-b", "builtin": "tiny-llama-15m", "params_b": 0.015, "dtype": "float32"}]
TASKS = [{"name": "sb_facts", "shots": 0}, {"name": "sb_ko", "shots": 0}, {"name": "sb_arith", "shots": 1}]


def _profile(tmp_path: Path) -> str:
    path = tmp_path / "crash.yaml"
    path.write_text(yaml.safe_dump({"name": "crash", "limit": 3, "batch_size": 2,
                                    "task_paths": [str(REPO / "profiles" / "tasks")],
                                    "models": MODELS, "tasks": TASKS}))
    return str(path)


def _foreground() -> None:
    # Ctrl-C reaches a run in the foreground. A suite started in the background by a non-interactive shell
    # inherits SIGINT ignored, and the driver, like any Unix tool, would then rightly ignore it too.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "spectrabench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
                            preexec_fn=_foreground)


def _workers(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "spectrabench.harness.worker" in cmdline and str(data_dir) in cmdline:
            found.append(proc)
    return found


def _wait(predicate: object, within_s: float, what: str) -> None:
    end = time.monotonic() + within_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


def _gone(procs: list[psutil.Process]) -> bool:
    return all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in procs)


def test_sigkill_driver_then_rerun_completes_exactly_once(tmp_path: Path, data_dir: Path) -> None:
    args = ["run", "--profile", _profile(tmp_path), "--mode", "parallel", "--devices", "cpu:2"]
    driver = _start(args)
    _wait(lambda: any(data_dir.rglob("*.results.json")) and len(_workers(data_dir)) >= 1, 240,
          "a finished task while workers run")
    workers = _workers(data_dir)
    assert workers
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    _wait(lambda: _gone(workers), 10, "workers to die with their driver")

    rerun = run_cli(*args)
    assert rerun.code == 0, rerun.stderr[-3000:]
    con = duckdb.connect(str(data_dir / "spectrabench.duckdb"), read_only=True)
    per_pair = con.execute("SELECT model, task, count(*) FROM task_results GROUP BY ALL").fetchall()
    score_dupes = con.execute("SELECT count(*) FROM (SELECT task_key, subtask, metric, filter, count(*) AS n "
                              "FROM scores GROUP BY ALL HAVING n > 1)").fetchone()[0]
    lost = con.execute("SELECT count(*) FROM attempts WHERE status = 'lost'").fetchone()[0]
    statuses = [r[0] for r in con.execute("SELECT status FROM runs ORDER BY started_at").fetchall()]
    con.close()
    assert sorted((m, t) for m, t, _ in per_pair) == sorted((m["name"], t["name"]) for m in MODELS for t in TASKS)
    assert all(n == 1 for _, _, n in per_pair), "no completed task may run twice"
    assert score_dupes == 0
    assert lost >= 1 and statuses == ["lost", "complete"]


def test_ctrl_c_stops_cleanly_and_a_second_run_is_refused(tmp_path: Path, data_dir: Path) -> None:
    args = ["run", "--profile", _profile(tmp_path), "--mode", "parallel", "--devices", "cpu:2"]
    driver = _start(args, env={"SPECTRABENCH_FAULT": "hang"})
    _wait(lambda: len(list(data_dir.rglob("hang-child.pid"))) == 2, 60, "two hanging workers")
    children = [psutil.Process(int(p.read_text())) for p in data_dir.rglob("hang-child.pid")]
    workers = _workers(data_dir)

    second = run_cli(*args)
    assert second.code == 2 and "another spectrabench run" in second.stderr
    assert second.stderr.count("\n") == 1

    driver.send_signal(signal.SIGINT)
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 130, stderr[-2000:]
    _wait(lambda: _gone(workers + children), 10, "workers and their children to be killed")
    con = duckdb.connect(str(data_dir / "spectrabench.duckdb"), read_only=True)
    run_status = con.execute("SELECT status FROM runs").fetchone()[0]
    attempt_kinds = {r[0] for r in con.execute("SELECT error_kind FROM attempts").fetchall()}
    con.close()
    assert run_status == "interrupted"
    assert attempt_kinds == {"interrupted"}
