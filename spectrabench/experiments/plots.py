"""Figures of the calibration experiments, drawn from their reports and returned as PNG bytes (written by the
caller, so that a failed drawing leaves no half-written file). matplotlib is imported inside each function."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spectrabench.experiments.limits import LimitReport
    from spectrabench.experiments.thresholds import ThresholdReport


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def convergence_figure(report: LimitReport) -> bytes:
    """Phase 1: per task, each model's 95th-percentile error against the limit, and the models' rank agreement.

    Left: the error that 95% of random subsets stay under (solid) and the mean error (dotted), log-scaled limit,
    with epsilon and the task's recommended limit. Right: mean Kendall tau with its 95% interval.
    """
    plt = _pyplot()
    rows = max(1, len(report.tasks))
    fig, axes = plt.subplots(rows, 2, figsize=(11, 3.4 * rows), squeeze=False, layout="constrained")
    for row, task in zip(axes, report.tasks, strict=False):
        left, right = row
        for pair in task.pairs:
            limits = [p.limit for p in pair.points]
            line, = left.plot(limits, [p.p95_abs_error for p in pair.points], marker="o", ms=3,
                              label=f"{pair.model} (full {pair.full_score:.3f})")
            left.plot(limits, [p.mean_abs_error for p in pair.points], ls=":", color=line.get_color())
        left.axhline(report.epsilon, color="black", lw=0.8, ls="--", label=f"epsilon {report.epsilon:g}")
        if task.recommended is not None:
            left.axvline(task.recommended, color="green", lw=0.8, label=f"recommended {task.recommended}")
        left.set_xscale("log")
        left.set_xlabel(f"limit (documents of {task.documents})")
        left.set_ylabel("|score - full score|")
        left.set_title(f"{task.task} ({task.metric}): 95th pct (solid), mean (dotted)", fontsize=9)
        left.legend(fontsize=7)
        points = [p for p in task.tau if p.mean is not None]
        if points:
            xs = [p.limit for p in points]
            right.plot(xs, [p.mean for p in points], marker="o", ms=3, color="tab:purple", label="mean tau")
            right.fill_between(xs, [p.low for p in points], [p.high for p in points], color="tab:purple",
                               alpha=0.2, label="95% interval")
            right.legend(fontsize=7)
        right.set_xscale("log")
        right.set_ylim(-1.05, 1.05)
        right.set_xlabel("limit")
        right.set_ylabel("Kendall tau vs full ranking")
        right.set_title(f"{task.task}: rank agreement of {len(task.pairs)} models", fontsize=9)
    overall = report.recommended if report.recommended is not None else "all documents"
    fig.suptitle(f"Phase 1: recommended limit {overall} ({report.share:.0%} of pairs within {report.epsilon:g} "
                 f"at 95%, {report.replicates} resamples)", fontsize=10)
    return _png(fig)


def learning_curve_figure(report: ThresholdReport, source: str) -> bytes:
    """Phase 2: per domain, the rules' and the learned predictor's runtime error against comparable records,
    with the chosen `min_learning_data` and `stable_learning_data`."""
    plt = _pyplot()
    cols = max(1, len(report.domains))
    fig, axes = plt.subplots(1, cols, figsize=(5.5 * cols, 3.8), squeeze=False, layout="constrained")
    for ax, domain in zip(axes[0], report.domains, strict=False):
        ns = [p.n for p in domain.curve]
        ax.plot(ns, [p.rules_error for p in domain.curve], marker="o", ms=3, label="rules")
        ax.plot(ns, [p.learned_error for p in domain.curve], marker="o", ms=3, label="learned (LightGBM)")
        if domain.min_learning_data is not None:
            ax.axvline(domain.min_learning_data, color="tab:green", ls="--", lw=0.9,
                       label=f"min_learning_data {domain.min_learning_data}")
        if domain.stable_learning_data is not None:
            ax.axvline(domain.stable_learning_data, color="tab:red", ls="--", lw=0.9,
                       label=f"stable_learning_data {domain.stable_learning_data}")
        ax.set_xlabel("comparable records trained on")
        ax.set_ylabel(f"mean |log(pred / real)| runtime, next {domain.window}")
        ax.set_title(f"{domain.label} ({domain.records} records)", fontsize=9)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    fig.suptitle(f"Phase 2: learning curves on {source}", fontsize=10)
    return _png(fig)
