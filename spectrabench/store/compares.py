"""Which runs form one baseline-vs-optimized comparison: `compare` records the pair, `report` reads it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from spectrabench.store.db import connect, has_column
from spectrabench.store.machineload import MachineLoad

ROLES = ("baseline", "optimized")


def busy_while_timed(loads: Mapping[str, MachineLoad]) -> bool:
    """Whether other work took enough of the machine while any of the runs was timed to make their ratio suspect."""
    return any(load.noisy for load in loads.values())


class ComparePair(NamedTuple):
    """The runs of one comparison; a role is None while its run has not been recorded (e.g. it was interrupted).
    `loads` holds, by role, the machine's other work while that run was timed, where it was measured."""

    compare_id: str
    baseline_run_id: str | None
    optimized_run_id: str | None
    loads: dict[str, MachineLoad]


def record_compare_run(db: Path, compare_id: str, role: str, run_id: str, load: MachineLoad | None = None) -> None:
    """Record that `run_id` is the `role` run of comparison `compare_id` (replacing an earlier one of that role).

    Args:
        db: The store file (written: call this from the driver process only).
        compare_id: Shared by the baseline and the optimized run of one comparison.
        role: "baseline" or "optimized".
        run_id: A run of the runs table.
        load: The machine's other work while the run was timed, when measured.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    now = datetime.now(UTC).replace(tzinfo=None)
    with connect(db) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM compares WHERE compare_id = ? AND role = ?", [compare_id, role])
        con.execute("INSERT INTO compares (compare_id, role, run_id, recorded_at, other_cores, steal_cores, cores) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", [compare_id, role, run_id, now,
                                                     *((load.other_cores, load.steal_cores, load.cores) if load
                                                       else (None, None, None))])
        con.execute("COMMIT")


def has_compares_table(con: Any) -> bool:
    """Whether the store has the compares table: a store written before schema 2 and opened read-only lacks it."""
    row = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'compares'").fetchone()
    return bool(row and row[0])


def find_compare(db: Path, run_id: str) -> ComparePair | None:
    """The comparison `run_id` took part in (the latest recorded, if several), or None."""
    with connect(db, read_only=True) as con:
        if not has_compares_table(con):
            return None
        row = con.execute("SELECT compare_id FROM compares WHERE run_id = ? ORDER BY recorded_at DESC LIMIT 1",
                          [run_id]).fetchone()
        if row is None:
            return None
        # A store of schema 3 opened read-only has no load columns yet.
        measured = ("other_cores, steal_cores, cores" if has_column(con, "compares", "other_cores")
                    else "NULL, NULL, NULL")
        rows = con.execute(f"SELECT role, run_id, {measured} FROM compares WHERE compare_id = ?", [row[0]]).fetchall()
    roles = {role: run for role, run, *_ in rows}
    loads = {role: MachineLoad(other_cores=float(other), steal_cores=float(steal or 0.0), cores=int(cores))
             for role, _, other, steal, cores in rows if other is not None and cores is not None}
    return ComparePair(row[0], roles.get("baseline"), roles.get("optimized"), loads)

