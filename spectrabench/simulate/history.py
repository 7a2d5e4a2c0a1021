"""A history drawn from the simulator: what a lab's DuckDB would hold after many runs on real GPUs.

The CPU history that `make history` builds has sub-second tasks dominated by noise and one device kind; the
predictor's learning curve on GPUs can only be measured here. Each record is one (model, task) evaluation at a
drawn limit and batch size on a drawn device of the pool, with what the simulator's truth says it cost (noise
included). Attempts whose true peak overflows their device are left out, as an OOM leaves no task record in a
real store. The predictor's view of these records (features) is built outside the simulator
(`spectrabench.simulated_history`), so the truth never meets the predictor's code.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import NamedTuple

from spectrabench.hardware import DeviceSpec
from spectrabench.profiles import ModelSpec, Profile, TaskSpec
from spectrabench.simulate.truth import DEFAULT_TRUTH, TrueCost, TruthConfig, true_cost
from spectrabench.simulate.workload import sim_job_for, sim_task

LIMITS: tuple[int | None, ...] = (10, 20, 50, 100, 200, 500, None)
BATCHES = (1, 2, 4, 8, 16, 32, 64)
_SECONDS_BETWEEN_RECORDS = 60.0


class SimRecord(NamedTuple):
    """One finished (model, task) evaluation of the simulated world, and what it really cost."""

    model: ModelSpec
    task: TaskSpec
    limit: int | None
    batch_size: int
    device: DeviceSpec
    cost: TrueCost
    finished_at: float


def draw_records(profile: Profile, devices: Sequence[DeviceSpec], size: int, *, seed: int = 0,
                 truth: TruthConfig = DEFAULT_TRUTH, limits: Sequence[int | None] = LIMITS,
                 batches: Sequence[int] = BATCHES) -> list[SimRecord]:
    """Draw `size` finished task records, oldest first.

    Args:
        profile: Where models and tasks come from (every task must be in the catalog).
        devices: The pool; each record runs on one device drawn from it.
        size: Records to return.
        seed: The same seed gives the same history.
        truth: Noise and outliers of the world.
        limits: Candidate documents per task (None: all of them).
        batches: Candidate batch sizes.

    Raises:
        ValueError: Nothing in the profile fits any device, so no record can be drawn.
    """
    rng = random.Random(seed)
    records: list[SimRecord] = []
    misses = 0
    while len(records) < size:
        model = rng.choice(profile.models)
        task = rng.choice(profile.tasks)
        limit = rng.choice(list(limits))
        batch = rng.choice(list(batches))
        device = rng.choice(list(devices))
        job = sim_job_for(model, (sim_task(task, limit),), batch)
        cost = true_cost(job, device, 1, random.Random(rng.getrandbits(64)), config=truth)
        if cost.peak_mem_gb > device.total_mem_gb:
            misses += 1
            if misses > 100 * size:
                raise ValueError("no drawn job fits any device of the pool")
            continue
        records.append(SimRecord(model, task, limit, batch, device, cost, len(records) * _SECONDS_BETWEEN_RECORDS))
    return records
