"""The report as one self-contained HTML file: inline CSS, figures as base64 PNG, no script, nothing fetched."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from html import escape

from spectrabench.report.data import (
    BUSY_MACHINE_WARNING,
    CompareView,
    ReportData,
    RunSide,
    busy_with_other_work,
    contended_attempts_note,
)
from spectrabench.report.tables import cell_text

# Every section is always present (with a sentence where there is nothing to show), so readers and tests can rely
# on the anchors.
SECTIONS = {
    "summary": "Run",
    "leaderboard": "Leaderboard",
    "gantt": "Timeline",
    "predictions": "Predicted vs actual",
    "attempts": "Attempts and failures",
    "resources": "Device memory and utilisation",
    "compare": "Baseline vs optimized",
}

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d2329;
       background: #f6f7f9; }
header { background: #1d2733; color: #fff; padding: 18px 32px 12px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0 0 10px; color: #c9d3dd; }
nav a { color: #9fd0ff; margin-right: 16px; text-decoration: none; font-size: 13px; }
main { max-width: 1240px; margin: 0 auto; padding: 8px 32px 40px; }
section { background: #fff; border: 1px solid #dde2e7; border-radius: 6px; padding: 6px 20px 16px; margin: 18px 0; }
h2 { font-size: 18px; margin: 12px 0 8px; }
p.note { color: #56606b; margin: 4px 0 10px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border-bottom: 1px solid #e6e9ec; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f0f3f6; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.bad td { background: #fdecec; }
.status { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.status.complete { background: #d9f2dd; color: #1b6b2a; }
.status.failed, .status.lost, .status.interrupted { background: #fbd9d9; color: #9b1c1c; }
.status.partial, .status.running { background: #fff1cc; color: #7a5a00; }
figure { margin: 10px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eef0f2; }
figcaption { color: #56606b; font-size: 12px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 18px; margin: 8px 0; }
dl.facts dt { color: #56606b; } dl.facts dd { margin: 0; }
code { font-size: 12px; }
footer { color: #7b8590; font-size: 12px; text-align: center; padding: 12px; }
"""


def _fmt(value: float | None, digits: int = 2, unit: str = "") -> str:
    return "–" if value is None else f"{value:,.{digits}f}{unit}"


def _status(status: str | None) -> str:
    name = escape(status or "unknown")
    return f'<span class="status {name}">{name}</span>'


def _figure(plots: dict[str, bytes], name: str, caption: str) -> str:
    encoded = base64.b64encode(plots[name]).decode("ascii")
    return (f'<figure><img id="plot-{name}" alt="{escape(caption)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None,
           bad_rows: set[int] | None = None) -> str:
    """An HTML table; cells are already escaped HTML."""
    numeric = numeric or set()
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for index, row in enumerate(rows):
        cells = "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        body.append(f'<tr class="bad">{cells}</tr>' if bad_rows and index in bad_rows else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _section(key: str, body: str) -> str:
    return f'<section id="{key}"><h2>{escape(SECTIONS[key])}</h2>{body}</section>'


def _summary(data: ReportData) -> str:
    run, summary = data.run, data.run.summary
    facts = [("run", f"<code>{escape(run.run_id)}</code>"), ("status", _status(run.status)),
             ("profile", escape(run.profile)), ("mode", escape(run.mode)),
             ("limit", escape(str(run.limit if run.limit is not None else "all"))),
             ("devices", escape(run.devices)), ("started (UTC)", escape(str(run.started_at or "–"))),
             ("finished (UTC)", escape(str(run.finished_at or "–")))]
    if isinstance(summary.get("wall_s"), int | float):
        facts.append(("wall time", f"{summary['wall_s']:.1f} s"))
    if "jobs_total" in summary:
        facts.append(("jobs", escape(f"{summary.get('jobs_completed', 0)} completed, "
                                     f"{summary.get('jobs_reused', 0)} already complete, "
                                     f"{summary.get('jobs_failed', 0)} failed of {summary['jobs_total']}")))
    facts.append(("attempts", escape(f"{len(data.attempts)} ({sum(1 for a in data.attempts if a.attempt > 1)} "
                                     "retries)")))
    if summary.get("training"):
        facts.append(("predictor", escape(str(summary["training"]))))
    if note := contended_attempts_note(summary):
        facts.append(("busy machine", f'<strong>{escape(note)}</strong>'))
    items = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    return _section("summary", f'<dl class="facts">{items}</dl>')


def _leaderboard(data: ReportData, plots: dict[str, bytes]) -> str:
    board = data.board
    if not board.models:
        return _section("leaderboard", '<p class="note">This run has no (model, task) pairs.</p>')
    parts = ['<p class="note">The primary metric of each (model, task), ± its standard error. A score this run '
             "reused from an earlier run shows that run's measurement.</p>"]
    if "leaderboard" in plots:
        parts.append(_figure(plots, "leaderboard", "Primary score per model x task; grey: no score"))
    failed = {(f.model, t) for f in board.failures for t in f.tasks}
    rows = [[escape(model), *("failed" if (model, t) in failed and (model, t) not in board.cells
                              else escape(cell_text(board.cells.get((model, t)))) for t in board.tasks)]
            for model in board.models]
    parts.append(_table(["model", *board.tasks], rows, numeric=set(range(1, len(board.tasks) + 1))))
    metrics = sorted({f"{c.task}: {c.metric} ({c.filter})" for c in board.cells.values()})
    if metrics:
        parts.append(f'<p class="note">Metrics: {escape("; ".join(metrics))}</p>')
    return _section("leaderboard", "".join(parts))


def _gantt(data: ReportData, plots: dict[str, bytes]) -> str:
    if "gantt" not in plots:
        return _section("gantt", '<p class="note">No attempt ran in this run (every job was already complete, '
                                 "or failed before a worker started).</p>")
    return _section("gantt", '<p class="note">When each attempt ran on each device. Attempts that shared a device '
                             "at the same time are drawn on separate rows of that device.</p>"
                    + _figure(plots, "gantt", "Attempts per device over the run"))


def _predictions(data: ReportData, plots: dict[str, bytes]) -> str:
    parts = ['<p class="note">Each job\'s prediction, made before it ran, against what it measured. Runtime is '
             "model load plus evaluation (worker start-up is not predicted); memory is the final attempt's peak. "
             "The stage says which predictor made the prediction: intelligent (rules), hybrid (rules blended "
             "with LightGBM) or adaptive (LightGBM).</p>"]
    if "predictions" in plots:
        parts.append(_figure(plots, "predictions", "Predicted vs measured runtime and peak memory, by stage"))
    else:
        parts.append('<p class="note">No job of this run has both a prediction and a measurement.</p>')
    if data.jobs:
        rows = [[escape(j.model), escape(", ".join(j.tasks)), escape(j.stage or "–"),
                 _fmt(j.predicted_runtime_s, 1), _fmt(j.actual_runtime_s, 1), _fmt(j.predicted_mem_gb),
                 _fmt(j.actual_mem_gb), str(j.attempts), _status(j.status)] for j in data.jobs]
        parts.append(_table(["model", "tasks", "stage", "predicted s", "measured s", "predicted GB",
                             "measured GB", "attempts", "status"], rows, numeric={3, 4, 5, 6, 7},
                            bad_rows={i for i, j in enumerate(data.jobs) if j.status == "failed"}))
    return _section("predictions", "".join(parts))


def _attempts(data: ReportData) -> str:
    parts = []
    failures = data.board.failures
    if failures:
        by_kind: dict[str, int] = {}
        for failure in failures:
            by_kind[failure.error_kind or "unknown"] = by_kind.get(failure.error_kind or "unknown", 0) + 1
        parts.append(f"<p><strong>{len(failures)} failed job{'s' if len(failures) != 1 else ''}</strong> "
                     f"(by cause: {escape(', '.join(f'{k} {n}' for k, n in sorted(by_kind.items())))})</p>")
        rows = [[escape(f.model), escape(", ".join(f.tasks)), escape(f.error_kind), escape(f.error)]
                for f in failures]
        parts.append(_table(["model", "tasks", "cause", "message"], rows, bad_rows=set(range(len(rows)))))
    else:
        parts.append('<p class="note">No job failed.</p>')
    if data.attempts:
        rows = [[escape(a.model), escape(", ".join(a.tasks)), str(a.attempt), escape(str(a.batch_size or "–")),
                 escape(", ".join(a.devices)), _fmt(a.start_s, 1), _fmt(a.runtime_s, 1), _fmt(a.load_s, 1),
                 _fmt(a.peak_mem_gb), _fmt(a.mean_util_pct, 0), _fmt(a.other_cores), _status(a.status),
                 escape(f"{a.error_kind}: {a.error}" if a.error_kind else "")] for a in data.attempts]
        parts.append(f"<p>{len(data.attempts)} attempts (other cores: the machine's cores other work kept busy "
                     "while the attempt ran):</p>")
        parts.append(_table(["model", "tasks", "try", "batch", "device", "start s", "runtime s", "load s",
                             "peak GB", "mean util %", "other cores", "status", "cause"], rows,
                            numeric={2, 3, 5, 6, 7, 8, 9, 10},
                            bad_rows={i for i, a in enumerate(data.attempts) if a.status != "complete"}))
    else:
        parts.append('<p class="note">No attempt ran in this run.</p>')
    return _section("attempts", "".join(parts))


def _resources(data: ReportData, plots: dict[str, bytes]) -> str:
    if "resources" not in plots:
        return _section("resources", '<p class="note">The monitor recorded no samples for this run.</p>')
    kind = "process-tree RSS and CPU %" if all(s.device.startswith("cpu") for s in data.resources) else "NVML"
    return _section("resources", f'<p class="note">{len(data.resources)} monitor samples ({escape(kind)}), '
                                 "about one a second per running attempt.</p>"
                    + _figure(plots, "resources", "Memory and utilisation per device over the run"))


def _side_row(role: str, side: RunSide | None) -> list[str]:
    if side is None:
        return [role, "not in the store", "–", "–", "–", "–", "–", "–", "–"]
    run = side.run
    return [role, f"<code>{escape(run.run_id)}</code>", escape(run.mode), escape(run.devices), _status(run.status),
            _fmt(side.wall_s, 1), str(side.jobs), str(side.attempts), f"{side.failed_jobs} / {side.ooms}"]


def _compare(data: ReportData, plots: dict[str, bytes]) -> str:
    view: CompareView | None = data.compare
    if view is None:
        return _section("compare", '<p class="note">This run was not part of a compare.</p>')
    parts = [f'<p class="note">Compare <code>{escape(view.compare_id)}</code>: the baseline run (the traditional '
             "way) and the optimized run of the same profile.</p>"]
    if view.baseline and view.optimized and (view.baseline.run.profile, view.baseline.run.limit) != (
            view.optimized.run.profile, view.optimized.run.limit):
        parts.append("<p><strong>The two runs differ in profile or limit: their times and scores are not "
                     "comparable.</strong></p>")
    if "compare" in plots:
        parts.append(_figure(plots, "compare", "Wall time of the baseline and the optimized run"))
    rows = [_side_row("baseline", view.baseline), _side_row("optimized", view.optimized)]
    parts.append(_table(["role", "run", "mode", "devices", "status", "wall s", "jobs", "attempts",
                         "failed jobs / OOMs"], rows, numeric={5, 6, 7, 8}))
    if view.speedup is not None:
        parts.append(f"<p><strong>Speed-up: {view.speedup:.2f}x</strong> (baseline wall time / optimized wall "
                     "time, measured in this compare).</p>")
    if view.loads:
        parts.append(f"<p>Cores busy with other work while timed: {escape(busy_with_other_work(view.loads))}.</p>")
    if view.noisy:
        parts.append(f"<p><strong>{escape(BUSY_MACHINE_WARNING)}</strong></p>")
    parity = view.parity
    if parity is not None:
        verdict = ("every score identical" if parity.compared and parity.identical == parity.compared
                   else f"{parity.compared - parity.identical} scores differ (max |Δ| {parity.max_abs_diff:.4g})")
        parts.append(f"<p>Score parity over {parity.compared} (model, task) pairs: {escape(verdict)}.</p>")
        if parity.differing:
            rows = [[escape(m), escape(t), _fmt(b, 4), _fmt(o, 4)] for m, t, b, o in parity.differing]
            parts.append(_table(["model", "task", "baseline", "optimized"], rows, numeric={2, 3},
                                bad_rows=set(range(len(rows)))))
    else:
        parts.append('<p class="note">One side of this compare is not in the store, so nothing can be set side by '
                     "side yet.</p>")
    return _section("compare", "".join(parts))


def to_html(data: ReportData, plots: dict[str, bytes], *, version: str = "") -> str:
    """The whole report as one HTML document.

    Args:
        data: What the store holds about the run.
        plots: PNG bytes by figure name, as `plots.render_plots` returns them.
        version: The SpectraBench version for the footer.
    """
    run = data.run
    nav = "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title in SECTIONS.items())
    sections = [_summary(data), _leaderboard(data, plots), _gantt(data, plots), _predictions(data, plots),
                _attempts(data), _resources(data, plots), _compare(data, plots)]
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = f"SpectraBench · {run.profile} · run {run.run_id}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # An empty inline icon: otherwise the browser asks for /favicon.ico next to the file.
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>{escape(run.mode)} on {escape(run.devices)} · "
        f"{_status(run.status)}</p><nav>{nav}</nav></header>"
        f"<main>{''.join(sections)}</main>"
        f"<footer>Generated by SpectraBench {escape(version)} on {generated}.</footer></body></html>\n"
    )
