"""Known facts about lm-eval tasks and model sizes, so a planner can size work without downloading anything.

Every figure is for lm-eval 0.4.13 as shipped; `tests/test_catalog.py` checks names, request types, subtask
counts, answer-option counts and generation caps against the installed task yamls. Sources and conventions:

- `documents`: size of the split lm-eval scores (test, else validation), from dataset cards and papers.
  `documents_estimated=True` marks counts that could not be read from a primary source offline: haerae
  (HAE-RAE paper minus reading comprehension; lm-eval warns its data may grow with v1.1), kobest (KoBEST
  paper test splits), csatqa (derived from the per-category accuracies on the dataset card), kormedmcqa
  (2024 revision with dentist: viewer and paper totals) and agieval (AGIEval paper table).
- `choices_per_doc`: answer options scored per document, averaged over documents; 1.0 for generation.
- `max_gen_toks`: the yaml's `generation_kwargs.max_gen_toks`, or HFLM's default of 256 where it sets none.
  A cap only: `until` strings stop most answers far earlier (kormedmcqa stops at ".").
- `default_shots`: SpectraBench's standard shots, the ones profiles/standard.yaml and extended.yaml run:
  0 for gpqa, hrm8k, bbh, agieval, triviaqa, nq_open, humaneval, csatqa and haerae; 5 otherwise.
- `avg_prompt_tokens`: rough mean context length of one request at `default_shots`, in tokens of a
  Llama-3-class (128k vocabulary) tokenizer. Estimated as (shots + 1) x a typical item length, from the prompt
  template and published item lengths; HumanEval was measured (mean 140 tokens over its 164 prompts).
  English-centric small vocabularies (SmolLM2's) need about twice as many tokens for Korean. Good to a factor
  of ~1.5: meant for runtime rules, not for context-length checks.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

RequestType = Literal["loglikelihood", "generate_until", "loglikelihood_rolling"]

# HFLM's max_gen_toks when a task's generation_kwargs leave it out.
_HFLM_DEFAULT_GEN_TOKS = 256


class TaskFacts(NamedTuple):
    """What a planner needs to know about one lm-eval task or group before running it."""

    lm_eval_task: str
    documents: int
    documents_estimated: bool
    request_type: RequestType
    choices_per_doc: float
    max_gen_toks: int  # 0 for loglikelihood tasks
    default_shots: int
    subtasks: int  # leaf tasks; > 1 for lm-eval groups
    avg_prompt_tokens: int
    # The options are bare letters (" A", " B", ...: one token in every tokenizer), so lm-eval's logits cache scores
    # all of a document's options in one forward pass.
    letter_choices: bool = False

    @property
    def requests(self) -> int:
        """Model calls lm-eval issues for the whole task: one per answer option, or one per generation."""
        return round(self.documents * self.choices_per_doc)

    def prompt_tokens(self, shots: int) -> int:
        """Rough mean context tokens at `shots` few-shot examples, scaled from `avg_prompt_tokens`.

        Args:
            shots: Number of few-shot examples in each prompt.
        """
        per_example = self.avg_prompt_tokens / (self.default_shots + 1)
        return max(1, round(per_example * (shots + 1)))


def _mc(name: str, documents: int, choices: float, shots: int, subtasks: int, prompt: int,
        *, estimated: bool = False, letters: bool = False) -> TaskFacts:
    return TaskFacts(name, documents, estimated, "loglikelihood", choices, 0, shots, subtasks, prompt, letters)


def _gen(name: str, documents: int, max_gen_toks: int, shots: int, subtasks: int, prompt: int,
         *, estimated: bool = False) -> TaskFacts:
    return TaskFacts(name, documents, estimated, "generate_until", 1.0, max_gen_toks, shots, subtasks, prompt)


_ALL: tuple[TaskFacts, ...] = (
    # Korean. Item lengths: KMMLU ~100 tokens with four options; KorMedMCQA ~120 with five.
    _mc("kmmlu", 35030, 4.0, 5, 45, 600, letters=True),
    _mc("kmmlu_hard", 4104, 4.0, 5, 45, 700, letters=True),
    # 176 general knowledge + 188 history + 169 loan words + 405 rare words + 153 standard nomenclature.
    _mc("haerae", 1091, 5.0, 0, 5, 130, estimated=True),
    # boolq 1404 (2 options, ~250-token passages), copa 1000 (2), hellaswag 500 (4), sentineg 397 (2),
    # wic 1260 (2).
    _mc("kobest", 4561, 2.22, 5, 5, 630, estimated=True),
    # GR 25, LI 37, RCH 35, RCS 37, RCSS 42, WR 11; prompts carry a full CSAT reading passage.
    _mc("csatqa", 187, 5.0, 0, 6, 1100, estimated=True),
    # doctor 435, nurse 878, pharm 885, dentist 811; generative: answers a letter, stops at ".".
    _gen("kormedmcqa", 3009, 1024, 5, 4, 700, estimated=True),
    # A FLORES paragraph (~200 tokens in Korean) plus question and four answers per example.
    _mc("belebele_kor_Hang", 900, 4.0, 5, 1, 1700, letters=True),
    # gsm8k 1319, ksm 1428, math 2885, mmmlu 470, omni_math 1909; long chain-of-thought answers.
    _gen("hrm8k", 8011, 2048, 0, 5, 150),
    # English.
    _mc("mmlu", 14042, 4.0, 5, 57, 650, letters=True),
    # Five chain-of-thought examples with ten options each make the longest prompts here.
    _gen("mmlu_pro", 12032, 2048, 5, 14, 2300),
    # lm-eval's `bbh` is the chain-of-thought few-shot group (yaml default 3 shots); run at 0 shots here.
    # 24 subtasks x 250 + causal_judgement 187 + penguins_in_a_table 146 + snarks 178.
    _gen("bbh", 6511, 1024, 0, 27, 180),
    _mc("gpqa_main_zeroshot", 448, 4.0, 0, 1, 250),
    # 19 multiple-choice subtasks (4 or 5 options) and 2 generative ones (math 1000 and gaokao_mathcloze
    # 118 docs, max_gen_toks 32) that this one-type summary folds into loglikelihood. LSAT, SAT and LogiQA
    # prompts carry passages.
    _mc("agieval", 8269, 3.75, 0, 21, 350, estimated=True),
    # Five worked solutions (~160 tokens each) before the question.
    _gen("gsm8k", 1319, _HFLM_DEFAULT_GEN_TOKS, 5, 1, 850),
    _mc("arc_challenge", 1172, 4.0, 5, 1, 240),
    _mc("arc_easy", 2376, 4.0, 5, 1, 220),
    _mc("hellaswag", 10042, 4.0, 5, 1, 430),  # validation split
    _mc("piqa", 1838, 2.0, 5, 1, 230),  # validation split
    _gen("triviaqa", 17944, _HFLM_DEFAULT_GEN_TOKS, 0, 1, 25),  # rc.nocontext validation; stops at "\n" . ,
    _gen("nq_open", 3610, _HFLM_DEFAULT_GEN_TOKS, 0, 1, 20),  # validation; stops at "\n" . ,
    _gen("humaneval", 164, 1024, 0, 1, 140),
)

TASKS: dict[str, TaskFacts] = {facts.lm_eval_task: facts for facts in _ALL}


def task_facts(lm_eval_task: str) -> TaskFacts | None:
    """The catalog's facts about an lm-eval task or group, or None when the catalog does not know it.

    Args:
        lm_eval_task: The name lm-eval knows (a profile task's `harness_name`).
    """
    return TASKS.get(lm_eval_task)


def known_task_names() -> list[str]:
    """The lm-eval task and group names the catalog has facts for, sorted."""
    return sorted(TASKS)


# A size token stands alone between separators: "8B", "2.4B", "0.5B", "21.4b", "135M". The lookarounds keep
# out version numbers ("3.1-8B" matches only 8B), "8bit", "4k", expert counts ("8x7B") and active sizes
# ("A3B").
_SIZE = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)([BbMm])(?![A-Za-z0-9])")


def detect_params_b(model_id: str) -> float | None:
    """Parameter count in billions read from a model id such as `meta-llama/Llama-3.1-8B`.

    Only the last path component counts, so folders named like sizes do not mislead. A billions figure wins
    over a millions one, because "M" also names context lengths ("Qwen2.5-7B-Instruct-1M"). Returns None when
    the name states no size, or two different ones, since a guess would be worse than asking the user.

    Args:
        model_id: A Hugging Face id or a local path.
    """
    name = model_id.rstrip("/").rsplit("/", 1)[-1]
    found = _SIZE.findall(name)
    billions = {float(number) for number, unit in found if unit in "Bb"}
    millions = {float(number) / 1000 for number, unit in found if unit in "Mm"}
    sizes = billions or millions
    if len(sizes) != 1:
        return None
    size = sizes.pop()
    return size if size > 0 else None
