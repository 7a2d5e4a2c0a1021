"""`spectrabench compare`: baseline vs optimized for real on this machine's devices, or strategies in simulation."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import typer

from spectrabench.cli.options import DevicesOpt, JsonOpt, LimitOpt, MaxRetriesOpt, ProfileOpt
from spectrabench.errors import UserError


def compare(profile: ProfileOpt, limit: LimitOpt = None, devices: DevicesOpt = "auto",
            simulate: Annotated[bool, typer.Option("--simulate", help="Simulate strategies on a what-if pool "
                                                                      "instead of running for real.")] = False,
            seeds: Annotated[int, typer.Option("--seeds", help="Simulated: independent draws.")] = 20,
            noise: Annotated[float, typer.Option("--noise", help="Simulated: lognormal sigma of runtime truth and "
                                                                 "prediction errors.")] = 0.2,
            max_retries: MaxRetriesOpt = 2, as_json: JsonOpt = False) -> None:
    """Real: run baseline, then optimized, on the same devices; print both wall times, their ratio and whether
    every per-sample result and score is identical (exit 1 if not). Simulated (--simulate, --devices a pool such
    as 8xH100-80GB): makespan / lower bound, speed-up, OOMs, loads and utilisation per strategy."""
    if simulate:
        _simulated(profile, "2xA100-80GB" if devices == "auto" else devices, seeds, noise, as_json)
        return
    from spectrabench.cli import render
    from spectrabench.cli.progress import make_observer
    from spectrabench.execution.comparison import run_compare
    from spectrabench.execution.runplan import RunOptions
    from spectrabench.profiles import load_profile
    from spectrabench.settings import load_settings

    if limit is not None and limit <= 0:
        raise UserError(f"--limit must be positive, got {limit}", hint="use --limit 1 or more")
    if max_retries < 0:
        raise UserError(f"--max-retries must be 0 or more, got {max_retries}", hint="use --max-retries 0")
    settings = load_settings()
    loaded = load_profile(profile, settings)
    options = RunOptions(limit=limit, devices=devices, max_retries=max_retries)
    with contextlib.redirect_stdout(sys.stderr):
        summary = run_compare(loaded, options, settings,
                              lambda plan: make_observer(plan, quiet=as_json, stream=sys.stderr))
    render.comparison(summary, as_json=as_json)
    raise typer.Exit(0 if summary.ok else 1)


def _simulated(profile: str, devices: str, seeds: int, noise: float, as_json: bool) -> None:
    from spectrabench.cli import render
    from spectrabench.profiles import load_profile
    from spectrabench.settings import load_settings
    from spectrabench.simulate.experiment import compare_strategies
    from spectrabench.simulate.specs import parse_pool

    if seeds < 1:
        raise UserError(f"--seeds must be 1 or more, got {seeds}", hint="use --seeds 20")
    if not 0 <= noise <= 2:
        raise UserError(f"--noise must be between 0 and 2, got {noise:g}", hint="use e.g. --noise 0.2")
    loaded = load_profile(profile, load_settings())
    stats = compare_strategies(loaded, parse_pool(devices), seeds=seeds, noise=noise)
    render.strategies(loaded.name, devices, seeds, noise, stats, as_json=as_json)
