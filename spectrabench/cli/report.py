"""`spectrabench report`: a run's leaderboard, timeline, predictions, attempts and resources from the store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from spectrabench.cli.options import RunOpt
from spectrabench.errors import UserError, did_you_mean

if TYPE_CHECKING:
    from spectrabench.report.data import ReportData

FORMATS = ("table", "md", "csv", "json", "parquet", "html")

# Local rather than in cli/options.py: only `report` writes folders and figures.
ReportFormatOpt = Annotated[str, typer.Option("--format", "-f", help="table, md, csv, json, parquet (one file per "
                                                                     "table, into the --out folder) or html.")]
ReportOutOpt = Annotated[str | None, typer.Option("--out", "-o", help="Write to this file (a folder for parquet) "
                                                                      "instead of stdout.")]
PlotsOpt = Annotated[str | None, typer.Option("--plots", help="With --format html: also write each figure as a PNG "
                                                              "file into this folder.")]


def _check_options(fmt: str, out: str | None, plots: str | None) -> None:
    from spectrabench.report.files import check_file_target, check_folder_target

    if fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}'", hint=did_you_mean(fmt, FORMATS, "formats"))
    if plots is not None and fmt != "html":
        raise UserError(f"--plots needs --format html (got --format {fmt})",
                        hint="use --format html --out report.html --plots DIR")
    if fmt == "parquet":
        if out is None:
            raise UserError("--format parquet writes one file per table and needs --out FOLDER",
                            hint="e.g. --out report-parquet")
        check_folder_target(Path(out))
    elif out is not None:
        check_file_target(Path(out))
    if plots is not None:
        check_folder_target(Path(plots))


def report(run: RunOpt = "latest", fmt: ReportFormatOpt = "table", out: ReportOutOpt = None,
           plots: PlotsOpt = None) -> None:
    """Show the model x task leaderboard of a run (default: the latest); md, json and html add the timeline,
    predictions, attempts, resources and the baseline-vs-optimized comparison."""
    from spectrabench.settings import load_settings
    from spectrabench.store.queries import resolve_run_id

    # Every path is checked before the store is read: a bad --out costs nothing and writes nothing.
    _check_options(fmt, out, plots)
    db = load_settings().db_file
    run_id = resolve_run_id(db, run)
    if fmt in ("table", "csv"):
        _leaderboard_only(db, run_id, fmt, out)
        return
    from spectrabench.report.data import load_report

    data = load_report(db, run_id)
    if fmt == "parquet":
        _write_parquet(db, data, Path(out or "."))
        return
    if fmt == "html":
        text = _html(data, Path(plots) if plots else None)
    else:
        from spectrabench.report.text import to_report_json, to_report_markdown

        text = to_report_markdown(data) if fmt == "md" else to_report_json(data)
    _emit(text, out)


def _emit(text: str, out: str | None) -> None:
    from spectrabench.report.files import write_text

    if out is None:
        print(text, end="")
    else:
        write_text(Path(out), text)


def _leaderboard_only(db: Path, run_id: str, fmt: str, out: str | None) -> None:
    from spectrabench.cli import render
    from spectrabench.report.tables import build_leaderboard, to_csv, to_markdown
    from spectrabench.store.queries import run_failures, run_info, run_scores

    pairs, scores = run_scores(db, run_id)
    board = build_leaderboard(run_info(db, run_id), pairs, scores, run_failures(db, run_id))
    if fmt == "table" and out is None:
        render.leaderboard(board)
        return
    _emit(to_csv(board) if fmt == "csv" else to_markdown(board), out)


def _html(data: ReportData, plots_dir: Path | None) -> str:
    from spectrabench import __version__
    from spectrabench.report.files import write_binary_files
    from spectrabench.report.html import to_html
    from spectrabench.report.plots import render_plots

    figures = render_plots(data)
    if plots_dir is not None:
        write_binary_files(plots_dir, {f"{name}.png": png for name, png in figures.items()})
    return to_html(data, figures, version=__version__)


def _write_parquet(db: Path, data: ReportData, folder: Path) -> None:
    import pyarrow as pa

    from spectrabench.report.files import write_into_folder
    from spectrabench.report.tables import to_rows
    from spectrabench.store.report_queries import export_run_parquet

    # The leaderboard is computed (primary metric per pair, reused scores included), so it is a table of its own.
    leaderboard = pa.Table.from_pylist(to_rows(data.board)) if data.board.models else None
    extra = {"leaderboard": leaderboard} if leaderboard is not None else {}
    written = write_into_folder(folder, lambda staging: export_run_parquet(db, data.run.run_id, staging, extra))
    print(f"wrote {len(written)} parquet files to {folder}: {', '.join(p.name for p in written)}", file=sys.stderr)
