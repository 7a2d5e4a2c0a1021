"""Stage "intelligent": physically grounded estimates of load time, runtime and peak memory, before any history.

Runtime counts the work lm-eval's HFLM really does: a loglikelihood request is one forward pass over its
context and continuation (batched B at a time, longest first), a generation is a batched prefill followed by
up to `max_gen_toks` decode steps. A forward pass costs 2 x params FLOPs per token at a throughput that falls for
small token counts; a decode step reads every weight once and pays a fixed launch overhead per layer.

Peak memory is what the monitor measures: on GPU the process's device memory (CUDA context included), on CPU
the worker's peak resident set size (Python, torch, lm-eval, task data). Weights, then the largest transient:
activations and the logits plus their log-softmax for the longest (first) batch, or the KV cache of a full
generation batch.

CPU constants were first measured on an older development machine (2-core AMD EPYC VM, torch fp32, transformers
5.24, lm-eval 0.4.13) with the builtin models (tiny-llama-4m/15m/40m, smollm2-135m-instruct) by timing
`F.log_softmax(model(ids).logits)` for B x L random tokens (B x L from 1x64 to 32x128, median of 3 after a
warm-up) and `model.generate` for 32 new tokens at B = 1 and 8, at 1 thread, while a second process kept the
other core busy (an idle-machine recheck gave 59 GFLOP/s for tiny-llama-15m at 8 x 128 tokens). Worker peaks
and load times come from the progress.json files of real `spectrabench run` attempts (smoke profile). Cross-check
with real lm-eval (HFLM.loglikelihood, 1 thread, tests/prediction/test_rules.py): tiny-llama-15m, 32 requests of
181 tokens at B = 16: 5.5 s measured / 4.1 s estimated, peak 0.64 / 1.00 GiB; smollm2, 16 requests of 76 tokens
at B = 8: 6.8 s / 7.6 s, peak 1.35 / 1.59 GiB. They were then measured again on the next development machine (a
2-core AVX-512 EPYC, 108 GFLOP/s in `harness.cpuspeed`'s probe), where the smoke jobs ran in half the time and the
old figures' runtime MAPE was 108% (see `CPU`); other machines scale them by their own probe (`cpu_at`). GPU
constants are public datasheet figures times efficiency factors (estimates: this machine has no GPU); the adaptive
stage learns what they miss.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from spectrabench.prediction.features import JobFeatures

_GIB = 1024**3


class Estimate(NamedTuple):
    """A prediction for one job: task runtime and model load time in seconds, peak memory in GiB."""

    runtime_s: float
    load_s: float
    peak_mem_gb: float


class DeviceModel(NamedTuple):
    """Throughput figures of one device kind (per thread for the CPU)."""

    name: str
    flops: float  # effective dense FLOP/s for large forward passes (peak x efficiency)
    mem_bw: float  # effective bytes/s when streaming the weights in a decode step
    half_tokens: float  # tokens per forward pass at which GEMM efficiency is half its large-batch value
    decode_flops: float  # effective FLOP/s of each extra sequence in a batched decode step
    layer_overhead_s: float  # launch / dispatch cost per layer per forward call
    step_overhead_s: float  # fixed cost per generated token (logits processors, stopping criteria)
    request_overhead_s: float  # lm-eval's per-request Python work (tokenizing, slicing logits, greedy check)
    task_overhead_s: float  # building the task's requests, scoring and writing its results
    load_fixed_s: float  # tokenizer, model class, HFLM set-up before weights move
    load_bw: float  # bytes/s from disk (page cache) into device memory
    runtime_base_gb: float  # memory a worker holds before weights: CUDA context, or Python + torch + lm-eval
    # Weight traffic of a decode step at batch >= 2 over batch 1. GPUs: 1 (one kernel either way, not measured).
    batched_weight_reads: float = 1.0
    # Times a decode step moves the whole KV cache through memory. GPUs: 0 until measured there; the rules do not
    # know a model's grouped-query heads, and would overstate the cache of most released models ~4x.
    kv_moves: float = 0.0


# CPU, per thread, fp32, on the machine of `CPU_REFERENCE_GFLOPS`. First measured on an older machine, with the
# figures below; then, on this one, each part scaled by what it measured here:
# - decode: `generate` timings of the four builtins at 2 threads, 64 new tokens after prompts of 20 and 180 tokens.
#   A step at B = 1 took 1.6, 6.3, 11.8 and 40.2 ms (4m, 15m, 40m, smollm2), at 1 thread 2.0, 6.8, 13.4, 46.4: weight
#   bytes over 11.7 GB/s at one thread, and a second thread adds only 1.15x (`_CPU_THREAD_BW_EXP`). At B >= 2 a step
#   costs ~1.6x the weight traffic of B = 1 (smollm2 66 ms at B = 2, 59-68 at B = 8; 40m 17.0-20.8 ms; torch runs
#   one row as a matrix-vector product and more rows as a GEMM that repacks the weights), rows beyond the second
#   add little compute, and the KV cache, which `generate` copies each step, adds with the prompt (40m at B = 8: +2.3
#   ms from 20 to 180 prompt tokens; two moves of 2 x layers x hidden x 4 bytes a token). Steps of lm-eval's runs that
#   went to the cap matched within ~15% (tiny Llamas' HumanEval and arithmetic), with 0.5 ms fixed a step.
# - overheads (task, request) x 0.53 and prefill x 0.42, and load (1.44 s + 0.2 s/GB) and the worker's base RSS
#   (0.59 GiB median, 0.62 at p95, from 0.50): fitted to the 272 attempts of `make history` (least absolute log
#   error of the three parts' scales, counting one pass per group of one-token options as lm-eval runs them,
#   `JobFeatures.pass_share`; single forward passes at 1 thread show 80-99 GFLOP/s at 1 x 64 to 8 x 128 tokens,
#   and two threads add ~1.8x). Rules runtime MAPE on that history went from 108% to 16%.
# The older machine's figures:
# - Prefill: 45-56 GFLOP/s at >= 512 tokens per pass (tiny-llama-4m 46, 15m 49-52, 40m 54-55,
#   smollm2 55-56), 29-39 GFLOP/s at 1 x 64 tokens: modelled as 55 x tokens / (tokens + 16).
# - Decode step at B = 1: 6.6 ms (4m, 4 layers), 15.2 ms (15m), 30.2 ms (40m), 89 ms (smollm2, 30 layers);
#   least squares over the four: 4.3 ms fixed + 0.12 ms per layer + weight bytes / 6.6 GB/s.
# - Each extra sequence in a decode batch: 14 ms for smollm2 (B = 8: 190 ms), i.e. ~18 GFLOP/s per row.
# - Task overhead: tiny-llama-4m spent 0.8-0.93 s on 8-document tasks whose model work is ~0.1 s; with 3
#   documents another tiny model spent 0.52-0.6 s: ~0.5 s per task plus a few ms per request.
# - Worker load_s (HFLM set-up, model from a warm page cache): 3.0-4.1 s for every builtin, smollm2's 538 MB
#   included; 3.4 s fixed + ~1 GB/s covers them.
# - Worker peak RSS: 0.52-0.53 GiB with tiny-llama-4m (16 MB of weights), 1.05-1.08 GiB with smollm2 (0.50 GiB
#   of weights): 0.50 GiB before weights. Transients: logits + log-softmax (2 x 4 bytes x vocab per token)
#   matched the RSS growth of smollm2 at 512 and 1024 tokens within 5%; the rest is ~8-20 floats of activations
#   per hidden unit per token (24 is used, to stay on the safe side).
CPU = DeviceModel("CPU", flops=132e9, mem_bw=11.7e9, half_tokens=16, decode_flops=140e9, layer_overhead_s=0.054e-3,
                  step_overhead_s=0.5e-3, request_overhead_s=1.06e-3, task_overhead_s=0.265, load_fixed_s=1.44,
                  load_bw=5.0e9, runtime_base_gb=0.60, batched_weight_reads=1.6, kv_moves=2.0)
# This machine's single-thread GEMM GFLOP/s as `harness.cpuspeed` measures it (107-111 in three probes): `CPU` is
# scaled by a machine's own figure over this one (`cpu_at`).
CPU_REFERENCE_GFLOPS = 108.0
# GEMM scales near-linearly across physical cores; a decode step's weight streaming hardly does (1.15x from one
# thread to two, measured above).
_CPU_THREAD_FLOPS_EXP = 0.85
_CPU_THREAD_BW_EXP = 0.2


def _gpu(name: str, tflops: float, tbps: float, efficiency: float) -> DeviceModel:
    """A GPU from its datasheet dense bf16 TFLOP/s and HBM TB/s.

    Efficiency factors are estimates for HF transformers with SDPA attention in lm-eval (no fused kernels, no
    CUDA graphs): ~40% of peak FLOP/s on Ampere/Ada, ~30% on Hopper (whose peak needs FP8 or fused kernels to
    approach), 60% of HBM bandwidth in decode. Dispatch overheads: ~12 kernels per decoder layer at ~20 µs of
    Python + launch each; load from local NVMe through the page cache at ~1.5 GB/s after ~6 s of CUDA and HFLM
    set-up. 0.5 GiB of CUDA context per process.
    """
    return DeviceModel(name, flops=tflops * 1e12 * efficiency, mem_bw=tbps * 1e12 * 0.6, half_tokens=256,
                       decode_flops=tflops * 1e12 * efficiency, layer_overhead_s=0.25e-3, step_overhead_s=2e-3,
                       request_overhead_s=1e-3, task_overhead_s=1.0, load_fixed_s=6.0, load_bw=1.5e9,
                       runtime_base_gb=0.5)


# Datasheet figures (dense bf16 Tensor Core TFLOP/s, without sparsity; memory bandwidth):
# - NVIDIA A100 Tensor Core GPU datasheet (2021): 312 TFLOP/s; 1,555 GB/s (40GB SXM), 2,039 GB/s (80GB SXM).
# - NVIDIA H100 Tensor Core GPU datasheet (2023): SXM 989 TFLOP/s, 3.35 TB/s; PCIe 756 TFLOP/s, 2.0 TB/s.
# - NVIDIA H200 Tensor Core GPU datasheet (2024): SXM 989 TFLOP/s, 4.8 TB/s (141 GB HBM3e).
# - NVIDIA L4 Tensor Core GPU datasheet (2023): 121 TFLOP/s (242 with sparsity), 300 GB/s.
A100_40GB = _gpu("A100-40GB", 312, 1.555, 0.40)
A100_80GB = _gpu("A100-80GB", 312, 2.039, 0.40)
H100_80GB = _gpu("H100-80GB", 989, 3.35, 0.30)
H100_PCIE = _gpu("H100-PCIe", 756, 2.0, 0.30)
H200_141GB = _gpu("H200-141GB", 989, 4.8, 0.30)
L4_24GB = _gpu("L4-24GB", 121, 0.300, 0.40)

# Typical vocabularies when the model's config was not read: what each family's recent releases ship.
FAMILY_VOCAB = {"llama": 128256, "gemma": 262144, "qwen": 151936, "exaone": 102400, "mistral": 131072,
                "phi": 100352, "smollm": 49152, "deepseek": 129280, "other": 128256}
_CONTINUATION_TOKENS = 4  # an answer option after its context, in tokens
_PADDING = 1.1  # lm-eval sorts by length, so a batch pads little
_LONGEST_OVER_MEAN = 2.0  # the first batch holds the longest requests
_ACTIVATION_FLOATS_PER_HIDDEN = 24
_ALLOCATOR_SLACK = 0.10  # PyTorch's caching allocator keeps freed blocks that NVML still counts


def cpu_at(gflops: float | None) -> DeviceModel:
    """The CPU figures for a machine whose single-thread GEMM runs at `gflops` (`harness.cpuspeed`): every time
    scaled by its ratio to the machine `CPU` was measured on (None: that machine's figures).

    One ratio for compute, bandwidth, Python overheads and loading alike: between the two machines measured here, the
    forward passes, the per-task overheads and the loads of the smoke jobs all sped up within a factor of ~1.3 of each
    other, where the machines differed 2x.
    """
    if gflops is None or gflops <= 0:
        return CPU
    speed = gflops / CPU_REFERENCE_GFLOPS
    return CPU._replace(
        flops=CPU.flops * speed, mem_bw=CPU.mem_bw * speed, decode_flops=CPU.decode_flops * speed,
        layer_overhead_s=CPU.layer_overhead_s / speed, step_overhead_s=CPU.step_overhead_s / speed,
        request_overhead_s=CPU.request_overhead_s / speed, task_overhead_s=CPU.task_overhead_s / speed,
        load_fixed_s=CPU.load_fixed_s / speed, load_bw=CPU.load_bw * speed)


def device_model(f: JobFeatures) -> DeviceModel:
    """The throughput figures for the job's device: the CPU at its measured speed, a known GPU by name, or a GPU
    guessed by memory."""
    if f.device_kind == "cpu":
        return cpu_at(f.cpu_gflops)
    name = f.device_name.upper()
    if "H200" in name:
        return H200_141GB
    if "H100" in name:
        return H100_PCIE if "PCIE" in name else H100_80GB
    if "A100" in name:
        return A100_80GB if f.device_mem_gb > 60 else A100_40GB
    if "L4" in name.split() or name.endswith("L4"):
        return L4_24GB
    # An unknown GPU: judge its class by memory, erring towards the slower card.
    return A100_80GB if f.device_mem_gb > 60 else A100_40GB if f.device_mem_gb > 30 else L4_24GB


def model_shape(params_b: float) -> tuple[int, int]:
    """(layers, hidden) of a dense decoder with `params_b` billion parameters, when its config is unknown.

    Uses params ~ 12 x layers x hidden^2 with hidden ~ 128 x layers, the proportion of Llama 1B-70B; gives
    32 x 4096 at 7B and 80 x 10240 at 70B (Llama 3 70B: 80 x 8192), so KV caches come out on the safe side.
    """
    layers = max(2, round((params_b * 1e9 / (12 * 128**2)) ** (1 / 3)))
    return layers, 128 * layers


def _speedups(f: JobFeatures, dev: DeviceModel) -> tuple[float, float]:
    """(compute, bandwidth) speed-up over the table's figures: CPU threads, and sharing with co-located jobs."""
    if f.device_kind == "cpu":
        threads = max(1, f.threads or 1)
        compute, bandwidth = threads**_CPU_THREAD_FLOPS_EXP, threads**_CPU_THREAD_BW_EXP
        # CPU slots own their cores, but neighbours still share the memory bus and caches.
        share = 1 + 0.15 * (f.co_located - 1)
    else:
        compute = bandwidth = 1.0
        # Jobs on one GPU interleave: each gets less than all of it, but fills the other's idle gaps.
        share = 1 + 0.7 * (f.co_located - 1)
    return compute / share, bandwidth / share


def _forward_s(tokens: float, batches: float, layers: int, params: float, dev: DeviceModel, speed: float) -> float:
    """Seconds for `batches` forward passes over `tokens` tokens in all."""
    per_batch = tokens / max(batches, 1)
    efficiency = per_batch / (per_batch + dev.half_tokens)
    return batches * layers * dev.layer_overhead_s + 2 * params * tokens / (dev.flops * efficiency * speed)


class RuntimeParts(NamedTuple):
    """The rules' runtime split by what dominates it: fixed per-task and per-request work, prompt passes, decoding."""

    overhead_s: float
    prefill_s: float
    decode_s: float

    @property
    def total_s(self) -> float:
        """All of it: the runtime estimate."""
        return self.overhead_s + self.prefill_s + self.decode_s


def runtime_parts(f: JobFeatures) -> RuntimeParts:
    """The rules' runtime of the job split into overhead, prefill and decode seconds (see `estimate_runtime`)."""
    if f.requests <= 0:
        return RuntimeParts(0.0, 0.0, 0.0)
    dev = device_model(f)
    layers, hidden = model_shape(f.params_b)
    params = f.params_b * 1e9
    compute, bandwidth = _speedups(f, dev)
    batch = max(1, f.batch_size)
    batches = math.ceil(f.requests / batch)
    overhead = dev.task_overhead_s + f.requests * dev.request_overhead_s
    if f.request_type != "generate_until":
        # lm-eval's logits cache scores all one-token options of a document in one pass (`JobFeatures.pass_share`).
        passes = f.requests * (f.pass_share if f.pass_share is not None else 1.0)
        tokens = passes * (f.prompt_tokens + _CONTINUATION_TOKENS) * _PADDING
        return RuntimeParts(overhead, _forward_s(tokens, batches, layers, params, dev, compute), 0.0)
    prompt = f.requests * f.prompt_tokens * _PADDING
    prefill = _forward_s(prompt, batches, layers, params, dev, compute)
    # Each batch decodes until its longest answer stops; random or rambling models reach the cap.
    rows = min(batch, f.requests)
    weights_read = params * f.dtype_bytes / (dev.mem_bw * bandwidth)
    if rows > 1:
        weights_read *= dev.batched_weight_reads
    # The KV cache at the middle of the answer: K and V of every layer, for the prompt and half the cap.
    cache = 2 * layers * hidden * f.dtype_bytes * rows * (f.prompt_tokens * _PADDING + max(f.max_gen_toks, 1) / 2)
    step = (dev.step_overhead_s + layers * dev.layer_overhead_s + weights_read
            + dev.kv_moves * cache / (dev.mem_bw * bandwidth)
            + (rows - 1) * 2 * params / (dev.decode_flops * compute))
    return RuntimeParts(overhead, prefill, batches * max(f.max_gen_toks, 1) * step)


def estimate_runtime(f: JobFeatures) -> float:
    """Seconds lm-eval needs to evaluate the job's task once the model is loaded."""
    return runtime_parts(f).total_s


def estimate_load(f: JobFeatures) -> float:
    """Seconds to load the model: fixed set-up plus weight bytes over the disk-to-device throughput."""
    dev = device_model(f)
    return dev.load_fixed_s + f.params_b * 1e9 * f.dtype_bytes / dev.load_bw


def weights_gib(f: JobFeatures) -> float:
    """The model's weights in GiB as loaded: parameters x bytes per parameter, known exactly, unlike the rest of a
    peak (runtime context, activations, logits, KV cache), which is what predictions of memory get wrong."""
    return f.params_b * 1e9 * f.dtype_bytes / _GIB


def estimate_memory(f: JobFeatures) -> float:
    """Peak memory of the job in GiB: runtime base + weights + the largest batch's transient memory."""
    dev = device_model(f)
    layers, hidden = model_shape(f.params_b)
    vocab = f.vocab_size or FAMILY_VOCAB.get(f.family, FAMILY_VOCAB["other"])
    batch = max(1, min(f.batch_size, max(f.requests, 1)))
    if f.request_type == "generate_until":
        prompt = f.prompt_tokens * _LONGEST_OVER_MEAN
        if f.context_len:
            prompt = min(prompt, max(f.context_len - f.max_gen_toks, 1))
        length = prompt + f.max_gen_toks
        kv_cache = 2 * layers * hidden * length * batch * f.dtype_bytes
        prefill = batch * prompt * _ACTIVATION_FLOATS_PER_HIDDEN * hidden * f.dtype_bytes
        # generate() keeps only the last position's logits, upcast to float32, a few copies per step.
        transient = kv_cache + prefill + 3 * batch * vocab * 4
    else:
        length = f.prompt_tokens * _LONGEST_OVER_MEAN + _CONTINUATION_TOKENS
        if f.context_len:
            length = min(length, f.context_len)
        tokens = batch * length
        # HFLM keeps the logits and their log-softmax (both in the model's dtype) for the whole batch.
        logits = 2 * tokens * vocab * f.dtype_bytes
        transient = logits + tokens * _ACTIVATION_FLOATS_PER_HIDDEN * hidden * f.dtype_bytes
    if f.device_kind == "cuda":
        transient *= 1 + _ALLOCATOR_SLACK
    return dev.runtime_base_gb + weights_gib(f) + transient / _GIB


def estimate(f: JobFeatures) -> Estimate:
    """Runtime, load time and peak memory of one job from first principles.

    Args:
        f: The job's features.

    Returns:
        The rules' estimate; runtime excludes model loading.
    """
    return Estimate(estimate_runtime(f), estimate_load(f), estimate_memory(f))
