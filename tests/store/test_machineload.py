"""Reading other work on the machine: a noisy timing (for a speed-up) and a contended one (for learning)."""

from __future__ import annotations

from spectrabench.store.machineload import MachineLoad


def test_other_work_on_more_than_a_tenth_of_the_cores_is_noisy() -> None:
    assert not MachineLoad(other_cores=0.2, steal_cores=0.0, cores=2).noisy
    assert MachineLoad(other_cores=0.25, steal_cores=0.0, cores=2).noisy
    assert MachineLoad(other_cores=0.0, steal_cores=0.3, cores=2).noisy  # a hypervisor's other guests count too
    assert not MachineLoad(other_cores=6.0, steal_cores=0.0, cores=64).noisy


def test_a_timing_is_contended_only_where_other_work_left_the_run_short_of_cores() -> None:
    # Two cores: a neighbour on one while the run wanted both.
    assert MachineLoad(other_cores=0.9, steal_cores=0.0, cores=2, own_cores=1.1).contended
    # A neighbour on ten of 64 cores while a GPU job used one: noisy for a speed-up, but nobody waited.
    busy_host = MachineLoad(other_cores=10.0, steal_cores=0.0, cores=64, own_cores=1.0)
    assert busy_host.noisy and not busy_host.contended
    # The same host nearly full with the neighbours' work: the job's data preparation waited for a core.
    assert MachineLoad(other_cores=58.0, steal_cores=0.0, cores=64, own_cores=1.0).contended
    # Quiet: not contended however busy the run itself kept the cores.
    assert not MachineLoad(other_cores=0.05, steal_cores=0.0, cores=2, own_cores=2.0).contended
    # Without the run's own figure a noisy timing counts as contended: it cannot be shown clean.
    assert MachineLoad(other_cores=10.0, steal_cores=0.0, cores=64).contended
