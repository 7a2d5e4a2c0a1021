"""The predicted schedule of `plan --gantt` as a PNG: one lane per device (split in rows where jobs share it), one
bar per job, coloured by model."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from spectrabench.errors import UserError
from spectrabench.planning.outlook import PlanOutlook, device_rows


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
    rows = device_rows(outlook.schedule)
    row_count = {device: 1 + max((r for r, slot in zip(rows, outlook.schedule, strict=True)
                                  if slot.device == device), default=0) for device in outlook.devices}
    for index, slot in enumerate(outlook.schedule):
        start, width = slot.start_s / 3600, (slot.end_s - slot.start_s) / 3600
        # Jobs sharing a GPU split its lane: each on a row of its own, so neither hides the other.
        height = 0.8 / row_count[slot.device]
        y = lanes[slot.device] - 0.4 + (rows[index] + 0.5) * height
        ax.barh(y, width, left=start, height=height, color=colours[slot.model], edgecolor="white")
        if width / hours > 0.08:
            ax.text(start + width / 2, y, slot.model, ha="center", va="center", fontsize=7,
                    color="white", clip_on=True)
    bound = "lower bound without GPU sharing" if outlook.shares_gpus else "lower bound"
    ax.axvline(outlook.lower_bound_s / 3600, color="black", linestyle="--", linewidth=1, label=bound)
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

