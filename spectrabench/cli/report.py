"""`spectrabench report`: a run's leaderboard and failures from the store."""

from __future__ import annotations

from pathlib import Path

from spectrabench.cli.options import FormatOpt, OutOpt, RunOpt
from spectrabench.errors import UserError, did_you_mean

FORMATS = ("table", "md", "csv", "json")


def report(run: RunOpt = "latest", fmt: FormatOpt = "table", out: OutOpt = None) -> None:
    """Show the model x task leaderboard of a run (default: the latest), with its status and failures."""
    from spectrabench.cli import render
    from spectrabench.report.tables import build_leaderboard, to_csv, to_json, to_markdown
    from spectrabench.settings import Settings
    from spectrabench.store.queries import resolve_run_id, run_failures, run_info, run_scores

    if fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}'", hint=did_you_mean(fmt, FORMATS, "formats"))
    settings = Settings()
    db = settings.db_file
    run_id = resolve_run_id(db, run)
    pairs, scores = run_scores(db, run_id)
    board = build_leaderboard(run_info(db, run_id), pairs, scores, run_failures(db, run_id))
    if fmt == "table" and out is None:
        render.leaderboard(board)
        return
    text = {"table": to_markdown, "md": to_markdown, "csv": to_csv, "json": to_json}[fmt](board)
    if out is None:
        print(text, end="")
        return
    target = Path(out)
    if not target.parent.is_dir():
        raise UserError(f"cannot write '{out}': folder '{target.parent}' does not exist", hint="create it first")
    target.write_text(text, encoding="utf-8")
