"""The ground-truth cost model: kept apart from the predictor, physically sensible, and seeded."""

from __future__ import annotations

import math
import random
import subprocess
import sys
import textwrap

from spectrabench.simulate.specs import parse_pool
from spectrabench.simulate.truth import (
    SimJob,
    SimTask,
    TruthConfig,
    colocation_slowdown,
    expected_cost,
    load_seconds,
    true_cost,
    true_vocab,
)

H100, A100, L4 = (parse_pool(name)[0] for name in ("H100-80GB", "A100-80GB", "L4-24GB"))
MMLU = SimTask("mmlu", "loglikelihood", 14042, 56168, 650, 0, 57)
GSM8K = SimTask("gsm8k", "generate_until", 1319, 1319, 850, 256)


def job(params_b: float = 8.0, tasks: tuple[SimTask, ...] = (MMLU,), batch: int = 8, vocab: int = 128256) -> SimJob:
    return SimJob(key="m/t", model="m", params_b=params_b, dtype_bytes=2, vocab=vocab, tasks=tasks, batch_size=batch)


def _imported(module: str) -> set[str]:
    """The spectrabench modules a fresh interpreter holds after importing `module` and, for a package, all of it."""
    code = textwrap.dedent(f"""
        import importlib, pkgutil, sys
        root = importlib.import_module({module!r})
        for info in pkgutil.walk_packages(getattr(root, "__path__", []), root.__name__ + "."):
            importlib.import_module(info.name)
        print("\\n".join(m for m in sys.modules if m.startswith("spectrabench")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def _under(modules: set[str], package: str) -> set[str]:
    return {m for m in modules if m == package or m.startswith(package + ".")}


def test_truth_and_predictor_share_no_module() -> None:
    truth = _imported("spectrabench.simulate.truth")
    assert "spectrabench.simulate.truth" in truth and _under(truth, "spectrabench.prediction") == set()
    # No part of the simulator reaches the predictor...
    simulator = _imported("spectrabench.simulate")
    assert "spectrabench.simulate.cluster" in simulator and _under(simulator, "spectrabench.prediction") == set()
    # ...and no predictor module reaches the simulator: the scheduler must not peek at the truth.
    predictor = _imported("spectrabench.prediction")
    assert "spectrabench.prediction.rules" in predictor and _under(predictor, "spectrabench.simulate") == set()


def test_faster_hardware_is_faster_and_bigger_models_are_slower_and_heavier() -> None:
    small, big = expected_cost(job(2.0), H100), expected_cost(job(8.0), H100)
    assert big.runtime_s > 2 * small.runtime_s and big.load_s > small.load_s and big.peak_mem_gb > small.peak_mem_gb
    times = [expected_cost(job(), device).runtime_s for device in (H100, A100, L4)]
    assert times == sorted(times) and times[2] > 2 * times[0]
    gen = [expected_cost(job(tasks=(GSM8K,)), device).runtime_s for device in (H100, A100, L4)]
    assert gen == sorted(gen)  # decoding is bandwidth bound: 3.35 > 2.04 > 0.3 TB/s


def test_memory_grows_with_batch_and_vocabulary_and_runtime_shrinks_with_batch() -> None:
    weights_gib = 8e9 * 2 / 1024**3
    costs = [expected_cost(job(batch=b), H100) for b in (1, 2, 4, 8, 16, 32)]
    peaks = [c.peak_mem_gb for c in costs]
    assert peaks == sorted(peaks) and weights_gib < peaks[0] < weights_gib + 2
    # B x L x vocab logits: at batch 32 of 5-shot MMLU they outweigh the 15 GiB of weights.
    assert peaks[-1] - peaks[0] > weights_gib
    runtimes = [c.runtime_s for c in costs]
    assert runtimes == sorted(runtimes, reverse=True)  # halving the batch after an OOM costs time
    gemma_like = expected_cost(job(vocab=262208), H100).peak_mem_gb
    assert gemma_like > expected_cost(job(), H100).peak_mem_gb + 3
    gen_peaks = [expected_cost(job(tasks=(GSM8K,), batch=b), H100).peak_mem_gb for b in (1, 8, 64)]
    assert gen_peaks == sorted(gen_peaks)


def test_a_grouped_job_loads_once_and_sums_its_tasks() -> None:
    both = expected_cost(job(tasks=(MMLU, GSM8K)), H100)
    mmlu, gsm8k = expected_cost(job(tasks=(MMLU,)), H100), expected_cost(job(tasks=(GSM8K,)), H100)
    assert both.load_s == mmlu.load_s == gsm8k.load_s
    assert math.isclose(both.runtime_s, mmlu.runtime_s + gsm8k.runtime_s)
    assert both.peak_mem_gb == max(mmlu.peak_mem_gb, gsm8k.peak_mem_gb)


def test_warm_loads_are_cheaper_and_loads_grow_with_weights() -> None:
    assert load_seconds(job(), H100, warm=True) < load_seconds(job(), H100, warm=False)
    assert load_seconds(job(32.0), H100, warm=False) > load_seconds(job(8.0), H100, warm=False) + 20
    cold, warm = true_cost(job(), H100, 1, None), true_cost(job(), H100, 1, None, warm=True)
    assert warm.load_s < cold.load_s and warm.runtime_s == cold.runtime_s


def test_colocation_slows_big_models_more_and_small_gpus_more() -> None:
    assert colocation_slowdown(job(), H100, 1) == 1.0
    slowdowns = [colocation_slowdown(job(), H100, k) for k in (1, 2, 3, 4)]
    assert slowdowns == sorted(slowdowns)
    small, big = colocation_slowdown(job(0.5), H100, 2), colocation_slowdown(job(32.0), H100, 2)
    assert 1.0 < small < 1.6 < big  # two 0.5B jobs together beat running them one after another
    assert colocation_slowdown(job(2.0), L4, 2) > colocation_slowdown(job(2.0), H100, 2)
    alone, shared = true_cost(job(), H100, 1, None), true_cost(job(), H100, 3, None)
    assert math.isclose(shared.runtime_s, alone.runtime_s * colocation_slowdown(job(), H100, 3))
    assert shared.peak_mem_gb == alone.peak_mem_gb


def test_noise_is_seeded_mean_one_and_shared_by_every_batch_size() -> None:
    base = expected_cost(job(), H100)
    first = true_cost(job(), H100, 1, random.Random("7/m/t"))
    assert first == true_cost(job(), H100, 1, random.Random("7/m/t"))
    assert first != true_cost(job(), H100, 1, random.Random("8/m/t"))
    # The same generator seed gives the same luck at another batch: the noise factor of the runtime matches.
    half = true_cost(job(batch=4), H100, 1, random.Random("7/m/t"))
    ratio_full = first.runtime_s / base.runtime_s
    assert math.isclose(half.runtime_s / expected_cost(job(batch=4), H100).runtime_s, ratio_full)
    config = TruthConfig(noise=0.3, outlier_rate=0.0)
    rng = random.Random(1)
    factors = [true_cost(job(), H100, 1, rng, config=config).runtime_s / base.runtime_s for _ in range(4000)]
    assert abs(sum(factors) / len(factors) - 1.0) < 0.03
    spread = math.sqrt(sum(math.log(f) ** 2 for f in factors) / len(factors))
    assert 0.27 < spread < 0.33


def test_outliers_multiply_runtime_only() -> None:
    always = TruthConfig(noise=0.0, outlier_rate=1.0, outlier_factor=3.0)
    base = expected_cost(job(), H100)
    hit = true_cost(job(), H100, 1, random.Random(0), config=always)
    assert math.isclose(hit.runtime_s, 3 * base.runtime_s) and hit.load_s == base.load_s
    rng = random.Random(2)
    rate = TruthConfig(noise=0.0, outlier_rate=0.02)
    hits = sum(true_cost(job(), H100, 1, rng, config=rate).runtime_s > 2 * base.runtime_s for _ in range(5000))
    assert 50 < hits < 160


def test_vocabulary_comes_from_the_model_family() -> None:
    assert true_vocab("google/gemma-3-12b-it") == 262208
    assert true_vocab("Qwen/Qwen3-8B") == 151936
    assert true_vocab("mistralai/Mistral-7B-v0.3") == 32768
    assert true_vocab("saltlux/ko-llama3-luxia-8b") == 145792
    assert true_vocab("someone/unknown-7b") == 128256


def test_bare_letter_options_cost_one_forward_pass_a_document() -> None:
    # lm-eval's logits cache scores a document's single-token options from one pass over the shared context.
    letters = MMLU._replace(one_pass=True)
    per_option = expected_cost(job(tasks=(MMLU,)), H100).runtime_s
    shared = expected_cost(job(tasks=(letters,)), H100).runtime_s
    assert 2.5 < per_option / shared < 4.0, "four options: close to a quarter of the forward work"
    # What does not depend on forward passes stays: a task with no options to share costs the same either way.
    gsm = expected_cost(job(tasks=(GSM8K,)), H100).runtime_s
    assert expected_cost(job(tasks=(GSM8K._replace(one_pass=True),)), H100).runtime_s == gsm


def test_a_further_part_of_a_group_pays_its_call_not_the_groups_setup() -> None:
    # A worker builds a group once for all its parts (`harness.groupscores.GroupBuilds`).
    half = MMLU._replace(documents=MMLU.documents // 2, requests=MMLU.requests // 2)
    two = expected_cost(job(tasks=(half, half)), H100).runtime_s
    apart = 2 * expected_cost(job(tasks=(half,)), H100).runtime_s
    assert 0 < apart - two < 6.0 + 57 * 0.7, "the second part skips the 57 leaves' setup"
    assert apart - two > 20.0
