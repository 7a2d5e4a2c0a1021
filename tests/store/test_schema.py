"""The store migrates forward, refuses a newer schema, keeps tables the design names, and reads what an older
schema wrote."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from spectrabench.errors import UserError
from spectrabench.store.compares import find_compare, record_compare_run
from spectrabench.store.db import connect
from spectrabench.store.machineload import MachineLoad
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


def test_history_written_before_attempts_were_measured_is_learned_from_as_before(tmp_path: Path) -> None:
    from spectrabench.store.learning import load_history, timings_left_out
    from tests.prediction import synthetic_history

    db = tmp_path / "s.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_version (version INTEGER)")
    for version in (1, 2, 3, 4):  # a store written by the release before schema 5
        for statement in MIGRATIONS[version]:
            con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (?)", [version])
    record = synthetic_history(1)[0]
    con.execute("INSERT INTO attempts (job_key, run_id, attempt, status, load_s, peak_mem_gb) "
                "VALUES ('j', 'r', 1, 'complete', ?, ?)", [record.load_s, record.peak_mem_gb])
    con.execute("INSERT INTO task_results (task_key, run_id, job_key, attempt, model, task, runtime_s, finished_at, "
                "features) VALUES ('t', 'r', 'j', 1, ?, ?, ?, to_timestamp(?), ?)",
                [record.model, record.task, record.runtime_s, record.finished_at, record.features.model_dump_json()])
    con.close()
    assert [r.runtime_s for r in load_history(db)] == [record.runtime_s]
    assert timings_left_out(db) == 0
