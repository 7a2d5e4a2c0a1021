"""The cheap local-task index agrees with the task folders and with what lm-eval will load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from spectrabench.errors import UserError
from spectrabench.harness.localtasks import count_documents, index_local_tasks, missing_data_files
from spectrabench.harness.taskdata import load_jsonl_splits

TASKS = Path(__file__).resolve().parents[2] / "profiles" / "tasks"

# The smoke tasks' contract: request type and the least number of scored documents.
EXPECTED = {
    "sb_facts": ("multiple_choice", 200),
    "sb_arith": ("generate_until", 300),
    "sb_ko": ("multiple_choice", 120),
    "sb_humaneval": ("generate_until", 164),
}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_index_finds_the_smoke_tasks() -> None:
    index = index_local_tasks([TASKS])
    assert set(EXPECTED) <= set(index)
    for name, (output_type, least_docs) in EXPECTED.items():
        task = index[name]
        assert task.output_type == output_type, name
        assert task.unsafe_code == (name == "sb_humaneval"), name
        assert task.test_split == "test"
        assert task.yaml_path == TASKS / name / f"{name}.yaml"
        assert all(path.is_absolute() for path in task.data_files.values())
        assert missing_data_files(task) == []
        count = count_documents(task)
        assert count is not None and count >= least_docs, (name, count)
    assert count_documents(index["sb_humaneval"]) == 164


def test_counts_match_what_the_loader_builds() -> None:
    index = index_local_tasks([TASKS])
    for name in ("sb_facts", "sb_arith", "sb_ko"):
        task = index[name]
        splits = load_jsonl_splits(task.yaml_path.parent, {s: p.name for s, p in task.data_files.items()})
        assert len(splits["test"]) == count_documents(task)
        assert len(splits["train"]) >= 10


def test_missing_data_file_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "tasks" / "mine"
    _write(folder / "mine.yaml", (
        "task: mine\n"
        "custom_dataset: !function utils.load\n"
        "dataset_kwargs:\n"
        "  data_files:\n"
        "    test: test.jsonl\n"
        "    train: train.jsonl\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
    ))
    _write(folder / "test.jsonl", '{"q": 1}\n{"q": 2}\n\n{"q": 3}\n')
    task = index_local_tasks([tmp_path / "tasks"])["mine"]
    assert missing_data_files(task) == [folder / "train.jsonl"]
    assert count_documents(task) == 3
    (folder / "test.jsonl").unlink()
    assert missing_data_files(task) == [folder / "test.jsonl", folder / "train.jsonl"]
    assert count_documents(task) is None


def test_package_file_of_a_missing_package_is_reported(tmp_path: Path) -> None:
    _write(tmp_path / "t.yaml", (
        "task: pkg\n"
        "dataset_kwargs:\n"
        "  package_files:\n"
        "    test: no_such_package_xyz/data/x.jsonl\n"
        "test_split: test\n"
    ))
    task = index_local_tasks([tmp_path])["pkg"]
    assert missing_data_files(task) == [Path("no_such_package_xyz/data/x.jsonl")]
    assert count_documents(task) is None


def test_loader_tolerates_lm_eval_yaml(tmp_path: Path) -> None:
    _write(tmp_path / "_base.yaml", (
        "output_type: loglikelihood\n"
        "validation_split: validation\n"
        "process_results: !function utils.process_results\n"
        "dataset_kwargs: {data_files: {validation: val.jsonl}}\n"
    ))
    _write(tmp_path / "_extra.yaml", "metadata: {version: 2.0}\nunsafe_code: true\n")
    _write(tmp_path / "child.yaml", "include: [_base.yaml, _extra.yaml]\ntask: child\nunsafe_code: false\n")
    _write(tmp_path / "group.yaml", "group: g\ntask:\n  - child\n")
    _write(tmp_path / "broken.yaml", "task: [unclosed\n")
    _write(tmp_path / "val.jsonl", '{"a": 1}\n')
    index = index_local_tasks([tmp_path])
    assert set(index) == {"child"}
    child = index["child"]
    assert child.output_type == "loglikelihood"
    assert child.test_split == "validation"
    assert child.unsafe_code is False  # the including file wins over what it includes
    assert count_documents(child) == 1


def test_duplicate_task_names_are_a_user_error(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "x.yaml", "task: same\n")
    _write(tmp_path / "b" / "y.yaml", "task: same\n")
    with pytest.raises(UserError, match="defined twice"):
        index_local_tasks([tmp_path])


def test_index_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from spectrabench.harness.localtasks import index_local_tasks, count_documents\n"
        f"index = index_local_tasks([Path({str(TASKS)!r})])\n"
        "assert count_documents(index['sb_humaneval']) == 164\n"
        "heavy = sorted(m for m in ('lm_eval', 'datasets', 'torch', 'transformers') if m in sys.modules)\n"
        "sys.exit(f'imported {heavy}' if heavy else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=TASKS.parents[1])
    assert proc.returncode == 0, proc.stderr
