"""`spectrabench plan`: every job with its predicted runtime, peak memory, batch size and prediction stage."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from spectrabench.cli.options import (
    BackendOpt,
    BatchSizeOpt,
    DevicesOpt,
    GpusPerJobOpt,
    JsonOpt,
    LimitOpt,
    ModeOpt,
    ProfileOpt,
    RayAddressOpt,
)
from spectrabench.errors import UserError, did_you_mean


def plan(profile: ProfileOpt, limit: LimitOpt = None, mode: ModeOpt = "optimized", devices: DevicesOpt = "auto",
         batch_size: BatchSizeOpt = None, backend: BackendOpt = "local", ray_address: RayAddressOpt = None,
         gpus_per_job: GpusPerJobOpt = 1,
         gantt: Annotated[Path | None, typer.Option("--gantt", help="Write the predicted schedule as a Gantt "
                                                                    "chart (PNG) to this file.")] = None,
         as_json: JsonOpt = False) -> None:
    """Show what `run` would do: each job's predicted runtime, peak memory, batch size and stage, and the predicted
    makespan, lower bound and speed-up over a sequential run. `--devices` also takes a what-if pool such as
    8xH100-80GB or 2xA100-80GB,4xL4-24GB. Runs nothing."""
    from spectrabench.cli import render
    from spectrabench.execution.backends import check_backend
    from spectrabench.execution.runplan import MODES, RunOptions, plan_run, predicted_outlook
    from spectrabench.profiles import load_profile
    from spectrabench.settings import load_settings

    for value, option in ((limit, "--limit"), (batch_size, "--batch-size")):
        if value is not None and value <= 0:
            raise UserError(f"{option} must be positive, got {value}", hint=f"use {option} 1 or more")
    if mode not in MODES:
        raise UserError(f"unknown mode '{mode}'", hint=did_you_mean(mode, MODES, "modes"))
    check_backend(backend)
    settings = load_settings()
    options = RunOptions(mode=mode, limit=limit, batch_size=batch_size, devices=devices,  # type: ignore[arg-type]
                         backend=backend, ray_address=ray_address, gpus_per_job=gpus_per_job)  # type: ignore[arg-type]
    # Ray prints what its raylets report on the driver's stdout: keep stdout for --json.
    with contextlib.redirect_stdout(sys.stderr):
        planned = plan_run(load_profile(profile, settings), options, settings)
    if gantt is not None and gantt.suffix.lower() != ".png":
        raise UserError(f"--gantt {gantt}: the chart is a PNG file", hint="name it e.g. plan.png")
    outlook = predicted_outlook(planned)
    if gantt is not None:
        from spectrabench.report.plan_gantt import write_plan_gantt

        pool = devices if devices != "auto" else planned.devices_label
        write_plan_gantt(outlook, gantt, title=f"{planned.profile.name} on {pool}")
    render.forecast(planned, as_json=as_json, outlook=outlook)

