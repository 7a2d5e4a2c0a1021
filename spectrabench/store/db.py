"""Opening the DuckDB file. Connections are short-lived so that reports can read while a run writes between jobs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from spectrabench.errors import UserError
from spectrabench.store.schema import migrate

_migrated: set[Path] = set()


def _connect_with_retry(path: Path, read_only: bool) -> Any:
    import duckdb

    # Another process (the driver between two writes, or a report) may hold the file for a moment.
    delay = 0.05
    for attempt in range(40):
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or attempt == 39:
                raise UserError(f"cannot open the store {path}: {str(exc).splitlines()[0]}",
                                hint="is another spectrabench process using this data dir?") from None
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
    raise AssertionError("unreachable")


@contextmanager
def connect(path: Path, *, read_only: bool = False) -> Iterator[Any]:
    """A DuckDB connection to the store, migrated to the current schema, closed on exit.

    Args:
        path: The DuckDB file; created (with its folder) when writing and absent.
        read_only: Open for reading only; the file must exist.
    """
    if read_only and not path.exists():
        raise UserError(f"no store at {path}", hint="run `spectrabench run --profile smoke` first, "
                        "or set SPECTRABENCH_DATA_DIR to the folder of an earlier run")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect_with_retry(path, read_only)
    try:
        if not read_only and path.resolve() not in _migrated:
            migrate(con)
            _migrated.add(path.resolve())
        yield con
    finally:
        con.close()


def has_column(con: Any, table: str, column: str) -> bool:
    """Whether `table` has `column`: a store written before the schema version that added it, opened read-only
    (reports never migrate), lacks it."""
    row = con.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = ? AND column_name = ?",
                      [table, column]).fetchone()
    return bool(row and row[0])
