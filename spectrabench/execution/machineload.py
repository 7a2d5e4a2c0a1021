"""How busy this machine was with other work while a run was timed.

A wall-time ratio is only as clean as the machine it was measured on: another process on a 2-core machine can
stretch one run and not the other, and a `compare` speed-up then says more about the neighbours than about the
schedule. Around each timed run `compare` takes two snapshots of the machine's CPU time (all cores, `psutil`) and of
the CPU time of this process and the workers it has waited for (`resource.getrusage`); what the machine spent busy
beyond the run's own share was other work. Steal time (a hypervisor running other guests on our cores) counts
apart. CPU only: other processes on a GPU are not seen.
"""

from __future__ import annotations

import resource
import time
from typing import NamedTuple

import psutil

from spectrabench.store.compares import MachineLoad


class CpuSnapshot(NamedTuple):
    """The machine's and the run's CPU time at one moment, all in seconds."""

    at_s: float  # monotonic clock
    busy_s: float  # every core's time not idle (user, nice, system, irq, softirq), summed
    steal_s: float  # time the hypervisor gave other guests
    own_s: float  # user + system time of this process and of the children it has waited for


def cpu_snapshot() -> CpuSnapshot:
    """The CPU time the machine and this run have used so far."""
    times = psutil.cpu_times()
    own = sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for field in ("ru_utime", "ru_stime"))
    busy = times.user + times.nice + times.system + getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)
    return CpuSnapshot(time.monotonic(), busy, getattr(times, "steal", 0.0), own)


def background_between(before: CpuSnapshot, after: CpuSnapshot, cores: int) -> MachineLoad:
    """The other work between two snapshots (taken once the run's workers were waited for, so their time is the
    run's own), in cores busy on average; never below zero, as the counters tick at different moments.

    Args:
        before: Taken just before the run.
        after: Taken just after it.
        cores: Logical cores of the machine.
    """
    wall = max(after.at_s - before.at_s, 1e-9)
    other = (after.busy_s - before.busy_s) - (after.own_s - before.own_s)
    steal = after.steal_s - before.steal_s
    return MachineLoad(other_cores=max(0.0, other / wall), steal_cores=max(0.0, steal / wall), cores=max(1, cores))
