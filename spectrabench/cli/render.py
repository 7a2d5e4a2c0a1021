"""Terminal rendering of core results (rich tables on stderr/stdout, or JSON)."""

from __future__ import annotations

import json
import shlex
import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from spectrabench.execution.comparison import CompareSummary
    from spectrabench.execution.outcomes import RunSummary
    from spectrabench.execution.runplan import RunPlan
    from spectrabench.planning.outlook import PlanOutlook
    from spectrabench.report.tables import Leaderboard
    from spectrabench.simulate.experiment import StrategyStats
    from spectrabench.training import TrainingReport


def dry_run(plan: RunPlan, *, as_json: bool) -> None:
    """List each job and the exact worker command and spec, running nothing."""
    if as_json:
        print(json.dumps({"run_id": plan.run_id, "profile": plan.profile.name, "mode": plan.options.mode,
                          "devices": [d.model_dump() for d in plan.devices], "jobs": [
            {"job_key": p.job.job_key, "model": p.job.model.name, "tasks": p.job.task_names, "argv": p.argv,
             "spec": p.spec.model_dump(mode="json")} for p in plan.jobs]}, indent=2))
        return
    limit = plan.options.limit
    print(f"{len(plan.jobs)} jobs for profile '{plan.profile.name}' (mode {plan.options.mode}, "
          f"limit {limit if limit is not None else 'all'}, devices {plan.devices_label}); nothing was run.")
    for index, planned in enumerate(plan.jobs, start=1):
        spec = planned.spec
        print(f"[{index}] {planned.job.model.name} x {', '.join(planned.job.task_names)} "
              f"(batch {spec.batch_size}, device {spec.device}, key {planned.job.job_key})")
        print(f"    {shlex.join(planned.argv)}")


def run_summary(summary: RunSummary, *, as_json: bool) -> None:
    """Print how a run ended: counts, wall time, failures with their causes."""
    if as_json:
        print(summary.model_dump_json(indent=2))
        return
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"run {summary.run_id} ({summary.profile}, {summary.mode} on {summary.devices}): {summary.status} — "
                  f"{summary.jobs_completed} completed, {summary.jobs_reused} already complete (skipped), "
                  f"{summary.jobs_failed} failed of {summary.jobs_total} jobs in {summary.wall_s:.1f} s "
                  f"({summary.attempts} attempts, {summary.retries} retries)")
    if summary.jobs_total and summary.jobs_reused == summary.jobs_total:
        console.print("all jobs are complete; no worker started (use --force to rerun)")
    if summary.failures:
        by_kind: dict[str, int] = {}
        for failure in summary.failures:
            by_kind[failure.kind] = by_kind.get(failure.kind, 0) + 1
        console.print("failures by cause: " + ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items())))
        # One line per distinct cause and model: 21 jobs of one unreachable model are one problem, not 21.
        grouped: dict[tuple[str, str, str], list[str]] = {}
        for failure in summary.failures:
            grouped.setdefault((failure.model, failure.kind, failure.message), []).extend(failure.tasks)
        for (model, kind, message), tasks in list(grouped.items())[:15]:
            where = ", ".join(tasks) if len(tasks) <= 3 else f"{len(tasks)} tasks"
            console.print(f"  {model} x {where}: {kind}: {message}")
        if len(grouped) > 15:
            console.print(f"  ... and {len(grouped) - 15} more (spectrabench report --run {summary.run_id})")
    from spectrabench.report.data import contended_attempts_note

    if note := contended_attempts_note(summary.model_dump()):
        console.print(f"[bold yellow]{note}[/]")
    if summary.training:
        console.print(summary.training)
    console.print(f"store: {summary.db_path}")


def leaderboard(board: Leaderboard) -> None:
    """The model x task grid as a rich table on stdout, then failures."""
    from spectrabench.report.tables import cell_text

    run = board.run
    table = Table(title=f"Run {run.run_id} · {run.profile} · {run.mode} · limit {run.limit or 'all'} · {run.status}")
    table.add_column("model", no_wrap=True)
    for task in board.tasks:
        table.add_column(task, justify="right")
    for model in board.models:
        table.add_row(model, *(cell_text(board.cells.get((model, t))) for t in board.tasks))
    # Off a terminal (CI logs, pipes) rich would squeeze the grid into 80 columns; give it room instead.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 240)
    console.print(table)
    for failure in board.failures:
        console.print(f"failed: {failure.model} x {', '.join(failure.tasks)}: {failure.error_kind}: {failure.error}")


def forecast(plan: RunPlan, *, as_json: bool, outlook: PlanOutlook | None = None) -> None:
    """Each job with its device, batch size (and why), predicted load, runtime, peak memory and stage; with an
    outlook, the predicted makespan, lower bound, sequential time, speed-up and each device's order."""
    rows = []
    for planned in plan.jobs:
        fc = plan.forecasts[planned.job.job_key]
        rows.append({"job_key": fc.job_key, "model": fc.model, "tasks": planned.job.task_names,
                     "batch_size": fc.batch_size, "batch_reason": fc.batch_reason, "load_s": fc.load_s,
                     "runtime_s": fc.runtime_s, "peak_mem_gb": fc.peak_mem_gb, "stage": fc.stage,
                     "gpus": planned.job.gpus, "device": fc.device})
    sequential = sum(r["runtime_s"] for r in rows)  # type: ignore[misc]
    if as_json:
        print(json.dumps({"profile": plan.profile.name, "mode": plan.options.mode,
                          "devices": [d.model_dump() for d in plan.devices], "limit": plan.options.limit,
                          "predictor_version": plan.predictor_version, "speeds": plan.speeds,
                          "predicted_sequential_s": outlook.sequential_s if outlook else sequential,
                          "jobs": rows, "outlook": outlook.model_dump() if outlook else None}, indent=2))
        return
    version = f"v{plan.predictor_version}" if plan.predictor_version else "rules only (no training yet)"
    table = Table(title=f"{plan.profile.name} · {plan.options.mode} · {plan.devices_label} · "
                        f"limit {plan.options.limit or 'all'} · predictor {version}")
    split = any(int(row["gpus"]) > 1 for row in rows)  # type: ignore[call-overload]
    for column in ("model", "tasks", "batch", *(("GPUs",) if split else ()), "load s", "runtime s", "peak GB",
                   "stage"):
        table.add_column(column, justify="right" if column not in ("model", "tasks", "stage") else "left")
    for row in rows:
        tasks = row["tasks"]
        table.add_row(str(row["model"]), ", ".join(tasks) if len(tasks) <= 3 else f"{len(tasks)} tasks",  # type: ignore[arg-type]
                      str(row["batch_size"]), *((str(row["gpus"]),) if split else ()), f"{row['load_s']:.1f}",
                      f"{row['runtime_s']:,.1f}", f"{row['peak_mem_gb']:.2f}", str(row["stage"]))
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    console.print(table)
    # Reasons differ only in their figures from job to job: show each kind once.
    reasons = sorted({str(r["batch_reason"]).split(":")[0] for r in rows})
    if outlook is None:
        console.print(f"{len(rows)} jobs; predicted sequential time {sequential / 3600:,.2f} h; batch sizes: "
                      + "; ".join(reasons))
        return
    console.print(f"{len(rows)} jobs; batch sizes: " + "; ".join(reasons))
    if plan.speeds:
        first = plan.devices[0].name
        console.print(f"mixed pool: each job is sized and predicted for the smallest kind of card that holds it; "
                      f"predicted speed relative to {first}: "
                      + ", ".join(f"{kind} {speed:.2f}x" for kind, speed in plan.speeds.items() if kind != first)
                      + f"; the schedule below is in each card's own time, the sequential run on {first}")
    _outlook(console, outlook)


def _outlook(console: Console, outlook: PlanOutlook) -> None:
    by_device: dict[str, list[str]] = {d: [] for d in outlook.devices}
    busy_until: dict[str, float] = {}
    for slot in outlook.schedule:
        tasks = ", ".join(slot.tasks) if len(slot.tasks) <= 2 else f"{len(slot.tasks)} tasks"
        # A job that starts while another still runs there shares the GPU: "&" instead of "->".
        joiner = " & " if slot.start_s < busy_until.get(slot.device, 0.0) - 1e-6 else " -> "
        busy_until[slot.device] = max(busy_until.get(slot.device, 0.0), slot.end_s)
        text = f"{slot.model} ({tasks}) {_hours(slot.start_s)}-{_hours(slot.end_s)}"
        order = by_device.setdefault(slot.device, [])
        order.append(joiner + text if order else text)
    for device, order in by_device.items():
        console.print(f"  {device}: " + ("".join(order) if order else "idle"))
    bound = "lower bound without GPU sharing" if outlook.shares_gpus else "lower bound"
    console.print(f"predicted makespan {_hours(outlook.makespan_s)} on {len(outlook.devices)} device(s); {bound} "
                  f"{_hours(outlook.lower_bound_s)} ({outlook.makespan_s / outlook.lower_bound_s:.2f}x LB); "
                  f"sequential (one (model, task) at a time) {_hours(outlook.sequential_s)}; "
                  f"speed-up {outlook.speedup:.2f}x" if outlook.lower_bound_s > 0 else "nothing to run")
    if outlook.unplaced:
        console.print(f"[bold red]{len(outlook.unplaced)} job(s) fit no device of the pool by their predicted "
                      f"peak memory[/]: {', '.join(outlook.unplaced[:5])}")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.2f} h" if seconds >= 3600 else f"{seconds / 60:,.1f} min" if seconds >= 60 else (
        f"{seconds:,.1f} s")


def training(report: TrainingReport, *, as_json: bool) -> None:
    """The training's records, cross-validated errors per method, stage per domain, and saved version."""
    if as_json:
        print(report.model_dump_json(indent=2))
        return
    console = Console(highlight=False)
    console.print(f"history: {report.records} records" + (
        f" ({report.left_out_busy} more left out: other work competed with them for the machine's cores)"
        if report.left_out_busy else ""))
    if report.cv:
        table = Table(title=f"time-ordered CV ({report.cv['folds']} folds, {report.cv['n_test']} held-out records)")
        for column in ("method", "runtime MAPE", "runtime MAE s", "memory coverage", "over-reservation GB"):
            table.add_column(column, justify="left" if column == "method" else "right")
        for method in ("rules", "learned", "blend"):
            s = report.cv[method]
            table.add_row(method, f"{s['runtime_mape']:.1%}", f"{s['runtime_mae_s']:.2f}",
                          f"{s['mem_coverage']:.1%}", f"{s['mem_over_reservation_gb']:.2f}")
        console.print(table)
    for stage in report.stages:
        console.print(f"{stage.device_kind} {stage.domain}: {stage.records} records -> {stage.stage} "
                      f"(learned weight {stage.learned_weight:.2f})")
    if report.unseen_pair_weight is not None:
        console.print(f"a (model, task) pair without history gets {report.unseen_pair_weight:.0%} of the learned "
                      "runtime correction (what predicted pairs held out of this history best)")
    if report.version is not None:
        console.print(f"saved predictor v{report.version} ({report.seconds:.1f} s)")
    else:
        console.print(f"not trained: {report.skipped}")


def strategies(profile: str, devices: str, seeds: int, noise: float, stats: list[StrategyStats], *,
               as_json: bool) -> None:
    """One row per scheduling strategy from a simulated comparison."""
    if as_json:
        print(json.dumps({"profile": profile, "devices": devices, "seeds": seeds, "noise": noise,
                          "strategies": [s.model_dump() for s in stats]}, indent=2))
        return
    table = Table(title=f"simulated: {profile} on {devices}, {seeds} seeds, noise {noise:g}")
    for column in ("strategy", "makespan h (p50)", "/LB p50", "/LB p95", "/LB no sharing p95", "speed-up p50",
                   "speed-up p5", "OOMs", "loads p50", "utilisation p50"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for s in stats:
        table.add_row(s.strategy, f"{s.makespan_h_p50:,.1f}", f"{s.ratio_to_lb_p50:.3f}", f"{s.ratio_to_lb_p95:.3f}",
                      f"{s.ratio_to_whole_lb_p95:.3f}", f"{s.speedup_p50:.2f}x", f"{s.speedup_p5:.2f}x",
                      str(s.oom_total), f"{s.model_loads_p50:.0f}", f"{s.utilisation_p50:.0%}")
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    console.print(table)
    console.print("LB credits co-location wherever memory allows it; LB no sharing credits none: the gap between "
                  "them is what sharing GPUs could still win.")
    if "," in devices:
        console.print("A mixed pool: LB is the least time in which each kind of card holds the work of the jobs "
                      "that fit it (a linear programme); sequential runs on the first card.")


def _background(console: Console, summary: CompareSummary) -> None:
    """Other work on the machine during each run, and a loud note when it was enough to skew the speed-up."""
    from spectrabench.report.data import BUSY_MACHINE_WARNING, busy_with_other_work

    if not summary.background:
        return
    console.print(f"  machine    cores busy with other work: {busy_with_other_work(summary.background)}")
    if summary.noisy:
        console.print(f"  [bold yellow]{BUSY_MACHINE_WARNING}[/]")


def comparison(summary: CompareSummary, *, as_json: bool) -> None:
    """Wall times of baseline and optimized, their ratio, and score parity; a difference is printed loudly."""
    parity = summary.parity
    if as_json:
        print(json.dumps({**summary.model_dump(mode="json"), "identical": parity.identical, "ok": summary.ok,
                          "noisy": summary.noisy}, indent=2))
        return
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    b, o = summary.baseline, summary.optimized
    console.print(f"compare {summary.compare_id} ({summary.profile}):")
    for label, run in (("baseline ", b), ("optimized", o)):
        console.print(f"  {label}  {run.wall_s:8.1f} s  {run.jobs_completed} jobs on {run.devices}  "
                      f"({run.status}, run {run.run_id})")
    console.print(f"  speed-up   {summary.speedup:.2f}x")
    _background(console, summary)
    if parity.identical:
        console.print(f"  scores     identical: {parity.samples_compared} per-sample values equal, "
                      f"{parity.scores_compared} scores within 1e-4 (max difference {parity.max_score_diff:.2g})")
        return
    if parity.samples_compared == 0:
        console.print("  [bold red]SCORES NOT COMPARED: the runs stored no per-sample values[/]")
    else:
        console.print(f"  [bold red]SCORES DIFFER: {len(parity.mismatches)} value(s) of {parity.samples_compared} "
                      f"samples and {parity.scores_compared} scores[/]")
    for m in parity.mismatches[:20]:
        console.print(f"    {m.model} x {m.task}: {m.what}: baseline {m.baseline} vs optimized {m.optimized}")
    if len(parity.mismatches) > 20:
        console.print(f"    ... and {len(parity.mismatches) - 20} more")
