"""The store's tables, versioned. Each migration moves the schema one version forward, inside a transaction."""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 5

_V1 = [
    """CREATE TABLE runs (
        run_id VARCHAR PRIMARY KEY, profile VARCHAR, mode VARCHAR, "limit" INTEGER, devices VARCHAR,
        backend VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, status VARCHAR,
        settings JSON, versions JSON, summary JSON)""",
    """CREATE TABLE jobs (
        job_key VARCHAR, run_id VARCHAR, model VARCHAR, tasks JSON, "limit" INTEGER, shots JSON,
        batch_size INTEGER, devices VARCHAR, predicted_runtime_s DOUBLE, predicted_mem_gb DOUBLE,
        predicted_stage VARCHAR, status VARCHAR, error_kind VARCHAR, error VARCHAR,
        PRIMARY KEY (job_key, run_id))""",
    """CREATE TABLE attempts (
        job_key VARCHAR, run_id VARCHAR, attempt INTEGER, batch_size INTEGER, tasks JSON,
        started_at TIMESTAMP, finished_at TIMESTAMP, status VARCHAR, runtime_s DOUBLE, load_s DOUBLE,
        provision_s DOUBLE, peak_mem_gb DOUBLE, mean_util_pct DOUBLE, devices VARCHAR, returncode INTEGER,
        error_kind VARCHAR, error VARCHAR, log_path VARCHAR, worker JSON,
        PRIMARY KEY (job_key, run_id, attempt))""",
    """CREATE TABLE run_tasks (
        run_id VARCHAR, task_key VARCHAR, job_key VARCHAR, model VARCHAR, task VARCHAR, status VARCHAR,
        ordinal INTEGER, PRIMARY KEY (run_id, task_key))""",
    """CREATE TABLE task_results (
        task_key VARCHAR, run_id VARCHAR, job_key VARCHAR, attempt INTEGER, model VARCHAR,
        task VARCHAR, harness_task VARCHAR, "limit" INTEGER, shots INTEGER, batch_size INTEGER,
        runtime_s DOUBLE, n_samples INTEGER, results_path VARCHAR, finished_at TIMESTAMP, features JSON,
        PRIMARY KEY (task_key, run_id))""",
    """CREATE TABLE scores (
        task_key VARCHAR, run_id VARCHAR, model VARCHAR, task VARCHAR, subtask VARCHAR, metric VARCHAR,
        filter VARCHAR, value DOUBLE, stderr DOUBLE, n_samples INTEGER)""",
    """CREATE TABLE samples (
        task_key VARCHAR, run_id VARCHAR, model VARCHAR, task VARCHAR, subtask VARCHAR, doc_id INTEGER,
        metric VARCHAR, filter VARCHAR, value DOUBLE)""",
    """CREATE TABLE resources (
        job_key VARCHAR, run_id VARCHAR, attempt INTEGER, t DOUBLE, device VARCHAR, mem_gb DOUBLE,
        util_pct DOUBLE)""",
    """CREATE TABLE predictors (
        version INTEGER, target VARCHAR, trained_at TIMESTAMP, n_records INTEGER, cv_error DOUBLE,
        artifact BLOB, PRIMARY KEY (version, target))""",
]

# Which runs form one baseline-vs-optimized comparison. A table of its own rather than a column of runs: the
# driver inserts runs rows positionally, and a pair is known only once its second run starts.
_V2 = [
    """CREATE TABLE compares (
        compare_id VARCHAR, role VARCHAR, run_id VARCHAR, recorded_at TIMESTAMP,
        PRIMARY KEY (compare_id, role))""",
]

# Which documents a run scored: lm-eval's first `limit` ("first") or a nested random sample ("random:<seed>").
_V3 = [
    """ALTER TABLE runs ADD COLUMN sampling VARCHAR DEFAULT 'first'""",
]

# How busy the machine was with other work while a compare's run was timed (`execution.machineload`): cores busy
# with other processes and stolen by the hypervisor, on average, and the machine's cores. NULL for older pairs.
_V4 = [
    """ALTER TABLE compares ADD COLUMN other_cores DOUBLE""",
    """ALTER TABLE compares ADD COLUMN steal_cores DOUBLE""",
    """ALTER TABLE compares ADD COLUMN cores INTEGER""",
]

# The same per attempt of a local run, with the run's own cores busy (`store.machineload`): learning leaves out the
# timings of attempts that other work competed with. NULL for older attempts and for Ray's.
_V5 = [
    """ALTER TABLE attempts ADD COLUMN other_cores DOUBLE""",
    """ALTER TABLE attempts ADD COLUMN steal_cores DOUBLE""",
    """ALTER TABLE attempts ADD COLUMN own_cores DOUBLE""",
    """ALTER TABLE attempts ADD COLUMN cores INTEGER""",
]

MIGRATIONS: dict[int, list[str]] = {1: _V1, 2: _V2, 3: _V3, 4: _V4, 5: _V5}


def migrate(con: Any) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version found before.

    Args:
        con: An open read-write DuckDB connection.
    """
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    found = int(row[0]) if row and row[0] is not None else 0
    if found > SCHEMA_VERSION:
        from spectrabench.errors import UserError

        raise UserError(f"the store was written by a newer SpectraBench (schema {found} > {SCHEMA_VERSION})",
                        hint="upgrade spectrabench or point SPECTRABENCH_DATA_DIR at another folder")
    for version in range(found + 1, SCHEMA_VERSION + 1):
        con.execute("BEGIN TRANSACTION")
        for statement in MIGRATIONS[version]:
            con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (?)", [version])
        con.execute("COMMIT")
    return found
