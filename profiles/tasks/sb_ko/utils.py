"""lm-eval hooks for sb_ko: read the jsonl next to this file (any cwd, never the hub)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

try:
    from spectrabench.harness.taskdata import load_jsonl_splits
except ModuleNotFoundError as exc:
    # Plain lm-eval tooling run from a checkout where spectrabench is not installed: use the checkout.
    if not (exc.name or "").startswith("spectrabench"):
        raise
    sys.path.insert(0, str(HERE.parents[2]))
    from spectrabench.harness.taskdata import load_jsonl_splits


def load(data_files: dict[str, str] | None = None, package_files: dict[str, str] | None = None,
         **_metadata: Any) -> Any:
    """The task's `custom_dataset`: lm-eval calls it with the yaml's metadata and dataset_kwargs."""
    return load_jsonl_splits(HERE, data_files, package_files)
