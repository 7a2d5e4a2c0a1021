"""The store migrates forward, refuses a newer schema, keeps tables the design names, and reads what an older
schema wrote."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from spectrabench.errors import UserError
from spectrabench.store.compares import MachineLoad, find_compare, record_compare_run
from spectrabench.store.db import connect
from spectrabench.store.schema import MIGRATIONS, SCHEMA_VERSION, migrate


def test_fresh_store_has_every_table(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    with connect(db) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        version = con.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    assert {"runs", "jobs", "attempts", "scores", "samples", "resources", "predictors", "task_results",
            "run_tasks"} <= tables
    assert version == SCHEMA_VERSION


def test_migration_is_idempotent(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    assert migrate(con) == 0
    assert migrate(con) == SCHEMA_VERSION
    con.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    migrate(con)
    con.execute("INSERT INTO schema_version VALUES (?)", [SCHEMA_VERSION + 1])
    with pytest.raises(UserError, match="newer"):
        migrate(con)
    con.close()


def test_reading_a_missing_store_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no store"), connect(tmp_path / "absent.duckdb", read_only=True):
        pass
    assert not (tmp_path / "absent.duckdb").exists()


def test_a_compare_recorded_before_machine_loads_reads_without_them(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_version (version INTEGER)")
    for version in (1, 2, 3):  # a store written by the release before schema 4
        for statement in MIGRATIONS[version]:
            con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (?)", [version])
    con.execute("INSERT INTO compares VALUES ('c1', 'baseline', 'run-a', now())")
    con.close()
    # Read as it is (a report opens the store read-only), then migrated by the next write.
    assert find_compare(db, "run-a") == ("c1", "run-a", None, {})
    busy = MachineLoad(other_cores=1.2, steal_cores=0.0, cores=2)
    record_compare_run(db, "c1", "optimized", "run-b", busy)
    assert find_compare(db, "run-b") == ("c1", "run-a", "run-b", {"optimized": busy})
    assert busy.noisy and not MachineLoad(other_cores=0.1, steal_cores=0.0, cores=2).noisy
