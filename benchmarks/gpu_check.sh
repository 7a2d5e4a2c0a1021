#!/usr/bin/env bash
# GPU checks for a machine with an NVIDIA GPU (run from the repository root, with spectrabench importable):
#   1. the smoke models on the GPU, with the real NVML monitor;
#   2. a real OOM forced with an absurd batch size, and the halving retry that succeeds;
#   3. the monitor's measured peak memory next to torch's own figure (max_memory_allocated) per attempt;
#   4. the optimized mode on the GPU: the batch planned for each task from its predicted peak, and the batch each
#      task really ran at inside its grouped worker.
# Needs: python3 with torch (CUDA), and spectrabench's dependencies (lm-eval, transformers, duckdb, typer, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export SPECTRABENCH_DATA_DIR=${SPECTRABENCH_DATA_DIR:-$(mktemp -d)/data}
SB="$PY -m spectrabench"

echo "== devices"
$PY - <<'PY'
from spectrabench.hardware import parse_devices
for d in parse_devices("auto"):
    print(d.id, d.name, f"{d.total_mem_gb:.1f} GB total, {d.free_mem_gb:.1f} GB free")
PY

echo "== 1. smoke profile on cuda:0 (parallel mode, limit 8)"
$SB run --profile smoke --devices cuda:0 --mode parallel --limit 8 || true
$SB report

echo "== 2. absurd batch size: real OOM, then halving until it fits"
$SB run --profile smoke --devices cuda:0 --mode parallel --limit 64 --batch-size 16384 --force --json \
  > "$SPECTRABENCH_DATA_DIR/oom.json" || true

echo "== 3. attempts: batch, outcome, monitor peak vs torch peak"
$PY - <<'PY'
import json, os, duckdb
con = duckdb.connect(os.path.join(os.environ["SPECTRABENCH_DATA_DIR"], "spectrabench.duckdb"), read_only=True)
rows = con.execute("""SELECT j.model, a.attempt, a.batch_size, coalesce(a.error_kind, 'ok'), a.peak_mem_gb, a.worker
                      FROM attempts a JOIN jobs j USING (job_key, run_id)
                      WHERE a.run_id = (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1)
                      ORDER BY j.model, a.attempt""").fetchall()
print(f"{'model':<16} {'try':>3} {'batch':>6} {'outcome':<12} {'monitor GB':>10} {'torch GB':>9}")
for model, attempt, batch, kind, peak, worker in rows:
    torch_peak = (json.loads(worker) or {}).get("peak_mem_gb") if worker else None
    print(f"{model:<16} {attempt:>3} {batch:>6} {kind:<12} {peak or 0:>10.2f} {torch_peak or 0:>9.2f}")
PY

echo "== 4. optimized on cuda:0: each task's planned batch, and the batch it ran at in its worker"
$SB plan --profile smoke --devices cuda:0 --limit 8
$SB run --profile smoke --devices cuda:0 --limit 8 --force || true
$PY - <<'PY'
import os, duckdb
con = duckdb.connect(os.path.join(os.environ["SPECTRABENCH_DATA_DIR"], "spectrabench.duckdb"), read_only=True)
for row in con.execute("""SELECT model, task, batch_size, runtime_s FROM task_results
                          WHERE run_id = (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1)
                          ORDER BY model, task""").fetchall():
    print(*row)
PY
