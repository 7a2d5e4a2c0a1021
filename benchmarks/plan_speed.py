"""How long planning takes for 462, 5,000 and 20,000 (model, task) jobs; the aim: 5,000 in under a second.

Planning, as timed here, is everything the scheduler computes from predictions before and while a run goes, for the
whole queue, on one CPU core:
1. grouping: `placement.jobs_per_device` (how many small jobs a GPU may share) and `subtasks.plan_pieces`, which cuts
   every model's (model, task) items into the jobs (worker processes) that run (grouping twice where a large lm-eval
   group could run in parts, to see whether that pays);
2. dispatch: `timeline.predicted_schedule` with `DynamicLPT` (co-location on), the dispatcher asked for every start
   of the whole run, each job lasting its predicted length, until every job has a device and a start time: a full
   schedule. Reported as the whole replay and, within it, the time spent in `DynamicLPT.pick` / `observe`.
Not timed: predicting each job's cost (the predictor), and building the synthetic workload below. "shared" is the
share of jobs started next to another on a GPU; "unplaced" counts jobs whose predicted peak exceeds a whole GPU
(some copies of the 32B model draw one: they need a multi-GPU placement, which these one-GPU items do not ask for).

Workloads: the extended profile (22 models x 21 tasks = 462 items, predictions and memory from the simulator's
workload builder for an H100, 20% runtime prediction error) on 8xH100-80GB; 5,000 and 20,000 items replicate its
models under distinct names (`<model>~<copy>`, each copy with its own predictions) over the same 21 tasks, the last
copy cut short to hit the count exactly. Each size is planned `--repeat` times in this one invocation (the same
input, checked to give the same schedule each time); the median time of each phase is printed.
Usage: `python benchmarks/plan_speed.py [--repeat 3] [--pool 8xH100-80GB]` (a mixed pool, e.g.
`2xA100-80GB,4xL4-24GB`, sizes jobs for the smallest card that holds them and runs each card at its speed).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

SIZES = (462, 5_000, 20_000)
AIM_S = {5_000: 1.0}


def synthetic_items(n: int, devices):  # type: ignore[no-untyped-def]
    """`n` (model, task) items: the extended profile's models, copied under new names until there are enough; and
    each kind's predicted speed where the pool mixes kinds."""
    from spectrabench.profiles import load_profile
    from spectrabench.settings import Settings
    from spectrabench.simulate.workload import build_workload

    extended = load_profile("extended", Settings())
    items = []
    copy = 0
    speeds: dict[str, float] = {}
    while len(items) < n:
        models = [m.model_copy(update={"name": f"{m.name}~{copy}"}) if copy else m for m in extended.models]
        workload = build_workload(extended.model_copy(update={"models": models}), devices[0], seed=copy,
                                  runtime_noise=0.2, memory_noise=0.1, fit_margin=0.1, pool=devices)
        items += workload.items[: n - len(items)]
        speeds = workload.speeds or {}
        copy += 1
    return items, speeds


class _TimedPolicy:
    """Wraps a policy and adds up the time spent in it."""

    def __init__(self, policy) -> None:  # type: ignore[no-untyped-def]
        self.policy, self.name, self.spent_s = policy, policy.name, 0.0

    def pick(self, queue, slot, now):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return self.policy.pick(queue, slot, now)
        finally:
            self.spent_s += time.perf_counter() - started

    def observe(self, item, actual_runtime_s) -> None:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        self.policy.observe(item, actual_runtime_s)
        self.spent_s += time.perf_counter() - started


def plan_once(items: Sequence, devices: Sequence, speeds: dict[str, float]) -> dict[str, object]:  # type: ignore[type-arg]
    """Group and dispatch `items` on `devices` once (each kind at its `speeds`), timing each phase."""
    from spectrabench.planning.dispatch import DynamicLPT
    from spectrabench.planning.placement import jobs_per_device
    from spectrabench.planning.speeds import pool_rates
    from spectrabench.planning.subtasks import plan_pieces
    from spectrabench.planning.timeline import Pool, predicted_schedule

    rates = pool_rates(devices, speeds)
    pool = [Pool(r.device_id, r.total_mem_gb, r.speed) for r in rates]
    started = time.perf_counter()
    by_model: dict[str, list] = {}  # type: ignore[type-arg]
    for item in items:
        by_model.setdefault(item.model, []).append(item)
    jobs = plan_pieces(by_model, len(pool), jobs_per_device=jobs_per_device(items, pool[0].total_mem_gb))
    grouped = time.perf_counter()
    policy = _TimedPolicy(DynamicLPT(n_devices=len(pool), pool=rates))
    schedule = predicted_schedule(jobs, pool, policy)
    done = time.perf_counter()
    return {"grouping_s": grouped - started, "dispatch_s": done - grouped, "policy_s": policy.spent_s,
            "total_s": done - started, "jobs": len(jobs), "schedule": schedule}


def main() -> None:
    """Plan each size `--repeat` times and print the median time of each phase."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pool", default="8xH100-80GB")
    args = parser.parse_args()
    from spectrabench.simulate.specs import parse_pool

    devices = parse_pool(args.pool)
    print(f"planning on {args.pool}, median of {args.repeat} runs per size (one CPU core)")
    print(f"{'items':>7} {'models':>6} {'jobs':>6} {'grouping s':>11} {'dispatch s':>11} {'(in policy)':>11} "
          f"{'total s':>8} {'makespan h':>10} {'shared':>6} {'unplaced':>8}")
    verdicts = []
    for n in SIZES:
        items, speeds = synthetic_items(n, devices)
        runs = [plan_once(items, devices, speeds) for _ in range(args.repeat)]
        schedules = [r["schedule"] for r in runs]
        if any(s != schedules[0] for s in schedules[1:]):
            raise AssertionError(f"planning {n} items gave different schedules for the same input")
        schedule = schedules[0]

        def median(key: str, values: list = runs) -> float:  # type: ignore[type-arg]
            return statistics.median(float(r[key]) for r in values)  # type: ignore[arg-type]

        shared = sum(p.sharing > 1 for p in schedule.placements) / len(schedule.placements)  # type: ignore[attr-defined]
        print(f"{n:>7} {len({i.model for i in items}):>6} {runs[0]['jobs']:>6} {median('grouping_s'):>11.3f} "
              f"{median('dispatch_s'):>11.3f} {median('policy_s'):>11.3f} {median('total_s'):>8.3f} "
              f"{schedule.makespan_s / 3600:>10.1f} {shared:>6.0%} "  # type: ignore[attr-defined]
              f"{len(schedule.unplaced):>8}")  # type: ignore[attr-defined]
        if n in AIM_S:
            verdicts.append(f"{n:,} items planned in {median('total_s'):.3f} s <= {AIM_S[n]} s "
                            f"{'met' if median('total_s') <= AIM_S[n] else 'MISSED'}")
    print("aims: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
