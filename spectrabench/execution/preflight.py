"""Before any worker starts: can each hub model be had at all? One cheap check per model, not one slow
failure per job (a worker that cannot reach the hub spends ~30 s in retries before it gives up)."""

from __future__ import annotations

from collections.abc import Iterable

from spectrabench.profiles import ModelSpec, local_model_path
from spectrabench.settings import Settings


def _is_hub_id(model: ModelSpec) -> bool:
    return model.pretrained is not None and local_model_path(model, None) is None


def unreachable_models(models: Iterable[ModelSpec], settings: Settings, timeout_s: float = 5.0) -> dict[str, str]:
    """Map each model that cannot be loaded here to the reason, for hub models only.

    A model is fine when its config is in the local Hugging Face cache, or when the hub answers for it. With
    HF_HUB_OFFLINE set, only the cache counts.
    """
    from huggingface_hub import HfApi, try_to_load_from_cache

    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    api = HfApi()
    reasons: dict[str, str] = {}
    for model in models:
        if not _is_hub_id(model) or model.name in reasons:
            continue
        repo = model.pretrained or ""
        cached = try_to_load_from_cache(repo, "config.json", revision=model.revision)
        if isinstance(cached, str):
            continue
        if settings.hf_hub_offline:
            reasons[model.name] = (f"model '{repo}' is not reachable: not in the local Hugging Face cache and "
                                   "HF_HUB_OFFLINE is set")
            continue
        try:
            api.model_info(repo, revision=model.revision, token=token, timeout=timeout_s)
        except Exception as exc:  # any failure means the worker could not load it either
            reasons[model.name] = f"model '{repo}' is not reachable: {_describe(exc)}"
    return reasons


def _describe(exc: Exception) -> str:
    name = type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else name
    if name == "GatedRepoError" or "401" in text or "403" in text:
        return "gated or private on the hub; set HF_TOKEN to a token with access"
    if name == "RepositoryNotFoundError" or "404" in text:
        return "no such repository on the hub"
    return f"cannot reach the Hugging Face hub ({name}: {text[:160]})"
