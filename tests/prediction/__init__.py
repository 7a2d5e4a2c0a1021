"""Shared builders for the prediction tests: devices, models, and synthetic histories with a known pattern."""

from __future__ import annotations

import random

from spectrabench.catalog import TASKS
from spectrabench.hardware import DeviceSpec
from spectrabench.prediction.features import HistoryRecord, JobFeatures, job_features, shape_from_facts
from spectrabench.prediction.rules import estimate
from spectrabench.profiles import ModelSpec

H100 = DeviceSpec(id="cuda:0", kind="cuda", index=0, name="NVIDIA H100 80GB HBM3", total_mem_gb=79.6,
                  free_mem_gb=79.1)
A100_40 = DeviceSpec(id="cuda:0", kind="cuda", index=0, name="NVIDIA A100-SXM4-40GB", total_mem_gb=39.4,
                     free_mem_gb=39.0)
CPU = DeviceSpec(id="cpu:0", kind="cpu", index=0, name="CPU", total_mem_gb=11.0, free_mem_gb=10.0, threads=2)

# The pattern the rules cannot see: how much slower or faster each family runs than its size says.
FAMILY_SLOWDOWN = {"llama": 1.0, "qwen": 2.5, "gemma": 0.4, "mistral": 1.6}
SYNTHETIC_MODELS = [
    ModelSpec(name=f"{family}-{size}b", pretrained=f"org/{family}-{size}B", params_b=size)
    for family in FAMILY_SLOWDOWN for size in (1.5, 3, 7, 9, 14)
]
SYNTHETIC_TASKS = ["arc_easy", "arc_challenge", "piqa", "hellaswag", "gsm8k", "humaneval", "gpqa_main_zeroshot",
                   "nq_open"]


def model(name: str, params_b: float, pretrained: str | None = None, dtype: str = "bfloat16") -> ModelSpec:
    """A model spec for `pretrained` (default `org/<name>`)."""
    return ModelSpec.model_validate({"name": name, "pretrained": pretrained or f"org/{name}", "params_b": params_b,
                                     "dtype": dtype})


def features(params_b: float = 7.0, task: str = "arc_easy", limit: int | None = None, batch_size: int = 8,
             device: DeviceSpec = H100, name: str = "m") -> JobFeatures:
    """Features of a catalog task on a bf16 Llama-like model."""
    facts = TASKS[task]
    return job_features(model(name, params_b, f"org/llama-{name}"), shape_from_facts(facts), facts.default_shots,
                        limit, batch_size, device)


def synthetic_history(n: int, seed: int = 0, noise: float = 0.08) -> list[HistoryRecord]:
    """`n` finished jobs whose runtime is the rules' estimate times a per-family slowdown, with noise.

    Memory is 85% of the rules' estimate and load time 1.3x, each with a little noise: the learned model
    should find all three corrections.
    """
    rng = random.Random(seed)
    records = []
    for i in range(n):
        spec = rng.choice(SYNTHETIC_MODELS)
        task = rng.choice(SYNTHETIC_TASKS)
        facts = TASKS[task]
        f = job_features(spec, shape_from_facts(facts), facts.default_shots, rng.choice([None, 50, 100, 200]),
                         rng.choice([4, 8, 16, 32]), rng.choice([H100, A100_40]))
        family = next(k for k in FAMILY_SLOWDOWN if k in spec.name)
        rules = estimate(f)
        records.append(HistoryRecord(
            features=f, runtime_s=rules.runtime_s * FAMILY_SLOWDOWN[family] * rng.lognormvariate(0, noise),
            load_s=rules.load_s * 1.3 * rng.lognormvariate(0, noise),
            peak_mem_gb=rules.peak_mem_gb * 0.85 * rng.lognormvariate(0, noise / 3),
            finished_at=1_000_000.0 + 60.0 * i, model=spec.name, task=task))
    return records
