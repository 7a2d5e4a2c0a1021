"""How many tokens each model's own tokenizer makes of a local task's text, where that tokenizer is on disk.

A task's shape guesses its prompt length from bytes (`prediction.shapes.BYTES_PER_TOKEN`), the same for every model.
Tokenizers differ far more than that: on the smoke tasks SmolLM2's English vocabulary makes 3.7 bytes a token of
English facts but 1.2 of Korean (three times the guess), and the tiny Llamas' 4k vocabulary about 1.9 of everything.
Prompt length drives prefill time and the logits a batch holds, so the planner scales each (model, task)'s estimate
by the real count (`prediction.features.job_features(..., token_scale=)`).

Only `tokenizer.json` files are read, with the `tokenizers` library (no model, no transformers import, nothing
downloaded): a builtin model's from the model cache once it is built, a local folder's, and a Hugging Face model's
from the local hub cache when it is there. A pair without one keeps the byte estimate. Catalog tasks have no local
text and keep theirs too.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spectrabench.harness.localtasks import LocalTask
from spectrabench.harness.models import is_provisioned, model_dir
from spectrabench.prediction.features import TokenCount
from spectrabench.profiles import ModelSpec

if TYPE_CHECKING:
    from spectrabench.profiles import Profile
    from spectrabench.settings import Settings
    from spectrabench.tasksources import TaskSources

# Scales outside this range say more about a broken tokenizer file than about the text.
_SCALE_RANGE = (0.2, 5.0)
_TOKENIZER_FILE = "tokenizer.json"


def tokenizer_file(model: ModelSpec, model_cache: Path) -> Path | None:
    """The model's `tokenizer.json` on this machine, or None (never downloads).

    Args:
        model: The profile's model.
        model_cache: Where builtin models are built (`Settings.model_cache`).
    """
    if model.builtin is not None:
        folder = model_dir(model.builtin, model_cache)
        return folder / _TOKENIZER_FILE if is_provisioned(model.builtin, model_cache) else None
    assert model.pretrained is not None
    local = Path(model.pretrained).expanduser()
    if local.is_dir():
        path = local / _TOKENIZER_FILE
        return path if path.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        cached = try_to_load_from_cache(model.pretrained, _TOKENIZER_FILE, revision=model.revision)
    except Exception:  # a malformed id or cache is no reason to fail a plan: keep the estimate
        return None
    return Path(cached) if isinstance(cached, str) else None


@functools.lru_cache(maxsize=64)
def _tokenizer(path: Path, mtime_ns: int) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


def bytes_per_token(tokenizer: Path, texts: Sequence[str]) -> float | None:
    """UTF-8 bytes per token of `texts` under the tokenizer in `tokenizer` (None when there is nothing to count
    or the file cannot be read)."""
    if not texts:
        return None
    try:
        encoder = _tokenizer(tokenizer, tokenizer.stat().st_mtime_ns)
        tokens = sum(len(e.ids) for e in encoder.encode_batch(list(texts), add_special_tokens=False))
    except Exception:  # an unreadable tokenizer leaves the estimate in place
        return None
    size = sum(len(text.encode()) for text in texts)
    return size / tokens if tokens else None


def choice_passes(tokenizer: Path, choices: Sequence[Sequence[str]]) -> float | None:
    """Forward passes per loglikelihood request that lm-eval runs for documents with these answer options (each
    as appended to the context, delimiter included: `prediction.shapes.sample_choices`).

    With its logits cache on (HFLM's default), lm-eval groups a document's requests by context plus all but the
    last continuation token and scores each group in one pass: every option that is a single token after the
    context shares one pass (MMLU's letters: four requests, one pass), a longer option gets its own. None when
    there is nothing to count or the tokenizer cannot be read.
    """
    options = [option for doc in choices for option in doc]
    if not options:
        return None
    try:
        encoder = _tokenizer(tokenizer, tokenizer.stat().st_mtime_ns)
        lengths = [len(e.ids) for e in encoder.encode_batch(list(options), add_special_tokens=False)]
    except Exception:  # an unreadable tokenizer leaves one pass per request
        return None
    passes, start = 0, 0
    for doc in choices:
        single = [n == 1 for n in lengths[start:start + len(doc)]]
        start += len(doc)
        passes += single.count(False) + (1 if any(single) else 0)
    return passes / len(options)


def token_scales(models: Sequence[ModelSpec], tasks: Mapping[str, Sequence[LocalTask]], model_cache: Path
                 ) -> dict[tuple[str, str], TokenCount]:
    """For each (model name, task name) with a tokenizer on disk and local text: the model's real token count of
    the task's text over the shape's byte estimate, for multiple choice the forward passes per request, and for
    generation the stop strings its leaves share.

    Args:
        models: The profile's models.
        tasks: Each profile task's local tasks: itself, or a group's leaves (their texts pooled).
        model_cache: Where builtin models are built.
    """
    from spectrabench.prediction.shapes import BYTES_PER_TOKEN, sample_choices, sample_texts, stop_strings

    texts = {name: [text for leaf in leaves for text in sample_texts(leaf)] for name, leaves in tasks.items()}
    options = {name: [doc for leaf in leaves for doc in sample_choices(leaf)] for name, leaves in tasks.items()}
    stops = {name: {stop_strings(leaf) for leaf in leaves} for name, leaves in tasks.items()}
    low, high = _SCALE_RANGE
    scales: dict[tuple[str, str], TokenCount] = {}
    for model in models:
        path = tokenizer_file(model, model_cache)
        if path is None:
            continue
        for task, sample in texts.items():
            measured = bytes_per_token(path, sample)
            if measured is not None:
                scales[model.name, task] = TokenCount(min(high, max(low, BYTES_PER_TOKEN / measured)),
                                                      choice_passes(path, options[task]),
                                                      next(iter(stops[task])) if len(stops[task]) == 1 else None)
    return scales


def profile_token_scales(models: Sequence[ModelSpec], sources: TaskSources, model_cache: Path
                         ) -> dict[tuple[str, str], TokenCount]:
    """`token_scales` for a profile's local tasks and local groups (`tasksources.resolve_task_sources`)."""
    tasks: dict[str, Sequence[LocalTask]] = {name: [task] for name, task in sources.local.items()}
    tasks |= sources.groups
    return token_scales(models, tasks, model_cache) if tasks else {}


def scales_for(profile: Profile, settings: Settings) -> dict[tuple[str, str], TokenCount]:
    """`profile_token_scales` for a profile whose task sources are not resolved yet (the calibrate commands)."""
    from spectrabench.tasksources import resolve_task_sources

    return profile_token_scales(profile.models, resolve_task_sources(profile), settings.model_cache)
