"""Wall time of the smoke profile run the traditional way (`--mode baseline`) and in parallel on `cpu:2`.

One invocation measures both on this machine, each in a fresh data dir (nothing reused) with the same prebuilt
models, and prints their ratio. Usage: `python benchmarks/parallel_cpu.py [--limit 8] [--profile smoke]`.
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


def _run(profile: str, limit: int, data_dir: Path, model_cache: Path, *mode_args: str) -> dict[str, object]:
    env = {**os.environ, "SPECTRABENCH_DATA_DIR": str(data_dir), "SPECTRABENCH_MODEL_CACHE_DIR": str(model_cache),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "spectrabench", "run", "--profile", profile, "--limit", str(limit),
                           "--json", *mode_args], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        sys.exit(f"run {' '.join(mode_args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout))


def main() -> None:
    """Measure and print both wall times and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--model-cache", type=Path, default=REPO / ".spectrabench" / "models")
    args = parser.parse_args()
    provision_models(args.profile, args.model_cache)
    with tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp:
        baseline = _run(args.profile, args.limit, Path(tmp) / "baseline", args.model_cache, "--mode", "baseline")
        parallel = _run(args.profile, args.limit, Path(tmp) / "parallel", args.model_cache, "--mode", "parallel",
                        "--devices", "cpu:2")
    b, p = float(baseline["wall_s"]), float(parallel["wall_s"])  # type: ignore[arg-type]
    print(f"profile {args.profile}, limit {args.limit}, {os.cpu_count()} cores")
    print(f"baseline (one (model, task) per worker, sequential): {b:7.1f} s  {baseline['jobs_total']} jobs")
    print(f"parallel (one worker per model, cpu:2):              {p:7.1f} s  {parallel['jobs_total']} jobs")
    print(f"speed-up: {b / p:.2f}x")


if __name__ == "__main__":
    main()
