"""Makespan of each scheduling strategy in the simulator, against the lower bound and the sequential baseline.

One invocation runs every case: the standard (13 x 10) and extended (22 x 21) profiles on 2xA100-80GB and
8xH100-80GB, truth and prediction noise 0.2 and 0.5 (lognormal sigma) with 2% outliers, 10% memory-prediction
noise, 20 seeds each. Per case and strategy it prints makespan / LB at p50 and p95, the speed-up over sequential,
OOMs, model loads and utilisation, then checks ours against the aims:
ours / LB <= 1.03 at p95 (noise 0.2) and <= 1.08 (noise 0.5); speed-up >= 1.95x on 2 GPUs and >= 7.5x on 8;
zero OOM; every job finished; model loads <= (models + GPUs) x 1.1.
/LBw is the same ratio against the bound that credits no co-location (`lower_bound(..., max_per_device=1)`): the
best any schedule that shares no GPU could do. The gap between the two is what co-location could still win.
"oracle" is ours told the truth (every runtime and load exactly as the simulator will charge it): where it misses
an aim too, the aim is out of reach of our policy whatever the predictor, and the gap lies between policy and bound.
Below that, per case, how close to LB any schedule can come at all, told the truth or not, if it never puts two
models above a size on one GPU (`simulate.configurations.configuration_bound`, p95 over the same seeds): above 7B,
the models of `benchmarks/colocation.py`'s large mix, where co-location must do nothing; above 3B, as ours never
does. Where the first exceeds an aim, the aim cannot be met together with the large-mix one.
Then mixed pools, which the issue names but sets no aim for (2xA100-80GB,4xL4-24GB): zero OOM, every job finished
and ours faster than the round-robin pool at p50 are checked; the bound there is a linear programme over the kinds.
Usage: `python benchmarks/simulated_makespan.py [--seeds 20]`.
"""

from __future__ import annotations

import argparse
import time

CASES = [(profile, pool) for profile in ("standard", "extended") for pool in ("2xA100-80GB", "8xH100-80GB")]
MIXED_CASES = [(profile, "2xA100-80GB,4xL4-24GB") for profile in ("standard", "extended")]
NOISES = (0.2, 0.5)
LB_AIM = {0.2: 1.03, 0.5: 1.08}
SPEEDUP_AIM = {2: 1.95, 8: 7.5}
LOAD_SLACK = 1.1
LARGE_APART_B = 7.0  # benchmarks/colocation.py's large mix: the models above 7B, which co-location must leave alone


def main() -> None:
    """Print one table per case and a line of aims met or missed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    from spectrabench.profiles import load_profile
    from spectrabench.settings import Settings
    from spectrabench.simulate.specs import parse_pool

    settings = Settings()
    misses = 0
    out_of_reach = 0
    for profile_name, pool in CASES:
        profile = load_profile(profile_name, settings)
        devices = parse_pool(pool)
        for noise in NOISES:
            stats = _table(profile, pool, noise, args.seeds)
            ours = next(s for s in stats if s.strategy == "ours")
            load_cap = (len(profile.models) + len(devices)) * LOAD_SLACK
            checks = {
                f"/LB p95 <= {LB_AIM[noise]}": ours.ratio_to_lb_p95 <= LB_AIM[noise],
                f"speed-up >= {SPEEDUP_AIM[len(devices)]}x": ours.speedup_p50 >= SPEEDUP_AIM[len(devices)],
                "zero OOM": ours.oom_total == 0,
                "every job finished": ours.unfinished == 0,
                f"loads <= {load_cap:.0f}": ours.model_loads_p50 <= load_cap,
            }
            misses += sum(not ok for ok in checks.values())
            print("aims: " + ", ".join(f"{name} {'met' if ok else 'MISSED'}" for name, ok in checks.items()))
            oracle = next((s for s in stats if s.strategy == "oracle"), None)
            if oracle is not None:
                print(f"told the truth, ours would reach /LB p95 {oracle.ratio_to_lb_p95:.3f} and "
                      f"{oracle.speedup_p50:.2f}x: prediction error costs "
                      f"{ours.ratio_to_lb_p95 / oracle.ratio_to_lb_p95 - 1:+.1%} at p95")
            out_of_reach += _reach(profile, devices, noise, args.seeds, ours.ratio_to_lb_p95)
    print(f"\n{misses} aim(s) missed; {out_of_reach} /LB aim(s) out of reach of any schedule that keeps models above "
          f"{LARGE_APART_B:g}B apart")
    print("\n=== mixed pools (no aim in the issue) ===")
    failed = 0
    for profile_name, pool in MIXED_CASES:
        for noise in NOISES:
            stats = _table(load_profile(profile_name, settings), pool, noise, args.seeds)
            ours, pooled = (next(s for s in stats if s.strategy == name) for name in ("ours", "round-robin"))
            checks = {"zero OOM": ours.oom_total == 0, "every job finished": ours.unfinished == 0,
                      "faster than round-robin": ours.makespan_h_p50 < pooled.makespan_h_p50}
            failed += sum(not ok for ok in checks.values())
            print("checks: " + ", ".join(f"{name} {'met' if ok else 'MISSED'}" for name, ok in checks.items()))
    print(f"\n{failed} mixed-pool check(s) missed")


def _reach(profile, devices, noise: float, seeds: int, ours_p95: float) -> bool:  # type: ignore[no-untyped-def]
    """Print how close to LB a schedule that keeps models apart can come; whether the /LB aim is out of its reach."""
    from spectrabench.planning.placement import SMALL_MODEL_B
    from spectrabench.simulate.experiment import percentile, reachable_ratios

    reach = {}
    sizes = (LARGE_APART_B, SMALL_MODEL_B)
    for apart_b, ratios in reachable_ratios(profile, devices, apart_above_b=sizes, seeds=seeds, noise=noise).items():
        reach[apart_b] = percentile(ratios, 0.95)
        print(f"never two models above {apart_b:g}B on one GPU: no schedule beats /LB p95 {reach[apart_b]:.3f} "
              f"(p50 {percentile(ratios, 0.5):.3f}, best seed {min(ratios):.3f})")
    beyond = reach[LARGE_APART_B] > LB_AIM[noise]
    rule = reach[SMALL_MODEL_B]
    print(f"ours /LB p95 {ours_p95:.3f} is {ours_p95 / rule:.3f}x the best under the {SMALL_MODEL_B:g}B rule, which "
          f"ours keeps (and more: a mid-size model shares only an H100-class card)"
          + (f"; the aim {LB_AIM[noise]} is out of reach while models above {LARGE_APART_B:g}B stay apart"
             if beyond else ""))
    return beyond


def _table(profile, pool: str, noise: float, seeds: int) -> list:  # type: ignore[no-untyped-def,type-arg]
    """Simulate every strategy on one case and print its table."""
    from spectrabench.simulate.experiment import compare_strategies
    from spectrabench.simulate.specs import parse_pool

    started = time.perf_counter()
    stats = compare_strategies(profile, parse_pool(pool), seeds=seeds, noise=noise, memory_noise=0.1)
    print(f"\n{profile.name} ({len(profile.models)} x {len(profile.tasks)}) on {pool}, noise {noise}, "
          f"{seeds} seeds ({time.perf_counter() - started:.0f} s)")
    print(f"{'strategy':12} {'p50 h':>7} {'/LB p50':>8} {'/LB p95':>8} {'/LBw p50':>9} {'/LBw p95':>9} "
          f"{'speed-up':>9} {'p5':>6} {'OOM':>4} {'loads':>6} {'util':>5} {'unfinished':>10}")
    for s in stats:
        print(f"{s.strategy:12} {s.makespan_h_p50:>7.2f} {s.ratio_to_lb_p50:>8.3f} {s.ratio_to_lb_p95:>8.3f} "
              f"{s.ratio_to_whole_lb_p50:>9.3f} {s.ratio_to_whole_lb_p95:>9.3f} "
              f"{s.speedup_p50:>8.2f}x {s.speedup_p5:>5.2f}x {s.oom_total:>4} {s.model_loads_p50:>6.0f} "
              f"{s.utilisation_p50:>5.2f} {s.unfinished:>10}")
    return stats


if __name__ == "__main__":
    main()
