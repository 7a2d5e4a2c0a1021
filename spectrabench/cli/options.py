"""Options shared by several commands, defined once."""

from __future__ import annotations

from typing import Annotated

import typer

ProfileOpt = Annotated[str, typer.Option("--profile", "-p",
                                         help="Profile name (from profiles/) or path to a YAML file.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="Documents per task (overrides the profile).")]
BatchSizeOpt = Annotated[int | None, typer.Option("--batch-size", help="Explicit batch size (overrides the profile).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable result on stdout.")]
ModeOpt = Annotated[str, typer.Option("--mode", help="baseline: one (model, task) per worker, in profile order; "
                                      "per-model: one worker per model with all its tasks.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Rerun (model, task) pairs that already have results.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="List the jobs and worker commands; run nothing.")]
JobTimeoutOpt = Annotated[float | None, typer.Option("--job-timeout", help="Kill a job after this many seconds.")]
RunOpt = Annotated[str, typer.Option("--run", help="Run id, a unique prefix of one, or 'latest'.")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table, md, csv or json.")]
OutOpt = Annotated[str | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")]
