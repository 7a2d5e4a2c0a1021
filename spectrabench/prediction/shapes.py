"""How much work one task is, whatever model runs it: the shapes the rules and features start from.

A shape comes from the catalog (built-in lm-eval tasks), from a local task's yaml and data, or from a local group's
leaves; a part of a group (`taskparts`) is its group's shape cut down to its share of the leaves.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from spectrabench.catalog import RequestType, TaskFacts
from spectrabench.harness.localtasks import LocalTask, _read_config, count_documents
from spectrabench.harness.taskdata import iter_jsonl
from spectrabench.taskparts import part_share

# Rough UTF-8 bytes of task text per token, when the model's tokenizer is not at hand: ~4 for English, one Hangul
# syllable (3 bytes) per token or so for Korean; 3.5 sits between and errs towards more tokens. Real tokenizers differ
# far more (measured on the smoke tasks: SmolLM2's 3.7 on English facts but 1.2 on Korean, the tiny Llamas' 4k
# vocabulary 1.8-2.0 on all), so where the tokenizer is on disk the planner counts with it (`harness.tokencounts`).
BYTES_PER_TOKEN = 3.5
_TEMPLATE_TOKENS = 8  # "Question: ... Answer:" scaffolding around the fields
_SAMPLE_DOCS = 64
_DEFAULT_CHOICES = 4.0
_HFLM_DEFAULT_GEN_TOKS = 256


class TaskShape(NamedTuple):
    """How much work one task is, independent of the model: what the rules need.

    `avg_prompt_tokens` is the mean context of one request at `prompt_shots` few-shot examples.
    """

    request_type: RequestType
    documents: int
    choices_per_doc: float
    max_gen_toks: int
    avg_prompt_tokens: int
    task: str = ""
    prompt_shots: int = 0
    subtasks: int = 1
    # A generation task's stop strings (`until`): with one, a batch stops once all its answers have, as a batch of
    # one does; with several, rows ending on different strings keep a batch going (`prediction.answers`). None:
    # not known (catalog tasks), or not a generation task.
    stop_sequences: int | None = None
    # Forward passes per loglikelihood request when known without a tokenizer: a catalog task with bare-letter
    # options runs one pass per document (`TaskFacts.letter_choices`). None: one per request, or a tokenizer's count.
    passes_per_request: float | None = None

    def documents_after(self, limit: int | None) -> int:
        """Documents scored under lm-eval's `--limit`, which applies to every leaf subtask of a group.

        `mmlu --limit 10` scores 10 documents in each of its 57 subjects, 570 in all; a subject with fewer
        documents than the limit gives what it has, hence the cap at the group's total.
        """
        if limit is None:
            return self.documents
        return min(self.documents, limit * max(1, self.subtasks))

    def prompt_tokens(self, shots: int) -> int:
        """Mean context tokens of one request at `shots` examples, scaled linearly from `avg_prompt_tokens`."""
        per_example = self.avg_prompt_tokens / (self.prompt_shots + 1)
        return max(1, round(per_example * (shots + 1)))
    def part(self, index: int, count: int) -> TaskShape:
        """The shape of part `index` of `count` of this group (`taskparts`): its share of the documents and of
        the leaves (`--limit` applies per leaf); request type, prompts and caps stay the group's."""
        share = part_share(self.subtasks, index, count)
        leaves = round(self.subtasks * share)
        return self._replace(documents=max(1, round(self.documents * share)), subtasks=max(1, leaves))


def shape_from_facts(facts: TaskFacts, name: str | None = None) -> TaskShape:
    """The shape of a catalog task.

    Args:
        facts: The catalog's facts.
        name: The profile's task name (history is keyed by it); defaults to lm-eval's name.
    """
    return TaskShape(facts.request_type, facts.documents, facts.choices_per_doc, facts.max_gen_toks,
                     facts.avg_prompt_tokens, name or facts.lm_eval_task, facts.default_shots, facts.subtasks,
                     passes_per_request=1 / facts.choices_per_doc if facts.letter_choices else None)


def shape_from_local(task: LocalTask, name: str | None = None) -> TaskShape:
    """The shape of a local task, read from its yaml and the first documents of its scored split.

    Multiple choice becomes loglikelihood with as many requests per document as the first document has
    `choices` (4 when the data has no such list); generation takes `max_gen_toks` from the yaml's
    `generation_kwargs` (HFLM's 256 when absent). Prompt length is estimated from the text of the fields that
    `doc_to_text` uses, at zero shots.

    Args:
        task: The indexed local task.
        name: The profile's task name; defaults to the yaml's `task:`.
    """
    config = _read_config(task.yaml_path) or {}
    docs = _first_docs(task)
    documents = count_documents(task) or 0
    fields = re.findall(r"\{\{\s*(\w+)", str(config.get("doc_to_text") or ""))
    prompt = _mean_tokens(docs, fields)
    if task.output_type == "multiple_choice":
        choices = docs[0].get("choices") if docs else None
        n_choices = float(len(choices)) if isinstance(choices, list) and choices else _DEFAULT_CHOICES
        # A request is the context plus one option: add the mean option's length.
        option = (_mean_tokens(docs, ["choices"]) - _TEMPLATE_TOKENS) / n_choices
        return TaskShape("loglikelihood", documents, n_choices, 0, round(prompt + option), name or task.name)
    if task.output_type == "generate_until":
        kwargs = config.get("generation_kwargs")
        gen = kwargs.get("max_gen_toks") if isinstance(kwargs, dict) else None
        return TaskShape("generate_until", documents, 1.0, int(gen) if isinstance(gen, int) else _HFLM_DEFAULT_GEN_TOKS,
                         prompt, name or task.name, stop_sequences=_stop_count(config))
    request: RequestType = "loglikelihood_rolling" if task.output_type == "loglikelihood_rolling" else "loglikelihood"
    return TaskShape(request, documents, 1.0, 0, prompt, name or task.name)


def stop_strings(task: LocalTask) -> int | None:
    """How many stop strings a local generation task gives lm-eval (`generation_kwargs.until`); one when it names
    none (lm-eval then stops on the few-shot delimiter); None for other kinds of task."""
    if task.output_type != "generate_until":
        return None
    return _stop_count(_read_config(task.yaml_path) or {})


def _stop_count(config: dict[str, object]) -> int:
    kwargs = config.get("generation_kwargs")
    until = kwargs.get("until") if isinstance(kwargs, dict) else None
    return len(until) if isinstance(until, list) and until else 1


def _doc_texts(doc: dict[str, object], fields: Sequence[str]) -> list[str]:
    """The texts of `fields` of one document (all its string and list fields when none are named)."""
    values = [doc.get(f) for f in fields] if fields else list(doc.values())
    return [" ".join(map(str, v)) if isinstance(v, list) else v for v in values if isinstance(v, str | list)]


def _mean_tokens(docs: Sequence[dict[str, object]], fields: Sequence[str]) -> int:
    """Rough mean token count of `fields` (all string fields when none are named) over `docs`."""
    if not docs:
        return _TEMPLATE_TOKENS
    total = sum(len(text.encode()) for doc in docs for text in _doc_texts(doc, fields))
    return _TEMPLATE_TOKENS + round(total / len(docs) / BYTES_PER_TOKEN)


def _first_docs(task: LocalTask) -> list[dict[str, object]]:
    docs: list[dict[str, object]] = []
    path = task.data_files.get(task.test_split) if task.test_split else None
    if path is not None and path.is_file():
        for doc in iter_jsonl(path):
            docs.append(doc)
            if len(docs) >= _SAMPLE_DOCS:
                break
    return docs


def sample_texts(task: LocalTask) -> list[str]:
    """The text that a local task's prompt estimate is made from, one string per sampled document: the fields its
    `doc_to_text` uses, and the answer options of a multiple-choice task. A model's own tokenizer turns these into
    its real token counts (`harness.tokencounts`), which `BYTES_PER_TOKEN` only guesses."""
    config = _read_config(task.yaml_path) or {}
    fields = re.findall(r"\{\{\s*(\w+)", str(config.get("doc_to_text") or ""))
    if task.output_type == "multiple_choice":
        fields = [*fields, "choices"] if fields else fields
    return [text for doc in _first_docs(task) if (text := " ".join(_doc_texts(doc, fields)))]


def sample_choices(task: LocalTask) -> list[list[str]]:
    """The answer options of a multiple-choice task's sampled documents, as lm-eval appends them to the context
    (after the yaml's `target_delimiter`, a space by default); empty for other tasks, or when `doc_to_choice` is not
    a field of the data holding a list of strings."""
    if task.output_type != "multiple_choice":
        return []
    config = _read_config(task.yaml_path) or {}
    field = str(config.get("doc_to_choice") or "choices").strip()
    delimiter = str(config.get("target_delimiter", " "))
    out = []
    for doc in _first_docs(task):
        options = doc.get(field)
        if isinstance(options, list) and options and all(isinstance(o, str) for o in options):
            out.append([delimiter + o for o in options])
    return out


def shape_of_group(leaves: Sequence[TaskShape], name: str) -> TaskShape:
    """The shape of a group of `leaves`: their documents summed, answer options and prompt lengths averaged over
    the documents, the longest generation cap, the most common request type, and the leaves' stop strings where
    they all have as many.

    Raises:
        ValueError: No leaves.
    """
    if not leaves:
        raise ValueError(f"group '{name}' has no leaf tasks")
    documents = sum(leaf.documents for leaf in leaves)
    weight = [max(1, leaf.documents) for leaf in leaves]

    def mean(values: Sequence[float]) -> float:
        return sum(v * w for v, w in zip(values, weight, strict=True)) / sum(weight)

    types = [leaf.request_type for leaf in leaves]
    stops = {leaf.stop_sequences for leaf in leaves}
    return TaskShape(max(set(types), key=types.count), documents, mean([leaf.choices_per_doc for leaf in leaves]),
                     max(leaf.max_gen_toks for leaf in leaves),
                     round(mean([leaf.prompt_tokens(0) for leaf in leaves])), name, 0, len(leaves),
                     stops.pop() if len(stops) == 1 else None)
