"""The predictor's view of a history drawn from the simulator: features as the planner computes them.

`simulate.history` draws what happened (the truth's costs); this module alone joins it to `prediction.features`,
so the simulator and the predictor stay apart (tests/simulate/test_truth.py checks that neither imports the other).
Used by `benchmarks/predictor_accuracy.py` and the phase 2 experiment's `--simulated` history.
"""

from __future__ import annotations

from collections.abc import Sequence

from spectrabench.catalog import task_facts
from spectrabench.hardware import DeviceSpec
from spectrabench.prediction.features import HistoryRecord, job_features, shape_from_facts
from spectrabench.profiles import Profile
from spectrabench.simulate.history import draw_records


def simulated_history(profile: Profile, devices: Sequence[DeviceSpec], size: int, *, seed: int = 0
                      ) -> list[HistoryRecord]:
    """`size` finished task records drawn from the simulator (see `simulate.history.draw_records`), oldest first.

    Args:
        profile: Where models and tasks come from (every task must be in the catalog).
        devices: The pool, e.g. `simulate.specs.parse_pool("A100-80GB,H100-80GB")`.
        size: Records to return.
        seed: The same seed gives the same history.
    """
    records: list[HistoryRecord] = []
    for drawn in draw_records(profile, devices, size, seed=seed):
        facts = task_facts(drawn.task.harness_name)
        assert facts is not None  # draw_records simulates catalog tasks only
        features = job_features(drawn.model, shape_from_facts(facts, drawn.task.name), drawn.task.shots,
                                drawn.limit, drawn.batch_size, drawn.device)
        records.append(HistoryRecord(features, drawn.cost.runtime_s, drawn.cost.load_s, drawn.cost.peak_mem_gb,
                                     drawn.finished_at, drawn.model.name, drawn.task.name))
    return records
