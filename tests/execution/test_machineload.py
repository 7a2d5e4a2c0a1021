"""Other work on the machine while a run is timed: attributed by CPU time, the run's own (and its waited-for
workers') set apart."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from spectrabench.execution.machineload import CpuSnapshot, background_between, cpu_snapshot

# Burns `seconds` of its own CPU time, however busy the machine is.
_BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


def test_other_work_is_the_machine_s_busy_time_beyond_the_run_s_own() -> None:
    before = CpuSnapshot(at_s=100.0, busy_s=50.0, steal_s=1.0, own_s=10.0, cores=2)
    after = CpuSnapshot(at_s=110.0, busy_s=70.0, steal_s=4.0, own_s=25.0, cores=2)
    load = background_between(before, after)
    assert load.cores == 2
    assert abs(load.other_cores - 0.5) < 1e-9  # 20 s busy, 15 s of them the run's: 5 s over 10 s
    assert abs(load.steal_cores - 0.3) < 1e-9
    assert load.noisy  # 0.5 of 2 cores is over a tenth of the machine
    quiet = background_between(before, after._replace(busy_s=65.5, steal_s=1.0))
    assert abs(quiet.other_cores - 0.05) < 1e-9 and quiet.steal_cores == 0.0 and not quiet.noisy
    # The counters tick apart: a run that used a hair more than the machine saw is no negative load.
    assert background_between(before, after._replace(busy_s=64.0)).other_cores == 0.0
    # The same other work is a smaller share of a bigger machine.
    assert not background_between(before, after._replace(steal_s=1.0, cores=64)).noisy


def test_the_run_s_own_cpu_and_its_waited_for_workers_count_as_its_own() -> None:
    before = cpu_snapshot()
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    subprocess.run([sys.executable, "-c", _BURN.format(seconds=0.3)], check=True)
    after = cpu_snapshot()
    assert after.own_s - before.own_s >= 0.55  # both burns, whatever else the machine did
    assert after.busy_s - before.busy_s >= 0.5
    assert after.cores == len(os.sched_getaffinity(0))  # the cores this process may use, not the whole host's


def test_a_process_that_is_not_the_run_s_counts_as_other_work() -> None:
    # Not waited for while measured: its CPU time is not the run's (a neighbour on the machine).
    neighbour = subprocess.Popen([sys.executable, "-c", _BURN.format(seconds=60)])
    try:
        time.sleep(0.5)  # let it start
        before = cpu_snapshot()
        time.sleep(1.5)
        load = background_between(before, cpu_snapshot())
    finally:
        neighbour.kill()
        neighbour.wait()
    assert load.other_cores >= 0.5 and load.noisy


def test_only_the_cores_the_run_may_use_count() -> None:
    # A process pinned to one core (as a container on a few cores of a big host is) watches that core alone.
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
            "from spectrabench.execution.machineload import cpu_snapshot; print(cpu_snapshot().cores)")
    pinned = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert pinned.stdout.strip() == "1"


def test_a_live_worker_s_cpu_is_the_run_s_own_and_stays_so_once_reaped() -> None:
    # The local executor counts its workers that are still running as live processes and the finished ones as
    # waited for: the run's own CPU time must neither miss a live worker nor drop when one is reaped. The worker
    # burns only between two lines on its stdin, so the snapshots around the burn are not racing it.
    code = ("import sys, time\nprint('ready', flush=True)\nsys.stdin.readline()\n" + _BURN.format(seconds=0.6)
            + "print('burnt', flush=True)\nsys.stdin.readline()\n")
    worker = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert worker.stdin is not None and worker.stdout is not None
    process = psutil.Process(worker.pid)
    try:
        assert worker.stdout.readline().strip() == "ready"
        before = cpu_snapshot([process])
        worker.stdin.write("go\n")
        worker.stdin.flush()
        assert worker.stdout.readline().strip() == "burnt"
        during = cpu_snapshot([process])
    finally:
        worker.stdin.close()
        worker.wait()
    after = cpu_snapshot([process])  # reaped: no longer live, its whole time is waited-for time now
    assert during.own_s - before.own_s >= 0.6 - 0.02  # the burn, counted while the worker was live
    assert after.own_s >= during.own_s - 0.02
    load = background_between(before, during)
    assert load.own_cores is not None and load.own_cores > 0.3
