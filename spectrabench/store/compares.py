"""Which runs form one baseline-vs-optimized comparison: `compare` records the pair, `report` reads it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from spectrabench.store.db import connect

ROLES = ("baseline", "optimized")


class ComparePair(NamedTuple):
    """The runs of one comparison; a role is None while its run has not been recorded (e.g. it was interrupted)."""

    compare_id: str
    baseline_run_id: str | None
    optimized_run_id: str | None


def record_compare_run(db: Path, compare_id: str, role: str, run_id: str) -> None:
    """Record that `run_id` is the `role` run of comparison `compare_id` (replacing an earlier one of that role).

    Args:
        db: The store file (written: call this from the driver process only).
        compare_id: Shared by the baseline and the optimized run of one comparison.
        role: "baseline" or "optimized".
        run_id: A run of the runs table.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    now = datetime.now(UTC).replace(tzinfo=None)
    with connect(db) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM compares WHERE compare_id = ? AND role = ?", [compare_id, role])
        con.execute("INSERT INTO compares VALUES (?, ?, ?, ?)", [compare_id, role, run_id, now])
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
        roles = dict(con.execute("SELECT role, run_id FROM compares WHERE compare_id = ?", [row[0]]).fetchall())
    return ComparePair(row[0], roles.get("baseline"), roles.get("optimized"))
