"""What a predictor knows about a job before it runs, and what history adds, without ever looking ahead in time.

`JobFeatures` describes one (model, task) measurement on one device. `with_history_features` turns a list of
finished measurements into training rows: each row gets the numeric encoding of its features plus what the
records that finished strictly before it say about its model and task (seconds per request, residuals against a
reference estimate). A row never sees itself or anything that finished at the same moment or later, so
time-ordered cross-validation measures what the scheduler would really have known.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, NamedTuple

from pydantic import BaseModel

from spectrabench.catalog import RequestType
from spectrabench.hardware import DeviceSpec
from spectrabench.prediction.answers import AnswerShares, answer_kind
from spectrabench.prediction.shapes import TaskShape, shape_from_facts, shape_from_local, shape_of_group
from spectrabench.profiles import ModelSpec

# Shapes live in `prediction.shapes`; callers import them from here too.
__all__ = ["TaskShape", "shape_from_facts", "shape_from_local", "shape_of_group"]

# Fixed code tables: LightGBM sees the index, so the order must never change (append only), or saved predictors
# would read one family as another.
FAMILIES = ("other", "llama", "gemma", "qwen", "exaone", "mistral", "phi", "smollm", "deepseek")
REQUEST_TYPES: tuple[RequestType, ...] = ("loglikelihood", "generate_until", "loglikelihood_rolling")
DEVICE_KINDS = ("cpu", "cuda")
# GPU generations told apart by name (NVML's "NVIDIA H100 80GB HBM3" or a what-if pool's "H100-80GB"): cards of
# equal memory differ threefold in throughput, which device memory alone cannot show the trees.
DEVICE_CLASSES = ("other", "cpu", "l4", "a100", "h100", "h200")

_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
# Checked in this order: a distilled "DeepSeek-R1-Distill-Llama" is a deepseek job, "Mixtral" a mistral one.
_FAMILY_PATTERNS = (
    ("exaone", "exaone"), ("gemma", "gemma"), ("qwen", "qwen|qwq"), ("mistral", "mistral|mixtral|ministral"),
    ("phi", r"(?<![a-z])phi"), ("smollm", "smollm"), ("deepseek", "deepseek"), ("llama", "llama"),
)
# Builtin models are built by `harness.models`; their tokenizer and context are known without reading a config.
_BUILTIN_VOCAB_CONTEXT = {
    "smollm2-135m-instruct": (49152, 8192),
    "tiny-llama-4m": (4096, 4096), "tiny-llama-15m": (4096, 4096), "tiny-llama-40m": (4096, 4096),
}
# Names of the columns that `encode` produces, in a fixed order (the learned model's feature list).
BASE_COLUMNS = (
    "params_b", "log_params", "dtype_bytes", "family", "vocab_size", "context_len", "request_type", "documents",
    "choices_per_doc", "requests", "log_requests", "shots", "max_gen_toks", "prompt_tokens", "log_prompt_work",
    "log_gen_work", "batch_size", "device_kind", "device_class", "device_mem_gb", "threads", "co_located",
)
HISTORY_COLUMNS = (
    "hist_model_n", "hist_model_log_spr", "hist_task_n", "hist_task_log_spr", "hist_pair_n", "hist_pair_log_spr",
    "hist_model_resid", "hist_task_resid", "hist_pair_resid", "hist_model_load_resid", "hist_model_mem_resid",
    "hist_task_answer",
)



class JobFeatures(BaseModel, frozen=True):
    """One (model, task) measurement on one device, as the predictors see it.

    `model` and `task` are names that tie the job to its history (the profile's model and task names, as the
    store records them); every other field is a physical quantity. `documents` already has `limit` applied.
    """

    model: str
    task: str
    params_b: float
    dtype_bytes: int
    family: str
    vocab_size: int | None
    context_len: int | None
    request_type: RequestType
    documents: int
    choices_per_doc: float
    requests: int
    shots: int
    max_gen_toks: int
    prompt_tokens: int
    batch_size: int
    device_kind: Literal["cpu", "cuda"]
    device_name: str
    device_mem_gb: float
    threads: int | None = None
    co_located: int = 1
    # The model's own tokenizer's token count of the task's text over the shape's byte estimate (`prompt_tokens`
    # includes it); None where no tokenizer was at hand, or in records written before counts were measured.
    token_scale: float | None = None
    # Forward passes lm-eval runs per loglikelihood request: its logits cache scores every choice of a document whose
    # continuation is one token in a single pass (`harness.tokencounts.choice_passes`); None: one pass per request.
    pass_share: float | None = None
    # The CPU's single-thread GEMM GFLOP/s (`harness.cpuspeed`), which the rules scale their CPU figures by; None on
    # GPUs, and in records written before it was measured (the rules then keep their reference figures).
    cpu_gflops: float | None = None
    # A generation task's stop strings (`TaskShape.stop_sequences`): whether its larger batches stop as early as a
    # batch of one (`prediction.answers`). None: unknown, or not a generation task.
    stop_sequences: int | None = None


class TokenCount(NamedTuple):
    """What a model's own tokenizer says of a local task (`harness.tokencounts`), and the task's stop strings.

    `scale`: its token count of the task's text over the shape's byte estimate; `passes`: forward passes per
    loglikelihood request under lm-eval's logits cache (None for a generation task); `stops`: a generation task's
    stop strings (`TaskShape.stop_sequences`), which records written before they were kept lack.
    """

    scale: float
    passes: float | None = None
    stops: int | None = None


class HistoryRecord(NamedTuple):
    """One finished measurement: what was run, and what it cost.

    `runtime_s` is the task's evaluation time without model loading; `load_s` is the job's model load time;
    `peak_mem_gb` the job's peak (GiB); `finished_at` is seconds since the epoch. `model` and `task` are the names
    the store uses (`jobs.model`, `task_results.task`).
    """

    features: JobFeatures
    runtime_s: float
    load_s: float | None
    peak_mem_gb: float | None
    finished_at: float
    model: str
    task: str


FeatureRow = dict[str, float]


def model_family(model: ModelSpec) -> str:
    """The model family ("llama", "qwen", ...; "other" when unknown) read from its name, id or builtin name."""
    text = " ".join(filter(None, (model.name, model.pretrained, model.builtin))).lower()
    for family, pattern in _FAMILY_PATTERNS:
        if re.search(pattern, text):
            return family
    return "other"


def weights_gb(model: ModelSpec) -> float:
    """The model's weights in GiB, as loaded in its dtype."""
    return model.params_b * 1e9 * dtype_bytes(model) / 1024**3


def dtype_bytes(model: ModelSpec) -> int:
    """Bytes per weight. "auto" keeps the checkpoint's dtype: float32 for builtins, bf16 for released models."""
    if model.dtype == "auto":
        return 4 if model.builtin else 2
    return _DTYPE_BYTES[model.dtype]


def job_features(model: ModelSpec, shape: TaskShape, shots: int, limit: int | None, batch_size: int,
                 device: DeviceSpec, co_located: int = 1, *, vocab_size: int | None = None,
                 context_len: int | None = None, token_scale: float | None = None,
                 pass_share: float | None = None) -> JobFeatures:
    """Describe one (model, task) measurement on `device`.

    Args:
        model: The profile's model.
        shape: The task's shape (`shape_from_facts` or `shape_from_local`).
        shots: Few-shot examples per prompt.
        limit: Documents per task (None: all).
        batch_size: The explicit batch size the worker will use.
        device: Where it runs.
        co_located: Jobs sharing this device at the same time, this one included.
        vocab_size: The tokenizer's vocabulary, when the caller read the model's config; builtins are known.
        context_len: The model's maximum context, likewise.
        token_scale: How many times more tokens the model's tokenizer makes of the task's text than the shape's
            byte estimate (`harness.tokencounts`); None keeps the estimate.
        pass_share: Forward passes per loglikelihood request (`TokenCount.passes`); None: the shape's
            (`TaskShape.passes_per_request`), else one each.
    """
    known = _BUILTIN_VOCAB_CONTEXT.get(model.builtin or "")
    documents = shape.documents_after(limit)
    return JobFeatures(
        model=model.name, task=shape.task, params_b=model.params_b, dtype_bytes=dtype_bytes(model),
        family=model_family(model), vocab_size=vocab_size or (known[0] if known else None),
        context_len=context_len or (known[1] if known else None), request_type=shape.request_type,
        documents=documents, choices_per_doc=shape.choices_per_doc,
        requests=max(1, round(documents * shape.choices_per_doc)) if documents else 0, shots=shots,
        max_gen_toks=shape.max_gen_toks, prompt_tokens=_scaled(shape.prompt_tokens(shots), token_scale),
        token_scale=token_scale, pass_share=pass_share if pass_share is not None else shape.passes_per_request,
        batch_size=batch_size,
        device_kind=device.kind, device_name=device.name, device_mem_gb=device.total_mem_gb,
        threads=device.threads, co_located=max(1, co_located), cpu_gflops=device.cpu_gflops,
        stop_sequences=shape.stop_sequences,
    )


def _scaled(tokens: int, scale: float | None) -> int:
    return tokens if scale is None else max(1, round(tokens * scale))


def recounted(records: Sequence[HistoryRecord], counts: Mapping[tuple[str, str], TokenCount]
              ) -> list[HistoryRecord]:
    """`records` with what was not counted when they were written filled in from the (model, task) pair's count in
    `counts`, where it has one: prompt lengths scaled (`token_scale` None), passes per request (`pass_share` None)
    and stop strings (`stop_sequences` None). All are fixed properties of the tokenizer and the task, so old
    measurements and new jobs are then described alike. Others are returned as they are.
    """
    out = []
    for record in records:
        count = counts.get((record.model, record.task))
        if count is None:
            out.append(record)
            continue
        update: dict[str, object] = {}
        if record.features.token_scale is None:
            update |= {"prompt_tokens": _scaled(record.features.prompt_tokens, count.scale), "token_scale": count.scale}
        if record.features.pass_share is None and count.passes is not None:
            update["pass_share"] = count.passes
        if record.features.stop_sequences is None and count.stops is not None:
            update["stop_sequences"] = count.stops
        out.append(record._replace(features=record.features.model_copy(update=update)) if update else record)
    return out


def _code(table: Sequence[str], value: str) -> float:
    return float(table.index(value)) if value in table else 0.0


def device_class(f: JobFeatures) -> str:
    """The GPU generation of the job's device ("cpu" for CPU slots, "other" for an unknown card)."""
    if f.device_kind == "cpu":
        return "cpu"
    name = f.device_name.lower()
    return next((c for c in reversed(DEVICE_CLASSES[2:]) if re.search(rf"(?<![a-z0-9]){c}(?![0-9])", name)), "other")


def _opt(value: float | None) -> float:
    return float(value) if value is not None else math.nan


def encode(f: JobFeatures) -> FeatureRow:
    """The numeric columns of `f`, named as in `BASE_COLUMNS` (NaN where unknown; categories as fixed codes)."""
    requests = max(f.requests, 1)
    return {
        "params_b": f.params_b, "log_params": math.log(f.params_b), "dtype_bytes": float(f.dtype_bytes),
        "family": _code(FAMILIES, f.family), "vocab_size": _opt(f.vocab_size), "context_len": _opt(f.context_len),
        "request_type": _code(REQUEST_TYPES, f.request_type), "documents": float(f.documents),
        "choices_per_doc": f.choices_per_doc, "requests": float(f.requests), "log_requests": math.log(requests),
        "shots": float(f.shots), "max_gen_toks": float(f.max_gen_toks), "prompt_tokens": float(f.prompt_tokens),
        "log_prompt_work": math.log(requests * f.prompt_tokens * f.params_b),
        "log_gen_work": math.log(requests * max(f.max_gen_toks, 1) * f.params_b),
        "batch_size": float(f.batch_size), "device_kind": _code(DEVICE_KINDS, f.device_kind),
        "device_class": _code(DEVICE_CLASSES, device_class(f)),
        "device_mem_gb": f.device_mem_gb, "threads": _opt(f.threads), "co_located": float(f.co_located),
    }


# A reference estimate: runtime, load and peak memory, and the part of the runtime spent decoding up to the cap.
Reference = Callable[[JobFeatures], tuple[float, float, float, float]]

# Answer fractions are kept in this range: a record can be noisier than the decode part it is measured against.
_ANSWER_RANGE = (1e-3, 2.0)


class _Means:
    """Running means of a few log quantities per key."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, str], float] = defaultdict(float)
        self.counts: dict[tuple[str, str], int] = defaultdict(int)
        self.answers = AnswerShares()

    def add(self, key: str, name: str, value: float | None) -> None:
        if value is not None and math.isfinite(value):
            self.sums[key, name] += value
            self.counts[key, name] += 1

    def mean(self, key: str, name: str) -> float:
        n = self.counts.get((key, name), 0)
        return self.sums[key, name] / n if n else math.nan

    def count(self, key: str, name: str) -> float:
        return float(self.counts.get((key, name), 0))


def _log_ratio(actual: float | None, reference: float) -> float | None:
    if actual is None or actual <= 0 or reference <= 0:
        return None
    return math.log(actual / reference)


def _history_row(means: _Means, model: str, task: str, f: JobFeatures) -> FeatureRow:
    pair = f"{model}\x00{task}"
    return {
        "hist_model_n": means.count("m:" + model, "spr"), "hist_model_log_spr": means.mean("m:" + model, "spr"),
        "hist_task_n": means.count("t:" + task, "spr"), "hist_task_log_spr": means.mean("t:" + task, "spr"),
        "hist_pair_n": means.count("p:" + pair, "spr"), "hist_pair_log_spr": means.mean("p:" + pair, "spr"),
        "hist_model_resid": means.mean("m:" + model, "resid"), "hist_task_resid": means.mean("t:" + task, "resid"),
        "hist_pair_resid": means.mean("p:" + pair, "resid"), "hist_model_load_resid": means.mean("m:" + model, "load"),
        "hist_model_mem_resid": means.mean("m:" + model, "mem"),
        "hist_task_answer": means.answers.share(model, answer_kind(task, f.batch_size, f.stop_sequences)),
    }


def _absorb(means: _Means, record: HistoryRecord, reference: Reference | None) -> None:
    spr = math.log(record.runtime_s / max(record.features.requests, 1)) if record.runtime_s > 0 else None
    ref = reference(record.features) if reference is not None else None
    pair = f"{record.model}\x00{record.task}"
    for key in ("m:" + record.model, "t:" + record.task, "p:" + pair):
        means.add(key, "spr", spr)
        if ref is not None:
            means.add(key, "resid", _log_ratio(record.runtime_s, ref[0]))
    if ref is not None:
        means.add("m:" + record.model, "load", _log_ratio(record.load_s, ref[1]))
        means.add("m:" + record.model, "mem", _log_ratio(record.peak_mem_gb, ref[2]))
        decode = ref[3]
        if decode > 0 and record.runtime_s > 0:
            # The share of the generation cap this task's answers really take: answers stop long before the cap
            # on most tasks, whatever the model, so it carries over to models the task has not met yet.
            low, high = _ANSWER_RANGE
            answered = math.log(min(high, max(low, (record.runtime_s - (ref[0] - decode)) / decode)))
            means.answers.add(record.model, answer_kind(record.task, record.features.batch_size,
                                                        record.features.stop_sequences), answered)


def with_history_features(records: Sequence[HistoryRecord], reference: Reference | None = None) -> list[FeatureRow]:
    """Training rows for `records`: each row's own features plus what strictly earlier records say.

    History features are means over the records of the same model, task, or (model, task) pair that finished
    strictly before the row's record (`finished_at` smaller): log seconds per request, and, when `reference`
    is given, log(actual / reference) for runtime, load time and peak memory. A record never informs its own
    row, nor rows that finished at the same time or earlier. NaN marks "no earlier record".

    Args:
        records: Finished measurements, in any order.
        reference: An estimate (runtime_s, load_s, peak_mem_gb) to compute residuals against, e.g. the rules.

    Returns:
        One row per record, in the order of `records`.
    """
    order = sorted(range(len(records)), key=lambda i: records[i].finished_at)
    rows: list[FeatureRow | None] = [None] * len(records)
    means = _Means()
    start = 0
    while start < len(order):
        # Records finishing at the same instant see none of each other: compute the whole tie, then absorb it.
        end = start
        while end < len(order) and records[order[end]].finished_at == records[order[start]].finished_at:
            end += 1
        for i in order[start:end]:
            f = records[i].features
            rows[i] = {**encode(f), **_history_row(means, records[i].model, records[i].task, f)}
        for i in order[start:end]:
            _absorb(means, records[i], reference)
        start = end
    return [row for row in rows if row is not None]


class HistoryIndex:
    """What a whole history says about each model, task and pair: built once, asked for many new jobs."""

    def __init__(self, history: Sequence[HistoryRecord], reference: Reference | None = None) -> None:
        self._means = _Means()
        for record in history:
            _absorb(self._means, record, reference)

    def row(self, f: JobFeatures) -> FeatureRow:
        """The row for a job that has not run yet: its features plus what all of the history says about it."""
        return {**encode(f), **_history_row(self._means, f.model, f.task, f)}


def features_with_history(f: JobFeatures, history: Sequence[HistoryRecord],
                          reference: Reference | None = None) -> FeatureRow:
    """The row for a job that has not run yet: its features plus what all of `history` says about it."""
    return HistoryIndex(history, reference).row(f)
