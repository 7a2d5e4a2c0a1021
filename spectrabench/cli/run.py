"""`spectrabench run`: evaluate a profile's models x tasks and record everything in the store."""

from __future__ import annotations

import contextlib
import sys

import typer

from spectrabench.cli.options import (
    BackendOpt,
    BatchSizeOpt,
    DevicesOpt,
    DryRunOpt,
    ForceOpt,
    GpusPerJobOpt,
    JobTimeoutOpt,
    JsonOpt,
    LimitOpt,
    MaxRetriesOpt,
    ModeOpt,
    ProfileOpt,
    RayAddressOpt,
    SamplingOpt,
    SeedOpt,
)
from spectrabench.errors import UserError, did_you_mean


def _positive(value: float | None, option: str) -> None:
    if value is not None and value <= 0:
        raise UserError(f"{option} must be positive, got {value:g}", hint=f"use {option} 1 or more")


def run(profile: ProfileOpt, limit: LimitOpt = None, mode: ModeOpt = "optimized", devices: DevicesOpt = "auto",
        batch_size: BatchSizeOpt = None, max_retries: MaxRetriesOpt = 2, job_timeout: JobTimeoutOpt = None,
        force: ForceOpt = False, dry_run: DryRunOpt = False, backend: BackendOpt = "local",
        ray_address: RayAddressOpt = None, gpus_per_job: GpusPerJobOpt = 1, sampling: SamplingOpt = "first",
        seed: SeedOpt = 0, as_json: JsonOpt = False) -> None:
    """Run the profile's jobs; completed (model, task) pairs are skipped unless --force."""
    from spectrabench.cli import render
    from spectrabench.cli.progress import make_observer
    from spectrabench.execution.backends import check_backend
    from spectrabench.execution.driver import execute_run
    from spectrabench.execution.runplan import MODES, RunOptions, plan_run
    from spectrabench.profiles import load_profile
    from spectrabench.settings import load_settings
    from spectrabench.simulate.specs import is_pool

    _positive(limit, "--limit")
    _positive(batch_size, "--batch-size")
    _positive(job_timeout, "--job-timeout")
    if max_retries < 0:
        raise UserError(f"--max-retries must be 0 or more, got {max_retries}",
                        hint="use --max-retries 0 to never retry")
    if mode not in MODES:
        raise UserError(f"unknown mode '{mode}'", hint=did_you_mean(mode, MODES, "modes"))
    if sampling not in ("first", "random"):
        raise UserError(f"unknown sampling '{sampling}'", hint=did_you_mean(sampling, ("first", "random"), "choices"))
    if seed < 0:
        raise UserError(f"--seed must be 0 or more, got {seed}", hint="use e.g. --seed 0")
    check_backend(backend)
    if is_pool(devices):
        raise UserError(f"--devices {devices} is a what-if pool, not devices of this machine",
                        hint=f"plan for it with `spectrabench plan --profile {profile} --devices {devices}`; "
                             "run with auto, cpu:N, cuda or cuda:0,1")
    settings = load_settings()
    options = RunOptions(mode=mode, limit=limit, batch_size=batch_size, devices=devices,  # type: ignore[arg-type]
                         force=force, job_timeout_s=job_timeout, max_retries=max_retries,
                         backend=backend, ray_address=ray_address, gpus_per_job=gpus_per_job,  # type: ignore[arg-type]
                         sampling=sampling, sample_seed=seed)  # type: ignore[arg-type]
    # Ray prints what its raylets report (a lost worker, say) on the driver's stdout: keep stdout for --json.
    with contextlib.redirect_stdout(sys.stderr):
        plan = plan_run(load_profile(profile, settings), options, settings)
    if dry_run:
        render.dry_run(plan, as_json=as_json)
        return
    with make_observer(plan, quiet=as_json, stream=sys.stderr) as observer, contextlib.redirect_stdout(sys.stderr):
        summary = execute_run(plan, settings, observer)
    render.run_summary(summary, as_json=as_json)
    raise typer.Exit(summary.exit_code)
