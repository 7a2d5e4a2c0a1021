"""How busy the machine was with other work while something was timed, as the store keeps it.

`execution.machineload` measures it around a `compare` run and around every attempt a local run starts; the
compares table keeps it per run, the attempts table per attempt. Two readings of one figure: a speed-up is only
clean on a quiet machine (`noisy`), while a timing is only worth learning from when other work did not compete for
the cores the run used (`contended`).
"""

from __future__ import annotations

from pydantic import BaseModel

# Other work on more than this share of the machine's cores (or steal on that share) makes a timing suspect.
NOISY_SHARE = 0.1


class MachineLoad(BaseModel, frozen=True):
    """Other work on the machine while a run or an attempt was timed (`execution.machineload`).

    Attributes:
        other_cores: Cores busy with processes other than the run's, on average.
        steal_cores: Cores the hypervisor gave to other guests, on average.
        cores: Logical cores the run could use.
        own_cores: Cores busy with the run itself (the driver and all its workers), on average; None where it was
            not kept (compares record only the other work).
    """

    other_cores: float
    steal_cores: float
    cores: int
    own_cores: float | None = None

    @property
    def noisy(self) -> bool:
        """Whether other work (or steal) took more than `NOISY_SHARE` of the machine while the run was timed."""
        return max(self.other_cores, self.steal_cores) > NOISY_SHARE * self.cores

    @property
    def contended(self) -> bool:
        """Whether other work competed with the run for its cores: it took more than `NOISY_SHARE` of them, and
        with the run's own work the cores were (nearly) all busy, so someone waited.

        On a big machine whose other tenants leave the run's cores free this is False where `noisy` is True: a GPU
        job that needs one core is not slowed by a neighbour on ten of sixty-four. Without the run's own figure,
        noisy counts as contended.
        """
        if not self.noisy:
            return False
        if self.own_cores is None:
            return True
        return self.own_cores + self.other_cores + self.steal_cores >= (1 - NOISY_SHARE) * self.cores
