"""Fault injection for tests: make a worker attempt fail in a chosen way, through one environment variable.

`SPECTRABENCH_FAULT="oom:batch_gt=2;crash:attempt=1,task=sb_ko"` holds rules `kind[:cond=value,...]` separated by
`;`. Kinds: oom (torch's OutOfMemoryError), crash (the process exits hard), hang (starts a child process, then
sleeps forever), kill (SIGKILL to itself, as the kernel's OOM killer would), corrupt (garbles the task's results
file after writing it), unavailable (a model-load error), slow (sleeps `SLOW_S` seconds, then carries on).
Conditions: attempt=N, task=NAME, model=NAME, batch_gt=N. A rule without `task` fires as the worker starts, before
any heavy import. Only tests set it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

FAULT_ENV = "SPECTRABENCH_FAULT"
KINDS = ("oom", "crash", "hang", "kill", "corrupt", "unavailable", "slow")
SLOW_S = 10.0


class Fault(NamedTuple):
    """One injected failure and when it fires."""

    kind: str
    attempt: int | None = None
    task: str | None = None
    model: str | None = None
    batch_gt: int | None = None

    def applies(self, model: str, attempt: int, task: str | None, batch_size: int) -> bool:
        """Whether this fault fires for this model, attempt, task and batch size."""
        return ((self.attempt is None or self.attempt == attempt)
                and self.task == task
                and (self.model is None or self.model == model)
                and (self.batch_gt is None or batch_size > self.batch_gt))


def parse_faults(text: str) -> list[Fault]:
    """Parse the rules of FAULT_ENV; raises ValueError on a malformed rule."""
    faults = []
    for rule in filter(None, (r.strip() for r in text.split(";"))):
        kind, _, conditions = rule.partition(":")
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind '{kind}'")
        values: dict[str, str] = dict(c.split("=", 1) for c in conditions.split(",") if c)
        faults.append(Fault(kind, int(values["attempt"]) if "attempt" in values else None, values.get("task"),
                            values.get("model"), int(values["batch_gt"]) if "batch_gt" in values else None))
    return faults


def faults_from_env(env: Mapping[str, str]) -> list[Fault]:
    """The faults configured in `env` (none in normal runs)."""
    return parse_faults(env.get(FAULT_ENV, ""))


def _fire(kind: str, where: str, out_dir: Path) -> None:
    if kind == "slow":  # a task far slower than predicted: what tail moves are for
        time.sleep(SLOW_S)
        return
    if kind == "oom":
        import torch

        raise torch.OutOfMemoryError(f"CUDA out of memory (injected {where})")
    if kind == "unavailable":
        raise OSError("injected: model is not a local folder and is not a valid model identifier")
    if kind == "crash":
        os._exit(70)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "hang":
        import subprocess

        child = subprocess.Popen(["sleep", "600"])
        (out_dir / "hang-child.pid").write_text(str(child.pid))
        while True:
            time.sleep(3600)


def at_start(faults: list[Fault], model: str, attempt: int, batch_size: int, out_dir: Path) -> None:
    """Fire the faults without a task, as the worker starts."""
    for fault in faults:
        if fault.kind != "corrupt" and fault.applies(model, attempt, None, batch_size):
            _fire(fault.kind, f"at start, batch size {batch_size}", out_dir)


def before_task(faults: list[Fault], model: str, attempt: int, task: str, batch_size: int, out_dir: Path) -> None:
    """Fire the faults of `task` as it starts."""
    for fault in faults:
        if fault.kind != "corrupt" and fault.applies(model, attempt, task, batch_size):
            _fire(fault.kind, f"at {task}, batch size {batch_size}", out_dir)


def after_task(faults: list[Fault], model: str, attempt: int, task: str, batch_size: int,
               results_file: Path) -> None:
    """Fire the `corrupt` faults of `task` after it wrote its results."""
    for fault in faults:
        if fault.kind == "corrupt" and fault.applies(model, attempt, task, batch_size):
            results_file.write_text("{ this is not json", encoding="utf-8")
