"""Every bad input gives one line on stderr, exit code 2, no traceback, and nothing written."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, run_cli

TASKS_DIR = str(REPO / "profiles" / "tasks")
BASE: dict[str, Any] = {
    "name": "bad",
    "task_paths": [TASKS_DIR],
    "models": [{"name": "tiny", "builtin": "tiny-llama-4m", "params_b": 0.004, "dtype": "float32"}],
    "tasks": [{"name": "sb_facts", "shots": 0}],
}


def _profile(tmp_path: Path, change: Any = None, text: str | None = None) -> str:
    data = copy.deepcopy(BASE)
    if change is not None:
        change(data)
    path = tmp_path / "bad.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def _assert_user_error(result: Any, data_dir: Path, *needles: str) -> None:
    assert result.code == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("spectrabench: error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not data_dir.exists(), "a rejected command must write nothing"


def _dup_models(d: dict[str, Any]) -> None:
    d["models"].append(dict(d["models"][0]))


def _twin_models(d: dict[str, Any]) -> None:
    d["models"].append({**d["models"][0], "name": "twin"})


def _twin_tasks(d: dict[str, Any]) -> None:
    d["tasks"].append({**d["tasks"][0], "name": "facts_again", "lm_eval_task": d["tasks"][0]["name"]})


def _missing_data(tmp_path: Path) -> str:
    folder = tmp_path / "tasks" / "sb_broken"
    folder.mkdir(parents=True)
    source = REPO / "profiles" / "tasks" / "sb_facts"
    text = (source / "sb_facts.yaml").read_text(encoding="utf-8").replace("task: sb_facts", "task: sb_broken")
    (folder / "sb_broken.yaml").write_text(text, encoding="utf-8")
    (folder / "utils.py").write_text((source / "utils.py").read_text(encoding="utf-8"), encoding="utf-8")
    return _profile(tmp_path, lambda d: d.update(task_paths=[str(tmp_path / "tasks")],
                                                 tasks=[{"name": "sb_broken", "shots": 0}]))


def _group_with_a_stranger(tmp_path: Path) -> str:
    folder = tmp_path / "tasks" / "sb_mixed"
    folder.mkdir(parents=True)
    (folder / "sb_mixed.yaml").write_text("group: sb_mixed\ntask:\n  - sb_facts\n  - sb_nowhere\n", encoding="utf-8")
    return _profile(tmp_path, lambda d: d.update(task_paths=[str(REPO / "profiles" / "tasks"), str(tmp_path / "tasks")],
                                                 tasks=[{"name": "sb_mixed", "shots": 0}]))


CASES: list[tuple[str, Any, list[str], tuple[str, ...]]] = [
    ("local group with a stranger", _group_with_a_stranger, [], ("local group 'sb_mixed' lists 'sb_nowhere'",
                                                                 "lm_eval_task")),
    ("malformed yaml", lambda p: _profile(p, text="models: [\n  - name: x\n tasks: {"), [], ("not valid YAML",)),
    ("not a mapping", lambda p: _profile(p, text="- just\n- a list\n"), [], ("must be a mapping",)),
    ("unknown top-level key", lambda p: _profile(p, lambda d: d.update(modles=[])), [], ("modles", "models")),
    ("unknown model field", lambda p: _profile(p, lambda d: d["models"][0].update(param_b=1)), [],
     ("param_b", "params_b")),
    ("unknown task field", lambda p: _profile(p, lambda d: d["tasks"][0].update(shot=1)), [], ("shot", "shots")),
    ("duplicate model names", lambda p: _profile(p, _dup_models), [], ("duplicate model name 'tiny'",)),
    ("one model under two names", lambda p: _profile(p, _twin_models), [],
     ("models 'tiny' and 'twin' are one measurement", "list it once")),
    ("one task under two names", lambda p: _profile(p, _twin_tasks), [],
     ("tasks 'sb_facts' and 'facts_again' are one measurement",)),
    ("negative shots", lambda p: _profile(p, lambda d: d["tasks"][0].update(shots=-1)), [], ("shots",)),
    ("both weight sources", lambda p: _profile(p, lambda d: d["models"][0].update(pretrained="org/x")), [],
     ("exactly one",)),
    ("unknown task name", lambda p: _profile(p, lambda d: d["tasks"][0].update(name="hellaswagg")), [],
     ("hellaswagg", "did you mean 'hellaswag'")),
    ("unknown builtin model", lambda p: _profile(p, lambda d: d["models"][0].update(builtin="tiny-llama-5m")), [],
     ("tiny-llama-5m", "did you mean")),
    ("missing local model path", lambda p: _profile(p, lambda d: d["models"][0].update(
        builtin=None, pretrained="./no/such/model")), [], ("missing local folder",)),
    ("missing task data file", _missing_data, [], ("missing its data file",)),
    ("code execution not allowed", lambda p: _profile(p, lambda d: d.update(
        tasks=[{"name": "sb_humaneval", "shots": 0}])), [], ("allow_code_execution",)),
    ("limit zero", lambda p: _profile(p), ["--limit", "0"], ("--limit must be positive",)),
    ("limit negative", lambda p: _profile(p), ["--limit", "-3"], ("--limit must be positive",)),
    ("limit zero in profile", lambda p: _profile(p, lambda d: d.update(limit=0)), [], ("limit",)),
    ("batch size zero", lambda p: _profile(p), ["--batch-size", "0"], ("--batch-size",)),
    ("unknown mode", lambda p: _profile(p), ["--mode", "baseln"], ("did you mean 'baseline'",)),
    ("unknown option", lambda p: _profile(p), ["--limt", "2"], ("--limt",)),
    ("empty models", lambda p: _profile(p, lambda d: d.update(models=[])), [], ("models",)),
    ("zero cpu slots", lambda p: _profile(p), ["--devices", "cpu:0"], ("cpu:0",)),
    ("unknown device kind", lambda p: _profile(p), ["--devices", "tpu:1"], ("tpu", "did you mean")),
    ("gpu that is not there", lambda p: _profile(p), ["--devices", "cuda:99"], ("cuda:99",)),
    ("negative retries", lambda p: _profile(p), ["--max-retries", "-1"], ("--max-retries",)),
    ("zero job timeout", lambda p: _profile(p), ["--job-timeout", "0"], ("--job-timeout",)),
    ("unknown sampling", lambda p: _profile(p), ["--sampling", "randon"], ("did you mean 'random'",)),
    ("random sampling without a limit", lambda p: _profile(p, lambda d: d.pop("limit", None)),
     ["--sampling", "random"], ("needs --limit",)),
    ("negative sampling seed", lambda p: _profile(p), ["--limit", "2", "--sampling", "random", "--seed", "-1"],
     ("--seed",)),
]


@pytest.mark.parametrize(("make_profile", "extra", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_profile_or_option(tmp_path: Path, data_dir: Path, make_profile: Any, extra: list[str],
                               needles: tuple[str, ...]) -> None:
    result = run_cli("run", "--profile", make_profile(tmp_path), *extra)
    _assert_user_error(result, data_dir, *needles)


def test_unknown_profile_name_suggests(data_dir: Path) -> None:
    _assert_user_error(run_cli("run", "--profile", "smokee"), data_dir, "profile 'smokee' not found",
                       "did you mean 'smoke'")


def test_missing_profile_file(data_dir: Path) -> None:
    _assert_user_error(run_cli("run", "--profile", "nowhere/p.yaml"), data_dir, "does not exist")


def test_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli("run", "--profile", _profile(tmp_path), env={"SPECTRABENCH_DATA_DIR": str(blocker / "data")})
    assert result.code == 2
    assert result.stderr.count("\n") == 1 and "cannot write to data dir" in result.stderr
    assert blocker.read_text() == "not a folder"


def test_report_without_store(data_dir: Path) -> None:
    _assert_user_error(run_cli("report"), data_dir, "no store")


def test_report_unknown_format(data_dir: Path) -> None:
    _assert_user_error(run_cli("report", "--format", "jsn"), data_dir, "did you mean 'json'")


def test_debug_shows_traceback(tmp_path: Path) -> None:
    result = run_cli("run", "--profile", "smokee", env={"SPECTRABENCH_DEBUG": "1"})
    assert result.code != 0 and "Traceback" in result.stderr


@pytest.mark.parametrize(("variable", "value", "needle"), [
    ("SPECTRABENCH_GPU_MEMORY_LIMIT_GB", "-1", "greater than 0"),
    ("SPECTRABENCH_MEMORY_MARGIN", "2", "less than 1"),
    ("SPECTRABENCH_TIMEOUT_FACTOR", "abc", "valid number"),
])
def test_a_bad_setting_in_the_environment_is_one_line(data_dir: Path, variable: str, value: str,
                                                      needle: str) -> None:
    result = run_cli("plan", "--profile", "smoke", env={variable: value})
    assert result.code == 2, result.stderr
    assert result.stderr.startswith(f"spectrabench: error: {variable}=") and needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not data_dir.exists()
