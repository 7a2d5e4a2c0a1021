"""Co-location: several small-model jobs sharing a GPU against the best whole-GPU schedule, in the simulator.

Two mixes over the extended profile's 21 tasks, on one pool (8xH100-80GB by default):
- small: 20 models of 0.5B-3B (ten small open models, each as a base and an instruct variant);
- large: the extended profile's models above 7B (none small: each may share only beside small models,
  `placement.may_share`).

Every strategy faces, per seed, the same workload (predictions), the same truth, the same noise and outliers
(truth and prediction noise 0.2, 2% outliers at 3x, memory-prediction noise 0.1, batches sized to leave 10% of the
memory free), in the simulator (`simulate/cluster.py`), whose truth the policies never see. Whole-GPU schedules
(one job per GPU at a time):
- ours, whole GPUs: `group_jobs` for the pool, then `DynamicLPT(colocate=False)`;
- ours, finer pieces: `group_jobs` packed for the co-location slots (as below), then `DynamicLPT(colocate=False)`;
- LPT: the same pieces as "ours, whole GPUs", longest predicted first on any idle device (the simulator's
  `LongestFirstPolicy(colocate=False)`);
- LPT per model: one job per model, longest first.
Co-located: `group_jobs(..., jobs_per_device=placement.jobs_per_device(items, GPU memory))`, then `DynamicLPT()`,
which starts a job next to running ones only when predicted peaks plus the margin fit and `should_colocate` says it
pays under the planner's own slowdown model (`placement.colocation_slowdown`, not the truth's).

Per seed: gain = the best whole-GPU makespan of that seed / the co-located makespan; printed at p50 (the aim:
>= 1.25x on the small mix), p10 and min, with OOMs, unfinished jobs, device-time shared, and the largest sum of
predicted peaks on one device over its memory (never above 1): the peaks of the tasks each job there had left
when a job started (a worker frees its cache between tasks; `SimResult.peak_predicted_share`). On the large mix
co-location must do nothing: no job shares a device and its makespan equals "ours, whole GPUs" at every seed.
Usage: `python benchmarks/colocation.py [--seeds 10] [--pool 8xH100-80GB]`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

GAIN_AIM = 1.25
# Ten small open models (size in billions of parameters, embeddings included), each as a base and an instruct
# variant: the kind of sweep where co-location matters.
SMALL_MODELS = (("qwen2.5-0.5b", 0.49), ("hyperclovax-seed-0.5b", 0.57), ("gemma-3-1b", 1.0),
                ("llama-3.2-1b", 1.24), ("hyperclovax-seed-1.5b", 1.5), ("qwen2.5-1.5b", 1.54),
                ("smollm2-1.7b", 1.7), ("kanana-1.5-2.1b", 2.1), ("exaone-3.5-2.4b", 2.67), ("qwen2.5-3b", 3.0))
LARGE_ABOVE_B = 7.0


def _mixes():  # type: ignore[no-untyped-def]
    from spectrabench.profiles import ModelSpec, load_profile
    from spectrabench.settings import Settings

    extended = load_profile("extended", Settings())
    small = [ModelSpec(name=f"{name}-{variant}", pretrained=f"example/{name}-{variant}", params_b=size,
                       dtype="bfloat16") for variant in ("base", "instruct") for name, size in SMALL_MODELS]
    large = [m for m in extended.models if m.params_b > LARGE_ABOVE_B]
    return {"small": extended.model_copy(update={"models": small}),
            "large": extended.model_copy(update={"models": large})}


def _pieces(workload, n_slots_per_device: float, n_devices: int):  # type: ignore[no-untyped-def]
    from spectrabench.planning.grouping import group_jobs
    from spectrabench.simulate.workload import group_items, item_key

    by_model: dict[str, list] = {}  # type: ignore[type-arg]
    for item in workload.items:
        by_model.setdefault(item.model, []).append(item)
    pieces = group_jobs(by_model, n_devices, jobs_per_device=n_slots_per_device)
    return group_items(workload, [[item_key(p.model, [t]) for t in p.tasks] for p in pieces])


def _shared_share(result) -> float:  # type: ignore[no-untyped-def]
    """Device-time with two or more jobs on the device, over device-time with any."""
    shared = busy = 0.0
    for segments in result.per_device_timeline.values():
        events = sorted([(s.start_s, 1) for s in segments] + [(s.end_s, -1) for s in segments])
        running, last = 0, 0.0
        for t, step in events:
            busy += (t - last) * (running > 0)
            shared += (t - last) * (running > 1)
            running, last = running + step, t
    return shared / busy if busy > 0 else 0.0


def _p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run_mix(name: str, profile, pool: str, seeds: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Simulate every strategy on `profile` for `seeds` seeds; print and return the summary."""
    from spectrabench.planning.dispatch import DynamicLPT
    from spectrabench.planning.placement import jobs_per_device
    from spectrabench.simulate.cluster import simulate
    from spectrabench.simulate.policies import LongestFirstPolicy
    from spectrabench.simulate.specs import parse_pool
    from spectrabench.simulate.truth import TruthConfig
    from spectrabench.simulate.workload import build_workload, group_by_model

    devices = parse_pool(pool)
    n = len(devices)
    truth = TruthConfig(noise=0.2, outlier_rate=0.02)
    whole_names = ("ours, whole GPUs", "ours, finer pieces", "LPT", "LPT per model")
    makespans: dict[str, list[float]] = {s: [] for s in (*whole_names, "ours, co-located")}
    gains, shared, peaks, slots = [], [], [], []
    ooms = unfinished = 0
    started = time.perf_counter()
    for seed in range(seeds):
        workload = build_workload(profile, devices[0], seed=seed, runtime_noise=0.2, memory_noise=0.1,
                                  fit_margin=0.1)
        per_device = jobs_per_device(workload.items, devices[0].total_mem_gb)
        slots.append(per_device)
        whole = _pieces(workload, 1.0, n)
        finer = _pieces(workload, per_device, n)
        per_model = group_by_model(workload)
        runs = {
            "ours, whole GPUs": simulate(whole.items, whole.jobs, devices, DynamicLPT(n_devices=n, colocate=False),
                                         seed, truth=truth),
            "ours, finer pieces": simulate(finer.items, finer.jobs, devices,
                                           DynamicLPT(n_devices=n, colocate=False), seed, truth=truth),
            "LPT": simulate(whole.items, whole.jobs, devices, LongestFirstPolicy(colocate=False), seed, truth=truth),
            "LPT per model": simulate(per_model.items, per_model.jobs, devices, LongestFirstPolicy(colocate=False),
                                      seed, truth=truth),
            "ours, co-located": simulate(finer.items, finer.jobs, devices, DynamicLPT(n_devices=n), seed,
                                         truth=truth),
        }
        for strategy, result in runs.items():
            makespans[strategy].append(result.makespan_s)
        colocated = runs["ours, co-located"]
        gains.append(min(runs[s].makespan_s for s in whole_names) / colocated.makespan_s)
        shared.append(_shared_share(colocated))
        peaks.append(colocated.peak_predicted_share)
        ooms += colocated.oom_count
        unfinished += len(colocated.failed) + len(colocated.unplaced)
    print(f"\n{name} mix: {len(profile.models)} models ({min(m.params_b for m in profile.models):g}-"
          f"{max(m.params_b for m in profile.models):g}B) x {len(profile.tasks)} tasks on {pool}, {seeds} seeds "
          f"({time.perf_counter() - started:.0f} s); co-location slots per device (planner) "
          f"{statistics.median(slots):.2f}")
    for strategy, values in makespans.items():
        print(f"  {strategy:20} makespan p50 {statistics.median(values) / 3600:7.2f} h")
    summary = {"gain_p50": statistics.median(gains), "gain_p10": _p(gains, 0.1), "gain_min": min(gains),
               "shared_p50": statistics.median(shared), "shared_max": max(shared), "peak_predicted": max(peaks),
               "ooms": ooms,
               "unfinished": unfinished,
               "identical_to_whole": makespans["ours, co-located"] == makespans["ours, whole GPUs"]}
    print(f"  co-located vs best whole-GPU schedule per seed: p50 {summary['gain_p50']:.3f}x, "
          f"p10 {summary['gain_p10']:.3f}x, min {summary['gain_min']:.3f}x")
    print(f"  co-located run: device-time shared p50 {summary['shared_p50']:.0%}, largest predicted memory "
          f"{summary['peak_predicted']:.0%} of a device, {ooms} OOM (retried), {unfinished} unfinished")
    return summary


def main() -> None:
    """Run both mixes and print which aims are met."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--pool", default="8xH100-80GB")
    args = parser.parse_args()
    mixes = _mixes()
    small = run_mix("small", mixes["small"], args.pool, args.seeds)
    large = run_mix("large", mixes["large"], args.pool, args.seeds)
    checks = {
        f"small mix gain p50 >= {GAIN_AIM}x": float(small["gain_p50"]) >= GAIN_AIM,  # type: ignore[arg-type]
        "predicted memory never over a device": max(float(small["peak_predicted"]),  # type: ignore[arg-type]
                                                    float(large["peak_predicted"])) <= 1.0,  # type: ignore[arg-type]
        "small mix: every job finished": small["unfinished"] == 0,
        "large mix: nothing shared": large["shared_max"] == 0.0 and bool(large["identical_to_whole"]),
    }
    print("\naims: " + ", ".join(f"{name} {'met' if ok else 'MISSED'}" for name, ok in checks.items()))


if __name__ == "__main__":
    main()
