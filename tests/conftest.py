"""Test isolation: every test gets its own HOME and data dir; provisioned models are shared across tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parent.parent
# Provisioning SmolLM2 takes ~40 s; building it once per checkout keeps the suite fast.
MODEL_CACHE = Path(os.environ.get("SPECTRABENCH_TEST_MODEL_CACHE", REPO / ".spectrabench" / "test-models"))


class CliResult(NamedTuple):
    """What a `spectrabench` subprocess did."""

    code: int
    stdout: str
    stderr: str


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh HOME, data dir and working directory; offline; no token from the developer's shell."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SPECTRABENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPECTRABENCH_MODEL_CACHE_DIR", str(MODEL_CACHE))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    for name in ("HF_TOKEN", "SPECTRABENCH_DEBUG", "SPECTRABENCH_DB_PATH", "SPECTRABENCH_RESULTS_DIR",
                 "SPECTRABENCH_PROFILES_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture
def data_dir(isolated_env: Path) -> Path:
    """The data dir that SpectraBench writes in this test."""
    return isolated_env / "data"


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> CliResult:
    """Run `python -m spectrabench ARGS` as a real subprocess, in the test's environment."""
    proc = subprocess.run([sys.executable, "-m", "spectrabench", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)

