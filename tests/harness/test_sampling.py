"""Random nested samples: `run --limit N --sampling random` scores a seeded, nested subset of each task."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml

from spectrabench.harness.sampling import nested_sample
from tests.conftest import REPO, run_cli


def test_samples_nest_across_limits_and_follow_the_seed() -> None:
    small, large = nested_sample(236, 5, 0, "sb_facts"), nested_sample(236, 50, 0, "sb_facts")
    assert large[:5] == small and len(set(large)) == 50 and all(0 <= i < 236 for i in large)
    assert nested_sample(236, 5, 0, "sb_facts") == small, "the same seed draws the same documents"
    assert nested_sample(236, 5, 1, "sb_facts") != small
    assert nested_sample(236, 5, 0, "sb_ko") != small, "tasks are not permuted alike"
    assert sorted(nested_sample(7, 100, 3, "t")) == list(range(7)), "a limit past the documents takes them all"


@pytest.mark.slow
def test_a_random_run_scores_nested_samples_and_says_so(tmp_path: Path, data_dir: Path) -> None:
    profile = tmp_path / "sample.yaml"
    profile.write_text(yaml.safe_dump({
        "name": "sample", "limit": 3, "batch_size": 4, "task_paths": [str(REPO / "profiles" / "tasks")],
        "models": [{"name": "tiny", "builtin": "tiny-llama-4m", "params_b": 0.004, "dtype": "float32"}],
        "tasks": [{"name": "sb_facts", "shots": 0}]}))
    for limit in ("3", "6"):
        result = run_cli("run", "--profile", str(profile), "--limit", limit, "--sampling", "random", "--seed", "7",
                         "--json")
        assert result.code == 0, result.stderr[-3000:]
    con = duckdb.connect(str(data_dir / "spectrabench.duckdb"), read_only=True)
    try:
        runs = con.execute("SELECT run_id, sampling FROM runs ORDER BY started_at").fetchall()
        docs = {run: sorted(d for (d,) in con.execute("SELECT DISTINCT doc_id FROM samples WHERE run_id = ?",
                                                        [run]).fetchall()) for run, _ in runs}
    finally:
        con.close()
    assert [s for _, s in runs] == ["random:7", "random:7"]
    three, six = (docs[run] for run, _ in runs)
    assert len(three) == 3 and len(six) == 6 and set(three) < set(six), "the smaller sample nests in the larger"
    assert three == sorted(nested_sample(236, 3, 7, "sb_facts"))
    assert three != [0, 1, 2], "not lm-eval's first documents"
    # Each stored doc id is the document's index in the dataset: the worker's records hold the same document.
    dataset = [json.loads(line) for line in (REPO / "profiles/tasks/sb_facts/test.jsonl").read_text().splitlines()]
    records = [json.loads(line) for path in data_dir.rglob("sb_facts.samples.jsonl")
               for line in path.read_text().splitlines()]
    assert records and all(r["doc"]["id"] == dataset[r["doc_id"]]["id"] for r in records)
