"""`spectrabench compare --simulate`: scheduling strategies side by side on simulated hardware."""

from __future__ import annotations

from typing import Annotated

import typer

from spectrabench.cli.options import JsonOpt, ProfileOpt
from spectrabench.errors import UserError


def compare(profile: ProfileOpt,
            devices: Annotated[str, typer.Option("--devices", help="A what-if pool, e.g. 8xH100-80GB or "
                                                                   "2xA100-80GB,4xL4-24GB.")] = "2xA100-80GB",
            simulate: Annotated[bool, typer.Option("--simulate", help="Simulate (the real comparison on this "
                                                                      "machine's devices is not built yet).")] = False,
            seeds: Annotated[int, typer.Option("--seeds", help="Independent simulated draws.")] = 20,
            noise: Annotated[float, typer.Option("--noise", help="Lognormal sigma of runtime truth and "
                                                                 "prediction errors.")] = 0.2,
            as_json: JsonOpt = False) -> None:
    """Makespan / lower bound (p50, p95), speed-up over sequential, OOMs, model loads and utilisation per strategy."""
    from spectrabench.cli import render
    from spectrabench.profiles import load_profile
    from spectrabench.settings import Settings
    from spectrabench.simulate.experiment import compare_strategies
    from spectrabench.simulate.specs import parse_pool

    if not simulate:
        raise UserError("only the simulated comparison exists so far", hint="add --simulate")
    if seeds < 1:
        raise UserError(f"--seeds must be 1 or more, got {seeds}", hint="use --seeds 20")
    if not 0 <= noise <= 2:
        raise UserError(f"--noise must be between 0 and 2, got {noise:g}", hint="use e.g. --noise 0.2")
    settings = Settings()
    loaded = load_profile(profile, settings)
    stats = compare_strategies(loaded, parse_pool(devices), seeds=seeds, noise=noise)
    render.strategies(loaded.name, devices, seeds, noise, stats, as_json=as_json)
