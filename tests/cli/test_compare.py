"""`spectrabench compare --simulate`: strategies on what-if hardware, and its bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli


def test_simulated_comparison_reports_every_strategy(data_dir: Path) -> None:
    result = run_cli("compare", "--profile", "standard", "--simulate", "--seeds", "1", "--devices",
                     "2xA100-80GB,1xL4-24GB", "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [s["strategy"] for s in report["strategies"]] == ["sequential", "per-model", "round-robin", "ours",
                                                            "oracle"]
    assert not data_dir.exists(), "a simulation writes nothing"


@pytest.mark.parametrize(("args", "needle"), [
    (["--devices", "8xH100"], "did you mean 'H100-80GB'"),
    (["--seeds", "0"], "--seeds"),
    (["--noise", "-1"], "--noise"),
])
def test_bad_simulation_inputs(args: list[str], needle: str, data_dir: Path) -> None:
    result = run_cli("compare", "--profile", "standard", "--simulate", *args)
    assert result.code == 2 and result.stderr.count("\n") == 1 and needle in result.stderr, result.stderr

