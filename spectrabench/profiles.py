"""Profiles: which models run which tasks, with what settings. Loaded from YAML and validated strictly.

A profile is the user's whole intent. Validation catches every mistake we can see before anything runs
(unknown keys with "did you mean", duplicate names, one model or task under two names, missing local files), so a
run never dies halfway on a typo.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from spectrabench.errors import UserError, did_you_mean
from spectrabench.settings import Settings

Dtype = Literal["bfloat16", "float16", "float32", "auto"]
ModelArgValue = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    """One model to evaluate.

    Exactly one of `pretrained` (a Hugging Face id or a local folder) and `builtin` (a model that SpectraBench
    builds offline in its cache, see `harness.models`) says where the weights come from.
    """

    name: str = Field(min_length=1, description="Short unique name used in reports.")
    pretrained: str | None = None
    builtin: str | None = None
    revision: str = "main"
    params_b: float = Field(gt=0, description="Parameter count in billions.")
    dtype: Dtype = "bfloat16"
    trust_remote_code: bool = False
    model_args: dict[str, ModelArgValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.pretrained is None) == (self.builtin is None):
            raise ValueError("give exactly one of 'pretrained' (HF id or local path) and 'builtin'")
        return self

    @property
    def source(self) -> str:
        """Where the weights come from, as written in the profile."""
        return self.pretrained or f"builtin:{self.builtin}"


_LOCAL_PREFIXES = ("/", "./", "../", "~")


def local_model_path(model: ModelSpec, profile_path: Path | None) -> Path | None:
    """The local folder a model's `pretrained` names, resolved (relative paths start at the profile's folder);
    None for a hub id or a builtin. The one place that tells a local path from a hub id."""
    if model.pretrained is None or not model.pretrained.startswith(_LOCAL_PREFIXES):
        return None
    path = Path(model.pretrained).expanduser()
    if not path.is_absolute() and profile_path is not None:
        path = profile_path.parent / path
    return path.resolve()


class TaskSpec(_Strict):
    """One benchmark. `name` is what reports show; `lm_eval_task` is lm-eval's name (defaults to `name`)."""

    name: str = Field(min_length=1)
    lm_eval_task: str | None = None
    shots: int = Field(ge=0)
    allow_code_execution: bool = False

    @property
    def harness_name(self) -> str:
        """The task name that lm-eval knows."""
        return self.lm_eval_task or self.name


class SchedulerConfig(_Strict):
    """Knobs of prediction and scheduling. Thresholds count comparable history records."""

    min_learning_data: int = Field(default=50, ge=1)
    stable_learning_data: int = Field(default=200, ge=1)
    large_model_min_learning_data: int = Field(default=75, ge=1)
    large_model_stable_learning_data: int = Field(default=300, ge=1)
    large_model_params_b: float = Field(default=8.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> SchedulerConfig:
        if self.stable_learning_data < self.min_learning_data:
            raise ValueError("stable_learning_data must be >= min_learning_data")
        if self.large_model_stable_learning_data < self.large_model_min_learning_data:
            raise ValueError("large_model_stable_learning_data must be >= large_model_min_learning_data")
        return self


class Profile(_Strict):
    """Models x tasks plus run defaults. `task_paths` are folders of local lm-eval task configs."""

    name: str
    description: str = ""
    limit: int | None = Field(default=None, gt=0, description="Documents per task; None means all.")
    batch_size: int = Field(default=8, gt=0, description="Explicit batch size (never 'auto').")
    device: str = "auto"
    task_paths: list[Path] = Field(default_factory=list)
    models: list[ModelSpec] = Field(min_length=1)
    tasks: list[TaskSpec] = Field(min_length=1)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    source_path: Path | None = Field(default=None, exclude=True)

    @field_validator("models")
    @classmethod
    def _unique_models(cls, models: list[ModelSpec]) -> list[ModelSpec]:
        _reject_duplicates([m.name for m in models], "model")
        # A score is keyed by what is measured (`planning.jobs.measurement_key`), not by the name a profile gives it.
        _reject_same([(m.name, json.dumps([m.source, m.revision, m.dtype, m.trust_remote_code, m.model_args],
                                          sort_keys=True, default=str)) for m in models],
                     "models", "the same weights, revision, dtype and model_args")
        return models

    @field_validator("tasks")
    @classmethod
    def _unique_tasks(cls, tasks: list[TaskSpec]) -> list[TaskSpec]:
        _reject_duplicates([t.name for t in tasks], "task")
        _reject_same([(t.name, f"{t.harness_name}/{t.shots}") for t in tasks], "tasks",
                     "the same lm-eval task and shots")
        return tasks

    def model(self, name: str) -> ModelSpec:
        """The model called `name`."""
        for model in self.models:
            if model.name == name:
                return model
        raise UserError(f"model '{name}' is not in profile '{self.name}'",
                        hint=did_you_mean(name, [m.name for m in self.models], "models"))

    def task(self, name: str) -> TaskSpec:
        """The task called `name`."""
        for task in self.tasks:
            if task.name == name:
                return task
        raise UserError(f"task '{name}' is not in profile '{self.name}'",
                        hint=did_you_mean(name, [t.name for t in self.tasks], "tasks"))


def _reject_same(named: list[tuple[str, str]], what: str, same: str) -> None:
    """Reject two entries that measure the same thing under two names: their scores would be one measurement."""
    first: dict[str, str] = {}
    for name, identity in named:
        if identity in first:
            raise ValueError(f"{what} '{first[identity]}' and '{name}' are one measurement ({same}): "
                             f"list it once")
        first[identity] = name


def _reject_duplicates(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate {what} name '{name}'")
        seen.add(name)


def available_profiles(settings: Settings) -> list[str]:
    """Names of the profiles in the profiles folder."""
    root = settings.profiles_root
    return sorted(p.stem for p in root.glob("*.yaml")) if root.is_dir() else []


def resolve_profile_path(name_or_path: str, settings: Settings) -> Path:
    """Turn `--profile` (a name from the profiles folder or a path to a YAML file) into a file path."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"} or "/" in name_or_path:
        if not candidate.is_file():
            raise UserError(f"profile file '{name_or_path}' does not exist",
                            hint="give a profile name or the path of a .yaml file")
        return candidate
    path = settings.profiles_root / f"{name_or_path}.yaml"
    if not path.is_file():
        raise UserError(f"profile '{name_or_path}' not found",
                        hint=did_you_mean(name_or_path, available_profiles(settings), "profiles"))
    return path


def load_profile(name_or_path: str, settings: Settings) -> Profile:
    """Load and validate a profile, including its tasks against the catalog and local task folders.

    Raises:
        UserError: for malformed YAML, unknown keys or names, duplicates, bad values, or missing local files.
    """
    from spectrabench.profile_checks import check_profile

    path = resolve_profile_path(name_or_path, settings)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"profile '{path}' is not valid YAML{where}",
                        hint=str(getattr(exc, "problem", "") or "check indentation and quoting")) from None
    if not isinstance(raw, dict):
        raise UserError(f"profile '{path}' must be a mapping with 'models' and 'tasks'",
                        hint="see profiles/smoke.yaml for the layout")
    raw.setdefault("name", path.stem)
    raw["task_paths"] = [str((path.parent / p).resolve()) for p in raw.get("task_paths", []) or []]
    try:
        profile = Profile.model_validate({**raw, "source_path": path.resolve()})
    except ValidationError as exc:
        raise _user_error_from(exc, path) from None
    check_profile(profile, settings)
    return profile


_FIELDS: dict[str, type[BaseModel]] = {
    "models": ModelSpec, "tasks": TaskSpec, "scheduler": SchedulerConfig,
}


def _user_error_from(exc: ValidationError, path: Path) -> UserError:
    """Turn pydantic's first error into one line that names the place and suggests the fix."""
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"]]
    where = ".".join(loc) or "profile"
    if err["type"] == "extra_forbidden":
        key = loc[-1]
        container = _container_model(loc)
        known = list(container.model_fields) if container else []
        known = [k for k in known if k != "source_path"]
        return UserError(f"profile '{path}': unknown key '{where}'", hint=did_you_mean(key, known, "keys"))
    message = err["msg"].removeprefix("Value error, ")
    return UserError(f"profile '{path}': {where}: {message}", hint=_hint_for(loc))


def _container_model(loc: list[str]) -> type[BaseModel] | None:
    if len(loc) == 1:
        return Profile
    return _FIELDS.get(loc[0])


def _hint_for(loc: list[str]) -> str:
    field = loc[-1] if loc else ""
    hints: dict[str, Any] = {
        "limit": "use a positive number of documents per task, or leave it out for all documents",
        "batch_size": "use a positive integer; SpectraBench never uses 'auto'",
        "shots": "use 0 or a positive number of few-shot examples",
        "params_b": "give the parameter count in billions, e.g. 7.2",
        "dtype": "use one of bfloat16, float16, float32, auto",
    }
    return hints.get(field, "see profiles/smoke.yaml for a valid layout")
