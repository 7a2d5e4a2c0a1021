"""`spectrabench compare` on this machine: the smoke profile run the traditional way, then optimized on `cpu:2`.

One invocation runs both (through the real CLI, in a fresh data dir, with the models built beforehand so that
neither run pays for it) and prints both wall times, their ratio, and the score parity check: every per-sample
value equal and every aggregate score within 1e-4, and how busy the machine was with other work while each run was
timed (a ratio timed on a busy machine is flagged). Aim: >= 1.8x with identical per-sample results.
Usage: `python benchmarks/real_compare.py [--limit 8] [--profile smoke]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from provisioning import provision_models  # benchmarks/provisioning.py, beside this script

REPO = Path(__file__).resolve().parent.parent
AIM = 1.8


def main() -> None:
    """Run the comparison once and print what it measured."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--devices", default="cpu:2")
    parser.add_argument("--model-cache", type=Path, default=REPO / ".spectrabench" / "models")
    args = parser.parse_args()
    provision_models(args.profile, args.model_cache)
    with tempfile.TemporaryDirectory(prefix="sb-compare-") as tmp:
        env = {**os.environ, "SPECTRABENCH_DATA_DIR": tmp, "SPECTRABENCH_MODEL_CACHE_DIR": str(args.model_cache),
               "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        proc = subprocess.run([sys.executable, "-m", "spectrabench", "compare", "--profile", args.profile,
                               "--limit", str(args.limit), "--devices", args.devices, "--json"],
                              capture_output=True, text=True, env=env, check=False, cwd=REPO)
    if not proc.stdout.strip():
        sys.exit(f"compare failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout)
    b, o, parity = summary["baseline"], summary["optimized"], summary["parity"]
    print(f"profile {args.profile}, limit {args.limit}, devices {args.devices}, {os.cpu_count()} cores")
    print(f"baseline  (one (model, task) per worker, one device): {b['wall_s']:7.1f} s  {b['jobs_total']} jobs "
          f"({b['status']})")
    print(f"optimized (grouped, longest first, {o['devices']}): {o['wall_s']:7.1f} s  {o['jobs_total']} jobs "
          f"({o['status']})")
    print(f"speed-up: {summary['speedup']:.2f}x (aim >= {AIM}x: {'met' if summary['speedup'] >= AIM else 'MISSED'})")
    loads = summary["background"]
    print("machine: cores busy with other work: " + ", ".join(f"{role} {load['other_cores']:.2f}"
                                                            for role, load in loads.items())
          + f" (of {max(load['cores'] for load in loads.values())} cores)"
          + ("; NOT a clean measurement, rerun on an idle machine" if summary["noisy"] else ""))
    verdict = "identical" if summary["identical"] else f"DIFFERENT ({len(parity['mismatches'])} values)"
    print(f"parity: {verdict}: {parity['samples_compared']} per-sample values, {parity['scores_compared']} scores, "
          f"max score difference {parity['max_score_diff']:.2g}")
    for mismatch in parity["mismatches"][:20]:
        print(f"  {mismatch['model']} x {mismatch['task']}: {mismatch['what']}: {mismatch['baseline']} vs "
              f"{mismatch['optimized']}")
    sys.exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
