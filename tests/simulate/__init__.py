"""Tests of the simulator; `bundled_profile` reads the repository's profiles without the CLI's checks."""

from __future__ import annotations

from pathlib import Path

import yaml

from spectrabench.profiles import Profile

_PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def bundled_profile(name: str) -> Profile:
    """The validated profile `profiles/<name>.yaml` (task data checks skipped: the simulator needs none)."""
    return Profile.model_validate(yaml.safe_load((_PROFILES / f"{name}.yaml").read_text(encoding="utf-8")))
