"""The predicted schedule of `plan --gantt` as a PNG: one lane per device, one bar per job, coloured by model."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from spectrabench.errors import UserError
from spectrabench.planning.outlook import PlanOutlook


def write_plan_gantt(outlook: PlanOutlook, path: Path, *, title: str) -> None:
    """Draw the schedule to `path` (written whole, or not at all).

    Raises:
        UserError: The file cannot be written.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    lanes = {device: index for index, device in enumerate(outlook.devices)}
    models = list(dict.fromkeys(slot.model for slot in outlook.schedule))
    palette = matplotlib.colormaps["tab20"]
    colours = {model: palette(index % 20) for index, model in enumerate(models)}
    hours = max(outlook.makespan_s / 3600, 1e-9)
    fig = Figure(figsize=(11, 1.4 + 0.45 * len(lanes)), layout="constrained")
    ax = fig.subplots()
    for slot in outlook.schedule:
        start, width = slot.start_s / 3600, (slot.end_s - slot.start_s) / 3600
        ax.barh(lanes[slot.device], width, left=start, height=0.8, color=colours[slot.model], edgecolor="white")
        if width / hours > 0.08:
            ax.text(start + width / 2, lanes[slot.device], slot.model, ha="center", va="center", fontsize=7,
                    color="white", clip_on=True)
    ax.axvline(outlook.lower_bound_s / 3600, color="black", linestyle="--", linewidth=1, label="lower bound")
    ax.set_yticks(list(lanes.values()), list(lanes))
    ax.invert_yaxis()
    ax.set_xlabel("hours from start (predicted)")
    ax.set_title(f"{title}: makespan {outlook.makespan_s / 3600:.2f} h, {outlook.speedup:.2f}x over sequential")
    ax.legend(loc="lower right", fontsize=7)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".png.tmp")
        os.close(handle)
        fig.savefig(temporary, format="png", dpi=110)
        os.replace(temporary, path)
    except OSError as exc:
        raise UserError(f"cannot write --gantt {path}: {exc.strerror or exc}",
                        hint="choose a writable file") from None
