"""How busy this machine was with other work while a run was timed.

A wall-time ratio is only as clean as the machine it was measured on: another process on a 2-core machine can
stretch one run and not the other, and a `compare` speed-up then says more about the neighbours than about the
schedule, and a timing the predictor learns from says how slow the neighbours made it. So around each timed run
`compare` takes two snapshots, and around each attempt the local executor does: of the CPU time of the cores the run
may use (`psutil`), and of the run's own, that is this process, the workers it has waited for
(`resource.getrusage`) and the workers still running with everything they started. What those cores spent busy
beyond the run's own share was other work. Steal time (a hypervisor running other guests on our cores) counts
apart. CPU only: other processes on a GPU are not seen.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable
from typing import NamedTuple

import psutil

from spectrabench.store.machineload import MachineLoad


class CpuSnapshot(NamedTuple):
    """The CPU time of the cores this run may use and of the run itself at one moment, in seconds."""

    at_s: float  # monotonic clock
    busy_s: float  # the cores' time not idle (user, nice, system, irq, softirq), summed
    steal_s: float  # time the hypervisor gave other guests on them
    own_s: float  # user + system time of this process, the children it has waited for, and its live workers
    cores: int  # the cores this process may run on


def process_tree(root: psutil.Process | None) -> list[psutil.Process]:
    """A process and all its descendants; empty once it is gone (or its pid belongs to a newer process)."""
    try:
        # is_running also compares start times, so a pid reused after the process exited is not counted.
        if root is None or not root.is_running():
            return []
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_snapshot(live: Iterable[psutil.Process] = ()) -> CpuSnapshot:
    """The CPU time the run's cores and the run have used so far.

    Only the cores this process may run on count (its CPU affinity): in a container pinned to a few cores of a big
    host, the host's other cores are someone else's, busy or not.

    Args:
        live: The run's workers that are still running (not yet waited for): theirs and their descendants' CPU time
            is the run's own too. Each process counts with the children it has waited for, so a descendant that
            exits moves its time into its parent's figure rather than out of the sum.
    """
    mine = 0.0
    for root in live:
        for proc in process_tree(root):
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue  # exited while we read the tree
            mine += t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)
    usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    per_core = psutil.cpu_times(percpu=True)
    chosen = [per_core[i] for i in usable if i < len(per_core)] if usable else per_core
    busy = sum(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0) for t in chosen)
    steal = sum(getattr(t, "steal", 0.0) for t in chosen)
    own = sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for field in ("ru_utime", "ru_stime"))
    return CpuSnapshot(time.monotonic(), busy, steal, own + mine, max(1, len(chosen)))


def background_between(before: CpuSnapshot, after: CpuSnapshot) -> MachineLoad:
    """The other work between two snapshots, and the run's own, in cores busy on average; never below zero, as the
    counters tick at different moments.

    Each snapshot must count every worker of the run: as waited for, or as live (`cpu_snapshot(live=...)`).

    Args:
        before: Taken just before the run.
        after: Taken just after it.
    """
    wall = max(after.at_s - before.at_s, 1e-9)
    own = after.own_s - before.own_s
    other = (after.busy_s - before.busy_s) - own
    steal = after.steal_s - before.steal_s
    return MachineLoad(other_cores=max(0.0, other / wall), steal_cores=max(0.0, steal / wall), cores=after.cores,
                       own_cores=max(0.0, own / wall))
