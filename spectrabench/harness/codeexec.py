"""Run model-written code (HumanEval completions) in a throwaway, resource-limited subprocess.

What the child gets: a fresh interpreter in isolated mode (`-I`: no PYTHON* variables, no user site, no script
folder on sys.path), an empty temporary working directory that is deleted afterwards, a minimal environment
(no tokens or other secrets of the parent), no stdin, its own session (so the whole process group can be
killed), and hard limits on address space, CPU time, file size and process count.

This is a guard against accidents (infinite loops, memory bombs, stray files), not a security boundary against
hostile code: run untrusted models' code inside a container or VM as well.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Literal, NamedTuple

Status = Literal["passed", "failed", "timeout", "error"]

_MAX_OUTPUT_BYTES = 16 * 1024 * 1024
_EXTRA_PROCESSES = 32
_DETAIL_CHARS = 500

# Limits are set by the child itself before the program runs, not in a `preexec_fn`: the parent is usually an
# lm-eval process with torch threads alive, and Python documents preexec_fn as able to deadlock there.
_BOOTSTRAP = """\
import resource, runpy, sys
memory, cpu, fsize, nproc = (int(arg) for arg in sys.argv[1:5])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
if nproc > 0:
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
sys.argv = ["program.py"]
runpy.run_path("program.py", run_name="__main__")
"""


class ExecutionResult(NamedTuple):
    """How a program ended.

    Attributes:
        status: passed (exit 0), failed (exited non-zero: an exception, a failed assert),
            timeout (wall-clock or CPU time limit), error (could not be run, or was killed by a signal).
        detail: A short human-readable reason, e.g. the last line of the traceback; empty when passed.
    """

    status: Status
    detail: str


def run_program(program: str, timeout_s: float = 10.0, memory_mb: int = 1024) -> ExecutionResult:
    """Execute a Python program in a sandboxed subprocess and classify how it ended.

    Never raises because of the program: syntax errors, crashes, hangs and memory exhaustion are all
    reported in the result.

    Args:
        program: Python source to run as `__main__`.
        timeout_s: Wall-clock limit; the whole process group is killed when it passes.
        memory_mb: Address-space limit of the child in MiB.

    Returns:
        The status and a short detail.
    """
    try:
        source = program.encode("utf-8")
    except UnicodeEncodeError as exc:
        return ExecutionResult("error", f"program is not valid UTF-8 text: {exc.reason}")
    with tempfile.TemporaryDirectory(prefix="spectrabench-exec-", ignore_cleanup_errors=True) as tmp:
        # The program's cwd is a subfolder, so that it cannot clobber the output files we read afterwards.
        workdir = Path(tmp) / "work"
        workdir.mkdir()
        (workdir / "program.py").write_bytes(source)
        return _execute(workdir, timeout_s, memory_mb)


def check_humaneval(
    prompt: str, completion: str, test: str, entry_point: str, timeout_s: float = 10.0
) -> ExecutionResult:
    """Run a HumanEval problem's tests against a completion, as the reference harness assembles them.

    Args:
        prompt: The problem's prompt (signature and docstring).
        completion: The model's continuation of the prompt.
        test: The problem's `test` field, which defines `check(candidate)`.
        entry_point: The function name that `check` is called with.
        timeout_s: Wall-clock limit for the whole program.

    Returns:
        `passed` when every assert holds.
    """
    program = f"{prompt}{completion}\n\n{test}\n\ncheck({entry_point})\n"
    return run_program(program, timeout_s=timeout_s)


def _execute(workdir: Path, timeout_s: float, memory_mb: int) -> ExecutionResult:
    limits = [
        str(memory_mb * 1024 * 1024),
        str(max(1, math.ceil(timeout_s)) + 1),
        str(_MAX_OUTPUT_BYTES),
        str(_process_limit()),
    ]
    env = {
        "PATH": os.defpath,
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
    }
    stderr_path = workdir.parent / "stderr"
    # Output goes to files, not pipes: a background grandchild holding a pipe open would block the read.
    with (workdir.parent / "stdout").open("wb") as out, stderr_path.open("wb") as err:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-B", "-c", _BOOTSTRAP, *limits],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            return ExecutionResult("error", f"could not start the interpreter: {exc}")
        try:
            returncode: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            # Kill the whole group even after a normal exit, so no background child outlives the sandbox.
            _kill_group(proc.pid)
            proc.wait()
    return _classify(returncode, timeout_s, _tail(stderr_path))


def _classify(returncode: int | None, timeout_s: float, stderr: str) -> ExecutionResult:
    if returncode is None:
        return ExecutionResult("timeout", f"still running after {timeout_s:g} s")
    if returncode == 0:
        return ExecutionResult("passed", "")
    if returncode < 0:
        signum = -returncode
        if signum == signal.SIGXCPU:
            return ExecutionResult("timeout", "CPU time limit exceeded")
        name = signal.Signals(signum).name if signum in signal.valid_signals() else str(signum)
        return ExecutionResult("error", f"killed by {name}" + (f": {stderr}" if stderr else ""))
    return ExecutionResult("failed", stderr or f"exit code {returncode}")


def _tail(path: Path) -> str:
    """The last non-empty line of a (possibly huge) output file, shortened."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 4096))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:_DETAIL_CHARS] if lines else ""


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group may be gone already
        os.killpg(pgid, signal.SIGKILL)


def _process_limit() -> int:
    """RLIMIT_NPROC for the child: what this user already runs plus a small margin (0 = leave unlimited).

    The limit counts every task (process or thread) of the real user id system-wide, so a fixed small number
    would fail on a busy machine; the margin lets the program start a few helpers but stops a fork bomb.
    Root ignores the limit, so it is not set there.
    """
    if os.getuid() == 0:
        return 0
    uid = str(os.getuid())
    tasks = 0
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return 0
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue  # the process ended while we looked
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Uid", "").split()[:1] == [uid]:
            tasks += int(fields.get("Threads", "1").strip() or 1)
    return tasks + _EXTRA_PROCESSES if tasks else 0
