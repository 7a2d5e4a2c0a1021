"""Parsing what workers write: lm-eval's layout in, rows out; anything else is bad output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spectrabench.harness.results import BadOutput, parse_scores, read_task_output
from spectrabench.harness.workerspec import task_results_file, task_samples_file

RESULTS = {
    "results": {"arc_easy": {"alias": "arc_easy", "acc,none": 0.5, "acc_stderr,none": 0.1,
                             "acc_norm,none": 0.25, "acc_norm_stderr,none": "N/A"}},
    "n-samples": {"arc_easy": {"original": 2376, "effective": 4}},
    "configs": {}, "versions": {"arc_easy": 1.0}, "n-shot": {"arc_easy": 0}, "config": {},
}


def _write(out: Path, results: object, samples: list[dict[str, object]]) -> None:
    task_results_file(out, "arc_easy").write_text(json.dumps(results))
    task_samples_file(out, "arc_easy").write_text("".join(json.dumps(s) + "\n" for s in samples))


def test_scores_and_samples_are_flattened(tmp_path: Path) -> None:
    samples = [{"task": "arc_easy", "doc_id": i, "metrics": ["acc", "acc_norm"], "acc": float(i % 2),
                "acc_norm": 0.0, "filter": "none"} for i in range(4)]
    _write(tmp_path, RESULTS, samples)
    output = read_task_output(tmp_path, "arc_easy")
    acc = next(s for s in output.scores if s.metric == "acc")
    assert (acc.value, acc.stderr, acc.n_samples, acc.filter) == (0.5, 0.1, 4, "none")
    norm = next(s for s in output.scores if s.metric == "acc_norm")
    assert norm.stderr is None
    assert output.n_samples == 4 and len(output.samples) == 8


def test_stderr_keys_are_not_metrics() -> None:
    assert {s.metric for s in parse_scores(RESULTS)} == {"acc", "acc_norm"}


@pytest.mark.parametrize("content", ["{not json", "[]", json.dumps({"results": {"t": {"alias": "t"}}})])
def test_corrupt_results_are_bad_output(tmp_path: Path, content: str) -> None:
    task_results_file(tmp_path, "arc_easy").write_text(content)
    task_samples_file(tmp_path, "arc_easy").write_text("")
    with pytest.raises(BadOutput):
        read_task_output(tmp_path, "arc_easy")


def test_missing_files_are_bad_output(tmp_path: Path) -> None:
    with pytest.raises(BadOutput, match="missing"):
        read_task_output(tmp_path, "arc_easy")
    task_results_file(tmp_path, "arc_easy").write_text(json.dumps(RESULTS))
    with pytest.raises(BadOutput, match="samples file missing"):
        read_task_output(tmp_path, "arc_easy")
