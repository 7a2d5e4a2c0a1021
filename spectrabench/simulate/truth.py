"""The simulator's ground truth: what a job really costs on a device. The scheduler never sees this module.

Deliberately independent of `spectrabench.prediction` (no imports, no shared constants; a test checks the import
graph), so a simulated run measures how a policy copes with a predictor that is wrong in ways it cannot see.
The model is physical but coarse, in the spirit of HF transformers eager inference driven by lm-eval's HFLM:

- Load: a fixed set-up (imports, CUDA context, tokenizer, HFLM) plus weight bytes read from NVMe (cold) or from
  the page cache (warm, the same model ran on this device just before), then copied over the host link.
- Loglikelihood: one padded forward pass per batch; compute at a model-FLOP utilisation that falls for small
  passes and small models, plus a per-layer launch cost per call and lm-eval's per-request Python work. Where a
  document's options are bare letters (MMLU-style), lm-eval's logits cache scores them all from one pass.
- Generation: a batched prefill, then decode steps until the longest answer of the batch stops (or hits the
  cap); each step reads the weights and the KV cache, or is compute bound for big batches.
- Peak memory: CUDA context + weights + the largest transient: full logits and their log-softmax for B x L x
  vocab (loglikelihood), or the KV cache of a whole generation batch, plus activations, times allocator slack.
- Sharing a GPU: k co-located jobs each run `1 + (k - 1) x share` times slower, where `share` is how much of
  the GPU the job keeps busy alone (small models leave gaps that neighbours fill).
- Noise: a per-job lognormal factor (sigma = `noise`) on load and on each task, and rare outliers (a job that
  takes several times longer: a slow node, a rambling model). Draws come from the caller's `rng` in a fixed
  order, so the same seed gives the same job the same luck at every attempt and under every policy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import NamedTuple

from spectrabench.hardware import DeviceSpec
from spectrabench.simulate.specs import HardwareSpec, hardware_for

_GIB = 1024**3

# Memory.
_CONTEXT_GIB = {"cuda": 0.55, "cpu": 0.65}  # CUDA context + cuBLAS workspace; or Python + torch + lm-eval RSS
_LOGIT_EXTRA_BYTES = 2  # per logit on top of logits and log-softmax in the model dtype: reductions, fp32 bits
_ACTIVATION_BYTES_PER_HIDDEN = 30  # residual, attention and MLP (about 3.5x hidden) buffers alive at once
_ALLOCATOR_SLACK = 1.08  # PyTorch's caching allocator holds freed blocks that NVML still counts
_KV_HEAD_RATIO = 0.25  # grouped-query attention: 8 KV heads for 32 query heads in most recent models
# A model split layer by layer over k GPUs runs them one after another (no speed-up) and pays a hop per boundary.
_PIPELINE_HOP = 0.04
_MEM_NOISE = 0.03  # run-to-run spread of the transient part (tokenisation, padding)
_LONGEST_OVER_MEAN = {"loglikelihood": 2.4, "generate_until": 1.8, "loglikelihood_rolling": 1.0}
_CONTINUATION_TOKENS = 6
_PADDING = 1.12

# Throughput.
_MFU = {"hopper": 0.34, "other": 0.44}  # share of datasheet FLOP/s that eager bf16 GEMMs reach on big passes
_HALF_EFFICIENCY_TOKENS = 512  # tokens per forward pass at which utilisation is half its big-pass value
_HALF_EFFICIENCY_PARAMS_B = 0.6  # small models have thin GEMMs that cannot fill a big GPU
_LAYER_CALL_S = {"cuda": 0.32e-3, "cpu": 0.05e-3}  # kernel launches and Python per decoder layer per call
_DECODE_STEP_S = 2.5e-3  # HF generate's per-token loop: logits processors, stopping criteria, sync
_HBM_EFFICIENCY = 0.72
_REQUEST_S = 0.6e-3  # lm-eval's per-request work: tokenising, slicing logits, greedy check
_TASK_SETUP_S = 6.0  # building a task: dataset load from cache, few-shot sampling, filters, metrics
_SUBTASK_SETUP_S = 0.7
_PART_CALL_S = 2.0  # a further part of a group the worker has built: its own lm-eval call, metrics, result files
_DOCUMENT_SETUP_S = 0.4e-3

# Generation lengths: mean answer tokens before a stop string, for a well-behaved 7-8B model.
_TYPICAL_ANSWER_TOKENS = {"kormedmcqa": 3, "triviaqa": 6, "nq_open": 7, "gsm8k": 140, "hrm8k": 420,
                          "mmlu_pro": 330, "bbh": 120, "humaneval": 180}
_UNKNOWN_ANSWER_SHARE = 0.25  # of max_gen_toks, for a task the table lacks
_LONGEST_ANSWER_GROWTH = 0.45  # a batch decodes until its longest answer: ~ typical x (1 + 0.45 ln B)
_RAMBLE_PARAMS_B = 1.5  # small models stop late: answers ~ (1 + 1.5 / (1 + params_b)) x typical

# Loading.
_LOAD_FIXED_S = {"cuda": 11.0, "cpu": 4.0}
_DISK_GBPS = 1.8  # safetensors from local NVMe, cold page cache
_PAGE_CACHE_GBPS = 9.0
_H2D_EFFICIENCY = 0.55  # pageable host memory reaches about half of the link's datasheet rate

# Sharing a GPU.
_SHARE_FLOOR = 0.3
_SHARE_SPAN = 0.8
_SHARE_HALF_PARAMS_B = 4.0  # at 989 TFLOP/s; a slower GPU fills up with proportionally smaller models
_REFERENCE_TFLOPS = 989.0

# Vocabulary sizes of model families in the bundled profiles (published tokenizer configs), checked in order;
# any other model gets Llama 3's 128,256 as a stand-in.
_VOCAB_PATTERNS = (
    ("gemma-3", 262208), ("gemma", 256000), ("qwen", 151936), ("exaone", 102400), ("mistral", 32768),
    ("ko-llama3-luxia", 145792), ("solar", 32000), ("llama", 128256), ("smollm", 49152),
)
_DEFAULT_VOCAB = 128256


class SimTask(NamedTuple):
    """One lm-eval task as the truth sees it.

    Attributes:
        name: The lm-eval task or group name.
        request_type: "loglikelihood", "generate_until" or "loglikelihood_rolling".
        documents: Documents scored (after any limit).
        requests: Model calls: documents x answer options, or one per generation.
        prompt_tokens: Mean context tokens of one request at the job's shots.
        max_gen_toks: The generation cap (0 for loglikelihood).
        subtasks: Leaf tasks lm-eval builds for it.
        one_pass: Its options are single tokens after one shared context (bare letters): lm-eval's logits cache
            scores all of a document's options from one forward pass, so it runs `documents` passes, not
            `requests` (each request still costs its Python work).
    """

    name: str
    request_type: str
    documents: int
    requests: int
    prompt_tokens: int
    max_gen_toks: int
    subtasks: int = 1
    one_pass: bool = False


class SimJob(NamedTuple):
    """One worker's work as the truth sees it: one model, its tasks in order, and their batch sizes.

    `batch_size` caps every task's batch; `task_batches`, when given, is each task's own batch (a grouped job runs
    each task at the batch chosen for it alone, as the real worker does), else every task runs at the cap.
    """

    key: str
    model: str
    params_b: float
    dtype_bytes: int
    vocab: int
    tasks: tuple[SimTask, ...]
    batch_size: int
    task_batches: tuple[int, ...] = ()
    gpus: int = 1  # devices its weights are split over (layer by layer, as lm-eval's `parallelize=True` does)

    def batch_of(self, index: int) -> int:
        """The batch task `index` runs at: its own, capped by `batch_size`."""
        own = self.task_batches[index] if self.task_batches else self.batch_size
        return max(1, min(own, self.batch_size))


class TrueCost(NamedTuple):
    """What an attempt really costs: load and task seconds (co-location included), peak memory per device in GiB."""

    load_s: float
    runtime_s: float
    peak_mem_gb: float


class TruthConfig(NamedTuple):
    """How noisy the world is: lognormal sigma of run-to-run variation, and the rate and size of outliers."""

    noise: float = 0.15
    outlier_rate: float = 0.02
    outlier_factor: float = 3.0


DEFAULT_TRUTH = TruthConfig()


def true_vocab(model: str) -> int:
    """The vocabulary size of a model, from its name (the families of the bundled profiles; Llama 3's otherwise)."""
    lower = model.lower()
    return next((vocab for pattern, vocab in _VOCAB_PATTERNS if pattern in lower), _DEFAULT_VOCAB)


def _shape(params_b: float) -> tuple[int, int]:
    """(layers, hidden) of a dense decoder: depth grows with the square root of size (24 at 1B, 31 at 8B)."""
    layers = max(2, round(18 + 4.6 * math.sqrt(params_b)))
    hidden = round(math.sqrt(params_b * 1e9 / (12 * layers)) / 64) * 64
    return layers, max(64, hidden)


def _effective_flops(hw: HardwareSpec, params_b: float, tokens: float) -> float:
    """FLOP/s of forward passes of `tokens` tokens each (math.inf: the big-pass limit)."""
    mfu = _MFU["hopper"] if hw.bf16_tflops > 500 else _MFU["other"]
    size = params_b / (params_b + _HALF_EFFICIENCY_PARAMS_B)
    fill = 1.0 if math.isinf(tokens) else tokens / (tokens + _HALF_EFFICIENCY_TOKENS)
    return hw.bf16_tflops * 1e12 * mfu * size * fill


def _answer_tokens(task: SimTask, params_b: float, batch: int) -> float:
    """Decode steps of one batch: until its longest answer stops, at most the cap."""
    typical = _TYPICAL_ANSWER_TOKENS.get(task.name, _UNKNOWN_ANSWER_SHARE * task.max_gen_toks)
    typical *= 1 + _RAMBLE_PARAMS_B / (1 + params_b)
    return min(float(task.max_gen_toks), typical * (1 + _LONGEST_ANSWER_GROWTH * math.log(batch)))


def _task_seconds(task: SimTask, job: SimJob, hw: HardwareSpec, batch: int, built: bool = False) -> float:
    """Seconds to evaluate one task alone on the device, model already loaded (`built`: the worker has built this
    task's group already, for an earlier part of it, so this part pays only its own call, not the group's setup)."""
    layers, hidden = _shape(job.params_b)
    params = job.params_b * 1e9
    call_s = layers * _LAYER_CALL_S[hw.kind]
    setup = _PART_CALL_S if built else _TASK_SETUP_S + task.subtasks * _SUBTASK_SETUP_S
    seconds = setup + task.documents * _DOCUMENT_SETUP_S + task.requests * _REQUEST_S
    if task.requests <= 0:
        return seconds
    forwards = min(task.documents, task.requests) if task.one_pass else task.requests
    batch = max(1, min(batch, forwards))
    passes = math.ceil(forwards / batch)
    generating = task.request_type == "generate_until"
    length = (task.prompt_tokens + (0 if generating else _CONTINUATION_TOKENS)) * _PADDING
    tokens_per_pass = length * batch
    # Dense FLOPs plus causal attention (2 x layers x hidden x L^2 per sequence).
    flops = forwards * (2 * params * length + 2 * layers * hidden * length**2)
    seconds += passes * call_s + flops / _effective_flops(hw, job.params_b, tokens_per_pass)
    if generating:
        steps = _answer_tokens(task, job.params_b, batch)
        kv_per_token = 2 * layers * hidden * _KV_HEAD_RATIO * job.dtype_bytes
        bytes_read = params * job.dtype_bytes + batch * (task.prompt_tokens + steps / 2) * kv_per_token
        memory_s = bytes_read / (hw.hbm_gbps * 1e9 * _HBM_EFFICIENCY)
        # Big-pass efficiency: a small decode batch is bound by reading weights (memory_s), not by thin GEMMs.
        compute_s = 2 * params * batch / _effective_flops(hw, job.params_b, math.inf)
        seconds += passes * steps * (call_s + _DECODE_STEP_S + max(memory_s, compute_s))
    return seconds


def _task_transient_bytes(task: SimTask, job: SimJob, batch: int) -> float:
    """Bytes beyond the weights while the task's biggest batch runs."""
    layers, hidden = _shape(job.params_b)
    batch = max(1, min(batch, max(task.requests, 1)))
    longest = task.prompt_tokens * _LONGEST_OVER_MEAN.get(task.request_type, 2.0) + _CONTINUATION_TOKENS
    activations = batch * longest * hidden * _ACTIVATION_BYTES_PER_HIDDEN
    if task.request_type == "generate_until":
        steps = _answer_tokens(task, job.params_b, batch)
        kv = batch * (longest + steps) * 2 * layers * hidden * _KV_HEAD_RATIO * job.dtype_bytes
        return kv + activations + batch * job.vocab * 4  # last-position logits in fp32 for sampling
    per_logit = 2 * job.dtype_bytes + _LOGIT_EXTRA_BYTES
    return batch * longest * job.vocab * per_logit + activations


def colocation_slowdown(job: SimJob, device: DeviceSpec, co_located: int) -> float:
    """How many times slower `job` runs when `co_located` jobs (itself included) share its device.

    Args:
        job: The job.
        device: Where it runs.
        co_located: Jobs on the device at once, >= 1.
    """
    hw = hardware_for(device)
    if hw.kind == "cpu":
        share = 1.0  # CPU slots in the simulator share every core: no gaps to fill
    else:
        relative = job.params_b * _REFERENCE_TFLOPS / hw.bf16_tflops
        share = _SHARE_FLOOR + _SHARE_SPAN * relative / (relative + _SHARE_HALF_PARAMS_B)
    return 1.0 + (max(1, co_located) - 1) * share


def load_seconds(job: SimJob, device: DeviceSpec, *, warm: bool) -> float:
    """Seconds to load the job's model on the device, without noise.

    Args:
        job: The job.
        device: Where it loads.
        warm: The weights are in the page cache (this device ran the same model just before).
    """
    hw = hardware_for(device)
    weights = job.params_b * 1e9 * job.dtype_bytes
    read = weights / ((_PAGE_CACHE_GBPS if warm else _DISK_GBPS) * 1e9)
    copy = 0.0 if hw.kind == "cpu" else weights / (hw.h2d_gbps * 1e9 * _H2D_EFFICIENCY)
    return _LOAD_FIXED_S[hw.kind] + read + copy


def _lognormal(rng: random.Random, sigma: float) -> float:
    """A factor with mean 1: exp(N(-sigma^2 / 2, sigma))."""
    return math.exp(rng.gauss(-sigma * sigma / 2, sigma)) if sigma > 0 else 1.0


def _streams(rng: random.Random | None, luck: str | None, model: str) -> Callable[[str], random.Random] | None:
    """Where each draw comes from: one stream per (model, task) under `luck`, else the one `rng`, else none."""
    if luck is not None:
        return lambda name: random.Random(f"{luck}/{model}/{name}")
    if rng is not None:
        return lambda _name: rng
    return None


def true_cost(job: SimJob, device: DeviceSpec, co_located: int, rng: random.Random | None, *,
              config: TruthConfig = DEFAULT_TRUTH, warm: bool = False, luck: str | None = None,
              built: frozenset[str] = frozenset()) -> TrueCost:
    """What one attempt of `job` really costs on `device`.

    A worker builds a group once for all its parts (`harness.groupscores.GroupBuilds`): a task whose name came
    earlier in the job, or is in `built`, is a further part of a group the worker has built, and pays only its own
    call's overhead, not the group's setup.

    Args:
        job: The job (its batch size included).
        device: Where it runs.
        co_located: Jobs sharing the device for the whole attempt, itself included (1 = alone).
        rng: Source of noise, drawn in a fixed order (load; then per task: runtime, outlier, memory). None with
            no `luck` gives the noiseless expectation.
        config: Noise level and outliers.
        warm: The model's weights are warm on this device (see `load_seconds`).
        luck: When given, replaces `rng`: the model's load and each (model, task) draw from their own stream
            seeded by `luck`, so a task has the same luck whichever job it is grouped in, at any batch size
            and on any device (the simulator passes its seed).
        built: Groups the worker built before `job`'s first task (when `job` is a slice of a longer job's tasks).

    Returns:
        Load seconds, task seconds (both slowed by co-location) and peak memory in GiB.
    """
    hw = hardware_for(device)
    stream = _streams(rng, luck, job.model)
    load = load_seconds(job, device, warm=warm) * (_lognormal(stream("load"), config.noise) if stream else 1.0)
    runtime = 0.0
    transient = 0.0
    seen = set(built)
    for index, task in enumerate(job.tasks):
        batch = job.batch_of(index)
        seconds = _task_seconds(task, job, hw, batch, built=task.name in seen)
        seen.add(task.name)
        mem_factor = 1.0
        if stream is not None:
            draws = stream(task.name)
            seconds *= _lognormal(draws, config.noise)
            # Outliers strike a task (a pathological generation, a slow shard), not a whole worker's list.
            if draws.random() < config.outlier_rate:
                seconds *= config.outlier_factor
            mem_factor = math.exp(draws.gauss(0.0, _MEM_NOISE))
        runtime += seconds
        transient = max(transient, _task_transient_bytes(task, job, batch) * mem_factor)
    weights = job.params_b * 1e9 * job.dtype_bytes
    gpus = max(1, job.gpus)
    # Split over k GPUs, each holds a k-th of the weights; the last also holds the logits, so the transient part
    # is not divided. The peak is per device.
    peak = _CONTEXT_GIB[hw.kind] + (weights / gpus + transient * _ALLOCATOR_SLACK) / _GIB
    slowdown = colocation_slowdown(job, device, co_located)
    return TrueCost(load * slowdown, runtime * slowdown * (1 + _PIPELINE_HOP * (gpus - 1)), peak)


def expected_cost(job: SimJob, device: DeviceSpec) -> TrueCost:
    """The noiseless cost of `job` alone on `device` with a cold load: what a perfect predictor would say."""
    return true_cost(job, device, 1, None)
