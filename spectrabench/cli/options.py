"""Options shared by several commands, defined once."""

from __future__ import annotations

from typing import Annotated

import typer

ProfileOpt = Annotated[str, typer.Option("--profile", "-p",
                                         help="Profile name (from profiles/) or path to a YAML file.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="Documents per task (overrides the profile).")]
BatchSizeOpt = Annotated[int | None, typer.Option("--batch-size", help="Explicit batch size (overrides the profile).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable result on stdout.")]
ModeOpt = Annotated[str, typer.Option("--mode", help="optimized (default): tasks grouped per model to shorten the "
                                      "predicted makespan, longest predicted job first on every free device; "
                                      "baseline: one (model, task) per worker, in profile order, one device; "
                                      "per-model: one worker per model, one device; parallel: one worker per model "
                                      "on every free device, in profile order.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Rerun (model, task) pairs that already have results.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="List the jobs and worker commands; run nothing.")]
JobTimeoutOpt = Annotated[float | None, typer.Option("--job-timeout", help="Kill a job after this many seconds.")]
RunOpt = Annotated[str, typer.Option("--run", help="Run id, a unique prefix of one, or 'latest'.")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table, md, csv or json.")]
OutOpt = Annotated[str | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")]
DevicesOpt = Annotated[str, typer.Option("--devices",
                                         help="auto (every GPU, else one CPU slot), cpu:N, cuda or cuda:0,1.")]
MaxRetriesOpt = Annotated[int, typer.Option("--max-retries", help="Retries for crashed attempts or bad output.")]
BackendOpt = Annotated[str, typer.Option("--backend", help="local: worker processes on this machine; ray: one Ray task "
                                         "per job on a Ray cluster (pip install 'spectrabench[ray]').")]
RayAddressOpt = Annotated[str | None, typer.Option("--ray-address", envvar="RAY_ADDRESS",
                                                   help="With --backend ray: 'auto' (the cluster running on this "
                                                   "machine) or the head's host:port; default: start a local Ray.")]
GpusPerJobOpt = Annotated[int, typer.Option("--gpus-per-job", help="GPUs each job's worker gets, on one machine "
                                            "(with model_args parallelize: true for models larger than one GPU).")]
SamplingOpt = Annotated[str, typer.Option("--sampling", help="first: lm-eval's first --limit documents (default); "
                                                           "random: a seeded random sample of them, nested across "
                                                           "limits (smaller samples inside larger ones).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="With --sampling random: which permutation of the documents.")]
