"""One Settings object, built once by the CLI and passed down; nothing else reads the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from spectrabench.errors import UserError


class Settings(BaseSettings):
    """Where SpectraBench keeps its data, read from `SPECTRABENCH_*` variables or a `.env` file.

    `HF_TOKEN` (no prefix) is the Hugging Face token for gated models: it only ever reaches worker
    subprocesses through their environment and is never written to the store, logs or reports.
    """

    model_config = SettingsConfigDict(env_prefix="SPECTRABENCH_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path(".spectrabench"), description="Root of everything SpectraBench writes.")
    db_path: Path | None = Field(default=None, description="DuckDB file; default <data_dir>/spectrabench.duckdb.")
    results_dir: Path | None = Field(default=None, description="Worker outputs; default <data_dir>/results.")
    model_cache_dir: Path | None = Field(default=None,
                                         description="Provisioned local models; default <data_dir>/models.")
    profiles_dir: Path | None = Field(default=None, description="Where profile names are looked up.")
    debug: bool = Field(default=False, description="Show tracebacks for user errors too.")
    memory_margin: float = Field(default=0.1, ge=0, lt=1,
                                 description="Share of a GPU's free memory that batch sizing leaves unused.")
    gpu_memory_limit_gb: float | None = Field(
        default=None, gt=0,
        description="Most GPU memory one worker may take on each of its cards: batches are sized within it, and the "
                    "worker enforces it (torch's per-process fraction), so a run can share cards with other work.")
    timeout_factor: float = Field(default=5.0, gt=1,
                                  description="Default job timeout = this x predicted runtime, once learned.")
    learn_from_busy_machine: bool = Field(
        default=False,
        description="Learn from the timings of attempts that other work on the machine competed with for its cores "
                    "(left out by default: they say more about the neighbours than about the job). For a machine "
                    "that is never idle.")
    hf_token: SecretStr | None = Field(default=None, validation_alias="HF_TOKEN")
    hf_hub_offline: bool = Field(default=False, validation_alias=AliasChoices("HF_HUB_OFFLINE"))

    @property
    def db_file(self) -> Path:
        """The DuckDB file."""
        return self.db_path or self.data_dir / "spectrabench.duckdb"

    @property
    def results_root(self) -> Path:
        """Where each attempt's worker writes its results and log."""
        return self.results_dir or self.data_dir / "results"

    @property
    def model_cache(self) -> Path:
        """Where built-in smoke models are provisioned."""
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def profiles_root(self) -> Path:
        """The folder that profile names refer to (the repository's `profiles/` by default)."""
        return self.profiles_dir or Path(__file__).resolve().parent.parent / "profiles"


def load_settings() -> Settings:
    """The Settings of this process, from `SPECTRABENCH_*` variables and `.env`.

    Raises:
        UserError: A variable holds a value the setting cannot take (one line, naming the variable).
    """
    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "?"
        variable = "HF_TOKEN" if field == "hf_token" else f"SPECTRABENCH_{field.upper()}"
        raise UserError(f"{variable}={error.get('input')!r}: {error['msg'].lower()}",
                        hint=f"fix or unset {variable}") from None
