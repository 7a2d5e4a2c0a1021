"""`spectrabench run`: evaluate a profile's models x tasks and record everything in the store."""

from __future__ import annotations

import sys

import typer

from spectrabench.cli.options import (
    BatchSizeOpt,
    DryRunOpt,
    ForceOpt,
    JobTimeoutOpt,
    JsonOpt,
    LimitOpt,
    ModeOpt,
    ProfileOpt,
)
from spectrabench.errors import UserError, did_you_mean

MODES = ("baseline", "per-model")


def _positive(value: float | None, option: str) -> None:
    if value is not None and value <= 0:
        raise UserError(f"{option} must be positive, got {value:g}", hint=f"use {option} 1 or more")


def run(profile: ProfileOpt, limit: LimitOpt = None, mode: ModeOpt = "baseline", batch_size: BatchSizeOpt = None,
        force: ForceOpt = False, dry_run: DryRunOpt = False, job_timeout: JobTimeoutOpt = None,
        as_json: JsonOpt = False) -> None:
    """Run the profile's jobs; completed (model, task) pairs are skipped unless --force."""
    from spectrabench.cli import render
    from spectrabench.execution.driver import RunOptions, execute_run, plan_run
    from spectrabench.profiles import load_profile
    from spectrabench.settings import Settings

    _positive(limit, "--limit")
    _positive(batch_size, "--batch-size")
    _positive(job_timeout, "--job-timeout")
    if mode not in MODES:
        raise UserError(f"unknown mode '{mode}'", hint=did_you_mean(mode, MODES, "modes"))
    settings = Settings()
    options = RunOptions(mode=mode, limit=limit, batch_size=batch_size, force=force,  # type: ignore[arg-type]
                         job_timeout_s=job_timeout)
    plan = plan_run(load_profile(profile, settings), options, settings)
    if dry_run:
        render.dry_run(plan, as_json=as_json)
        return
    progress = (lambda line: print(line, file=sys.stderr, flush=True)) if not as_json else (lambda _line: None)
    summary = execute_run(plan, settings, progress)
    render.run_summary(summary, as_json=as_json)
    raise typer.Exit(summary.exit_code)
