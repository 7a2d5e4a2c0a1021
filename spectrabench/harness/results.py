"""Read what a worker wrote: lm-eval results files, per-sample records, progress and errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, NamedTuple

from spectrabench.harness.workerspec import ERROR_FILE, PROGRESS_FILE, task_results_file, task_samples_file


class BadOutput(Exception):
    """A results file that is missing, unreadable or not lm-eval's layout."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ScoreRow(NamedTuple):
    """One aggregate metric of one (sub)task."""

    subtask: str
    metric: str
    filter: str
    value: float
    stderr: float | None
    n_samples: int | None


class SampleRow(NamedTuple):
    """One document's value of one metric."""

    subtask: str
    doc_id: int
    metric: str
    filter: str
    value: float


class TaskOutput(NamedTuple):
    """Everything the driver stores for one finished task."""

    results_path: Path
    scores: list[ScoreRow]
    samples: list[SampleRow]
    n_samples: int


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and not math.isnan(float(value)):
        return float(value)
    return None


def parse_scores(results: dict[str, Any]) -> list[ScoreRow]:
    """Flatten lm-eval's `results` section ({subtask: {"acc,none": v, "acc_stderr,none": s}}) into rows."""
    rows: list[ScoreRow] = []
    n_samples = results.get("n-samples", {}) or {}
    sections = dict(results.get("results", {}) or {})
    for group, entry in (results.get("groups", {}) or {}).items():
        sections.setdefault(group, entry)
    for subtask, entry in sections.items():
        count = n_samples.get(subtask, {}).get("effective") if isinstance(n_samples.get(subtask), dict) else None
        for key, raw in entry.items():
            if "," not in key or "_stderr," in key:
                continue
            metric, filter_name = key.split(",", 1)
            value = _as_float(raw)
            if value is None:
                continue
            stderr = _as_float(entry.get(f"{metric}_stderr,{filter_name}"))
            rows.append(ScoreRow(subtask, metric, filter_name, value, stderr, count))
    return rows


def parse_samples(path: Path) -> list[SampleRow]:
    """Per-document metric values from a samples file the worker wrote."""
    rows: list[SampleRow] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            record = json.loads(line)
            for metric in record.get("metrics", []):
                value = _as_float(record.get(metric))
                if value is not None:
                    rows.append(SampleRow(record["task"], int(record["doc_id"]), metric,
                                          str(record.get("filter", "none")), value))
    return rows


def read_task_output(out_dir: Path, task: str) -> TaskOutput:
    """Parse one finished task of an attempt.

    Raises:
        BadOutput: when the results or samples file is missing or corrupt.
    """
    path = task_results_file(out_dir, task)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadOutput(path, "results file missing") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise BadOutput(path, f"results file unreadable ({exc})") from None
    if not isinstance(results, dict) or not isinstance(results.get("results"), dict):
        raise BadOutput(path, "not an lm-eval results file (no 'results' section)")
    scores = parse_scores(results)
    if not scores:
        raise BadOutput(path, "results file holds no numeric metric")
    samples_path = task_samples_file(out_dir, task)
    try:
        samples = parse_samples(samples_path)
    except FileNotFoundError:
        raise BadOutput(samples_path, "samples file missing") from None
    except (OSError, json.JSONDecodeError, KeyError, ValueError) as exc:
        raise BadOutput(samples_path, f"samples file unreadable ({exc})") from None
    n_docs = len({(s.subtask, s.doc_id) for s in samples})
    return TaskOutput(path, scores, samples, n_docs)


def read_json_file(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def read_progress(out_dir: Path) -> dict[str, Any] | None:
    """The worker's progress.json (timings, peak memory, finished tasks), if any."""
    return read_json_file(out_dir / PROGRESS_FILE)


def read_error(out_dir: Path) -> dict[str, Any] | None:
    """The worker's error.json (kind, stage, task, message), if it wrote one."""
    return read_json_file(out_dir / ERROR_FILE)
