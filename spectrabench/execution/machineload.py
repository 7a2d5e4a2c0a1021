"""How busy this machine was with other work while a run was timed.

A wall-time ratio is only as clean as the machine it was measured on: another process on a 2-core machine can
stretch one run and not the other, and a `compare` speed-up then says more about the neighbours than about the
schedule. Around each timed run `compare` takes two snapshots of the CPU time of the cores the run may use
(`psutil`) and of this process and the workers it has waited for (`resource.getrusage`); what those cores spent
busy beyond the run's own share was other work. Steal time (a hypervisor running other guests on our cores) counts
apart. CPU only: other processes on a GPU are not seen.
"""

from __future__ import annotations

import os
import resource
import time
from typing import NamedTuple

import psutil

from spectrabench.store.compares import MachineLoad


class CpuSnapshot(NamedTuple):
    """The CPU time of the cores this run may use and of the run itself at one moment, in seconds."""

    at_s: float  # monotonic clock
    busy_s: float  # the cores' time not idle (user, nice, system, irq, softirq), summed
    steal_s: float  # time the hypervisor gave other guests on them
    own_s: float  # user + system time of this process and of the children it has waited for
    cores: int  # the cores this process may run on


def cpu_snapshot() -> CpuSnapshot:
    """The CPU time the run's cores and the run have used so far.

    Only the cores this process may run on count (its CPU affinity): in a container pinned to a few cores of a big
    host, the host's other cores are someone else's, busy or not.
    """
    usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    per_core = psutil.cpu_times(percpu=True)
    chosen = [per_core[i] for i in usable if i < len(per_core)] if usable else per_core
    busy = sum(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0) for t in chosen)
    steal = sum(getattr(t, "steal", 0.0) for t in chosen)
    own = sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for field in ("ru_utime", "ru_stime"))
    return CpuSnapshot(time.monotonic(), busy, steal, own, max(1, len(chosen)))


def background_between(before: CpuSnapshot, after: CpuSnapshot) -> MachineLoad:
    """The other work between two snapshots (taken once the run's workers were waited for, so their time is the
    run's own), in cores busy on average; never below zero, as the counters tick at different moments.

    Args:
        before: Taken just before the run.
        after: Taken just after it.
    """
    wall = max(after.at_s - before.at_s, 1e-9)
    other = (after.busy_s - before.busy_s) - (after.own_s - before.own_s)
    steal = after.steal_s - before.steal_s
    return MachineLoad(other_cores=max(0.0, other / wall), steal_cores=max(0.0, steal / wall), cores=after.cores)
