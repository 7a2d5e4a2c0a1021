"""Token counts: each model's own tokenizer, read from disk, corrects the byte estimate of a local task's prompt."""

from __future__ import annotations

from pathlib import Path

from spectrabench.harness import models
from spectrabench.harness.tokencounts import bytes_per_token, choice_passes, profile_token_scales, tokenizer_file
from spectrabench.prediction.shapes import BYTES_PER_TOKEN, sample_texts
from spectrabench.profiles import ModelSpec, load_profile
from spectrabench.settings import Settings
from spectrabench.tasksources import resolve_task_sources
from tests.conftest import MODEL_CACHE


def test_each_tokenizer_counts_the_smoke_tasks_its_own_way() -> None:
    built = ("tiny-llama-4m", "smollm2-135m-instruct")
    for name in built:
        models.provision(name, MODEL_CACHE)
    profile = load_profile("smoke", Settings())
    scales = profile_token_scales(profile.models, resolve_task_sources(profile), MODEL_CACHE)
    # Only the models built so far have a tokenizer on disk (other tests may have built the rest, or not yet).
    assert {(m.name, t.name) for m in profile.models if m.builtin in built for t in profile.tasks} <= set(scales)
    smol = next(m.name for m in profile.models if m.builtin == "smollm2-135m-instruct")
    tiny = next(m.name for m in profile.models if m.builtin == "tiny-llama-4m")
    # SmolLM2's English vocabulary splits Hangul into bytes: the Korean task's prompt is ~3x the byte estimate,
    # English facts a little under it; the tiny Llamas' 4k vocabulary is about as coarse on both.
    assert scales[smol, "sb_ko"].scale > 2.5 > 1.0 > scales[smol, "sb_facts"].scale
    assert abs(scales[tiny, "sb_ko"].scale / scales[tiny, "sb_facts"].scale - 1) < 0.1
    # lm-eval scores every one-token option of a document in one pass: SmolLM2 has one token for many English
    # answers ("pork", "scissors") but none for a Hangul one; the 4k vocabulary splits nearly every answer.
    facts_passes = scales[smol, "sb_facts"].passes
    assert facts_passes is not None and facts_passes < 0.75
    assert scales[smol, "sb_ko"].passes == 1.0
    assert all(0.85 < (scales[tiny, t].passes or 0) <= 1.0 for t in ("sb_facts", "sb_ko"))
    assert scales[smol, "sb_arith"].passes is None, "generation has no options"
    folder = models.model_dir("smollm2-135m-instruct", MODEL_CACHE)
    texts = sample_texts(resolve_task_sources(profile).local["sb_ko"])
    measured = bytes_per_token(folder / "tokenizer.json", texts)
    assert measured is not None and abs(BYTES_PER_TOKEN / measured - scales[smol, "sb_ko"].scale) < 1e-9


def test_without_a_tokenizer_on_disk_the_estimate_stays(tmp_path: Path) -> None:
    unbuilt = ModelSpec(name="t", builtin="tiny-llama-4m", params_b=0.004)
    assert tokenizer_file(unbuilt, tmp_path) is None, "a builtin not built yet"
    folder = tmp_path / "local-model"
    folder.mkdir()
    local = ModelSpec(name="l", pretrained=str(folder), params_b=1.0)
    assert tokenizer_file(local, tmp_path) is None, "a local folder without tokenizer.json"
    hub = ModelSpec(name="h", pretrained="example-org/not-in-any-cache", params_b=1.0)
    assert tokenizer_file(hub, tmp_path) is None, "a hub model not in the local cache (nothing is downloaded)"
    profile = load_profile("smoke", Settings())
    assert profile_token_scales([unbuilt, local, hub], resolve_task_sources(profile), tmp_path) == {}
    broken = folder / "tokenizer.json"
    broken.write_text("{not json")
    assert bytes_per_token(broken, ["some text"]) is None
    assert bytes_per_token(broken, []) is None
    assert choice_passes(broken, [[" a", " b"]]) is None
