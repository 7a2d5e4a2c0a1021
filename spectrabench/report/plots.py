"""The report's figures as PNG bytes (matplotlib, no display: Figure objects are drawn straight to PNG)."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

from spectrabench.report.data import CompareView, ReportData
from spectrabench.store.report_queries import AttemptRow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Stages in the order a predictor grows through them, each with a fixed colour so that figures agree.
STAGE_COLOURS = {"intelligent": "#1f77b4", "hybrid": "#ff7f0e", "adaptive": "#2ca02c"}
_OTHER_STAGE = "#7f7f7f"
_FAILED_EDGE = "#d62728"


def render_plots(data: ReportData) -> dict[str, bytes]:
    """Every figure the run has data for, by file stem, in the order the report shows them.

    A figure whose data is absent (no resource samples, no predictions, no comparison) is left out; the HTML says
    why in its place.
    """
    figures = {"leaderboard": leaderboard_figure(data), "gantt": gantt_figure(data.attempts),
               "predictions": predictions_figure(data), "resources": resources_figure(data),
               "compare": compare_figure(data.compare)}
    return {name: _png(fig) for name, fig in figures.items() if fig is not None}


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # The constrained layout already fits labels and legends; bbox_inches="tight" would draw everything twice.
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _new_figure(width: float, height: float, **subplots: Any) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(**subplots)


def leaderboard_figure(data: ReportData) -> Figure | None:
    """Heatmap of each (model, task)'s primary score, annotated with value and stderr; failed pairs marked."""
    import matplotlib
    import numpy as np

    board = data.board
    if not board.models or not board.tasks:
        return None
    failed = {(f.model, t) for f in board.failures for t in f.tasks}
    grid = np.full((len(board.models), len(board.tasks)), np.nan)
    for (model, task), score in board.cells.items():
        if model in board.models and task in board.tasks:
            grid[board.models.index(model), board.tasks.index(task)] = score.value
    # Wide profiles (22 x 21) must still fit a page: cells shrink, text with them.
    cell_w = min(1.5, 18 / len(board.tasks))
    cell_h = min(0.65, 12 / len(board.models))
    fig, ax = _new_figure(2.5 + cell_w * len(board.tasks), 1.4 + cell_h * len(board.models))
    finite = grid[np.isfinite(grid)]
    vmax = max(1.0, float(finite.max())) if finite.size else 1.0
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#e8e8e8")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=vmax, aspect="auto")
    fig.colorbar(image, ax=ax, label="score", shrink=0.9)
    font = 8 if cell_w >= 1.0 else 6
    for row, model in enumerate(board.models):
        for col, task in enumerate(board.tasks):
            entry = board.cells.get((model, task))
            if entry is None:
                text, colour = ("failed" if (model, task) in failed else "–"), "#b00000"
            else:
                stderr = f"\n±{entry.stderr:.3f}" if entry.stderr is not None else ""
                text = f"{entry.value:.3f}{stderr}"
                colour = "black" if entry.value / vmax > 0.6 else "white"
            ax.text(col, row, text, ha="center", va="center", fontsize=font, color=colour)
    ax.set_xticks(range(len(board.tasks)), board.tasks, rotation=30, ha="right")
    ax.set_yticks(range(len(board.models)), board.models)
    ax.set_title("Primary score per model x task (± stderr)")
    return fig


def _lanes(attempts: list[AttemptRow]) -> dict[str, list[list[AttemptRow]]]:
    """Per device, attempts packed into rows so that attempts sharing the device at once do not overlap."""
    lanes: dict[str, list[list[AttemptRow]]] = {}
    for attempt in sorted(attempts, key=lambda a: a.start_s or 0.0):
        for device in attempt.devices or ["?"]:
            rows = lanes.setdefault(device, [])
            for row in rows:
                if (row[-1].end_s or math.inf) <= (attempt.start_s or 0.0):
                    row.append(attempt)
                    break
            else:
                rows.append([attempt])
    return dict(sorted(lanes.items()))


# Roughly how much of the Gantt's width one character of a 7 pt label takes (axes about 9.5 in wide).
_CHAR_FRACTION = 4.2 / (9.5 * 72)


def _bar_label(attempt: AttemptRow, width_fraction: float) -> str:
    """The longest of a few labels that fits in a bar of this width; none for a sliver (the legend names models)."""
    tasks = ", ".join(attempt.tasks) if len(attempt.tasks) <= 2 else f"{len(attempt.tasks)} tasks"
    retry = f" (try {attempt.attempt})" if attempt.attempt > 1 else ""
    candidates = [f"{attempt.model} · {tasks}{retry}", f"{attempt.model}{retry}", f"{tasks}{retry}"]
    if retry:
        candidates.append(f"try {attempt.attempt}")
    for label in candidates:
        if (len(label) + 2) * _CHAR_FRACTION <= width_fraction:
            return label
    return ""


def gantt_figure(attempts: list[AttemptRow]) -> Figure | None:
    """What ran on which device when: one bar per attempt, coloured by model, failed attempts hatched in red."""
    from matplotlib.patches import Patch

    timed = [a for a in attempts if a.start_s is not None]
    if not timed:
        return None
    horizon = max(a.end_s if a.end_s is not None else a.start_s + (a.runtime_s or 0.0) for a in timed)  # type: ignore[operator]
    models = list(dict.fromkeys(a.model for a in timed))
    colours = {m: f"C{i % 10}" for i, m in enumerate(models)}
    lanes = _lanes(timed)
    n_rows = sum(len(rows) for rows in lanes.values())
    fig, ax = _new_figure(11, 1.3 + 0.55 * n_rows)
    y = 0.0
    ticks: list[float] = []
    for rows in lanes.values():
        ticks.append(y + (len(rows) - 1) / 2)
        for row in rows:
            for a in row:
                start = float(a.start_s or 0.0)
                end = a.end_s if a.end_s is not None else horizon
                failed = a.status != "complete"
                ax.barh(y, end - start, left=start, height=0.8, color=colours[a.model], alpha=0.85,
                        hatch="//" if failed else None, edgecolor=_FAILED_EDGE if failed else "white")
                label = _bar_label(a, (end - start) / horizon if horizon > 0 else 1.0)
                if label:
                    ax.text(start + (end - start) / 2, y, label, ha="center", va="center", fontsize=7,
                            color="white", clip_on=True)
            y += 1
    ax.set_yticks(ticks, list(lanes))
    ax.invert_yaxis()
    ax.set_xlim(0, horizon * 1.02 if horizon > 0 else 1)
    ax.set_xlabel("seconds since the run started")
    ax.set_title("Attempts per device")
    handles = [Patch(color=colours[m], label=m) for m in models]
    if any(a.status != "complete" for a in timed):
        handles.append(Patch(facecolor="white", edgecolor=_FAILED_EDGE, hatch="//", label="failed attempt"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), fontsize=8, frameon=False)
    return fig


def _scatter(ax: Any, points: list[tuple[float, float, str, str]], what: str, unit: str) -> None:
    if not points:
        ax.text(0.5, 0.5, f"no job has both a predicted and a measured {what}", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return
    for stage in dict.fromkeys(p[2] for p in points):
        xs = [p[0] for p in points if p[2] == stage]
        ys = [p[1] for p in points if p[2] == stage]
        ax.scatter(xs, ys, s=40, color=STAGE_COLOURS.get(stage, _OTHER_STAGE), label=f"stage: {stage}",
                   edgecolor="black", linewidth=0.5, zorder=3)
    values = [v for p in points for v in p[:2] if v > 0]
    low, high = min(values), max(values)
    # Spread over more than a decade (many models, GPU vs CPU) reads better on log axes.
    if high / low > 20:
        ax.set_xscale("log")
        ax.set_yscale("log")
        low, high = low / 1.5, high * 1.5
    else:
        pad = (high - low) * 0.15 or high * 0.15
        low, high = max(0.0, low - pad), high + pad
    ax.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=1, label="prediction = actual")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    if len(points) <= 12:
        for x, yv, _, label in points:
            ax.annotate(label, (x, yv), textcoords="offset points", xytext=(5, 4), fontsize=7)
    errors = [abs(x - yv) / yv for x, yv, _, _ in points if yv > 0]
    median = sorted(errors)[len(errors) // 2] if errors else float("nan")
    ax.set_title(f"{what}: median error {median:.0%} over {len(points)} jobs", fontsize=10)
    ax.set_xlabel(f"predicted {what} ({unit})")
    ax.set_ylabel(f"measured {what} ({unit})")
    ax.legend(fontsize=8, loc="best")


def predictions_figure(data: ReportData) -> Figure | None:
    """Predicted vs measured runtime and peak memory per job, coloured by the stage that made the prediction."""
    runtime = [(j.predicted_runtime_s, j.actual_runtime_s, j.stage or "unknown", j.model) for j in data.jobs
               if j.predicted_runtime_s is not None and j.actual_runtime_s is not None]
    memory = [(j.predicted_mem_gb, j.actual_mem_gb, j.stage or "unknown", j.model) for j in data.jobs
              if j.predicted_mem_gb is not None and j.actual_mem_gb is not None]
    if not runtime and not memory:
        return None
    fig, (left, right) = _new_figure(11, 4.8, ncols=2)
    _scatter(left, runtime, "runtime", "s")
    _scatter(right, memory, "peak memory", "GB")
    return fig


def resources_figure(data: ReportData) -> Figure | None:
    """Memory and utilisation of each device over the run, one line per attempt, coloured by device."""
    samples = data.resources
    if not samples:
        return None
    devices = sorted({s.device for s in samples})
    colours = {d: f"C{i % 10}" for i, d in enumerate(devices)}
    fig, (mem_ax, util_ax) = _new_figure(11, 5.5, nrows=2, sharex=True)
    series: dict[tuple[str, str, int], list[Any]] = {}
    for sample in samples:
        series.setdefault((sample.device, sample.job_key, sample.attempt), []).append(sample)
    labelled: set[str] = set()
    for (device, _, _), points in series.items():
        label = device if device not in labelled else None
        labelled.add(device)
        ts = [p.t_s for p in points]
        mem_ax.plot(ts, [p.mem_gb if p.mem_gb is not None else math.nan for p in points], color=colours[device],
                    linewidth=1.2, label=label)
        util_ax.plot(ts, [p.util_pct if p.util_pct is not None else math.nan for p in points],
                     color=colours[device], linewidth=1.2)
    mem_ax.set_ylabel("memory (GB)")
    util_ax.set_ylabel("utilisation (%)")
    util_ax.set_xlabel("seconds since the run started")
    mem_ax.set_title("Device memory and utilisation (one line per attempt)")
    mem_ax.legend(fontsize=8, loc="upper right")
    for ax in (mem_ax, util_ax):
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    return fig


def compare_figure(compare: CompareView | None) -> Figure | None:
    """Wall time of the baseline and the optimized run side by side, with the speed-up."""
    if compare is None or compare.baseline is None or compare.optimized is None:
        return None
    sides = [("baseline", compare.baseline), ("optimized", compare.optimized)]
    if any(side.wall_s is None for _, side in sides):
        return None
    fig, ax = _new_figure(8, 2.4)
    labels = [f"{name}\n({side.run.mode}, {side.run.devices})" for name, side in sides]
    values = [float(side.wall_s or 0.0) for _, side in sides]
    bars = ax.barh(labels, values, color=["#9e9e9e", "#2ca02c"])
    for bar, value in zip(bars, values, strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value:.1f} s", va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, max(values) * 1.18 or 1)
    ax.set_xlabel("wall time (s)")
    speedup = f"{compare.speedup:.2f}x" if compare.speedup else "n/a"
    ax.set_title(f"Baseline vs optimized: speed-up {speedup}")
    return fig
