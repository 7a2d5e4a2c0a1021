"""`spectrabench calibrate`: learn from the history in the store."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from spectrabench.cli.options import JsonOpt

if TYPE_CHECKING:
    from spectrabench.experiments.limits import LimitReport
    from spectrabench.settings import Settings

calibrate_app = typer.Typer(help="Learn from the run history: the runtime/memory predictor, the --limit (phase 1) "
                            "and the learning thresholds (phase 2).", no_args_is_help=True)


@calibrate_app.command("predictor")
def predictor(profile: str = typer.Option("", "--profile", "-p",
                                          help="Take stage thresholds from this profile, and count its local "
                                               "tasks' tokens with its models' tokenizers."),
              as_json: JsonOpt = False) -> None:
    """Train the LightGBM predictor on the history, report time-ordered CV error, and save a new version.

    With --profile, its stage thresholds, and its models' tokenizers count the prompt tokens of its local tasks.
    """
    from spectrabench.cli import render
    from spectrabench.errors import UserError
    from spectrabench.profiles import SchedulerConfig, load_profile
    from spectrabench.settings import load_settings
    from spectrabench.training import train_predictor

    settings = load_settings()
    if not settings.db_file.exists():
        raise UserError(f"no store at {settings.db_file}", hint="run `spectrabench run --profile smoke` first")
    cfg, scales = SchedulerConfig(), {}
    if profile:
        from spectrabench.harness.tokencounts import scales_for

        loaded = load_profile(profile, settings)
        # Records written before tokens were counted get the profile's real counts (`harness.tokencounts`).
        cfg, scales = loaded.scheduler, scales_for(loaded, settings)
    render.training(train_predictor(settings.db_file, cfg, token_scales=scales,
                                    include_contended=settings.learn_from_busy_machine), as_json=as_json)


DEFAULT_POOL = "A100-80GB,H100-80GB,H200-141GB,L4-24GB"


def _write_outputs(folder: Path, files: dict[str, bytes]) -> list[Path]:
    """Write every output or none: each goes to a temporary name first, then all are renamed into place."""
    from spectrabench.errors import UserError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write to {folder}: {exc.strerror}", hint="give --out a folder you can write") from None
    staged = []
    try:
        for name, data in files.items():
            tmp = folder / f".{name}.tmp"
            tmp.write_bytes(data)
            staged.append((tmp, folder / name))
    except OSError:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in staged:
        os.replace(tmp, final)
    return [final for _, final in staged]


def _out_folder(out: str | None, settings: Settings, name: str) -> Path:
    return Path(out) if out else settings.data_dir / "experiments" / name


@calibrate_app.command("limit")
def limit(epsilon: float = typer.Option(0.02, "--epsilon", help="Tolerated absolute error of a score (0-1)."),
          share: float = typer.Option(0.9, "--share", help="Share of (model, task) pairs that must meet it."),
          replicates: int = typer.Option(2000, "--replicates", help="Random document subsets drawn per limit."),
          seed: int = typer.Option(0, "--seed", help="Seed of the resampling."),
          out: str | None = typer.Option(None, "--out", "-o",
                                         help="Folder for limits.json and convergence.png "
                                              "(default <data dir>/experiments/limit)."),
          as_json: JsonOpt = False) -> None:
    """Phase 1: the smallest --limit whose scores stay within epsilon of the full scores, from per-sample records."""
    from spectrabench.errors import UserError
    from spectrabench.experiments import limits as phase1
    from spectrabench.experiments.plots import convergence_figure
    from spectrabench.settings import load_settings
    from spectrabench.store.experiment_queries import limit_samples

    if not 0 < epsilon < 1:
        raise UserError(f"--epsilon must be between 0 and 1 (exclusive), got {epsilon}", hint="e.g. --epsilon 0.02")
    if not 0 < share <= 1:
        raise UserError(f"--share must be in (0, 1], got {share}", hint="e.g. --share 0.9 for 90% of pairs")
    if replicates < 100:
        raise UserError(f"--replicates must be at least 100, got {replicates}",
                        hint="95% intervals need a few hundred resamples or more")
    settings = load_settings()
    if not settings.db_file.exists():
        raise UserError(f"no store at {settings.db_file}", hint="run `make phase1`, or `spectrabench run --profile "
                        "phase1` to evaluate every document first")
    by_task: dict[str, dict[str, dict[tuple[str, int], float]]] = {}
    metrics: dict[str, str] = {}
    for pair in limit_samples(settings.db_file):
        by_task.setdefault(pair.task, {})[pair.model] = pair.values
        metrics[pair.task] = f"{pair.metric}" + ("" if pair.filter == "none" else f" ({pair.filter})")
    tasks, skipped = [], []
    for task, per_model in sorted(by_task.items()):
        aligned, left_out = phase1.align_documents(task, metrics[task], per_model)
        skipped += [f"{model} x {task}" for model in left_out]
        if aligned is not None:
            tasks.append(aligned)
    if not tasks:
        raise UserError(f"no (model, task) in {settings.db_file} has per-sample records of "
                        f"{phase1.MIN_DOCUMENTS} or more documents",
                        hint="run a profile without --limit first, e.g. `spectrabench run --profile phase1`")
    report = phase1.calibrate_limits(tasks, epsilon=epsilon, share=share, replicates=replicates, seed=seed)
    payload = {**phase1.report_json(report), "store": str(settings.db_file), "skipped_pairs": skipped}
    folder = _out_folder(out, settings, "limit")
    written = _write_outputs(folder, {"limits.json": (json.dumps(payload, indent=2) + "\n").encode(),
                                      "convergence.png": convergence_figure(report)})
    if as_json:
        print(json.dumps({**payload, "outputs": [str(p) for p in written]}, indent=2))
        return
    _print_limits(report, skipped, written)


def _print_limits(report: LimitReport, skipped: list[str], written: list[Path]) -> None:
    pairs = sum(len(t.pairs) for t in report.tasks)
    print(f"phase 1: {pairs} (model, task) pairs on {len(report.tasks)} tasks, {report.replicates} resamples; a pair "
          f"meets the target at n when 95% of its n-document subsets score within {report.epsilon:g} of its full "
          f"score; a limit needs {report.share:.0%} of pairs")
    from spectrabench.experiments.limits import TAU_TARGET

    for task in report.tasks:
        worst = {n: max(p.points[k].p95_abs_error for p in task.pairs)
                 for k, n in enumerate(p.limit for p in task.pairs[0].points)}
        shown = ", ".join(f"{n}: {e:.3f}" for n, e in worst.items())
        print(f"  {task.task} ({task.metric}, {task.documents} docs, {len(task.pairs)} models): recommended "
              f"{_limit_text(task.recommended)}; mean tau >= {TAU_TARGET} from {_limit_text(task.rank_limit)}; "
              f"worst 95th-pct error by limit {shown}")
    if skipped:
        print(f"  left out (too few documents): {', '.join(skipped)}")
    print(f"overall recommended limit: {_limit_text(report.recommended)}")
    print("wrote " + ", ".join(str(p) for p in written))


def _limit_text(value: int | None) -> str:
    return str(value) if value is not None else "all documents (no smaller candidate meets the target)"


@calibrate_app.command("thresholds")
def thresholds(simulated: bool = typer.Option(False, "--simulated",
                                              help="Replay a simulated GPU history instead of the store's."),
               size: int = typer.Option(600, "--size", help="Records of the simulated history."),
               seed: int = typer.Option(0, "--seed", help="Seed of the simulated history."),
               sim_profile: str = typer.Option("extended", "--sim-profile",
                                               help="Profile whose models and tasks the simulated history draws."),
               pool: str = typer.Option(DEFAULT_POOL, "--pool", help="Simulated devices, e.g. 2xA100-80GB,L4-24GB."),
               profile: str = typer.Option("", "--profile", "-p",
                                           help="Keep this profile's thresholds where the history cannot decide."),
               out: str | None = typer.Option(None, "--out", "-o",
                                              help="Folder for thresholds.json, scheduler.yaml and "
                                                   "learning_curve.png (default <data dir>/experiments/thresholds)."),
               as_json: JsonOpt = False) -> None:
    """Phase 2: replay the history in time order and choose min/stable_learning_data from the learning curves."""
    from spectrabench.errors import UserError
    from spectrabench.experiments import thresholds as phase2
    from spectrabench.experiments.plots import learning_curve_figure
    from spectrabench.profiles import SchedulerConfig, load_profile
    from spectrabench.settings import load_settings

    settings = load_settings()
    loaded = load_profile(profile, settings) if profile else None
    base = loaded.scheduler if loaded is not None else SchedulerConfig()
    if simulated:
        from spectrabench.simulate.specs import parse_pool
        from spectrabench.simulated_history import simulated_history

        if size < phase2.MIN_DOMAIN_RECORDS:
            raise UserError(f"--size must be at least {phase2.MIN_DOMAIN_RECORDS}, got {size}", hint="e.g. --size 600")
        history = simulated_history(load_profile(sim_profile, settings), parse_pool(pool), size, seed=seed)
        source = f"a simulated history ({sim_profile} on {pool}, {size} records, seed {seed})"
    else:
        from spectrabench.store.learning import load_history

        if not settings.db_file.exists():
            raise UserError(f"no store at {settings.db_file}",
                            hint="run `make history` (or any profile a few times), or use --simulated")
        from spectrabench.harness.tokencounts import scales_for

        # As training does: the profile's tokenizers count the prompts of records written before counts were kept.
        history = load_history(settings.db_file, scales_for(loaded, settings) if loaded is not None else None,
                               include_contended=settings.learn_from_busy_machine)
        source = f"the store {settings.db_file}"
    try:
        report = phase2.calibrate_thresholds(history, base)
    except ValueError as exc:
        raise UserError(f"cannot calibrate thresholds from {source}: {exc}",
                        hint="gather more history (`make history`) or use --simulated") from None
    payload = {**phase2.report_json(report), "source": source}
    written = _write_outputs(_out_folder(out, settings, "thresholds"), {
        "thresholds.json": (json.dumps(payload, indent=2) + "\n").encode(),
        "scheduler.yaml": phase2.scheduler_yaml(report, source).encode(),
        "learning_curve.png": learning_curve_figure(report, source)})
    if as_json:
        print(json.dumps({**payload, "outputs": [str(p) for p in written]}, indent=2))
        return
    print(f"phase 2 on {source}: {report.records} records")
    for d in report.domains:
        print(f"  {d.label}: {d.records} records, {len(d.curve)} steps of {d.window} test records; learned beats "
              f"rules from {d.min_learning_data if d.min_learning_data is not None else 'never (not yet)'}, "
              f"stable from {d.stable_learning_data if d.stable_learning_data is not None else 'not reached'}")
    for field, value in report.config.model_dump().items():
        note = report.notes.get(field, "")
        print(f"  {field}: {value}" + (f"  ({note})" if note else ""))
    print("wrote " + ", ".join(str(p) for p in written))
