"""Shared by the benchmark scripts: build a profile's offline models before anything is timed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def provision_models(profile: str, model_cache: Path) -> None:
    """Build the profile's builtin models into `model_cache` (in a subprocess: the benchmark imports no torch)."""
    code = ("from pathlib import Path; from spectrabench.settings import Settings; "
            "from spectrabench.profiles import load_profile; from spectrabench.harness.models import provision; "
            f"p = load_profile({profile!r}, Settings()); "
            f"[provision(m.builtin, Path({str(model_cache)!r})) for m in p.models if m.builtin]")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
