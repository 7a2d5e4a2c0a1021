"""`spectrabench calibrate`: learn from the history in the store."""

from __future__ import annotations

import typer

from spectrabench.cli.options import JsonOpt

calibrate_app = typer.Typer(help="Learn from the run history: the runtime/memory predictor.", no_args_is_help=True)


@calibrate_app.command("predictor")
def predictor(profile: str = typer.Option("", "--profile", "-p", help="Take stage thresholds from this profile."),
              as_json: JsonOpt = False) -> None:
    """Train the LightGBM predictor on the history, report time-ordered CV error, and save a new version."""
    from spectrabench.cli import render
    from spectrabench.errors import UserError
    from spectrabench.profiles import SchedulerConfig, load_profile
    from spectrabench.settings import Settings
    from spectrabench.training import train_predictor

    settings = Settings()
    if not settings.db_file.exists():
        raise UserError(f"no store at {settings.db_file}", hint="run `spectrabench run --profile smoke` first")
    cfg = load_profile(profile, settings).scheduler if profile else SchedulerConfig()
    render.training(train_predictor(settings.db_file, cfg), as_json=as_json)
